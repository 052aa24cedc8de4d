"""Reading files nobody vouches for: a state folder someone could write to, a copy, a stick.

Each reader refuses what would hang or exhaust it before reading a byte: a FIFO, a device or
a socket where a regular file belongs (opened non-blocking, checked with fstat), a symlink
(O_NOFOLLOW), a file larger than the caller's limit, a name with a NUL byte. JSON is parsed
strictly: no NaN/Infinity, no number that overflows (``1e999``), no integer beyond 64 bits;
nesting deep enough to exhaust the stack is caught as RecursionError. Every refusal is a
FormatError that names the file, so the CLI answers with exit 2 and one line.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from akkoord.errors import FormatError

__all__ = ["MAX_INT", "check_name", "open_regular", "read_regular", "strict_decoder", "strict_json"]

MAX_INT = 2**63 - 1


def check_name(path: str | os.PathLike[str]) -> Path:
    text = os.fspath(path)
    if "\0" in text:
        raise FormatError(f"{text!r}: a file name cannot contain a NUL byte")
    return Path(text)


def open_regular(path: str | os.PathLike[str], what: str = "file") -> BinaryIO:
    """An open binary file, only if `path` is a regular file (never blocks on a FIFO)."""
    p = check_name(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise FormatError(f"{p}: cannot open the {what}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{p}: not a regular file (a {_kind(st.st_mode)}); refusing it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int, what: str = "file") -> bytes:
    """The whole file, if it is a regular file of at most `limit` bytes."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise FormatError(f"{path}: implausibly large for a {what} ({size} bytes)")
        # Read what fstat says is there (+1 to see growth), not `limit + 1`: read(n) allocates
        # n bytes up front, and a 256 MB limit is half a Pi Zero's memory.
        data = f.read(size + 1)
        if len(data) > size:  # it grew while we read: read on, up to the limit
            data += f.read(limit + 1 - len(data))
    if len(data) > limit:
        raise FormatError(f"{path}: implausibly large for a {what} (grew while read)")
    return data


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISDIR, "folder"),
        (stat.S_ISLNK, "symbolic link"),
    ):
        if test(mode):
            return name
    return "special file"


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise ValueError(f"integer {text[:24]}… is out of range")
    value = int(text)
    if not -MAX_INT - 1 <= value <= MAX_INT:
        raise ValueError(f"integer {text} is out of range")
    return value


def _parse_float(text: str) -> float:
    if len(text) > 40:
        raise ValueError(f"number {text[:24]}… is out of range")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def strict_decoder() -> json.JSONDecoder:
    """The decoder strict_json uses, for readers that walk a document piece by piece."""
    return json.JSONDecoder(
        parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
    )


def strict_json(data: bytes | str, where: str) -> Any:
    """json.loads that refuses what a hostile file could use against a reader."""
    try:
        return json.loads(
            data, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, RecursionError) as exc:
        raise FormatError(f"{where}: not valid JSON ({type(exc).__name__})") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError, as are ours above
        raise FormatError(f"{where}: not valid JSON ({exc})") from None


_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)}


def b64decode_secret(text: Any, where: str) -> bytearray:
    """Base64 (RFC 4648, padded) decoded straight into a bytearray the caller can wipe:
    `base64.b64decode` would leave an immutable copy of a key in freed memory."""
    if not isinstance(text, str) or len(text) % 4 or len(text) > 1024:
        raise FormatError(f"{where}: not valid base64")
    pad = len(text) - len(text.rstrip("="))
    body = text[: len(text) - pad]
    if pad > 2 or any(c not in _B64 for c in body):
        raise FormatError(f"{where}: not valid base64")
    out = bytearray()
    acc = bits = 0
    for c in body:
        acc = ((acc << 6) | _B64[c]) & 0xFFFFFF
        bits += 6
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if acc & ((1 << bits) - 1):
        out[:] = bytes(len(out))
        raise FormatError(f"{where}: not valid base64 (non-zero padding bits)")
    acc = 0
    return out
