#!/usr/bin/env python3
"""`make demo`: a whole meeting on a simulated device, start to finish, in under a minute.

Throw-away keys, the real daemon on simulated buttons, a bundled Dutch conversation as the
microphone: both parties press, the recording runs, the parent stops it, each party takes a
copy on a "stick" (a folder), then the copies and the recording are verified, the
organisation decrypts its archive copy, and two forgeries are caught.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
WAV = ROOT / "device" / "akkoord" / "assets" / "demo" / "gesprek.wav"


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def akkoord(*args: str, check: bool = True, state: Path | None = None,
            **kw: object) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "akkoord", "--state", str(state or OUT / "device"), *args]
    print("$ akkoord " + " ".join(str(a).replace(str(ROOT) + "/", "") for a in args),
          flush=True)
    r = subprocess.run(cmd, text=True, **kw)  # type: ignore[call-overload]
    if check and r.returncode != 0:
        sys.exit(f"demo: `akkoord {args[0]}` failed with exit code {r.returncode}")
    return r


SCRIPT = """
sleep 0.5
a              # de ouder (partij A, ouder / gezin) drukt op akkoord
sleep 1.5
b              # de professional (partij B) drukt ook: de opname start
sleep 9
b              # de professional stopt de opname, met één druk
sleep 1
usb {stick_b}
sleep 0.5
a              # beide partijen bevestigen de kopie
b
sleep 2
usb-remove
usb {stick_a}
sleep 0.5
a
b
sleep 2
usb-remove
quit
"""


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    stick_a, stick_b = OUT / "stick-ouder", OUT / "stick-professional"
    stick_a.mkdir()
    stick_b.mkdir()

    step("1. Keys: the device's identity, and the organisation's keys (made off the device)")
    org = OUT / "organisatie"
    akkoord("keys", "init")
    akkoord("keys", "org-new", "--out", str(org), "--name", "Jeugdzorg Voorbeeldregio")
    akkoord("keys", "add-recipient", str(org / "org.pub"))

    step("1b. The organisation certifies the device; the device installs the certificate")
    cert = org / "apparaat-noord.cert.json"
    akkoord("keys", "certify", str(OUT / "device" / "keys" / "device.pub"),
            "--org-key", str(org / "org-signing.key"), "--label", "Locatie Noord, kamer 2",
            "--out", str(cert))
    akkoord("keys", "install-certificate", str(cert), "--org-pub", str(org / "org-signing.pub"))
    akkoord("keys", "publish-page", "--org-key", str(org / "org-signing.pub"),
            "--out", str(org / "controle.html"))

    step("2. The meeting, on the simulator (buttons are scripted, the microphone is a WAV)")
    cfg = OUT / "akkoord.toml"
    cfg.write_text("[audio]\nsample_rate = 16000\n[export]\nwindow_seconds = 300\n")
    script = SCRIPT.format(stick_a=stick_a, stick_b=stick_b)
    print(textwrap.indent(script.strip(), "    | "))
    akkoord("run", "--simulate", "--config", str(cfg), "--audio-file", str(WAV), input=script)
    recordings = sorted((OUT / "device" / "recordings").iterdir())
    rec = recordings[-1]

    step("3. The device's own check of the recording (no key needed)")
    akkoord("verify", str(rec))

    step("4. The organisation checks every second of audio and decrypts its copy")
    key = OUT / "organisatie" / "org.key"
    akkoord("verify", str(rec), "--key", str(key))
    archive_wav = OUT / "opname-organisatie.wav"
    akkoord("decrypt", str(rec), "--key", str(key), "--out", str(archive_wav))

    step("5. Both parties' copies: identical, and each verifies, anchored to the organisation")
    (copy_b,) = [p for p in stick_b.iterdir() if p.is_dir()]
    (copy_a,) = [p for p in stick_a.iterdir() if p.is_dir()]
    home = OUT / "thuis"  # a holder's computer: no device state, only the published key
    akkoord("verify", str(copy_b), "--trust", str(org / "org-signing.pub"), state=home)
    akkoord("verify", str(copy_a), "--trust", str(org / "org-signing.pub"), state=home)
    r = akkoord("verify", str(copy_b), check=False, state=home)
    print(f"exit code {r.returncode} without --trust (3 = genuine, but who made it cannot be "
          "told: compare fingerprints, or use the organisation's page)")
    if r.returncode != 3:
        sys.exit("demo: an unanchored copy must exit 3")
    wavs = [copy_a / "opname.wav", copy_b / "opname.wav"]
    digests = {hashlib.sha256(w.read_bytes()).hexdigest() for w in wavs}
    digests.add(hashlib.sha256(archive_wav.read_bytes()).hexdigest())
    print(f"audio identical on both sticks and in the organisation's decryption: "
          f"{'yes' if len(digests) == 1 else 'NO'}")
    if len(digests) != 1:
        sys.exit("demo: the copies differ")

    step("6. Someone cuts one second out of a copy: caught, and located")
    forged = OUT / "vervalst"
    shutil.copytree(copy_b, forged)
    wav = forged / "opname.wav"
    data = bytearray(wav.read_bytes())
    rate, start = 16000, 44
    del data[start + 3 * rate * 2 : start + 4 * rate * 2]  # second 3 to 4
    struct.pack_into("<I", data, 4, len(data) - 8)
    struct.pack_into("<I", data, 40, len(data) - start)
    wav.write_bytes(bytes(data))
    r = akkoord("verify", str(forged), check=False)
    print(f"exit code {r.returncode} (1 = findings)")
    if r.returncode != 1:
        sys.exit("demo: the forgery was not caught")

    step("7. Someone edits the stored recording on the device: caught, and located")
    tampered = OUT / "bewerkt" / rec.name
    shutil.copytree(rec, tampered)
    container = tampered / "recording.akr"
    raw = bytearray(container.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    container.write_bytes(bytes(raw))
    r = akkoord("verify", str(tampered), check=False)
    print(f"exit code {r.returncode} (1 = findings)")
    if r.returncode != 1:
        sys.exit("demo: the edit was not caught")

    step("Done")
    print(textwrap.dedent(f"""\
        Everything is in {OUT.relative_to(ROOT)}/:
          device/        the device's state: recordings (encrypted), keys, custody.log
          organisatie/   the organisation's keys (org.key and org-signing.key stay off the
                         device), the device certificate, and controle.html: the verify page
                         with the organisation's signing key built in (docs/publiek.md)
          stick-ouder/, stick-professional/   the two copies; open verify.html in a browser
                         and choose opname.wav to check a copy yourself
          opname-organisatie.wav   what the organisation decrypted
          vervalst/, bewerkt/      the forgeries caught above"""))


if __name__ == "__main__":
    main()
