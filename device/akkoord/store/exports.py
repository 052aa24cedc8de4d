"""Export frames (`exports.akr`): the recording's own record of every copy made.

They continue the recording's chain after its manifest's chain head, one frame per copy,
each signed by the device (FORMAT.md §6). The container itself never changes after close.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.clock import Clock
from akkoord.errors import FormatError
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.format import (
    EXPORT_SIG_CONTEXT,
    SIGNATURE_LEN,
    ZERO32,
    FrameHeader,
    Kind,
    canonical_json,
    finish_frame,
)
from akkoord.store.keys import DeviceIdentity, DevicePublicKey
from akkoord.store.layout import EXPORTS_FILE
from akkoord.store.manifest import read_manifest
from akkoord.store.reader import Damage, ParsedFrame, parse_meta, scan
from akkoord.store.safeio import open_regular

__all__ = ["ExportRecord", "append_export", "read_exports"]


@dataclass(frozen=True)
class ExportRecord:
    index: int
    offset: int
    meta: dict[str, Any] | None
    problem: str | None  # None when the frame is whole, chained and signed
    seal: bytes = b""


_UNREAD: Any = object()


def _chain_start(directory: Path, signed: Any = _UNREAD) -> tuple[bytes, int, int, bytes]:
    if signed is _UNREAD:
        signed = read_manifest(directory, segments=False)
    if signed is None:
        raise FormatError(f"{directory}: no manifest — copies are made of closed recordings only")
    doc = signed.doc
    try:
        rid = bytes.fromhex(doc["recording_id"])
        head = bytes.fromhex(doc["chain_head"])
        return rid, int(doc["frame_count"]), int(doc["duration_samples"]), head
    except (KeyError, ValueError, TypeError) as exc:
        raise FormatError(f"{directory}: manifest lacks recording_id/chain_head") from exc


def read_exports(directory: Path, key: DevicePublicKey | None = None, *,
                 manifest: Any = _UNREAD) -> list[ExportRecord]:
    """Every export frame, each checked: chained on from the manifest, signed by `key`.
    `manifest`: what read_manifest(directory, segments=False) just returned, when the
    caller has it (store/catalog.py), so it is not read a second time."""
    path = Path(directory) / EXPORTS_FILE
    if not path.exists():
        return []
    rid, index, _, prev = _chain_start(directory, manifest)
    signatures: dict[int, bytes] = {}

    def keep_signature(frame: ParsedFrame, body: memoryview) -> None:
        if len(body) == SIGNATURE_LEN:
            signatures[frame.offset] = bytes(body)

    out: list[ExportRecord] = []
    with open_regular(path, "export record") as f:
        for item in scan(f, os.fstat(f.fileno()).st_size, keep_signature):
            if isinstance(item, Damage):
                out.append(ExportRecord(index, item.offset, None, f"damaged: {item.reason}"))
                continue
            sig = signatures.pop(item.offset, b"")
            out.append(_check(item, sig, rid, index, prev, key))
            index, prev = item.header.index + 1, item.seal
    return out


def _check(
    frame: ParsedFrame,
    sig: bytes,
    rid: bytes,
    index: int,
    prev: bytes,
    key: DevicePublicKey | None,
) -> ExportRecord:
    h = frame.header
    meta, problem = parse_meta(frame)
    if h.kind != Kind.EXPORT:
        problem = f"kind {h.kind} is not an export frame"
    elif h.recording_id != rid:
        problem = "belongs to another recording"
    elif h.index != index or h.prev != prev:
        problem = f"does not chain on (index {h.index}, expected {index})"
    elif key is not None and not key.verify(
        sig, EXPORT_SIG_CONTEXT + frame.header_bytes + frame.meta_bytes
    ):
        problem = "signature does not verify"
    return ExportRecord(h.index, frame.offset, meta, problem, frame.seal)


def append_export(
    directory: Path,
    identity: DeviceIdentity,
    clock: Clock,
    *,
    copy_number: int,
    stick_id_sha256: str | None,
    made_by: str = "device",
    custody_seq: int | None = None,
) -> dict[str, Any]:
    """Append one signed export frame; returns its meta."""
    directory = Path(directory)
    rid, index, duration, prev = _chain_start(directory)
    existing = read_exports(directory, identity.public)
    bad = [r for r in existing if r.problem]
    if bad:
        raise FormatError(
            f"{directory / EXPORTS_FILE}: export record {bad[0].index}: {bad[0].problem}; "
            "not appending to a damaged record"
        )
    if existing:
        last = existing[-1]
        index = last.index + 1
        prev = last.seal
    meta = {
        "event": "export",
        "copy_number": copy_number,
        "made_by": made_by,
        "stick_id_sha256": stick_id_sha256,
        "time": clock.wall().to_json(),
    }
    if custody_seq is not None:
        # The custody entry that announced this copy: the record vouches for the log up to
        # there, so a log cut back before it is detectable (FORMAT.md §11.3).
        meta["custody_seq"] = custody_seq
    meta_bytes = canonical_json(meta)
    header = FrameHeader(
        kind=int(Kind.EXPORT),
        flags=0,
        meta_len=len(meta_bytes),
        index=index,
        samples=0,
        start_sample=duration,
        body_len=SIGNATURE_LEN,
        recording_id=rid,
        prev=prev,
        audio_mac=ZERO32,
    ).pack()
    sig = identity.sign(EXPORT_SIG_CONTEXT + header + meta_bytes)
    frame, _ = finish_frame(header, meta_bytes, sig)
    path = directory / EXPORTS_FILE
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, frame, str(path))
        fsync_fd(fd, str(path))
    finally:
        os.close(fd)
    if created:
        fsync_dir(directory)
    return meta
