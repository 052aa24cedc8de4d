"""The issue's real-parts cases for collection, end to end through `run_collection`, each held
to the same outcome: it is clear what happened, and nothing on the device is lost, and nothing
becomes collected or receipted that should not.

(The pulled stick is tests/test_collect_pulled.py, a FUSE stick that dies mid-write; the full
stick is test_collect.py `test_a_full_stick_collects_what_fits_and_loses_nothing`, a tmpfs of
a size that fills mid-recording.)"""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from akkoord.archive.ingest import ingest
from akkoord.collect.package import COLLECT_DIR
from akkoord.collect.receipts import ARCHIVED_FILE, receipted_ids
from akkoord.collect.statements import StatementError, make_receipt
from archivekit import T0, collect, make_archive, make_org, provision, put_token
from storekit import make_kit, record


@pytest.fixture
def setup():
    kit = make_kit()
    org = make_org(kit.root / "org", kit.org)
    provision(kit, org)
    for i in range(2):
        record(kit, segments=4, seed=i)
        kit.clock.advance(60)
    yield kit, org
    kit.cleanup()


def _tree(kit):
    return {f"{rid}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
            for rid in kit.state.recording_ids()
            for p in sorted(kit.state.recording_dir(rid).iterdir()) if p.name != ARCHIVED_FILE}


def _types(kit):
    return [e["type"] for e in kit.custody.entries()]


def _receipted(kit):
    return receipted_ids(kit.state, kit.identity.fingerprint, kit.clock.wall_epoch())


@pytest.mark.parametrize("what, match", [("expired", "expired"),
                                         ("forged", "signature invalid")])
def test_an_expired_or_forged_token_collects_nothing(setup, what, match):
    kit, org = setup
    before, log = _tree(kit), _types(kit)
    stick = kit.root / "stick"
    if what == "expired":
        put_token(org, stick, [kit.identity.fingerprint], now=T0 - 30 * 86400, days=7)
    else:  # a party extends the validity with a hex editor
        tok = put_token(org, stick, [kit.identity.fingerprint])
        tok["statement"]["valid_until"] = "2099-01-01T00:00:00Z"
        (stick / COLLECT_DIR / "token.json").write_text(json.dumps(tok))
    with pytest.raises(StatementError, match=match):
        collect(kit, stick)
    assert _tree(kit) == before and _types(kit) == log and not _receipted(kit)
    assert [p.name for p in (stick / COLLECT_DIR).iterdir()] == ["token.json"]


def _cycle(kit, org, stick):
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    archive, index = make_archive(kit.root / "archive", org)
    res = ingest(archive, index, stick, key=org.signing)
    index.close()
    return res


def test_a_receipt_for_another_device_marks_nothing_here(setup):
    kit, org = setup
    before = _tree(kit)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    # genuinely signed, naming this device's recordings and heads, but for another device
    heads = [{"recording_id": rid, "chain_head": json.loads(
        (kit.state.recording_dir(rid) / "manifest.json").read_text())["chain_head"]}
        for rid in kit.state.recording_ids()]
    other = make_receipt(org.signing, "ef" * 32, heads, token_serial=None, now=T0)
    (stick / COLLECT_DIR / "receipts").mkdir()
    (stick / COLLECT_DIR / "receipts" / "other.json").write_text(json.dumps(other))
    out = collect(kit, stick)
    assert out.other_devices and not out.receipts and not out.receipt_problems
    assert sorted(out.result.collected) == sorted(kit.state.recording_ids())
    assert _tree(kit) == before and not _receipted(kit)
    assert "archive_receipt" not in _types(kit)


def test_a_replayed_old_receipt_on_a_new_stick_changes_nothing(setup):
    """A receipt applied before, copied onto a later collection stick: reported as replayed,
    no new custody entry, and the recordings made since are still collected (the old
    receipt cannot stand in for them)."""
    kit, org = setup
    first = kit.root / "first"
    res = _cycle(kit, org, first)
    assert len(res.stored) == 2
    collect(kit, first)  # carries the receipt back: both receipted
    assert len(_receipted(kit)) == 2
    old = set(kit.state.recording_ids())
    record(kit, segments=4, seed=9)
    (new,) = set(kit.state.recording_ids()) - old
    before, n = _tree(kit), len(_types(kit))
    later = kit.root / "later"
    put_token(org, later, [kit.identity.fingerprint])
    (later / COLLECT_DIR / "receipts").mkdir()
    for r in res.receipts:
        shutil.copy(r, later / COLLECT_DIR / "receipts")
    out = collect(kit, later)
    assert [r.replayed for r in out.receipts] == [True]
    assert out.result.collected == [new]
    assert _tree(kit) == before and new not in _receipted(kit)
    assert _types(kit)[n:] == ["archive_collected"]
