"""Append-only writer of one recording.

Every frame is written and fdatasync'ed before the call returns, so a frame the caller saw
accepted survives a power cut. A failed fsync is fatal for the file (fsyncgate): nothing is
written to it again in this process, and the recording is left for recovery. A failed write
(disk full, I/O error) is cut back to the last acknowledged frame; when that works the
recording can still be closed properly — after ENOSPC by freeing a small reserve file that
was set aside for exactly this.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord import __version__
from akkoord.clock import Clock, WallTime
from akkoord.errors import StorageError, UsageError
from akkoord.fsutil import atomic_write, fsync_dir, write_all
from akkoord.store.custody import CustodyLog
from akkoord.store.format import (
    AEAD_TAG_LEN,
    CONTAINER_FORMAT,
    FRAME_HEADER,
    FRAME_MAGIC,
    ZERO32,
    Flag,
    Kind,
    audio_mac,
    canonical_json,
    finish_frame,
    genesis_hash,
    nonce_for,
)
from akkoord.store.keys import (
    ContentKeys,
    DeviceIdentity,
    OrgPublicKey,
    new_content_key,
    wrap_content_key,
)
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE, WRAPPED_KEYS_FILE, StateDir
from akkoord.store.manifest import FrameRecord, build_manifest, write_manifest

__all__ = ["AudioParams", "CloseResult", "FileOps", "RecordingFailed", "RecordingWriter"]

DEFAULT_RESERVE = 1024 * 1024
_FINAL = int(Flag.FINAL)


@dataclass(frozen=True)
class AudioParams:
    sample_rate: int = 48000
    channels: int = 1
    sample_width: int = 2
    segment_samples: int = 48000

    def __post_init__(self) -> None:
        if self.sample_width != 2:
            raise UsageError("only 16-bit PCM (sample_width 2) is supported")
        if self.channels not in (1, 2):
            raise UsageError(f"channels must be 1 or 2, not {self.channels}")
        if not 8000 <= self.sample_rate <= 192000:
            raise UsageError(f"sample_rate {self.sample_rate} is out of range")
        if self.segment_samples <= 0:
            raise UsageError("segment_samples must be positive")

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.sample_width

    def to_json(self) -> dict[str, Any]:
        return {
            "encoding": "pcm_s16le",
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "sample_width": self.sample_width,
            "segment_samples": self.segment_samples,
        }


class FileOps:
    """The writer's only contact with the file system for frames; tests inject faults here."""

    def write(self, fd: int, data: bytes, where: str) -> None:
        write_all(fd, data, where)

    def sync(self, fd: int, where: str) -> None:
        try:
            # fdatasync also flushes the size change an append makes, which is all we need.
            os.fdatasync(fd)
        except OSError as exc:
            raise StorageError(
                exc.errno or errno.EIO, f"fsync failed for {where}: {exc.strerror}"
            ) from exc

    def truncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)


class RecordingFailed(StorageError):
    """Storing a frame failed. `closable` says whether `close()` can still seal the recording."""

    def __init__(self, err: int, message: str, closable: bool) -> None:
        super().__init__(err, message)
        self.closable = closable


@dataclass
class CloseResult:
    status: str  # "complete" | "left_for_recovery"
    manifest: dict[str, Any] | None
    error: str | None = None
    records: list[FrameRecord] = field(default_factory=list)


class RecordingWriter:
    def __init__(
        self,
        *,
        path: Path,
        recording_id: bytes,
        keys: ContentKeys,
        identity: DeviceIdentity,
        audio: AudioParams,
        clock: Clock,
        custody: CustodyLog | None,
        fd: int,
        sync: bool,
        ops: FileOps,
    ) -> None:
        self.path = path
        self.recording_id = recording_id
        self.keys = keys
        self.audio = audio
        self._identity = identity
        self._clock = clock
        self._custody = custody
        self._fd: int | None = fd
        self._sync = sync
        self._ops = ops
        self._aead = ChaCha20Poly1305(keys.seal_key)
        self._container_name = str(path / CONTAINER_FILE)  # for messages; built once
        self._prev = genesis_hash(recording_id)
        self._index = 0
        self._end = 0  # bytes acknowledged (written and synced)
        self.position = 0  # samples on the timeline: audio + gaps
        self.records: list[FrameRecord] = []
        self._failure: RecordingFailed | None = None
        self.closed = False

    @property
    def id(self) -> str:
        return self.recording_id.hex()

    @property
    def container(self) -> Path:
        return self.path / CONTAINER_FILE

    @property
    def failed(self) -> RecordingFailed | None:
        return self._failure

    # --- creation -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        state: StateDir,
        identity: DeviceIdentity,
        recipients: list[OrgPublicKey],
        audio: AudioParams,
        clock: Clock,
        *,
        simulated: bool = False,
        custody: CustodyLog | None = None,
        sync: bool = True,
        ops: FileOps | None = None,
        content_key: bytes | None = None,
        recording_id: bytes | None = None,
        reserve_bytes: int = DEFAULT_RESERVE,
        extra_header: dict[str, Any] | None = None,
    ) -> RecordingWriter:
        """Create the folder, wrap the key, write the header frame. Nothing is created when
        there is no recipient (NoRecipientError): a recording nobody can read is no record."""
        rid = recording_id or os.urandom(16)
        ck = content_key or new_content_key()
        wrapped = wrap_content_key(ck, rid, recipients)
        state.ensure()
        path = state.recordings_dir / rid.hex()
        path.mkdir(mode=0o700)
        fsync_dir(state.recordings_dir)
        keys_doc = {
            "type": "akkoord-wrapped-keys",
            "version": 1,
            "recording_id": rid.hex(),
            "recipients": wrapped,
        }
        keys_bytes = canonical_json(keys_doc) + b"\n"
        atomic_write(path / WRAPPED_KEYS_FILE, keys_bytes, 0o600)
        if reserve_bytes:
            _make_reserve(path / RESERVE_FILE, reserve_bytes)
        fd = os.open(
            path / CONTAINER_FILE,
            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
            0o600,
        )
        fsync_dir(path)
        writer = cls(
            path=path,
            recording_id=rid,
            keys=ContentKeys.derive(ck, rid),
            identity=identity,
            audio=audio,
            clock=clock,
            custody=custody,
            fd=fd,
            sync=sync,
            ops=ops or FileOps(),
        )
        header = {
            "format": CONTAINER_FORMAT,
            "recording_id": rid.hex(),
            "created": clock.wall().to_json(),
            "device": {
                "algorithm": identity.public.algorithm,
                "fingerprint": identity.fingerprint,
                "public_key": base64.b64encode(identity.public.raw).decode(),
            },
            "audio": audio.to_json(),
            "recipients": [{"fingerprint": w["fingerprint"], "kem": w["kem"]} for w in wrapped],
            "wrapped_keys_sha256": hashlib.sha256(keys_bytes).hexdigest(),
            "simulated": simulated,
            "software": f"akkoord {__version__}",
        }
        certificate = state.device_certificate()
        if certificate is not None:  # the organisation's word for this key (FORMAT.md §10)
            header["device"]["certificate"] = certificate
        if extra_header:
            header.update(extra_header)
        try:
            writer._append(Kind.HEADER, meta=header)
        except RecordingFailed:
            writer._close_fd()
            raise
        if custody is not None:
            custody.append("recording_started", rid.hex(), simulated=simulated)
        return writer

    # --- frames ---------------------------------------------------------------------------

    def _append(
        self,
        kind: Kind,
        *,
        meta: dict[str, Any] | None = None,
        pcm: bytes | None = None,
        samples: int = 0,
        final: bool = False,
        aead: bool = True,
    ) -> FrameRecord:
        if self._failure is not None:
            raise self._failure
        if self.closed or self._fd is None:
            raise UsageError(f"recording {self.id} is closed")
        meta_bytes = canonical_json(meta) if meta is not None else b""
        plaintext = pcm if pcm is not None else b""
        mac = audio_mac(self.keys.mac_key, plaintext) if kind == Kind.AUDIO else ZERO32
        flags = _FINAL if final else 0
        # Packed directly (not via FrameHeader): this runs once per second of audio.
        header = FRAME_HEADER.pack(
            FRAME_MAGIC, kind, flags, len(meta_bytes), self._index, samples, self.position,
            len(plaintext) + AEAD_TAG_LEN if aead else 0, self.recording_id, self._prev, mac,
        )
        if aead:
            body = self._aead.encrypt(nonce_for(self._index, final), plaintext, header + meta_bytes)
        else:
            body = b""
        frame, seal = finish_frame(header, meta_bytes, body)
        self._store(frame)
        record = FrameRecord(self._index, kind, flags, self.position, samples, mac, meta, seal)
        self.records.append(record)
        self._prev = seal
        self._index += 1
        self._end += len(frame)
        return record

    def _store(self, frame: bytes) -> None:
        assert self._fd is not None
        where = f"{self._container_name} (frame {self._index}, byte {self._end})"
        try:
            self._ops.write(self._fd, frame, where)
        except OSError as exc:
            self._failure = self._cut_back(exc, where)
            raise self._failure from exc
        if not self._sync:
            return
        try:
            self._ops.sync(self._fd, where)
        except OSError as exc:
            # Never retry an fsync: the kernel may already have dropped the dirty pages.
            self._failure = RecordingFailed(
                exc.errno or errno.EIO,
                f"fsync failed at {where}: {exc}; the recording is left for recovery",
                closable=False,
            )
            self._close_fd()
            raise self._failure from exc

    def _cut_back(self, exc: OSError, where: str) -> RecordingFailed:
        """After a failed write, remove the partial frame so the file ends on a whole frame."""
        assert self._fd is not None
        err = exc.errno or errno.EIO
        try:
            self._ops.truncate(self._fd, self._end)
            if self._sync:
                self._ops.sync(self._fd, where)
        except OSError as exc2:
            self._close_fd()
            return RecordingFailed(
                err,
                f"write failed at {where} ({exc}) and cutting back failed ({exc2}); "
                "the recording is left for recovery",
                closable=False,
            )
        return RecordingFailed(err, f"write failed at {where}: {exc}", closable=True)

    def add_event(self, event: str, *, time: WallTime | None = None, **fields: Any) -> None:
        """A timeline event (press, start, note…) at the current position."""
        meta = {"event": event, "time": (time or self._clock.wall()).to_json(), **fields}
        self._append(Kind.EVENT, meta=meta)

    def add_audio(self, pcm: bytes) -> None:
        """Seal one segment of PCM; returns once it is on disk."""
        fb = self.audio.frame_bytes
        if not pcm or len(pcm) % fb:
            raise UsageError(f"a segment must be a positive whole number of {fb}-byte frames")
        samples = len(pcm) // fb
        self._append(Kind.AUDIO, pcm=pcm, samples=samples)
        self.position += samples

    def add_gap(self, samples: int, cause: str, *, estimated: bool = False, **fields: Any) -> None:
        """Disclose `samples` of timeline with no audio (overflow, a stalled device…)."""
        if samples <= 0:
            raise UsageError("a gap must be at least one sample")
        meta = {
            "event": "gap",
            "cause": cause,
            "estimated": estimated,
            "time": self._clock.wall().to_json(),
            **fields,
        }
        self._append(Kind.GAP, meta=meta, samples=samples)
        self.position += samples

    # --- closing --------------------------------------------------------------------------

    def close(self, reason: str, **fields: Any) -> CloseResult:
        """Write the END frame and the signed manifest. After a closable write failure this
        still seals the recording (freeing the reserve first when the disk was full)."""
        if self.closed:
            raise UsageError(f"recording {self.id} is already closed")
        failure = self._failure
        if failure is not None and not failure.closable:
            self.closed = True
            self._close_fd()
            self._log("recording_failed", error=str(failure))
            return CloseResult("left_for_recovery", None, str(failure), self.records)
        if failure is not None:
            self._failure = None
            self._release_reserve()
            fields.setdefault("storage_error", str(failure))
        meta = {
            "event": "stop",
            "reason": reason,
            "time": self._clock.wall().to_json(),
            "samples": self.position,
            **fields,
        }
        try:
            try:
                self._append(Kind.END, meta=meta, final=True)
            except RecordingFailed as exc:
                if not exc.closable:
                    raise
                # Cut back cleanly: free the reserve and try the last frame once more.
                self._failure = None
                self._release_reserve()
                meta.setdefault("storage_error", str(exc))
                self._append(Kind.END, meta=meta, final=True)
            self._close_fd()
            self._release_reserve()
            manifest = build_manifest(self.records)
            write_manifest(self.path, manifest, self._identity)
        except OSError as exc:
            self.closed = True
            self._close_fd()
            self._log("recording_failed", error=str(exc))
            return CloseResult("left_for_recovery", None, str(exc), self.records)
        self.closed = True
        self._log(
            "recording_closed",
            status="complete",
            reason=reason,
            frame_count=manifest["frame_count"],
            chain_head=manifest["chain_head"],
            duration_samples=manifest["duration_samples"],
        )
        return CloseResult("complete", manifest, None, self.records)

    def _log(self, kind: str, **detail: Any) -> None:
        if self._custody is None:
            return
        # The recording itself is what matters; a custody write failing must not lose it.
        with contextlib.suppress(OSError):
            self._custody.append(kind, self.id, **detail)

    def _release_reserve(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path / RESERVE_FILE)

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None


def _make_reserve(path: Path, size: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError:
            write_all(fd, bytes(size), str(path))  # file systems without fallocate
        os.fsync(fd)
    finally:
        os.close(fd)
