"""The collection package: every recording the organisation has not receipted, on a stick.

Layout on the stick (FORMAT.md §12)::

    akkoord-collect/token.json                       the collection token (the organisation's)
    akkoord-collect/receipts/*.json                  receipts the archive wrote back
    akkoord-collect/<device fp[:16]>/device.json     device public key (+ certificate)
    akkoord-collect/<device fp[:16]>/custody.log     the custody log, as of this collection
    akkoord-collect/<device fp[:16]>/recordings/<id>/recording.akr, keys.json,
                                                      manifest.json, manifest.sig, exports.akr

Only what is already encrypted and signed leaves the device: never plaintext, never a content
key (keys.json holds the content key wrapped to the organisation's public keys only).

Each recording is written to ``<id>.partial``, every file fsynced, its page cache dropped,
read back and compared byte for byte with the device's file, and only then renamed to
``<id>`` (the parent fsynced after) and logged (``archive_collected``, on a
second thread, so the SD card's fsync overlaps the next recording's writes). A stick pulled
or full mid-way leaves at most one ``.partial`` folder, which the next collection or ingest
ignores; nothing on the device changes except the custody entries for recordings that made
it whole.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.errors import FormatError, StorageError
from akkoord.fsutil import atomic_write, fsync_dir
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import CONTAINER_FILE, EXPORTS_FILE, WRAPPED_KEYS_FILE, StateDir
from akkoord.store.manifest import MANIFEST_FILE, SIGNATURE_FILE, read_manifest
from akkoord.store.safeio import open_regular

__all__ = [
    "COLLECT_DIR",
    "RECORDING_FILES",
    "CollectResult",
    "collect_to_stick",
    "device_folder",
    "pending_recordings",
]

COLLECT_DIR = "akkoord-collect"
TOKEN_FILE = "token.json"
RECEIPTS_DIR = "receipts"
DEVICE_FILE = "device.json"
CUSTODY_FILE = "custody.log"
CERT_FILE = "device.cert.json"
RECORDING_FILES = (CONTAINER_FILE, WRAPPED_KEYS_FILE, MANIFEST_FILE, SIGNATURE_FILE, EXPORTS_FILE)
CHUNK = 1 << 20
Progress = Callable[[int, int, str], None]  # (recordings done, of total, recording id)


@dataclass
class CollectResult:
    collected: list[str] = field(default_factory=list)  # whole on the stick, checked, logged
    already: list[str] = field(default_factory=list)  # found whole on the stick from before
    failed: dict[str, str] = field(default_factory=dict)
    bytes_written: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def device_folder(stick: Path, device_fingerprint: str) -> Path:
    return Path(stick) / COLLECT_DIR / device_fingerprint[:16]


def pending_recordings(state: StateDir, archived: set[str]) -> list[str]:
    """Closed recordings not yet receipted (open ones are recovery's business first)."""
    out = []
    for rid in state.recording_ids():
        if rid in archived:
            continue
        if (state.recording_dir(rid) / MANIFEST_FILE).exists():
            out.append(rid)
    return out


def _fill(fd: int, buf: memoryview) -> int:
    """Read into `buf` until it is full or the file ends; bytes read."""
    got = 0
    while got < len(buf):
        n = os.readv(fd, [buf[got:]])
        if n == 0:
            break
        got += n
    return got


class _Buffers:
    """Two reusable 1 MiB buffers: reading into them avoids a fresh 1 MiB allocation (and
    its page faults) per chunk, which costs more than the memcmp it feeds."""

    def __init__(self) -> None:
        self.a, self.b = bytearray(CHUNK), bytearray(CHUNK)


def _copy_file(src: Path, dst: Path, bufs: _Buffers) -> int:
    """Copy, fsync, and drop the written pages so the read-back reads the stick."""
    total = 0
    view = memoryview(bufs.a)
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            while n := _fill(sfd, view):
                out = view[:n]
                while out:
                    out = out[os.write(dfd, out):]
                total += n
            os.fsync(dfd)
            with contextlib.suppress(OSError, AttributeError):
                os.posix_fadvise(dfd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(dfd)
    finally:
        os.close(sfd)
    return total


def _read_back_equal(src: Path, dst: Path, bufs: _Buffers | None = None) -> bool:
    """Compare the stick's copy, read from the stick, with the device's file, byte for byte.
    (A comparison, not a hash: the source is still in the page cache, and memcmp is free.)"""
    bufs = bufs or _Buffers()
    va, vb = memoryview(bufs.a), memoryview(bufs.b)
    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    dfd = os.open(dst, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        with contextlib.suppress(OSError, AttributeError):
            os.posix_fadvise(dfd, 0, 0, os.POSIX_FADV_DONTNEED)
        while True:
            na, nb = _fill(sfd, va), _fill(dfd, vb)
            if na != nb:
                return False
            # bytearray == bytearray is one memcmp; a memoryview comparison is not.
            same = bufs.a == bufs.b if na == CHUNK else bufs.a[:na] == bufs.b[:nb]
            if not same:
                return False
            if na == 0:
                return True
    finally:
        os.close(sfd)
        os.close(dfd)


def _files_of(directory: Path) -> list[str]:
    return [n for n in RECORDING_FILES if (directory / n).exists()]


def _same(src: Path, dst: Path, bufs: _Buffers) -> bool:
    """Is the folder already on the stick exactly the device's? (Nothing on the stick is
    trusted: a FIFO or link planted there is "not the same" and gets rewritten.)"""
    names = _files_of(src)
    if sorted(names) != sorted(p.name for p in dst.iterdir()):
        return False
    for n in names:
        try:
            with open_regular(dst / n, "collected file"):
                pass
        except (FormatError, OSError):
            return False
    return all(_read_back_equal(src / n, dst / n, bufs) for n in names)


def _collect_one(src: Path, recordings: Path, rid: str, bufs: _Buffers) -> int:
    final = recordings / rid
    partial = recordings / f"{rid}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    written = 0
    names = _files_of(src)
    for name in names:
        # fsync of a new file also writes its directory entry on the file systems a stick
        # may have (ext4 commits the create with it; on vfat/exfat the entry *is* the inode),
        # so the folder needs no fsync of its own; the rename below does.
        written += _copy_file(src / name, partial / name, bufs)
    for name in names:  # read back from the stick, not from the page cache
        if not _read_back_equal(src / name, partial / name, bufs):
            raise StorageError(errno.EIO, f"{partial / name}: read back differs from what "
                               "was written (a bad stick?)")
    if final.exists():  # an earlier, different or damaged copy: replaced only now
        shutil.rmtree(final)
    os.rename(partial, final)
    fsync_dir(recordings)
    return written


def collect_to_stick(
    state: StateDir,
    identity: DeviceIdentity,
    custody: CustodyLog,
    stick: Path,
    *,
    token: dict[str, Any],
    archived: set[str],
    certificate: bytes | None = None,
    progress: Progress | None = None,
) -> CollectResult:
    """Write the package. Stops at the first storage error (a pulled or full stick): what is
    whole on the stick by then is logged, the rest stays pending on the device."""
    result = CollectResult()
    base = device_folder(stick, identity.fingerprint)
    recordings = base / "recordings"
    pending = pending_recordings(state, archived)
    try:
        recordings.mkdir(parents=True, exist_ok=True)
        device_doc = {"type": "akkoord-collection-device", "version": 2,
                      "device": identity.public.to_json()}
        if certificate is not None:
            device_doc["certificate"] = json.loads(certificate)
        atomic_write(base / DEVICE_FILE, json.dumps(device_doc, indent=1).encode() + b"\n")
    except OSError as exc:
        result.failed["*"] = f"cannot write to the stick: {exc.strerror or exc}"
        return result
    # Custody entries go to the SD card on a second thread while the next recording is
    # written to the stick; one thread keeps them in order.
    logged: list[tuple[str, Future[Any]]] = []
    bufs = _Buffers()  # one pair for the whole collection
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="akkoord-custody") as log:
        for i, rid in enumerate(pending):
            src = state.recording_dir(rid)
            if progress:
                progress(i, len(pending), rid)
            try:
                if (recordings / rid).is_dir() and _same(src, recordings / rid, bufs):
                    result.already.append(rid)
                    continue
                result.bytes_written += _collect_one(src, recordings, rid, bufs)
            except OSError as exc:
                result.failed[rid] = f"{exc.strerror or exc}"
                for later in pending[i + 1:]:  # a stick that failed once is not trusted further
                    result.failed[later] = "not collected: the stick failed before it"
                break
            signed = read_manifest(src, segments=False)
            logged.append((rid, log.submit(
                custody.append, "archive_collected", rid, token_serial=token.get("serial"),
                chain_head=signed.doc.get("chain_head") if signed else None,
                stick_path=str(stick))))
    for rid, fut in logged:
        try:
            fut.result()
            result.collected.append(rid)
        except OSError as exc:  # on the stick, but not logged: not counted as collected
            result.failed[rid] = f"custody log: {exc}"
    with contextlib.suppress(OSError):  # the log as of now, for the archive's custody checks
        atomic_write(base / CUSTODY_FILE, state.custody_path.read_bytes())
    if progress:
        progress(len(pending), len(pending), "")
    return result
