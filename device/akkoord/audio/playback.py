"""Play chimes and spoken prompts through the speaker, when there is one.

Playing is best effort: no speaker configured, the speaker missing, a file that cannot be read
or a PortAudio error all give ``False`` and a log line, never an exception, because a missing
chime must not stop a recording (the buzzer and LEDs still announce). Audio is written in short
chunks so a ``cancel`` event stops it within about 0.1 s.
"""

from __future__ import annotations

import logging
import threading
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from akkoord.audio.alsa import PortAudioLock
from akkoord.audio.devices import DeviceInfo, output_format
from akkoord.audio.model import SAMPLE_WIDTH
from akkoord.audio.resample import (
    downmix_to_mono,
    pcm_to_samples,
    resample,
    samples_to_pcm,
    to_channels,
)
from akkoord.errors import UsageError

if TYPE_CHECKING:
    import pyaudio

__all__ = ["CHUNK_SECONDS", "play_on_device", "read_wav_mono16"]

log = logging.getLogger(__name__)

CHUNK_SECONDS = 0.1


def read_wav_mono16(path: Path) -> tuple[bytes, int]:
    """A 16-bit PCM WAV file as mono PCM and its rate; :class:`UsageError` if it is not one."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise UsageError(f"sound file {path}: cannot read it as a PCM WAV file ({exc})") from exc
    if width != SAMPLE_WIDTH:
        raise UsageError(f"sound file {path}: {8 * width}-bit samples; 16-bit WAV needed")
    return downmix_to_mono(pcm, channels), rate


def play_on_device(
    pa: pyaudio.PyAudio,
    device: DeviceInfo,
    pcm: bytes,
    rate: int,
    *,
    open_lock: PortAudioLock,
    cancel: threading.Event | None = None,
) -> bool:
    """Play 16-bit mono ``pcm`` at ``rate`` on ``device``; blocks until played or cancelled.

    ``open_lock`` serialises opening and closing against the capture stream and PortAudio
    re-initialisation; the writes themselves run outside it. Raises :class:`HardwareError`
    only if that lock cannot be had (PortAudio hangs); the backend turns it into False.
    """
    import pyaudio

    with open_lock.hold("open the speaker"):
        chosen = output_format(pa, device, rate)
        if chosen is None:
            log.warning("speaker %r takes no 16-bit format; not playing", device.name)
            return False
        device_rate, channels = chosen
        try:
            stream: Any = pa.open(
                format=pyaudio.paInt16,
                channels=channels,
                rate=device_rate,
                output=True,
                output_device_index=device.index,
            )
        except (OSError, ValueError) as exc:
            log.warning("speaker %r: cannot open it (%s); not playing", device.name, exc)
            return False
    if device_rate != rate:
        pcm = samples_to_pcm(resample(pcm_to_samples(pcm), rate, device_rate))
    data = to_channels(pcm, channels)
    chunk = max(1, round(CHUNK_SECONDS * device_rate)) * channels * SAMPLE_WIDTH
    completed = True
    try:
        for offset in range(0, len(data), chunk):
            if cancel is not None and cancel.is_set():
                completed = False
                break
            stream.write(data[offset : offset + chunk], exception_on_underflow=False)
    except OSError as exc:
        log.warning("speaker %r failed while playing (%s)", device.name, exc)
        completed = False
    finally:
        with open_lock.hold("close the speaker"):
            try:
                if completed:  # let the last buffers play out; closing alone discards them
                    stream.stop_stream()
                stream.close()
            except OSError as exc:
                log.debug("closing the speaker stream: %s", exc)
    return completed
