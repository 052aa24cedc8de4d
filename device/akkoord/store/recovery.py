"""Close recordings a power loss (or crash, or failed disk write) left open.

Runs at start-up, before anything else touches the store. Recovery signs, so it must never
sign what the device did not record (FORMAT.md §11.2). It closes a folder only when the
device's custody log shows the recording as started (with this very header frame) and not
closed, the header names this device, and the frames carry the device's own signed
checkpoints; everything after the last checkpoint is disclosed as an unsigned tail.
A folder the log does not know (planted), or one the log shows as already closed (its
manifest was removed: damage, not a power loss), is never signed.

For each recording without a manifest that passes those checks:

- a torn tail (bytes after the last whole frame, with no whole frame after them) is cut off:
  those bytes were never acknowledged;
- the recording is closed with a RECOVERY frame (no content key is needed: the note is in the
  clear, chained, and covered by the signed manifest) and a manifest marked *interrupted*;
- a recording whose END frame made it to disk but whose manifest did not just gets its manifest;
- a bad frame *followed by* good frames is corruption, not a torn tail: the folder moves to
  quarantine whole, nothing is cut.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord import __version__
from akkoord.clock import Clock
from akkoord.errors import FormatError, UsageError
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.custody import CustodyLog, CustodyView
from akkoord.store.format import (
    SIGNATURE_LEN,
    ZERO32,
    FrameHeader,
    Kind,
    canonical_json,
    checkpoint_due,
    checkpoint_message,
    finish_frame,
    genesis_hash,
)
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE, StateDir
from akkoord.store.manifest import MANIFEST_FILE, FrameRecord, build_manifest, write_manifest
from akkoord.store.reader import Damage, ParsedFrame, parse_meta, record_of, scan
from akkoord.store.safeio import open_regular
from akkoord.store.sigcheck import signature_checker

__all__ = ["RecoveryResult", "recover_all", "recover_recording"]

# A recording whose folder does not qualify for signing; kept whole for a person to look at.
NOT_STARTED = "the custody log has no recording_started entry for it: not recorded here"

POWER_LOSS = "power_loss"
STORAGE_ERROR = "storage_error"


@dataclass(frozen=True)
class RecoveryResult:
    recording_id: str
    action: str  # "closed" | "interrupted" | "quarantined" | "removed" | "damaged"
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
    view: CustodyView | None = None
    for rid in state.recording_ids():
        directory = state.recording_dir(rid)
        if (directory / MANIFEST_FILE).exists():
            continue
        if view is None:
            view = CustodyView.read(state.custody_path, identity.public)
        results.append(
            recover_recording(directory, identity, clock, custody, reason, state, log_view=view)
        )
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
    *,
    log_view: CustodyView | None = None,
) -> RecoveryResult:
    """`log_view` is what the custody log says (read from `custody` when not given); the
    log is what decides whether this folder may be closed and signed at all."""
    directory = Path(directory)
    rid_hex = directory.name
    rid = bytes.fromhex(rid_hex)
    container = directory / CONTAINER_FILE
    if log_view is None:
        if custody is None:
            raise UsageError("recovery needs the custody log to know what the device started")
        log_view = CustodyView.read(custody.path, identity.public)
    history = log_view.history(rid_hex)

    def log(kind: str, **detail: Any) -> None:
        if custody is not None:
            with contextlib.suppress(OSError):
                custody.append(kind, rid_hex, **detail)

    def quarantine(where: str) -> RecoveryResult:
        target = _quarantine(directory, state)
        log("recording_quarantined", detail=where, moved_to=str(target))
        return RecoveryResult(rid_hex, "quarantined", f"{where}; kept whole in {target}")

    if history.started is None:
        return quarantine(NOT_STARTED)
    if history.closed is not None or history.gone is not None:
        # Closed once, and signed then. Signing again would make two valid manifests.
        what = (history.closed or history.gone or {}).get("type")
        why = f"the custody log shows it as {what}, but its manifest is missing: damaged"
        if not history.damaged:
            log("recording_damaged", detail=why)
        return RecoveryResult(rid_hex, "damaged", why)

    size = _regular_size(container)
    if size == 0:
        # Crashed between creating the folder and writing the header: nothing was recorded.
        return _remove(directory, log, "no frame was written before the device stopped")

    signatures: dict[int, bytes] = {}

    def keep_signature(frame: ParsedFrame, body: memoryview) -> None:
        if frame.header.kind == Kind.CHECKPOINT:
            signatures[frame.offset] = bytes(body)

    with open_regular(container, "container") as f:
        items = list(scan(f, size, keep_signature, thorough=True))
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
        return quarantine(where)
    if len(prefix) == 1 and prefix[0].seal.hex() == history.header_seal:
        # Only the header this device logged reached the disk: nothing was recorded.
        return _remove(directory, log, "only the header frame was written")
    problem = _not_the_devices(prefix, signatures, identity, history.header_seal)
    if problem is not None:
        return quarantine(problem)

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
        chain_head=manifest["chain_head"],
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
    checkpoint = max(
        (r.index for r in records if r.kind == Kind.CHECKPOINT), default=None
    )
    meta = {
        "event": "recovered",
        "reason": reason,
        "last_index": h.index,
        "last_checkpoint": checkpoint,
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


def _remove(directory: Path, log: Any, why: str) -> RecoveryResult:
    shutil.rmtree(directory)
    fsync_dir(directory.parent)
    log("recording_aborted", detail=why)
    return RecoveryResult(directory.name, "removed", why)


def _regular_size(path: Path) -> int:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"{path}: not a regular file; refusing to recover it")
    return st.st_size


def _not_the_devices(
    prefix: list[ParsedFrame],
    signatures: dict[int, bytes],
    identity: DeviceIdentity,
    header_seal: str | None,
) -> str | None:
    """Why these frames are not what this device wrote (None when they are): recovery
    would otherwise put the device's signature on someone else's container."""
    first = prefix[0]
    if header_seal is None or first.seal.hex() != header_seal:
        return "frame 0 is not the header frame the custody log recorded at the start"
    meta, _ = parse_meta(first)
    key = (meta or {}).get("device") or {}
    if first.header.kind != Kind.HEADER or key.get("public_key") != base64.b64encode(
        identity.public.raw
    ).decode():
        return "the header does not name this device's key"
    rate = int(((meta or {}).get("audio") or {}).get("sample_rate") or 0)
    if len(prefix) < 2 or prefix[1].header.kind != Kind.CHECKPOINT:
        return "frame 1 is not the device's signed start checkpoint"
    checkpoint_at = 0
    check = signature_checker(identity.public)
    for n, p in enumerate(prefix):
        h = p.header
        if h.kind == Kind.CHECKPOINT:
            sig = signatures.get(p.offset, b"")
            if len(sig) != SIGNATURE_LEN or not check(
                sig, checkpoint_message(p.header_bytes, p.meta_bytes)
            ):
                return f"checkpoint frame {h.index} is not signed by this device"
            checkpoint_at = h.start_sample
        elif h.kind in (Kind.AUDIO, Kind.GAP) and checkpoint_due(
            h.start_sample, checkpoint_at, rate
        ):
            return f"frame {h.index}: the device would have signed a checkpoint before it"
        elif h.kind == Kind.END and prefix[n - 1].header.kind != Kind.CHECKPOINT:
            return "the END frame does not follow a signed checkpoint"
        elif h.kind in (Kind.RECOVERY, Kind.EXPORT):
            return f"frame {h.index} is a {Kind(h.kind).name} frame, which a recording never holds"
    return None


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
