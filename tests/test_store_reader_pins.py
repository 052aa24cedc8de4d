"""The container parser's outputs to the byte and the word: every frame's offset, fields and
body; every `Damage`'s offset, length, reason and `at_end`, for damage of each kind, read
through a file descriptor and through a plain file object alike; where a resync lands (and
where a `thorough` one lands instead); the metadata refusals; the CPU count it plans with."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading

import pytest

from akkoord.store import reader as reader_mod
from akkoord.store.format import (
    FRAME_HEADER,
    HEADER_LEN,
    MAX_BODY_LEN,
    SEAL_LEN,
    FrameHeader,
    Kind,
)
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import ParsedFrame, parse_meta, record_of, scan, scan_ahead
from storekit import make_kit, pcm, record

SEAL_WORDS = "frame bytes do not match the frame's seal"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    kit = make_kit(tmp_path_factory.mktemp("reader"))
    w, _ = record(kit, 5, gap_after=1)
    data = (w.path / CONTAINER_FILE).read_bytes()
    return kit, w, data


def _independent_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, bytes) of each frame of a genuine container, by the format's own lengths."""
    out, pos = [], 0
    while pos < len(data):
        fields = FRAME_HEADER.unpack(data[pos : pos + HEADER_LEN])
        meta_len, body_len = fields[3], fields[7]
        n = HEADER_LEN + meta_len + body_len + SEAL_LEN
        out.append((pos, data[pos : pos + n]))
        pos += n
    assert pos == len(data)
    return out


class _Plain(io.RawIOBase):
    """A file object without a file descriptor whose reads return at most `step` bytes (a
    pipe, a slow device): the parser's seek/read path and its read-on loop."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self.inner, self.step = io.BytesIO(data), step

    def readable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.inner.seek(pos, whence)

    def read(self, n: int = -1) -> bytes:
        return self.inner.read(n)

    def readinto(self, b) -> int:  # type: ignore[override]
        chunk = self.inner.read(min(len(b), self.step))
        b[: len(chunk)] = chunk
        return len(chunk)

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no fd")


def _scan_all(data: bytes, tmp_path, *, thorough: bool = False):
    """scan() through a real file (pread) and through a plain object (seek/read, short reads):
    both views must give the same items; returns them with each good frame's body."""
    path = tmp_path / "c.akr"
    path.write_bytes(data)
    views = []
    with open(path, "rb") as f:
        bodies: list[bytes] = []
        items = list(scan(f, len(data), lambda fr, b: bodies.append(bytes(b)),
                          thorough=thorough))
        views.append((items, bodies))
    for obj in (io.BytesIO(data), _Plain(data)):
        kept: list[bytes] = []
        items = list(scan(obj, len(data), lambda fr, b, kept=kept: kept.append(bytes(b)),
                          thorough=thorough))
        views.append((items, kept))
    assert views[1] == views[0] and views[2] == views[0]
    return views[0]


def _shape(items):
    return [("F", i.offset, i.length) if isinstance(i, ParsedFrame)
            else ("D", i.offset, i.length, i.reason, i.at_end) for i in items]


def test_a_genuine_container_parses_to_its_frames_with_every_field(made, tmp_path):
    _, _, data = made
    items, bodies = _scan_all(data, tmp_path)
    frames = _independent_frames(data)
    assert _shape(items) == [("F", off, len(raw)) for off, raw in frames]
    for item, body, (off, raw) in zip(items, bodies, frames, strict=True):
        h = FrameHeader.unpack(raw[:HEADER_LEN])
        meta_len, body_len = h.meta_len, h.body_len
        assert item == ParsedFrame(
            off, h, raw[:HEADER_LEN], raw[HEADER_LEN : HEADER_LEN + meta_len],
            hashlib.sha256(raw[HEADER_LEN + meta_len : -SEAL_LEN]).digest(), raw[-SEAL_LEN:])
        assert body == raw[HEADER_LEN + meta_len : HEADER_LEN + meta_len + body_len]
        assert item.length == len(raw)
        meta = json.loads(item.meta_bytes) if item.meta_bytes else None
        rec = record_of(item, meta)
        assert (rec.index, rec.kind, rec.flags, rec.start_sample, rec.samples, rec.audio_mac,
                rec.meta, rec.seal) == (h.index, h.kind, h.flags, h.start_sample, h.samples,
                                        h.audio_mac, meta, raw[-SEAL_LEN:])


def test_a_torn_tail_is_one_damage_at_the_end_in_its_words(made, tmp_path):
    _, _, data = made
    frames = _independent_frames(data)
    last_off, last = frames[-1]
    for cut, why in ((10, "incomplete frame"), (len(last) - 50, "incomplete frame header"),
                     (len(last) - HEADER_LEN, "incomplete frame")):
        torn = data[: len(data) - cut]
        items, _ = _scan_all(torn, tmp_path)
        assert _shape(items)[-1] == ("D", last_off, len(last) - cut, why, True)
        assert len(items) == len(frames)


def test_a_flipped_body_byte_costs_that_frame_only(made, tmp_path):
    _, _, data = made
    frames = _independent_frames(data)
    off, raw = frames[5]
    bad = bytearray(data)
    bad[off + len(raw) - SEAL_LEN - 3] ^= 0x40
    items, _ = _scan_all(bytes(bad), tmp_path)
    want = [("F", o, len(r)) for o, r in frames]
    want[5] = ("D", off, len(raw), SEAL_WORDS, False)
    assert _shape(items) == want


@pytest.mark.parametrize("field, value", [
    ("magic", b"AKF2"), ("kind", 0), ("kind", 9), ("flags", 0x02), ("flags", 0x81),
    ("body_len", MAX_BODY_LEN + 1),
])
def test_a_header_that_is_no_frame_header_is_damage_in_those_words(made, tmp_path, field,
                                                                   value):
    _, _, data = made
    frames = _independent_frames(data)
    off, raw = frames[3]
    fields = list(FRAME_HEADER.unpack(raw[:HEADER_LEN]))
    fields[{"magic": 0, "kind": 1, "flags": 2, "body_len": 7}[field]] = value
    bad = data[:off] + FRAME_HEADER.pack(*fields) + data[off + HEADER_LEN :]
    items, _ = _scan_all(bad, tmp_path)
    want = [("F", o, len(r)) for o, r in frames]
    want[3] = ("D", off, len(raw), "not a frame header", False)
    assert _shape(items) == want


def test_the_largest_allowed_body_is_a_frame_header(made, tmp_path):
    """MAX_BODY_LEN itself passes the header check: the frame is then only incomplete."""
    _, _, data = made
    frames = _independent_frames(data)
    off, raw = frames[3]
    fields = list(FRAME_HEADER.unpack(raw[:HEADER_LEN]))
    fields[7] = MAX_BODY_LEN
    bad = data[:off] + FRAME_HEADER.pack(*fields) + data[off + HEADER_LEN :]
    items, _ = _scan_all(bad, tmp_path)
    want = [("F", o, len(r)) for o, r in frames]
    want[3] = ("D", off, len(raw), "incomplete frame", False)
    assert _shape(items) == want


def test_a_resync_candidate_must_be_followed_by_a_frame_unless_thorough(made, tmp_path):
    """After damage, a whole frame followed by neither a frame nor the end is passed over by
    the normal scan (a cheap guard against frames faked inside audio), but taken by
    recovery's thorough scan."""
    _, _, data = made
    frames = _independent_frames(data)
    (o1, f1), o2 = frames[1], frames[2][0]
    bad = data[:o1] + b"ZZZZ" + f1 + b"QQQQ" + data[o2:]
    shift = 8
    items, _ = _scan_all(bad, tmp_path)
    want = [("F", frames[0][0], len(frames[0][1])),
            ("D", o1, 4 + len(f1) + 4, "not a frame header", False)]
    want += [("F", o + shift, len(r)) for o, r in frames[2:]]
    assert _shape(items) == want
    path = tmp_path / "default.akr"
    path.write_bytes(bad)
    with open(path, "rb") as f:  # not thorough unless asked
        assert _shape(scan(f, len(bad))) == want
    thorough, _ = _scan_all(bad, tmp_path, thorough=True)
    want_t = [("F", frames[0][0], len(frames[0][1])),
              ("D", o1, 4, "not a frame header", False),
              ("F", o1 + 4, len(f1)),
              ("D", o1 + 4 + len(f1), 4, "not a frame header", False)]
    want_t += [("F", o + shift, len(r)) for o, r in frames[2:]]
    assert _shape(thorough) == want_t


def test_a_candidate_at_the_very_end_or_before_a_partial_magic_is_taken(made, tmp_path):
    _, _, data = made
    frames = _independent_frames(data)
    lo, last = frames[-1]
    bad = data[:lo] + b"ZZZ" + last
    items, _ = _scan_all(bad, tmp_path)
    assert _shape(items)[-2:] == [("D", lo, 3, "not a frame header", False),
                                  ("F", lo + 3, len(last))]
    tail = bad + b"AK"
    items, _ = _scan_all(tail, tmp_path)
    assert _shape(items)[-3:] == [("D", lo, 3, "not a frame header", False),
                                  ("F", lo + 3, len(last)),
                                  ("D", lo + 3 + len(last), 2, "incomplete frame header", True)]
    wrong = bad + b"AX"
    items, _ = _scan_all(wrong, tmp_path)
    assert _shape(items)[-1] == ("D", lo, 3 + len(last) + 2, "not a frame header", True)


@pytest.mark.parametrize("before_edge", [1, 2, 3, 0])
def test_a_frame_straddling_the_search_chunk_s_edge_is_found(made, tmp_path, before_edge):
    """The resync reads 1 MiB chunks that overlap by three bytes, so a frame magic cut by a
    chunk's edge (1, 2 or 3 of its bytes before it) is still seen."""
    _, _, data = made
    frames = _independent_frames(data)
    o1 = frames[1][0]
    # the search starts one byte after the damage; the magic starts before_edge bytes
    # before the first chunk's end
    pad = 1 + reader_mod._SCAN_CHUNK - before_edge
    bad = data[:o1] + b"\x55" * pad + data[o1:]
    items, _ = _scan_all(bad, tmp_path)
    assert _shape(items)[:3] == [("F", 0, len(frames[0][1])),
                                 ("D", o1, pad, "not a frame header", False),
                                 ("F", o1 + pad, len(frames[1][1]))]
    assert len(items) == len(frames) + 1


def test_a_sparse_hole_is_skipped_and_reported_as_its_length(made, tmp_path):
    _, _, data = made
    frames = _independent_frames(data)
    o1 = frames[1][0]
    hole = 3 << 20
    path = tmp_path / "sparse.akr"
    with open(path, "wb") as f:
        f.write(data[:o1])
        f.seek(o1 + hole)
        f.write(data[o1:])
    size = path.stat().st_size
    with open(path, "rb") as f:
        items = list(scan(f, size))
    want = [("F", 0, len(frames[0][1])), ("D", o1, hole, "not a frame header", False)]
    want += [("F", o + hole, len(r)) for o, r in frames[1:]]
    assert _shape(items) == want
    end = tmp_path / "hole-at-end.akr"
    with open(end, "wb") as f:
        f.write(data)
        f.truncate(len(data) + hole)
    with open(end, "rb") as f:
        items = list(scan(f, len(data) + hole))
    assert _shape(items)[-1] == ("D", len(data), hole, "not a frame header", True)


def test_frames_larger_than_the_first_read_buffer(tmp_path):
    kit = make_kit(tmp_path)
    w = kit.writer(seg=40000)  # 80,000-byte bodies: the buffer must grow past 128 KiB too
    w.add_event("start")
    w.add_audio(pcm(1, 40000))
    w.add_audio(pcm(2, 70000))
    w.close("party_a", party="A")
    data = (w.path / CONTAINER_FILE).read_bytes()
    items, bodies = _scan_all(data, tmp_path)
    frames = _independent_frames(data)
    assert _shape(items) == [("F", o, len(r)) for o, r in frames]
    for body, (_, raw), item in zip(bodies, frames, items, strict=True):
        start = HEADER_LEN + item.header.meta_len
        assert body == raw[start : start + item.header.body_len]


def test_scan_ahead_gives_scan_s_items_and_prework_in_every_mode(made, tmp_path):
    _, _, data = made
    frames = _independent_frames(data)
    bad = bytearray(data)
    bad[frames[4][0] + 50] ^= 1
    (o1, f1), o2, o7 = frames[1], frames[2][0], frames[7][0]
    # a frame not followed by a frame after damage (passed over unless thorough), and one
    # stray byte right before a frame (the resync starts one byte on)
    bad = bad[:o1] + b"ZZZZ" + f1 + b"QQQQ" + bad[o2:o7] + b"Z" + bad[o7:]
    path = tmp_path / "c.akr"
    path.write_bytes(bytes(bad))
    with open(path, "rb") as f:
        want = _shape(scan(f, len(bad)))
    for parallel in (False, True):
        for batch in (0, 1, 3):
            seen: list[tuple[int, int]] = []
            with open(path, "rb") as f:
                items = list(scan_ahead(
                    f, len(bad),
                    lambda fr, body, pre, seen=seen: seen.append((fr.offset, pre)),
                    lambda fr, body, slot: len(body) + fr.header.index,
                    parallel=parallel, batch=batch))
            assert _shape(items) == want
            good = [i for i in items if isinstance(i, ParsedFrame)]
            assert seen == [(fr.offset, fr.header.body_len + fr.header.index) for fr in good]
            with open(path, "rb") as f:  # neither hook: scan()'s items all the same
                assert _shape(scan_ahead(f, len(bad), parallel=parallel, batch=batch)) == want
    assert ("D", o1, 4 + len(f1) + 4, "not a frame header", False) in want
    assert ("D", o7 + 8, 1, "not a frame header", False) in want


def _frame(kind: int, meta: bytes) -> ParsedFrame:
    h = FrameHeader(kind, 0, len(meta), 1, 0, 0, 0, bytes(16), bytes(32), bytes(32))
    return ParsedFrame(0, h, h.pack(), meta, bytes(32), bytes(32))


@pytest.mark.parametrize("kind, meta, want", [
    (Kind.AUDIO, b"", (None, None)),
    (Kind.AUDIO, b"{}", (None, "audio frame carries metadata")),
    (Kind.EVENT, b'{"event":"start"}', ({"event": "start"}, None)),
    (Kind.EVENT, b"{", (None, "metadata is not valid JSON")),
    (Kind.EVENT, b'"\xff"', (None, "metadata is not valid JSON")),
    (Kind.EVENT, b"[1]", (None, "metadata is not a JSON object")),
    (Kind.GAP, b"null", (None, "metadata is not a JSON object")),
])
def test_metadata_is_read_or_refused_in_its_words(kind, meta, want):
    assert parse_meta(_frame(int(kind), meta)) == want


def test_usable_cpus_counts_the_affinity_then_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
    assert reader_mod.usable_cpus() == 3

    def refuse(pid):
        raise OSError(38, "no affinity here")

    monkeypatch.setattr(os, "sched_getaffinity", refuse)
    monkeypatch.setattr(os, "cpu_count", lambda: 7)
    assert reader_mod.usable_cpus() == 7
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert reader_mod.usable_cpus() == 1
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert reader_mod.usable_cpus() == 2


def test_by_default_the_worker_thread_needs_two_cpus(made, tmp_path, monkeypatch):
    _, _, data = made
    path = tmp_path / "c.akr"
    path.write_bytes(data)
    assert reader_mod.PARALLEL_MIN_CPUS == 2
    for cpus, threaded in ((1, False), (2, True)):
        monkeypatch.setattr(reader_mod, "usable_cpus", lambda n=cpus: n)
        names: list[str] = []
        with open(path, "rb") as f:
            list(scan_ahead(f, len(data), lambda fr, body, pre: None,
                            lambda fr, body, slot, names=names: names.append(
                                threading.current_thread().name)))
        # (with two, the first frames at least: later ones may be handed to this thread)
        assert (names[0] == "akkoord-scan") == threaded
        assert threaded or set(names) == {"MainThread"}


def test_struct_layout_is_the_documented_one():
    """The header's layout as FORMAT.md gives it (the parser's lengths depend on it)."""
    assert struct.calcsize(">4sBBHIIQI16s32s32s") == HEADER_LEN == 108


def test_a_file_that_shrank_after_its_size_was_taken(made, tmp_path):
    """The last frame's bytes run out while it is read: the read-on loop says so."""
    _, _, data = made
    frames = _independent_frames(data)
    last_off, last = frames[-1]
    short = data[:-10]
    path = tmp_path / "short.akr"
    path.write_bytes(short)
    with open(path, "rb") as real:
        views = [list(scan(real, len(data))), list(scan(_Plain(short), len(data)))]
    for items in views:
        assert _shape(items)[-1] == ("D", last_off, len(last), "incomplete frame", True)
