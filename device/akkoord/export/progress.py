"""Copy progress: samples written -> a fraction, reported at most every few percent.

The copy thread calls it for every second of audio; reporting each would flood the JSON
events and the journal, so it reports when the shown percentage moves by `step` or more.
Raising from it abandons the copy: that is how a pulled stick stops the writing thread.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["CopyCancelled", "CopyProgress"]


class CopyCancelled(Exception):
    """The copy was abandoned (stick removed, timed out) while it was being written."""


class CopyProgress:
    def __init__(
        self,
        total_samples: int,
        report: Callable[[float], None],
        *,
        cancelled: Callable[[], bool] = lambda: False,
        step: float = 0.05,
    ) -> None:
        self.total = max(int(total_samples), 0)
        self.report = report
        self.cancelled = cancelled
        self.step = step
        self._shown = -1.0

    def __call__(self, samples: int) -> None:
        if self.cancelled():
            raise CopyCancelled("the copy was abandoned")
        fraction = min(samples / self.total, 1.0) if self.total else 1.0
        if fraction - self._shown >= self.step - 1e-9 or (fraction >= 1.0 > self._shown):
            self._shown = fraction
            self.report(fraction)
