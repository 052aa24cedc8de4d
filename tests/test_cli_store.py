"""The CLI contracts: command names, options, exit codes and JSON keys other parts rely on."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import wave

import pytest

from akkoord.cli import main
from akkoord.store.layout import CONTAINER_FILE
from storekit import SEG, frame_bytes, make_kit, record, rewrite


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AKKOORD_STATE", str(tmp_path / "state"))
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_lifecycle(env, capsys):
    assert run(capsys, "keys", "init")[0] == 0
    code, _, err = run(capsys, "keys", "init")
    assert code == 2 and "refusing" in err
    assert run(capsys, "keys", "org-new", "--out", str(env / "org"))[0] == 0
    assert stat.S_IMODE((env / "org" / "org.key").stat().st_mode) == 0o600
    code, _, err = run(capsys, "keys", "org-new", "--out", str(env / "org"))
    assert code == 2 and "refusing to overwrite" in err
    code, _, err = run(capsys, "keys", "add-recipient", str(env / "org" / "org.key"))
    assert code == 2 and "PRIVATE" in err
    assert run(capsys, "keys", "add-recipient", str(env / "org" / "org.pub"))[0] == 0
    code, out, _ = run(capsys, "keys", "show", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["device"]["fingerprint"] and len(doc["recipients"]) == 1
    assert doc["recipients"][0]["kem"] == "mlkem768-x25519"


def test_state_option_works_before_and_after_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AKKOORD_STATE", raising=False)
    assert run(capsys, "--state", str(tmp_path / "a"), "keys", "init")[0] == 0
    assert run(capsys, "keys", "init", "--state", str(tmp_path / "b"))[0] == 0
    assert (tmp_path / "a" / "keys" / "device.key").exists()
    assert (tmp_path / "b" / "keys" / "device.key").exists()


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    kit = make_kit(tmp_path)
    monkeypatch.setenv("AKKOORD_STATE", str(kit.state.root))
    keyfile = tmp_path / "org.key"
    keyfile.write_bytes(kit.org.dumps())
    w, audio = record(kit, gap_after=1, segments=3)
    return kit, w, audio, keyfile


def test_verify_exit_codes_and_json(recorded, capsys):
    _, w, _, keyfile = recorded
    code, out, _ = run(capsys, "verify", str(w.path), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["status"] == "complete"
    for key in ("recording_id", "findings", "timeline", "device", "checked", "duration_seconds"):
        assert key in doc
    assert doc["device"]["trusted"] is True  # the state's own device key anchors it
    code, out, _ = run(capsys, "verify", str(w.path), "--key", str(keyfile), "--json")
    assert code == 0 and json.loads(out)["checked"]["audio"] is True
    parts = frame_bytes(w.path / CONTAINER_FILE)
    del parts[5]
    rewrite(w.path, parts)
    code, out, _ = run(capsys, "verify", str(w.path), "--json")
    doc = json.loads(out)
    assert code == 1 and not doc["ok"]
    assert any(
        f["code"] == "missing_frame" and f["frame"] == 5 and f["second"] is not None
        for f in doc["findings"]
    )
    code, out, _ = run(capsys, "verify", str(w.path))
    assert code == 1 and "FINDING missing_frame" in out and "second" in out


def test_verify_unreadable_is_exit_2(tmp_path, capsys):
    assert run(capsys, "verify", str(tmp_path / "nope"))[0] == 2
    assert run(capsys, "verify", str(tmp_path))[0] == 2
    code, _, err = run(capsys, "verify")
    assert code == 2 and "usage" in err


def test_inspect_lists_every_frame(recorded, capsys):
    _, w, _, _ = recorded
    code, out, _ = run(capsys, "inspect", str(w.path), "--json")
    doc = json.loads(out)
    assert code == 0
    assert [f["index"] for f in doc["frames"]] == list(range(w.frame_count))
    first = doc["frames"][0]
    assert first["kind"] == "HEADER" and first["file"] == CONTAINER_FILE and first["offset"] == 0
    for a, b in zip(doc["frames"], doc["frames"][1:], strict=False):
        assert b["offset"] == a["offset"] + a["length"]
    assert doc["manifest"]["status"] == "complete" and doc["manifest"]["signed"]


def test_decrypt_writes_the_audio(recorded, capsys, tmp_path):
    _, w, audio, keyfile = recorded
    out = tmp_path / "out.wav"
    code, _, _ = run(capsys, "decrypt", str(w.path), "--key", str(keyfile), "--out", str(out))
    assert code == 0
    with wave.open(str(out)) as wf:
        assert wf.readframes(wf.getnframes()) == audio[0] + audio[1] + bytes(SEG) + audio[2]


def test_decrypt_refuses_tampered_audio_unless_forced(recorded, capsys, tmp_path):
    _, w, audio, keyfile = recorded
    parts = frame_bytes(w.path / CONTAINER_FILE)
    del parts[5]  # the first audio segment
    rewrite(w.path, parts)
    out = tmp_path / "out.wav"
    code, text, err = run(capsys, "decrypt", str(w.path), "--key", str(keyfile), "--out", str(out))
    assert code == 1 and not out.exists() and "--force" in err
    code, text, _ = run(
        capsys, "decrypt", str(w.path), "--key", str(keyfile), "--out", str(out), "--force"
    )
    assert code == 1 and out.exists() and "FINDING" in text
    with wave.open(str(out)) as wf:
        data = wf.readframes(wf.getnframes())
    assert data[: SEG * 2] == bytes(SEG * 2)  # the cut second is silent, the rest in place
    assert data[SEG * 2 : SEG * 4] == audio[1]


def test_delete_shreds_and_logs(recorded, capsys):
    kit, w, _, _ = recorded
    code, _, err = run(capsys, "delete", w.id)
    assert code == 2 and "--yes" in err and w.path.exists()
    assert run(capsys, "delete", w.id, "--yes")[0] == 0
    assert not w.path.exists()
    last = list(kit.custody.entries())[-1]
    assert last["type"] == "recording_deleted" and last["recording_id"] == w.id
    # That the wrapped keys are overwritten, not just unlinked: test_store_delete.py.
    assert run(capsys, "custody")[0] == 0


def test_list_shows_recordings(recorded, capsys):
    _, w, _, _ = recorded
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0 and json.loads(out)[0]["recording_id"] == w.id


def test_python_dash_m_works():
    r = subprocess.run(
        [sys.executable, "-m", "akkoord", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("akkoord ")
