"""What the console, the start-up and the storage advice need of each recording, cached.

`status`, `list`, the storage-low advice and the start-up's export reconciliation all ask
the same of every recording kept: its manifest's header fields and the copy numbers in its
export record. Read from the files, that is one manifest parse per recording per request
(~1 ms for a 30-minute recording on x86, ten times that on a Zero 2 W), and a device whose
recordings wait months for collection keeps a thousand of them. The answer only changes when
one of the two files does, so it is kept, per recording, against the files' identity.

The key is what an insider with write access to the state folder cannot keep while changing
the bytes: device, inode, size, mtime *and ctime* from lstat. mtime can be set back with
utime(2); ctime cannot be set from user space at all — every write, rename onto the name or
utime moves it to the current time. A file whose ctime is within `RACY_NS` of the read is not
cached (a write in the same clock tick as our read would keep every field: git's "racy
clean" rule), and the identity must be the same before and after the read. What is cached
is exactly what the reads returned (or that they failed), so a damaged or changed manifest
reads as damaged or changed, as before. Nothing here decides anything: deletion and
retention read the files themselves (collect/receipts.py).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.errors import AkkoordError
from akkoord.store.exports import read_exports
from akkoord.store.layout import EXPORTS_FILE, StateDir
from akkoord.store.manifest import MANIFEST_FILE, read_manifest

__all__ = ["Catalog", "Summary", "shared_catalog"]

RACY_NS = 2_000_000_000
#: The manifest fields a summary keeps (their values as stored, whatever their type).
FIELDS = ("recording_id", "created", "duration_seconds", "ended", "status", "simulated",
          "chain_head")

_Stamp = tuple[int, int, int, int, int, int] | None


@dataclass(frozen=True)
class Summary:
    """`doc`: the manifest's FIELDS that it has; None when there is no manifest.
    `manifest_error`: why read_manifest refused it (then `doc` is None too).
    `copy_numbers`: the export record's copy numbers, in order (read_exports' meta, None
    where a frame has none); None with `exports_error` when read_exports refused it."""

    doc: dict[str, Any] | None
    manifest_error: str | None  # the refusal's words (not the exception: its traceback
    copy_numbers: tuple[Any, ...] | None  # would keep the read's bytes alive)
    exports_error: str | None

    @property
    def copies(self) -> int | None:
        return None if self.copy_numbers is None else len(self.copy_numbers)


def _stamp(path: str) -> _Stamp:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _racy(stamp: _Stamp, now_ns: int) -> bool:
    return stamp is not None and now_ns - stamp[5] < RACY_NS


def _read(directory: Path) -> Summary:
    doc: dict[str, Any] | None = None
    merr: str | None = None
    signed: Any = None
    try:
        signed = read_manifest(directory, segments=False)  # the segment list is only walked
        if signed is not None:
            doc = {k: signed.doc[k] for k in FIELDS if k in signed.doc}
    except AkkoordError as exc:
        merr = str(exc)
    numbers: tuple[Any, ...] | None = None
    eerr: str | None = None
    try:
        # The manifest just read, not a second read (a refused one is refused again there).
        records = (read_exports(directory) if merr is not None
                   else read_exports(directory, manifest=signed))
        numbers = tuple((r.meta or {}).get("copy_number") for r in records)
    except AkkoordError as exc:
        eerr = str(exc)
    return Summary(doc, merr, numbers, eerr)


class Catalog:
    """Summaries by recording folder, each re-read when its manifest or export record is
    not the very file it was read from. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple[_Stamp, _Stamp], Summary]] = {}

    def summary(self, directory: str | os.PathLike[str]) -> Summary:
        name = os.fspath(directory)  # plain strings: pathlib costs more than the lstat
        paths = (os.path.join(name, MANIFEST_FILE), os.path.join(name, EXPORTS_FILE))
        key = (_stamp(paths[0]), _stamp(paths[1]))
        with self._lock:
            hit = self._entries.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        summary = _read(Path(name))  # anything but a refusal (an OSError) is not cached
        after = (_stamp(paths[0]), _stamp(paths[1]))
        now = time.time_ns()
        with self._lock:
            if after == key and not any(_racy(s, now) for s in key):
                self._entries[name] = (key, summary)
            else:
                self._entries.pop(name, None)
        return summary

    def summaries(self, state: StateDir) -> list[tuple[str, Summary]]:
        """Every recording in the state folder, by id; forgets folders that are gone."""
        base = os.fspath(state.recordings_dir)
        rows = [(rid, self.summary(os.path.join(base, rid))) for rid in state.recording_ids()]
        here = {os.path.join(base, rid) for rid, _ in rows}
        prefix = base + os.sep
        with self._lock:
            for name in [n for n in self._entries if n.startswith(prefix) and n not in here]:
                del self._entries[name]
        return rows

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_SHARED = Catalog()


def shared_catalog() -> Catalog:
    """The process's catalog: the start-up's reconciliation fills it, the console and the
    storage advice then find most recordings already read."""
    return _SHARED
