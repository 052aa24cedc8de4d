"""Recovery cannot be made to sign what the device did not record (issue 8 §3).

Each test is an attack by someone with write access to the state folder (but not the device
key): a planted container, a container swapped under a real recording, a closed recording
cut back and stripped of its signature, frames appended past the last checkpoint. Recovery
must refuse to sign every one; an honest power loss still closes, with its unsigned tail
disclosed in the manifest and by the verifier.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil

from akkoord.clock import FixedClock
from akkoord.store.custody import CustodyLog
from akkoord.store.format import (
    AEAD_TAG_LEN,
    CHECKPOINT_SECONDS,
    FrameHeader,
    Kind,
    finish_frame,
)
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import CONTAINER_FILE, StateDir
from akkoord.store.manifest import MANIFEST_FILE, SIGNATURE_FILE
from akkoord.store.recovery import recover_all
from akkoord.store.verify import verify_recording
from akkoord.store.writer import AudioParams, RecordingWriter
from storekit import RATE, SEG, frames_of, make_kit, pcm, record


def _types(kit):
    return [e["type"] for e in kit.custody.entries()]


def _open(kit, seconds: float, *, writer=None):
    """A recording the device was making when the power went, `seconds` of audio in."""
    w = writer or kit.writer()
    w.add_event("press", party="A")
    w.add_event("press", party="B")
    w.add_event("start")
    for i in range(int(seconds * RATE / SEG)):
        w.add_audio(pcm(i))
    w._close_fd()
    return w


def _forge_after(directory, n_frames: int, samples: int = SEG) -> None:
    """Append `n_frames` AUDIO frames that chain on (no key needed to chain)."""
    frames = frames_of(directory / CONTAINER_FILE)
    last = frames[-1]
    h = last.header
    prev, index = last.seal, h.index + 1
    position = h.start_sample + (h.samples if h.kind in (Kind.AUDIO, Kind.GAP) else 0)
    out = []
    for _ in range(n_frames):
        hb = FrameHeader(
            int(Kind.AUDIO), 0, 0, index, samples, position, samples * 2 + AEAD_TAG_LEN,
            h.recording_id, prev, os.urandom(32),
        ).pack()
        frame, prev = finish_frame(hb, b"", os.urandom(samples * 2 + AEAD_TAG_LEN))
        out.append(frame)
        index += 1
        position += samples
    with open(directory / CONTAINER_FILE, "ab") as f:
        f.write(b"".join(out))


def test_a_container_planted_in_the_state_folder_is_quarantined_not_signed(tmp_path):
    kit = make_kit(tmp_path)
    # The insider's own recording: own content key, invented presses, even a valid-looking
    # device header — made with the device's state folder but no entry in its custody log.
    other = tmp_path / "elsewhere"
    planted_state = StateDir(other)
    planted_state.ensure()
    w = RecordingWriter.create(
        planted_state, DeviceIdentity.generate(), [kit.org.public],
        AudioParams(sample_rate=RATE, segment_samples=SEG), FixedClock(),
        custody=CustodyLog(other / "c.log", DeviceIdentity.generate(), FixedClock()),
    )
    w.add_event("press", party="A")
    w.add_event("press", party="B")
    w.add_audio(pcm(1))
    w._close_fd()
    target = kit.state.recordings_dir / w.path.name
    shutil.copytree(w.path, target)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined" and "custody log" in res.detail
    assert not target.exists()
    moved = kit.state.quarantine_dir / w.path.name
    assert not (moved / MANIFEST_FILE).exists() and not (moved / SIGNATURE_FILE).exists()
    assert _types(kit)[-1] == "recording_quarantined"


def test_planted_with_the_device_key_but_never_logged_is_quarantined(tmp_path):
    """Even frames the device key signed are not closed without the log's start entry."""
    kit = make_kit(tmp_path)
    w = _open(kit, 1, writer=RecordingWriter.create(
        kit.state, kit.identity, [kit.org.public],
        AudioParams(sample_rate=RATE, segment_samples=SEG), kit.clock, custody=None,
    ))
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined"
    assert not (kit.state.quarantine_dir / w.path.name / MANIFEST_FILE).exists()


def test_a_container_swapped_under_a_started_recording_is_quarantined(tmp_path):
    kit = make_kit(tmp_path)
    real = _open(kit, 1)
    # Same recording id, different header (its own content key): the log's seal differs.
    fake_root = tmp_path / "fake"
    fake_state = StateDir(fake_root)
    fake = RecordingWriter.create(
        fake_state, kit.identity, [kit.org.public],
        AudioParams(sample_rate=RATE, segment_samples=SEG), kit.clock,
        custody=None, recording_id=bytes.fromhex(real.id),
    )
    fake.add_event("press", party="A")
    fake._close_fd()
    shutil.copyfile(fake.path / CONTAINER_FILE, real.path / CONTAINER_FILE)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined" and "header frame" in res.detail


def test_a_closed_recording_cut_back_and_unsigned_is_never_signed_again(tmp_path):
    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=8)
    container = w.path / CONTAINER_FILE
    frames = frames_of(container)
    before = (w.path / MANIFEST_FILE).read_bytes()
    # Cut at a frame boundary in the middle, delete the signed manifest.
    cut = frames[6].offset
    os.truncate(container, cut)
    (w.path / MANIFEST_FILE).unlink()
    (w.path / SIGNATURE_FILE).unlink()
    for _ in range(2):  # every start-up: reported, logged once, never signed
        (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
        assert res.action == "damaged" and "recording_closed" in res.detail
    assert not (w.path / MANIFEST_FILE).exists()
    assert container.stat().st_size == cut  # nothing cut, nothing appended
    assert _types(kit).count("recording_damaged") == 1
    rep = verify_recording(w.path)
    assert not rep.ok and "missing_signature" in {f.code for f in rep.findings}
    assert before  # the one signed manifest that ever existed


def test_frames_forged_past_the_checkpoint_interval_are_quarantined(tmp_path):
    """An insider extends an open recording: chained frames need no key, but a genuine
    device signs a checkpoint every 10 s, so more than that after the last is not its."""
    kit = make_kit(tmp_path)
    w = _open(kit, 1)
    _forge_after(w.path, int((CHECKPOINT_SECONDS + 1) * RATE / SEG))
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined" and "checkpoint" in res.detail


def test_a_checkpoint_signed_by_another_key_is_quarantined(tmp_path):
    kit = make_kit(tmp_path)
    forger = DeviceIdentity.generate()
    w = _open(kit, 1)
    frames = frames_of(w.path / CONTAINER_FILE)
    raw = bytearray((w.path / CONTAINER_FILE).read_bytes())
    cp = frames[1]
    assert cp.header.kind == Kind.CHECKPOINT
    from akkoord.store.format import checkpoint_message

    sig = forger.sign(checkpoint_message(cp.header_bytes, cp.meta_bytes))
    body_at = cp.offset + 108 + cp.header.meta_len
    raw[body_at : body_at + 64] = sig
    # Reseal the frame and everything after it so the chain still holds without a key.
    (w.path / CONTAINER_FILE).write_bytes(bytes(raw))
    _reseal_from(w.path, 1)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined" and "not signed by this device" in res.detail


def _reseal_from(directory, k: int) -> None:
    data = (directory / CONTAINER_FILE).read_bytes()
    offsets, pos = [], 0
    while pos < len(data):
        h = FrameHeader.unpack(data[pos : pos + 108])
        offsets.append((pos, h))
        pos += h.frame_len
    out = [data[: offsets[k][0]]]
    prev = data[offsets[k][0] - 32 : offsets[k][0]]
    for off, h in offsets[k:]:
        meta = data[off + 108 : off + 108 + h.meta_len]
        body = data[off + 108 + h.meta_len : off + 108 + h.meta_len + h.body_len]
        hb = FrameHeader(h.kind, h.flags, h.meta_len, h.index, h.samples, h.start_sample,
                         h.body_len, h.recording_id, prev, h.audio_mac).pack()
        frame, prev = finish_frame(hb, meta, body)
        out.append(frame)
    (directory / CONTAINER_FILE).write_bytes(b"".join(out))


def test_a_power_loss_is_closed_with_its_unsigned_tail_disclosed(tmp_path):
    kit = make_kit(tmp_path)
    w = _open(kit, 2.5 * CHECKPOINT_SECONDS)  # checkpoints at 10 s and 20 s
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "interrupted"
    doc = json.loads((w.path / MANIFEST_FILE).read_text())
    tail = doc["unsigned_tail"]
    half = CHECKPOINT_SECONDS * RATE // 2
    assert tail["samples"] == half and tail["seconds"] == CHECKPOINT_SECONDS / 2
    assert tail["frames"] == half // SEG
    cps = [f.header.index for f in frames_of(w.path / CONTAINER_FILE) if f.header.kind == 8]
    assert tail["after_frame"] == cps[-1] == doc["interruption"]["last_checkpoint"]
    rep = verify_recording(w.path, kit.org)
    assert rep.ok and rep.status == "interrupted"
    assert rep.unsigned_tail == tail
    assert any("unsigned tail" in n for n in rep.notes)
    assert rep.to_json()["unsigned_tail"] == tail


def test_a_complete_recording_has_no_unsigned_tail(tmp_path):
    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=3)
    doc = json.loads((w.path / MANIFEST_FILE).read_text())
    assert doc["unsigned_tail"] is None
    kinds = [f.header.kind for f in frames_of(w.path / CONTAINER_FILE)]
    assert kinds[1] == Kind.CHECKPOINT and kinds[-2] == Kind.CHECKPOINT
    assert kinds[-1] == Kind.END


def test_checkpoints_come_at_least_every_ten_seconds_of_audio(tmp_path):
    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=int(3.5 * CHECKPOINT_SECONDS * RATE / SEG))
    frames = frames_of(w.path / CONTAINER_FILE)
    at = [f.header.start_sample for f in frames if f.header.kind == Kind.CHECKPOINT]
    limit = CHECKPOINT_SECONDS * RATE
    assert all(b - a <= limit for a, b in itertools.pairwise(at))
    assert len(at) == 2 + 3  # start, every 10 s, before END
    assert verify_recording(w.path, kit.org).ok


def test_the_verifier_finds_a_recording_with_its_checkpoints_removed(tmp_path):
    """A recording rebuilt without checkpoints (chain redone, no key needed) fails the
    checkpoint rules even before the manifest signature is looked at."""
    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=4)
    data = (w.path / CONTAINER_FILE).read_bytes()
    frames = frames_of(w.path / CONTAINER_FILE)
    kept = [data[f.offset : f.offset + f.length] for f in frames if f.header.kind != 8]
    (w.path / CONTAINER_FILE).write_bytes(b"".join(kept))
    rep = verify_recording(w.path)
    assert not rep.ok
    assert "checkpoint" in {f.code for f in rep.findings} or "missing_frame" in {
        f.code for f in rep.findings
    }


def test_the_daemon_does_not_sign_a_planted_recording_at_start_up(tmp_path):
    """The real start-up path: `akkoord run` recovers before anything else."""
    from simkit import DEMO_WAV, Sim, provision, write_config

    state, _ = provision(tmp_path / "device")
    other = make_kit(tmp_path / "insider")
    planted = _open(other, 1)
    shutil.copytree(planted.path, state.recordings_dir / planted.id)
    cfg = write_config(tmp_path / "c.toml", "[audio]\nsample_rate = 16000\n")
    sim = Sim(state, "--config", str(cfg), "--audio-file", str(DEMO_WAV))
    try:
        event = sim.wait_for("recovered", recording_id=planted.id)
        assert event["action"] == "quarantined"
        sim.wait_for("ready")
    finally:
        sim.send("quit")
        sim.finish()
        sim.kill()
    moved = state.quarantine_dir / planted.id
    assert moved.is_dir() and not (moved / MANIFEST_FILE).exists()
    assert not (state.recordings_dir / planted.id).exists()
