"""The console in the real daemon (`akkoord run --simulate --console PTY`, a WAV as the
microphone): a flooded console does not disturb a recording; admin commands see its state."""

from __future__ import annotations

import os
import threading
import time

import serial

from akkoord.console.client import ConsoleClient
from akkoord.console.protocol import encode_frame
from akkoord.store.manifest import read_manifest
from akkoord.store.verify import verify_recording
from consolekit import pty_pair  # noqa: F401
from simkit import DEMO_WAV, Sim, provision, write_config

CONFIG = """
[audio]
sample_rate = 16000
"""


def _flood(host: str, stop: threading.Event, sent: list[int]) -> None:
    with serial.serial_for_url(host, timeout=0) as port:
        status = encode_frame({"v": 1, "id": 9, "cmd": ["status"]})
        bad = bytearray(encode_frame({"v": 1, "id": 10, "cmd": ["delete", "0" * 32]}))
        bad[12] ^= 0x20  # a flipped bit: must never run
        while not stop.is_set():
            burst = (os.urandom(8192) + b"\n" + b"A" * 20000 + b"\n" + bytes(bad) + status
                     + b"\xff" * 3000 + b"\r\n" + status[:25])
            port.write(burst)
            sent[0] += len(burst)
            port.read(65536)  # drain answers so the line never backs up


def test_flooded_console_does_not_disturb_a_recording(tmp_path, pty_pair):  # noqa: F811
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "akkoord.toml", CONFIG)
    sim = Sim(state, "--config", str(cfg), "--audio-file", str(DEMO_WAV),
              "--console", pty_pair.device)
    stop, sent = threading.Event(), [0]
    flooder = threading.Thread(target=_flood, args=(pty_pair.host, stop, sent), daemon=True)
    try:
        sim.wait_for("console_open")
        flooder.start()
        time.sleep(0.5)
        sim.send("a", "sleep 0.3", "b")
        started = sim.wait_for("recording_started")
        time.sleep(4.0)
        stop.set()
        flooder.join(timeout=10)
        with serial.serial_for_url(pty_pair.host, timeout=0.05) as port:
            time.sleep(2.2)  # let the partial line left by the flood time out
            port.reset_input_buffer()
            status = ConsoleClient(port, timeout=15).call(["status"])
        assert status["ok"] and status["result"]["state"] == "recording"
        assert status["result"]["recording"] == started["recording_id"]
        sim.send("b")
        stopped = sim.wait_for("recording_stopped")
        sim.send("quit")
        assert sim.finish() == 0
    finally:
        stop.set()
        sim.kill()
    # Flooded indeed: a 115200-baud UART carries ~11.5 kB/s, 46 kB in these 4 s.
    assert sent[0] > 300_000, sent
    assert stopped["status"] == "complete" and stopped["gaps"] == 0
    assert stopped["duration_seconds"] >= 4.0
    rec = state.recording_dir(started["recording_id"])
    report = verify_recording(rec, trusted_key=state.device_public_key())
    assert report.ok and report.status == "complete"
    assert read_manifest(rec).doc["gaps"] == []
    assert not [e for e in state.recording_ids() if e != started["recording_id"]]
    assert not any(e.get("type") == "recording_deleted"
                   for e in _custody(state))  # the corrupted delete never ran


def _custody(state):
    from akkoord.store.custody import CustodyLog

    return list(CustodyLog(state.custody_path, state.identity(), None).entries())  # type: ignore[arg-type]


def test_configured_port_is_served_but_not_when_simulating_without_console(tmp_path,
                                                                        pty_pair):  # noqa: F811
    from simkit import run_script

    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "akkoord.toml",
                       CONFIG + f'[console]\nport = "{pty_pair.device}"\n')
    rc, events, err = run_script(state, "sleep 0.5\nquit\n", "--config", str(cfg))
    assert rc == 0, err
    assert not [e for e in events if e["event"].startswith("console_")]
    rc, events, err = run_script(state, "sleep 1\nquit\n", "--config", str(cfg),
                                 "--console", pty_pair.device)
    assert rc == 0, err
    assert [e["port"] for e in events if e["event"] == "console_open"] == [pty_pair.device]


def test_admin_through_the_running_daemon_sees_its_state(tmp_path, pty_pair):  # noqa: F811
    """The daemon's view reaches the console: the recording in progress and the one in its
    copy window are refused to `delete`, the clock is not set while recording."""
    import json

    from akkoord.cli import main
    from consolekit import make_org, trust

    state, _ = provision(tmp_path)
    org = make_org(tmp_path)
    trust(state, org)
    cfg = write_config(tmp_path / "akkoord.toml", CONFIG)
    sim = Sim(state, "--config", str(cfg), "--audio-file", str(DEMO_WAV),
              "--console", pty_pair.device)
    admin = ["--admin-key", str(org.admin_dir / "admin.key")]

    def console(*words):
        return main(["console", "--port", pty_pair.host, "--timeout", "15", *admin, *words])

    try:
        sim.wait_for("console_open")
        sim.send("a", "sleep 0.3", "b")
        rid = sim.wait_for("recording_started")["recording_id"]
        assert console("time", "set") == 1
        assert console("delete", rid, "--reason", "test", "--force") == 1
        sim.send("sleep 1", "b")  # past the refractory interval after the start
        sim.wait_for("recording_stopped")
        assert console("delete", rid, "--reason", "test", "--force") == 1  # copy window
        assert console("retention", "set", "30") == 0
        sim.send("quit")
        assert sim.finish() == 0
    finally:
        sim.kill()
    assert state.recording_dir(rid).is_dir()
    lines = state.custody_path.read_text().splitlines()
    kinds = [json.loads(x)["entry"]["type"] for x in lines]
    assert kinds.count("console_auth") == 4 and "retention_changed" in kinds
    assert "recording_deleted" not in kinds and "clock_set" not in kinds
