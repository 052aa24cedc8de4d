"""The daemon through its simulator: the real loop, store and panel on mock pins, a WAV file
as the microphone, commands on stdin, JSON lines out."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from akkoord.cli import main
from akkoord.store.verify import verify_recording
from simkit import DEMO_WAV, Sim, provision, run_script, write_config

CONFIG = """
[audio]
sample_rate = 16000
[export]
window_seconds = {window}
"""


@pytest.fixture
def setup(tmp_path):
    state, key = provision(tmp_path)
    cfg = write_config(tmp_path / "akkoord.toml", CONFIG.format(window=600))
    return tmp_path, state, key, cfg


def _sim_args(cfg):
    return ("--config", str(cfg), "--audio-file", str(DEMO_WAV))


def _of(events, name):
    return [e for e in events if e["event"] == name]


def test_full_ceremony_with_copy(setup):
    root, state, key, cfg = setup
    stick = root / "stick"
    stick.mkdir()
    script = f"""
    a
    sleep 0.5
    b
    sleep 2.3
    b          # party B stops
    sleep 0.8
    usb {stick}
    sleep 0.3
    a
    b
    sleep 1.5
    quit
    """
    rc, events, err = run_script(state, script, *_sim_args(cfg))
    assert rc == 0, err
    assert all("event" in e and "state" in e for e in events)
    (started,) = _of(events, "recording_started")
    (stopped,) = _of(events, "recording_stopped")
    assert stopped["reason"] == "party_b" and stopped["status"] == "complete"
    assert stopped["recording_id"] == started["recording_id"]
    assert 2.0 <= stopped["duration_seconds"] <= 3.5
    (made,) = _of(events, "copy_made")
    states = [e["state"] for e in _of(events, "state")]
    assert states[:4] == ["waiting", "recording", "stopped", "copy_confirm"]
    rec = state.recording_dir(started["recording_id"])
    rep = verify_recording(rec, trusted_key=state.device_public_key())
    assert rep.ok and rep.simulated and rep.status == "complete"
    assert [e["event"] for e in rep.timeline][:3] == ["press", "press", "start"]
    assert [e.get("party") for e in rep.timeline][:2] == ["A", "B"]
    assert main(["verify", made["path"], "--state", str(state.root)]) == 0
    assert main(["verify", str(rec), "--key", str(key), "--state", str(state.root)]) == 0


def test_bad_commands_are_reported_and_with_keep_going_the_device_keeps_running(setup):
    _, state, _, cfg = setup
    script = """
    jump
    press c
    sleep soon
    usb /dev/null
    unplug now
    a
    b
    sleep 1.2
    b
    quit
    """
    rc, events, _ = run_script(state, script, "--keep-going", *_sim_args(cfg))
    errors = _of(events, "error")
    assert rc == 2 and len(errors) == 5  # kept going, and still not a silent success
    assert "'jump'" in errors[0]["message"] and "unknown command" in errors[0]["message"]
    assert "party is a or b" in errors[1]["message"]
    assert len(_of(events, "recording_stopped")) == 1


def test_one_party_pressing_twice_never_records(setup):
    _, state, _, cfg = setup
    rc, events, _ = run_script(state, "a\nsleep 0.8\na\nsleep 0.5\nquit\n", *_sim_args(cfg))
    assert rc == 0 and not _of(events, "recording_started")
    assert state.recording_ids() == []


def test_end_of_input_is_quit_and_seals_the_recording(setup):
    _, state, _, cfg = setup
    rc, events, _ = run_script(state, "a\nb\nsleep 1.2\n", *_sim_args(cfg))
    (stopped,) = _of(events, "recording_stopped")
    assert rc == 0 and stopped["reason"] == "shutdown" and stopped["status"] == "complete"


def test_microphone_pulled_and_plugged_back(setup):
    _, state, _, cfg = setup
    script = """
    a
    b
    sleep 1.5
    unplug
    sleep 0.5
    a
    b
    sleep 0.5
    plug
    sleep 2.5
    a
    b
    sleep 1.2
    quit
    """
    rc, events, _ = run_script(state, script, *_sim_args(cfg))
    stops = _of(events, "recording_stopped")
    assert rc == 0 and stops[0]["reason"] == "microphone_lost"
    assert stops[0]["status"] == "complete"
    assert {"fault": "no_microphone"}.items() <= _of(events, "fault")[0].items()
    cleared = _of(events, "fault_cleared")
    assert cleared and cleared[0]["fault"] == "no_microphone"
    # presses while the fault showed started nothing; after plugging back, recording works
    assert len(_of(events, "recording_started")) == 2
    assert stops[1]["reason"] == "shutdown"


def test_sigterm_seals_the_open_recording_within_two_seconds(setup):
    _, state, _, cfg = setup
    sim = Sim(state, *_sim_args(cfg))
    try:
        sim.send("a", "b")
        started = sim.wait_for("recording_started")
        sim.wait_for("release", party="b")
        time.sleep(1.5)
        t0 = time.monotonic()
        sim.proc.send_signal(signal.SIGTERM)
        rc = sim.proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        sim.finish()
    finally:
        sim.kill()
    assert rc == 0 and elapsed < 2.0, elapsed
    (stopped,) = _of(sim.events, "recording_stopped")
    assert stopped["reason"] == "shutdown" and stopped["status"] == "complete"
    rep = verify_recording(state.recording_dir(started["recording_id"]))
    assert rep.ok and rep.status == "complete"


def test_killed_mid_recording_is_recovered_as_interrupted_on_the_next_start(setup):
    _, state, key, cfg = setup
    sim = Sim(state, *_sim_args(cfg))
    try:
        sim.send("a", "b")
        started = sim.wait_for("recording_started")
        time.sleep(2.5)
        os.kill(sim.proc.pid, signal.SIGKILL)
        sim.proc.wait(timeout=10)
    finally:
        sim.kill()
    rid = started["recording_id"]
    assert verify_recording(state.recording_dir(rid)).status == "tampered"  # not closed yet
    rc, events, _ = run_script(state, "quit\n", *_sim_args(cfg))
    (rec,) = _of(events, "recovered")
    assert rc == 0 and rec["recording_id"] == rid and rec["action"] == "interrupted"
    rep = verify_recording(state.recording_dir(rid))
    assert rep.ok and rep.status == "interrupted"
    assert main(["verify", str(state.recording_dir(rid)), "--key", str(key),
                 "--state", str(state.root)]) == 0


def test_no_recipient_means_no_recording(tmp_path):
    state, _ = provision(tmp_path)
    for p in state.recipients_dir.iterdir():
        p.unlink()
    cfg = write_config(tmp_path / "c.toml", CONFIG.format(window=600))
    rc, events, _ = run_script(state, "a\nb\nsleep 0.5\nquit\n", *_sim_args(cfg))
    assert rc == 0 and not _of(events, "recording_started")
    assert any(e["fault"] == "no_keys" for e in _of(events, "fault"))


def test_keys_leave_memory_after_the_export_window(tmp_path):
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "c.toml", CONFIG.format(window=1))
    stick = tmp_path / "stick"
    stick.mkdir()
    script = f"a\nb\nsleep 1.2\nb\nsleep 2\nusb {stick}\nsleep 0.5\na\nb\nsleep 0.5\nquit\n"
    rc, events, _ = run_script(state, script, *_sim_args(cfg))
    assert rc == 0 and _of(events, "keys_dropped")
    assert not _of(events, "copy_made") and os.listdir(stick) == []
    says = [e["prompt"] for e in _of(events, "say")]
    assert "no_recording" in says


@pytest.mark.root
def test_disk_guard_refuses_then_stops_before_the_disk_is_full(tmp_path, tmpfs):
    disk = tmpfs(tmp_path / "disk", "size=6m")
    state, _ = provision(disk)
    bytes_per_minute = 16000 * 2 * 60 * 1.02
    # Refuse: less free space than min_free_minutes.
    cfg = write_config(tmp_path / "refuse.toml",
                       "[audio]\nsample_rate = 16000\n[store]\nmin_free_minutes = 10\n")
    rc, events, _ = run_script(state, "a\nb\nsleep 0.5\nquit\n", "--config", str(cfg),
                               "--audio-file", str(DEMO_WAV))
    assert rc == 0 and not _of(events, "recording_started")
    assert any(e["fault"] == "storage_low" for e in _of(events, "fault"))
    # Stop: start with room, then reach stop_free_minutes after about two seconds.
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    stop_at = free - (1 << 20) - 2.2 * 16000 * 2 * 1.02  # the 1 MiB reserve is set aside
    cfg = write_config(tmp_path / "stop.toml", (
        "[audio]\nsample_rate = 16000\n[store]\n"
        f"min_free_minutes = {stop_at / bytes_per_minute + 0.01:.4f}\n"
        f"stop_free_minutes = {stop_at / bytes_per_minute:.4f}\n"))
    rc, events, _ = run_script(state, "a\nb\nsleep 6\nquit\n", "--config", str(cfg),
                               "--audio-file", str(DEMO_WAV))
    (stopped,) = _of(events, "recording_stopped")
    assert rc == 0 and stopped["reason"] == "disk_full" and stopped["status"] == "complete"
    assert 1.0 <= stopped["duration_seconds"] <= 4.0
    rid = stopped["recording_id"]
    assert verify_recording(state.recording_dir(rid)).ok
    assert json.loads((state.recording_dir(rid) / "manifest.json").read_text())["stop"][
        "reason"] == "disk_full"
