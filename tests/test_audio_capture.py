"""The capture's callback logic in-process (no PortAudio): gaps, overflow estimates, pacing.

The same code runs inside PortAudio's callback in tests/test_audio_alsa.py; here the status
flags and time stamps that a real driver produces (and the ALSA file plugin cannot) are fed in.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from akkoord.audio.capture import (
    PA_ABORT,
    PA_COMPLETE,
    PA_CONTINUE,
    CallbackSink,
    ItemQueue,
    estimate_overflow_samples,
)
from akkoord.audio.model import Block, End, EndReason, Gap, GapCause

RATE = 48000
N = 480  # frames per callback: 10 ms


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def block_pcm(start: int, frames: int = N) -> bytes:
    return b"".join(((start + i) % 65536).to_bytes(2, "little") for i in range(frames))


def make_sink(
    queue_samples: int = 100 * N, **kwargs: Any
) -> tuple[CallbackSink, Clock, threading.Event]:
    clock = Clock()
    stopping = threading.Event()
    sink = CallbackSink(
        rate=RATE, queue=ItemQueue(queue_samples), clock=clock, stopping=stopping, **kwargs
    )
    return sink, clock, stopping


def drain(queue: ItemQueue) -> list[Any]:
    out: list[Any] = []
    while (item := queue.get(timeout=0)) is not None and not isinstance(item, End):
        out.append(item)
    return out


def test_blocks_carry_their_position_on_the_sample_clock() -> None:
    sink, clock, _ = make_sink()
    for k in range(3):
        clock.now += N / RATE
        assert sink.on_block(block_pcm(k * N), N, clock.now, False) == PA_CONTINUE
    items = drain(sink.queue)
    assert [(b.start_sample, b.samples) for b in items] == [(0, N), (N, N), (2 * N, N)]
    assert sink.delivered_samples == 3 * N and sink.lost_samples == 0


def test_overflow_gap_from_adc_time_jump() -> None:
    sink, clock, _ = make_sink()
    sink.on_block(block_pcm(0), N, 50.000, False)
    clock.now += 0.1
    # the next block was captured 100 ms after the previous one started: 90 ms went missing
    sink.on_block(block_pcm(0), N, 50.100, True)
    _block0, gap, block1 = drain(sink.queue)
    assert gap == Gap(N, round(0.1 * RATE) - N, True, GapCause.INPUT_OVERFLOW)
    assert block1.start_sample == gap.end_sample  # positions stay true after the loss
    assert sink.lost_samples == gap.samples


def test_overflow_gap_from_monotonic_clock_when_adc_times_are_unusable() -> None:
    sink, clock, _ = make_sink()
    sink.on_block(block_pcm(0), N, 0.0, False)  # host API gives no times
    clock.now += 0.05
    sink.on_block(block_pcm(0), N, 0.0, True)
    _, gap, _ = drain(sink.queue)
    assert gap.samples == round(0.05 * RATE) - N
    assert gap.estimated


def test_overflow_before_first_block_loses_nothing_of_the_stream() -> None:
    sink, _clock, _ = make_sink()
    sink.on_block(block_pcm(0), N, 1.0, True)
    assert [type(i) for i in drain(sink.queue)] == [Block]
    assert sink.lost_samples == 0


@pytest.mark.parametrize(
    ("prev_adc", "adc", "mono_elapsed", "expected", "basis"),
    [
        (10.0, 10.02, 0.02, round(0.02 * RATE) - N, "adc_time"),
        (10.0, 10.01, 0.01, 1, "adc_time"),  # a flagged loss is never hidden as zero
        (0.0, 0.0, 0.03, round(0.03 * RATE) - N, "monotonic"),  # no times from the host API
        (10.0, 9.0, 0.03, round(0.03 * RATE) - N, "monotonic"),  # time went backwards
        (10.0, 5000.0, 0.03, round(0.03 * RATE) - N, "monotonic"),  # absurd jump
    ],
)
def test_estimate_overflow_samples(
    prev_adc: float, adc: float, mono_elapsed: float, expected: int, basis: str
) -> None:
    assert estimate_overflow_samples(
        prev_adc=prev_adc,
        prev_mono=7.0,
        prev_frames=N,
        adc=adc,
        mono=7.0 + mono_elapsed,
        rate=RATE,
    ) == (expected, basis)


def test_full_queue_drops_exactly_and_merges_into_one_gap() -> None:
    sink, _clock, _ = make_sink(queue_samples=3 * N)
    for k in range(10):
        sink.on_block(block_pcm(k * N), N, 0.0, False)
    items = drain(sink.queue)
    assert [type(i) for i in items] == [Block, Block, Block, Gap]
    assert items[3] == Gap(3 * N, 7 * N, False, GapCause.QUEUE_FULL)
    assert sink.lost_samples == 7 * N
    # room again: audio continues right after the gap
    sink.on_block(block_pcm(10 * N), N, 0.0, False)
    (block,) = drain(sink.queue)
    assert block.start_sample == 10 * N


def test_overflow_while_queue_full_merges_causes() -> None:
    sink, clock, _ = make_sink(queue_samples=N)
    sink.on_block(block_pcm(0), N, 0.0, False)
    sink.on_block(block_pcm(0), N, 0.0, False)  # dropped: queue full
    clock.now += 0.1
    sink.on_block(block_pcm(0), N, 0.0, True)  # overflow and still full
    _, gap = drain(sink.queue)
    assert gap.cause == GapCause.QUEUE_FULL | GapCause.INPUT_OVERFLOW
    assert gap.cause.label == "input_overflow+queue_full"
    assert gap.estimated
    assert gap.start_sample == N and gap.end_sample == sink.next_sample


def test_end_comes_after_queued_items_and_repeats() -> None:
    queue = ItemQueue(10 * N)
    queue.put_block(Block(0, block_pcm(0)))
    queue.finish(End(N, EndReason.STOPPED))
    queue.put_gap(Gap(N, 5, False, GapCause.QUEUE_FULL))  # after the End: ignored
    assert isinstance(queue.get(0), Block)
    assert queue.get(0) == End(N, EndReason.STOPPED)
    assert queue.get(0) == End(N, EndReason.STOPPED)


def test_get_times_out_with_none() -> None:
    assert ItemQueue(N).get(timeout=0.01) is None


def test_reader_wakes_when_a_block_arrives() -> None:
    queue = ItemQueue(10 * N)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.append(queue.get(timeout=10)))
    reader.start()
    queue.put_block(Block(0, block_pcm(0)))
    reader.join(10)
    assert isinstance(got[0], Block)


def test_stopping_ends_callbacks_without_delivering() -> None:
    sink, _clock, stopping = make_sink()
    stopping.set()
    assert sink.on_block(block_pcm(0), N, 0.0, False) == PA_COMPLETE
    assert drain(sink.queue) == []


def test_hook_error_aborts_the_stream_and_is_kept() -> None:
    def hook() -> None:
        raise OSError("device gone")

    sink, _, _ = make_sink(hook=hook)
    assert sink.on_block(block_pcm(0), N, 0.0, False) == PA_ABORT
    assert sink.error == "OSError: device gone"


def test_pacing_holds_each_block_until_its_time() -> None:
    waits: list[float] = []

    class RecordingEvent(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            assert timeout is not None
            waits.append(timeout)
            clock.now += timeout
            return False

    clock = Clock()
    sink = CallbackSink(
        rate=RATE,
        queue=ItemQueue(100 * N),
        clock=clock,
        stopping=RecordingEvent(),
        pace_realtime=True,
    )
    start = clock.now
    for k in range(5):
        sink.on_block(block_pcm(k * N), N, 0.0, False)
    # the fifth block is due when five blocks' worth of time has passed since the first callback
    assert clock.now == pytest.approx(start + 5 * N / RATE)
    assert len(waits) == 5


def test_pacing_wait_interrupted_by_stop_drops_the_undue_block() -> None:
    clock = Clock()
    stopping = threading.Event()
    stopping.wait = lambda timeout=None: True  # type: ignore[method-assign]  # stop arrives
    sink = CallbackSink(
        rate=RATE, queue=ItemQueue(100 * N), clock=clock, stopping=stopping, pace_realtime=True
    )
    assert sink.on_block(block_pcm(0), N, 0.0, False) == PA_COMPLETE
    assert drain(sink.queue) == []
