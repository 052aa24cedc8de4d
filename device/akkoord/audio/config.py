"""The ``[audio]`` table of akkoord.toml, parsed into an :class:`AudioConfig`. Pure.

::

    [audio]
    input_device = "USB"        # substring of the input device's name (card numbers move)
    output_device = "USB"       # substring, or "" for no speaker (chimes go to the buzzer)
    sample_rate = 48000         # 48000 or 16000
    frames_per_buffer = 2400    # PortAudio callback block: 50 ms at 48 kHz (see below)
    queue_seconds = 10.0        # audio the callback may queue while the writer is busy
    segment_seconds = 1.0       # store segment length
    pace_realtime = false       # true only for virtual devices that deliver faster than real time
    stall_seconds = 2.0         # no callback for this long = STALLED (watchdog withheld)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from akkoord.errors import ConfigError

__all__ = ["SAMPLE_RATES", "AudioConfig", "parse_audio_config"]

SAMPLE_RATES = (48000, 16000)


@dataclass(frozen=True)
class AudioConfig:
    #: Case-insensitive substring of the input device name; an exact name match wins.
    input_device: str = "default"
    #: Substring of the output device name, or None: no speaker, playback is a logged no-op.
    output_device: str | None = None
    sample_rate: int = 48000
    #: Frames per PortAudio callback. Each callback costs ~0.2 ms of CPU in PyAudio itself (a
    #: Python thread state and a GIL hand-over per call, measured here), so 50 ms blocks keep
    #: capture well under 1 % of a core; larger blocks also make PortAudio ask ALSA for a larger
    #: buffer, which rides out scheduling hiccups better. The start latency grows by one block.
    frames_per_buffer: int = 2400
    queue_seconds: float = 10.0
    segment_seconds: float = 1.0
    #: Hold each block back until its real time has come. For virtual capture devices (ALSA's
    #: ``file`` plugin in tests and benchmarks) that deliver as fast as they can; a real
    #: microphone is paced by its own clock, so leave this off on the device.
    pace_realtime: bool = False
    stall_seconds: float = 2.0

    @property
    def block_seconds(self) -> float:
        return self.frames_per_buffer / self.sample_rate

    @property
    def queue_samples(self) -> int:
        """Queue bound in samples: at least two blocks."""
        return max(2 * self.frames_per_buffer, math.ceil(self.queue_seconds * self.sample_rate))

    @property
    def segment_samples(self) -> int:
        return max(1, round(self.segment_seconds * self.sample_rate))


def _err(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"{source}: [audio] {key} {problem}")


def _number(table: Mapping[str, Any], key: str, source: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _err(source, key, f"must be a number of seconds, not {value!r}")
    if not math.isfinite(value):
        raise _err(source, key, f"must be a finite number, not {value!r}")
    return float(value)


def _integer(table: Mapping[str, Any], key: str, source: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(source, key, f"must be a whole number, not {value!r}")
    return value


def _device(table: Mapping[str, Any], key: str, source: str, default: str | None) -> str | None:
    value = table.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _err(source, key, f"must be text (part of the device name), not {value!r}")
    return value.strip()


def parse_audio_config(table: Mapping[str, Any], source: str) -> AudioConfig:
    """Validate an ``[audio]`` table; ``source`` (usually the file path) goes into every error."""
    known = {f.name for f in fields(AudioConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"{source}: [audio] has unknown key(s) {', '.join(unknown)}; "
            f"known keys are {', '.join(sorted(known))}"
        )
    d = AudioConfig()

    input_device = _device(table, "input_device", source, d.input_device)
    if not input_device:
        raise _err(source, "input_device", "must name (part of) the microphone's device name")

    output_device = _device(table, "output_device", source, d.output_device) or None

    rate = _integer(table, "sample_rate", source, d.sample_rate)
    if rate not in SAMPLE_RATES:
        raise _err(source, "sample_rate", f"= {rate} is not supported; use 48000 or 16000")

    fpb = _integer(table, "frames_per_buffer", source, d.frames_per_buffer)
    if not 64 <= fpb <= 16384:
        raise _err(source, "frames_per_buffer", f"= {fpb} is out of range; use 64 to 16384")

    queue_seconds = _number(table, "queue_seconds", source, d.queue_seconds)
    if not 0.1 <= queue_seconds <= 120:
        raise _err(source, "queue_seconds", f"= {queue_seconds} is out of range; use 0.1 to 120")
    if queue_seconds * rate < 2 * fpb:
        raise _err(
            source,
            "queue_seconds",
            f"= {queue_seconds} holds fewer than two blocks of {fpb} frames at {rate} Hz",
        )

    segment_seconds = _number(table, "segment_seconds", source, d.segment_seconds)
    if not 0.1 <= segment_seconds <= 10:
        raise _err(source, "segment_seconds", f"= {segment_seconds} is out of range; use 0.1 to 10")

    pace = table.get("pace_realtime", d.pace_realtime)
    if not isinstance(pace, bool):
        raise _err(source, "pace_realtime", f"must be true or false, not {pace!r}")

    stall = _number(table, "stall_seconds", source, d.stall_seconds)
    minimum_stall = 2 * fpb / rate
    if not minimum_stall <= stall <= 60:
        raise _err(
            source,
            "stall_seconds",
            f"= {stall} is out of range; use {minimum_stall:g} (two blocks) to 60",
        )

    return AudioConfig(
        input_device=input_device,
        output_device=output_device,
        sample_rate=rate,
        frames_per_buffer=fpb,
        queue_seconds=queue_seconds,
        segment_seconds=segment_seconds,
        pace_realtime=pace,
        stall_seconds=stall,
    )
