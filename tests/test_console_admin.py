"""Administration over the console: proofs, replays, lockout, and every admin action logged.

Each attack is a test: a replayed proof, a proof moved to another command or device, an
administrator certified by an organisation the device does not trust, an expired or
wrong-role certificate, a flood of failures."""

from __future__ import annotations

import json
import time

import pytest
import serial

from akkoord.cli import main
from akkoord.console.auth import AdminKey, make_proof
from akkoord.console.client import ConsoleClient
from akkoord.store.keys import generate_org_key
from akkoord.trust import admin_certificate, device_certificate
from consolekit import Served, make_device, make_org, make_recording, pty_pair, trust  # noqa: F401


@pytest.fixture
def admin_setup(tmp_path, pty_pair):  # noqa: F811
    dev = make_device(tmp_path)
    org = make_org(tmp_path)
    trust(dev.state, org)
    s = Served(dev, pty_pair.device)
    yield dev, org, pty_pair.host
    s.close()


def run(capsys, host, org, *words, json_out=True):
    args = ["console", "--port", host, "--timeout", "15",
            "--admin-key", str(org.admin_dir / "admin.key")]
    rc = main([*args, *(["--json"] if json_out else []), *words])
    out = capsys.readouterr()
    return rc, (json.loads(out.out) if json_out and out.out.strip() else out.out), out.err


def custody(dev, kind=None):
    return [e for e in dev.custody.entries() if kind is None or e["type"] == kind]


def test_admin_new_makes_a_key_and_a_certificate_the_device_accepts(tmp_path, admin_setup,
                                                                   capsys):
    dev, org, host = admin_setup
    org_key = tmp_path / "org-signing.key"
    org_key.write_bytes(org.key.dumps())
    out = tmp_path / "tess"
    assert main(["keys", "admin-new", "--out", str(out), "--name", "Tess",
                 "--org-key", str(org_key)]) == 0
    assert {p.name for p in out.iterdir()} == {"admin.key", "admin.pub", "admin.cert.json"}
    assert oct((out / "admin.key").stat().st_mode & 0o777) == "0o600"
    assert main(["keys", "admin-new", "--out", str(out), "--name", "Tess",
                 "--org-key", str(org_key)]) == 2  # never overwrites
    capsys.readouterr()
    rc = main(["console", "--port", host, "--json", "--admin-key", str(out / "admin.key"),
               "retention", "set", "400"])
    assert rc == 0, capsys.readouterr().err
    (auth,) = custody(dev, "console_auth")
    assert auth["detail"]["admin"]["name"] == "Tess"
    assert auth["detail"]["admin"]["organisation"] == "Jeugdzorg Utrecht"


def test_retention_and_time_are_set_and_logged(admin_setup, capsys):
    dev, org, host = admin_setup
    rc, shown, _ = run(capsys, host, org, "retention", "show")
    assert rc == 0 and shown == {"retention_days": None}
    rc, changed, _ = run(capsys, host, org, "retention", "set", "730")
    assert rc == 0 and changed == {"old_days": None, "retention_days": 730}
    (entry,) = custody(dev, "retention_changed")
    assert entry["detail"]["new_days"] == 730 and entry["detail"]["admin"]["name"]
    rid = make_recording(dev)
    rc, listing, _ = run(capsys, host, org, "list")
    assert 729 < listing["recordings"][0]["retention_left_days"] <= 730
    assert listing["recordings"][0]["recording_id"] == rid
    rc, done, _ = run(capsys, host, org, "time", "set", "2026-12-01T09:30:00Z")
    assert rc == 0 and done["new"] == "2026-12-01T09:30:00Z"
    assert dev.clock_file.read_text() == "2026-12-01T09:30:00Z"  # what the narrow path got
    (entry,) = custody(dev, "clock_set")
    assert entry["detail"]["new"] == "2026-12-01T09:30:00Z" and entry["detail"]["old"]["utc"]
    rc, _, err = run(capsys, host, org, "time", "set", "2020-01-01T00:00:00Z")
    assert rc == 1 and "clock floor" in err
    dev.view.active = rid
    rc, _, err = run(capsys, host, org, "time", "set")  # the laptop's own time
    assert rc == 1 and "recording" in err
    assert len(custody(dev, "clock_set")) == 1


def _receipt(dev, org, rid):
    """What a collection does with the archive's receipt: archived.json, verified."""
    from akkoord.collect.receipts import apply_receipt, trusted_signing_keys
    from akkoord.collect.statements import Signer, make_receipt
    from akkoord.store.manifest import read_manifest

    fp = dev.state.identity().fingerprint
    head = read_manifest(dev.state.recording_dir(rid)).doc["chain_head"]
    env = make_receipt(Signer.org(org.key), fp, [{"recording_id": rid, "chain_head": head}],
                       token_serial=None, now=dev.clock.wall_epoch())
    out = apply_receipt(dev.state, dev.custody, json.dumps(env).encode(), "receipt",
                        device_fingerprint=fp, trusted=trusted_signing_keys(dev.state),
                        now=dev.clock.wall_epoch())
    assert out.applied == [rid]


def test_delete_needs_a_receipt_or_force_and_is_logged(admin_setup, capsys):
    dev, org, host = admin_setup
    a, b, c = make_recording(dev), make_recording(dev), make_recording(dev)
    rc, _, err = run(capsys, host, org, "delete", a, "--reason", "retention ended")
    assert rc == 1 and "no archive receipt" in err
    assert dev.state.recording_dir(a).is_dir()
    # a custody line is history, not proof: only a signed receipt makes b deletable
    dev.custody.append("archive_receipt", b, archive="Jeugdzorg Utrecht")
    rc, _, err = run(capsys, host, org, "delete", b, "--reason", "retention ended")
    assert rc == 1 and "no archive receipt" in err
    _receipt(dev, org, b)
    rc, done, _ = run(capsys, host, org, "delete", b, "--reason", "retention ended")
    assert rc == 0 and done == {"deleted": b, "receipted": True, "forced": False}
    rc, done, _ = run(capsys, host, org, "delete", a, "--reason", "court order", "--force")
    assert rc == 0 and done["forced"] is True
    assert not dev.state.recording_dir(a).exists() and not dev.state.recording_dir(b).exists()
    entries = {e["recording_id"]: e["detail"] for e in custody(dev, "recording_deleted")}
    assert entries[a]["forced"] is True and entries[a]["reason"] == "court order"
    assert entries[b]["forced"] is False and entries[b]["admin"]["name"] == "Technicus Tess"
    dev.view.exportable = c
    rc, _, err = run(capsys, host, org, "delete", c, "--reason", "x", "--force")
    assert rc == 1 and "copy window" in err


def test_recipients_certificate_and_config(tmp_path, admin_setup, capsys):
    dev, org, host = admin_setup
    new = generate_org_key("x25519")
    (tmp_path / "new.pub").write_bytes(new.public.dumps())
    (tmp_path / "new.key").write_bytes(new.dumps())
    rc, added, _ = run(capsys, host, org, "recipients", "add", str(tmp_path / "new.pub"))
    assert rc == 0 and added == {"fingerprint": new.fingerprint, "added": True}
    rc, _, err = run(capsys, host, org, "recipients", "add", str(tmp_path / "new.key"))
    assert rc == 1 and "PRIVATE" in err
    rc, listed, _ = run(capsys, host, org, "recipients")
    assert new.fingerprint in [r["fingerprint"] for r in listed["recipients"]]
    assert custody(dev, "recipient_added")[-1]["detail"]["via"] == "console"

    now = int(time.time())
    raw = dev.state.device_public_key().raw
    cert = device_certificate(org.key, "ed25519", raw, "Utrecht, kamer 2", now - 60,
                              now + 86400, now)
    (tmp_path / "dev.cert.json").write_text(json.dumps(cert))
    rc, done, _ = run(capsys, host, org, "certificate", "install", str(tmp_path / "dev.cert.json"))
    assert rc == 0 and done["certificate"]["anchored"] is True
    rc, status, _ = run(capsys, host, org, "status")
    assert status["keys"]["certificate"]["label"] == "Utrecht, kamer 2"
    other = make_org(tmp_path, "Ander Bureau")
    foreign = device_certificate(other.key, "ed25519", raw, "x", now - 60, now + 86400, now)
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    rc, _, err = run(capsys, host, org, "certificate", "install", str(tmp_path / "foreign.json"))
    assert rc == 1 and "untrusted_organisation" in err

    rc, config, _ = run(capsys, host, org, "config", "show")
    assert rc == 0 and config["config"]["console"]["baudrate"] == 115200


def _client(host, org, cert=None, key=None):
    port = serial.serial_for_url(host, timeout=0.05)
    return port, ConsoleClient(port, admin=(key or org.admin, cert or org.cert), timeout=10)


def test_replayed_moved_and_foreign_proofs_are_refused_and_logged(tmp_path, admin_setup):
    dev, org, host = admin_setup
    port, client = _client(host, org)
    with port:
        challenge = client.call(["challenge"])["result"]
        cmd = ["retention", "set", "30"]
        auth = make_proof(org.admin, org.cert, challenge["nonce"],
                          challenge["device_fingerprint"], cmd)
        assert client._request({"cmd": cmd, "auth": auth}, 10)["ok"]
        replay = client._request({"cmd": cmd, "auth": auth}, 10)
        assert replay["error"]["code"] == "unauthorised" and "nonce" in replay["error"]["message"]

        challenge = client.call(["challenge"])["result"]
        auth = make_proof(org.admin, org.cert, challenge["nonce"],
                          challenge["device_fingerprint"], cmd)
        moved = client._request({"cmd": ["retention", "set", "1"], "auth": auth}, 10)
        assert "does not match" in moved["error"]["message"]

        challenge = client.call(["challenge"])["result"]
        auth = make_proof(org.admin, org.cert, challenge["nonce"], "00" * 32, cmd)
        other_device = client._request({"cmd": cmd, "auth": auth}, 10)
        assert "does not match" in other_device["error"]["message"]

    stranger = make_org(tmp_path, "Ander Bureau")
    port, client = _client(host, stranger)
    with port:
        reply = client.call(["retention", "set", "1"], admin_needed=True)
        assert "untrusted_organisation" in reply["error"]["message"]

    failed = custody(dev, "console_auth_failed")
    assert [f["detail"]["command"] for f in failed] == ["retention set"] * 4
    assert failed[-1]["detail"]["admin"]["name"] == "Technicus Tess"  # the stranger's claim
    assert len(custody(dev, "console_auth")) == 1
    assert [e["detail"]["new_days"] for e in custody(dev, "retention_changed")] == [30]


@pytest.mark.parametrize("problem", ["expired", "wrong_role"])
def test_certificate_must_be_current_and_for_the_console(tmp_path, admin_setup, problem):
    _dev, org, host = admin_setup
    now = int(time.time())
    key = AdminKey.generate("Oud")
    if problem == "expired":
        cert = admin_certificate(org.key, "Oud", "ed25519", key.signer.public_raw,
                                 ["console"], now - 900, now - 600, now - 900)
    else:
        cert = admin_certificate(org.key, "Oud", "ed25519", key.signer.public_raw,
                                 ["collect"], now - 60, now + 600, now)
    port, client = _client(host, org, cert, key)
    with port:
        reply = client.call(["retention", "set", "1"], admin_needed=True)
    assert problem in reply["error"]["message"]


def test_an_expired_certificate_still_sets_an_unset_clock(tmp_path, pty_pair, capsys):  # noqa: F811
    dev = make_device(tmp_path, clock_start=1_000_000_000.0)  # 2001: before the clock floor
    org = make_org(tmp_path, now=time.time())  # valid now, not in 2001
    trust(dev.state, org)
    s = Served(dev, pty_pair.device)
    try:
        rc, _, err = run(capsys, pty_pair.host, org, "time", "set")
        assert rc == 0, err
    finally:
        s.close()
    (auth,) = custody(dev, "console_auth")
    assert auth["detail"]["admin"]["clock_unset"] is True


def test_failures_lock_the_console_without_flooding_the_custody_log(admin_setup):
    dev, org, host = admin_setup
    port, client = _client(host, org)
    with port:
        codes = []
        for _ in range(12):
            reply = client._request({"cmd": ["retention", "set", "1"],
                                     "auth": {"nonce": "00", "certificate": {}, "signature": ""}},
                                    10)
            codes.append(reply["error"]["message"])
        assert all("too many" in m for m in codes[5:])
        locked = client.call(["retention", "show"], admin_needed=True)
        assert "too many" in locked["error"]["message"] and locked["error"]["retry_after"] > 0
        status = client.call(["status"])  # read-only commands keep working
        assert status["result"]["console"]["administration"] == "locked"
    failed = custody(dev, "console_auth_failed")
    assert len(failed) == 5 and failed[-1]["detail"]["locked_seconds"] == 300


def test_a_failing_clock_path_is_reported_and_not_logged_as_set(admin_setup, capsys):
    import sys

    from akkoord.console.clockset import CommandClockSetter

    dev, org, host = admin_setup
    dev.device.clock_setter = CommandClockSetter(
        [sys.executable, "-c", "import sys; sys.exit('no answer from the clock helper')"])
    rc, _, err = run(capsys, host, org, "time", "set", "2026-12-01T09:30:00Z")
    assert rc == 1 and "no answer from the clock helper" in err
    assert custody(dev, "clock_set") == []


def test_a_revoked_administrator_is_refused_and_a_damaged_list_refuses_everyone(
        tmp_path, admin_setup, capsys):
    import dataclasses

    from akkoord.trust import format_time, revocation_list

    dev, org, host = admin_setup
    now = int(time.time())
    serial_no = org.cert["statement"]["serial"]
    crl = revocation_list(org.key, 1, [{"serial": serial_no, "revoked_at": format_time(now),
                                        "reason": "left the organisation"}], now)
    path = tmp_path / "revoked.json"
    path.write_text(json.dumps(crl))
    cfg = dev.device.config
    dev.device.config = dataclasses.replace(
        cfg, trust=dataclasses.replace(cfg.trust, revocation_lists=(str(path),)))
    rc, _, err = run(capsys, host, org, "retention", "set", "9")
    assert rc == 1 and "revoked" in err and "left the organisation" in err
    path.write_text(json.dumps(crl)[:-20])
    rc, _, err = run(capsys, host, org, "retention", "set", "9")
    assert rc == 1 and "revocation list unreadable" in err
    rc, status, _ = run(capsys, host, org, "status")
    assert rc == 0 and status["state"] == "ready"  # reading the device's state still works
    assert custody(dev, "retention_changed") == []
