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
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord.errors import FormatError, StorageError
from akkoord.fsutil import fsync_dir, fsync_fd
from akkoord.store.format import Kind, audio_mac, nonce_for
from akkoord.store.keys import ContentKeys, DevicePublicKey, OrgPrivateKey
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import read_manifest
from akkoord.store.reader import Adaptive, ParsedFrame, scan
from akkoord.store.verify import FrameSink, Report, verify_recording

__all__ = ["WAV_HEADER_LEN", "DecryptResult", "decrypt_recording", "decrypt_to_wav", "wav_header"]

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
    name = Path(directory).name
    recording_id = bytes.fromhex(name) if len(name) == 32 and _is_hex(name) else None
    aead = ChaCha20Poly1305(keys.seal_key)
    block = channels * width
    problems: list[str] = []
    out = Path(out)
    tmp, fd = _open_partial(out)
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
        _discard(fd, tmp, out, exc)
    os.close(fd)
    os.replace(tmp, out)
    fsync_dir(out.parent)
    return problems


class _WavSink(FrameSink):
    """The verifier's frames, written into the WAV as they are verified (one pass: every
    frame is read, hashed, decrypted and MAC-checked once). The file stays a hidden
    temporary until the verdict is known; decrypt_recording publishes it or removes it."""

    def __init__(self, fd: int, block: int, recording_id: bytes | None,
                 total_samples: int | None) -> None:
        self.fd, self.block, self.rid, self.total = fd, block, recording_id, total_samples
        self.problems: list[str] = []
        self.end = 0  # the timeline's end from the frames, when no manifest says it

    def reset(self) -> None:
        self.problems.clear()
        self.end = 0
        os.ftruncate(self.fd, 0)

    def frame(self, frame: ParsedFrame, pcm: memoryview | None, error: str | None) -> None:
        h = frame.header
        if h.kind in (Kind.AUDIO, Kind.GAP):
            self.end = max(self.end, h.start_sample + h.samples)
        if h.kind != Kind.AUDIO:
            return
        if self.rid is not None and h.recording_id != self.rid:
            self.problems.append(f"frame at byte {frame.offset}: from another recording, skipped")
            return
        if error == "bad_tag" or pcm is None:
            self.problems.append(f"frame {h.index}: does not decrypt, left silent")
            return
        if error == "audio_mac":
            self.problems.append(f"frame {h.index}: audio does not match its MAC")
        end = h.start_sample + h.samples
        limit = self.total if self.total is not None else _MAX_WAV_DATA // self.block
        if end > limit:
            self.problems.append(f"frame {h.index}: lies beyond the recording's end, skipped")
            return
        at = WAV_HEADER_LEN + h.start_sample * self.block
        view = pcm
        while view:
            n = os.pwrite(self.fd, view, at)
            view, at = view[n:], at + n


@dataclass
class DecryptResult:
    report: Report
    problems: list[str]
    written: bool  # False: verification failed and --force was not given; no file made
    total_samples: int


def decrypt_recording(
    directory: Path,
    org_key: OrgPrivateKey,
    out: Path,
    *,
    trusted_key: DevicePublicKey | None = None,
    force: bool = False,
    parallel: bool | Adaptive | None = None,
) -> DecryptResult:
    """Verify the recording and write its WAV in the same pass.

    The WAV is written into a hidden temporary next to `out` while the frames are verified;
    only when the whole recording verifies (or with `force`) is it fsync'ed and renamed to
    `out`. Without `force`, a recording that fails leaves no file at all: nothing unverified
    is ever presented as the recording. Positions come from the frames, so gaps (and, with
    `force`, frames that failed) are silence of exactly the disclosed length. `parallel`:
    as verify_recording's."""
    directory, out = Path(directory), Path(out)
    signed = read_manifest(directory, segments=False)
    doc = signed.doc if signed is not None else {}
    audio = doc.get("audio") or {}
    # Checked once the verdict is in (a failing recording is refused first, as always).
    pcm16 = isinstance(audio, dict) and audio.get("sample_width", 2) == 2 and audio.get(
        "channels", 1) in (1, 2)
    if not isinstance(audio, dict):
        audio = {}
    try:
        rate = int(audio.get("sample_rate", 48000))
        channels = int(audio.get("channels", 1))
        width = int(audio.get("sample_width", 2))
        total = int(doc["duration_samples"]) if signed is not None else None
        if not 1 <= channels * width <= 64:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        rate, channels, width, total = 48000, 1, 2, None
    del signed, doc  # the verifier reads the manifest itself
    name = directory.name
    rid = bytes.fromhex(name) if len(name) == 32 and _is_hex(name) else None
    tmp, fd = _open_partial(out)
    try:
        sink = _WavSink(fd, channels * width, rid, total)
        report = verify_recording(directory, org_key, trusted_key, sink=sink, parallel=parallel)
        if total is None:
            total = sink.end
        if not report.ok and not force:
            os.close(fd)
            fd = -1
            os.unlink(tmp)
            return DecryptResult(report, sink.problems, False, total)
        if not pcm16:
            raise FormatError(
                f"{directory}: the manifest's audio is not 16-bit mono or stereo PCM"
            )
        data_len = total * channels * width
        os.pwrite(fd, wav_header(data_len, rate, channels, width), 0)
        os.ftruncate(fd, WAV_HEADER_LEN + data_len)  # silence wherever no frame wrote
        fsync_fd(fd, str(out))
    except BaseException as exc:
        _discard(fd, tmp, out, exc)
    os.close(fd)
    os.replace(tmp, out)
    fsync_dir(out.parent)
    return DecryptResult(report, sink.problems, True, total)


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _open_partial(out: Path) -> tuple[Path, int]:
    """A hidden temporary beside `out`, renamed over it once whole. Errors name `out`,
    what the user asked for, never the temporary."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise StorageError(exc.errno or errno.EIO,
                           f"cannot write {out}: {exc.strerror or exc}") from None


def _discard(fd: int, tmp: Path, out: Path, exc: BaseException) -> NoReturn:
    """Close and remove the temporary, then raise `exc` (an OSError as one naming `out`)."""
    if fd >= 0:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)
    if isinstance(exc, OSError) and not isinstance(exc, StorageError):
        raise StorageError(exc.errno or errno.EIO,
                           f"writing {out} failed: {exc.strerror or exc}") from None
    raise exc
