"""One copy for the parties, as the device makes it: logged before, recorded after.

Order matters for the custody story: the custody entry is written *before* the copy, so the
head the copy carries already includes its own export; the recording's export frame is
appended once the copy has been read back and verified on the stick.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from akkoord.clock import Clock
from akkoord.export.package import CopyResult, write_copy
from akkoord.store.custody import CustodyLog
from akkoord.store.exports import append_export, read_exports
from akkoord.store.keys import ContentKeys, DeviceIdentity

__all__ = ["export_copy", "stick_id"]


def stick_id(path: Path) -> str | None:
    """A hash of the file system's id: which stick, without keeping its serial number."""
    try:
        fsid = os.statvfs(path).f_fsid
    except OSError:
        return None
    return hashlib.sha256(b"akkoord/v1/stick\0" + str(fsid).encode()).hexdigest()


def export_copy(
    directory: Path,
    keys: ContentKeys,
    target: Path,
    *,
    identity: DeviceIdentity,
    clock: Clock,
    custody: CustodyLog,
    progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """`progress(samples_written)` is called as the audio goes out; it may raise to abandon
    the copy (the stick was pulled), which is then logged as failed and removed."""
    directory = Path(directory)
    rid = directory.name
    number = len(read_exports(directory)) + 1
    sid = stick_id(target)
    head = custody.append("export", rid, copy_number=number, stick_id_sha256=sid)
    try:
        result = write_copy(
            directory,
            keys,
            target,
            copy_number=number,
            made_by="device",
            clock=clock,
            device_key=identity.public,
            custody_head=head.to_json(),
            progress=progress,
        )
    except Exception as exc:
        custody.append(
            "export_failed", rid, copy_number=number, stick_id_sha256=sid, error=str(exc)[:300]
        )
        raise
    append_export(directory, identity, clock, copy_number=number, stick_id_sha256=sid)
    return result
