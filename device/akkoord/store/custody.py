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


def _parse_lines(data: bytes) -> tuple[list[_Line], int, str | None]:
    """Whole lines that parse; the offset where parsing stopped; why it stopped (None = EOF)."""
    lines: list[_Line] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos, pos + MAX_LINE)
        if nl < 0:
            return lines, pos, "incomplete last line"
        try:
            obj = json.loads(data[pos:nl])
            entry = obj["entry"]
            digest = bytes.fromhex(obj["hash"])
            sig = base64.b64decode(obj["sig"], validate=True)
            if not isinstance(entry, dict) or len(digest) != 32:
                raise ValueError
        except (
            ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError
        ):
            return lines, pos, f"unreadable entry at byte {pos}"
        lines.append(_Line(pos, entry, digest, sig))
        pos = nl + 1
    return lines, pos, None


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
        """(next seq, prev hash), cutting an incomplete or unreadable tail."""
        size = os.fstat(fd).st_size
        data = os.pread(fd, size, 0) if size else b""
        lines, stop, why = _parse_lines(data)
        if why is not None:
            # Keep what cannot be parsed next to the log rather than destroying it.
            aside = self.path.with_name(f"{self.path.name}.tail-{stop}")
            with open(aside, "wb") as f:
                f.write(data[stop:])
                f.flush()
                os.fsync(f.fileno())
            os.ftruncate(fd, stop)
            fsync_fd(fd, str(self.path))
            fsync_dir(self.path.parent)
        if not lines:
            return 0, ZERO_HASH
        return len(lines), lines[-1].hash.hex()

    def append(self, kind: str, recording_id: str | None = None, **detail: Any) -> CustodyHead:
        fd = self._open()
        try:
            self._lock(fd)
            seq, prev = self._tail_state(fd)
            entry: dict[str, Any] = {
                "seq": seq,
                "prev": prev,
                "time": self._clock.wall().to_json(),
                "type": kind,
            }
            if recording_id is not None:
                entry["recording_id"] = recording_id
            if detail:
                entry["detail"] = detail
            digest = entry_hash(entry)
            sig = self._identity.sign(head_message(seq, digest, self._context))
            line = canonical_json(
                {"entry": entry, "hash": digest.hex(), "sig": base64.b64encode(sig).decode()}
            )
            write_all(fd, line + b"\n", str(self.path))
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
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        lines, _, _ = _parse_lines(data)
        if not lines:
            return None
        last = lines[-1]
        return CustodyHead(
            len(lines) - 1,
            last.hash.hex(),
            base64.b64encode(last.sig).decode(),
            self._identity.fingerprint,
            last.entry,
        )

    def entries(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for ln in _parse_lines(data)[0]:
            yield ln.entry
