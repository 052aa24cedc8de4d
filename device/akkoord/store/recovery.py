"""Close recordings a power loss (or crash, or failed disk write) left open.

Runs at start-up, before anything else touches the store. For each recording without a
manifest:

- a torn tail (bytes after the last whole frame, with no whole frame after them) is cut off:
  those bytes were never acknowledged;
- the recording is closed with a RECOVERY frame (no content key is needed: the note is in the
  clear, chained, and covered by the signed manifest) and a manifest marked *interrupted*;
- a recording whose END frame made it to disk but whose manifest did not just gets its manifest;
- a bad frame *followed by* good frames is corruption, not a torn tail: the folder moves to
  quarantine whole, nothing is cut.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord import __version__
from akkoord.clock import Clock
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.custody import CustodyLog
from akkoord.store.format import (
    ZERO32,
    FrameHeader,
    Kind,
    canonical_json,
    finish_frame,
    genesis_hash,
)
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE, StateDir
from akkoord.store.manifest import MANIFEST_FILE, FrameRecord, build_manifest, write_manifest
from akkoord.store.reader import Damage, ParsedFrame, parse_meta, record_of, scan

__all__ = ["RecoveryResult", "recover_all", "recover_recording"]

POWER_LOSS = "power_loss"
STORAGE_ERROR = "storage_error"


@dataclass(frozen=True)
class RecoveryResult:
    recording_id: str
    action: str  # "closed" | "interrupted" | "quarantined" | "removed"
    detail: str
    manifest: dict[str, Any] | None = None


def recover_all(
    state: StateDir,
    identity: DeviceIdentity,
    clock: Clock,
    custody: CustodyLog | None,
    reason: str = POWER_LOSS,
) -> list[RecoveryResult]:
    results = []
    for rid in state.recording_ids():
        directory = state.recording_dir(rid)
        if (directory / MANIFEST_FILE).exists():
            continue
        results.append(recover_recording(directory, identity, clock, custody, reason, state))
    return results


def _prefix(items: list[ParsedFrame | Damage], rid: bytes) -> list[ParsedFrame]:
    """The longest run of whole, chained frames from the start of the file."""
    out: list[ParsedFrame] = []
    prev, offset = genesis_hash(rid), 0
    for item in items:
        if not isinstance(item, ParsedFrame):
            break
        h = item.header
        if item.offset != offset or h.index != len(out) or h.prev != prev or h.recording_id != rid:
            break
        out.append(item)
        prev, offset = item.seal, item.offset + item.length
        if h.kind in (Kind.END, Kind.RECOVERY):
            break
    return out


def recover_recording(
    directory: Path,
    identity: DeviceIdentity,
    clock: Clock,
    custody: CustodyLog | None,
    reason: str = POWER_LOSS,
    state: StateDir | None = None,
) -> RecoveryResult:
    directory = Path(directory)
    rid_hex = directory.name
    rid = bytes.fromhex(rid_hex)
    container = directory / CONTAINER_FILE

    def log(kind: str, **detail: Any) -> None:
        if custody is not None:
            with contextlib.suppress(OSError):
                custody.append(kind, rid_hex, **detail)

    size = container.stat().st_size if container.exists() else 0
    if size == 0:
        # Crashed between creating the folder and writing the header: nothing was recorded.
        shutil.rmtree(directory)
        fsync_dir(directory.parent)
        log("recording_aborted", detail="no frame was written before the device stopped")
        return RecoveryResult(rid_hex, "removed", "no frame had been written")

    with open(container, "rb") as f:
        items = list(scan(f, size, thorough=True))
    prefix = _prefix(items, rid)
    good_after = [
        x
        for x in items[len(prefix) :]
        if isinstance(x, ParsedFrame) and x.header.recording_id == rid
    ]
    if not prefix or good_after:
        where = (
            "no whole first frame"
            if not prefix
            else (
                f"a damaged frame at byte {prefix[-1].offset + prefix[-1].length} "
                f"is followed by {len(good_after)} good frames"
            )
        )
        target = _quarantine(directory, state)
        log("recording_quarantined", detail=where, moved_to=str(target))
        return RecoveryResult(rid_hex, "quarantined", f"{where}; kept whole in {target}")

    end = prefix[-1].offset + prefix[-1].length
    cut = size - end
    records = [record_of(p, parse_meta(p)[0]) for p in prefix]
    fd = os.open(container, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        if cut:
            os.ftruncate(fd, end)
            fsync_fd(fd, str(container))
        last = prefix[-1].header
        if last.kind not in (Kind.END, Kind.RECOVERY):
            records.append(_append_recovery(fd, end, prefix[-1], records, rid, clock, reason, cut))
    finally:
        os.close(fd)
    manifest = build_manifest(records)
    write_manifest(directory, manifest, identity)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / RESERVE_FILE)
    fsync_dir(directory)
    action = "closed" if manifest["status"] == "complete" else "interrupted"
    log(
        "recording_interrupted" if action == "interrupted" else "recording_closed",
        status=manifest["status"],
        reason=reason if action == "interrupted" else "manifest written at recovery",
        frame_count=manifest["frame_count"],
        chain_head=manifest["chain_head"],
        duration_samples=manifest["duration_samples"],
        cut_bytes=cut,
    )
    detail = f"{manifest['frame_count']} frames kept, {cut} torn bytes cut"
    return RecoveryResult(rid_hex, action, detail, manifest)


def _append_recovery(
    fd: int,
    end: int,
    last: ParsedFrame,
    records: list[FrameRecord],
    rid: bytes,
    clock: Clock,
    reason: str,
    cut: int,
) -> FrameRecord:
    h = last.header
    position = h.start_sample + (h.samples if h.kind in (Kind.AUDIO, Kind.GAP) else 0)
    meta = {
        "event": "recovered",
        "reason": reason,
        "last_index": h.index,
        "chain_head": last.seal.hex(),
        "cut_bytes": cut,
        "time": clock.wall().to_json(),
        "software": f"akkoord {__version__}",
    }
    meta_bytes = canonical_json(meta)
    header = FrameHeader(
        kind=int(Kind.RECOVERY),
        flags=0,
        meta_len=len(meta_bytes),
        index=h.index + 1,
        samples=0,
        start_sample=position,
        body_len=0,
        recording_id=rid,
        prev=last.seal,
        audio_mac=ZERO32,
    ).pack()
    frame, seal = finish_frame(header, meta_bytes, b"")
    os.lseek(fd, end, os.SEEK_SET)
    write_all(fd, frame, "recovery frame")
    fsync_fd(fd, "recovery frame")
    return FrameRecord(h.index + 1, int(Kind.RECOVERY), 0, position, 0, ZERO32, meta, seal)


def _quarantine(directory: Path, state: StateDir | None) -> Path:
    qdir = state.quarantine_dir if state else directory.parent.parent / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = qdir / directory.name
    if target.exists():
        target = qdir / f"{directory.name}.{os.getpid()}"
    os.rename(directory, target)
    fsync_dir(directory.parent)
    fsync_dir(qdir)
    return target
