"""The container parser reads every frame into buffers it reuses (issue 11: no fresh 96 kB
object per frame): a whole scan uses one read buffer, grown only when a larger frame comes;
the worker thread's scan a bounded set of slots. The bodies handed to hooks are views of
those buffers, so which buffers they come from is what memory does."""

from __future__ import annotations

import pytest

from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import scan, scan_ahead
from storekit import make_kit

FRAMES = 24


def _recording(tmp_path, segment_bytes: int):
    kit = make_kit(tmp_path / "k")
    w = kit.writer()
    w.add_event("start")
    for i in range(FRAMES):
        w.add_audio(bytes([i % 251]) * segment_bytes)
    w.close("party_a", party="A")
    path = w.path / CONTAINER_FILE
    return path, path.stat().st_size


def _buffers_of_scan(path, size) -> list[object]:
    held: list[object] = []  # held, so no buffer is freed and its id reused
    with open(path, "rb") as f:
        for _ in scan(f, size, lambda frame, body: held.append(body.obj)):
            pass
    return held


def _distinct(objs: list[object]) -> int:
    return len({id(o) for o in objs})


def test_a_scan_reads_every_frame_into_one_buffer(tmp_path):
    path, size = _recording(tmp_path, 3200)
    held = _buffers_of_scan(path, size)
    assert len(held) > FRAMES
    assert _distinct(held) == 1


def test_the_buffer_grows_once_for_frames_larger_than_it(tmp_path):
    """2 s of 48 kHz mono (192 kB) per frame: the buffer is replaced once, when the first
    such frame comes, and then reused for every frame of that size."""
    path, size = _recording(tmp_path, 192_000)
    held = _buffers_of_scan(path, size)
    assert _distinct(held) <= 2
    assert _distinct(held[-FRAMES:]) == 1


@pytest.mark.parametrize("parallel", [False, True])
def test_scan_ahead_reads_into_a_bounded_set_of_slots(tmp_path, parallel):
    path, size = _recording(tmp_path, 3200)
    held: list[object] = []
    with open(path, "rb") as f:
        for _ in scan_ahead(f, size, lambda frame, body, pre: held.append(body.obj),
                            parallel=parallel, batch=2):
            pass
    assert len(held) > FRAMES
    # in line: one slot; on the worker thread: two batches of `batch` slots in flight
    assert _distinct(held) <= (1 if not parallel else 4)
