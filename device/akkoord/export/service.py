"""One copy for the parties, as the device makes it: logged before, recorded after.

Order matters for the custody story: the custody entry is written *before* the copy, so the
head the copy carries already includes its own export; the recording's export frame is
appended once the copy has been read back and verified on the stick.
"""

from __future__ import annotations

import contextlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path

from akkoord.clock import Clock
from akkoord.errors import KeyMaterialError
from akkoord.export.package import CopyResult, write_copy
from akkoord.fsutil import atomic_write
from akkoord.store.custody import CustodyLog
from akkoord.store.exports import append_export, read_exports
from akkoord.store.keys import ContentKeys, DeviceIdentity
from akkoord.store.safeio import read_regular

__all__ = ["export_copy", "stick_id", "stick_key"]


STICK_KEY_FILE = "stick-id.key"


def stick_key(keys_dir: Path) -> bytes:
    """The device secret stick ids are keyed with (made on first use, 0600, never exported)."""
    path = Path(keys_dir) / STICK_KEY_FILE
    try:
        data = read_regular(path, 64, "stick-id key")
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            atomic_write(path, os.urandom(32), 0o600, exclusive=True)
        data = read_regular(path, 64, "stick-id key")
    if len(data) != 32:
        raise KeyMaterialError(f"{path}: a stick-id key has 32 bytes, not {len(data)}")
    return data


def stick_id(path: Path, key: bytes) -> str | None:
    """Which stick, as HMAC(device secret, file system id): the same stick gives the same id
    on this device, but the id links to nothing without the secret (FORMAT.md §6)."""
    try:
        fsid = os.statvfs(path).f_fsid
    except OSError:
        return None
    return hmac.new(key, b"akkoord/v2/stick\0" + str(fsid).encode(), "sha256").hexdigest()


def export_copy(
    directory: Path,
    keys: ContentKeys,
    target: Path,
    *,
    identity: DeviceIdentity,
    clock: Clock,
    custody: CustodyLog,
    stick_secret: bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> CopyResult:
    """`progress(samples_written)` is called as the audio goes out; it may raise to abandon
    the copy (the stick was pulled), which is then logged as failed and removed."""
    directory = Path(directory)
    rid = directory.name
    number = len(read_exports(directory)) + 1
    secret = stick_secret if stick_secret is not None else stick_key(custody.path.parent / "keys")
    sid = stick_id(target, secret)
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
    append_export(
        directory, identity, clock, copy_number=number, stick_id_sha256=sid, custody_seq=head.seq
    )
    return result
