"""A USB stick that lies on read: a pass-through FUSE file system that flips one byte.

Writes reach the backing folder intact; reads of one named file come back with one bit
flipped at one offset - what a failing flash controller or a fake-capacity stick does. The
reader goes through the kernel's real read path (open, read, page cache, FUSE), so a test
that exports onto it exercises the device's real read-back, not a hook inside the package.

With `pull_after=N` it is a stick pulled mid-write instead: once N bytes have been written the
FUSE process kills itself, and the kernel answers every request on the mount, the one in
flight included, with ECONNABORTED / ENOTCONN, as it answers for a USB stick that is gone.

Runs as its own process (`python fusekit.py BACKING MOUNTPOINT [--flip NAME:OFFSET]
[--pull-after BYTES]`) so the FUSE loop never shares the test's interpreter; `mounted(...)`
starts and unmounts it.
Built on mfusepy (ctypes bindings for libfuse 3, Debian package fuse3 for fusermount3).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

FUSE_SKIP = "needs FUSE"  # the skip-reason prefix the allow-list knows (docs/TESTING.md)


def fuse_unavailable() -> str | None:
    """Why a FUSE mount cannot work here, or None."""
    if not os.path.exists("/dev/fuse"):
        return f"{FUSE_SKIP}: no /dev/fuse (load the fuse module, or give the container the device)"
    if shutil.which("fusermount3") is None:
        return f"{FUSE_SKIP}: no fusermount3 (apt-get install fuse3)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"{FUSE_SKIP}: mfusepy cannot load libfuse3 ({exc}; pip install mfusepy)"
    return None


@contextlib.contextmanager
def mounted(backing: Path, mountpoint: Path, flip: tuple[str, int] | None = None,
            pull_after: int | None = None) -> Iterator[Path]:
    """Mount the lying (or, with `pull_after`, the pulled) stick at `mountpoint` for the
    duration of the block."""
    backing.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, str(backing), str(mountpoint)]
    if flip is not None:
        cmd += ["--flip", f"{flip[0]}:{flip[1]}"]
    if pull_after is not None:
        cmd += ["--pull-after", str(pull_after)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not os.path.ismount(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the FUSE stick did not mount: {proc.stderr.read()}")
            time.sleep(0.02)
        yield mountpoint
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(backing: str, mountpoint: str, flip: tuple[str, int] | None,
           pull_after: int | None = None) -> None:
    import mfusepy
    from mfusepy import FuseOSError, Operations

    class LyingStick(Operations):
        use_ns = True

        def __init__(self) -> None:
            self.root = os.path.realpath(backing)
            self.written = 0

        def _p(self, path: str) -> str:
            return os.path.join(self.root, path.lstrip("/"))

        def getattr(self, path, fh=None):
            try:
                st = os.lstat(self._p(path))
            except OSError as exc:
                raise FuseOSError(exc.errno) from None
            keys = ("st_mode", "st_nlink", "st_size", "st_uid", "st_gid",
                    "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
            out = {k: getattr(st, k) for k in keys}
            for k in ("st_atime", "st_mtime", "st_ctime"):
                out[k] = out.pop(f"{k}_ns")
            return out

        def readdir(self, path, fh):
            return [".", "..", *os.listdir(self._p(path))]

        def _os(self, fn, *args):
            try:
                return fn(*args)
            except OSError as exc:
                raise FuseOSError(exc.errno or errno.EIO) from None

        def access(self, path, amode):
            return 0 if os.access(self._p(path), amode) else -errno.EACCES

        def mkdir(self, path, mode):
            return self._os(os.mkdir, self._p(path), mode)

        def rmdir(self, path):
            return self._os(os.rmdir, self._p(path))

        def unlink(self, path):
            return self._os(os.unlink, self._p(path))

        def rename(self, old, new):
            return self._os(os.rename, self._p(old), self._p(new))

        def chmod(self, path, mode):
            return self._os(os.chmod, self._p(path), mode)

        def utimens(self, path, times=None):
            if times is None:
                return self._os(os.utime, self._p(path))
            return self._os(os.utime, self._p(path), ns=tuple(times))

        def truncate(self, path, length, fh=None):
            return self._os(os.truncate, self._p(path), length)

        def create(self, path, mode, flags):
            return self._os(os.open, self._p(path), flags | os.O_CREAT, mode)

        def open(self, path, flags):
            return self._os(os.open, self._p(path), flags)

        def read(self, path, size, offset, fh):
            data = bytearray(self._os(os.pread, fh, size, offset))
            if flip is not None and os.path.basename(path) == flip[0]:
                at = flip[1] - offset
                if 0 <= at < len(data):
                    data[at] ^= 0x01
            return bytes(data)

        def write(self, path, data, offset, fh):
            self.written += len(data)
            if pull_after is not None and self.written > pull_after:
                os.kill(os.getpid(), signal.SIGKILL)  # pulled: mid-request, nothing answered
            return self._os(os.pwrite, fh, data, offset)

        def fsync(self, path, datasync, fh):
            return self._os(os.fsync, fh)

        def release(self, path, fh):
            return self._os(os.close, fh)

        def statfs(self, path):
            st = os.statvfs(self._p(path))
            return {k: getattr(st, k) for k in (
                "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree",
                "f_favail", "f_flag", "f_namemax")}

    mfusepy.FUSE(LyingStick(), mountpoint, foreground=True, nothreads=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    flip_arg = None
    if "--flip" in args:
        i = args.index("--flip")
        name, _, off = args[i + 1].rpartition(":")
        flip_arg = (name, int(off))
        del args[i : i + 2]
    pull_arg = None
    if "--pull-after" in args:
        i = args.index("--pull-after")
        pull_arg = int(args[i + 1])
        del args[i : i + 2]
    _serve(args[0], args[1], flip_arg, pull_arg)
