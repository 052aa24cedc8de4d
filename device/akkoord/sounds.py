"""Chimes as data, and a pure renderer to 16-bit mono PCM.

A chime is a short sequence of notes: ``(frequency in Hz, or None for a rest; seconds)``.
The same data drives two outputs: the panel's piezo buzzer plays the notes directly (gpiozero
``TonalBuzzer``, or on/off for an active buzzer), and the audio player renders them with
:func:`render_pcm` for a speaker, so that the chime ends up inside the recording.

Every frequency lies between :data:`MIN_HZ` and :data:`MAX_HZ` (the range the panel's
``TonalBuzzer`` is built for). Chimes that mean "yes / go" rise, chimes that mean "stopped /
expired" fall, and trouble is low: a listener can tell them apart without learning them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from enum import StrEnum

__all__ = [
    "CHIMES",
    "MAX_HZ",
    "MIN_HZ",
    "ChimeName",
    "Note",
    "chime_duration",
    "render_pcm",
]

#: One note: frequency in Hz (None = silence) and duration in seconds.
Note = tuple[float | None, float]

#: The buzzer is built for A5 (880 Hz) +/- 2 octaves; every chime stays inside.
MIN_HZ = 220.0
MAX_HZ = 3520.0

# Named pitches keep the table readable (equal temperament, A4 = 440 Hz).
_C4, _E4, _G4, _A4 = 261.63, 329.63, 392.00, 440.00
_C5, _E5, _G5, _A5 = 523.25, 659.26, 783.99, 880.00
_D6, _C6, _E6, _G6, _C7 = 1174.66, 1046.50, 1318.51, 1567.98, 2093.00


class ChimeName(StrEnum):
    """Every chime the device plays; the value is the stable name used in logs and files."""

    CONSENT = "consent"
    RECORDING_START = "recording_start"
    RECORDING_STOP = "recording_stop"
    WINDOW_EXPIRED = "window_expired"
    FAULT = "fault"
    COPY_CONFIRM = "copy_confirm"
    COPY_DONE = "copy_done"
    COPY_FAILED = "copy_failed"
    NO_RECORDING = "no_recording"


CHIMES: dict[ChimeName, tuple[Note, ...]] = {
    # A single bright note: "your press counted".
    ChimeName.CONSENT: ((_E6, 0.15),),
    # Rising triad: recording begins.
    ChimeName.RECORDING_START: ((_C6, 0.12), (None, 0.03), (_E6, 0.12), (None, 0.03), (_G6, 0.30)),
    # The same triad falling: recording ended.
    ChimeName.RECORDING_STOP: ((_G6, 0.12), (None, 0.03), (_E6, 0.12), (None, 0.03), (_C6, 0.30)),
    # Two falling mid notes, slower than stop: "nothing happened, time ran out".
    ChimeName.WINDOW_EXPIRED: ((_G5, 0.25), (None, 0.08), (_C5, 0.45)),
    # Low, repeated: something is wrong, nothing will record.
    ChimeName.FAULT: ((_C4, 0.30), (None, 0.10), (_C4, 0.30)),
    # A "question": two rising notes, asking both parties to press.
    ChimeName.COPY_CONFIRM: ((_A5, 0.15), (None, 0.05), (_D6, 0.25)),
    # A rising arpeggio ending high: copy written and checked.
    ChimeName.COPY_DONE: ((_C6, 0.10), (_E6, 0.10), (_G6, 0.10), (_C7, 0.35)),
    # Descending to low: copy failed (distinct from FAULT by its three steps).
    ChimeName.COPY_FAILED: ((_A4, 0.25), (None, 0.05), (_E4, 0.25), (None, 0.05), (_C4, 0.45)),
    # Two flat mid notes: "there is nothing to copy".
    ChimeName.NO_RECORDING: ((_E5, 0.15), (None, 0.10), (_E5, 0.15)),
}

# Fades at each note edge avoid clicks through a speaker (and through the recording).
_FADE_S = 0.005


def chime_duration(name: ChimeName) -> float:
    """Total length of a chime in seconds."""
    return sum(duration for _, duration in CHIMES[name])


def render_pcm(
    notes: ChimeName | Sequence[Note],
    sample_rate: int = 16_000,
    volume: float = 0.5,
) -> bytes:
    """Render a chime (by name, or a note sequence) to 16-bit signed little-endian mono PCM.

    Pure and deterministic: the same input gives the same bytes. ``volume`` is the peak
    amplitude as a fraction of full scale (0..1).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not 0.0 <= volume <= 1.0:
        raise ValueError(f"volume must be within 0..1, got {volume}")
    sequence = CHIMES[notes] if isinstance(notes, ChimeName) else tuple(notes)
    peak = volume * 32767.0
    fade = max(1, int(_FADE_S * sample_rate))
    samples: list[int] = []
    for frequency, duration in sequence:
        if duration < 0:
            raise ValueError(f"note duration must be >= 0, got {duration}")
        count = round(duration * sample_rate)
        if frequency is None:
            samples.extend([0] * count)
            continue
        step = 2.0 * math.pi * frequency / sample_rate
        for i in range(count):
            envelope = min(1.0, i / fade, (count - 1 - i) / fade)
            samples.append(round(peak * envelope * math.sin(step * i)))
    return struct.pack(f"<{len(samples)}h", *samples)
