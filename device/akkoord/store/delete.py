"""Deletion after retention: crypto-shredding first, then the files, logged in custody.

Destroying the wrapped keys is the point of no return: without them no copy of the container
(backups included) can be decrypted by the device's recipients' wrapped copies *in this
folder*. Flash storage may keep old blocks, so the wrapped keys are overwritten in place
before unlinking; an organisation that archived the recording elsewhere keeps its own copy.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from akkoord.errors import UsageError
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.custody import CustodyLog
from akkoord.store.layout import WRAPPED_KEYS_FILE, StateDir
from akkoord.store.manifest import read_manifest

__all__ = ["delete_recording"]


def delete_recording(
    state: StateDir,
    recording_id: str,
    custody: CustodyLog,
    reason: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """`extra` goes into the custody entry too (who asked, whether it was forced)."""
    directory = state.recording_dir(recording_id)
    if not directory.is_dir():
        raise UsageError(f"no recording {recording_id} in {state.recordings_dir}")
    signed = read_manifest(directory, segments=False)
    if signed is None:
        raise UsageError(
            f"recording {recording_id} is still open (no manifest): let recovery close it "
            "first (`akkoord recover`)"
        )
    keys = directory / WRAPPED_KEYS_FILE
    if keys.exists():
        size = keys.stat().st_size
        fd = os.open(keys, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            write_all(fd, os.urandom(size), str(keys))
            fsync_fd(fd, str(keys))
        finally:
            os.close(fd)
        os.unlink(keys)
        fsync_dir(directory)
    custody.append(
        "recording_deleted",
        recording_id,
        reason=reason,
        chain_head=signed.doc.get("chain_head"),
        **(extra or {}),
    )
    shutil.rmtree(directory)
    fsync_dir(state.recordings_dir)
