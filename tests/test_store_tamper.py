"""Any change to a sealed recording is found and located (frame index and second).

One recording is built per module; every example mutates a fresh copy of its container.
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.verify import verify_recording
from storekit import (
    RATE,
    copy_recording,
    examples,
    fast_tmp,
    frame_bytes,
    frames_of,
    make_kit,
    record,
    rewrite,
)

SEGMENTS = 5
FAST = settings(
    max_examples=examples(60), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def base():
    kit = make_kit()
    w, _ = record(kit, segments=SEGMENTS, gap_after=2)
    other, _ = record(kit, segments=SEGMENTS, seed=7)
    frames = frames_of(w.path / CONTAINER_FILE)
    yield kit, w.path, other.path, frames
    kit.cleanup()


@pytest.fixture
def scratch():
    d = fast_tmp()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _fresh(src, scratch):
    target = scratch / "copies"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    return copy_recording(src, target)


def _located(report, frame, sample):
    hits = [f for f in report.findings if f.frame == frame]
    assert hits, f"nothing located at frame {frame}: {report.findings}"
    assert any(f.second == pytest.approx(sample / RATE, abs=1e-3) for f in hits), hits


def _check(directory, kit, frame, sample, *codes):
    for key in (None, kit.org):
        rep = verify_recording(directory, key)
        assert not rep.ok and rep.status == "tampered"
        _located(rep, frame, sample)
        if codes:
            assert {f.code for f in rep.findings} & set(codes), rep.findings


def test_untouched_copy_verifies(base, scratch):
    kit, src, _, _ = base
    d = _fresh(src, scratch)
    assert verify_recording(d).ok and verify_recording(d, kit.org).ok


@FAST
@given(data=st.data())
def test_any_single_bit_flip_is_located(base, scratch, data):
    kit, src, _, frames = base
    d = _fresh(src, scratch)
    container = d / CONTAINER_FILE
    raw = bytearray(container.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    container.write_bytes(bytes(raw))
    hit = next(f for f in frames if f.offset <= pos < f.offset + f.length)
    _check(d, kit, hit.header.index, hit.header.start_sample)


@FAST
@given(k=st.integers(0, 2 * SEGMENTS + 5))
def test_deleting_any_frame_is_located(base, scratch, k):
    kit, src, _, frames = base
    k = k % len(frames)
    d = _fresh(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    del parts[k]
    rewrite(d, parts)
    # The missing audio begins where the frame before it ended.
    _check(d, kit, k, frames[k].header.start_sample, "missing_frame", "truncated")


@FAST
@given(k=st.integers(0, 2 * SEGMENTS + 5))
def test_duplicating_any_frame_is_located(base, scratch, k):
    kit, src, _, frames = base
    k = k % len(frames)
    d = _fresh(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    parts.insert(k + 1, parts[k])
    rewrite(d, parts)
    _check(d, kit, k, frames[k].header.start_sample, "duplicate_frame")


@FAST
@given(k=st.integers(0, 2 * SEGMENTS + 4))
def test_swapping_neighbours_is_located(base, scratch, k):
    kit, src, _, frames = base
    k = k % (len(frames) - 1)
    d = _fresh(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    parts[k], parts[k + 1] = parts[k + 1], parts[k]
    rewrite(d, parts)
    _check(d, kit, k, frames[k].header.start_sample, "reordered_frame")


@FAST
@given(k=st.integers(1, 2 * SEGMENTS + 5), j=st.integers(0, 2 * SEGMENTS + 5))
def test_splicing_a_frame_from_another_recording_is_located(base, scratch, k, j):
    kit, src, other, frames = base
    k = k % len(frames)
    d = _fresh(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    foreign = frame_bytes(other / CONTAINER_FILE)
    parts[k] = foreign[j % len(foreign)]
    rewrite(d, parts)
    _check(d, kit, k, frames[k].header.start_sample, "foreign_frame")


@FAST
@given(data=st.data())
def test_truncation_at_any_byte_is_located(base, scratch, data):
    kit, src, _, frames = base
    d = _fresh(src, scratch)
    container = d / CONTAINER_FILE
    raw = container.read_bytes()
    cut = data.draw(st.integers(frames[1].offset, len(raw) - 1), label="cut")
    container.write_bytes(raw[:cut])
    hit = next(f for f in frames if f.offset <= cut < f.offset + f.length)
    _check(d, kit, hit.header.index, hit.header.start_sample, "truncated", "damaged")


def test_resealed_forgery_is_caught_by_the_signature_and_located_with_the_key(base, scratch):
    """Someone who rewrites a frame and recomputes every seal after it keeps the chain
    consistent — but not the signed chain head, and not the AEAD tag."""
    from akkoord.store.format import FrameHeader, finish_frame

    kit, src, _, frames = base
    d = _fresh(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    target = next(f for f in frames if f.header.kind == 2)  # first AUDIO frame
    k = target.header.index
    prev = frames[k - 1].seal
    out = parts[:k]
    for i in range(k, len(parts)):
        fb = parts[i]
        h = FrameHeader.unpack(fb[:108])
        meta = fb[108 : 108 + h.meta_len]
        body = bytearray(fb[108 + h.meta_len : 108 + h.meta_len + h.body_len])
        if i == k:
            body[0] ^= 0xFF  # change the audio
        hb = FrameHeader(
            h.kind,
            h.flags,
            h.meta_len,
            h.index,
            h.samples,
            h.start_sample,
            h.body_len,
            h.recording_id,
            prev,
            h.audio_mac,
        ).pack()
        frame, prev = finish_frame(hb, meta, bytes(body))
        out.append(frame)
    rewrite(d, out)
    plain = verify_recording(d)
    # Without any key: the signed manifest, and every signed checkpoint after the change.
    assert not plain.ok and {f.code for f in plain.findings} == {
        "manifest_mismatch",
        "bad_checkpoint",
    }
    checkpoints = [f.header.index for f in frames if f.header.kind == 8 and f.header.index > k]
    assert [f.frame for f in plain.findings if f.code == "bad_checkpoint"] == checkpoints
    keyed = verify_recording(d, kit.org)
    bad = [f for f in keyed.findings if f.code == "bad_tag"]
    # The AEAD binds each frame to the chain before it, so every re-chained frame fails too:
    # the first failure is the change itself (checkpoints carry a signature, no AEAD tag).
    assert [f.frame for f in bad] == [
        f.header.index for f in frames[k:] if f.header.kind != 8
    ]
    assert bad[0].second == pytest.approx(target.header.start_sample / RATE, abs=1e-3)
