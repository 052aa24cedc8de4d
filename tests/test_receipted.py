"""One notion of "receipted" on the device, asked by everything that may let a recording go:
retention, the console's `list` and `delete`, and the "collect recordings" advice.

Only a receipt signed by a trusted organisation key, for this device, naming this recording
with its chain head, counts (collect/receipts.py `is_receipted`). Each way an insider with
write access to the state folder might fake one is a test, against every consumer at once;
the control (a genuine receipt) shows the same checks do let a receipted recording go."""

from __future__ import annotations

import json

import pytest

from akkoord.collect.receipts import (
    ARCHIVED_FILE,
    apply_receipt,
    pending_count,
    run_retention,
    trusted_signing_keys,
)
from akkoord.collect.statements import Signer, make_receipt
from akkoord.console.device import Refused
from akkoord.store.manifest import read_manifest
from akkoord.trust import OrgSigningKey
from consolekit import make_device, make_org, make_recording, trust


@pytest.fixture
def dev(tmp_path):
    d = make_device(tmp_path, clock_start=1_800_000_000.0)
    org = make_org(tmp_path)
    trust(d.state, org)
    d.org = org
    return d


def _fp(dev):
    return dev.state.identity().fingerprint


def _head(dev, rid):
    return read_manifest(dev.state.recording_dir(rid)).doc["chain_head"]


def _receipt(dev, rid, key=None, head=None):
    return make_receipt(Signer.org(key or dev.org.key), _fp(dev),
                        [{"recording_id": rid, "chain_head": head or _head(dev, rid)}],
                        token_serial=None, now=dev.clock.wall_epoch())


def _may_go(dev, rid) -> dict[str, bool]:
    """What each consumer thinks: may this recording leave the device?"""
    listed = {r["recording_id"]: r["receipted"] for r in dev.device.list()["recordings"]}
    now = dev.clock.wall_epoch()
    trusted = trusted_signing_keys(dev.state)
    pending_before = pending_count(dev.state, trusted, _fp(dev), now)
    later = now + 400 * 86400  # long past a 30-day retention
    shredded = run_retention(dev.state, dev.custody, trusted, _fp(dev), later, 30) == [rid]
    out = {"list": listed[rid], "retention": shredded, "advice": pending_before == 0}
    if not shredded:
        try:
            dev.device.delete(rid, "retention ended", False, {"name": "t"})
            out["delete"] = True
        except Refused:
            out["delete"] = False
    return out


NONE = {"list": False, "retention": False, "advice": False, "delete": False}


def _forged_signature(dev, rid):
    env = _receipt(dev, rid)
    env["statement"]["issued"] = "2020-01-01T00:00:00Z"  # the signature no longer covers it
    return env


def _unsigned(dev, rid):
    env = _receipt(dev, rid)
    return {"statement": env["statement"]}


def _other_recording(dev, rid):
    other = make_recording(dev)
    return _receipt(dev, other)


def _other_org(dev, rid):
    return _receipt(dev, rid, key=OrgSigningKey.generate("Niet onze organisatie"))


def _other_head(dev, rid):
    return _receipt(dev, rid, head="00" * 32)


@pytest.mark.parametrize("fake", [_forged_signature, _unsigned, _other_recording, _other_org,
                                  _other_head])
def test_a_fake_archived_json_makes_nothing_deletable(dev, fake):
    rid = make_recording(dev)
    (dev.state.recording_dir(rid) / ARCHIVED_FILE).write_text(json.dumps(fake(dev, rid)))
    assert _may_go(dev, rid) == NONE
    assert dev.state.recording_dir(rid).is_dir()


def test_a_stray_custody_entry_makes_nothing_deletable(dev):
    rid = make_recording(dev)
    dev.custody.append("archive_receipt", rid, receipt_serial="0" * 32,
                       chain_head=_head(dev, rid), organisation="Jeugdzorg Utrecht")
    assert _may_go(dev, rid) == NONE
    assert dev.state.recording_dir(rid).is_dir()


def test_a_genuine_receipt_lets_it_go_everywhere(dev):
    """The control: the same consumers, with a receipt the collection applied."""
    rid = make_recording(dev)
    out = apply_receipt(dev.state, dev.custody, json.dumps(_receipt(dev, rid)).encode(), "r",
                        device_fingerprint=_fp(dev), trusted=trusted_signing_keys(dev.state),
                        now=dev.clock.wall_epoch())
    assert out.applied == [rid]
    assert _may_go(dev, rid) == {"list": True, "retention": True, "advice": True}
    assert not dev.state.recording_dir(rid).exists()


@pytest.mark.parametrize("plant", ["fifo", "link", "huge"])
def test_a_planted_fifo_link_or_huge_archived_json_neither_hangs_nor_counts(dev, plant):
    """Retention and the console read archived.json only as a small regular file: a FIFO
    would hang them, a link would borrow another recording's genuine receipt."""
    import os

    rid = make_recording(dev)
    other = make_recording(dev)
    apply_receipt(dev.state, dev.custody, json.dumps(_receipt(dev, other)).encode(), "r",
                  device_fingerprint=_fp(dev), trusted=trusted_signing_keys(dev.state),
                  now=dev.clock.wall_epoch())
    marker = dev.state.recording_dir(rid) / ARCHIVED_FILE
    if plant == "fifo":
        os.mkfifo(marker)
    elif plant == "link":
        marker.symlink_to(dev.state.recording_dir(other) / ARCHIVED_FILE)
    else:
        marker.write_bytes(b" " * (2 << 20) + json.dumps(_receipt(dev, rid)).encode())
    listed = {r["recording_id"]: r["receipted"] for r in dev.device.list()["recordings"]}
    assert listed == {rid: False, other: True}
    with pytest.raises(Refused):
        dev.device.delete(rid, "x", False, {"name": "t"})
