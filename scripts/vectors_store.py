"""Refusal vectors for the store (issue 8 §3–§5), written by `make vectors` into
tests/vectors/store-refusals/: each a recording folder or state folder a verifier MUST refuse, with
the exact verdict (`expected.json`) the CLI gives. A second implementation proves it refuses
them too by matching the codes and exit code.

    store-refusals/<case>/recording/      a recording folder    -> `akkoord verify --json`
    store-refusals/<case>/state/          a state folder         -> `akkoord custody --json`
    store-refusals/<case>/head.json       with state/            -> `akkoord custody --check-head`
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from akkoord.cli import main as cli_main
from akkoord.clock import FixedClock
from akkoord.store.custody import CustodyLog
from akkoord.store.format import FrameHeader, Kind, checkpoint_message, finish_frame
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey
from akkoord.store.layout import CONTAINER_FILE, EXPORTS_FILE, WRAPPED_KEYS_FILE, StateDir
from akkoord.store.writer import AudioParams, RecordingWriter

__all__ = ["build_store_refusals"]

RATE = 8000


def _seed(label: str) -> bytes:
    return hashlib.sha256(b"akkoord test vector seed: " + label.encode()).digest()


def _frames(data: bytes) -> list[tuple[FrameHeader, bytes]]:
    out, pos = [], 0
    while pos < len(data):
        h = FrameHeader.unpack(data[pos : pos + 108])
        out.append((h, data[pos : pos + h.frame_len]))
        pos += h.frame_len
    return out


def _reseal(frames: list[bytes], start: int) -> list[bytes]:
    """Recompute seals from `start` on, as anyone can without a key."""
    out = list(frames[:start])
    prev = out[-1][-32:] if out else None
    for raw in frames[start:]:
        h = FrameHeader.unpack(raw[:108])
        meta = raw[108 : 108 + h.meta_len]
        body = raw[108 + h.meta_len : 108 + h.meta_len + h.body_len]
        hb = FrameHeader(h.kind, h.flags, h.meta_len, h.index, h.samples, h.start_sample,
                         h.body_len, h.recording_id, prev or h.prev, h.audio_mac).pack()
        frame, prev = finish_frame(hb, meta, body)
        out.append(frame)
    return out


def _verify(path: Path, device_pub: Path) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["verify", str(path), "--json", "--device-key", str(device_pub)])
    if code == 2:
        return {"exit_code": 2, "error": err.getvalue().strip().split(": ")[-1]}
    doc = json.loads(out.getvalue())
    return {"exit_code": code, "status": doc["status"],
            "codes": sorted({f["code"] for f in doc["findings"]})}


def _custody(state: Path, *extra: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["custody", "--json", "--state", str(state), *extra])
    doc = json.loads(out.getvalue())
    if "codes" in doc:
        return {"exit_code": code, "codes": sorted({c["code"] for c in doc["codes"]})}
    return {"exit_code": code, "status": doc["status"]}


def build_store_refusals(out: Path) -> None:
    out = Path(out) / "store-refusals"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    work = out / "_work"
    state = StateDir(work / "state")
    state.ensure()
    identity = DeviceIdentity.from_seed(_seed("device"))
    identity.save(state.keys_dir)
    org = OrgPrivateKey("x25519", _seed("organisation"))
    clock = FixedClock(start=1_795_000_000.0)
    custody = CustodyLog(state.custody_path, identity, clock)
    custody.append("device_initialised")
    pub = out / "device.pub"
    pub.write_text(json.dumps(identity.public.to_json(), indent=1) + "\n")

    def recording(name: str, seconds: int = 3) -> RecordingWriter:
        w = RecordingWriter.create(
            state, identity, [org.public], AudioParams(sample_rate=RATE, segment_samples=RATE),
            clock, custody=custody, content_key=_seed(f"{name} content key"),
            recording_id=_seed(f"refused {name} recording id")[:16],
        )
        w.add_event("press", party="A")
        w.add_event("press", party="B")
        w.add_event("start")
        for i in range(seconds):
            w.add_audio(bytes([i + 1]) * (RATE * 2))
            clock.advance(1)
        w.close("party_b", party="B")
        return w

    cases: dict[str, Any] = {}

    def keep(name: str, w: RecordingWriter, mutate: Any, why: str) -> None:
        d = out / name / "recording"
        shutil.copytree(w.path, d)
        mutate(d)
        cases[name] = (d, why)

    base = recording("base")

    def forged_checkpoint(d: Path) -> None:
        parts = [raw for _, raw in _frames((d / CONTAINER_FILE).read_bytes())]
        h = FrameHeader.unpack(parts[1][:108])
        meta = parts[1][108 : 108 + h.meta_len]
        sig = DeviceIdentity.from_seed(_seed("forger")).sign(
            checkpoint_message(parts[1][:108], meta))
        parts[1], _ = finish_frame(parts[1][:108], meta, sig)
        (d / CONTAINER_FILE).write_bytes(b"".join(_reseal(parts, 2)))

    def dropped_final_checkpoint(d: Path) -> None:
        frames = _frames((d / CONTAINER_FILE).read_bytes())
        parts = [raw for h, raw in frames if not (h.kind == Kind.CHECKPOINT and h.index > 1)]
        # re-index the END frame so only the checkpoint rule is broken, then reseal
        end = FrameHeader.unpack(parts[-1][:108])
        hb = FrameHeader(end.kind, end.flags, end.meta_len, end.index - 1, end.samples,
                         end.start_sample, end.body_len, end.recording_id, end.prev,
                         end.audio_mac).pack()
        parts[-1] = hb + parts[-1][108:]
        (d / CONTAINER_FILE).write_bytes(b"".join(_reseal(parts, len(parts) - 1)))

    def keys_replaced(d: Path) -> None:
        (d / WRAPPED_KEYS_FILE).write_bytes((d / WRAPPED_KEYS_FILE).read_bytes()
                                            .replace(b'"recipients"', b'"recipients" '))

    def keys_missing(d: Path) -> None:
        (d / WRAPPED_KEYS_FILE).unlink()

    def manifest_1e999(d: Path) -> None:
        data = (d / "manifest.json").read_text()
        (d / "manifest.json").write_text(data.replace('"duration_samples":',
                                                      '"x":1e999,"duration_samples":', 1))

    def manifest_huge_integer(d: Path) -> None:
        data = (d / "manifest.json").read_text()
        (d / "manifest.json").write_text(data.replace('"duration_samples":',
                                                      f'"x":{"9" * 400},"duration_samples":', 1))

    keep("checkpoint-forged", base, forged_checkpoint,
         "frame 1's signature is by another key (chain resealed without a key)")
    keep("checkpoint-missing-before-end", base, dropped_final_checkpoint,
         "the checkpoint before END removed, END re-indexed, chain resealed")
    keep("keys-changed", base, keys_replaced, "keys.json differs from wrapped_keys_sha256")
    keep("keys-missing", base, keys_missing, "keys.json deleted, no deletion logged")
    keep("manifest-1e999", base, manifest_1e999, "a number that overflows a double")
    keep("manifest-huge-integer", base, manifest_huge_integer, "a 400-digit integer")

    for d, why in cases.values():
        expected = _verify(d, pub)
        expected["why"] = why
        (d.parent / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True)
                                                + "\n")

    # A state folder with a deleted recording, a shortened export record and a dropped log
    # tail caught by a copy's head.
    w1 = recording("kept", 1)
    from akkoord.store.exports import append_export

    for n in (1, 2):
        head = custody.append("export", w1.id, copy_number=n, stick_id_sha256=None)
        append_export(w1.path, identity, clock, copy_number=n, stick_id_sha256=None,
                      custody_seq=head.seq)
    exports = (w1.path / EXPORTS_FILE).read_bytes()
    first = _frames(exports)[0][0].frame_len
    (w1.path / EXPORTS_FILE).write_bytes(exports[:first])
    w2 = recording("deleted", 1)
    shutil.rmtree(w2.path)
    for w in (base,):
        shutil.rmtree(w.path)
        custody.append("recording_deleted", w.id, reason="retention")
    st = out / "state-deleted-folder-shortened-exports" / "state"
    shutil.copytree(state.root, st, ignore=shutil.ignore_patterns("device.key", "*.lock"))
    expected = _custody(st)
    expected["why"] = "a folder deleted without a log entry; exports.akr cut to one of two copies"
    (st.parent / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True)
                                             + "\n")

    log_lines = state.custody_path.read_bytes().splitlines(keepends=True)
    st = out / "head-dropped-tail" / "state"
    shutil.copytree(state.root, st, ignore=shutil.ignore_patterns("device.key", "*.lock"))
    (st.parent / "head.json").write_text(json.dumps(custody.head().to_json()) + "\n")
    (st / "custody.log").write_bytes(b"".join(log_lines[:-2]))
    expected = _custody(st, "--check-head", str(st.parent / "head.json"))
    expected["why"] = "the device signed a head its log no longer reaches"
    (st.parent / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True)
                                             + "\n")
    shutil.rmtree(work)
