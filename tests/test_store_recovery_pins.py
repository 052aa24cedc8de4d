"""Recovery's outcomes to the word: each result's action and detail, the RECOVERY frame's
fields, the custody entry every outcome leaves, and where a refused folder goes."""

from __future__ import annotations

import os

import pytest

from akkoord import __version__
from akkoord.errors import FormatError, UsageError
from akkoord.store.format import Kind
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE
from akkoord.store.manifest import MANIFEST_FILE, read_manifest
from akkoord.store.reader import parse_meta
from akkoord.store.recovery import (
    NOT_STARTED,
    STORAGE_ERROR,
    RecoveryResult,
    recover_all,
    recover_recording,
)
from akkoord.store.writer import AudioParams, RecordingWriter
from storekit import SEG, frames_of, make_kit, pcm


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _open(kit, n=3, gap=False):
    w = kit.writer()
    w.add_event("start")
    for i in range(n):
        w.add_audio(pcm(i))
    if gap:
        w.add_gap(11, "overflow")
    w._close_fd()  # the power goes
    return w


def _last(kit):
    return list(kit.custody.entries())[-1]


def test_an_interrupted_recording_is_closed_with_a_recovery_note(kit):
    w = _open(kit, 3, gap=True)
    frames = frames_of(w.container)
    torn = b"\x00" * 17
    with open(w.container, "ab") as f:
        f.write(torn)
    kit.clock.advance(60)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody, STORAGE_ERROR)
    assert res.recording_id == w.id and res.action == "interrupted"
    assert res.detail == f"{len(frames) + 1} frames kept, 17 torn bytes cut"
    assert res.manifest == read_manifest(w.path).doc | {"segments": res.manifest["segments"]}
    after = frames_of(w.container)
    assert after[:-1] == frames
    rec = after[-1]
    last = frames[-1]
    assert rec.header.kind == Kind.RECOVERY
    assert (rec.header.index, rec.header.prev, rec.header.samples) == (
        last.header.index + 1, last.seal, 0)
    assert rec.header.start_sample == 3 * SEG + 11  # after the gap
    assert rec.header.flags == 0 and rec.header.audio_mac == bytes(32)
    checkpoint = max(f.header.index for f in frames if f.header.kind == Kind.CHECKPOINT)
    assert parse_meta(rec)[0] == {
        "event": "recovered",
        "reason": STORAGE_ERROR,
        "last_index": last.header.index,
        "last_checkpoint": checkpoint,
        "chain_head": last.seal.hex(),
        "cut_bytes": 17,
        "time": kit.clock.wall().to_json(),
        "software": f"akkoord {__version__}",
    }
    assert w.container.stat().st_size == rec.offset + rec.length
    assert not (w.path / RESERVE_FILE).exists()
    doc = read_manifest(w.path).doc
    assert doc["status"] == "interrupted" and doc["duration_samples"] == 3 * SEG + 11
    entry = _last(kit)
    assert (entry["type"], entry["recording_id"]) == ("recording_interrupted", w.id)
    assert entry["detail"] == {"status": "interrupted", "reason": STORAGE_ERROR,
                               "chain_head": doc["chain_head"], "cut_bytes": 17}
    # nothing left to do the second time
    assert recover_all(kit.state, kit.identity, kit.clock, kit.custody) == []


def test_a_recording_that_ends_in_audio_is_timed_after_it(kit):
    w = _open(kit, 2)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    rec = frames_of(w.container)[-1]
    assert rec.header.start_sample == 2 * SEG
    assert parse_meta(rec)[0]["reason"] == "power_loss"
    assert res.detail.endswith(", 0 torn bytes cut")


def test_an_end_frame_without_its_manifest_is_closed_as_it_was(kit):
    w = kit.writer()
    w.add_audio(pcm(1))
    w.close("party_a")
    end_size = w.container.stat().st_size
    (w.path / MANIFEST_FILE).unlink()
    # the log says started, not closed: the manifest write was what the power cut
    lines = kit.state.custody_path.read_bytes().splitlines(keepends=True)
    kit.state.custody_path.write_bytes(b"".join(lines[:-1]))
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "closed"
    assert w.container.stat().st_size == end_size  # no RECOVERY frame
    entry = _last(kit)
    assert entry["type"] == "recording_closed"
    assert entry["detail"] == {"status": "complete", "reason": "manifest written at recovery",
                               "chain_head": res.manifest["chain_head"], "cut_bytes": 0}


def test_nothing_recorded_is_removed_and_logged(kit):
    w = kit.writer()
    w._close_fd()
    header = frames_of(w.container)[0]
    with open(w.container, "r+b") as f:
        f.truncate(header.length)  # only the header reached the disk
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res == RecoveryResult(w.id, "removed", "only the header frame was written")
    assert not w.path.exists()
    entry = _last(kit)
    assert (entry["type"], entry["detail"]) == (
        "recording_aborted", {"detail": "only the header frame was written"})


def test_an_empty_container_is_removed(kit):
    w = kit.writer()
    w._close_fd()
    w.container.write_bytes(b"")
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res == RecoveryResult(w.id, "removed",
                                 "no frame was written before the device stopped")
    assert not w.path.exists()


def test_a_folder_the_log_does_not_know_is_quarantined_and_logged(kit):
    w = _open(kit)
    lines = kit.state.custody_path.read_bytes().splitlines(keepends=True)
    kit.state.custody_path.write_bytes(b"".join(lines[:-1]))  # the start entry is gone
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    target = kit.state.quarantine_dir / w.id
    assert res == RecoveryResult(w.id, "quarantined", f"{NOT_STARTED}; kept whole in {target}")
    assert target.is_dir() and not w.path.exists()
    assert not (target / MANIFEST_FILE).exists()
    entry = _last(kit)
    assert (entry["type"], entry["recording_id"]) == ("recording_quarantined", w.id)
    assert entry["detail"] == {"detail": NOT_STARTED, "moved_to": str(target)}


def test_a_second_folder_of_the_same_name_is_quarantined_beside_the_first(kit):
    w = _open(kit)
    with open(w.container, "r+b") as f:
        f.write(b"\x00" * 4)  # no whole first frame: refused
    (kit.state.quarantine_dir / w.id).mkdir(parents=True)  # an earlier one of that name
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    target = kit.state.quarantine_dir / f"{w.id}.{os.getpid()}"
    assert res.action == "quarantined" and res.detail.endswith(f"; kept whole in {target}")
    assert (target / CONTAINER_FILE).exists() and not w.path.exists()
    assert list((kit.state.quarantine_dir / w.id).iterdir()) == []


def test_a_damaged_first_frame_followed_by_good_frames_is_named(kit):
    w = _open(kit)
    frames = frames_of(w.container)
    with open(w.container, "r+b") as f:
        f.seek(frames[1].offset + 10)
        f.write(b"\xff" * 4)  # frame 1 broken, frames 2.. whole
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    good = len(frames) - 2
    assert res.action == "quarantined"
    assert res.detail.startswith(
        f"a damaged frame at byte {frames[1].offset} is followed by {good} good frames; ")
    w3 = _open(kit)
    with open(w3.container, "r+b") as f:
        f.write(b"\x00" * 4)  # no whole first frame
    results = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    (res,) = [r for r in results if r.recording_id == w3.id]
    assert res.action == "quarantined" and res.detail.startswith("no whole first frame; ")


def test_a_closed_recording_without_its_manifest_is_damage_logged_once(kit):
    w = kit.writer()
    w.add_audio(pcm(1))
    w.close("party_a")
    (w.path / MANIFEST_FILE).unlink()
    why = ("the custody log shows it as recording_closed, but its manifest is missing: "
           "damaged")
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res == RecoveryResult(w.id, "damaged", why)
    assert (_last(kit)["type"], _last(kit)["detail"]) == ("recording_damaged",
                                                           {"detail": why})
    count = len(list(kit.custody.entries()))
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "damaged"
    assert len(list(kit.custody.entries())) == count  # not logged again
    assert not (w.path / MANIFEST_FILE).exists()


def test_a_container_that_is_not_a_file_is_refused(kit):
    w = _open(kit)
    w.container.unlink()
    os.mkfifo(w.container)
    with pytest.raises(FormatError) as err:
        recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert str(err.value) == f"{w.container}: not a regular file; refusing to recover it"


def test_recovery_needs_the_custody_log(kit):
    w = _open(kit)
    with pytest.raises(UsageError) as err:
        recover_recording(w.path, kit.identity, kit.clock, None)
    assert str(err.value) == "recovery needs the custody log to know what the device started"
    res = recover_recording(w.path, kit.identity, kit.clock, kit.custody)
    assert res.action == "interrupted"


def test_a_header_naming_another_device_is_not_signed(kit):
    """The log (signed by this device) records the header's seal, but the header names
    another key: recovery must not put this device's signature under it."""
    from akkoord.store.keys import DeviceIdentity

    other = DeviceIdentity.generate()
    w = RecordingWriter.create(kit.state, other, [kit.org.public], AudioParams(
        sample_rate=16000, segment_samples=SEG), kit.clock, custody=kit.custody)
    w.add_audio(pcm(1))
    w._close_fd()
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined"
    assert res.detail.startswith("the header does not name this device's key; ")


def test_unconcluded_exports_are_reconciled_once_each_with_what_is_known(kit):
    from akkoord.store.exports import append_export
    from akkoord.store.reconcile import open_exports, reconcile_exports

    w = kit.writer()
    w.add_audio(pcm(1))
    w.close("party_a")
    gone = "c" * 32
    kit.custody.append("export", w.id, copy_number=1, stick_id_sha256="s1")
    append_export(w.path, kit.identity, kit.clock, copy_number=1, stick_id_sha256="s1")
    kit.custody.append("export", w.id, copy_number=2, stick_id_sha256="s2")  # power cut
    kit.custody.append("export", w.id, copy_number=3, stick_id_sha256=None)
    kit.custody.append("export_failed", w.id, copy_number=3)  # concluded
    kit.custody.append("export", gone, copy_number=1, stick_id_sha256=None)  # folder gone
    seqs = {(e.get("recording_id"), (e.get("detail") or {}).get("copy_number")): e["seq"]
            for e in kit.custody.entries() if e["type"] == "export"}
    assert [(e["recording_id"], e["detail"]["copy_number"])
            for e in open_exports(list(kit.custody.entries()))] == [
        (w.id, 1), (w.id, 2), (gone, 1)]
    done = reconcile_exports(kit.state, kit.custody)
    assert done == [
        {"recording_id": w.id, "copy_number": 2, "export_seq": seqs[(w.id, 2)],
         "outcome": "not_completed", "stick_id_sha256": "s2"},
        {"recording_id": gone, "copy_number": 1, "export_seq": seqs[(gone, 1)],
         "outcome": "unknown", "stick_id_sha256": None},
    ]
    tail = list(kit.custody.entries())[-2:]
    assert [(e["type"], e["recording_id"], e["detail"]) for e in tail] == [
        ("export_reconciled", d["recording_id"],
         {k: v for k, v in d.items() if k != "recording_id"}) for d in done]
    assert reconcile_exports(kit.state, kit.custody) == []  # once each
    assert open_exports(list(kit.custody.entries())) == [
        e for e in kit.custody.entries() if e["type"] == "export"
        and e["recording_id"] == w.id and e["detail"]["copy_number"] == 1]


def test_an_unreadable_export_record_leaves_the_outcome_unknown(kit):
    from akkoord.store.layout import EXPORTS_FILE
    from akkoord.store.reconcile import reconcile_exports

    w = kit.writer()
    w.close("party_a")
    (w.path / EXPORTS_FILE).mkdir()  # not a file: cannot be read
    kit.custody.append("export", w.id, copy_number=1, stick_id_sha256=None)
    (d,) = reconcile_exports(kit.state, kit.custody)
    assert d["outcome"] == "unknown"


def test_a_recording_that_ends_in_an_event_is_timed_at_it(kit):
    w = _open(kit, 2)
    w2 = kit.writer()
    w2.add_audio(pcm(1))
    w2.add_event("press", party="A")
    w2._close_fd()
    del w
    results = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert [r.action for r in results] == ["interrupted", "interrupted"]
    rec = frames_of(w2.container)[-1]
    assert rec.header.kind == Kind.RECOVERY and rec.header.start_sample == SEG


def test_the_quarantine_folder_is_made_private(kit):
    import shutil
    import stat

    w = _open(kit)
    with open(w.container, "r+b") as f:
        f.write(b"\x00" * 4)
    shutil.rmtree(kit.state.quarantine_dir)
    old = os.umask(0o022)
    try:
        (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    finally:
        os.umask(old)
    assert res.action == "quarantined"
    assert stat.S_IMODE(kit.state.quarantine_dir.stat().st_mode) == 0o700


def test_an_outcome_without_its_export_entry_is_no_error():
    from akkoord.store.reconcile import open_exports

    entries = [{"type": "export_failed", "recording_id": "a", "detail": {"copy_number": 1}},
               {"type": "export", "recording_id": "a", "detail": {"copy_number": 2}}]
    assert open_exports(entries) == [entries[1]]


# --- what recovery refuses to sign, each reason in full -----------------------------------


def _reseal(container, at, **change):
    """Rewrite frame `at` with some header fields changed and a fresh seal (anyone can
    chain; only checkpoints need the device key)."""
    from akkoord.store.format import FrameHeader, finish_frame

    f = frames_of(container)[at]
    data = container.read_bytes()
    h = f.header
    fields = {k: getattr(h, k) for k in ("kind", "flags", "meta_len", "index", "samples",
                                         "start_sample", "body_len", "recording_id", "prev",
                                         "audio_mac")}
    fields.update(change)
    body = data[f.offset + len(f.header_bytes) + len(f.meta_bytes): f.offset + f.length - 32]
    frame, _ = finish_frame(FrameHeader(**fields).pack(), f.meta_bytes, body)
    container.write_bytes(data[: f.offset] + frame + data[f.offset + f.length:])
    return f


@pytest.mark.parametrize("change", ["prev", "index"])
def test_a_frame_that_does_not_chain_is_where_the_prefix_ends(kit, change):
    w = _open(kit, 4)
    k = 4  # header, checkpoint, event, audio 0, audio 1 <- this one
    f = frames_of(w.container)[k]
    _reseal(w.container, k, **({"prev": bytes(32)} if change == "prev" else {"index": 99}))
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    after = len(frames_of(kit.state.quarantine_dir / w.id / CONTAINER_FILE)) - k
    assert res.action == "quarantined"
    assert res.detail.startswith(
        f"a damaged frame at byte {f.offset} is followed by {after} good frames; ")


def test_a_custody_log_that_cannot_be_written_does_not_stop_recovery(kit):
    from pathlib import Path

    from akkoord.store.custody import CustodyLog, CustodyView

    w = _open(kit)
    view = CustodyView.read(kit.state.custody_path, kit.identity.public)
    broken = CustodyLog(Path("/dev/full"), kit.identity, kit.clock)
    res = recover_recording(w.path, kit.identity, kit.clock, broken, log_view=view)
    assert res.action == "interrupted"
    assert read_manifest(w.path).doc["status"] == "interrupted"


def test_a_recording_the_log_shows_as_gone_is_damage_not_a_power_loss(kit):
    w = _open(kit)
    kit.custody.append("recording_aborted", w.id)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res == RecoveryResult(
        w.id, "damaged",
        "the custody log shows it as recording_aborted, but its manifest is missing: damaged")
    assert not (w.path / MANIFEST_FILE).exists()


def test_a_folder_without_a_container_is_removed(kit):
    w = kit.writer()
    w._close_fd()
    w.container.unlink()
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res == RecoveryResult(w.id, "removed",
                                 "no frame was written before the device stopped")


def test_a_header_the_log_did_not_record_is_named(kit):
    from akkoord.store.custody import CustodyLog, CustodyView

    w = _open(kit)
    other = CustodyLog(kit.root / "other.log", kit.identity, kit.clock)
    other.append("recording_started", w.id, header_seal="00" * 32)
    view = CustodyView.read(other.path, kit.identity.public)
    res = recover_recording(w.path, kit.identity, kit.clock, None, state=kit.state,
                            log_view=view)
    assert res.action == "quarantined"
    assert res.detail.startswith(
        "frame 0 is not the header frame the custody log recorded at the start; ")


def test_a_container_without_its_start_checkpoint_is_not_signed(kit, monkeypatch):
    monkeypatch.setattr(RecordingWriter, "checkpoint",
                        lambda self: self.add_event("no checkpoint"))
    w = kit.writer()
    monkeypatch.undo()
    w.add_audio(pcm(1))
    w._close_fd()
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined"
    assert res.detail.startswith("frame 1 is not the device's signed start checkpoint; ")


def test_an_end_frame_without_a_checkpoint_before_it_is_not_signed(kit, monkeypatch):
    w = kit.writer()
    w.add_audio(pcm(1))
    monkeypatch.setattr(RecordingWriter, "checkpoint", lambda self: None)
    w._append(Kind.END, meta={"event": "stop"}, final=True)
    monkeypatch.undo()
    w._close_fd()
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined"
    assert res.detail.startswith("the END frame does not follow a signed checkpoint; ")


def test_an_export_frame_inside_a_container_is_not_signed(kit):
    w = kit.writer()
    w.add_audio(pcm(1))
    w._append(Kind.EXPORT, meta={"event": "export"})
    w._close_fd()
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined"
    assert res.detail.startswith(
        "frame 3 is a EXPORT frame, which a recording never holds; ")
