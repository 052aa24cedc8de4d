"""Power loss: torn tails are cut back to the acknowledged prefix and the recording is closed
with a signed *interrupted* note; corruption followed by good frames is quarantined whole."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from akkoord.store.custody import CustodyView
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE
from akkoord.store.manifest import MANIFEST_FILE
from akkoord.store.recovery import recover_all, recover_recording
from akkoord.store.verify import verify_recording
from storekit import SEG, copy_recording, fast_tmp, frame_bytes, frames_of, kinds, make_kit, pcm

SMALL = 40  # samples per segment: small frames so every byte offset can be tried


_VIEWS: dict = {}


def _view(kit):
    """What the device's log said before any test recovered a copy of the recording: each
    test recovers its own copy of one recording the device left open."""
    if kit.root not in _VIEWS:
        _VIEWS[kit.root] = CustodyView.read(kit.state.custody_path, kit.identity.public)
    return _VIEWS[kit.root]


@pytest.fixture(scope="module")
def open_recording():
    """A recording the device was writing when the power went: no END, no manifest."""
    kit = make_kit()
    w = kit.writer(seg=SMALL)
    w.add_event("press", party="A")
    w.add_event("press", party="B")
    w.add_event("start")
    for i in range(4):
        w.add_audio(pcm(i, SMALL))
    w.add_gap(7, "overflow")
    w.add_audio(pcm(9, SMALL))
    w._close_fd()  # the process dies here: nothing else is written
    yield kit, w.path
    kit.cleanup()


def _recover_copy(kit, src, scratch, mutate):
    target = scratch / "recordings"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    d = copy_recording(src, target)
    mutate(d / CONTAINER_FILE)
    return d, recover_recording(d, kit.identity, kit.clock, None, log_view=_view(kit))


def test_every_cut_in_the_last_frames_keeps_exactly_the_acknowledged_prefix(open_recording):
    kit, src = open_recording
    frames = frames_of(src / CONTAINER_FILE)
    raw = (src / CONTAINER_FILE).read_bytes()
    scratch = fast_tmp()
    try:
        start = frames[-2].offset
        for cut in range(start, len(raw) + 1):
            d, res = _recover_copy(kit, src, scratch, lambda p, cut=cut: p.write_bytes(raw[:cut]))
            whole = [f for f in frames if f.offset + f.length <= cut]
            assert res.action == "interrupted", (cut, res)
            got = frames_of(d / CONTAINER_FILE)
            assert [f.seal for f in got[:-1]] == [f.seal for f in whole], cut
            assert kinds(d / CONTAINER_FILE)[-1] == "RECOVERY"
            assert res.manifest["interruption"]["cut_bytes"] == cut - (
                whole[-1].offset + whole[-1].length
            )
            rep = verify_recording(d, kit.org)
            assert rep.ok and rep.status == "interrupted", (cut, rep.findings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.mark.parametrize(
    "tail", [b"\0" * 1, b"\0" * 4096, os.urandom(3000), b"AKF1" + os.urandom(200)]
)
def test_garbage_or_zeros_after_the_last_frame_are_cut(open_recording, tail):
    kit, src = open_recording
    frames = frames_of(src / CONTAINER_FILE)
    scratch = fast_tmp()
    try:

        def append(p):
            with open(p, "ab") as f:
                f.write(tail)

        d, res = _recover_copy(kit, src, scratch, append)
        assert res.action == "interrupted"
        assert [f.seal for f in frames_of(d / CONTAINER_FILE)[:-1]] == [f.seal for f in frames]
        assert res.manifest["interruption"]["cut_bytes"] == len(tail)
        assert verify_recording(d, kit.org).status == "interrupted"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_bad_frame_followed_by_good_frames_is_quarantined_not_cut(open_recording):
    kit, src = open_recording
    scratch = fast_tmp()
    try:
        state_recordings = scratch / "state" / "recordings"
        state_recordings.mkdir(parents=True)
        d = copy_recording(src, state_recordings)
        frames = frames_of(d / CONTAINER_FILE)
        raw = bytearray((d / CONTAINER_FILE).read_bytes())
        raw[frames[4].offset + 150] ^= 0x01  # damage an audio frame in the middle
        (d / CONTAINER_FILE).write_bytes(bytes(raw))
        res = recover_recording(d, kit.identity, kit.clock, kit.custody, log_view=_view(kit))
        assert res.action == "quarantined"
        moved = scratch / "state" / "quarantine" / src.name
        assert (moved / CONTAINER_FILE).read_bytes() == bytes(raw)  # nothing cut
        assert not d.exists() and not (moved / MANIFEST_FILE).exists()
        assert list(kit.custody.entries())[-1]["type"] == "recording_quarantined"
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_recover_all_closes_open_and_leaves_closed_alone(tmp_path):
    kit = make_kit(tmp_path)
    done = kit.writer()
    done.add_audio(bytes(SEG * 2))
    done.close("party_a")
    before = (done.path / MANIFEST_FILE).read_bytes()
    left = kit.writer()
    left.add_audio(bytes(SEG * 2))
    left._close_fd()
    results = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert [(r.recording_id, r.action) for r in results] == [(left.id, "interrupted")]
    assert (done.path / MANIFEST_FILE).read_bytes() == before
    assert not (left.path / RESERVE_FILE).exists()
    doc = json.loads((left.path / MANIFEST_FILE).read_text())
    assert doc["status"] == "interrupted" and doc["interruption"]["reason"] == "power_loss"
    assert [e["type"] for e in kit.custody.entries()][-1] == "recording_interrupted"
    assert recover_all(kit.state, kit.identity, kit.clock, kit.custody) == []


def test_end_frame_on_disk_but_no_manifest_is_closed_as_complete(tmp_path):
    kit = make_kit(tmp_path)
    w = kit.writer()
    w.add_audio(bytes(SEG * 2))
    w.close("party_a")
    # The power went after END reached the disk, before the manifest and its log entry.
    (w.path / MANIFEST_FILE).unlink()
    (w.path / "manifest.sig").unlink()
    log = kit.state.custody_path
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:-1]))
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "closed"
    rep = verify_recording(w.path, kit.org)
    assert rep.ok and rep.status == "complete"


def test_crash_before_the_first_frame_removes_the_empty_folder(tmp_path):
    kit = make_kit(tmp_path)
    w = kit.writer()
    w._close_fd()
    (w.path / CONTAINER_FILE).write_bytes(b"")
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "removed" and not w.path.exists()
    assert [e["type"] for e in kit.custody.entries()][-1] == "recording_aborted"


def test_interrupted_recording_with_key_checks_every_segment(open_recording):
    kit, src = open_recording
    scratch = fast_tmp()
    try:
        d, res = _recover_copy(kit, src, scratch, lambda p: None)
        rep = verify_recording(d, kit.org)
        assert rep.ok and rep.checked_audio
        assert res.manifest["duration_samples"] == 5 * SMALL + 7
        # and a recovered recording is as tamper-evident as any other
        parts = frame_bytes(d / CONTAINER_FILE)
        del parts[5]
        (d / CONTAINER_FILE).write_bytes(b"".join(parts))
        assert not verify_recording(d).ok
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
