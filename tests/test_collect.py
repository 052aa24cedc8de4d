"""Collection on the device: tokens, the package on a real (tmpfs) stick, receipts, retention.

Each attack or accident gets a clear outcome, and nothing on the device is lost."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from akkoord.archive.ingest import ingest
from akkoord.collect.package import COLLECT_DIR, RECORDING_FILES, device_folder
from akkoord.collect.receipts import (
    ARCHIVED_FILE,
    apply_receipt,
    archived_ids,
    pending_count,
    retention_due,
    run_retention,
    trusted_signing_keys,
)
from akkoord.collect.service import collection_token
from akkoord.collect.statements import Signer, StatementError, make_receipt
from akkoord.errors import FormatError
from akkoord.trust import OrgSigningKey, admin_certificate
from archivekit import T0, collect, make_archive, make_org, provision, put_token
from storekit import fast_tmp, make_kit, record


@pytest.fixture
def setup():
    kit = make_kit()
    org = make_org(kit.root / "org", kit.org)
    provision(kit, org)
    yield kit, org
    kit.cleanup()


def _entries(kit, kind):
    return [e for e in kit.custody.entries() if e["type"] == kind]


def _tree(kit):
    """Every byte of every recording on the device: what must never be lost."""
    out = {}
    for rid in kit.state.recording_ids():
        d = kit.state.recording_dir(rid)
        for p in sorted(d.iterdir()):
            if p.name != ARCHIVED_FILE:
                out[f"{rid}/{p.name}"] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _three(kit):
    for i in range(3):
        record(kit, segments=4, seed=i)
        kit.clock.advance(60)


# -- tokens -----------------------------------------------------------------------------------


def test_a_stick_without_a_token_is_a_party_stick(setup):
    kit, _org = setup
    stick = kit.root / "stick"
    stick.mkdir()
    assert collection_token(kit.state, kit.identity, stick, T0) is None


def test_a_valid_token_is_recognised(setup):
    kit, org = setup
    stick = kit.root / "stick"
    tok = put_token(org, stick, [kit.identity.fingerprint])
    s = collection_token(kit.state, kit.identity, stick, T0)
    assert s["serial"] == tok["statement"]["serial"]


@pytest.mark.parametrize("what, match", [
    ("forged", "signature invalid"),
    ("expired", "expired"),
    ("not_yet", "not valid before"),
    ("other_device", "not for this device"),
    ("untrusted", "does not trust"),
    ("wrong_type", "not a 'akkoord-collection-token'"),
])
def test_bad_tokens_are_refused_with_the_reason(setup, what, match):
    kit, org = setup
    stick = kit.root / "stick"
    fp = kit.identity.fingerprint
    if what == "expired":
        put_token(org, stick, [fp], now=T0 - 10 * 86400, days=7)
    elif what == "not_yet":
        put_token(org, stick, [fp], now=T0 + 86400)
    elif what == "other_device":
        put_token(org, stick, ["ab" * 32])
    elif what == "untrusted":
        put_token(org, stick, [fp], key=Signer.org(OrgSigningKey.generate("Ander")))
    else:
        tok = put_token(org, stick, [fp])
        if what == "forged":  # a party adds a device to the list with a hex editor
            tok["statement"]["devices"].append("cd" * 32)
        else:  # a genuine receipt is not a token
            tok = make_receipt(org.signing, fp, [], token_serial=None, now=T0)
        (stick / COLLECT_DIR / "token.json").write_text(json.dumps(tok))
    with pytest.raises(StatementError, match=match):
        collection_token(kit.state, kit.identity, stick, T0)


def _admin(org, roles, start=T0 - 86400):
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes_raw()
    cert = admin_certificate(org.org_key, "Beheer", "ed25519", raw, roles, int(start),
                             int(start + 30 * 86400), int(start))
    return Signer.admin(private, cert)


def test_an_admin_certified_for_collect_may_sign_tokens(setup):
    kit, org = setup
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint], key=_admin(org, ["collect"]))
    assert collection_token(kit.state, kit.identity, stick, T0) is not None


def test_an_admin_without_the_collect_role_may_not(setup):
    kit, org = setup
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint], key=_admin(org, ["console"]))
    with pytest.raises(StatementError, match="role 'collect'"):
        collection_token(kit.state, kit.identity, stick, T0)


def test_an_admin_certificate_from_another_organisation_is_refused(setup):
    kit, org = setup
    other = make_org(kit.root / "other", kit.org, "Ander")
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint], key=_admin(other, ["collect"]))
    with pytest.raises(StatementError, match="not among the trusted keys"):
        collection_token(kit.state, kit.identity, stick, T0)


# -- the package -------------------------------------------------------------------------------


def test_collection_writes_every_closed_recording_whole_and_logs_it(setup):
    kit, org = setup
    _three(kit)
    record(kit, segments=2, close=False, seed=9)  # still open: recovery's business first
    before = _tree(kit)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    seen = []
    out = collect(kit, stick, progress=lambda i, n, rid: seen.append((i, n)))
    assert len(out.result.collected) == 3 and out.result.ok
    assert seen[-1] == (3, 3)
    base = device_folder(stick, kit.identity.fingerprint)
    for rid in out.result.collected:
        src, dst = kit.state.recording_dir(rid), base / "recordings" / rid
        names = sorted(p.name for p in dst.iterdir())
        assert set(names) <= set(RECORDING_FILES)
        for n in names:
            assert (src / n).read_bytes() == (dst / n).read_bytes()
    assert not list((base / "recordings").glob("*.partial"))
    assert (base / "custody.log").exists()
    dev = json.loads((base / "device.json").read_text())
    assert dev["certificate"]["statement"]["type"] == "akkoord-device-certificate"
    logged = _entries(kit, "archive_collected")
    assert sorted(e["recording_id"] for e in logged) == sorted(out.result.collected)
    assert _tree(kit) == before  # collection never changes a recording
    # never plaintext, never a content key: no WAV, and keys.json is what the device holds
    assert not list(stick.rglob("*.wav"))


def test_collecting_again_finds_what_is_already_on_the_stick(setup):
    kit, org = setup
    _three(kit)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    again = collect(kit, stick)
    assert again.result.collected == [] and len(again.result.already) == 3


def test_a_damaged_copy_on_the_stick_is_written_again(setup):
    kit, org = setup
    _three(kit)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    first = collect(kit, stick)
    rid = first.result.collected[0]
    f = device_folder(stick, kit.identity.fingerprint) / "recordings" / rid / "recording.akr"
    data = bytearray(f.read_bytes())
    data[100] ^= 1
    f.write_bytes(bytes(data))
    again = collect(kit, stick)
    assert again.result.collected == [rid]
    assert f.read_bytes() == (kit.state.recording_dir(rid) / "recording.akr").read_bytes()


@pytest.mark.root
def test_a_full_stick_collects_what_fits_and_loses_nothing(setup, tmpfs):
    kit, org = setup
    _three(kit)
    one = max(sum(-(-p.stat().st_size // 4096) * 4096 for p in d.iterdir())
              for d in kit.state.recordings_dir.iterdir())  # tmpfs allocates whole pages
    before = _tree(kit)
    stick = tmpfs(kit.root / "small", f"size={4 * 4096 + one * 3 // 2}")
    put_token(org, stick, [kit.identity.fingerprint])
    out = collect(kit, stick)
    assert not out.result.ok and 1 <= len(out.result.collected) < 3
    assert all("No space" in why or "failed before" in why for why in out.result.failed.values())
    assert len(_entries(kit, "archive_collected")) == len(out.result.collected)
    assert _tree(kit) == before
    big = tmpfs(kit.root / "big", "size=16m")
    put_token(org, big, [kit.identity.fingerprint])
    assert len(collect(kit, big).result.collected) == 3


@pytest.mark.root
def test_a_stick_failing_mid_collection_loses_nothing(setup, tmpfs):
    """The kernel remounts a stick read-only on I/O errors; a pulled stick fails the same way
    for the writer: every write after it fails."""
    kit, org = setup
    _three(kit)
    before = _tree(kit)
    stick = tmpfs(kit.root / "stick", "size=16m")
    put_token(org, stick, [kit.identity.fingerprint])

    def pull(i, n, rid):
        if i == 1:
            subprocess.run(["mount", "-o", "remount,ro", str(stick)], check=True)

    out = collect(kit, stick, progress=pull)
    assert len(out.result.collected) == 1 and len(out.result.failed) == 2
    assert _tree(kit) == before
    assert [e["recording_id"] for e in _entries(kit, "archive_collected")] == \
        out.result.collected
    subprocess.run(["mount", "-o", "remount,rw", str(stick)], check=True)
    again = collect(kit, stick)
    assert len(again.result.collected) == 2 and again.result.already == out.result.collected


# -- receipts and retention --------------------------------------------------------------------


def _collected_and_ingested(kit, org):
    _three(kit)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    archive, index = make_archive(kit.root / "archive", org)
    res = ingest(archive, index, stick, key=org.signing)
    assert len(res.stored) == 3 and len(res.receipts) == 1
    return stick, res


def test_a_receipt_carried_back_marks_recordings_archived(setup):
    kit, org = setup
    stick, _res = _collected_and_ingested(kit, org)
    out = collect(kit, stick)
    assert len(out.receipts) == 1 and len(out.receipts[0].applied) == 3
    assert len(_entries(kit, "archive_receipt")) == 3
    fp = kit.identity.fingerprint
    assert archived_ids(kit.state, trusted_signing_keys(kit.state), fp, T0) == set(
        kit.state.recording_ids())
    assert out.result.collected == [] and out.result.already == []  # nothing pending


def test_a_replayed_receipt_changes_nothing(setup):
    kit, org = setup
    stick, res = _collected_and_ingested(kit, org)
    collect(kit, stick)
    n = len(list(kit.custody.entries()))
    data = Path(res.receipts[0]).read_bytes()
    out = apply_receipt(kit.state, kit.custody, data, "replay",
                        device_fingerprint=kit.identity.fingerprint,
                        trusted=trusted_signing_keys(kit.state), now=T0)
    assert out.replayed and not out.applied
    assert len(list(kit.custody.entries())) == n


def test_a_receipt_for_another_device_is_left_alone(setup):
    kit, org = setup
    _three(kit)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    heads = [{"recording_id": rid, "chain_head": "00" * 32} for rid in kit.state.recording_ids()]
    other = make_receipt(org.signing, "ef" * 32, heads, token_serial=None, now=T0)
    (stick / COLLECT_DIR / "receipts").mkdir()
    (stick / COLLECT_DIR / "receipts" / "x.json").write_text(json.dumps(other))
    out = collect(kit, stick)
    assert out.other_devices and not out.receipts
    assert len(out.result.collected) == 3  # still pending: collected as if no receipt


def test_forged_and_mismatched_receipts_archive_nothing(setup):
    kit, org = setup
    _stick, res = _collected_and_ingested(kit, org)
    env = json.loads(Path(res.receipts[0]).read_text())
    forged = copy.deepcopy(env)
    forged["statement"]["recordings"].append({"recording_id": "ab" * 16, "chain_head": "00"})
    with pytest.raises(StatementError, match="signature invalid"):
        apply_receipt(kit.state, kit.custody, json.dumps(forged).encode(), "forged",
                      device_fingerprint=kit.identity.fingerprint,
                      trusted=trusted_signing_keys(kit.state), now=T0)
    # validly signed, but for another version of the recording (other chain head)
    rid = kit.state.recording_ids()[0]
    wrong = make_receipt(org.signing, kit.identity.fingerprint,
                         [{"recording_id": rid, "chain_head": "11" * 32}],
                         token_serial=None, now=T0)
    out = apply_receipt(kit.state, kit.custody, json.dumps(wrong).encode(), "wrong",
                        device_fingerprint=kit.identity.fingerprint,
                        trusted=trusted_signing_keys(kit.state), now=T0)
    assert rid in out.refused and not out.applied
    assert not _entries(kit, "archive_receipt")


def test_retention_shreds_only_receipted_recordings_past_the_age(setup):
    kit, org = setup
    stick, _ = _collected_and_ingested(kit, org)
    record(kit, segments=2, seed=7)  # made after the collection: not receipted
    collect(kit, stick)  # applies the receipt for the first three
    trusted = trusted_signing_keys(kit.state)
    fp = kit.identity.fingerprint
    assert retention_due(kit.state, trusted, fp, T0 + 3600, 30) == []  # too young
    later = T0 + 31 * 86400
    due = run_retention(kit.state, kit.custody, trusted, fp, later, 30)
    assert len(due) == 3
    left = kit.state.recording_ids()
    assert len(left) == 1 and left[0] not in due
    assert len(_entries(kit, "recording_deleted")) == 3
    assert retention_due(kit.state, trusted, fp, T0 + 10 * 365 * 86400, 30) == []
    assert pending_count(kit.state, trusted, fp, later) == 1


def test_an_insider_cannot_make_retention_shred_an_unreceipted_recording(setup):
    kit, org = setup
    stick, _res = _collected_and_ingested(kit, org)
    record(kit, segments=2, seed=7)
    collect(kit, stick)
    fresh = next(r for r in kit.state.recording_ids()
             if not (kit.state.recording_dir(r) / ARCHIVED_FILE).exists())
    other = next(r for r in kit.state.recording_ids() if r != fresh)
    # copy another recording's genuine receipt next to the unreceipted one
    (kit.state.recording_dir(fresh) / ARCHIVED_FILE).write_bytes(
        (kit.state.recording_dir(other) / ARCHIVED_FILE).read_bytes())
    due = run_retention(kit.state, kit.custody, trusted_signing_keys(kit.state),
                        kit.identity.fingerprint, T0 + 400 * 86400, 30)
    assert fresh not in due and fresh in kit.state.recording_ids()


def test_collection_needs_a_token(setup):
    kit, _org = setup
    stick = fast_tmp()
    with pytest.raises(FormatError, match="not a collection stick"):
        collect(kit, stick)


def test_storage_low_says_collect_recordings_while_some_are_unreceipted(setup):
    from akkoord.collect.runner import Collector

    kit, org = setup
    collector = Collector(kit.state, kit.identity, kit.custody, kit.clock, lambda *a, **k: None,
                          lambda e: None, lambda: 0.0)
    assert collector.storage_advice() == ""
    _three(kit)
    assert collector.storage_advice() == "collect recordings (3 not yet receipted)"
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    archive, index = make_archive(kit.root / "archive", org)
    ingest(archive, index, stick, key=org.signing)
    collect(kit, stick)  # the receipt comes back
    assert collector.storage_advice() == ""


def test_collection_receipts_and_retention_keep_the_state_folder_consistent(setup):
    """The custody checks of the state folder (statecheck) agree with everything collection,
    receipts and retention did."""
    from akkoord.store.statecheck import check_state

    kit, org = setup
    stick, _ = _collected_and_ingested(kit, org)
    collect(kit, stick)
    run_retention(kit.state, kit.custody, trusted_signing_keys(kit.state),
                  kit.identity.fingerprint, T0 + 400 * 86400, 30)
    report = check_state(kit.state, kit.identity.public)
    assert report.ok, report.to_json()


def test_a_hung_collection_is_given_up_and_its_late_answer_ignored(setup, monkeypatch):
    import threading
    import time as _time

    import akkoord.collect.runner as runner
    from akkoord.collect.runner import Collector
    from akkoord.consent import CollectionFinished

    kit, _org = setup
    release = threading.Event()

    def hung(*_a, **_k):
        release.wait(10)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(runner, "run_collection", hung)
    posted, reports = [], []
    c = Collector(kit.state, kit.identity, kit.custody, kit.clock,
                  lambda ev, **f: reports.append(ev), posted.append, lambda: 1.0,
                  stall_seconds=0.05)
    c.start(kit.root, None)
    c.check(_time.monotonic())  # not yet stalled
    assert posted == []
    _time.sleep(0.1)
    c.check(_time.monotonic())
    assert [type(e) for e in posted] == [CollectionFinished] and not posted[0].ok
    assert "no progress" in posted[0].detail
    thread = c.thread
    release.set()
    _time.sleep(0.2)
    assert len(posted) == 1 and thread is None  # the late failure is not posted again


def test_archive_token_makes_a_stick_the_device_accepts(setup):
    from akkoord.cli import main

    kit, org = setup
    stick = kit.root / "fresh-stick"
    stick.mkdir()
    assert main(["archive", "token", "--signing-key", str(org.signing_key_path),
                 "--device", kit.identity.fingerprint, "--days", "2",
                 "--out", str(stick)]) == 0
    now = time.time()
    s = collection_token(kit.state, kit.identity, stick, now)
    assert s is not None and s["devices"] == [kit.identity.fingerprint]
    with pytest.raises(StatementError, match="expired"):
        collection_token(kit.state, kit.identity, stick, now + 3 * 86400)


def test_a_hostile_stick_cannot_hang_or_mislead_collection(setup):
    """A FIFO where the token or a receipt belongs must not block the device; a link where a
    collected file was is rewritten, never followed."""
    kit, org = setup
    _three(kit)
    stick = kit.root / "stick"
    (stick / COLLECT_DIR / "receipts").mkdir(parents=True)
    os.mkfifo(stick / COLLECT_DIR / "token.json")
    with pytest.raises(StatementError, match="not a regular file"):
        collection_token(kit.state, kit.identity, stick, T0)
    (stick / COLLECT_DIR / "token.json").unlink()
    put_token(org, stick, [kit.identity.fingerprint])
    os.mkfifo(stick / COLLECT_DIR / "receipts" / "fifo.json")
    first = collect(kit, stick)
    assert first.receipt_problems and len(first.result.collected) == 3
    rid = first.result.collected[0]
    f = device_folder(stick, kit.identity.fingerprint) / "recordings" / rid / "keys.json"
    secret = kit.root / "elsewhere"
    secret.write_bytes((kit.state.recording_dir(rid) / "keys.json").read_bytes())
    f.unlink()
    f.symlink_to(secret)
    again = collect(kit, stick)
    assert again.result.collected == [rid] and not f.is_symlink()
