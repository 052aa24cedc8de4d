"""The custody log as the console reads it, kept between requests (issue 11).

The log is never cut: a device that records four times a day for five years holds some
40,000 entries (~20 MB). `CustodyLog.entries` parses all of them, and the console's `log`,
`head CUSTODY_HEAD` and `list` each did so per request. This index parses each line once:
it keeps where every line of the parseable prefix starts, whether every entry's "seq" is its
position, and the ids of recordings the log says were collected; a request then reads only
the lines it answers with.

It answers exactly as a fresh parse would (`_parse_lines`: the whole lines that parse, up
to the first that does not). Between requests the log may have been appended to — or
changed by an insider with write access to the state folder. So the bytes already indexed
are hashed again whenever the file's identity (inode, size, mtime, ctime from lstat; see
store/catalog.py for why ctime) is not the one last seen: only an unchanged prefix is kept,
anything else is parsed again from the start. Hashing is ~50 times cheaper than parsing, and
an unchanged file costs one lstat.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from akkoord.store import catalog
from akkoord.store.custody import _parse_lines

__all__ = ["CustodyIndex"]

COLLECTED_TYPE = "archive_collected"
_READ = 1 << 20


class CustodyIndex:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._reset(None)

    def _reset(self, ino: tuple[int, int] | None) -> None:
        self._ino = ino
        self._stamp: tuple[int, ...] | None = None
        self._end = 0  # bytes parsed: the offset after the last whole line that parsed
        self._hash = hashlib.sha256()  # of the bytes before _end
        self._offsets = array("Q")  # where each parsed line starts
        self._regular = True  # every entry's "seq" is an int equal to its position
        self._collected: set[str] = set()

    # -- keeping up with the file ------------------------------------------------------------

    def _refresh(self) -> None:
        """Bring the index up to the file. Opened as `CustodyLog.entries` opens it."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._reset(None)
            return
        if _stamp(st) == self._stamp:
            return
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            self._reset(None)
            return
        with f:
            fd = f.fileno()
            st = os.fstat(fd)  # the file read, should the name have moved meanwhile
            same = (self._ino == (st.st_dev, st.st_ino) and st.st_size >= self._end
                    and self._prefix_hash(fd) == self._hash.digest())
            if not same:
                self._reset((st.st_dev, st.st_ino))
            start = self._end
            tail = _pread_all(fd, st.st_size - start, start)
        self._index(tail, start)
        # Taken as seen only when no write can have landed in the same clock tick as the
        # read (the racy-clean rule, store/catalog.py); otherwise hashed again next time.
        if time.time_ns() - st.st_ctime_ns >= catalog.RACY_NS:
            self._stamp = _stamp(st)

    def _prefix_hash(self, fd: int) -> bytes:
        h = hashlib.sha256()
        pos = 0
        while pos < self._end:
            chunk = os.pread(fd, min(_READ, self._end - pos), pos)
            if not chunk:
                return b""
            h.update(chunk)
            pos += len(chunk)
        return h.digest()

    def _index(self, data: bytes, base: int) -> None:
        lines, stop, _ = _parse_lines(data)
        for ln in lines:
            n = len(self._offsets)
            self._offsets.append(base + ln.offset)
            seq = ln.entry.get("seq")
            if self._regular and not (type(seq) is int and seq == n):
                self._regular = False
            if (ln.entry.get("type") == COLLECTED_TYPE
                    and isinstance(ln.entry.get("recording_id"), str)):
                self._collected.add(ln.entry["recording_id"])
        self._hash.update(data[:stop])
        self._end = base + stop

    # -- answers ---------------------------------------------------------------------------

    def _lines(self, first: int, last: int) -> list[dict[str, Any]]:
        """Entries of parsed lines first..last-1, read again from the file."""
        if first >= last:
            return []
        a = self._offsets[first]
        b = self._offsets[last] if last < len(self._offsets) else self._end
        with open(self.path, "rb") as f:
            data = _pread_all(f.fileno(), b - a, a)
        lines, _, _ = _parse_lines(data)
        if len(lines) != last - first:  # changed under us since the refresh
            raise _Changed
        return [ln.entry for ln in lines]

    def _answer(self, fn: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
        with self._lock:
            for _ in range(3):
                try:
                    self._refresh()
                    return fn()
                except _Changed:
                    self._stamp = None
        return fallback()  # a log rewritten under every try: read as the plain parse does

    def tail(self, limit: int, entries: Callable[[], Iterator[dict[str, Any]]]
             ) -> list[dict[str, Any]]:
        """The last `limit` entries (`entries`: the plain parse, for what the index cannot
        answer)."""
        def fn() -> list[dict[str, Any]]:
            n = len(self._offsets)
            return self._lines(max(0, n - limit), n)
        return self._answer(fn, lambda: list(entries())[-limit:])

    def since(self, since: int, limit: int, entries: Callable[[], Iterator[dict[str, Any]]]
              ) -> list[dict[str, Any]]:
        """The first `limit` entries whose int(seq) >= since, as the console filters them."""
        def slow() -> list[dict[str, Any]]:
            return [e for e in entries() if int(e.get("seq", -1)) >= since][:limit]

        def fn() -> list[dict[str, Any]]:
            if not self._regular:
                return slow()
            n = len(self._offsets)
            first = min(max(since, 0), n)
            return self._lines(first, min(n, first + limit))
        return self._answer(fn, slow)

    def at(self, seq: int, entries: Callable[[], Iterator[dict[str, Any]]]
           ) -> dict[str, Any] | None:
        """The first entry whose "seq" equals `seq`, or None."""
        def slow() -> dict[str, Any] | None:
            return next((e for e in entries() if e.get("seq") == seq), None)

        def fn() -> dict[str, Any] | None:
            if not self._regular:
                return slow()
            if not 0 <= seq < len(self._offsets):
                return None
            return self._lines(seq, seq + 1)[0]
        return self._answer(fn, slow)

    def collected(self, entries: Callable[[], Iterator[dict[str, Any]]]) -> set[str]:
        """Ids of recordings an `archive_collected` entry names."""
        def slow() -> set[str]:
            return {e["recording_id"] for e in entries() if e.get("type") == COLLECTED_TYPE
                    and isinstance(e.get("recording_id"), str)}
        return self._answer(lambda: set(self._collected), slow)


class _Changed(Exception):
    """The file changed between the refresh and the read of the answer's lines."""


def _stamp(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    parts = []
    while size > 0:
        chunk = os.pread(fd, min(size, 1 << 24), offset)
        if not chunk:
            break
        parts.append(chunk)
        offset += len(chunk)
        size -= len(chunk)
    return b"".join(parts)
