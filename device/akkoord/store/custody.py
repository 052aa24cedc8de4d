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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.clock import Clock
from akkoord.errors import StorageError
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.format import CUSTODY_SIG_CONTEXT, canonical_json
from akkoord.store.keys import DeviceIdentity, DevicePublicKey

__all__ = ["CustodyHead", "CustodyLog", "head_message", "verify_custody_log"]

ENTRY_LABEL = b"akkoord/v1/custody\n"
ZERO_HASH = "0" * 64
MAX_LINE = 1 << 20


def entry_hash(entry: dict[str, Any]) -> bytes:
    return hashlib.sha256(ENTRY_LABEL + canonical_json(entry)).digest()


def head_message(seq: int, digest: bytes) -> bytes:
    return CUSTODY_SIG_CONTEXT + seq.to_bytes(8, "big") + digest


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
    end: int
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
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            return lines, pos, f"unreadable entry at byte {pos}"
        lines.append(_Line(pos, nl + 1, entry, digest, sig))
        pos = nl + 1
    return lines, pos, None


def verify_custody_log(path: Path, key: DevicePublicKey) -> tuple[int, list[str]]:
    """Entries checked, and findings (empty when the whole log is intact)."""
    data = Path(path).read_bytes()
    lines, stop, why = _parse_lines(data)
    findings = []
    prev = ZERO_HASH
    for i, ln in enumerate(lines):
        where = f"{path}: entry {i} (byte {ln.offset})"
        if ln.entry.get("seq") != i:
            findings.append(f"{where}: sequence number {ln.entry.get('seq')!r}, expected {i}")
        if ln.entry.get("prev") != prev:
            findings.append(f"{where}: does not chain to the entry before it")
        if entry_hash(ln.entry) != ln.hash:
            findings.append(f"{where}: content does not match its hash")
        if not key.verify(ln.sig, head_message(i, ln.hash)):
            findings.append(f"{where}: signature invalid for device {key.fingerprint[:16]}")
        prev = ln.hash.hex()
    if why is not None:
        findings.append(f"{path}: {why}; {len(data) - stop} bytes after the last whole entry")
    return len(lines), findings


class CustodyLog:
    """Append-only; a torn last line (power loss mid-append) is cut on open."""

    def __init__(self, path: Path, identity: DeviceIdentity, clock: Clock) -> None:
        self.path = Path(path)
        self._identity = identity
        self._clock = clock

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
            sig = self._identity.sign(head_message(seq, digest))
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
