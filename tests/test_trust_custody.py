"""Custody that can be checked (issue 8 §4): the state folder against its log, and a head
held elsewhere against the log. Each attack is by someone with write access to the state
folder; the last ones by someone who also has the device key (what a head held elsewhere
still catches)."""

from __future__ import annotations

import json
import shutil

import pytest

from akkoord.cli import main
from akkoord.store.custody import CustodyLog
from akkoord.store.delete import delete_recording
from akkoord.store.exports import read_exports
from akkoord.store.layout import EXPORTS_FILE, WRAPPED_KEYS_FILE
from akkoord.store.statecheck import check_head, check_state
from akkoord.store.verify import verify_recording
from storekit import make_kit, record


def _export(kit, w, tmp_path, n=1):
    from akkoord.export.service import export_copy

    heads = []
    for i in range(n):
        target = tmp_path / f"stick{len(list(tmp_path.glob('stick*')))}"
        target.mkdir()
        res = export_copy(w.path, w.keys, target, identity=kit.identity, clock=kit.clock,
                          custody=kit.custody)
        heads.append(res.folder / "custody-head.json")
        del i
    return heads


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _codes(rep):
    return {f.code for f in rep.findings}


def _log_lines(kit):
    return kit.state.custody_path.read_bytes().splitlines(keepends=True)


def test_an_honest_state_folder_is_intact(kit, tmp_path):
    w1, _ = record(kit)
    _export(kit, w1, tmp_path, 2)
    w2, _ = record(kit, seed=2)
    delete_recording(kit.state, w2.id, kit.custody, "retention")
    rep = check_state(kit.state, kit.identity.public)
    assert rep.ok, rep.findings
    assert rep.recordings == 1 and rep.entries == len(_log_lines(kit))
    exports = read_exports(w1.path)
    assert [r.meta["custody_seq"] for r in exports] == [
        e["seq"] for e in kit.custody.entries() if e["type"] == "export"
    ]


def test_a_deleted_recording_folder_the_log_does_not_record_is_found(kit):
    w, _ = record(kit)
    shutil.rmtree(w.path)
    rep = check_state(kit.state, kit.identity.public)
    assert _codes(rep) == {"folder_deleted"} and w.id in rep.findings[0].message


def test_a_planted_recording_folder_is_found(kit, tmp_path):
    other = make_kit(tmp_path / "other")
    w, _ = record(other)
    shutil.copytree(w.path, kit.state.recordings_dir / w.id)
    rep = check_state(kit.state, kit.identity.public)
    assert "unknown_recording" in _codes(rep)


@pytest.mark.parametrize("how", ["deleted", "shortened"])
def test_a_deleted_or_shortened_export_record_is_found(kit, tmp_path, how):
    w, _ = record(kit)
    _export(kit, w, tmp_path, 2)
    path = w.path / EXPORTS_FILE
    if how == "deleted":
        path.unlink()
    else:
        first = read_exports(w.path)[1].offset
        path.write_bytes(path.read_bytes()[:first])
    rep = check_state(kit.state, kit.identity.public)
    assert _codes(rep) == {f"exports_{how}"}, rep.findings


def test_a_replaced_or_missing_keys_file_is_found_without_the_organisation_key(kit):
    w, _ = record(kit)
    other, _ = record(kit, seed=3)
    (w.path / WRAPPED_KEYS_FILE).write_bytes((other.path / WRAPPED_KEYS_FILE).read_bytes())
    (other.path / WRAPPED_KEYS_FILE).unlink()
    rep = check_state(kit.state, kit.identity.public)
    assert [f.code for f in rep.findings] == ["keys_changed", "keys_changed"]
    assert all("can no longer be decrypted" in f.message for f in rep.findings)
    for d in (w.path, other.path):  # the recording verifier says the same, keyless
        v = verify_recording(d)
        assert [f.code for f in v.findings] == ["keys_changed"]
        assert "content keys changed or missing: can no longer be decrypted" in (
            v.findings[0].message
        )


def test_keys_gone_with_a_logged_deletion_is_not_a_finding(kit):
    w, _ = record(kit)
    (w.path / WRAPPED_KEYS_FILE).unlink()  # delete crashed after shredding, before rmtree
    kit.custody.append("recording_deleted", w.id, reason="retention")
    rep = check_state(kit.state, kit.identity.public)
    assert rep.ok and any("shredded" in n for n in rep.notes)
    assert verify_recording(w.path, keys_deleted=True).ok


def test_a_dropped_log_tail_is_found_by_a_surviving_recording(kit):
    w1, _ = record(kit)
    cut = len(_log_lines(kit))
    w2, _ = record(kit, seed=2)
    w3, _ = record(kit, seed=3)
    # Drop everything from w2's start on; w3 survives and its header names the log's head
    # before it started, an entry that is now gone.
    kit.state.custody_path.write_bytes(b"".join(_log_lines(kit)[:cut]))
    rep = check_state(kit.state, kit.identity.public)
    assert "log_tail_dropped" in _codes(rep)
    assert {"unknown_recording"} <= _codes(rep)
    del w1, w2, w3


def test_a_dropped_close_entry_is_found(kit):
    record(kit)
    kit.state.custody_path.write_bytes(b"".join(_log_lines(kit)[:-1]))
    rep = check_state(kit.state, kit.identity.public)
    assert _codes(rep) == {"close_not_logged"}


def test_a_dropped_tail_caught_by_an_export_record(kit, tmp_path):
    w, _ = record(kit)
    cut = len(_log_lines(kit))
    _export(kit, w, tmp_path)
    kit.state.custody_path.write_bytes(b"".join(_log_lines(kit)[:cut]))
    rep = check_state(kit.state, kit.identity.public)
    assert "log_tail_dropped" in _codes(rep)


def test_a_tail_dropped_with_all_its_witnesses_needs_a_head_from_elsewhere(kit, tmp_path):
    """The honest limit: drop the log's tail AND every folder it mentions, and the state
    folder is self-consistent. A copy's custody head, held by a party, still shows it."""
    w1, _ = record(kit)
    cut = len(_log_lines(kit))
    w2, _ = record(kit, seed=2)
    (head,) = _export(kit, w2, tmp_path)
    kit.state.custody_path.write_bytes(b"".join(_log_lines(kit)[:cut]))
    shutil.rmtree(w2.path)
    assert check_state(kit.state, kit.identity.public).ok  # undetectable from inside
    result = check_head(kit.state, kit.identity.public, head)
    assert result.status == "dropped" and not result.ok
    del w1


def test_a_spliced_custody_entry_is_found(kit, tmp_path):
    record(kit)
    other = make_kit(tmp_path / "other")
    record(other)
    lines = _log_lines(kit)
    lines[1] = _log_lines(other)[1]  # the other device's close entry, same position
    kit.state.custody_path.write_bytes(b"".join(lines))
    rep = check_state(kit.state, kit.identity.public)
    assert "custody_log" in _codes(rep)


def test_a_log_rewritten_with_the_device_key_forks_from_a_copys_head(kit, tmp_path):
    """An insider who also holds the device key re-signs the log without an export."""
    w, _ = record(kit)
    cut = len(_log_lines(kit))
    (head,) = _export(kit, w, tmp_path)
    kit.state.custody_path.write_bytes(b"".join(_log_lines(kit)[:cut]))
    for _ in range(3):  # the same number of entries, a different history
        CustodyLog(kit.state.custody_path, kit.identity, kit.clock).append("note", w.id)
    result = check_head(kit.state, kit.identity.public, head)
    assert result.status == "forked" and f"entry {json.loads(head.read_text())['seq']}" in (
        result.message
    )


def test_check_head_cli_contract(kit, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AKKOORD_STATE", str(kit.state.root))
    w, _ = record(kit)
    (head,) = _export(kit, w, tmp_path)
    assert main(["custody", "--check-head", str(head)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["custody", "--check-head", str(head), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "contained" and doc["ok"] is True
    kit.state.custody_path.write_bytes(b"".join(_log_lines(kit)[:2]))  # before the export
    assert main(["custody", "--check-head", str(head)]) == 1
    assert "dropped" in capsys.readouterr().out
    bad = tmp_path / "bad-head.json"
    bad.write_text('{"format": "akkoord-custody-head/1", "seq": 1e999}')
    assert main(["custody", "--check-head", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_custody_cli_reports_state_findings_with_json_keys(kit, capsys, monkeypatch):
    monkeypatch.setenv("AKKOORD_STATE", str(kit.state.root))
    w, _ = record(kit)
    assert main(["custody", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["entries"] > 0 and doc["findings"] == []
    shutil.rmtree(w.path)
    assert main(["custody"]) == 1
    assert "folder_deleted" in capsys.readouterr().out


def test_quarantined_folders_are_named_in_the_state_check(kit, tmp_path):
    from akkoord.store.recovery import recover_all

    other = make_kit(tmp_path / "other")
    w, _ = record(other, close=False)
    w._close_fd()
    shutil.copytree(w.path, kit.state.recordings_dir / w.id)
    (res,) = recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    assert res.action == "quarantined"
    rep = check_state(kit.state, kit.identity.public)
    assert rep.ok and any(w.id in n and "refused" in n for n in rep.notes)
