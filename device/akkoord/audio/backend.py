"""The one PortAudio instance of the daemon, and everything that needs it.

PortAudio is initialised once (quietly) and kept alive between recordings, so that opening the
microphone after the second press costs only ``Pa_OpenStream`` + ``Pa_StartStream``. PortAudio
lists devices only when it initialises, so a microphone plugged in later is seen only after
:meth:`AudioBackend.reinitialise`; :meth:`AudioBackend.probe_input` does that when the sound
hardware changed (``/proc/asound/cards`` or ``/dev/snd``), cheap enough to poll every second or
two while a "no microphone" fault is shown.

Every PortAudio call that opens, closes or (re)initialises runs under one
:class:`akkoord.audio.alsa.PortAudioLock`: PortAudio is not thread-safe for those, and the
capture, the chime player and the probe run in different threads.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akkoord.audio.alsa import PortAudioLock, open_portaudio
from akkoord.audio.capture import CaptureStream
from akkoord.audio.config import AudioConfig
from akkoord.audio.devices import (
    DeviceInfo,
    find_input_device,
    find_output_device,
    list_devices,
)
from akkoord.audio.playback import play_on_device, read_wav_mono16
from akkoord.errors import AkkoordError, HardwareError

if TYPE_CHECKING:
    import pyaudio

__all__ = ["AudioBackend", "sound_hardware_fingerprint"]

log = logging.getLogger(__name__)


def sound_hardware_fingerprint() -> object:
    """Changes when a sound card comes or goes (cards list and /dev/snd nodes)."""
    try:
        cards = Path("/proc/asound/cards").read_text()
    except OSError:
        cards = ""
    try:
        nodes = tuple(sorted(os.listdir("/dev/snd")))
    except OSError:
        nodes = ()
    return cards, nodes


class AudioBackend:
    """Owns PyAudio; opens captures, plays sounds, finds and re-finds devices.

    Nothing is touched until first use (or :meth:`start`).
    """

    def __init__(
        self,
        config: AudioConfig,
        *,
        portaudio_factory: Callable[[], pyaudio.PyAudio] = open_portaudio,
        clock: Callable[[], float] = time.monotonic,
        hardware_fingerprint: Callable[[], object] = sound_hardware_fingerprint,
    ) -> None:
        self.config = config
        self._factory = portaudio_factory
        self._clock = clock
        self._fingerprint = hardware_fingerprint
        self._lock = PortAudioLock()
        self._pa: Any = None
        self._seen_hardware: object = None
        self._input: DeviceInfo | None = None
        self._capture: CaptureStream | None = None

    # -- PortAudio lifetime -------------------------------------------------------------

    def _portaudio(self) -> Any:
        """The live PyAudio instance; caller holds the lock."""
        if self._pa is None:
            self._seen_hardware = self._fingerprint()
            started = self._clock()
            try:
                self._pa = self._factory()
            except OSError as exc:
                raise HardwareError(
                    f"audio: PortAudio could not start ({exc}); check the sound drivers "
                    "(`aplay -l`, `arecord -l`)"
                ) from exc
            log.info(
                "PortAudio initialised in %.0f ms: %d device(s)",
                1000 * (self._clock() - started),
                self._pa.get_device_count(),
            )
        return self._pa

    def start(self) -> DeviceInfo:
        """Initialise PortAudio and find the microphone; :class:`HardwareError` if it is absent."""
        return self.input_device()

    def reinitialise(self) -> None:
        """Terminate and re-initialise PortAudio, so devices plugged in since are listed."""
        with self._lock.hold("re-initialise PortAudio"):
            if self._capture is not None and not self._capture.closed:
                raise HardwareError(
                    "audio: cannot re-initialise PortAudio while a recording's microphone "
                    "stream is open; stop the recording first"
                )
            self._terminate()
            self._portaudio()

    def _terminate(self) -> None:
        if self._pa is not None:
            try:
                self._pa.terminate()
            except OSError as exc:
                log.debug("PortAudio terminate: %s", exc)
        self._pa = None
        self._input = None

    def close(self) -> None:
        """Stop any capture and release PortAudio (at daemon exit)."""
        capture = self._capture
        if capture is not None:
            capture.stop()
        with self._lock.hold("close PortAudio"):
            self._terminate()

    # -- devices --------------------------------------------------------------------------

    def devices(self) -> list[DeviceInfo]:
        with self._lock.hold("list sound devices"):
            return list_devices(self._portaudio())

    def input_device(self) -> DeviceInfo:
        """The configured microphone (cached until re-initialisation)."""
        with self._lock.hold("look for the microphone"):
            return self._find_input()

    def _find_input(self) -> DeviceInfo:
        if self._input is None:
            self._input = find_input_device(
                self._portaudio(), self.config.input_device, self.config.sample_rate
            )
            log.info("microphone: [%d] %s", self._input.index, self._input.name)
        return self._input

    def probe_input(self, *, force: bool = False) -> DeviceInfo | None:
        """Is the microphone there (again)? For polling while a "no microphone" fault shows.

        Re-initialises PortAudio first if the sound hardware changed since the last
        initialisation, if the last capture lost its device, or if ``force``. Returns the
        device, or None; never raises for a missing device. Refuses (returns None) while a
        capture is open.
        """
        try:
            with self._lock.hold("probe for the microphone"):
                return self._probe_input(force)
        except HardwareError as exc:
            log.debug("microphone probe: %s", exc)
            return None

    def _probe_input(self, force: bool) -> DeviceInfo | None:
        capture = self._capture
        if capture is not None and not capture.closed:
            return None
        if capture is not None and capture.lost:
            # PortAudio still lists the device it lost; only a fresh start tells the truth
            force = True
            self._capture = None
        if force or self._pa is None or self._fingerprint() != self._seen_hardware:
            self._terminate()
        return self._find_input()

    # -- capture ----------------------------------------------------------------------------

    def open_capture(self, *, callback_hook: Callable[[], object] | None = None) -> CaptureStream:
        """Open and start the microphone now. Only one capture at a time.

        ``callback_hook`` is a fault-injection seam for tests (see
        :class:`akkoord.audio.capture.CallbackSink`).
        """
        with self._lock.hold("open the microphone"):
            if self._capture is not None and not self._capture.closed:
                raise HardwareError("audio: a capture is already open; stop it first")
            device = self._find_input()
            try:
                capture = CaptureStream(
                    self._portaudio(),
                    device,
                    self.config,
                    clock=self._clock,
                    callback_hook=callback_hook,
                    pa_lock=self._lock,
                )
            except HardwareError:
                self._input = None  # look again next time: the device may have moved
                raise
            self._capture = capture
            return capture

    # -- playback -----------------------------------------------------------------------------

    def play_pcm(self, pcm: bytes, rate: int, *, cancel: threading.Event | None = None) -> bool:
        """Play 16-bit mono PCM; False (and a log line) when there is no speaker or it fails."""
        wanted = self.config.output_device
        if not wanted:
            log.info("no speaker configured ([audio] output_device); sound not played")
            return False
        try:
            with self._lock.hold("play a sound"):
                pa = self._portaudio()
                device = find_output_device(pa, wanted)
        except AkkoordError as exc:
            log.warning("sound not played: %s", exc)
            return False
        try:
            return play_on_device(pa, device, pcm, rate, open_lock=self._lock, cancel=cancel)
        except AkkoordError as exc:
            log.warning("sound not played: %s", exc)
            return False

    def play_wav(self, path: Path, *, cancel: threading.Event | None = None) -> bool:
        """Play a 16-bit WAV file (a spoken prompt); False when it cannot be played."""
        try:
            pcm, rate = read_wav_mono16(Path(path))
        except AkkoordError as exc:
            log.warning("sound not played: %s", exc)
            return False
        return self.play_pcm(pcm, rate, cancel=cancel)
