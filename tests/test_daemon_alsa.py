"""The recorder through the real PyAudio -> PortAudio -> ALSA capture path, fed from a file
by ALSA's `file` plugin (a subprocess per ALSA configuration: ALSA reads it once)."""

from __future__ import annotations

import array
import os
import socket
import subprocess
import sys
import textwrap
import time
import wave

import pytest

from akkoord.audio.virtual import alsa_env, position_signal, write_asoundrc, write_raw
from akkoord.cli import main
from akkoord.store.verify import verify_recording
from simkit import provision, run_script, write_config

pytestmark = pytest.mark.alsa
RATE = 48000


@pytest.fixture
def mic(tmp_path):
    """A file-backed microphone named "filemic", delivering a position-coded signal."""
    signal = position_signal(RATE * 30)
    raw = write_raw(tmp_path / "mic.raw", signal)
    home = tmp_path / "home"
    write_asoundrc(home, mics={"filemic": raw}, default="filemic")
    cfg = write_config(tmp_path / "akkoord.toml", textwrap.dedent("""
        [audio]
        input_device = "filemic"
        sample_rate = 48000
        pace_realtime = true
    """))
    return signal, alsa_env(home), cfg


def test_both_presses_capture_stop_verify_and_decrypt_exactly(tmp_path, mic):
    signal, env, cfg = mic
    state, key = provision(tmp_path)
    rc, events, err = run_script(state, "a\nsleep 0.3\nb\nsleep 2.5\nb\nsleep 0.3\nquit\n",
                                 "--config", str(cfg), env=env)
    assert rc == 0, err
    assert "ALSA lib" not in err  # start-up noise is silenced
    stopped = next(e for e in events if e["event"] == "recording_stopped")
    assert stopped["reason"] == "party_b" and stopped["gaps"] == 0
    rec = state.recording_dir(stopped["recording_id"])
    assert main(["verify", str(rec), "--key", str(key), "--state", str(state.root)]) == 0
    out = tmp_path / "out.wav"
    assert main(["decrypt", str(rec), "--key", str(key), "--out", str(out)]) == 0
    with wave.open(str(out)) as wf:
        assert wf.getframerate() == RATE
        got = array.array("h", wf.readframes(wf.getnframes()))
    assert 2.0 * RATE <= len(got) <= 3.5 * RATE
    # Exactly the samples the microphone delivered, from its first sample on.
    assert got == signal[: len(got)]


_HANG_SCRIPT = """
import sys, threading, time
from pathlib import Path
from akkoord.audio import AudioBackend
from akkoord.clock import SystemClock
from akkoord.config import load_config
from akkoord.daemon import Daemon
from akkoord.notify import Notifier
from akkoord.panel import make_pin_factory
from akkoord.store.layout import StateDir
import dataclasses

config = load_config(Path(sys.argv[2]))
config = dataclasses.replace(config, panel=dataclasses.replace(config.panel, pin_factory="mock"))
calls = [0]
def hook():
    calls[0] += 1
    if calls[0] > 20:          # about one second in: the callback never returns again
        threading.Event().wait()
factory = make_pin_factory("mock")
daemon = Daemon(config, StateDir(Path(sys.argv[1])), backend=AudioBackend(config.audio),
                clock=SystemClock(), notifier=Notifier(), pin_factory=factory,
                simulated=True, callback_hook=hook)
def press():
    time.sleep(0.5)
    for pin in (config.panel.pins.button_a, config.panel.pins.button_b):
        factory.pin(pin).drive_low(); time.sleep(0.1); factory.pin(pin).drive_high()
    print("pressed", flush=True)
threading.Thread(target=press, daemon=True).start()
daemon.run()
"""


def test_hung_callback_stops_the_watchdog_and_recovery_closes_the_recording(tmp_path, mic):
    _, env, cfg = mic
    state, _ = provision(tmp_path)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    env = {**env, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-c", _HANG_SCRIPT, str(state.root), str(cfg)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pings: list[float] = []
    ready = False
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                if ready and pings and time.monotonic() - pings[-1] > 2.0:
                    break  # pings stopped for five intervals: systemd would abort us now
                continue
            ready = ready or "READY=1" in msg
            if "WATCHDOG=1" in msg:
                pings.append(time.monotonic())
        assert ready and len(pings) >= 2, (pings, proc.poll())
        assert proc.poll() is None  # still running, just no longer healthy
        assert time.monotonic() - pings[-1] > 2.0
    finally:
        proc.kill()  # what systemd's WatchdogSec does (SIGABRT, then SIGKILL)
        proc.wait()
        sock.close()
    (rid,) = state.recording_ids()
    # The next start recovers it as interrupted, disclosed and signed.
    rc, events, _ = run_script(state, "quit\n", "--config", str(cfg), env=env)
    assert rc == 0
    assert any(e["event"] == "recovered" and e["action"] == "interrupted" for e in events)
    rep = verify_recording(state.recording_dir(rid))
    assert rep.ok and rep.status == "interrupted"
    assert os.path.exists(state.recording_dir(rid) / "manifest.json")


def test_queue_overflow_becomes_disclosed_gaps_of_silence(tmp_path):
    """An unpaced virtual microphone outruns the writer: the bounded queue drops whole
    blocks, and every drop is a disclosed gap of exactly that many samples."""
    signal = position_signal(RATE * 120)
    raw = write_raw(tmp_path / "mic.raw", signal)
    home = tmp_path / "home"
    write_asoundrc(home, mics={"filemic": raw}, default="filemic")
    cfg = write_config(tmp_path / "akkoord.toml", textwrap.dedent("""
        [audio]
        input_device = "filemic"
        sample_rate = 48000
        pace_realtime = false
        queue_seconds = 0.1
    """))
    state, key = provision(tmp_path)
    rc, events, err = run_script(state, "a\nb\nsleep 0.3\nb\nsleep 0.2\nquit\n",
                                 "--config", str(cfg), env=alsa_env(home))
    assert rc == 0, err
    stopped = next(e for e in events if e["event"] == "recording_stopped")
    rec = state.recording_dir(stopped["recording_id"])
    rep = verify_recording(rec, _org(key))
    assert rep.ok, rep.findings
    import json

    manifest = json.loads((rec / "manifest.json").read_text())
    assert manifest["gaps"], "an unpaced source with a tiny queue must overflow"
    out = tmp_path / "out.wav"
    assert main(["decrypt", str(rec), "--key", str(key), "--out", str(out)]) == 0
    with wave.open(str(out)) as wf:
        got = array.array("h", wf.readframes(wf.getnframes()))
    assert len(got) == manifest["duration_samples"]
    gap_at = {s for _, start, n in manifest["gaps"] for s in range(start, start + n)}
    limit = min(len(got), len(signal))
    for _, start, n, _ in manifest["segments"]:
        end = min(start + n, limit)
        assert got[start:end] == signal[start:end]
    assert all(got[s] == 0 for s in gap_at if s < len(got))


def _org(key):
    from akkoord.store.keys import OrgPrivateKey

    return OrgPrivateKey.load(key)
