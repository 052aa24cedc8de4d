"""ENOSPC and EIO on the n-th write or fsync: a clean error, the recording closed (or left
for recovery and then closed as interrupted), and nothing acknowledged before it lost."""

from __future__ import annotations

import errno

import pytest

from akkoord.errors import StorageError
from akkoord.store.format import Kind
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import read_manifest
from akkoord.store.recovery import recover_all
from akkoord.store.verify import verify_recording
from akkoord.store.writer import RecordingFailed
from storekit import SEG, FaultyOps, frames_of, make_kit, pcm

SEGMENTS = 6
FRAMES = 1 + SEGMENTS  # header + audio, then END


def _run(kit, ops):
    """Record until the fault; return (writer or None, acknowledged audio, the error)."""
    try:
        w = kit.writer(ops=ops)
    except RecordingFailed as exc:
        return None, [], exc
    acked = []
    for i in range(SEGMENTS):
        data = pcm(i)
        try:
            w.add_audio(data)
        except RecordingFailed as exc:
            return w, acked, exc
        acked.append(data)
    return w, acked, None


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO])
@pytest.mark.parametrize("op", ["write", "sync"])
@pytest.mark.parametrize("n", range(1, FRAMES + 2))
def test_fault_on_nth_operation(op, n, err):
    kit = make_kit()
    try:
        ops = FaultyOps(op, n, err)
        w, acked, exc = _run(kit, ops)
        if w is None:
            # The header frame itself failed: nothing was acknowledged; recovery tidies up.
            assert isinstance(exc, StorageError) and exc.errno == err
            (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
            assert res.action in ("removed", "interrupted")
            return
        result = w.close("party_a")
        if exc is not None:
            assert exc.errno == err and str(exc)
            assert exc.closable == (op == "write")
        if result.status == "left_for_recovery":
            assert op == "sync"
            (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
            # An END frame whose fsync failed may still have reached the disk.
            assert res.action in ("interrupted", "closed")
        rep = verify_recording(w.path, kit.org)
        assert rep.ok, rep.findings
        audio = [f for f in frames_of(w.path / CONTAINER_FILE) if f.header.kind == Kind.AUDIO]
        # Every acknowledged segment is there, in order; a segment whose fsync failed may
        # or may not be (it was never acknowledged).
        assert len(audio) >= len(acked)
        assert all(f.header.start_sample == i * SEG for i, f in enumerate(audio))
        if op == "write" and exc is not None:
            assert rep.status == "complete" and len(audio) == len(acked)
    finally:
        kit.cleanup()


def test_nothing_more_is_written_after_a_failed_fsync():
    kit = make_kit()
    try:
        ops = FaultyOps("sync", 3, errno.EIO)
        w, _, exc = _run(kit, ops)
        assert isinstance(exc, RecordingFailed) and not exc.closable
        size = (w.path / CONTAINER_FILE).stat().st_size
        with pytest.raises(RecordingFailed):
            w.add_audio(pcm(99))
        assert w.close("party_a").status == "left_for_recovery"
        assert (w.path / CONTAINER_FILE).stat().st_size == size
        assert [e["type"] for e in kit.custody.entries()][-1] == "recording_failed"
    finally:
        kit.cleanup()


@pytest.mark.root
def test_real_full_disk_closes_the_recording_with_the_reserve(tmp_path, tmpfs):
    """A real small file system filling up mid-recording (no injected fault)."""
    mnt = tmpfs(tmp_path / "small", "size=3m")
    kit = make_kit(mnt)
    w = kit.writer(seg=16000)  # 32 kB segments
    written = 0
    with pytest.raises(RecordingFailed) as info:
        for i in range(1000):
            w.add_audio(pcm(i, 16000))
            written += 1
    assert info.value.errno == errno.ENOSPC and info.value.closable
    result = w.close("party_a")
    assert result.status == "complete", result.error
    rep = verify_recording(w.path, kit.org)
    assert rep.ok
    assert result.manifest["stop"]["storage_error"]
    assert len(read_manifest(w.path).doc["segments"]) == written

