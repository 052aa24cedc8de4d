"""Reading a copy's WAV without trusting it: walk the RIFF chunks, find `fmt ` and `data`.

A holder may have re-saved the file with extra chunks (LIST, bext…); only the samples count.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from akkoord.errors import FormatError

__all__ = ["WavInfo", "read_wav_info"]

_MAX_CHUNKS = 64


@dataclass(frozen=True)
class WavInfo:
    rate: int
    channels: int
    width: int
    data_offset: int
    data_len: int  # bytes actually present (a truncated file holds fewer than declared)


def read_wav_info(f: BinaryIO, size: int, where: str) -> WavInfo:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise FormatError(f"{where}: not a WAV file (no RIFF/WAVE header)")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    for _ in range(_MAX_CHUNKS):
        f.seek(pos)
        ch = f.read(8)
        if len(ch) < 8:
            break
        cid, clen = ch[:4], struct.unpack("<I", ch[4:])[0]
        body = pos + 8
        if cid == b"fmt ":
            raw = f.read(min(clen, 40))
            if len(raw) < 16:
                raise FormatError(f"{where}: fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw[:16])
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            if fmt is None:
                raise FormatError(f"{where}: data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            # 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which some editors write for plain PCM.
            if tag not in (1, 0xFFFE) or bits != 16 or channels < 1:
                raise FormatError(
                    f"{where}: not 16-bit PCM (format {tag}, {bits} bits, {channels} channels)"
                )
            return WavInfo(rate, channels, 2, body, max(0, min(clen, size - body)))
        pos = body + clen + (clen & 1)  # chunks are word-aligned
        if pos > size:
            break
    raise FormatError(f"{where}: no audio (data chunk) found")


# --- the canonical rule (FORMAT.md §9.3) ---------------------------------------------------
# What is verified must be what plays. A second `data` chunk (players take the last one), a
# second `fmt ` chunk, a junk chunk, or a size field that disagrees with the file are all
# places where a player and a verifier can read different audio; so a copy's WAV has exactly
# one layout, the one the device writes, and anything else is refused with the reason.

CANONICAL_HEADER_LEN = 44


@dataclass(frozen=True)
class CanonicalWav:
    """A WAV in the one layout a copy may have; or `problem` (code, message) if it is not."""

    tag: int = 0
    channels: int = 0
    rate: int = 0
    bits: int = 0
    data_len: int = 0
    problem: tuple[str, str] | None = None
    data_offset: int = CANONICAL_HEADER_LEN


def _chunk_name(raw: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "?" for b in raw)


def check_canonical_wav(head: bytes, size: int, after_data: bytes = b"") -> CanonicalWav:
    """`head`: the first 44 bytes (or fewer, if the file is shorter); `size`: the file size;
    `after_data`: up to 8 bytes found where the data chunk declares it ends (for the message).
    The same checks, in the same order, as verify.html's canonicalWav()."""

    def bad(code: str, msg: str, **kw: int) -> CanonicalWav:
        return CanonicalWav(problem=(code, msg), **kw)

    if size < CANONICAL_HEADER_LEN or len(head) < CANONICAL_HEADER_LEN:
        return bad("short", f"{size} bytes: too short for a WAV file")
    riff, riff_len, wave = struct.unpack("<4sI4s", head[:12])
    if riff != b"RIFF" or wave != b"WAVE":
        return bad("not_riff", "not a RIFF/WAVE file")
    fmt_id, fmt_len, tag, channels, rate, byte_rate, block, bits = struct.unpack(
        "<4sIHHIIHH", head[12:36]
    )
    if fmt_id != b"fmt ":
        return bad("first_not_fmt", f"the first chunk is {_chunk_name(fmt_id)!r}, not 'fmt '")
    if fmt_len != 16:
        return bad("fmt_size", f"the fmt chunk has {fmt_len} bytes, not 16")
    if tag != 1:
        return bad("not_pcm", f"audio format {tag}, not 1 (PCM)")
    if bits != 16:
        return bad("not_16bit", f"{bits} bits per sample, not 16")
    if channels < 1 or block != channels * 2 or byte_rate != rate * block:
        return bad(
            "fmt_inconsistent",
            f"the fmt chunk contradicts itself ({channels} channels, block {block}, "
            f"{byte_rate} bytes/s at {rate} Hz)",
        )
    data_id, data_len = struct.unpack("<4sI", head[36:44])
    if data_id != b"data":
        return bad(
            "second_not_data",
            f"a {_chunk_name(data_id)!r} chunk follows the fmt chunk; only 'data' may",
        )
    body = size - CANONICAL_HEADER_LEN
    if data_len < body:
        nxt = _chunk_name(after_data[:4]) if len(after_data) >= 4 else ""
        return bad(
            "data_not_last",
            f"{body - data_len} bytes follow the data chunk"
            + (f" (a {nxt!r} chunk: players may play that instead)" if nxt.strip() else ""),
        )
    if data_len > body:
        return bad(
            "data_size", f"the data chunk declares {data_len} bytes, the file holds {body}"
        )
    if riff_len != size - 8:
        return bad("riff_size", f"the RIFF size says {riff_len + 8} bytes, the file has {size}")
    return CanonicalWav(tag, channels, rate, bits, data_len)
