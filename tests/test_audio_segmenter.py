"""The segmenter is pure: property tests over arbitrary block/gap streams."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.audio.model import Block, Gap, GapCause, Segment
from akkoord.audio.segmenter import Segmenter, segment_samples_for


def pcm(start: int, count: int) -> bytes:
    """Each sample holds its own position (mod 2**16), so misplaced audio is visible."""
    return b"".join(((start + i) % 65536).to_bytes(2, "little") for i in range(count))


# A stream: ("b", n) a block of n samples, ("g", n) a gap of n samples.
streams = st.lists(
    st.one_of(
        st.tuples(st.just("b"), st.integers(0, 700)),
        st.tuples(st.just("g"), st.integers(1, 500)),
    ),
    max_size=40,
)


def build(stream: list[tuple[str, int]]) -> list[Block | Gap]:
    items: list[Block | Gap] = []
    position = 0
    for kind, n in stream:
        if kind == "b":
            items.append(Block(position, pcm(position, n)))
        else:
            items.append(Gap(position, n, estimated=n % 2 == 0, cause=GapCause.QUEUE_FULL))
        position += n
    return items


@settings(max_examples=300, deadline=None)
@given(stream=streams, segment=st.integers(1, 600))
def test_segments_and_gaps_tile_the_timeline_exactly(
    stream: list[tuple[str, int]], segment: int
) -> None:
    items = build(stream)
    segmenter = Segmenter(segment)
    out: list[Segment | Gap] = []
    for item in items:
        out += segmenter.push(item)
    out += segmenter.flush()

    position = 0
    for piece in out:
        assert piece.start_sample == position  # no hole, no overlap, in order
        position = piece.end_sample
        if isinstance(piece, Segment):
            assert 1 <= piece.samples <= segment
            assert piece.pcm == pcm(piece.start_sample, piece.samples)  # nothing lost or moved
            # never crosses a multiple of the segment length
            assert piece.start_sample // segment == (piece.end_sample - 1) // segment
    assert position == sum(n for _, n in stream)
    assert segmenter.next_sample == position
    # gaps come out unchanged and in order
    assert [p for p in out if isinstance(p, Gap)] == [i for i in items if isinstance(i, Gap)]


@settings(max_examples=200, deadline=None)
@given(stream=streams, segment=st.integers(1, 600))
def test_segments_are_full_unless_cut_by_a_gap_or_the_end(
    stream: list[tuple[str, int]], segment: int
) -> None:
    segmenter = Segmenter(segment)
    out: list[Segment | Gap] = []
    for item in build(stream):
        out += segmenter.push(item)
    emitted = len(out)
    out += segmenter.flush()
    for index, piece in enumerate(out):
        if not isinstance(piece, Segment) or piece.end_sample % segment == 0:
            continue
        # a short segment that does not end on a boundary: a gap follows it, or it is the flush
        follows = out[index + 1] if index + 1 < len(out) else None
        assert isinstance(follows, Gap) or index >= emitted


def test_one_second_segments_at_48k() -> None:
    segmenter = Segmenter(segment_samples_for(1.0, 48000))
    out = []
    for k in range(120):  # 2.4 s in 20 ms blocks
        out += segmenter.push(Block(k * 960, bytes(960 * 2)))
    out += segmenter.flush()
    assert [(s.start_sample, s.samples) for s in out] == [
        (0, 48000),
        (48000, 48000),
        (96000, 19200),
    ]


def test_gap_cuts_the_segment_and_realigns_to_the_clock() -> None:
    segmenter = Segmenter(100)
    out = segmenter.push(Block(0, pcm(0, 150)))
    out += segmenter.push(Gap(150, 30, estimated=True, cause=GapCause.INPUT_OVERFLOW))
    out += segmenter.push(Block(180, pcm(180, 100)))
    out += segmenter.flush()
    shape = [(type(p).__name__, p.start_sample, p.end_sample) for p in out]
    assert shape == [
        ("Segment", 0, 100),
        ("Segment", 100, 150),
        ("Gap", 150, 180),
        ("Segment", 180, 200),  # up to the next multiple of 100
        ("Segment", 200, 280),
    ]


def test_flush_twice_and_empty_blocks_emit_nothing_extra() -> None:
    segmenter = Segmenter(10)
    assert segmenter.push(Block(0, b"")) == []
    assert segmenter.flush() == []
    segmenter.push(Block(0, pcm(0, 3)))
    assert [s.samples for s in segmenter.flush()] == [3]
    assert segmenter.flush() == []


@pytest.mark.parametrize(
    "item",
    [
        Block(5, pcm(5, 10)),  # starts late: a hole
        Gap(0, 0, estimated=False, cause=GapCause.QUEUE_FULL),  # empty gap
        Block(0, b"\x00\x01\x02"),  # half a sample
    ],
)
def test_broken_timeline_is_refused(item: Block | Gap) -> None:
    with pytest.raises(ValueError, match="segmenter"):
        Segmenter(10).push(item)


def test_segment_length_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Segmenter(0)
