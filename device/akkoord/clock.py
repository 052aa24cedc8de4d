"""Wall time with its quality, and a monotonic clock, behind one seam.

Wall clocks jump (no RTC, NTP arriving mid-recording, fake-hwclock). akkoord records wall time
with how much it can be trusted and never orders anything by it: order comes from frame
indexes, positions and durations from sample counts.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Clock", "FixedClock", "SystemClock", "WallTime", "clock_quality"]

NTP = "ntp"  # the kernel says the clock is synchronised (NTP or PTP)
RTC = "rtc"  # set from a battery-backed real-time clock at boot, not synchronised since
UNSYNC = "unsynchronized"  # neither: the time may be anything (fake-hwclock, factory default)
QUALITIES = (NTP, RTC, UNSYNC)

_TIME_ERROR = 5  # adjtimex(2): clock not synchronised
_TIMEX_SIZE = 512  # generously larger than struct timex on every Linux ABI


@dataclass(frozen=True, slots=True)
class WallTime:
    utc: str  # RFC 3339, UTC, millisecond precision
    clock: str  # one of QUALITIES

    def to_json(self) -> dict[str, Any]:
        return {"utc": self.utc, "clock": self.clock}


class Clock(Protocol):
    def wall(self) -> WallTime: ...

    def wall_ago(self, seconds: float) -> WallTime:
        """Wall time `seconds` ago (a press stamped on the monotonic clock), same quality."""
        ...

    def monotonic(self) -> float: ...


def _format_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _kernel_synchronised() -> bool | None:
    """adjtimex with modes=0 only reads; None where it cannot be asked."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # libc is already loaded: no ldconfig subprocess
        buf = ctypes.create_string_buffer(_TIMEX_SIZE)  # modes = 0: read-only query
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR


def clock_quality(rtc_root: Path = Path("/sys/class/rtc")) -> str:
    synced = _kernel_synchronised()
    if synced:
        return NTP
    try:
        for rtc in rtc_root.iterdir():
            if (rtc / "hctosys").read_text().strip() == "1":
                return RTC
    except OSError:
        pass
    return UNSYNC


class SystemClock:
    """The real clocks. Quality is re-read at most every few seconds (it is a syscall + sysfs)."""

    def __init__(self, quality_ttl: float = 5.0) -> None:
        self._ttl = quality_ttl
        self._quality = UNSYNC
        self._checked = -1e18

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> WallTime:
        now = time.monotonic()
        if now - self._checked > self._ttl:
            self._quality = clock_quality()
            self._checked = now
        return WallTime(_format_utc(time.time()), self._quality)

    def wall_ago(self, seconds: float) -> WallTime:
        now = self.wall()
        return WallTime(_format_utc(time.time() - seconds), now.clock)

    def wall_epoch(self) -> float:
        return time.time()


class FixedClock:
    """A clock tests and test vectors drive by hand."""

    def __init__(self, start: float = 1_800_000_000.0, quality: str = NTP) -> None:
        self.t = start
        self.mono = 1000.0
        self.quality = quality

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.mono += seconds

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> WallTime:
        return WallTime(_format_utc(self.t), self.quality)

    def wall_ago(self, seconds: float) -> WallTime:
        return WallTime(_format_utc(self.t - seconds), self.quality)

    def wall_epoch(self) -> float:
        return self.t
