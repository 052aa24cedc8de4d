"""Console framing: noise is never a command, lines are bounded, partial lines expire."""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.console.protocol import (
    MAGIC,
    BadFrame,
    Frame,
    LineReader,
    Noise,
    Overlong,
    TimedOut,
    decode_line,
    encode_frame,
)


def test_round_trip_and_crlf():
    line = encode_frame({"v": 1, "id": 3, "cmd": ["status"], "x": "é\n"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line[:-1]) == Frame({"v": 1, "id": 3, "cmd": ["status"], "x": "é\n"})
    assert decode_line(line[:-1] + b"\r") == decode_line(line[:-1])


def test_a_flipped_bit_is_a_bad_frame_never_a_command():
    line = bytearray(encode_frame({"v": 1, "id": 1, "cmd": ["delete"]})[:-1])
    for i in range(len(MAGIC), len(line)):
        for bit in range(8):
            damaged = bytearray(line)
            damaged[i] ^= 1 << bit
            assert not isinstance(decode_line(bytes(damaged)), Frame), (i, bit)


def test_typing_at_a_terminal_is_printable_noise():
    assert decode_line(b"status") == Noise(6, True)
    assert decode_line(b"\x00\xff\x13") == Noise(3, False)
    assert isinstance(decode_line(MAGIC + b"{} 00000000"), BadFrame)


def test_valid_checksum_but_not_an_object():
    body = MAGIC + b"[1,2]"
    assert decode_line(body + b" " + b"%08x" % zlib.crc32(body)) == BadFrame(
        "payload is not a JSON object")


def test_overlong_line_is_discarded_up_to_its_newline():
    r = LineReader(max_line=100)
    good = encode_frame({"v": 1, "id": 1, "cmd": ["head"]})
    out = r.feed(b"x" * 60, 0.0) + r.feed(b"y" * 60, 0.1) + r.feed(b"zz\n" + good, 0.2)
    assert out == [Overlong(100), Frame({"v": 1, "id": 1, "cmd": ["head"]})]
    assert r.pending == 0


def test_partial_line_times_out_and_is_not_glued_to_the_next():
    r = LineReader(idle_timeout=2.0)
    good = encode_frame({"v": 1, "id": 2, "cmd": ["status"]})
    assert r.feed(good[:20], 0.0) == []
    assert r.feed(b"", 1.9) == []
    assert r.expire(2.5) == [TimedOut(20)]
    assert r.feed(good, 3.0) == [Frame({"v": 1, "id": 2, "cmd": ["status"]})]


def test_slow_but_steady_line_is_kept():
    r = LineReader(idle_timeout=2.0)
    good = encode_frame({"v": 1, "id": 2, "cmd": ["status"]})
    out = []
    for i, b in enumerate(good):
        out += r.feed(bytes([b]), i * 1.5)
    assert out == [Frame({"v": 1, "id": 2, "cmd": ["status"]})]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_garbage_never_raises_and_memory_stays_bounded(chunks):
    r = LineReader(max_line=256)
    for i, c in enumerate(chunks):
        for item in r.feed(c, float(i)):
            if isinstance(item, Frame):  # only if the fuzzer forged a CRC-32: re-encode it
                assert decode_line(encode_frame(item.payload)[:-1]) == item
        assert r.pending <= 256


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=20),
                             max_size=4), min_size=1, max_size=5),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
)
def test_fuzz_frames_survive_any_split_and_leading_noise(payloads, cuts, noise):
    stream = noise + b"\n" + b"".join(encode_frame(p) for p in payloads)
    r = LineReader()
    got, pos, i = [], 0, 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        got += r.feed(stream[pos:pos + n], 0.0)
        pos, i = pos + n, i + 1
    assert [x.payload for x in got if isinstance(x, Frame)] == payloads
