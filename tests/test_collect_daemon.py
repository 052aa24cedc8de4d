"""Collection through the real daemon (simulator): a token-bearing stick, one press, the
package on the stick, custody entries, and the receipt carried back on the next stick."""

from __future__ import annotations

import json
import time

from akkoord.archive.ingest import ingest
from akkoord.collect.package import device_folder
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey
from archivekit import certify, make_archive, make_org, put_token
from simkit import DEMO_WAV, provision, run_script, write_config

CONFIG = """
[audio]
sample_rate = 16000
[export]
window_seconds = 1
"""


def _setup(tmp_path):
    state, key = provision(tmp_path)
    hpke = OrgPrivateKey.load(key)
    org = make_org(tmp_path / "org", hpke)
    trust = state.keys_dir / "trust"
    trust.mkdir(exist_ok=True)  # simkit.provision already trusts its own test org
    (trust / "org-signing.pub").write_bytes(org.signing_pub.read_bytes())
    identity = DeviceIdentity.load(state.keys_dir)
    now = time.time()
    (state.keys_dir / "device.cert.json").write_text(
        json.dumps(certify(org, identity, "kamer-2", start=now - 86400)))
    cfg = write_config(tmp_path / "akkoord.toml", CONFIG)
    return state, org, identity, cfg


def _of(events, name):
    return [e for e in events if e["event"] == name]


def test_collect_through_the_daemon_and_carry_the_receipt_back(tmp_path):
    state, org, identity, cfg = _setup(tmp_path)
    stick = tmp_path / "stick"
    put_token(org, stick, [identity.fingerprint], now=time.time())
    script = f"""
    a
    sleep 0.3
    b
    sleep 1.5
    b
    sleep 1.6
    usb {stick}
    sleep 0.3
    a
    sleep 1.5
    usb-remove
    quit
    """
    rc, events, err = run_script(state, script, "--config", str(cfg), "--audio-file",
                                 str(DEMO_WAV))
    assert rc == 0, err
    (rec,) = _of(events, "recording_stopped")
    assert _of(events, "collection_stick")
    (done,) = _of(events, "collection_done")
    assert done["collected"] == [rec["recording_id"]]
    states = [e["state"] for e in _of(events, "state")]
    assert "collect_confirm" in states and "collecting" in states
    assert not _of(events, "copy_made")  # a collection is not a party's copy
    recs = device_folder(stick, identity.fingerprint) / "recordings"
    assert (recs / rec["recording_id"] / "recording.akr").exists()

    archive, index = make_archive(tmp_path / "archive", org)
    res = ingest(archive, index, stick, key=org.signing)
    index.close()
    assert res.stored == [rec["recording_id"]] and res.receipts

    rc, events, err = run_script(state, f"usb {stick}\nsleep 0.3\nb\nsleep 1.5\nquit\n",
                                 "--config", str(cfg))
    assert rc == 0, err
    (done,) = _of(events, "collection_done")
    assert done["receipts"][0]["applied"] == [rec["recording_id"]]
    assert done["collected"] == []
    types = [json.loads(line)["entry"]["type"] for line in state.custody_path.open()]
    assert "archive_collected" in types and "archive_receipt" in types


def test_a_forged_token_makes_it_a_party_stick(tmp_path):
    state, org, identity, cfg = _setup(tmp_path)
    stick = tmp_path / "stick"
    tok = put_token(org, stick, [identity.fingerprint], now=time.time())
    tok["statement"]["valid_until"] = "2099-01-01T00:00:00Z"
    (stick / "akkoord-collect" / "token.json").write_text(json.dumps(tok))
    rc, events, err = run_script(state, f"usb {stick}\nsleep 0.3\nquit\n", "--config", str(cfg))
    assert rc == 0, err
    (refused,) = _of(events, "collection_token_refused")
    assert "signature invalid" in refused["reason"]
    assert not _of(events, "collection_done")
    assert "collect_confirm" not in [e["state"] for e in _of(events, "state")]
