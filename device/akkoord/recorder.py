"""One recording at a time: capture -> segmenter -> sealed store, on its own thread.

    start(consents) --> [pump thread: source.read -> Segmenter -> writer] --> End --> close
    stop(reason)    --> source.stop(); wait until the pump has sealed and closed

Sealing happens in exactly one place, the pump thread, once the source says End: a stop by a
party, a shutdown, a full disk, a lost microphone and a storage error all end the same way.
The writer is shared with the consent loop's timeline events, so every writer call holds the
lock.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.audio import End, EndReason, Gap, Segment, Segmenter
from akkoord.audio.model import AudioSource, CaptureBackend, SourceHealth
from akkoord.clock import Clock, WallTime
from akkoord.errors import AkkoordError, HardwareError, StorageError
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import ContentKeys, DeviceIdentity, OrgPublicKey
from akkoord.store.layout import StateDir
from akkoord.store.writer import AudioParams, CloseResult, RecordingFailed, RecordingWriter

__all__ = ["Recorder", "Recording", "StopOutcome", "free_bytes", "free_seconds"]

log = logging.getLogger(__name__)

# Frame overhead per 1 s segment is ~150 bytes; 2 % covers it and the manifest at any rate.
_OVERHEAD = 1.02


def free_bytes(path: Path) -> int:
    """Bytes the file system holding `path` still has for us (not the root reserve).
    The one place free space is measured: tests replace it to run the disk guards without
    mounting a small file system (which needs CAP_SYS_ADMIN)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def free_seconds(path: Path, sample_rate: int, channels: int = 1) -> float:
    """Seconds of audio the file system holding `path` still has room for."""
    return free_bytes(path) / (sample_rate * channels * 2 * _OVERHEAD)


@dataclass
class Recording:
    """What the daemon keeps of a closed recording during its export window."""

    recording_id: str
    path: Path
    keys: ContentKeys
    result: CloseResult
    closed_at: float


@dataclass(frozen=True)
class StopOutcome:
    recording_id: str
    reason: str
    result: CloseResult


class Recorder:
    def __init__(
        self,
        *,
        state: StateDir,
        identity: DeviceIdentity,
        custody: CustodyLog,
        clock: Clock,
        backend: CaptureBackend,
        audio: AudioParams,
        stop_free_seconds: float,
        simulated: bool = False,
        on_stopped: Callable[[StopOutcome], None] | None = None,
        on_gap: Callable[[Gap], None] | None = None,
        callback_hook: Callable[[], object] | None = None,
    ) -> None:
        self.state = state
        self.identity = identity
        self.custody = custody
        self.clock = clock
        self.backend = backend
        self.audio = audio
        self.stop_free_seconds = stop_free_seconds
        self.simulated = simulated
        self._on_stopped = on_stopped
        self._on_gap = on_gap
        self._callback_hook = callback_hook
        self._lock = threading.RLock()
        self._writer: RecordingWriter | None = None
        self._source: AudioSource | None = None
        self._pump: threading.Thread | None = None
        self._done = threading.Event()
        self._reason: str | None = None
        self._outcome: StopOutcome | None = None
        self._closed: Recording | None = None
        self._pending: RecordingWriter | None = None
        self._pending_source: AudioSource | None = None
        self._last_progress = time.monotonic()

    # -- state ---------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._writer is not None and not self._done.is_set()

    @property
    def prepared(self) -> bool:
        return self._pending is not None

    @property
    def recording_id(self) -> str | None:
        writer = self._writer or self._pending
        return writer.id if writer is not None else None

    def health(self) -> SourceHealth | None:
        source = self._source
        return source.health() if source is not None and self.active else None

    def pump_stalled(self, limit: float) -> bool:
        """True when the pump thread made no progress for `limit` seconds while recording."""
        return self.active and time.monotonic() - self._last_progress > limit

    # -- start -----------------------------------------------------------------------------

    def start(
        self,
        recipients: list[OrgPublicKey],
        consents: list[tuple[str, WallTime, float]],
    ) -> str:
        """`prepare` then `begin`: the recording exists and the microphone is open."""
        rid = self.prepare(recipients, consents)
        self.begin()
        return rid

    def prepare(
        self,
        recipients: list[OrgPublicKey],
        consents: list[tuple[str, WallTime, float]],
        roles: dict[str, Any] | None = None,
    ) -> str:
        """Create the recording, write the presses and the start, and open the microphone
        (its samples wait until `begin`). The daemon does this before the indicator goes on,
        so a recording that cannot be written, or has no microphone, is never announced.

        `consents` are (party, wall time of the press, seconds before now). Raises
        AkkoordError (StorageError for anything the file system refused; nothing is left
        open) when a step fails."""
        if self.active:
            raise AkkoordError("a recording is already running")
        if self._pending is not None:  # prepared, never begun (its step failed): close it
            stale, self._pending = self._pending, None
            if self._pending_source is not None:
                _stop_quietly(self._pending_source)
                self._pending_source = None
            self._abandon(stale, StorageError("prepared but never started"))
        self._done.clear()
        self._reason = None
        self._outcome = None
        self._closed = None
        # The microphone opens while the recording is created, not after: creating it costs
        # a key wrap and ~10 fsyncs (folder, keys, reserve, custody entry, header, signed
        # checkpoint, the presses), which on an SD card under load is most of the time from
        # the second press to the first sample. Samples wait in the capture queue (seconds
        # deep) until `begin` starts the pump; if anything fails, nothing of them is kept.
        # A microphone that cannot be opened is known here, before anything is announced.
        made: dict[str, Any] = {}

        def create() -> None:
            try:
                writer = made["writer"] = RecordingWriter.create(
                    self.state,
                    self.identity,
                    recipients,
                    self.audio,
                    self.clock,
                    simulated=self.simulated,
                    custody=self.custody,
                )
            except BaseException as exc:  # handed to prepare()'s thread below
                made["error"] = exc
                return
            try:
                for party, wall, before in consents:
                    writer.add_event("press", time=wall, party=party.upper(),
                                     before_start_seconds=round(before, 3))
                writer.add_event("start", **({"roles": roles} if roles else {}))
            except BaseException as exc:
                made["event_error"] = exc

        maker = threading.Thread(target=create, name="akkoord-create", daemon=True)
        maker.start()
        source: AudioSource | None = None
        mic_error: Exception | None = None
        try:
            source = self.backend.open_capture(callback_hook=self._callback_hook)
        except Exception as exc:
            mic_error = exc
        maker.join()
        if "error" in made:
            if source is not None:
                _stop_quietly(source)
            exc = made["error"]
            if isinstance(exc, AkkoordError) or not isinstance(exc, OSError | ValueError):
                raise exc
            # read-only, not writable, bad parameters
            raise StorageError(f"cannot create a recording in {self.state.recordings_dir}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from exc
        writer: RecordingWriter = made["writer"]
        # The store's failure first: in the order of old, the presses came before the mic.
        event_error = made.get("event_error")
        if event_error is not None or mic_error is not None:
            if source is not None:
                _stop_quietly(source)
            if event_error is not None:
                self._abandon(writer, event_error)
                if isinstance(event_error, AkkoordError):
                    raise event_error
                raise StorageError(
                    f"cannot write the recording {writer.id}: {event_error}") from event_error
            assert mic_error is not None
            self._abandon(writer, HardwareError(str(mic_error)))
            if isinstance(mic_error, AkkoordError):
                raise mic_error
            raise HardwareError(
                f"the microphone could not be opened: {mic_error}") from mic_error
        assert source is not None
        self._pending = writer
        self._pending_source = source
        return writer.id

    def begin(self) -> None:
        """Start the pump for the prepared recording (its microphone is already open)."""
        writer, self._pending = self._pending, None
        source, self._pending_source = self._pending_source, None
        if writer is None or source is None:
            raise AkkoordError("no prepared recording to begin")
        with self._lock:
            self._writer = writer
            self._source = source
        self._last_progress = time.monotonic()
        self._pump = threading.Thread(target=self._run, name="akkoord-pump", daemon=True)
        self._pump.start()

    def _abandon(self, writer: RecordingWriter, exc: BaseException) -> None:
        """Close what was begun: an empty, honest recording beats a dangling one."""
        reason = "microphone_lost" if isinstance(exc, HardwareError) else "storage_error"
        with self._lock, contextlib.suppress(Exception):
            if not writer.closed:
                writer.close(reason, detail=str(exc)[:200])

    # -- timeline ------------------------------------------------------------------------

    def add_event(self, event: str, **fields: Any) -> bool:
        """A timeline event into the running recording (False when there is none)."""
        with self._lock:
            w = self._writer
            if w is None or w.closed or w.failed is not None or self._done.is_set():
                return False
            try:
                w.add_event(event, **fields)
            except RecordingFailed as exc:
                self._fail(exc)
                return False
            return True

    # -- stop ------------------------------------------------------------------------------

    def stop(self, reason: str, timeout: float = 2.0) -> StopOutcome | None:
        """Stop capture and wait until the pump sealed the recording. Safe from any thread;
        the first reason given wins."""
        with self._lock:
            if self._writer is None:
                return self._outcome
            if self._reason is None:
                self._reason = reason
            source = self._source
        if source is not None:
            try:
                source.stop()
            except Exception as exc:  # a hung stream: the pump seals what it has
                log.warning("stopping the audio source failed: %s", exc)
        if not self._done.wait(timeout):
            log.error("recording did not seal within %.1f s", timeout)
        return self._outcome

    def _fail(self, exc: RecordingFailed) -> None:
        self._reason = self._reason or (
            "disk_full" if exc.errno == errno.ENOSPC else "storage_error"
        )
        log.error("storing audio failed: %s", exc)
        if self._source is not None:
            self._source.stop()

    # -- pump ------------------------------------------------------------------------------

    def _run(self) -> None:
        assert self._source is not None and self._writer is not None
        source, writer = self._source, self._writer
        segmenter = Segmenter(self.audio.segment_samples)
        end: End | None = None
        try:
            while end is None:
                item = source.read(timeout=0.25)
                self._last_progress = time.monotonic()
                if item is None:
                    continue
                if isinstance(item, End):
                    end = item
                    out: list[Any] = segmenter.flush()
                else:
                    out = segmenter.push(item)
                for piece in out:
                    self._seal(writer, piece)
                    if isinstance(piece, Segment):
                        self._guard_disk()  # one statvfs per second of audio: cheap
        except Exception:
            log.exception("the recording pump failed")
            self._reason = self._reason or "storage_error"
            source.stop()
        finally:
            self._finish(writer, end)

    def _seal(self, writer: RecordingWriter, piece: Segment | Gap) -> None:
        with self._lock:
            if writer.failed is not None or self._reason in ("disk_full", "storage_error"):
                return  # after a storage failure, later audio is past the recording's end
            try:
                if isinstance(piece, Segment):
                    writer.add_audio(piece.pcm)
                else:
                    writer.add_gap(piece.samples, piece.cause.label, estimated=piece.estimated)
            except RecordingFailed as exc:
                self._fail(exc)
                return
        if isinstance(piece, Gap) and self._on_gap is not None:
            self._on_gap(piece)

    def _guard_disk(self) -> None:
        try:
            left = free_seconds(self.state.recordings_dir, self.audio.sample_rate)
        except OSError:
            return
        if left < self.stop_free_seconds and self._reason is None:
            log.warning("%.0f s of space left: stopping the recording (disk full)", left)
            self._reason = "disk_full"
            if self._source is not None:
                self._source.stop()

    def _finish(self, writer: RecordingWriter, end: End | None) -> None:
        reason = self._reason
        if reason is None:
            reason = (
                "microphone_lost"
                if end is not None and end.reason is EndReason.LOST
                else "shutdown"
            )
        detail = {}
        if end is not None and end.detail and end.reason is EndReason.LOST:
            detail["detail"] = end.detail[:200]
        with self._lock:
            try:
                result = writer.close(reason, **detail)
            except (StorageError, OSError) as exc:
                result = CloseResult("left_for_recovery", None, str(exc))
            outcome = StopOutcome(writer.id, reason, result)
            if result.status != "complete":
                writer.keys.wipe()  # no export window for a recording left for recovery
            self._outcome = outcome
            self._closed = (
                Recording(writer.id, writer.path, writer.keys, result, time.monotonic())
                if result.status == "complete"
                else None
            )
            self._writer = None
            self._source = None
        self._done.set()
        if self._on_stopped is not None:
            self._on_stopped(outcome)

    def closed_recording(self) -> Recording | None:
        """The recording that just closed completely, with its keys, for the export window.
        Handed over once: the daemon owns (and wipes) the keys from then on."""
        closed, self._closed = self._closed, None
        return closed


def _stop_quietly(source: AudioSource) -> None:
    try:
        source.stop()
    except Exception as exc:  # already failing: the first error is the one to report
        log.warning("stopping the audio source failed: %s", exc)
