"""Files that must appear whole: temp file, fsync, rename, fsync the directory.

fsync errors are fatal for the file concerned (fsyncgate): they raise StorageError and are
never retried; a later fsync that "succeeds" proves nothing about the lost pages.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from akkoord.errors import StorageError

__all__ = ["atomic_write", "fsync_dir", "fsync_fd", "write_all"]


def fsync_fd(fd: int, where: str) -> None:
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(
            exc.errno or errno.EIO, f"fsync failed for {where}: {exc.strerror}"
        ) from exc


def fsync_dir(path: Path) -> None:
    """Make a create/rename/unlink in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fsync_fd(fd, f"directory {path}")
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes | memoryview, where: str) -> None:
    """os.write until everything is written; short writes happen on full disks and pipes."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except OSError as exc:
            raise StorageError(
                exc.errno or errno.EIO, f"write failed for {where}: {exc.strerror}"
            ) from exc
        if n == 0:
            raise StorageError(errno.EIO, f"write made no progress for {where}")
        view = view[n:]


def atomic_write(path: Path, data: bytes, mode: int = 0o644, *, exclusive: bool = False) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one.

    With `exclusive`, refuse to replace an existing file (keys must never be overwritten).
    """
    path = Path(path)
    if exclusive and path.exists():
        raise FileExistsError(errno.EEXIST, f"{path} already exists; refusing to overwrite it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen or narrow what we asked for
        write_all(fd, data, str(path))
        fsync_fd(fd, str(path))
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        if exclusive:
            # link() fails if the target exists: no window in which a key could be replaced.
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
