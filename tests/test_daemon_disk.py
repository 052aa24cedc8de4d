"""The daemon refuses to start a recording with less than `min_free_minutes` of space.

In-process, on mock pins and a WAV microphone, with free space measured through the one seam
the daemon uses (`akkoord.recorder.free_bytes`): no tmpfs and no root needed. The same refusal
on a real small file system is in test_daemon_sim.py (where mounting is allowed).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from akkoord import recorder as recorder_mod
from akkoord.audio import WavBackend
from akkoord.clock import SystemClock
from akkoord.config import parse_config
from akkoord.consent import Party, Pressed, Released
from akkoord.daemon import Daemon, Reporter
from akkoord.panel import make_pin_factory
from simkit import DEMO_WAV, provision

RATE = 16000
MINUTE = RATE * 2 * 60  # bytes of 16 kHz mono audio per minute


@pytest.fixture
def state(tmp_path):
    return provision(tmp_path)[0]


def _press_both(state, free: int, monkeypatch) -> tuple[list[dict], bool]:
    """Boot a daemon with `free` bytes free, press A then B; (what it reported, recording?)."""
    def free_bytes(path):
        assert Path(path) == state.recordings_dir  # the disk that holds the recordings
        return free

    monkeypatch.setattr(recorder_mod, "free_bytes", free_bytes)
    config = parse_config(
        {"audio": {"sample_rate": RATE}, "store": {"min_free_minutes": 10,
                                                   "stop_free_minutes": 1}},
        "test",
    )
    config = dataclasses.replace(
        config, panel=dataclasses.replace(config.panel, pin_factory="mock")
    )
    events: list[dict] = []
    daemon = Daemon(
        config,
        state,
        backend=WavBackend(DEMO_WAV, config.audio),
        clock=SystemClock(),
        reporter=Reporter(events.append),
        pin_factory=make_pin_factory("mock"),
        simulated=True,
    )
    try:
        t = daemon.panel.now()
        for event in (Pressed(Party.A, t), Released(Party.A, t + 0.1),
                      Pressed(Party.B, t + 0.5), Released(Party.B, t + 0.6)):
            daemon.loop.handle(event)
        recording = daemon.recorder.active
    finally:
        daemon.shutdown()
    return events, recording


def test_refuses_to_record_below_min_free_minutes(state, monkeypatch):
    events, recording = _press_both(state, 5 * MINUTE, monkeypatch)
    assert not recording
    assert not [e for e in events if e["event"] == "recording_started"]
    assert any(e["event"] == "fault" and e.get("fault") == "storage_low" for e in events)


def test_records_with_enough_free_space(state, monkeypatch):
    events, recording = _press_both(state, 20 * MINUTE, monkeypatch)
    assert recording
    assert not any(e["event"] == "fault" and e.get("fault") == "storage_low" for e in events)
