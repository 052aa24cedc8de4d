"""Issue 11 §6: the microphone opens while the recording is created. What the start used to
guarantee still holds: a failure on either side closes what was begun, with its reason."""

from __future__ import annotations

import pytest

from akkoord.audio import AudioBackend, parse_audio_config
from akkoord.errors import HardwareError
from akkoord.recorder import Recorder
from akkoord.store.manifest import read_manifest
from akkoord.store.writer import AudioParams
from storekit import fast_tmp, make_kit


@pytest.mark.alsa
def test_a_missing_microphone_still_closes_the_recording_it_began(monkeypatch):
    from akkoord.audio.virtual import alsa_env, write_asoundrc

    kit = make_kit(fast_tmp())
    root = kit.root / "alsa"
    root.mkdir()
    write_asoundrc(root, mics={})
    for k, v in alsa_env(root).items():
        monkeypatch.setenv(k, v)
    backend = AudioBackend(parse_audio_config({"input_device": "no-such-mic"}, "test"))
    rec = Recorder(state=kit.state, identity=kit.identity, custody=kit.custody,
                   clock=kit.clock, backend=backend, audio=AudioParams(), stop_free_seconds=0)
    try:
        with pytest.raises(HardwareError):
            rec.start([kit.org.public],
                      [("a", kit.clock.wall(), 1.0), ("b", kit.clock.wall(), 0.0)])
    finally:
        backend.close()
    (rid,) = kit.state.recording_ids()
    doc = read_manifest(kit.state.recording_dir(rid)).doc
    assert doc["stop"]["reason"] == "microphone_lost"
    assert [e.get("event") for e in doc["timeline"]] == ["press", "press", "start", "stop"]
    assert not rec.active


@pytest.mark.alsa
def test_a_store_that_cannot_start_leaves_the_microphone_closed(monkeypatch):
    from akkoord.audio.virtual import alsa_env, position_signal, write_asoundrc, write_raw
    from akkoord.errors import NoRecipientError

    kit = make_kit(fast_tmp())
    root = kit.root / "alsa"
    root.mkdir()
    write_asoundrc(root, mics={"mic": write_raw(root / "mic.raw", position_signal(48000 * 3))})
    for k, v in alsa_env(root).items():
        monkeypatch.setenv(k, v)
    backend = AudioBackend(parse_audio_config({"input_device": "mic", "pace_realtime": True},
                                              "test"))
    rec = Recorder(state=kit.state, identity=kit.identity, custody=kit.custody,
                   clock=kit.clock, backend=backend, audio=AudioParams(), stop_free_seconds=0)
    consents = [("a", kit.clock.wall(), 1.0), ("b", kit.clock.wall(), 0.0)]
    try:
        with pytest.raises(NoRecipientError):
            rec.start([], consents)  # nobody could read it: nothing is created
        assert kit.state.recording_ids() == [] and not rec.active
        rec.start([kit.org.public], consents)  # the microphone was released: it opens again
        out = rec.stop("party_a", timeout=5)
        assert out is not None and out.result.status == "complete"
    finally:
        backend.close()
