"""The data an audio source hands out, and the interface every source implements.

Pure: no PyAudio, no clock. A source (the PortAudio capture, the WAV simulator) delivers items
on one *sample clock*: sample 0 is the first sample of the stream, and every item says where it
sits on that clock. Blocks and gaps tile the timeline with no hole and no overlap; the last item
is an :class:`End`.

::

    Block(0, 960 samples) Block(960, 960) Gap(1920, 480, estimated) Block(2400, 960) ... End(n)
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from akkoord.audio.devices import DeviceInfo

__all__ = [
    "SAMPLE_WIDTH",
    "AudioSource",
    "Block",
    "CaptureBackend",
    "End",
    "EndReason",
    "Gap",
    "GapCause",
    "Item",
    "Segment",
    "SoundPlayer",
    "SourceHealth",
    "SourceState",
]

#: Bytes per sample: akkoord records signed 16-bit little-endian mono PCM only.
SAMPLE_WIDTH = 2


class GapCause(enum.Flag):
    """Why samples are missing. A gap may combine causes (``INPUT_OVERFLOW | QUEUE_FULL``)."""

    #: The driver lost samples before they reached us (PortAudio ``paInputOverflow``).
    INPUT_OVERFLOW = enum.auto()
    #: Our bounded queue was full, so the callback dropped a block (the consumer fell behind).
    QUEUE_FULL = enum.auto()

    @property
    def label(self) -> str:
        """Stable text for logs and event frames, e.g. ``"input_overflow+queue_full"``."""
        names = [m.name.lower() for m in GapCause if m in self and m.name]
        return "+".join(names)


class EndReason(enum.Enum):
    """Why a source stopped delivering."""

    #: :meth:`AudioSource.stop` was called (the recording was stopped).
    STOPPED = "stopped"
    #: The device went away or failed (USB microphone pulled, driver error).
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class Block:
    """Captured PCM (16-bit LE mono) starting at ``start_sample`` on the source's sample clock."""

    start_sample: int
    pcm: bytes

    @property
    def samples(self) -> int:
        return len(self.pcm) // SAMPLE_WIDTH

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.samples


@dataclass(frozen=True, slots=True)
class Gap:
    """``samples`` samples (always >= 1) starting at ``start_sample`` were lost and are disclosed.

    ``estimated`` is True when the count comes from timestamps (a driver overflow) rather than
    from blocks we held in our hands and had to drop (queue full: exact).
    """

    start_sample: int
    samples: int
    estimated: bool
    cause: GapCause

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.samples


@dataclass(frozen=True, slots=True)
class End:
    """The last item of a stream: the timeline is ``[0, end_sample)``; nothing follows."""

    end_sample: int
    reason: EndReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Segment:
    """About ``segment_samples`` of contiguous PCM, as the store seals it."""

    start_sample: int
    pcm: bytes

    @property
    def samples(self) -> int:
        return len(self.pcm) // SAMPLE_WIDTH

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.samples


Item = Block | Gap | End


class SourceState(enum.Enum):
    """Health of a source, for the daemon's systemd watchdog.

    ::

        IDLE --open--> RUNNING <--callback--> STALLED     (no callback for > stall_seconds)
                          |                      |
                          +---- device error ----+--> LOST   (stream no longer active)
        RUNNING/STALLED/LOST --stop--> IDLE
    """

    IDLE = "idle"
    RUNNING = "running"
    STALLED = "stalled"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class SourceHealth:
    state: SourceState
    #: Seconds since the last audio callback (None when no stream is open).
    since_last_callback: float | None
    callbacks: int
    delivered_samples: int
    lost_samples: int
    detail: str = ""

    @property
    def healthy(self) -> bool:
        """True when the daemon may send ``WATCHDOG=1`` for the audio path."""
        return self.state in (SourceState.IDLE, SourceState.RUNNING)


class AudioSource(Protocol):
    """What the recorder reads from: the PortAudio capture or the WAV simulator.

    The source is already delivering when you get it. ``read`` hands out items in timeline order;
    after :meth:`stop` (or a lost device) it hands out what is still queued, then one :class:`End`,
    then keeps returning that same :class:`End`.
    """

    @property
    def sample_rate(self) -> int: ...

    def read(self, timeout: float | None = None) -> Item | None:
        """The next item, or None if none arrived within ``timeout`` seconds."""
        ...

    def stop(self) -> None:
        """Stop delivering audio and release the device; idempotent, safe from any thread."""
        ...

    def health(self) -> SourceHealth: ...


class SoundPlayer(Protocol):
    """Plays chimes and prompts; False (never an exception) when it cannot."""

    def play_pcm(self, pcm: bytes, rate: int, *, cancel: threading.Event | None = None) -> bool: ...

    def play_wav(self, path: Path, *, cancel: threading.Event | None = None) -> bool: ...


class CaptureBackend(SoundPlayer, Protocol):
    """What the daemon holds: the real ``AudioBackend`` or the simulator's ``WavBackend``."""

    def start(self) -> DeviceInfo:
        """Get ready and find the microphone; ``HardwareError`` if there is none."""
        ...

    def open_capture(self, *, callback_hook: Callable[[], object] | None = None) -> AudioSource:
        """Start capturing now (both parties consented)."""
        ...

    def probe_input(self, *, force: bool = False) -> DeviceInfo | None:
        """Is the microphone there (again)? Never raises for a missing device."""
        ...

    def reinitialise(self) -> None: ...

    def close(self) -> None: ...
