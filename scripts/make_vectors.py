#!/usr/bin/env python3
"""Regenerate tests/vectors/: recordings and copies every verifier must handle.

    .venv/bin/python scripts/make_vectors.py [OUT_DIR]      (default: tests/vectors)

Keys and ids are fixed (test-only!), so most bytes repeat from run to run; the HPKE-wrapped
content key does not (HPKE draws a fresh ephemeral key), and the header commits to it, so
seals and signatures change when the vectors are regenerated. Run this when the format
version changes, then commit the result.
"""

from __future__ import annotations

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
from akkoord.store.custody import CustodyLog  # noqa: E402
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey  # noqa: E402
from akkoord.store.layout import CONTAINER_FILE, StateDir  # noqa: E402
from akkoord.store.recovery import recover_all  # noqa: E402
from akkoord.store.writer import AudioParams, RecordingWriter  # noqa: E402
from akkoord.trust import OrgSigningKey, device_certificate  # noqa: E402

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
    from vectors_store import build_refusals  # issue 8 §3–§5: what verifiers must refuse

    build_refusals(out)


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
