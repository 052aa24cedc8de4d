"""The organisation ceremony through the CLI: org-new (HPKE + signing pair) → certify →
install-certificate → recordings carry the certificate → verify --trust exits 0; revoke and
publish-page; and the refusals on the way (a private key on the device, a certificate for
another device, an untrusted organisation)."""

from __future__ import annotations

import json
import stat

import pytest

from akkoord.cli import main
from akkoord.export.verifypage import TRUST_PLACEHOLDER
from akkoord.store.custody import CustodyLog
from copykit import record_copy
from storekit import make_kit


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ceremony(tmp_path, monkeypatch, capsys):
    kit = make_kit(tmp_path / "device", certified=False)
    monkeypatch.setenv("AKKOORD_STATE", str(kit.state.root))
    org = tmp_path / "org"
    code, out, _ = run(capsys, "keys", "org-new", "--out", org, "--name", "Jeugdzorg Noord",
                       "--kem", "x25519")
    assert code == 0 and "signing key of 'Jeugdzorg Noord'" in out
    return kit, org


def test_org_new_makes_both_pairs_and_never_overwrites(ceremony, capsys):
    _, org = ceremony
    for name, mode in (("org.key", 0o600), ("org-signing.key", 0o600), ("org-signing.pub", 0o644)):
        assert stat.S_IMODE((org / name).stat().st_mode) == mode
    pub = json.loads((org / "org-signing.pub").read_text())
    assert pub["type"] == "akkoord-org-signing-public-key" and pub["version"] == 2
    assert pub["organisation"] == "Jeugdzorg Noord" and pub["algorithm"] == "ed25519"
    code, _, err = run(capsys, "keys", "org-new", "--out", org, "--name", "x")
    assert code == 2 and "refusing to overwrite" in err


def test_certify_install_record_verify(ceremony, capsys, tmp_path):
    kit, org = ceremony
    cert = tmp_path / "device.cert.json"
    code, out, _ = run(capsys, "keys", "certify", kit.state.keys_dir / "device.pub",
                       "--org-key", org / "org-signing.key", "--label", "Noord, kamer 2",
                       "--days", "7300", "--valid-from", "2020-01-01T00:00:00Z", "--out", cert)
    assert code == 0 and "certificate" in out
    # Without the organisation's key the device cannot tell who signed it: refused.
    code, _, err = run(capsys, "keys", "install-certificate", cert)
    assert code == 2 and "--org-pub" in err
    # The organisation's PRIVATE signing key never goes onto the device.
    code, _, err = run(capsys, "keys", "trust", org / "org-signing.key")
    assert code == 2 and "PRIVATE" in err
    code, out, _ = run(capsys, "keys", "install-certificate", cert,
                       "--org-pub", org / "org-signing.pub")
    assert code == 0 and "Jeugdzorg Noord" in out
    assert kit.state.certificate_path.exists()
    kinds = [e["type"] for e in CustodyLog(kit.state.custody_path, kit.identity,
                                           kit.clock).entries()]
    assert kinds[-2:] == ["trust_added", "certificate_installed"]
    made = record_copy(kit, 2)
    manifest = json.loads((made.folder / "manifest.json").read_bytes())
    assert manifest["device"]["certificate"]["statement"]["serial"] in cert.read_text()
    code, out, _ = run(capsys, "verify", made.folder, "--trust", org / "org-signing.pub")
    assert code == 0 and "Jeugdzorg Noord" in out and "Noord, kamer 2" in out
    # On the device itself its trust folder anchors the verdict.
    assert run(capsys, "verify", made.folder)[0] == 0
    assert run(capsys, "verify", made.writer.path)[0] == 0
    # Elsewhere, without trust: genuine but not anchored.
    code, out, _ = run(capsys, "--state", tmp_path / "elsewhere", "verify", made.folder)
    assert code == 3 and "not anchored" in out and "cannot tell who made this" in out


def test_certificate_for_another_device_is_not_installed(ceremony, capsys, tmp_path):
    kit, org = ceremony
    other = make_kit(tmp_path / "other", certified=False)
    cert = tmp_path / "other.cert.json"
    assert run(capsys, "keys", "certify", other.state.keys_dir / "device.pub", "--org-key",
               org / "org-signing.key", "--label", "x", "--out", cert)[0] == 0
    code, _, err = run(capsys, "keys", "install-certificate", cert,
                       "--org-pub", org / "org-signing.pub")
    assert code == 2 and "for another key" in err
    assert not kit.state.certificate_path.exists()


def test_revoke_extends_the_list_and_verify_honours_it(ceremony, capsys, tmp_path):
    kit, org = ceremony
    cert = tmp_path / "c.json"
    run(capsys, "keys", "certify", kit.state.keys_dir / "device.pub", "--org-key",
        org / "org-signing.key", "--label", "x", "--valid-from", "2020-01-01T00:00:00Z",
        "--days", 7300, "--out", cert)
    assert run(capsys, "keys", "install-certificate", cert, "--org-pub",
               org / "org-signing.pub")[0] == 0
    made = record_copy(kit, 2)
    rl1, rl2 = tmp_path / "rl1.json", tmp_path / "rl2.json"
    code, _, _ = run(capsys, "keys", "revoke", "--org-key", org / "org-signing.key",
                     "--fingerprint", "ab" * 32, "--out", rl1)
    assert code == 0
    assert run(capsys, "verify", made.folder, "--revocations", rl1)[0] == 0
    code, out, _ = run(capsys, "keys", "revoke", "--org-key", org / "org-signing.key",
                       "--certificate", cert, "--reason", "device_lost", "--list", rl1,
                       "--out", rl2)
    assert code == 0 and "list 2" in out
    code, out, _ = run(capsys, "verify", made.folder, "--revocations", rl2, "--json")
    assert code == 1 and json.loads(out)["trust"]["status"] == "revoked"


def test_publish_page_builds_the_organisation_key_in(ceremony, capsys, tmp_path):
    _, org = ceremony
    out = tmp_path / "controle.html"
    code, text, _ = run(capsys, "keys", "publish-page", "--org-key", org / "org-signing.pub",
                        "--out", out)
    assert code == 0 and "Jeugdzorg Noord" in text
    html = out.read_text()
    assert TRUST_PLACEHOLDER not in html and '"organisation": "Jeugdzorg Noord"' in html
    assert "private_key" not in html
    # Given the private key file, only its public half goes in.
    out2 = tmp_path / "controle2.html"
    assert run(capsys, "keys", "publish-page", "--org-key", org / "org-signing.key",
               "--out", out2)[0] == 0
    assert "private_key" not in out2.read_text()


def test_keys_show_reports_trust_and_certificate(ceremony, capsys, tmp_path):
    kit, org = ceremony
    code, out, _ = run(capsys, "keys", "show")
    assert code == 0 and "certificate: none" in out
    cert = tmp_path / "c.json"
    run(capsys, "keys", "certify", kit.state.keys_dir / "device.pub", "--org-key",
        org / "org-signing.key", "--label", "Zuid", "--out", cert)
    run(capsys, "keys", "install-certificate", cert, "--org-pub", org / "org-signing.pub")
    code, out, _ = run(capsys, "keys", "show", "--json")
    doc = json.loads(out)
    assert doc["certificate"]["anchored"] and doc["certificate"]["label"] == "Zuid"
    assert doc["trust"][0]["organisation"] == "Jeugdzorg Noord"
