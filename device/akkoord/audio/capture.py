"""Microphone capture through PyAudio's callback mode, with every lost sample disclosed.

Threads and who owns what::

    PortAudio callback thread            recorder's writer thread          daemon loop
    ------------------------            ------------------------          -----------
    CallbackSink.on_block()  --queue-->  CaptureStream.read()              CaptureStream.health()
      - stamps last_callback              Block / Gap / End                 RUNNING/STALLED/LOST
      - paInputOverflow -> Gap(est.)                                        CaptureStream.stop()
      - queue full      -> Gap(exact)
      - optional real-time pacing

The callback never waits for the consumer: it appends to a bounded queue (bounded in samples,
``queue_seconds``) under a lock held for microseconds, or, when the queue is full, records the
block as a disclosed gap of exactly that many samples. Adjacent gaps merge, so a dead consumer
costs one queue entry, not one per block. Every block carries its start on the stream's sample
clock; a gap advances the clock by the samples lost, so positions stay true after a loss.

Lost samples for ``paInputOverflow`` are estimated from the jump of ``input_buffer_adc_time``
between callbacks when the host API's times are usable (positive, increasing, not further apart
than the monotonic clock allows), otherwise from the monotonic clock; such gaps are marked
``estimated``. An overflow reported before the first block loses nothing of this stream and is
only logged.

Health: LOST when PortAudio finished the stream without being asked (its ALSA backend does that
when a USB microphone is pulled or the driver fails), STALLED when the stream is active but no
callback came for ``stall_seconds`` (a hung callback thread; the daemon then withholds
``WATCHDOG=1`` and systemd restarts it).

Pacing (``pace_realtime``): virtual devices such as ALSA's ``file`` plugin deliver as fast as the
callback returns. With pacing on, the callback holds each block until its real time has come
(first callback + end sample / rate), waiting on the stop event, so a virtual microphone behaves
like a real one: the queue, the writer and the timeline see audio at 1x. A block still held when
stop is requested is not delivered: the timeline ends at the last block that was due.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from akkoord.audio.alsa import PortAudioLock
from akkoord.audio.config import AudioConfig
from akkoord.audio.devices import DeviceInfo
from akkoord.audio.model import (
    SAMPLE_WIDTH,
    Block,
    End,
    EndReason,
    Gap,
    GapCause,
    Item,
    SourceHealth,
    SourceState,
)
from akkoord.errors import HardwareError

if TYPE_CHECKING:
    import pyaudio

__all__ = [
    "CallbackSink",
    "CaptureStream",
    "ItemQueue",
    "estimate_overflow_samples",
]

log = logging.getLogger(__name__)

#: How long :meth:`CaptureStream.stop` waits for PortAudio to stop before declaring it hung.
STOP_TIMEOUT = 2.0

# PortAudio constants (portaudio.h), so this module needs no pyaudio import to be tested.
PA_INPUT_OVERFLOW = 0x2
PA_CONTINUE = 0
PA_COMPLETE = 1
PA_ABORT = 2

_ENDED_BY_ITSELF = "the audio stream ended by itself (microphone removed or driver error)"


def estimate_overflow_samples(
    *,
    prev_adc: float,
    prev_mono: float,
    prev_frames: int,
    adc: float,
    mono: float,
    rate: int,
) -> tuple[int, str]:
    """Samples lost between the previous callback's block and this one, and the clock used.

    The previous block started at ``prev_adc`` and held ``prev_frames``; this block starts at
    ``adc``; whatever lies between is what the driver dropped. Never less than 1: the driver
    said something was lost, and a gap of zero would hide that.
    """
    elapsed = mono - prev_mono
    adc_elapsed = adc - prev_adc
    if prev_adc > 0 and adc_elapsed > 0 and adc_elapsed <= max(elapsed, 0.0) + 1.0:
        return max(1, round(adc_elapsed * rate) - prev_frames), "adc_time"
    return max(1, round(elapsed * rate) - prev_frames), "monotonic"


class ItemQueue:
    """Bounded (in samples of PCM) queue between the callback and the reader.

    ``put_block`` never waits: it returns False when the block does not fit. Gaps take no room
    and merge with a gap at the tail. ``finish`` appends the :class:`End` beyond the bound;
    ``get`` then drains what is left and returns the End from then on.
    """

    def __init__(self, max_samples: int) -> None:
        self._max = max_samples
        self._items: collections.deque[Block | Gap] = collections.deque()
        self._samples = 0
        self._end: End | None = None
        self._cond = threading.Condition(threading.Lock())

    @property
    def queued_samples(self) -> int:
        return self._samples

    def put_block(self, block: Block) -> bool:
        with self._cond:
            if self._end is not None or self._samples + block.samples > self._max:
                return False
            self._items.append(block)
            self._samples += block.samples
            self._cond.notify()
            return True

    def put_gap(self, gap: Gap) -> None:
        with self._cond:
            if self._end is not None:  # the timeline is closed; nothing may follow its End
                return
            last = self._items[-1] if self._items else None
            if isinstance(last, Gap) and last.end_sample == gap.start_sample:
                self._items[-1] = Gap(
                    last.start_sample,
                    last.samples + gap.samples,
                    last.estimated or gap.estimated,
                    last.cause | gap.cause,
                )
            else:
                self._items.append(gap)
            self._cond.notify()

    def finish(self, end: End) -> None:
        with self._cond:
            if self._end is None:
                self._end = end
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        return self._end is not None

    def get(self, timeout: float | None = None) -> Item | None:
        with self._cond:
            if not self._items and self._end is None:
                self._cond.wait_for(lambda: bool(self._items) or self._end is not None, timeout)
            if self._items:
                item = self._items.popleft()
                if isinstance(item, Block):
                    self._samples -= item.samples
                return item
            return self._end


@dataclass
class _Previous:
    adc: float
    mono: float
    frames: int


class CallbackSink:
    """Everything the PortAudio callback does, without PortAudio (tested in-process).

    ``hook`` is a fault-injection seam: called first in every callback, in the callback thread.
    A hook that blocks simulates a hung callback (STALLED); one that raises makes the callback
    abort the stream, as a driver error would (LOST).
    """

    def __init__(
        self,
        *,
        rate: int,
        queue: ItemQueue,
        clock: Callable[[], float],
        stopping: threading.Event,
        pace_realtime: bool = False,
        hook: Callable[[], object] | None = None,
    ) -> None:
        self.rate = rate
        self.queue = queue
        self._clock = clock
        self._stopping = stopping
        self._pace = pace_realtime
        self._hook = hook
        self._previous: _Previous | None = None
        self._pace_origin: float | None = None
        self.next_sample = 0
        self.callbacks = 0
        self.delivered_samples = 0
        self.lost_samples = 0
        self.last_callback = clock()
        self.error: str | None = None

    def on_block(self, pcm: bytes, frames: int, adc_time: float, overflow: bool) -> int:
        """Handle one callback; returns the PortAudio callback result (continue/complete/abort)."""
        now = self._clock()
        self.last_callback = now
        self.callbacks += 1
        try:
            if self._hook is not None:
                self._hook()
            if self._stopping.is_set():
                return PA_COMPLETE
            if overflow:
                self._disclose_overflow(adc_time, now)
            self._previous = _Previous(adc_time, now, frames)
            if self._pace:
                if self._pace_origin is None:
                    self._pace_origin = now
                due = self._pace_origin + (self.next_sample + frames) / self.rate
                delay = due - self._clock()
                if delay > 0 and self._stopping.wait(delay):
                    return PA_COMPLETE
            block = Block(self.next_sample, pcm[: frames * SAMPLE_WIDTH])
            if self.queue.put_block(block):
                self.delivered_samples += frames
            else:
                self.queue.put_gap(Gap(self.next_sample, frames, False, GapCause.QUEUE_FULL))
                self.lost_samples += frames
            self.next_sample += frames
            return PA_CONTINUE
        except BaseException as exc:  # anything going wrong here must end the stream, visibly
            self.error = f"{type(exc).__name__}: {exc}"
            return PA_ABORT

    def _disclose_overflow(self, adc_time: float, now: float) -> None:
        previous = self._previous
        if previous is None:
            log.warning("audio input overflow before the first block; nothing of it was lost")
            return
        lost, basis = estimate_overflow_samples(
            prev_adc=previous.adc,
            prev_mono=previous.mono,
            prev_frames=previous.frames,
            adc=adc_time,
            mono=now,
            rate=self.rate,
        )
        log.warning(
            "audio input overflow at sample %d: about %d samples lost (from %s)",
            self.next_sample,
            lost,
            basis,
        )
        self.queue.put_gap(Gap(self.next_sample, lost, True, GapCause.INPUT_OVERFLOW))
        self.next_sample += lost
        self.lost_samples += lost


class CaptureStream:
    """An open, running microphone stream. Get one from ``AudioBackend.open_capture``.

    Implements :class:`akkoord.audio.model.AudioSource`.
    """

    def __init__(
        self,
        pa: pyaudio.PyAudio,
        device: DeviceInfo,
        config: AudioConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        callback_hook: Callable[[], object] | None = None,
        pa_lock: PortAudioLock | None = None,
    ) -> None:
        import pyaudio

        self.device = device
        self._config = config
        self._clock = clock
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # guards the PortAudio stream object against close races
        self._pa_lock = pa_lock or PortAudioLock()  # shared with the backend: PortAudio calls
        self._closed = False
        self._lost_detail: str | None = None
        self.queue = ItemQueue(config.queue_samples)
        self.sink = CallbackSink(
            rate=config.sample_rate,
            queue=self.queue,
            clock=clock,
            stopping=self._stopping,
            pace_realtime=config.pace_realtime,
            hook=callback_hook,
        )
        sink = self.sink

        def callback(
            in_data: bytes | None, frame_count: int, time_info: dict[str, float], status: int
        ) -> tuple[None, int]:
            result = sink.on_block(
                in_data or b"",
                frame_count,
                time_info.get("input_buffer_adc_time", 0.0),
                bool(status & PA_INPUT_OVERFLOW),
            )
            return None, result

        try:
            self._stream: Any = pa.open(
                format=pyaudio.paInt16,
                channels=1,
                rate=config.sample_rate,
                input=True,
                input_device_index=device.index,
                frames_per_buffer=config.frames_per_buffer,
                stream_callback=callback,
                start=False,
            )
        except (OSError, ValueError) as exc:
            raise HardwareError(
                f"microphone [{device.index}] {device.name!r}: cannot open it for "
                f"{config.sample_rate} Hz mono 16-bit ({exc}). Check that it is connected and "
                "not in use by another program."
            ) from exc
        self.sink.last_callback = clock()
        try:
            self._stream.start_stream()
        except OSError as exc:
            self._stream.close()
            raise HardwareError(
                f"microphone [{device.index}] {device.name!r}: cannot start capturing ({exc})."
            ) from exc
        log.info(
            "capture started: [%d] %s, %d Hz, %d frames per buffer%s",
            device.index,
            device.name,
            config.sample_rate,
            config.frames_per_buffer,
            ", paced to real time" if config.pace_realtime else "",
        )

    @property
    def sample_rate(self) -> int:
        return self._config.sample_rate

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lost(self) -> bool:
        """True once the device was found gone (the stream ended without being asked)."""
        return self._lost_detail is not None

    def read(self, timeout: float | None = None) -> Item | None:
        item = self.queue.get(timeout)
        if item is None:
            self._check_lost()
        return item

    def _check_lost(self) -> None:
        """If PortAudio ended the stream on its own, end the item stream with LOST."""
        with self._lock:
            if self._closed or self._stopping.is_set() or self._stream.is_active():
                return
            detail = self.sink.error or _ENDED_BY_ITSELF
            if self._lost_detail is None:
                self._lost_detail = detail
                log.error("microphone %r lost: %s", self.device.name, detail)
        self.queue.finish(End(self.sink.next_sample, EndReason.LOST, detail))

    def health(self) -> SourceHealth:
        sink = self.sink
        since = max(0.0, self._clock() - sink.last_callback)
        common: dict[str, Any] = {
            "since_last_callback": None if self._closed else since,
            "callbacks": sink.callbacks,
            "delivered_samples": sink.delivered_samples,
            "lost_samples": sink.lost_samples,
        }
        if self._closed:
            return SourceHealth(SourceState.IDLE, **common)
        self._check_lost()
        if self._lost_detail is not None:
            return SourceHealth(SourceState.LOST, detail=self._lost_detail, **common)
        if since > self._config.stall_seconds:
            return SourceHealth(
                SourceState.STALLED,
                detail=f"no audio callback for {since:.1f} s "
                f"(limit {self._config.stall_seconds:g} s)",
                **common,
            )
        return SourceHealth(SourceState.RUNNING, **common)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop and close the PortAudio stream; the reader then drains and gets an :class:`End`.

        Raises :class:`HardwareError` if PortAudio does not stop within ``timeout`` seconds (a
        hung callback thread): the stream is then abandoned, the reader gets an End (LOST,
        "stream hung"), and the daemon must restart.
        """
        with self._lock:
            if self._closed:
                return
            if self._lost_detail is None and not self._stream.is_active():
                self._lost_detail = self.sink.error or _ENDED_BY_ITSELF
            self._stopping.set()
            done = threading.Event()
            errors: list[BaseException] = []

            def close() -> None:
                try:
                    with self._pa_lock.hold("close the microphone"):
                        try:
                            self._stream.stop_stream()
                        except OSError as exc:  # a failed stream may refuse to stop; close it
                            errors.append(exc)
                        try:
                            self._stream.close()
                        except OSError as exc:
                            errors.append(exc)
                except HardwareError as exc:
                    errors.append(exc)
                    return
                done.set()

            closer = threading.Thread(target=close, name="akkoord-capture-close", daemon=True)
            closer.start()
            if not done.wait(timeout):
                self._closed = True
                self._lost_detail = "stream hung"  # a later probe must start PortAudio afresh
                self.queue.finish(End(self.sink.next_sample, EndReason.LOST, "stream hung"))
                raise HardwareError(
                    f"microphone {self.device.name!r}: PortAudio did not stop the stream within "
                    f"{timeout:g} s (the audio callback hangs). Restart akkoord."
                )
            self._closed = True
            for exc in errors:
                log.debug("while closing the capture stream: %s", exc)
        reason = EndReason.LOST if self._lost_detail is not None else EndReason.STOPPED
        self.queue.finish(End(self.sink.next_sample, reason, self._lost_detail or ""))
        log.info(
            "capture stopped after %d samples (%d lost)",
            self.sink.next_sample,
            self.sink.lost_samples,
        )
