"""The container parser's resync budget (store/reader.py): after damage, the search for the
next good frame hashes at most 4 × the file's size + 64 MiB, candidates that fail their seal
included; past that, the rest of the file is damage. Without it a file of fake frame headers
(each claiming a body that runs to the next header) makes a verifier hash for days: a 1 MiB
file of them cost 2.8 s and 16 MiB would cost hours (quadratic), and `archive ingest` reads
containers from a stick anyone can hand in. Recovery's `thorough` scan of the device's own
files has no budget.

The files here hash exactly one byte less than the budget (the good frame after the fakes is
found) and exactly the budget (it is not): the boundary, not a timing.
"""

from __future__ import annotations

import os

import pytest

from akkoord.store import reader as reader_mod
from akkoord.store.format import FRAME_HEADER, HEADER_LEN, SEAL_LEN, FrameHeader, Kind
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import ParsedFrame, scan, scan_ahead
from storekit import make_kit, record

GAP = 2 << 20  # the damaged stretch holding the fake headers
STEP = 8 << 10


@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    kit = make_kit(tmp_path_factory.mktemp("budget"))
    w, _ = record(kit, 3)
    data = (w.path / CONTAINER_FILE).read_bytes()
    first = HEADER_LEN + FRAME_HEADER.unpack(data[:HEADER_LEN])[3] + \
        FRAME_HEADER.unpack(data[:HEADER_LEN])[7] + SEAL_LEN
    return data, first


def _fake(body_len: int) -> bytes:
    """A plausible AUDIO frame header with no metadata; its seal never matches."""
    return FrameHeader(int(Kind.AUDIO), 0, 0, 1, 1, 0, body_len, bytes(16), bytes(32),
                       bytes(32)).pack()


def _hostile(data: bytes, first: int, spend: int, tail: int | None) -> tuple[bytes, int]:
    """The genuine container with GAP bytes of damage after its first frame, holding fake
    headers whose claimed bodies all end where the second genuine frame starts (so each is
    a resync candidate followed by a frame) and add up to exactly `spend` bytes hashed.
    `tail`: the body of the last fake the search meets (then it sits in the same 1 MiB
    search chunk as the genuine frame); None: every fake is in the first chunk.
    Returns the file and the second frame's offset in it."""
    r = first + GAP  # where the second genuine frame now starts
    gap = bytearray(b"\x55" * GAP)
    bodies, left = [], spend - (tail or 0)
    body = GAP - 200  # the first fake sits near the start of the damage
    while left > 0:
        take = min(body, left)
        bodies.append(take)
        left -= take
        body -= STEP
        assert body > HEADER_LEN, "the damage is too short for this spend"
    if tail is not None:
        if bodies[-1] < tail + 2 * HEADER_LEN:  # a remainder near the tail: fold it in
            tail += bodies.pop()
        bodies.append(tail)
    for b in bodies:  # by offset, as the search meets them
        o = r - SEAL_LEN - b - HEADER_LEN - first
        gap[o : o + HEADER_LEN] = _fake(b)
    return data[:first] + bytes(gap) + data[first:], r


def _shape(items):
    return [("F", i.offset) if isinstance(i, ParsedFrame)
            else ("D", i.offset, i.length, i.at_end) for i in items]


def _budget(size: int) -> int:
    return 4 * size + (64 << 20)


def _scans(path, size):
    with open(path, "rb") as f:
        yield "scan", list(scan(f, size))
    for parallel in (False, True):
        with open(path, "rb") as f:
            yield f"scan_ahead parallel={parallel}", list(scan_ahead(f, size,
                                                                      parallel=parallel))


@pytest.mark.parametrize("tail", [None, 100_000])
@pytest.mark.parametrize("over", [-1, 0])
def test_the_resync_hashes_up_to_its_budget_and_no_further(genuine, tmp_path, over, tail):
    data, first = genuine
    size = len(data) + GAP
    blob, r = _hostile(data, first, _budget(size) + over, tail)
    assert len(blob) == size
    path = tmp_path / "c.akr"
    path.write_bytes(blob)
    found = [("F", 0), ("D", first, GAP, False), ("F", r)]
    for name, items in _scans(path, size):
        got = _shape(items)
        if over < 0:  # one byte to spare: the search reaches the genuine frame
            assert got[:3] == found, name
            assert all(isinstance(i, ParsedFrame) for i in items[2:]), name
        else:  # spent: the rest of the file is damage, reported as such
            assert got == [("F", 0), ("D", first, size - first, True)], name
    with open(path, "rb") as f:  # recovery's thorough scan has no budget
        assert _shape(list(scan(f, size, thorough=True)))[:3] == found


def test_a_file_of_fake_headers_costs_at_most_the_budget(tmp_path, monkeypatch):
    """Every 128 bytes a fake header whose body runs to the end of the file: without the
    budget counting failed candidates, 2^13 candidates of up to 1 MiB each (~4 GiB hashed)."""
    size = 1 << 20
    blob = bytearray(b"\x55" * size)
    for o in range(4, size - HEADER_LEN - SEAL_LEN, 128):
        blob[o : o + HEADER_LEN] = _fake(size - o - HEADER_LEN - SEAL_LEN)
    path = tmp_path / "fakes.akr"
    path.write_bytes(blob)
    hashed = []
    real = reader_mod._read_frame_at

    def counting(*args, **kwargs):
        frame, body, why = real(*args, **kwargs)
        hashed.append(0 if body is None else len(body))
        return frame, body, why

    monkeypatch.setattr(reader_mod, "_read_frame_at", counting)  # counts, changes nothing
    with open(path, "rb") as f:
        assert _shape(list(scan(f, size))) == [("D", 0, size, True)]
    assert _budget(size) <= sum(hashed) < _budget(size) + size


@pytest.mark.parametrize("pad", [(1 << 20) + 5000, (2 << 20) + 123, 3 << 20])
def test_a_resync_past_the_first_search_chunk_lands_on_the_next_frame(genuine, tmp_path, pad):
    """The search reads 1 MiB chunks. It once read them through the file object after
    moving the descriptor's offset behind its buffer (SEEK_DATA), so every chunk after the
    first was shifted: past 1 MiB of damage no good frame was found again, and recovery's
    scan cut every frame after it away."""
    data, first = genuine
    blob = data[:first] + b"\x55" * pad + data[first:]
    path = tmp_path / "c.akr"
    path.write_bytes(blob)
    want = [("F", 0), ("D", first, pad, False), ("F", first + pad)]
    for thorough in (False, True):
        with open(path, "rb") as f:
            items = list(scan(f, len(blob), thorough=thorough))
        assert _shape(items)[:3] == want
        assert all(isinstance(i, ParsedFrame) for i in items[2:])
    for name, items in _scans(path, len(blob)):
        assert _shape(items)[:3] == want, name
    with open(path, "rb") as f:  # the file object and its descriptor are where they were
        f.seek(7)
        assert f.read(1) == blob[7:8]
        fd_at = os.lseek(f.fileno(), 0, os.SEEK_CUR)
        list(scan(f, len(blob)))
        assert os.lseek(f.fileno(), 0, os.SEEK_CUR) == fd_at
        assert f.read(3) == blob[8:11]


def _recovered(tmp_path, damage):
    """A recording cut by a power loss (6 segments, no END), its container changed by
    `damage(data, frame offsets)`, then recovered. Returns the result, the damaged bytes,
    the frame offsets and where a quarantined folder would be."""
    from akkoord.store.recovery import POWER_LOSS, recover_all

    kit = make_kit(tmp_path / "k")
    w = kit.writer()
    w.add_event("start")
    for i in range(6):
        w.add_audio(bytes([i]) * 3200)
    w._close_fd()
    container = w.path / CONTAINER_FILE
    data = container.read_bytes()
    offsets = _frame_offsets(data)
    damaged = damage(data, offsets)
    container.write_bytes(damaged)
    [res] = recover_all(kit.state, kit.identity, kit.clock, kit.custody, POWER_LOSS)
    return res, damaged, offsets, kit.state.quarantine_dir / w.id


def _frame_offsets(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        fields = FRAME_HEADER.unpack(data[pos : pos + HEADER_LEN])
        pos += HEADER_LEN + fields[3] + fields[7] + SEAL_LEN
    return out


@pytest.mark.parametrize("pad", [1000, (1 << 20) + 5000])
def test_recovery_keeps_a_recording_whole_when_good_frames_follow_long_damage(tmp_path, pad):
    """A recording cut by a power loss with a stretch of damage in its middle (a bad flash
    block) is quarantined whole: recovery never cuts away the good frames after damage.
    With the chunk misread above, damage over 1 MiB hid those frames, and recovery
    truncated the container at the damage: the audio after it was destroyed."""
    res, damaged, offsets, target = _recovered(
        tmp_path, lambda data, o: data[: o[4]] + b"\x55" * pad + data[o[4] :])
    assert res.action == "quarantined"
    assert res.detail == (f"a damaged frame at byte {offsets[4]} is followed by "
                          f"{len(offsets) - 4} good frames; kept whole in {target}")
    assert (target / CONTAINER_FILE).read_bytes() == damaged


def test_recovery_counts_a_good_frame_that_is_not_followed_by_a_frame(tmp_path):
    """Recovery's scan is thorough: after damage it takes a whole frame even when junk, not
    another frame, follows it (the normal scan passes such a frame over)."""
    res, _, offsets, _ = _recovered(tmp_path, lambda data, o: (
        data[: o[4]] + b"ZZZZ" + data[o[4] : o[5]] + b"QQQQ" + data[o[5] :]))
    assert res.detail.startswith(f"a damaged frame at byte {offsets[4]} is followed by "
                                 f"{len(offsets) - 4} good frames; kept whole in ")
