#!/usr/bin/env python3
"""Regenerate tests/vectors/: recordings and copies every verifier must handle.

    .venv/bin/python scripts/make_vectors.py [OUT_DIR]      (default: tests/vectors)

Keys and ids are fixed (test-only!), so most bytes repeat from run to run; the HPKE-wrapped
content key does not (HPKE draws a fresh ephemeral key), and the header commits to it, so
seals and signatures change when the vectors are regenerated. Run this when the format
version changes, then commit the result.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "device"))

from akkoord.cli import main as cli_main  # noqa: E402
from akkoord.clock import FixedClock  # noqa: E402
from akkoord.export.package import write_copy  # noqa: E402
from akkoord.store.custody import CustodyLog, head_message  # noqa: E402
from akkoord.store.format import canonical_json  # noqa: E402
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey  # noqa: E402
from akkoord.store.layout import CONTAINER_FILE, StateDir  # noqa: E402
from akkoord.store.manifest import manifest_bytes, sign_manifest  # noqa: E402
from akkoord.store.recovery import recover_all  # noqa: E402
from akkoord.store.writer import AudioParams, RecordingWriter  # noqa: E402
from akkoord.trust import OrgSigningKey, device_certificate, revocation_list  # noqa: E402

RATE = 8000
SIGNING = OrgSigningKey.from_seed(hashlib.sha256(b"akkoord test vector seed: org signing").digest(),
                                  "Jeugdzorg Voorbeeldregio (test)")


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"akkoord test vector seed: " + label.encode()).digest()


def tone(seconds: float, freq: float, start: int = 0) -> bytes:
    n = int(seconds * RATE)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * (start + i) / RATE)))
        for i in range(n)
    )


def _setup(out: Path) -> tuple[StateDir, DeviceIdentity, OrgPrivateKey, FixedClock, CustodyLog]:
    state = StateDir(out / "_state")
    state.ensure()
    identity = DeviceIdentity.from_seed(_seed("device"))
    org = OrgPrivateKey("x25519", _seed("organisation"))
    clock = FixedClock(start=1_795_000_000.0)
    # Provisioning: the organisation certifies the device key (FORMAT.md §10).
    now = int(clock.t)
    cert = device_certificate(SIGNING, "ed25519", identity.public.raw, "Testlocatie (vectors)",
                              now - 86400, now + 5 * 365 * 86400, now - 86400, serial="5e" * 16)
    state.keys_dir.mkdir(parents=True, exist_ok=True)
    state.certificate_path.write_text(json.dumps(cert, indent=1) + "\n")
    return state, identity, org, clock, CustodyLog(state.custody_path, identity, clock)


def _ceremony(w: RecordingWriter, clock: FixedClock) -> None:
    w.add_event("press", party="A", before_start_seconds=4.2)
    w.add_event("press", party="B", before_start_seconds=0.0)
    w.add_event("start")


def build(out: Path) -> None:
    if out.exists():
        for child in out.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
    out.mkdir(parents=True, exist_ok=True)
    state, identity, org, clock, custody = _setup(out)
    params = AudioParams(sample_rate=RATE, segment_samples=RATE)

    def writer(name: str) -> RecordingWriter:
        return RecordingWriter.create(
            state,
            identity,
            [org.public],
            params,
            clock,
            custody=custody,
            content_key=_seed(f"{name} content key"),
            recording_id=_seed(f"{name} recording id")[:16],
        )

    made = {}
    # 1. complete: two presses, start, 3 s of audio, party B stops.
    w = writer("complete")
    _ceremony(w, clock)
    for i in range(3):
        w.add_audio(tone(1, 440 + 110 * i, i * RATE))
        clock.advance(1)
    w.close("party_b", party="B")
    made["complete"] = w
    # 2. gap: an input overflow of 0.25 s between the first and second second.
    w = writer("gap")
    _ceremony(w, clock)
    w.add_audio(tone(1, 500))
    w.add_gap(RATE // 4, "overflow", estimated=False)
    w.add_audio(tone(1, 600))
    w.add_audio(tone(0.5, 700))
    w.close("party_a", party="A")
    made["gap"] = w
    # 3. interrupted: power lost mid-frame; recovery closes it with a signed note.
    w = writer("interrupted")
    _ceremony(w, clock)
    for i in range(2):
        w.add_audio(tone(1, 330 * (i + 1)))
    w._close_fd()
    with open(w.path / CONTAINER_FILE, "ab") as f:
        f.write(b"AKF1" + bytes(60))  # the torn beginning of a frame that never finished
    recover_all(state, identity, clock, custody)
    made["interrupted"] = w

    keyfile = out / "org.key"
    keyfile.write_bytes(org.dumps())
    (out / "org-signing.pub").write_bytes(SIGNING.public.dumps())
    (out / "device.pub").write_text(json.dumps(identity.public.to_json(), indent=1) + "\n")
    for name, w in made.items():
        d = out / name
        d.mkdir()
        shutil.copytree(w.path, d / "recording")
        result = write_copy(
            w.path,
            w.keys,
            d,
            copy_number=1,
            made_by="device",
            clock=clock,
            device_key=identity.public,
            custody_head=custody.append(
                "export", w.id, copy_number=1, stick_id_sha256=None
            ).to_json(),
        )
        result.folder.rename(d / "copy")
        for target, extra in (("recording", ["--key", str(keyfile)]), ("copy", [])):
            doc = _verify_json(d / target, out / "device.pub", extra)
            (d / f"expected-verify-{target}.json").write_text(
                json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
            )
    shutil.rmtree(state.root)
    build_refusals(out, identity)


# --- refusals (issue 8): copies every verifier must NOT call genuine and anchored -----------


def _fmt(rate: int, channels: int) -> bytes:
    return struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, channels, rate, rate * channels * 2,
                       channels * 2, 16)


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


def _data(pcm: bytes) -> bytes:
    return b"data" + struct.pack("<I", len(pcm)) + pcm


def _sign_manifest(folder: Path, doc: dict, signer: DeviceIdentity) -> None:
    data = manifest_bytes(doc)
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(base64.b64encode(sign_manifest(data, signer)) + b"\n")


def _sign_head(folder: Path, signer: DeviceIdentity) -> None:
    head = json.loads((folder / "custody-head.json").read_bytes())
    sig = signer.sign(head_message(head["seq"], bytes.fromhex(head["hash"])))
    head["signature"] = base64.b64encode(sig).decode()
    head["device_fingerprint"] = signer.fingerprint
    (folder / "custody-head.json").write_bytes(canonical_json(head) + b"\n")


def build_refusals(out: Path, device: DeviceIdentity) -> None:
    """tests/vectors/refusals/<case>/: copy files (flat), optional revocations.json, and
    expected-verify-copy.json (`akkoord verify <case> --json --trust ../../org-signing.pub`
    [--revocations revocations.json]); exit 2 cases record the one-line error instead."""
    base = out / "complete" / "copy"
    root = out / "refusals"
    root.mkdir()
    forger = DeviceIdentity.from_seed(_seed("forger"))
    other_org = OrgSigningKey.from_seed(_seed("other organisation"), SIGNING.organisation)
    manifest = json.loads((base / "manifest.json").read_bytes())
    cert = manifest["device"]["certificate"]
    created = 1_795_000_000  # the vector clock's start: when the recordings were made
    _, pcm = _wav_pcm(base / "opname.wav")

    def case(name: str, what: str):
        d = root / name
        shutil.copytree(base, d)
        (d / "verify.html").unlink()  # the page under test is the published one
        (d / "WHAT.txt").write_text(what + "\n")
        return d

    def redo(d: Path, fn, signer: DeviceIdentity = device) -> None:
        doc = json.loads((d / "manifest.json").read_bytes())
        fn(doc)
        _sign_manifest(d, doc, signer)

    d = case("two-data-chunks", "genuine audio in a first data chunk, edited audio in a second "
             "(players play the second)")
    (d / "opname.wav").write_bytes(_riff(_fmt(RATE, 1) + _data(pcm) + _data(bytes(len(pcm)))))
    d = case("two-fmt-chunks", "a first fmt chunk (4 kHz stereo, what players use) before the "
             "genuine one")
    (d / "opname.wav").write_bytes(_riff(_fmt(RATE // 2, 2) + _fmt(RATE, 1) + _data(pcm)))
    d = case("trailing-junk-chunk", "a junk chunk after the audio")
    (d / "opname.wav").write_bytes(_riff(_fmt(RATE, 1) + _data(pcm) + b"junk\x04\0\0\0abcd"))
    d = case("identity-key", "an edited manifest under the all-identity key, R = identity, S = 0")
    ident = (1).to_bytes(32, "little")
    doc = json.loads((d / "manifest.json").read_bytes())
    doc["device"] = {"algorithm": "ed25519", "public_key": base64.b64encode(ident).decode()}
    doc["timeline"] = []
    (d / "manifest.json").write_bytes(manifest_bytes(doc))
    (d / "manifest.sig").write_bytes(base64.b64encode(ident + bytes(32)) + b"\n")
    d = case("signature-s-not-reduced", "the genuine signature with S + L instead of S")
    sig = base64.b64decode((d / "manifest.sig").read_bytes())
    s = int.from_bytes(sig[32:], "little") + 2**252 + 27742317777372353535851937790883648493
    (d / "manifest.sig").write_bytes(base64.b64encode(sig[:32] + s.to_bytes(32, "little"))
                                     + b"\n")
    d = case("forged-own-key", "the whole copy re-signed by a holder's own key (no certificate)")
    redo(d, lambda m: m.update(device={"algorithm": "ed25519",
                                       "fingerprint": forger.fingerprint,
                                       "public_key": forger.public.to_json()["public_key"]}),
         forger)
    _sign_head(d, forger)
    d = case("forged-keeps-certificate", "re-signed by a holder's own key, keeping the real "
             "device's certificate")
    redo(d, lambda m: m.update(device={"algorithm": "ed25519",
                                       "fingerprint": forger.fingerprint,
                                       "public_key": forger.public.to_json()["public_key"],
                                       "certificate": cert}), forger)
    _sign_head(d, forger)
    d = case("certificate-untrusted-organisation", "certified by an organisation key nobody "
             "trusts, under the real organisation's name")
    redo(d, lambda m: m["device"].update(certificate=device_certificate(
        other_org, "ed25519", device.public.raw, "x", created - 10, created + 10**8, created)))
    d = case("certificate-for-another-key", "a genuine certificate, but for another device key")
    redo(d, lambda m: m["device"].update(certificate=device_certificate(
        SIGNING, "ed25519", forger.public.raw, "x", created - 10, created + 10**8, created,
        serial="a0" * 16)))
    d = case("certificate-expired", "the recording was made after the certificate ended")
    redo(d, lambda m: m["device"].update(certificate=device_certificate(
        SIGNING, "ed25519", device.public.raw, "x", created - 10**8, created - 10**7,
        created - 10**8, serial="e0" * 16)))
    d = case("certificate-forged", "the real certificate with its end date pushed back")
    redo(d, lambda m: m["device"]["certificate"]["statement"].update(
        valid_until="2099-01-01T00:00:00Z"))
    d = case("certificate-revoked", "genuine, but the organisation revoked the certificate")
    (d / "revocations.json").write_text(json.dumps(revocation_list(
        SIGNING, 1, [{"serial": cert["statement"]["serial"], "revoked_at": "2026-12-01T00:00:00Z",
                      "reason": "key_compromise"}], created), indent=1) + "\n")
    d = case("no-certificate", "genuine, but the device was never certified (not anchored)")
    redo(d, lambda m: m["device"].pop("certificate"))
    d = case("copy-number-edited", "copy.json claims another copy number than the signed record")
    c = json.loads((d / "copy.json").read_bytes())
    c["copy_number"] = 2
    (d / "copy.json").write_bytes(canonical_json(c) + b"\n")
    d = case("custody-head-removed", "a device copy without its signed copy record")
    (d / "custody-head.json").unlink()
    for name, old, new in (
        ("sample-width-0", '"sample_width":2', '"sample_width":0'),
        ("sample-rate-1e999", '"sample_rate":8000', '"sample_rate":1e999'),
        ("huge-integer", '"duration_samples":24000', '"duration_samples":' + "9" * 40),
    ):
        d = case(name, f"hostile manifest: {new}")
        text = (d / "manifest.json").read_text()
        assert old in text, name
        (d / "manifest.json").write_text(text.replace(old, new))
    d = case("nul-in-audio-file-name", "hostile copy.json: a NUL byte in audio_file")
    c = json.loads((d / "copy.json").read_bytes())
    c["audio_file"] = "opname\u0000.wav"
    (d / "copy.json").write_bytes(canonical_json(c) + b"\n")
    for d in sorted(root.iterdir()):
        doc = _verify_refusal(d, out / "org-signing.pub")
        (d / "expected-verify-copy.json").write_text(
            json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=True) + "\n")


def _wav_pcm(path: Path) -> tuple[int, bytes]:
    data = path.read_bytes()
    return struct.unpack("<I", data[24:28])[0], data[44:]


def _verify_refusal(folder: Path, org_pub: Path) -> dict:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    extra = ["--revocations", str(folder / "revocations.json")] if (
        folder / "revocations.json").exists() else []
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["--state", str(folder / "no-state"), "verify", str(folder), "--json",
                         "--trust", str(org_pub), *extra])
    if code == 2:
        return {"exit_code": 2, "error": err.getvalue().strip().replace(str(folder), "<case>")}
    doc = json.loads(out.getvalue())
    doc.pop("path")
    doc["exit_code"] = code
    return doc


def _verify_json(path: Path, device_pub: Path, extra: list[str]) -> dict:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli_main(["verify", str(path), "--json", "--device-key", str(device_pub),
                         "--trust", str(device_pub.parent / "org-signing.pub"), *extra])
    doc = json.loads(buf.getvalue())
    doc.pop("path")
    doc["exit_code"] = code
    return doc


if __name__ == "__main__":
    build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests" / "vectors")
