"""The recorder's disk guard: it stops a recording, sealed and complete, before the disk is full.

Free space is measured in one place, `akkoord.recorder.free_bytes`. These tests replace it
with a disk of a fixed size whose use is the real bytes the recording has written so far,
so the guard runs on any machine, without root and without mounting a small file system
(tests/test_daemon_sim.py and test_store_faults.py also do it for real, on a tmpfs, where
mounting is allowed).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from akkoord import recorder as recorder_mod
from akkoord.audio import WavBackend
from akkoord.audio.config import AudioConfig
from akkoord.clock import SystemClock
from akkoord.recorder import Recorder, StopOutcome, free_seconds
from akkoord.store.verify import verify_recording
from akkoord.store.writer import DEFAULT_RESERVE, AudioParams
from simkit import DEMO_WAV
from storekit import make_kit

RATE = 16000
BYTES_PER_SECOND = RATE * 2


class VirtualTime:
    """Time for the WAV microphone: waiting advances it, so audio is due at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> None:
        self.now += seconds
        time.sleep(0.0005)  # let the test thread in; bounds the rate if the guard is gone


def _used(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _recorder(kit, stop_free_seconds: float, on_stopped) -> Recorder:
    vt = VirtualTime()
    backend = WavBackend(DEMO_WAV, AudioConfig(sample_rate=RATE), clock=vt.clock, wait=vt.wait)
    return Recorder(
        state=kit.state,
        identity=kit.identity,
        custody=kit.custody,
        clock=SystemClock(),
        backend=backend,
        audio=AudioParams(sample_rate=RATE, segment_samples=RATE // 2),
        stop_free_seconds=stop_free_seconds,
        on_stopped=on_stopped,
    )


def test_free_seconds_counts_what_free_bytes_reports(kit, monkeypatch):
    asked = []
    monkeypatch.setattr(recorder_mod, "free_bytes",
                        lambda path: asked.append(path) or 10 * BYTES_PER_SECOND)
    assert free_seconds(kit.state.recordings_dir, RATE) == pytest.approx(10 / 1.02)
    assert free_seconds(kit.state.recordings_dir, RATE, channels=2) == pytest.approx(5 / 1.02)
    assert asked == [kit.state.recordings_dir] * 2


def test_real_free_bytes_agrees_with_df(kit):
    """The reference for "space an unprivileged writer may still use" is df's Avail column
    (not the root-reserved blocks): free_bytes must say the same."""
    df = subprocess.run(["df", "--output=avail", "-B1", str(kit.state.recordings_dir)],
                        capture_output=True, text=True, check=True).stdout.split()
    got = recorder_mod.free_bytes(kit.state.recordings_dir)
    assert abs(got - int(df[-1])) <= 1 << 20  # other writers on the machine meanwhile


def test_guard_stops_the_recording_before_the_disk_is_full(kit, monkeypatch, caplog):
    # Room for the writer's reserve file and ~6 s of audio.
    disk = _used(kit.state.recordings_dir) + DEFAULT_RESERVE + 6 * BYTES_PER_SECOND
    # The fake disk is the recordings folder: asked about anything else, it fails the test.
    monkeypatch.setattr(recorder_mod, "free_bytes", lambda path: disk - _used(Path(path)))
    done: list[StopOutcome] = []
    ended = threading.Event()
    rec = _recorder(kit, 2.0, lambda out: (done.append(out), ended.set()))
    rid = rec.start([kit.org.public], [("a", kit.clock.wall(), 1.0), ("b", kit.clock.wall(), 0.0)])
    try:
        assert ended.wait(10), "the recording was not stopped by the disk guard"
    finally:
        rec.stop("party_a", timeout=5)
    (out,) = done
    assert out.reason == "disk_full" and out.recording_id == rid
    assert out.result.status == "complete"
    # Stopped with the reserve still free: about 6 - 2 s recorded, never past the disk.
    assert 2.0 <= out.result.manifest["duration_seconds"] <= 4.5
    assert disk - _used(kit.state.recordings_dir) > 0
    rep = verify_recording(kit.state.recording_dir(rid))
    assert rep.ok and rep.status == "complete"
    assert any("s of space left: stopping the recording (disk full)" in r.getMessage()
               for r in caplog.records)
