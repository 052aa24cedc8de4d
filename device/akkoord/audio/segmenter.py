"""Cut a stream of blocks and gaps into store segments. Pure: no I/O, no clock.

Segments are aligned to the sample clock: a segment never crosses a multiple of
``segment_samples`` (counted from sample 0 of the stream), and a gap ends the segment before it
early. So, with 1 s segments, segment boundaries fall on whole seconds of the recording's
timeline, and "changed at second N" means the same thing everywhere. Segments and gaps come out
in order and tile the timeline exactly: each item starts where the previous one ended.

::

    blocks  |--b0--|--b1--|--b2--|  gap  |--b3--|--b4--|
    out     |----seg0----|-s1-|  gap  |s2|----seg3----|...      (| = multiple of N)
"""

from __future__ import annotations

from akkoord.audio.model import SAMPLE_WIDTH, Block, Gap, Segment

__all__ = ["Segmenter", "segment_samples_for"]


def segment_samples_for(segment_seconds: float, sample_rate: int) -> int:
    """Samples per segment for a duration, at least 1."""
    return max(1, round(segment_seconds * sample_rate))


class Segmenter:
    """Accumulates :class:`Block` PCM and emits :class:`Segment` and :class:`Gap` items.

    ``push`` returns what became complete; ``flush`` (at stop) returns the partial last segment.
    Items must arrive contiguously (each starts where the previous ended); anything else is a bug
    in the source and raises ``ValueError`` rather than silently re-timing audio.
    """

    def __init__(self, segment_samples: int, *, start_sample: int = 0) -> None:
        if segment_samples < 1:
            raise ValueError(f"segment_samples must be >= 1, not {segment_samples}")
        self._n = segment_samples
        self._next = start_sample  # the sample the next item must start at
        self._seg_start = start_sample  # start of the PCM held in _buf
        self._buf = bytearray()

    @property
    def next_sample(self) -> int:
        """Where the next pushed item must start (the end of the timeline so far)."""
        return self._next

    @property
    def pending_samples(self) -> int:
        """Samples held for the current, unfinished segment."""
        return len(self._buf) // SAMPLE_WIDTH

    def push(self, item: Block | Gap) -> list[Segment | Gap]:
        if item.start_sample != self._next:
            raise ValueError(
                f"segmenter: item starts at sample {item.start_sample}, expected {self._next} "
                "(the source broke its timeline)"
            )
        if isinstance(item, Gap):
            if item.samples < 1:
                raise ValueError(f"segmenter: gap at sample {item.start_sample} has no samples")
            out: list[Segment | Gap] = list(self.flush())
            out.append(item)
            self._next = item.end_sample
            self._seg_start = self._next
            return out
        if len(item.pcm) % SAMPLE_WIDTH:
            raise ValueError(
                f"segmenter: block at sample {item.start_sample} has {len(item.pcm)} bytes, "
                f"not a multiple of {SAMPLE_WIDTH}"
            )
        out = []
        pcm = memoryview(item.pcm)
        while pcm:
            position = self._seg_start + self.pending_samples
            room = self._n - position % self._n
            take = min(room, len(pcm) // SAMPLE_WIDTH)
            self._buf += pcm[: take * SAMPLE_WIDTH]
            pcm = pcm[take * SAMPLE_WIDTH :]
            if take == room:
                out.extend(self.flush())
        self._next = item.end_sample
        return out

    def flush(self) -> list[Segment]:
        """Emit the partial segment held so far (empty list if none)."""
        if not self._buf:
            return []
        segment = Segment(self._seg_start, bytes(self._buf))
        self._seg_start = segment.end_sample
        self._buf.clear()
        return [segment]
