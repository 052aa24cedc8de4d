"""The console end to end over real pty pairs (socat) and loop://: the daemon-side server on
its own thread, `akkoord console` on the other end of the cable."""

from __future__ import annotations

import json
import os
import time

import pytest
import serial
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from akkoord.cli import main
from akkoord.console.client import ConsoleClient
from akkoord.console.protocol import LineReader, encode_frame
from akkoord.console.serial_port import ConsoleServer
from consolekit import Served, make_device, make_recording, pty_pair  # noqa: F401

SECRET_MARKERS = ("private_key", "content_key", "seal_key", "mac_key", "hpke", "wrapped")


@pytest.fixture
def served(tmp_path, pty_pair):  # noqa: F811
    dev = make_device(tmp_path)
    s = Served(dev, pty_pair.device)
    yield dev, pty_pair.host, s
    s.close()


def console(capsys, host, *words):
    rc = main(["console", "--port", host, "--json", "--timeout", "15", *words])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if out.out.strip() else None), out.err


def test_open_commands(served, capsys):
    dev, host, _ = served
    rid = make_recording(dev)
    rc, hello, _ = console(capsys, host, "hello")
    assert rc == 0 and hello["protocol"] == 1
    assert hello["device_fingerprint"] == dev.state.identity().fingerprint
    rc, status, _ = console(capsys, host, "status")
    assert rc == 0
    assert status["state"] == "ready" and status["faults"] == []
    assert status["console"] == {"administration": "open"}
    assert status["clock"]["quality"] == "ntp" and status["clock"]["unset"] is False
    assert status["free_minutes"] > 0
    assert status["keys"]["device"] == hello["device_fingerprint"]
    assert len(status["keys"]["recipients"]) == 1
    assert status["keys"]["certificate"]["anchored"] is True  # the kit provisions one
    assert status["last_recording"]["recording_id"] == rid
    rc, listing, _ = console(capsys, host, "list")
    (row,) = listing["recordings"]
    assert row["recording_id"] == rid and row["status"] == "complete"
    assert row["copies"] == 0 and row["receipted"] is False
    assert row["retention_left_days"] is None
    rc, verdict, _ = console(capsys, host, "verify", rid)
    assert rc == 0 and verdict["report"]["ok"] and verdict["report"]["recording_id"] == rid
    assert verdict["exit_code"] == 0 and verdict["report"]["anchored"] is True
    rc, log, _ = console(capsys, host, "log", "--limit", "2")
    assert [e["type"] for e in log["entries"]][-1] == "recording_closed"
    rc, head, _ = console(capsys, host, "head")
    assert head["head"]["seq"] == dev.custody.head().seq
    device_key = json.loads((dev.state.keys_dir / "device.key").read_text())["private_key"]
    org_key = json.loads(dev.org_key_file.read_text())["private_key"]
    for doc in (status, listing, verdict, log, head):
        text = json.dumps(doc)
        assert not any(m in text for m in SECRET_MARKERS), text[:300]
        assert device_key not in text and org_key not in text


def test_human_output_and_refusals(served, capsys):
    _, host, _ = served
    assert main(["console", "--port", host, "help"]) == 0
    assert "time set" in capsys.readouterr().out
    rid = make_recording(served[0])
    assert main(["console", "--port", host, "verify", rid]) == 0
    assert "OK: genuine and unchanged, anchored to the organisation" in capsys.readouterr().out
    assert main(["console", "--port", host, "verify", "0" * 32]) == 1
    assert "not_found" in capsys.readouterr().err
    assert main(["console", "--port", host, "launch"]) == 2
    assert main(["console", "--port", host, "delete", "0" * 32, "--reason", "x"]) == 2
    assert "needs an administrator" in capsys.readouterr().err


def test_admin_command_without_proof_is_refused_by_the_device(served):
    _, host, _ = served
    with serial.serial_for_url(host, timeout=0.2) as port:
        reply = ConsoleClient(port).call(["retention", "set", "30"])
    assert reply["ok"] is False and reply["error"]["code"] == "unauthorised"


def test_no_daemon_on_the_port(tmp_path, pty_pair, capsys):  # noqa: F811
    rc = main(["console", "--port", pty_pair.host, "--timeout", "0.5", "status"])
    assert rc == 4 and "no answer" in capsys.readouterr().err
    assert main(["console", "--port", str(tmp_path / "nothing"), "status"]) == 4


def _raw(port, data: bytes, wait: float = 1.0) -> list:
    port.write(data)
    r, out, deadline = LineReader(1 << 22), [], time.monotonic() + wait
    while time.monotonic() < deadline:
        out += [i for i in r.feed(port.read(4096), time.monotonic()) if hasattr(i, "payload")]
    return [i.payload for i in out]


def test_garbage_overlong_partial_and_disconnect_never_stop_the_console(served):
    _dev, host, s = served
    with serial.serial_for_url(host, timeout=0.05) as port:
        port.write(b"status\r\n")  # a human typing gets a plain-text hint, not a frame
        time.sleep(0.5)
        assert b"use `akkoord console" in port.read(4096)
        _raw(port, os.urandom(50_000), 0.3)  # random bytes: silence (or a rate-limited hint)
        replies = _raw(port, b"\n" + b"@ak1 " + b"x" * 20_000 + b"\n")
        assert [r["error"]["code"] for r in replies] == ["too_long"]
        port.write(encode_frame({"v": 1, "id": 5, "cmd": ["status"]})[:30])  # cut mid-line
    time.sleep(2.5)  # the idle timeout (2 s) drops the partial line
    with serial.serial_for_url(host, timeout=0.05) as port:
        (reply,) = _raw(port, encode_frame({"v": 1, "id": 6, "cmd": ["head"]}))
        assert reply["id"] == 6 and reply["ok"]
        (reply,) = _raw(port, encode_frame({"v": 2, "id": 7, "cmd": ["head"]}))
        assert reply["error"]["code"] == "version"
    assert s.server._thread.is_alive()


def test_loop_url_echo_does_not_make_the_device_talk_to_itself(tmp_path):
    dev = make_device(tmp_path)
    port = serial.serial_for_url("loop://", timeout=0.05)
    server = ConsoleServer(dev.service, "loop://", stopping=None, port=port)  # type: ignore[arg-type]
    port.write(encode_frame({"v": 1, "id": 1, "cmd": ["hello"]}))
    server._pump_once()  # reads the request, writes the answer onto the loop
    assert server.requests == 1
    server._pump_once()  # reads its own answer back: ignored, nothing written
    server._pump_once()
    assert server.requests == 1 and port.in_waiting == 0


def test_the_console_comes_back_after_the_cable_is_pulled(tmp_path):
    from consolekit import PtyPair

    dev = make_device(tmp_path)
    pair = PtyPair(tmp_path)
    s = Served(dev, pair.device)
    try:
        with serial.serial_for_url(pair.host, timeout=0.05) as port:
            port.write(encode_frame({"v": 1, "id": 1, "cmd": ["status"]})[:40])
        pair.close()  # the cable is gone mid-command
        deadline = time.monotonic() + 10
        while not any(e == "console_lost" for e, _ in s.events):
            assert time.monotonic() < deadline, s.events
            time.sleep(0.05)
        pair = PtyPair(tmp_path)  # plugged in again, same device names
        deadline = time.monotonic() + 10
        while sum(e == "console_open" for e, _ in s.events) < 2:
            assert time.monotonic() < deadline, s.events
            time.sleep(0.05)
        with serial.serial_for_url(pair.host, timeout=0.05) as port:
            assert ConsoleClient(port).call(["hello"])["ok"]
    finally:
        s.close()
        pair.close()


def test_interactive_prompt(served):
    import subprocess
    import sys

    _, host, _ = served
    done = subprocess.run([sys.executable, "-m", "akkoord", "console", "--port", host],
                          input="hello\nlaunch rockets\n\nquit\n", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr  # the last command was bad usage
    assert "device_fingerprint:" in done.stdout and "protocol: 1" in done.stdout
    assert "unknown command 'launch'" in done.stderr


def test_console_configuration():
    from akkoord.config import parse_config
    from akkoord.errors import ConfigError

    cfg = parse_config({"console": {"port": "/dev/ttyGS0", "baudrate": 9600}}, "t.toml")
    assert cfg.console.port == "/dev/ttyGS0" and cfg.console.baudrate == 9600
    assert parse_config({}, "t").console.port == ""  # no console unless asked for
    for bad, word in (({"baudrate": 1234}, "baudrate"), ({"port": 5}, "port"),
                      ({"clock_command": []}, "clock_command"), ({"speed": 1}, "speed")):
        with pytest.raises(ConfigError, match=word):
            parse_config({"console": bad}, "t.toml")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40)
    | st.sampled_from(["status", "verify", "delete", "time", "set", "--reason", "--force",
                       "retention", "log", "--limit", "challenge", "0" * 32]),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)


@pytest.fixture(scope="module")
def fuzz_device(tmp_path_factory):
    return make_device(tmp_path_factory.mktemp("fuzz"))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.fixed_dictionaries({"v": st.sampled_from([1, 1, 1, 2, "1", None]),
                                      "cmd": _json},
                                     optional={"id": _json, "auth": _json}))
def test_fuzz_any_request_gets_an_answer_never_an_exception(fuzz_device, payload):
    reply = fuzz_device.service.handle(payload)
    assert reply["v"] == 1 and isinstance(reply["ok"], bool)
    if not reply["ok"]:
        assert reply["error"]["code"] != "internal", reply
    encode_frame(reply)  # always serialisable


def test_head_check_against_a_copy_s_head(tmp_path, served, capsys):
    dev, host, _ = served
    held = dev.custody.append("export", "a" * 32).to_json()
    make_recording(dev)  # the log grows after the copy was made: an extension
    (tmp_path / "head.json").write_text(json.dumps(held))
    rc, out, _ = console(capsys, host, "head", str(tmp_path / "head.json"))
    assert rc == 0 and out["check"]["contains"] is True
    assert out["head"]["seq"] > held["seq"]
    forged = {**held, "hash": "00" * 32}
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    rc, out, _ = console(capsys, host, "head", str(tmp_path / "forged.json"))
    assert out["check"]["contains"] is False and "rewritten" in out["check"]["message"]
    (tmp_path / "future.json").write_text(json.dumps({**held, "seq": 10_000}))
    rc, out, _ = console(capsys, host, "head", str(tmp_path / "future.json"))
    assert out["check"]["contains"] is False and "cut" in out["check"]["message"]


def test_status_for_a_person(served, capsys):
    _, host, _ = served
    assert main(["console", "--port", host, "status"]) == 0
    out = capsys.readouterr().out
    lines = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert lines["state"].strip() == "ready" and lines["faults"].strip() == "none"
    assert "minutes of audio" in lines["free"] and lines["admin"].strip() == "open"
