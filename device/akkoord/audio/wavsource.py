"""A WAV file standing in for the microphone (``akkoord run --simulate --audio-file F.wav``).

Same interface as the PortAudio capture (:class:`akkoord.audio.model.AudioSource`), pull-based:
``read`` waits until the next block's real time has come (block k of n samples is due at
``start + (k + 1) * n / rate``), so the simulator records at 1x like a microphone would. Time is
injected (``clock`` and ``wait``) so tests run without real waiting.

Choices, so recordings stay predictable:

* Every source starts at the beginning of the file when it is opened (each recording hears the
  file from its first sample), like a tape that plays while recording.
* After the file's last sample it delivers digital silence (zeros) until stopped; a recording
  never ends because the file did.
* ``stop`` ends the timeline at the samples that were due by then: ``read`` hands out what is
  still due (the last block may be short), then an :class:`End`.
* 16-bit files only. Stereo is averaged to mono; another sample rate is converted with linear
  interpolation (the recording then holds the converted samples). Anything else is refused with
  a :class:`UsageError` that says how to convert the file.
* ``lose`` (and ``WavBackend.unplug``) simulates a pulled microphone: the samples due by then
  are handed out, then an :class:`End` with reason LOST; health says LOST until ``stop``.
* A consumer that falls behind makes the source lag; it never drops samples (a real
  microphone's queue would overflow: use the PortAudio capture to test that).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path

from akkoord.audio.config import AudioConfig
from akkoord.audio.devices import DeviceInfo
from akkoord.audio.model import (
    SAMPLE_WIDTH,
    Block,
    End,
    EndReason,
    Item,
    SoundPlayer,
    SourceHealth,
    SourceState,
)
from akkoord.audio.resample import (
    LinearResampler,
    downmix_to_mono,
    pcm_to_samples,
    samples_to_pcm,
)
from akkoord.errors import HardwareError, UsageError

__all__ = ["WavBackend", "WavSource", "check_wav"]

log = logging.getLogger(__name__)


def _refuse(path: Path, problem: str, rate: int) -> UsageError:
    return UsageError(
        f"audio file {path}: {problem}. Convert it, e.g. "
        f"`sox {path.name} -r {rate} -c 1 -b 16 -e signed-integer out.wav`"
    )


def check_wav(path: Path, rate: int) -> tuple[int, int, int]:
    """Open-and-check: (channels, frame rate, frames) or :class:`UsageError`."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, src_rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.getnframes()
    except FileNotFoundError as exc:
        raise UsageError(f"audio file {path}: not found") from exc
    except (wave.Error, EOFError, OSError) as exc:
        raise _refuse(path, f"not a readable PCM WAV file ({exc})", rate) from exc
    if width != SAMPLE_WIDTH:
        raise _refuse(path, f"{8 * width}-bit samples; akkoord needs 16-bit", rate)
    if channels not in (1, 2):
        raise _refuse(path, f"{channels} channels; akkoord takes mono (or stereo, mixed)", rate)
    return channels, src_rate, frames


class WavSource:
    """Paced WAV playback into the recorder. See the module docstring for the rules."""

    def __init__(
        self,
        path: Path,
        config: AudioConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        self.path = Path(path)
        self._rate = config.sample_rate
        self._block = config.frames_per_buffer
        channels, src_rate, _frames = check_wav(self.path, self._rate)
        self._channels = channels
        self._resampler = LinearResampler(src_rate, self._rate) if src_rate != self._rate else None
        if self._resampler is not None or channels != 1:
            log.warning(
                "audio file %s is %d Hz, %d channel(s): converting to %d Hz mono",
                path,
                src_rate,
                channels,
                self._rate,
            )
        self._wav = wave.open(str(self.path), "rb")  # noqa: SIM115 - closed in stop()
        self._eof = False
        self._pending = bytearray()
        self._clock = clock
        self._stopping = threading.Event()
        self._wait = wait if wait is not None else self._stopping.wait
        self._stop_sample: int | None = None
        self._stopped = False
        self._lost_detail: str | None = None
        self._end: End | None = None
        self._pos = 0
        self._start = clock()

    @property
    def sample_rate(self) -> int:
        return self._rate

    def _due(self, sample: int) -> float:
        return self._start + sample / self._rate

    def _take(self, samples: int) -> bytes:
        """The next ``samples`` of converted audio (zeros past the end of the file)."""
        want = samples * SAMPLE_WIDTH
        while len(self._pending) < want and not self._eof:
            raw = self._wav.readframes(max(self._block, 1024))
            if not raw:
                self._eof = True
                log.info("audio file %s ended; delivering silence until stopped", self.path)
                break
            pcm = downmix_to_mono(raw, self._channels)
            if self._resampler is not None:
                pcm = samples_to_pcm(self._resampler.process(pcm_to_samples(pcm)))
            self._pending += pcm
        out = bytes(self._pending[:want])
        del self._pending[:want]
        return out + bytes(want - len(out))

    def read(self, timeout: float | None = None) -> Item | None:
        if self._end is not None:
            return self._end
        if not self._stopping.is_set():
            delay = self._due(self._pos + self._block) - self._clock()
            if delay > 0:
                if timeout is not None and delay > timeout:
                    self._wait(timeout)
                    return None
                self._wait(delay)
        n = self._block
        if self._stopping.is_set():
            assert self._stop_sample is not None
            n = min(n, self._stop_sample - self._pos)
            if n <= 0:
                reason = EndReason.STOPPED if self._lost_detail is None else EndReason.LOST
                self._end = End(self._pos, reason, self._lost_detail or "")
                self._wav.close()
                return self._end
        block = Block(self._pos, self._take(n))
        self._pos += n
        return block

    def _end_now(self) -> None:
        # floor, with a little slack for float error (499.99999 samples due means 500)
        due = math.floor((self._clock() - self._start) * self._rate + 1e-6)
        self._stop_sample = max(self._pos, due)
        self._stopping.set()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if not self._stopping.is_set():
            self._end_now()
        log.info("simulated capture stopped at sample %d", self._stop_sample)

    def lose(self, detail: str = "microphone unplugged (simulated)") -> None:
        """Simulate the device going away: what was due is still handed out, then End(LOST)."""
        if self._stopping.is_set():
            return
        self._lost_detail = detail
        self._end_now()
        log.warning("simulated capture lost at sample %d: %s", self._stop_sample, detail)

    def health(self) -> SourceHealth:
        if self._stopped:
            state = SourceState.IDLE
        elif self._lost_detail is not None:
            state = SourceState.LOST
        else:
            state = SourceState.RUNNING
        return SourceHealth(
            state,
            since_last_callback=None if state is SourceState.IDLE else 0.0,
            callbacks=self._pos // self._block,
            delivered_samples=self._pos,
            lost_samples=0,
            detail=self._lost_detail or f"simulated from {self.path.name}",
        )


class WavBackend:
    """Stands in for :class:`akkoord.audio.backend.AudioBackend` when simulating.

    Every capture is a fresh :class:`WavSource` (the file from its first sample). ``unplug`` and
    ``plug`` simulate the microphone going away and coming back (the simulator's ``unplug``).
    Sounds go to ``speaker`` (a real backend) if given, else are a logged no-op.
    """

    def __init__(
        self,
        path: Path,
        config: AudioConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], object] | None = None,
        speaker: SoundPlayer | None = None,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self._clock = clock
        self._wait = wait
        self._speaker = speaker
        self._plugged = True
        self._capture: WavSource | None = None

    def _device(self) -> DeviceInfo:
        return DeviceInfo(
            -1, f"simulated microphone: {self.path.name}", 1, 0, self.config.sample_rate, "wav"
        )

    def start(self) -> DeviceInfo:
        return self.input_device()

    def input_device(self) -> DeviceInfo:
        if not self._plugged:
            raise HardwareError(
                f"microphone: the simulated microphone ({self.path.name}) is unplugged"
            )
        check_wav(self.path, self.config.sample_rate)
        return self._device()

    def probe_input(self, *, force: bool = False) -> DeviceInfo | None:
        return self._device() if self._plugged else None

    def reinitialise(self) -> None:
        return None

    def open_capture(self, *, callback_hook: Callable[[], object] | None = None) -> WavSource:
        self.input_device()
        self._capture = WavSource(self.path, self.config, clock=self._clock, wait=self._wait)
        return self._capture

    def unplug(self) -> None:
        self._plugged = False
        if self._capture is not None:
            self._capture.lose()

    def plug(self) -> None:
        self._plugged = True

    def play_pcm(self, pcm: bytes, rate: int, *, cancel: threading.Event | None = None) -> bool:
        if self._speaker is None:
            log.info("simulation without speaker: sound not played")
            return False
        return self._speaker.play_pcm(pcm, rate, cancel=cancel)

    def play_wav(self, path: Path, *, cancel: threading.Event | None = None) -> bool:
        if self._speaker is None:
            log.info("simulation without speaker: %s not played", Path(path).name)
            return False
        return self._speaker.play_wav(path, cancel=cancel)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.stop()
