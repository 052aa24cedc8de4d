"""Failures a new user met that were silent: each now a fault, an error event or an exit code.

The daemon runs through its simulator (real loop, store and panel on mock pins, a WAV file as
the microphone); read-only storage is a real read-only tmpfs, a slow stick a slowed write.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

from akkoord.cli import main
from akkoord.store.custody import CustodyLog
from akkoord.store.exports import read_exports
from akkoord.store.reconcile import reconcile_exports
from simkit import DEMO_WAV, provision, run_script, write_config

CONFIG = "[audio]\nsample_rate = 16000\n[export]\nwindow_seconds = 600\n"


def _of(events, name):
    return [e for e in events if e["event"] == name]


def _args(cfg, wav=DEMO_WAV):
    return ("--config", str(cfg), "--audio-file", str(wav))


def _assert_not_announced(events):
    assert not _of(events, "recording_started")
    says = [e["prompt"] for e in _of(events, "say")]
    assert "recording_started" not in says and "fault" in says
    assert "recording_start" not in [e["name"] for e in _of(events, "chime")]
    assert not _of(events, "recording_stopped")


# -- 1. a recording that cannot start ------------------------------------------------------


@pytest.mark.root
def test_read_only_state_is_a_storage_fault_never_announced(tmp_path, tmpfs):
    disk = tmpfs(tmp_path / "disk", "size=16m")
    state, _ = provision(disk)
    cfg = write_config(tmp_path / "c.toml",
                       CONFIG + "[store]\nmin_free_minutes = 1\nstop_free_minutes = 0.5\n")
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    rc, events, err = run_script(state, "a\nb\nsleep 1\nquit\n", *_args(cfg))
    assert rc == 4, err  # storage failure: the run does not pass
    _assert_not_announced(events)
    (error,) = _of(events, "error")
    assert "could not start" in error["message"] and "Read-only" in error["message"]
    assert [f["fault"] for f in _of(events, "fault")] == ["storage_error"]
    states = [e["state"] for e in _of(events, "state")]
    assert states[-1] == "ready"
    assert list((disk / "state" / "recordings").iterdir()) == []


def test_a_wav_that_says_zero_hertz_is_a_microphone_fault(tmp_path):
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "c.toml", CONFIG)
    data = bytearray(DEMO_WAV.read_bytes())
    fmt = data.index(b"fmt ")
    data[fmt + 12:fmt + 20] = struct.pack("<II", 0, 0)  # sample rate, byte rate
    wav = tmp_path / "zero.wav"
    wav.write_bytes(bytes(data))
    rc, events, _ = run_script(state, "a\nb\nsleep 1\nquit\n", *_args(cfg, wav))
    assert rc == 4
    _assert_not_announced(events)
    assert _of(events, "error")
    assert "no_microphone" in [f["fault"] for f in _of(events, "fault")]


# -- 2. faults present at start-up ----------------------------------------------------------


def test_missing_organisation_key_at_start_is_named_and_chimed(tmp_path):
    state, _ = provision(tmp_path)
    for p in state.recipients_dir.iterdir():
        p.unlink()
    cfg = write_config(tmp_path / "c.toml", CONFIG)
    rc, events, err = run_script(state, "sleep 0.3\nquit\n", *_args(cfg))
    assert rc == 0, err
    assert "AttributeError" not in err and "Traceback" not in err
    (fault,) = [f for f in _of(events, "fault") if f["fault"] == "no_keys"]
    assert "organisation key" in fault["detail"] and "add-recipient" in fault["detail"]
    assert "fault" in [e["name"] for e in _of(events, "chime")]  # the boot fault sound


def test_missing_device_key_is_named(tmp_path):
    state, _ = provision(tmp_path)
    (state.keys_dir / "device.key").unlink()
    cfg = write_config(tmp_path / "c.toml", CONFIG)
    rc, _, err = run_script(state, "quit\n", *_args(cfg))
    assert rc == 2 and "no device identity" in err and "keys init" in err


# -- simulator script semantics ---------------------------------------------------------------


def test_a_command_that_cannot_be_carried_out_fails_the_run(tmp_path):
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "c.toml", CONFIG)
    rc, events, _ = run_script(state, "usb-remove\na\nb\nsleep 1\nquit\n", *_args(cfg))
    assert rc == 2
    (error,) = _of(events, "error")
    assert "no stick" in error["message"]
    assert not _of(events, "recording_started")  # the run ended at the failed line


def test_usb_returns_once_the_stick_is_taken_so_presses_after_it_copy(tmp_path):
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "c.toml", CONFIG)
    stick = tmp_path / "not" / "yet" / "there"
    script = f"a\nb\nsleep 1.5\nb\nusb {stick}\na\nb\nquit\n"
    rc, events, err = run_script(state, script, *_args(cfg))
    assert rc == 0, err
    (made,) = _of(events, "copy_made")
    assert Path(made["path"]).parent == stick
    assert main(["verify", made["path"], "--state", str(state.root)]) == 0
    progress = [e["percent"] for e in _of(events, "copy_progress")]
    assert progress and progress == sorted(progress) and progress[-1] == 100


# -- 3/4. copies that fail -------------------------------------------------------------------


def _daemon(tmp_path):
    """An in-process daemon on mock pins with a WAV microphone, and its simulator."""
    import dataclasses

    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from akkoord.audio import WavBackend
    from akkoord.clock import SystemClock
    from akkoord.config import parse_config
    from akkoord.daemon import Daemon, Reporter
    from akkoord.simulator import Simulator

    state, _ = provision(tmp_path)
    config = parse_config({"audio": {"sample_rate": 16000}}, "test")
    config = dataclasses.replace(
        config, panel=dataclasses.replace(config.panel, pin_factory="mock"))
    events: list[dict] = []
    wav = WavBackend(DEMO_WAV, config.audio)
    daemon = Daemon(config, state, backend=wav, clock=SystemClock(), reporter=Reporter(
        events.append), pin_factory=MockFactory(pin_class=MockPWMPin), simulated=True)
    sim = Simulator(daemon, wav_backend=wav)
    return state, daemon, sim, events


def test_a_stick_pulled_mid_copy_fails_the_copy_and_nothing_is_left(tmp_path, monkeypatch):
    from akkoord.export import package

    state, daemon, sim, events = _daemon(tmp_path)
    stick = tmp_path / "stick"
    writing = threading.Event()
    real_write = package._write

    def slow_write(fd, data):  # a USB 2 stick on a bad day
        writing.set()
        time.sleep(0.05)
        return real_write(fd, data)

    monkeypatch.setattr(package, "_write", slow_write)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        for line in ("a", "b", "sleep 3", "b", f"usb {stick}", "a", "b"):
            sim.execute(line)
        assert writing.wait(10)
        sim.execute("usb-remove")
        deadline = time.monotonic() + 10
        while daemon.copying or daemon.machine_state == "copying":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)  # the writing thread finds out at its next second of audio
    finally:
        daemon.stopping.set()
        runner.join(10)
    names = [e["event"] for e in events]
    assert "copy_made" not in names
    (failed,) = _of(events, "copy_failed")
    assert "removed" in failed["error"]
    assert names.index("usb_removed") < names.index("copy_failed")
    assert "copy_made" not in [e.get("prompt") for e in _of(events, "say")]
    assert "copy_failed" in [e.get("prompt") for e in _of(events, "say")]
    assert os.listdir(stick) == []  # the abandoned copy was removed
    types = [e["type"] for e in CustodyLog(state.custody_path, state.identity(),
                                           daemon.clock).entries()]
    assert types[-2:] == ["export", "export_failed"]


@pytest.mark.root
def test_a_full_stick_leaves_nothing_behind(tmp_path, tmpfs):
    from akkoord.errors import StorageError
    from akkoord.export.service import export_copy
    from storekit import make_kit, record

    kit = make_kit(tmp_path / "k")
    w, _ = record(kit, segments=120)  # 50 ms segments: a 192 kB WAV
    stick = tmpfs(tmp_path / "small", "size=256k")  # the WAV fits, verify.html does not
    with pytest.raises(StorageError):
        export_copy(w.path, w.keys, stick, identity=kit.identity, clock=kit.clock,
                    custody=kit.custody)
    assert os.listdir(stick) == []


def test_a_partial_folder_never_verifies_as_a_finished_copy(tmp_path, capsys):
    from akkoord.export.copycheck import verify_copy
    from akkoord.export.service import export_copy
    from storekit import make_kit, record

    kit = make_kit(tmp_path / "k")
    w, _ = record(kit)
    stick = tmp_path / "stick"
    stick.mkdir()
    done = export_copy(w.path, w.keys, stick, identity=kit.identity, clock=kit.clock,
                       custody=kit.custody)
    # What a crash between the read-back and the rename leaves: every file whole.
    partial = stick / f".{done.name}.1a2b3c4d.partial"
    done.folder.rename(partial)
    rep = verify_copy(partial, kit.identity.public)
    assert not rep.ok and rep.status == "unfinished"
    assert main(["verify", str(partial), "--device-key",
                 str(kit.state.keys_dir / "device.pub")]) == 1
    assert "unfinished" in capsys.readouterr().out
    assert main(["verify", str(partial / "opname.wav"), "--device-key",
                 str(kit.state.keys_dir / "device.pub")]) == 1


def test_an_export_cut_short_by_a_crash_is_reconciled_once_at_the_next_start(tmp_path):
    from akkoord.export.service import export_copy
    from storekit import make_kit, record

    kit = make_kit(tmp_path / "k")
    w, _ = record(kit)
    stick = tmp_path / "stick"
    stick.mkdir()
    export_copy(w.path, w.keys, stick, identity=kit.identity, clock=kit.clock,
                custody=kit.custody)  # a finished copy: needs no reconciling
    kit.custody.append("export", w.id, copy_number=2, stick_id_sha256=None)  # then: power cut
    first = reconcile_exports(kit.state, kit.custody)
    assert [(x["copy_number"], x["outcome"]) for x in first] == [(2, "not_completed")]
    assert reconcile_exports(kit.state, kit.custody) == []
    last = list(kit.custody.entries())[-1]
    assert last["type"] == "export_reconciled" and last["recording_id"] == w.id
    assert last["detail"]["export_seq"] == list(kit.custody.entries())[-2]["seq"]
    assert [r.meta["copy_number"] for r in read_exports(w.path)] == [1]
    assert main(["custody", "--state", str(kit.state.root)]) == 0  # still intact


def test_the_daemon_reconciles_at_start(tmp_path):
    state, _ = provision(tmp_path)
    identity = state.identity()
    from akkoord.clock import SystemClock

    CustodyLog(state.custody_path, identity, SystemClock()).append(
        "export", "ab" * 16, copy_number=1, stick_id_sha256=None)
    cfg = write_config(tmp_path / "c.toml", CONFIG)
    rc, events, err = run_script(state, "quit\n", *_args(cfg))
    assert rc == 0, err
    (rec,) = _of(events, "export_reconciled")
    assert rec["outcome"] == "unknown" and rec["recording_id"] == "ab" * 16


# -- 5. configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("floor", ['"2026-13-45"', '"yesterday"', "20260101", '"2026-1-1x"'])
def test_clock_floor_is_validated_like_every_other_key(tmp_path, floor, capsys):
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "c.toml", f"[store]\nclock_floor = {floor}\n")
    rc = main(["run", "--simulate", "--config", str(cfg), "--state", str(state.root)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "[store] clock_floor" in err and "YYYY-MM-DD" in err and str(cfg) in err


def test_a_toml_date_is_a_valid_clock_floor():
    import datetime

    from akkoord.config import parse_config

    cfg = parse_config({"store": {"clock_floor": datetime.date(2026, 2, 1)}}, "t")
    assert cfg.store.clock_floor == "2026-02-01"


def test_a_prepared_recording_that_never_began_is_closed_not_left_dangling(tmp_path):
    from akkoord.store.verify import verify_recording

    state, daemon, _, _ = _daemon(tmp_path)
    try:
        first = daemon.recorder.prepare(state.recipients(), [])
        second = daemon.recorder.prepare(state.recipients(), [])
        assert first != second and daemon.recorder.prepared
        rep = verify_recording(state.recording_dir(first))
        assert rep.ok and rep.status == "complete"
        assert [e["event"] for e in rep.timeline][-1] == "stop"
    finally:
        daemon.shutdown()
