"""Console framing (docs/CONSOLE.md §2): one frame per line, checksummed, bounded.

    frame = "@ak1 " payload " " crc "\\n"

`payload` is a JSON object in compact form (no raw newlines: JSON escapes them), `crc` is
CRC-32 (zlib) over ``"@ak1 " | payload`` as 8 lowercase hex digits. A line that does not start
with the magic is *noise* (line noise, a terminal typing, a wrong baud rate) and is never
parsed; a line with the magic but a wrong checksum or a non-object payload is a *bad frame*.
Either way nothing runs: at 2^-32 per line, noise never becomes a command.

`LineReader` is pure: bytes and the time they arrived in, lines and complaints out. It keeps at
most `max_line` bytes, so a peer that never sends a newline costs a bounded buffer; a partial
line older than `idle_timeout` seconds (no byte since) is dropped, so a disconnect mid-command
leaves nothing behind to be glued onto the next line.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEVICE_MAX_LINE",
    "HOST_MAX_LINE",
    "IDLE_TIMEOUT_S",
    "MAGIC",
    "PROTOCOL_VERSION",
    "BadFrame",
    "Frame",
    "LineReader",
    "Noise",
    "Overlong",
    "TimedOut",
    "decode_line",
    "encode_frame",
]

PROTOCOL_VERSION = 1
MAGIC = b"@ak1 "
DEVICE_MAX_LINE = 16 * 1024  # a request: big enough for a certificate plus an admin's proof
HOST_MAX_LINE = 4 * 1024 * 1024  # an answer (a long `list` or `log`)
IDLE_TIMEOUT_S = 2.0
_CRC_LEN = 8


@dataclass(frozen=True, slots=True)
class Frame:
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Noise:
    """A line without the magic: ignored (the device may answer with a rate-limited hint)."""

    length: int
    printable: bool  # looks like someone typing at a terminal


@dataclass(frozen=True, slots=True)
class BadFrame:
    reason: str


@dataclass(frozen=True, slots=True)
class Overlong:
    """A line went past the limit; everything up to its newline is discarded."""

    limit: int


@dataclass(frozen=True, slots=True)
class TimedOut:
    """A partial line was dropped after the idle timeout."""

    length: int


Item = Frame | Noise | BadFrame | Overlong | TimedOut


def _crc(data: bytes) -> bytes:
    return b"%08x" % zlib.crc32(data)


def encode_frame(payload: dict[str, Any]) -> bytes:
    body = MAGIC + json.dumps(
        payload, separators=(",", ":"), ensure_ascii=True, sort_keys=True, allow_nan=False
    ).encode("ascii")
    return body + b" " + _crc(body) + b"\n"


def _printable(line: bytes) -> bool:
    return bool(line) and all(32 <= c < 127 or c == 9 for c in line)


def decode_line(line: bytes) -> Frame | Noise | BadFrame:
    """One line without its newline (a trailing CR is tolerated: terminals send CRLF)."""
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.startswith(MAGIC):
        return Noise(len(line), _printable(line))
    if len(line) < len(MAGIC) + 2 + 1 + _CRC_LEN or line[-_CRC_LEN - 1] != 0x20:
        return BadFrame("frame too short or no checksum")
    body, crc = line[: -_CRC_LEN - 1], line[-_CRC_LEN:]
    if _crc(body) != crc:
        return BadFrame("checksum mismatch (line noise, or a wrong baud rate?)")
    try:
        payload = json.loads(body[len(MAGIC) :].decode("ascii"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return BadFrame("payload is not JSON")
    if not isinstance(payload, dict):
        return BadFrame("payload is not a JSON object")
    return Frame(payload)


class LineReader:
    """Splits a byte stream into lines, bounded in size and in idle time."""

    def __init__(self, max_line: int = DEVICE_MAX_LINE, idle_timeout: float = IDLE_TIMEOUT_S):
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self._buf = bytearray()
        self._discarding = False
        self._last = 0.0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def expire(self, now: float) -> list[Item]:
        """Drop a partial line that saw no byte for `idle_timeout` seconds."""
        if (self._buf or self._discarding) and now - self._last >= self.idle_timeout:
            length = len(self._buf)
            self._buf.clear()
            if self._discarding:
                self._discarding = False
                return []
            return [TimedOut(length)]
        return []

    def feed(self, data: bytes, now: float) -> list[Item]:
        out = self.expire(now)
        if not data:
            return out
        self._last = now
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl
            chunk = data[pos:end]
            if self._discarding:
                pass
            elif len(self._buf) + len(chunk) > self.max_line:
                self._buf.clear()
                self._discarding = True
                out.append(Overlong(self.max_line))
            else:
                self._buf += chunk
            if nl < 0:
                break
            if not self._discarding:
                out.append(decode_line(bytes(self._buf)))
            self._buf.clear()
            self._discarding = False
            pos = nl + 1
        return out
