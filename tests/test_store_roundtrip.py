"""Sealing, verifying and decrypting a recording; the guarantees that hold when nothing breaks."""

from __future__ import annotations

import json
import os
import wave

import pytest

from akkoord.errors import FormatError, KeyMaterialError, NoRecipientError
from akkoord.store.audio_out import decrypt_to_wav
from akkoord.store.format import Kind
from akkoord.store.keys import DevicePublicKey, generate_org_key
from akkoord.store.layout import CONTAINER_FILE, RESERVE_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import MANIFEST_FILE, SIGNATURE_FILE
from akkoord.store.verify import load_content_keys, verify_recording
from akkoord.store.writer import AudioParams, RecordingWriter
from storekit import RATE, SEG, frames_of, make_kit, record


@pytest.fixture
def kit():
    k = make_kit()
    yield k
    k.cleanup()


def test_closed_recording_verifies_with_and_without_key(kit):
    w, _ = record(kit, gap_after=2)
    plain = verify_recording(w.path)
    assert plain.ok and plain.status == "complete" and not plain.checked_audio
    keyed = verify_recording(w.path, kit.org, kit.identity.public)
    assert keyed.ok and keyed.checked_audio and keyed.device_trusted is True
    events = [e["event"] for e in keyed.timeline]
    assert events == ["press", "press", "start", "gap", "stop"]
    assert keyed.duration_seconds == pytest.approx((6 * SEG + SEG // 2) / RATE, abs=1e-3)


def test_manifest_lists_segments_gaps_and_who_stopped(kit):
    w, _ = record(kit, gap_after=1, segments=3)
    doc = json.loads((w.path / MANIFEST_FILE).read_text())
    assert doc["status"] == "complete"
    assert doc["stop"]["reason"] == "party_b"
    assert [s[1:3] for s in doc["segments"]] == [[0, SEG], [SEG, SEG], [SEG * 2 + SEG // 2, SEG]]
    assert doc["gaps"] == [[7, SEG * 2, SEG // 2]]  # frame 1 is the start checkpoint
    assert doc["device"]["fingerprint"] == kit.identity.fingerprint
    assert doc["frame_count"] == w.frame_count
    assert not (w.path / RESERVE_FILE).exists()


def test_decrypt_gives_exactly_the_samples_with_gaps_as_silence(kit, tmp_path):
    w, audio = record(kit, gap_after=1, segments=3)
    out = tmp_path / "out.wav"
    problems = decrypt_to_wav(
        w.path,
        load_content_keys(w.path, kit.org),
        out,
        rate=RATE,
        channels=1,
        width=2,
        total_samples=w.position,
    )
    assert problems == []
    with wave.open(str(out)) as wf:
        assert (wf.getframerate(), wf.getnchannels(), wf.getsampwidth()) == (RATE, 1, 2)
        data = wf.readframes(wf.getnframes())
    assert data == audio[0] + audio[1] + bytes(SEG) + audio[2]


def test_refuses_to_record_without_a_recipient(kit):
    with pytest.raises(NoRecipientError, match="add-recipient"):
        RecordingWriter.create(kit.state, kit.identity, [], AudioParams(), kit.clock)
    assert kit.state.recording_ids() == []


def test_content_key_never_reaches_the_disk(kit):
    content_key = os.urandom(32)
    w = kit.writer(content_key=content_key)
    w.add_audio(bytes(SEG * 2))
    w.close("party_a")
    secrets = [content_key, w.keys.seal_key, w.keys.mac_key]
    for root, _dirs, files in os.walk(kit.root):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                data = f.read()
            for s in secrets:
                assert s not in data, f"key material found in {name}"


def test_wrong_org_key_is_a_clear_error(kit):
    w, _ = record(kit)
    with pytest.raises(KeyMaterialError, match="not wrapped to key"):
        verify_recording(w.path, generate_org_key("x25519"))


def test_hybrid_post_quantum_recipient_round_trip(tmp_path):
    kit = make_kit(tmp_path, kem="mlkem768-x25519")
    w, _ = record(kit)
    assert verify_recording(w.path, kit.org).ok
    wrapped = json.loads((w.path / WRAPPED_KEYS_FILE).read_text())
    assert wrapped["recipients"][0]["kem"] == "mlkem768-x25519"


def test_several_recipients_each_decrypt(kit):
    other = generate_org_key("x25519")
    w = RecordingWriter.create(
        kit.state,
        kit.identity,
        [kit.org.public, other.public],
        AudioParams(sample_rate=RATE, segment_samples=SEG),
        kit.clock,
    )
    w.add_audio(bytes(SEG * 2))
    w.close("party_a")
    assert verify_recording(w.path, kit.org).ok
    assert verify_recording(w.path, other).ok


def test_unsigned_recording_never_passes(kit):
    """systemd #15425: a journal with no seal at all must not verify as sealed."""
    w, _ = record(kit)
    (w.path / MANIFEST_FILE).unlink()
    (w.path / SIGNATURE_FILE).unlink()
    rep = verify_recording(w.path)
    assert not rep.ok and [f.code for f in rep.findings] == ["missing_signature"]


def test_open_recording_is_reported_as_unsigned(kit):
    w, _ = record(kit, close=False)
    rep = verify_recording(w.path)
    assert not rep.ok
    assert {"missing_signature", "truncated"} <= {f.code for f in rep.findings}


def test_signature_from_another_device_is_caught(kit, tmp_path):
    w, _ = record(kit)
    other = make_kit(tmp_path)
    rep = verify_recording(w.path, trusted_key=other.identity.public)
    assert not rep.ok and rep.device_trusted is False
    assert [f.code for f in rep.findings] == ["wrong_device"]


def test_manifest_edit_breaks_the_signature(kit):
    w, _ = record(kit)
    path = w.path / MANIFEST_FILE
    path.write_bytes(path.read_bytes().replace(b'"party_b"', b'"party_a"'))
    codes = {f.code for f in verify_recording(w.path).findings}
    assert "bad_signature" in codes and "manifest_mismatch" in codes


def test_not_a_recording_is_unreadable(tmp_path):
    with pytest.raises(FormatError, match="not an akkoord recording"):
        verify_recording(tmp_path)
    (tmp_path / CONTAINER_FILE).write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        verify_recording(tmp_path)


def test_simulated_recordings_say_so(kit):
    w = kit.writer(simulated=True)
    w.add_audio(bytes(SEG * 2))
    w.close("party_a")
    rep = verify_recording(w.path)
    assert rep.ok and rep.simulated
    assert any("simulated" in n for n in rep.notes)


def test_custody_log_records_start_and_close(kit):
    w, _ = record(kit)
    entries = list(kit.custody.entries())
    assert [e["type"] for e in entries] == ["recording_started", "recording_closed"]
    assert entries[1]["detail"]["chain_head"] == w.chain_head.hex()


def test_frames_are_in_the_documented_order(kit):
    w, _ = record(kit, segments=2, gap_after=0)
    assert [Kind(f.header.kind).name for f in frames_of(w.container)] == [
        "HEADER",
        "CHECKPOINT",  # the signed start statement
        "EVENT",
        "EVENT",
        "EVENT",
        "AUDIO",
        "GAP",
        "AUDIO",
        "CHECKPOINT",  # the chain head, signed before END
        "END",
    ]


def test_device_public_key_round_trip(kit):
    pub = DevicePublicKey.load(kit.state.keys_dir / "device.pub")
    assert pub == kit.identity.public
