"""The recording writer to the byte: what it creates and with which modes, the header frame's
fields, the frame order and checkpoint cadence, the custody entries it makes, and the words
and places of every error it raises."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat

import pytest

from akkoord import __version__
from akkoord.errors import UsageError
from akkoord.store.format import CONTAINER_FORMAT, Kind
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import read_manifest
from akkoord.store.reader import parse_meta
from akkoord.store.writer import DEFAULT_RESERVE, AudioParams, FileOps, RecordingFailed
from storekit import SEG, FaultyOps, frames_of, make_kit, pcm


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _kinds(w):
    return [Kind(f.header.kind).name for f in frames_of(w.path / CONTAINER_FILE)]


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"sample_width": 3}, "only 16-bit PCM (sample_width 2) is supported"),
        ({"channels": 3}, "channels must be 1 or 2, not 3"),
        ({"channels": 0}, "channels must be 1 or 2, not 0"),
        ({"sample_rate": 7999}, "sample_rate 7999 is out of range"),
        ({"sample_rate": 192001}, "sample_rate 192001 is out of range"),
        ({"segment_samples": 0}, "segment_samples must be positive"),
    ],
)
def test_audio_params_out_of_range_are_refused(kw, why):
    with pytest.raises(UsageError) as err:
        AudioParams(**kw)
    assert str(err.value) == why


def test_audio_params_at_their_limits():
    for rate in (8000, 192000):
        AudioParams(sample_rate=rate)
    p = AudioParams(sample_rate=8000, channels=2, segment_samples=1)
    assert p.frame_bytes == 4
    assert p.to_json() == {"encoding": "pcm_s16le", "sample_rate": 8000, "channels": 2,
                           "sample_width": 2, "segment_samples": 1}
    assert AudioParams().to_json() == {"encoding": "pcm_s16le", "sample_rate": 48000,
                                       "channels": 1, "sample_width": 2,
                                       "segment_samples": 48000}


def test_what_a_new_recording_creates(kit):
    kit.custody.append("device_started")
    kit.custody.append("device_started")
    before = kit.custody.head()
    old = os.umask(0o022)
    try:
        w = kit.writer(extra_header={"room": "3b"})
    finally:
        os.umask(old)
    assert w.path == kit.state.recordings_dir / w.id and len(w.id) == 32
    assert w.container == w.path / CONTAINER_FILE
    assert stat.S_IMODE(w.path.stat().st_mode) == 0o700
    keys = w.path / WRAPPED_KEYS_FILE
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE(w.container.stat().st_mode) == 0o600
    doc = json.loads(keys.read_bytes())
    assert doc["type"] == "akkoord-wrapped-keys" and doc["version"] == 1
    assert doc["recording_id"] == w.id
    assert [r["fingerprint"] for r in doc["recipients"]] == [kit.org.fingerprint]
    assert (w.path / RESERVE_FILE).stat().st_size == DEFAULT_RESERVE

    header, checkpoint = frames_of(w.container)
    meta, problem = parse_meta(header)
    assert problem is None
    device = meta.pop("device")
    assert meta == {
        "format": CONTAINER_FORMAT,
        "recording_id": w.id,
        "created": kit.clock.wall().to_json(),
        "audio": w.audio.to_json(),
        "recipients": [{"fingerprint": kit.org.fingerprint, "kem": kit.org.kem}],
        "wrapped_keys_sha256": hashlib.sha256(keys.read_bytes()).hexdigest(),
        "simulated": False,
        "software": f"akkoord {__version__}",
        "custody": {"seq": before.seq, "hash": before.hash},
        "room": "3b",
    }
    assert device["algorithm"] == "ed25519"
    assert device["fingerprint"] == kit.identity.fingerprint
    assert device["certificate"] == kit.state.device_certificate()
    assert (header.header.index, checkpoint.header.index) == (0, 1)
    assert checkpoint.header.kind == Kind.CHECKPOINT
    assert w.frame_count == 2 and w.chain_head == checkpoint.seal

    started = list(kit.custody.entries())[-1]
    assert started["type"] == "recording_started" and started["recording_id"] == w.id
    assert started["detail"] == {"simulated": False, "header_seal": header.seal.hex()}


def test_without_a_reserve_or_custody_log(kit):
    from akkoord.store.writer import RecordingWriter

    w = RecordingWriter.create(kit.state, kit.identity, [kit.org.public], AudioParams(),
                               kit.clock, reserve_bytes=0)
    assert not (w.path / RESERVE_FILE).exists()
    meta, _ = parse_meta(frames_of(w.container)[0])
    assert "custody" not in meta and meta["simulated"] is False
    w.add_audio(pcm(1))
    assert w.close("party_a").status == "complete"


def test_the_first_recording_vouches_for_an_empty_log(tmp_path):
    kit = make_kit(tmp_path, certified=False)
    assert kit.custody.head() is None
    w = kit.writer()
    meta, _ = parse_meta(frames_of(w.container)[0])
    assert meta["custody"] is None and "certificate" not in meta["device"]


def test_frame_order_and_a_checkpoint_every_ten_seconds(kit):
    w = kit.writer(rate=8000, seg=8000)  # one-second segments
    w.add_event("start")
    for i in range(21):
        w.add_audio(pcm(i, 8000))
    w.add_gap(8000 * 9, "overflow")
    w.add_gap(1, "overflow")
    w.add_audio(pcm(99, 8000))
    result = w.close("party_b", party="B")
    assert _kinds(w) == (
        ["HEADER", "CHECKPOINT", "EVENT"]
        + ["AUDIO"] * 10 + ["CHECKPOINT"] + ["AUDIO"] * 10 + ["CHECKPOINT"] + ["AUDIO"]
        # 21 s + 9 s of gap is exactly 10 s after the last checkpoint
        + ["GAP", "CHECKPOINT", "GAP", "AUDIO", "CHECKPOINT", "END"]
    )
    assert w.position == 8000 * 22 + 8000 * 9 + 1
    assert result.status == "complete" and result.error is None
    assert result.manifest["stop"]["samples"] == w.position
    assert result.manifest["stop"]["party"] == "B"
    assert result.manifest["stop"]["reason"] == "party_b"
    assert not (w.path / RESERVE_FILE).exists()
    closed = list(kit.custody.entries())[-1]
    assert closed["type"] == "recording_closed"
    assert closed["detail"] == {"status": "complete", "reason": "party_b",
                                "chain_head": result.manifest["chain_head"]}
    assert read_manifest(w.path).doc["chain_head"] == w.chain_head.hex()


def test_close_right_after_a_checkpoint_adds_no_second_one(kit):
    w = kit.writer(rate=8000, seg=8000)
    for i in range(10):
        w.add_audio(pcm(i, 8000))
    w.close("party_a")
    assert _kinds(w)[-3:] == ["AUDIO", "CHECKPOINT", "END"]


def test_a_gap_is_timed_and_disclosed(kit):
    w = kit.writer()
    w.add_audio(pcm(1))
    w.add_gap(123, "device_stalled", estimated=True, detail="x")
    frames = frames_of(w.container)
    gap = frames[-1]
    meta, _ = parse_meta(gap)
    assert (gap.header.start_sample, gap.header.samples) == (SEG, 123)
    assert meta == {"event": "gap", "cause": "device_stalled", "estimated": True,
                    "time": kit.clock.wall().to_json(), "detail": "x"}
    w.add_event("press", party="A")
    ev = frames_of(w.container)[-1]
    assert ev.header.start_sample == SEG + 123
    assert parse_meta(ev)[0] == {"event": "press", "time": kit.clock.wall().to_json(),
                                 "party": "A"}


def test_misuse_is_refused_in_words(kit):
    w = kit.writer()
    for bad in (b"", b"\x00"):
        with pytest.raises(UsageError) as err:
            w.add_audio(bad)
        assert str(err.value) == "a segment must be a positive whole number of 2-byte frames"
    with pytest.raises(UsageError) as err:
        w.add_gap(0, "overflow")
    assert str(err.value) == "a gap must be at least one sample"
    w.add_gap(1, "overflow")
    w.close("party_a")
    with pytest.raises(UsageError) as err:
        w.close("party_a")
    assert str(err.value) == f"recording {w.id} is already closed"
    with pytest.raises(UsageError) as err:
        w.add_audio(pcm(1))
    assert str(err.value) == f"recording {w.id} is closed"


def test_a_failed_write_says_which_frame_and_byte_and_is_cut_back(kit):
    w = kit.writer(ops=FaultyOps("write", 4, errno.ENOSPC))
    w.add_audio(pcm(1))  # write 3
    size = w.container.stat().st_size
    with pytest.raises(RecordingFailed) as err:
        w.add_audio(pcm(2))  # write 4: half written, then ENOSPC
    assert err.value.errno == errno.ENOSPC and err.value.closable
    where = f"{w.container} (frame 3, byte {size})"
    assert str(err.value) == f"write failed at {where}: [Errno 28] No space left on device"
    assert w.container.stat().st_size == size  # the half frame is gone
    assert w.failed is err.value
    with pytest.raises(RecordingFailed):
        w.add_event("press")
    result = w.close("party_a")
    assert result.status == "complete"
    assert result.manifest["stop"]["storage_error"] == str(err.value)
    assert not (w.path / RESERVE_FILE).exists()


class _NoTruncate(FaultyOps):
    def truncate(self, fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")


def test_a_write_that_cannot_be_cut_back_leaves_the_recording_for_recovery(kit):
    w = kit.writer(ops=_NoTruncate("write", 3, errno.ENOSPC))
    size = w.container.stat().st_size
    with pytest.raises(RecordingFailed) as err:
        w.add_audio(pcm(1))
    where = f"{w.container} (frame 2, byte {size})"
    assert str(err.value) == (
        f"write failed at {where} ([Errno 28] No space left on device) and cutting back "
        "failed ([Errno 5] Input/output error); the recording is left for recovery")
    assert err.value.errno == errno.ENOSPC and not err.value.closable
    result = w.close("party_a")
    assert (result.status, result.manifest, result.error) == (
        "left_for_recovery", None, str(err.value))
    failed = list(kit.custody.entries())[-1]
    assert failed["type"] == "recording_failed" and failed["detail"] == {
        "error": str(err.value)}


def test_a_failed_fsync_is_final_and_says_where(kit):
    w = kit.writer(ops=FaultyOps("sync", 3, errno.EIO))
    size = w.container.stat().st_size
    with pytest.raises(RecordingFailed) as err:
        w.add_audio(pcm(1))
    where = f"{w.container} (frame 2, byte {size})"
    assert str(err.value) == (f"fsync failed at {where}: [Errno 5] Input/output error; "
                              "the recording is left for recovery")
    assert err.value.errno == errno.EIO and not err.value.closable


def test_fileops_sync_names_the_file_when_fsync_fails():
    fd = os.open("/dev/null", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as err:
            FileOps().sync(fd, "the container")
    finally:
        os.close(fd)
    assert err.value.errno == errno.EINVAL
    assert str(err.value) == "fsync failed for the container: Invalid argument"


def test_an_unsynced_writer_still_writes_whole_frames(kit):
    w = kit.writer(sync=False, ops=FaultyOps("sync", 1, errno.EIO))
    w.add_audio(pcm(1))
    assert w.close("party_a").status == "complete"
    assert _kinds(w)[-3:] == ["AUDIO", "CHECKPOINT", "END"]


def test_the_stop_note_of_a_clean_close(kit):
    w = kit.writer()
    w.add_audio(pcm(1))
    w.add_gap(5, "overflow")  # estimated=False unless said
    kit.clock.advance(2)
    result = w.close("party_a", party="A")
    assert result.manifest["stop"] == {"event": "stop", "reason": "party_a",
                                       "time": kit.clock.wall().to_json(),
                                       "samples": SEG + 5, "party": "A"}
    assert [t.get("estimated") for t in result.manifest["timeline"]
            if t["event"] == "gap"] == [False]


class _FailAt(FileOps):
    """Fails the write or sync of frame bytes at one call, after `ok` good calls."""

    def __init__(self, op: str, ok: int, err: int, then: str | None = None) -> None:
        self.op, self.left, self.err, self.then = op, ok, err, then

    def write(self, fd: int, data: bytes, where: str) -> None:
        if self.op == "write" and self._fire():
            raise OSError(self.err, os.strerror(self.err))
        super().write(fd, data, where)

    def sync(self, fd: int, where: str) -> None:
        if self.then == "sync" and self.op == "fired":
            self.then = None
            raise OSError(errno.EIO, f"Input/output error at {where}")
        if self.op == "sync" and self._fire():
            raise OSError(self.err, os.strerror(self.err))
        super().sync(fd, where)

    def _fire(self) -> bool:
        self.left -= 1
        if self.left < 0:
            self.op = "fired"
            return True
        return False


def test_a_write_failing_while_closing_is_retried_once_with_the_reserve_freed(kit):
    ops = _FailAt("write", 2 + 1, errno.ENOSPC)  # header, checkpoint, audio; then close
    w = kit.writer(ops=ops)
    w.add_audio(pcm(1))
    result = w.close("party_a")
    assert result.status == "complete" and result.error is None
    where = f"{w.container} (frame 3, byte {frames_of(w.container)[3].offset})"
    assert result.manifest["stop"]["storage_error"] == (
        f"write failed at {where}: [Errno 28] No space left on device")
    assert _kinds(w)[-3:] == ["AUDIO", "CHECKPOINT", "END"]
    assert not (w.path / RESERVE_FILE).exists()


def test_an_fsync_failing_while_closing_leaves_the_recording_for_recovery(kit):
    w = kit.writer(ops=_FailAt("sync", 2 + 1, errno.EIO))
    w.add_audio(pcm(1))
    result = w.close("party_a")
    assert result.status == "left_for_recovery" and result.manifest is None
    assert result.error.startswith(f"fsync failed at {w.container} (frame 3, byte ")
    assert result.error.endswith("the recording is left for recovery")
    failed = list(kit.custody.entries())[-1]
    assert (failed["type"], failed["recording_id"], failed["detail"]) == (
        "recording_failed", w.id, {"error": result.error})
    with pytest.raises(UsageError, match="already closed"):
        w.close("party_a")
    assert not (w.path / "manifest.json").exists()


def test_after_a_final_failure_close_says_so_once(kit):
    w = kit.writer(ops=FaultyOps("sync", 3, errno.EIO))
    with pytest.raises(RecordingFailed):
        w.add_audio(pcm(1))
    result = w.close("party_a")
    assert result.status == "left_for_recovery"
    assert list(kit.custody.entries())[-1]["recording_id"] == w.id
    with pytest.raises(UsageError) as err:
        w.close("party_a")
    assert str(err.value) == f"recording {w.id} is already closed"


def test_a_cut_back_whose_fsync_fails_is_final_and_says_so(kit):
    ops = _FailAt("write", 2, errno.ENOSPC, then="sync")
    w = kit.writer(ops=ops)
    size = w.container.stat().st_size
    with pytest.raises(RecordingFailed) as err:
        w.add_audio(pcm(1))
    where = f"{w.container} (frame 2, byte {size})"
    assert str(err.value) == (
        f"write failed at {where} ([Errno 28] No space left on device) and cutting back "
        f"failed ([Errno 5] Input/output error at {where}); the recording is left for "
        "recovery")
    assert err.value.closable is False


def test_a_custody_log_that_fails_at_close_does_not_lose_the_recording(kit):
    from pathlib import Path

    from akkoord.store.custody import CustodyLog

    w = kit.writer()
    w.add_audio(pcm(1))
    w._custody = CustodyLog(Path("/dev/full"), kit.identity, kit.clock)
    result = w.close("party_a")
    assert result.status == "complete"
    assert read_manifest(w.path).doc["status"] == "complete"


def test_a_writer_leaves_no_file_open(kit):
    fds = set(os.listdir("/proc/self/fd"))
    w = kit.writer()
    w.add_audio(pcm(1))
    w.close("party_a")
    w2 = kit.writer(ops=FaultyOps("sync", 3, errno.EIO))
    with pytest.raises(RecordingFailed):
        w2.add_audio(pcm(1))
    w2.close("party_a")
    assert set(os.listdir("/proc/self/fd")) <= fds


def test_the_reserve_is_written_where_fallocate_is_not_supported(kit, monkeypatch):
    """Some file systems (FAT on a stick, some FUSE) refuse posix_fallocate: the reserve is
    then written out as zeros, mode 0600 like the rest of the folder."""

    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    old = os.umask(0o022)
    try:
        w = kit.writer(reserve_bytes=70_000)
    finally:
        os.umask(old)
    reserve = w.path / RESERVE_FILE
    assert reserve.read_bytes() == bytes(70_000)
    assert stat.S_IMODE(reserve.stat().st_mode) == 0o600


def test_checkpoints_say_what_they_are(kit):
    w = kit.writer()
    kit.clock.advance(1)
    w.checkpoint()
    cps = [f for f in frames_of(w.container) if f.header.kind == Kind.CHECKPOINT]
    assert [parse_meta(f)[0]["event"] for f in cps] == ["checkpoint", "checkpoint"]
    assert parse_meta(cps[-1])[0] == {"event": "checkpoint", "time": kit.clock.wall().to_json()}
    assert cps[-1].header.body_len == 64  # a signature, no ciphertext


def test_fileops_write_names_the_file_when_the_disk_is_full():
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(OSError) as err:
            FileOps().write(fd, b"frame", "the container (frame 9, byte 99)")
    finally:
        os.close(fd)
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == ("write failed for the container (frame 9, byte 99): "
                              "No space left on device")


class _OtherFile(FileOps):
    """The real FileOps, but the n-th write or sync goes to another file (/dev/full cannot
    be written, /dev/null cannot be fsync'ed): the writer's real error path end to end."""

    def __init__(self, op: str, n: int) -> None:
        self.op, self.n = op, n

    def _target(self, op: str, fd: int) -> int:
        if op == self.op:
            self.n -= 1
            if self.n == 0:
                return os.open("/dev/full" if op == "write" else "/dev/null", os.O_WRONLY)
        return fd

    def write(self, fd: int, data: bytes, where: str) -> None:
        target = self._target("write", fd)
        try:
            super().write(target, data, where)
        finally:
            if target != fd:
                os.close(target)

    def sync(self, fd: int, where: str) -> None:
        target = self._target("sync", fd)
        try:
            super().sync(target, where)
        finally:
            if target != fd:
                os.close(target)


@pytest.mark.parametrize(("op", "words"), [
    ("write", "write failed for {where}: No space left on device"),
    ("sync", "fsync failed for {where}: Invalid argument"),
])
def test_a_real_write_or_fsync_failure_names_the_frame_twice_over(kit, op, words):
    w = kit.writer(ops=_OtherFile(op, 3))
    size = w.container.stat().st_size
    with pytest.raises(RecordingFailed) as err:
        w.add_audio(pcm(1))
    where = f"{w.container} (frame 2, byte {size})"
    assert words.format(where=where) in str(err.value)
    assert str(err.value).count(where) == 2


def test_a_given_content_key_is_the_one_wrapped(kit):
    from akkoord.store.keys import unwrap_content_key

    ck = bytes(range(32))
    w = kit.writer(content_key=ck)
    doc = json.loads((w.path / WRAPPED_KEYS_FILE).read_bytes())
    assert unwrap_content_key(doc["recipients"], w.recording_id, kit.org, "k") == ck


def test_writes_are_synced_unless_told_otherwise(kit):
    from akkoord.store.writer import RecordingWriter

    with pytest.raises(RecordingFailed):
        RecordingWriter.create(kit.state, kit.identity, [kit.org.public], AudioParams(),
                               kit.clock, ops=FaultyOps("sync", 1, errno.EIO))


def test_a_segment_larger_than_the_frame_buffer(kit):
    """One second of 48 kHz stereo is 192,000 bytes: more than the writer's first buffer."""
    from akkoord.store.verify import verify_recording
    from akkoord.store.writer import RecordingWriter

    w = RecordingWriter.create(kit.state, kit.identity, [kit.org.public],
                               AudioParams(channels=2), kit.clock, custody=kit.custody)
    big = os.urandom(192_000)
    w.add_audio(big)
    w.add_audio(big[:4000])
    w.close("party_a")
    rep = verify_recording(w.path, kit.org)
    assert rep.ok, rep.findings
    assert read_manifest(w.path).doc["duration_samples"] == 48_000 + 1000
