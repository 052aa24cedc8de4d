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
