"""The parser never raises an unhandled exception on arbitrary bytes, and stays bounded."""

from __future__ import annotations

import contextlib
import io
import shutil
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akkoord.errors import AkkoordError
from akkoord.store.custody import CustodyView
from akkoord.store.format import FRAME_HEADER, FRAME_MAGIC, MAX_BODY_LEN
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import Damage, scan
from akkoord.store.recovery import recover_recording
from akkoord.store.verify import verify_recording
from storekit import examples, fast_tmp, make_kit, record

FUZZ = settings(
    max_examples=examples(300), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture]
)


_VIEWS: dict = {}


def _view(kit):
    """What the device's log said before any test recovered a copy of the recording: each
    test recovers its own copy of one recording the device left open."""
    if kit.root not in _VIEWS:
        _VIEWS[kit.root] = CustodyView.read(kit.state.custody_path, kit.identity.public)
    return _VIEWS[kit.root]


@pytest.fixture(scope="module")
def sample():
    kit = make_kit()
    w, _ = record(kit, segments=3, gap_after=0)
    yield kit, w.path, (w.path / CONTAINER_FILE).read_bytes()
    kit.cleanup()


def _fake_header(body_len: int, meta_len: int = 0, kind: int = 2) -> bytes:
    return FRAME_HEADER.pack(
        FRAME_MAGIC, kind, 0, meta_len, 0, 1, 0, body_len, bytes(16), bytes(32), bytes(32)
    )


@FUZZ
@given(st.binary(max_size=4096))
def test_scan_accounts_for_every_byte_of_arbitrary_input(data):
    items = list(scan(io.BytesIO(data), len(data)))
    covered = sum(i.length for i in items)
    assert covered == len(data)


@FUZZ
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                _fake_header,
                st.integers(0, MAX_BODY_LEN + 10),
                st.integers(0, 500),
                st.integers(0, 9),
            ),
        ),
        max_size=8,
    )
)
def test_scan_survives_fake_headers(parts):
    data = b"".join(parts)
    list(scan(io.BytesIO(data), len(data)))


@FUZZ
@given(data=st.data())
def test_verify_and_recover_never_crash_on_mangled_recordings(sample, data):
    kit, src, raw = sample
    mangled = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = data.draw(st.integers(0, max(0, len(mangled) - 1)))
        if op == "flip" and mangled:
            mangled[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del mangled[pos : pos + data.draw(st.integers(1, 400))]
        elif op == "insert":
            mangled[pos:pos] = data.draw(st.binary(min_size=1, max_size=200))
        else:
            mangled[pos : pos + 40] = bytes(len(mangled[pos : pos + 40]))
    scratch = fast_tmp()
    try:
        d = scratch / "state" / "recordings" / src.name
        shutil.copytree(src, d)
        (d / CONTAINER_FILE).write_bytes(bytes(mangled))
        # Unreadable input is a clear error (exit 2), never a traceback.
        with contextlib.suppress(AkkoordError):
            rep = verify_recording(d, kit.org)
            assert rep.ok == (bytes(mangled) == raw)
        (d / "manifest.json").unlink()
        with contextlib.suppress(AkkoordError):
            recover_recording(d, kit.identity, kit.clock, None, log_view=_view(kit))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_memory_stays_bounded_on_a_large_hostile_file(tmp_path):
    """32 MB of headers that each claim a maximal body: memory is one frame, not the file;
    work is capped, not quadratic."""
    unit = _fake_header(MAX_BODY_LEN) + b"\0" * 400
    path = tmp_path / "hostile"
    with open(path, "wb") as f:
        for _ in range((32 << 20) // len(unit)):
            f.write(unit)
    tracemalloc.start()
    with open(path, "rb") as f:
        items = list(scan(f, path.stat().st_size))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert all(isinstance(i, Damage) for i in items)
    assert peak < 2 * MAX_BODY_LEN + (8 << 20)


def test_length_fields_cannot_request_unbounded_reads():
    data = _fake_header(0xFFFFFFFF) + b"x" * 100
    (item,) = scan(io.BytesIO(data), len(data))
    assert isinstance(item, Damage) and item.length == len(data)
    assert struct.unpack(">I", data[24:28])[0] > MAX_BODY_LEN
