"""Copies the organisation makes from its archive are recorded in its own signed log and
carry its head; copy numbers never repeat (issue 8 §4)."""

from __future__ import annotations

import json

import pytest

from akkoord.cli import main
from akkoord.store.orglog import read_org_log, verify_org_head
from akkoord.trust import OrgSigningKey, write_org_signing_pair
from storekit import make_kit, record


@pytest.fixture
def org(tmp_path):
    kit = make_kit(tmp_path)
    w, _ = record(kit)
    keydir = tmp_path / "org"
    keydir.mkdir()
    (keydir / "org.key").write_bytes(kit.org.dumps())
    signing = OrgSigningKey.generate("Jeugdzorg Voorbeeld")
    priv, pub = write_org_signing_pair(signing, keydir)
    return kit, w, keydir, priv, pub


def _export(w, keydir, priv, to):
    to.mkdir(parents=True, exist_ok=True)  # `export --to` never creates the folder
    return main(["export", str(w.path), "--key", str(keydir / "org.key"), "--to", str(to),
                 "--org-signing-key", str(priv)])


def _heads(to):
    return sorted(to.glob("*/custody-head.json"))


def test_organisation_copies_are_logged_signed_and_numbered_on(org, tmp_path, capsys):
    kit, w, keydir, priv, pub = org
    from akkoord.export.service import export_copy

    stick = tmp_path / "stick"
    stick.mkdir()
    export_copy(w.path, w.keys, stick, identity=kit.identity, clock=kit.clock,
                custody=kit.custody)  # the device's copy 1, at the table
    to = tmp_path / "archive-copies"
    assert _export(w, keydir, priv, to) == 0
    assert _export(w, keydir, priv, to) == 0
    capsys.readouterr()
    copies = sorted(to.glob("*/copy.json"))
    numbers = sorted(json.loads(p.read_text())["copy_number"] for p in copies)
    assert numbers == [2, 3]  # after the device's copy 1, never again 1 or each other
    signing_pub = OrgSigningKey.load(priv).public
    view = read_org_log(keydir / "org-custody.log", signing_pub)
    assert not view.findings and [e["type"] for e in view.entries] == ["export", "export"]
    for head_file in _heads(to):
        head = json.loads(head_file.read_text())
        assert head["log"] == "organisation" and verify_org_head(head, signing_pub)
        assert head["organisation"] == "Jeugdzorg Voorbeeld"
        code = main(["custody", "--org-log", str(keydir / "org-custody.log"), "--trust", str(pub),
                     "--check-head", str(head_file)])
        assert code == 0, capsys.readouterr()
    # A copy verifier anchored to the organisation shows number, maker and time as signed.
    folder = _heads(to)[0].parent
    capsys.readouterr()
    assert main(["verify", str(folder), "--json", "--trust", str(pub)]) in (0, 3)
    doc = json.loads(capsys.readouterr().out)
    assert doc["claims_signed"] is True and doc["made_by"] == "organisation", doc["findings"]
    # An org head is not a device head: the device's log does not vouch for it.
    other = OrgSigningKey.generate("Someone else").public
    assert not verify_org_head(json.loads(_heads(to)[0].read_text()), other)


def test_a_dropped_tail_of_the_organisation_log_is_found_by_a_copys_head(org, tmp_path,
                                                                          capsys):
    _, w, keydir, priv, pub = org
    to = tmp_path / "copies"
    assert _export(w, keydir, priv, to) == 0
    log = keydir / "org-custody.log"
    first = log.read_bytes()
    assert _export(w, keydir, priv, to) == 0
    newest = max(_heads(to), key=lambda p: json.loads(p.read_text())["seq"])
    log.write_bytes(first)  # the organisation "forgets" its second copy
    capsys.readouterr()
    code = main(["custody", "--org-log", str(log), "--trust", str(pub),
                 "--check-head", str(newest)])
    assert code == 1 and "dropped" in capsys.readouterr().out
    # and the number is not handed out again: the head still shows copy 2 was made
    assert json.loads((newest.parent / "copy.json").read_text())["copy_number"] == 2


def test_export_needs_the_organisation_signing_key(org, tmp_path, capsys):
    _, w, keydir, _, _ = org
    alone = tmp_path / "only-the-hpke-key"  # no org-signing.key beside it
    alone.mkdir()
    (alone / "org.key").write_bytes((keydir / "org.key").read_bytes())
    code = main(["export", str(w.path), "--key", str(alone / "org.key"),
                 "--to", str(tmp_path / "x")])
    assert code == 2 and "--org-signing-key" in capsys.readouterr().err


def test_export_finds_the_signing_key_beside_the_organisation_key(org, tmp_path):
    """`akkoord export REC --key K --to DIR`, as before: the copy is still logged, signed."""
    _, w, keydir, _, pub = org
    to = tmp_path / "stick"
    to.mkdir()
    assert main(["export", str(w.path), "--key", str(keydir / "org.key"), "--to", str(to)]) == 0
    assert main(["custody", "--org-log", str(keydir / "org-custody.log"),
                 "--trust", str(pub)]) == 0
