"""The device-wide custody log: hash-chained, every entry signed by the device.

One JSON object per line::

    {"entry": {"seq": N, "prev": <hash of entry N-1>, "time": …, "type": …, …},
     "hash": SHA-256("akkoord/v1/custody\\n" | canonical(entry)), "sig": Ed25519(head)}

where head = "akkoord/v1/custody-head\\n" | seq (8 bytes, big-endian) | hash. Every copy carries
the newest head, so copies in the parties' hands pin the device's history: rewriting the log
later would have to fork away from a head someone holds.
"""

from __future__ import annotations

import base64
import binascii
import errno
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.clock import Clock
from akkoord.errors import StorageError
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.format import CUSTODY_SIG_CONTEXT, canonical_json
from akkoord.store.keys import DeviceIdentity, DevicePublicKey
from akkoord.store.safeio import read_regular
from akkoord.store.sigcheck import signature_checker

__all__ = [
    "CustodyHead",
    "CustodyLog",
    "CustodyView",
    "RecordingHistory",
    "head_message",
    "verify_custody_log",
]

ENTRY_LABEL = b"akkoord/v1/custody\n"
ZERO_HASH = "0" * 64
MAX_LINE = 1 << 20
MAX_LOG = 1 << 30
_TAIL_CHUNK = 1 << 14  # first read from the end; lines are ~500 bytes


def entry_hash(entry: dict[str, Any]) -> bytes:
    return hashlib.sha256(ENTRY_LABEL + canonical_json(entry)).digest()


def head_message(seq: int, digest: bytes, context: bytes = CUSTODY_SIG_CONTEXT) -> bytes:
    return context + seq.to_bytes(8, "big") + digest


@dataclass(frozen=True)
class CustodyHead:
    seq: int
    hash: str
    sig: str
    device_fingerprint: str
    entry: dict[str, Any] | None = None  # the head entry itself: a copy checks it (§9)

    def to_json(self) -> dict[str, Any]:
        doc = {
            "format": "akkoord-custody-head/2",
            "seq": self.seq,
            "hash": self.hash,
            "signature": self.sig,
            "device_fingerprint": self.device_fingerprint,
        }
        if self.entry is not None:
            doc["entry"] = self.entry
        return doc


@dataclass(frozen=True)
class _Line:
    offset: int
    entry: dict[str, Any]
    hash: bytes
    sig: bytes


def _parse_line(raw: bytes, offset: int) -> _Line | None:
    """One line (without its newline) as an entry, or None when it is not one."""
    try:
        obj = json.loads(raw)
        entry = obj["entry"]
        digest = bytes.fromhex(obj["hash"])
        sig = base64.b64decode(obj["sig"], validate=True)
        if not isinstance(entry, dict) or len(digest) != 32:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return _Line(offset, entry, digest, sig)


def _parse_lines(data: bytes) -> tuple[list[_Line], int, str | None]:
    """Whole lines that parse; the offset where parsing stopped; why it stopped (None = EOF)."""
    lines: list[_Line] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + MAX_LINE)
        if nl < 0:
            return lines, pos, "incomplete last line"
        line = _parse_line(data[pos:nl], pos)
        if line is None:
            return lines, pos, f"unreadable entry at byte {pos}"
        lines.append(line)
        pos = nl + 1
    return lines, pos, None


class _Changed(Exception):
    """The file got shorter while it was read: a writer that ignores the lock cut it."""


class _Backwards:
    """The end of an open file, read backwards in chunks that double, only as far as asked.

    Appends and the head need the last entry only: what they read is the garbage after it
    (normally none), the last line and the line before it, whatever the log's length."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self.size = size
        self.start = size  # file offset of buf[0]
        self._buf = b""

    def _grow(self) -> bool:
        if self.start == 0:
            return False
        new = max(0, self.start - max(_TAIL_CHUNK, self.size - self.start))
        want = self.start - new
        got = os.pread(self._fd, want, new)
        if len(got) != want:
            raise _Changed
        self._buf = got + self._buf
        self.start = new
        return True

    def newline_before(self, pos: int) -> int:
        """Offset of the last newline before `pos`, or -1 when there is none."""
        while True:
            i = self._buf.rfind(b"\n", 0, max(0, pos - self.start))
            if i >= 0:
                return self.start + i
            if not self._grow():
                return -1

    def line_ending_at(self, nl: int) -> tuple[int, _Line | None]:
        """(where the line ending at newline `nl` starts, the entry it holds or None)."""
        begin = self.newline_before(nl) + 1
        if nl - begin >= MAX_LINE:  # the full parse would stop there: never an entry
            return begin, None
        return begin, _parse_line(self.bytes(begin, nl), begin)

    def bytes(self, begin: int, end: int) -> bytes:
        return self._buf[begin - self.start:end - self.start]


def _scan_tail(r: _Backwards) -> tuple[_Line | None, int]:
    """The last whole line that is an entry, and the offset just after it (0: there is none).
    Everything after that offset is what the full parse would stop at and cut."""
    nl = r.newline_before(r.size)
    while nl >= 0:
        begin, line = r.line_ending_at(nl)
        if line is not None:
            return line, nl + 1
        nl = begin - 1
    return None, 0


def _plausible(line: _Line, r: _Backwards) -> bool:
    """Can the last entry's own `seq` stand for the number of entries before it (what the
    full parse counts)? On every log a device writes, yes; anything odd is read in full."""
    seq = line.entry.get("seq")
    if type(seq) is not int or seq < 0 or entry_hash(line.entry) != line.hash:
        return False
    if line.offset == 0:
        return seq == 0
    _, before = r.line_ending_at(line.offset - 1)
    if before is None:
        # An unreadable line before it (bit rot, tampering): kept, and reported by the
        # full check; the entries after it are the device's (docs/DECISIONS.md).
        return True
    return before.entry.get("seq") == seq - 1 and before.hash.hex() == line.entry.get("prev")


def _read_log(path: Path) -> bytes:
    return read_regular(path, MAX_LOG, "custody log")


def _check_lines(
    path: Path, data: bytes, key: Any, context: bytes = CUSTODY_SIG_CONTEXT
) -> tuple[list[_Line], int, list[str]]:
    """All parsed lines, how many of them from the start are intact, and the findings."""
    lines, stop, why = _parse_lines(data)
    findings = []
    prev = ZERO_HASH
    good = None
    # One key, thousands of entries: validate the key once (store/sigcheck.py).
    verify = signature_checker(key) if isinstance(key, DevicePublicKey) else key.verify
    for i, ln in enumerate(lines):
        where = f"{path}: entry {i} (byte {ln.offset})"
        before = len(findings)
        if ln.entry.get("seq") != i:
            findings.append(f"{where}: sequence number {ln.entry.get('seq')!r}, expected {i}")
        if ln.entry.get("prev") != prev:
            findings.append(f"{where}: does not chain to the entry before it")
        if entry_hash(ln.entry) != ln.hash:
            findings.append(f"{where}: content does not match its hash")
        if not verify(ln.sig, head_message(i, ln.hash, context)):
            findings.append(f"{where}: signature invalid for key {key.fingerprint[:16]}")
        if good is None and len(findings) > before:
            good = i
        prev = ln.hash.hex()
    if why is not None:
        findings.append(f"{path}: {why}; {len(data) - stop} bytes after the last whole entry")
    return lines, len(lines) if good is None else good, findings


def verify_custody_log(
    path: Path, key: Any, context: bytes = CUSTODY_SIG_CONTEXT
) -> tuple[int, list[str]]:
    """Entries checked, and findings (empty when the whole log is intact). `key` has
    `verify(sig, msg)` and `fingerprint`: the device's, or the organisation's (orglog)."""
    lines, _, findings = _check_lines(Path(path), _read_log(Path(path)), key, context)
    return len(lines), findings


@dataclass
class RecordingHistory:
    """What the custody log says happened to one recording."""

    started: dict[str, Any] | None = None
    closed: dict[str, Any] | None = None  # recording_closed / recording_interrupted
    gone: dict[str, Any] | None = None  # recording_deleted / _aborted / _quarantined
    damaged: bool = False
    exports: list[dict[str, Any]] = field(default_factory=list)
    failed_exports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def header_seal(self) -> str | None:
        detail = (self.started or {}).get("detail") or {}
        seal = detail.get("header_seal")
        return seal if isinstance(seal, str) else None


_CLOSED = ("recording_closed", "recording_interrupted")
_GONE = ("recording_deleted", "recording_aborted", "recording_quarantined")


@dataclass
class CustodyView:
    """The intact prefix of the log, indexed by recording (for recovery and the state check).
    Entries after the first bad one are not believed."""

    entries: list[dict[str, Any]]
    hashes: list[str]
    findings: list[str]
    recordings: dict[str, RecordingHistory]

    @classmethod
    def read(cls, path: Path, key: Any, context: bytes = CUSTODY_SIG_CONTEXT) -> CustodyView:
        path = Path(path)
        try:
            data = _read_log(path)
        except FileNotFoundError:
            return cls([], [], [], {})
        lines, good, findings = _check_lines(path, data, key, context)
        entries = [ln.entry for ln in lines[:good]]
        recordings: dict[str, RecordingHistory] = {}
        for e in entries:
            rid = e.get("recording_id")
            if not isinstance(rid, str):
                continue
            h = recordings.setdefault(rid, RecordingHistory())
            kind = e.get("type")
            if kind == "recording_started" and h.started is None:
                h.started = e
            elif kind in _CLOSED:
                h.closed = e
            elif kind in _GONE:
                h.gone = e
            elif kind == "recording_damaged":
                h.damaged = True
            elif kind == "export":
                h.exports.append(e)
            elif kind in ("export_failed", "export_reconciled"):  # no export frame follows
                h.failed_exports.append(e)
        return cls(entries, [ln.hash.hex() for ln in lines[:good]], findings, recordings)

    def history(self, recording_id: str) -> RecordingHistory:
        return self.recordings.get(recording_id) or RecordingHistory()


def new_entry(
    seq: int, prev: str, time: dict[str, Any], kind: str, recording_id: str | None,
    detail: dict[str, Any],
) -> dict[str, Any]:
    entry: dict[str, Any] = {"seq": seq, "prev": prev, "time": time, "type": kind}
    if recording_id is not None:
        entry["recording_id"] = recording_id
    if detail:
        entry["detail"] = detail
    return entry


def signed_line(
    entry: dict[str, Any], signer: Any, context: bytes = CUSTODY_SIG_CONTEXT
) -> tuple[bytes, bytes, bytes]:
    """(hash, signature, the line with its newline): one entry exactly as append writes it."""
    digest = entry_hash(entry)
    sig = signer.sign(head_message(entry["seq"], digest, context))
    line = canonical_json(
        {"entry": entry, "hash": digest.hex(), "sig": base64.b64encode(sig).decode()}
    )
    return digest, sig, line + b"\n"


# How many set-aside files one cut length may have (`.tail-<offset>`, then `.1`, `.2`, ...).
ASIDE_NAMES = 100


class CustodyLog:
    """Append-only; a torn last line (power loss mid-append) is cut on open."""

    def __init__(
        self, path: Path, identity: DeviceIdentity, clock: Clock,
        context: bytes = CUSTODY_SIG_CONTEXT,
    ) -> None:
        self.path = Path(path)
        self._identity = identity
        self._clock = clock
        self._context = context  # the organisation's own log signs under its own label

    def _lock(self, fd: int) -> None:
        # CLI commands (delete, export) may append while the daemon runs.
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _open(self) -> int:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o640)
        if created:
            fsync_dir(self.path.parent)
        return fd

    def _tail_state(self, fd: int) -> tuple[int, str]:
        """(next seq, prev hash), cutting an incomplete or unreadable tail.

        Reads the log from its end only, so an append costs the same at entry 10 and at entry
        100,000; a tail that looks odd (`_plausible`) is read from the start, as before."""
        size = os.fstat(fd).st_size
        if not size:
            return 0, ZERO_HASH
        r = _Backwards(fd, size)
        try:
            last, end = _scan_tail(r)
            if last is not None and not _plausible(last, r):
                return self._full_tail_state(fd, size)
        except _Changed:
            return self._full_tail_state(fd, size)
        if end < size:
            self._set_aside(fd, end, r.bytes(end, size))
        if last is None:
            return 0, ZERO_HASH
        return last.entry["seq"] + 1, last.hash.hex()

    def _full_tail_state(self, fd: int, size: int) -> tuple[int, str]:
        data = os.pread(fd, size, 0)
        lines, stop, why = _parse_lines(data)
        if why is not None:
            self._set_aside(fd, stop, data[stop:])
        if not lines:
            return 0, ZERO_HASH
        return len(lines), lines[-1].hash.hex()

    def _set_aside(self, fd: int, stop: int, tail: bytes) -> None:
        """Keep what cannot be parsed next to the log rather than destroying it; then cut.

        A name already there (an earlier crash cut the log at the same length) is never
        overwritten or followed: the next free `.tail-<offset>.<n>` is used instead."""
        base = f"{self.path.name}.tail-{stop}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        for n in range(ASIDE_NAMES):
            aside = self.path.with_name(f"{base}.{n}" if n else base)
            try:
                afd = os.open(aside, flags, 0o640)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, f"{ASIDE_NAMES} names for its torn tail are "
                                  "taken", str(self.path.with_name(base)))
        try:
            write_all(afd, tail, str(aside))
            fsync_fd(afd, str(aside))
        finally:
            os.close(afd)
        os.ftruncate(fd, stop)
        fsync_fd(fd, str(self.path))
        fsync_dir(self.path.parent)

    def append(self, kind: str, recording_id: str | None = None, **detail: Any) -> CustodyHead:
        fd = self._open()
        try:
            self._lock(fd)
            seq, prev = self._tail_state(fd)
            entry = new_entry(seq, prev, self._clock.wall().to_json(), kind, recording_id, detail)
            digest, sig, line = signed_line(entry, self._identity, self._context)
            write_all(fd, line, str(self.path))
            fsync_fd(fd, str(self.path))
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(exc.errno or errno.EIO, f"custody log {self.path}: {exc}") from exc
        finally:
            os.close(fd)
        return CustodyHead(
            seq, digest.hex(), base64.b64encode(sig).decode(), self._identity.fingerprint, entry
        )

    def head(self) -> CustodyHead | None:
        """The last entry (a torn tail is skipped, not cut), read from the end of the log."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # no append cuts or writes while the end is read
            last = self._last(fd)
        finally:
            os.close(fd)
        if last is None:
            return None
        return CustodyHead(
            last[0],
            last[1].hash.hex(),
            base64.b64encode(last[1].sig).decode(),
            self._identity.fingerprint,
            last[1].entry,
        )

    def _last(self, fd: int) -> tuple[int, _Line] | None:
        """(seq, line) of the last entry, from the end; an odd end is read whole."""
        r = _Backwards(fd, os.fstat(fd).st_size)
        try:
            last, _ = _scan_tail(r)
            if last is None:
                return None
            if _plausible(last, r):
                return last.entry["seq"], last
        except _Changed:  # cut by a writer that ignores the lock
            pass
        lines = _parse_lines(os.pread(fd, os.fstat(fd).st_size, 0))[0]
        return (len(lines) - 1, lines[-1]) if lines else None

    def entries(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for ln in _parse_lines(data)[0]:
            yield ln.entry
