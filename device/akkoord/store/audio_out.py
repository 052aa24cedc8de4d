"""Decrypt a recording's audio into a plain PCM WAV (the organisation's `akkoord decrypt`).

Positions come from the frames' sample positions, so gaps (and, with --force, frames that
failed) become silence of exactly the disclosed length: second N of the WAV is second N of
the recording's timeline, for the CLI, the verify page and a person listening alike.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord.errors import FormatError, StorageError
from akkoord.fsutil import fsync_dir, fsync_fd
from akkoord.store.format import Kind, audio_mac, nonce_for
from akkoord.store.keys import ContentKeys
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import ParsedFrame, scan

__all__ = ["WAV_HEADER_LEN", "decrypt_to_wav", "wav_header"]

WAV_HEADER_LEN = 44
_MAX_WAV_DATA = 0xFFFFFFFF - 36


def wav_header(data_len: int, rate: int, channels: int, width: int) -> bytes:
    """A canonical 44-byte PCM WAV header (RIFF, fmt, data)."""
    if data_len > _MAX_WAV_DATA:
        raise FormatError(f"{data_len} bytes of audio do not fit in one WAV file (4 GB limit)")
    block = channels * width
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_len,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block,
        block,
        width * 8,
        b"data",
        data_len,
    )


def decrypt_to_wav(
    directory: Path,
    keys: ContentKeys,
    out: Path,
    *,
    rate: int,
    channels: int,
    width: int,
    total_samples: int,
) -> list[str]:
    """Write the WAV; return the frames that could not be used (empty when all were fine).

    The file appears whole or not at all (temp file, fsync, rename)."""
    recording_id = bytes.fromhex(Path(directory).name) if len(Path(directory).name) == 32 else None
    aead = ChaCha20Poly1305(keys.seal_key)
    block = channels * width
    problems: list[str] = []
    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:  # name what the user asked for, not our temporary file
        raise StorageError(exc.errno or errno.EIO,
                           f"cannot write {out}: {exc.strerror or exc}") from None
    try:
        data_len = total_samples * block
        os.pwrite(fd, wav_header(data_len, rate, channels, width), 0)
        os.ftruncate(fd, WAV_HEADER_LEN + data_len)  # silence wherever no frame writes

        def on_body(frame: ParsedFrame, body: memoryview) -> None:
            h = frame.header
            if h.kind != Kind.AUDIO:
                return
            if recording_id is not None and h.recording_id != recording_id:
                problems.append(f"frame at byte {frame.offset}: from another recording, skipped")
                return
            try:
                pcm = aead.decrypt(
                    nonce_for(h.index, h.final), body, frame.header_bytes + frame.meta_bytes
                )
            except InvalidTag:
                problems.append(f"frame {h.index}: does not decrypt, left silent")
                return
            if audio_mac(keys.mac_key, pcm) != h.audio_mac:
                problems.append(f"frame {h.index}: audio does not match its MAC")
            end = h.start_sample + h.samples
            if end > total_samples:
                problems.append(f"frame {h.index}: lies beyond the recording's end, skipped")
                return
            os.pwrite(fd, pcm, WAV_HEADER_LEN + h.start_sample * block)

        container = Path(directory) / CONTAINER_FILE
        with open(container, "rb") as f:
            for _ in scan(f, container.stat().st_size, on_body):
                pass
        fsync_fd(fd, str(out))
    except BaseException as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise StorageError(exc.errno or errno.EIO,
                               f"writing {out} failed: {exc.strerror or exc}") from None
        raise
    os.close(fd)
    os.replace(tmp, out)
    fsync_dir(out.parent)
    return problems
