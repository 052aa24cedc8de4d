"""The organisation's archive, with the index in SQLite and in a real PostgreSQL server:
the same tests for both backends."""

from __future__ import annotations

import json
import threading
import wave
from pathlib import Path

import pytest

from akkoord.archive.index import SearchFilter, open_index
from akkoord.archive.ingest import ingest
from akkoord.archive.ops import audit, delete, export_copy, log_view, to_wav
from akkoord.cli import main
from akkoord.collect.package import device_folder
from akkoord.collect.statements import Signer
from akkoord.errors import UsageError
from akkoord.export.copycheck import verify_copy
from akkoord.trust import OrgSigningKey
from archivekit import collect, make_archive, make_org, provision, put_token
from pgkit import pg_server  # noqa: F401 - the session fixture
from storekit import make_kit, record


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture
def world(backend):
    kit = make_kit()
    org = make_org(kit.root / "org", kit.org)
    provision(kit, org, label="kamer-1")
    for i in range(3):
        record(kit, segments=4, seed=i)
        kit.clock.advance(3600)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    archive, index = make_archive(kit.root / "archive", org, backend)
    yield kit, org, stick, archive, index, backend
    index.close()
    kit.cleanup()


def _index(archive, db):
    idx = open_index(archive.root, db)
    idx.migrate()
    return idx


def test_ingest_stores_indexes_and_writes_a_receipt(world):
    kit, org, stick, archive, index, _db = world
    res = ingest(archive, index, stick, key=org.signing)
    assert res.ok and sorted(res.stored) == kit.state.recording_ids()
    assert len(res.receipts) == 1
    receipt = json.loads(Path(res.receipts[0]).read_text())["statement"]
    assert receipt["device"] == kit.identity.fingerprint
    token = json.loads((stick / "akkoord-collect" / "token.json").read_text())
    assert receipt["token_serial"] == token["statement"]["serial"]
    assert len(receipt["recordings"]) == 3
    row = index.get(res.stored[0])
    assert row["device_label"] == "kamer-1" and row["status"] == "complete"
    assert row["duration_seconds"] > 0
    for digest in json.loads(row["objects"]).values():
        assert archive.object_path(digest).exists()


def test_ingesting_twice_stores_each_recording_once(world):
    _kit, org, stick, archive, index, _db = world
    first = ingest(archive, index, stick, key=org.signing)
    objects = sorted(p.name for p in archive.objects.rglob("*") if p.is_file())
    second = ingest(archive, index, stick, key=org.signing)
    assert len(first.stored) == 3 and second.stored == [] and len(second.already) == 3
    assert sorted(p.name for p in archive.objects.rglob("*") if p.is_file()) == objects
    assert index.count() == 3


def test_two_overlapping_ingests_at_once_store_each_recording_once(world):
    kit, org, stick, archive, index, db = world
    record(kit, segments=4, seed=42)  # the second package has one more
    stick2 = kit.root / "stick2"
    put_token(org, stick2, [kit.identity.fingerprint])
    collect(kit, stick2)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def run(src):
        idx = _index(archive, db)
        try:
            barrier.wait()
            results.append(ingest(archive, idx, src, key=org.signing))
        except Exception as exc:
            errors.append(exc)
        finally:
            idx.close()

    threads = [threading.Thread(target=run, args=(s,)) for s in (stick, stick2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    stored = [r for res in results for r in res.stored]
    assert sorted(stored) == sorted(set(stored)) and len(stored) == 4
    assert index.count() == 4
    assert all(res.ok for res in results)


def _tamper(stick, kit, rid):
    f = device_folder(stick, kit.identity.fingerprint) / "recordings" / rid / "recording.akr"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x40
    f.write_bytes(bytes(data))


def test_a_failing_recording_is_quarantined_and_reported_never_dropped(world):
    kit, org, stick, archive, index, _db = world
    bad = kit.state.recording_ids()[1]
    _tamper(stick, kit, bad)
    res = ingest(archive, index, stick, key=org.signing)
    assert list(res.quarantined) == [bad] and not res.ok
    assert "fails verification" in res.quarantined[bad]
    assert len(res.stored) == 2 and index.get(bad) is None
    q = index.quarantined()
    assert len(q) == 1 and q[0]["recording_id"] == bad
    kept = archive.root / q[0]["path"]
    assert (kept / "recording.akr").exists() and (kept / "reason.txt").exists()
    receipt = json.loads(Path(res.receipts[0]).read_text())["statement"]
    assert bad not in [r["recording_id"] for r in receipt["recordings"]]


def test_a_device_the_organisation_did_not_certify_is_quarantined(world, request):
    kit, _org, stick, _archive, _index, db = world
    stranger = make_org(kit.root / "stranger", kit.org, "Vreemd")
    db2 = request.getfixturevalue("pg_server").new_database() if db else None
    archive2, index2 = make_archive(kit.root / "archive2", stranger, db2)
    try:
        res = ingest(archive2, index2, stick, key=stranger.signing)
        assert len(res.quarantined) == 3 and not res.stored and not res.receipts
        assert all("not among the trusted keys" in why for why in res.quarantined.values())
    finally:
        index2.close()


def test_a_partial_recording_on_the_stick_is_ignored(world):
    kit, org, stick, archive, index, _db = world
    recs = device_folder(stick, kit.identity.fingerprint) / "recordings"
    rid = kit.state.recording_ids()[0]
    (recs / rid).rename(recs / f"{rid}.partial")
    res = ingest(archive, index, stick, key=org.signing)
    assert len(res.stored) == 2 and rid not in res.stored


def test_list_and_search(world):
    _kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rows = index.search(SearchFilter())
    assert len(rows) == 3 and rows[0]["created"] >= rows[-1]["created"]
    assert len(index.search(SearchFilter(device="kamer-1"))) == 3
    assert index.search(SearchFilter(device="kamer-2")) == []
    fp = rows[0]["device_fingerprint"]
    assert len(index.search(SearchFilter(device=fp[:12]))) == 3
    assert index.search(SearchFilter(device=("0" if fp[0] != "0" else "1") * 12)) == []
    for r in rows:  # prefix ranges around the 9/a and f boundaries
        for n in range(1, 6):
            found = index.search(SearchFilter(text=r["recording_id"][:n], limit=100))
            assert r["recording_id"] in [x["recording_id"] for x in found]
            assert all(x["recording_id"].startswith(r["recording_id"][:n]) for x in found)
    assert index.search(SearchFilter(text="not-hex")) == []
    assert len(index.search(SearchFilter(since=rows[1]["created"]))) == 2
    assert len(index.search(SearchFilter(until=rows[1]["created"]))) == 1
    assert len(index.search(SearchFilter(status="complete", min_duration=0.1))) == 3
    assert index.search(SearchFilter(min_duration=3600)) == []
    assert len(index.search(SearchFilter(text=rows[0]["recording_id"][:6]))) >= 1
    assert index.search(SearchFilter(min_copies=1)) == []


def test_later_copies_are_numbered_never_repeat_and_are_logged(world):
    kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[0]
    numbers = []
    for who in ("ouder", "professional"):
        result, _ = export_copy(archive, index, rid, org_key=org.hpke,
                                to=kit.root / "out" / who, signing_key=org.signing,
                                made_for=who)
        numbers.append(result.copy["copy_number"])
        report = verify_copy(result.folder, kit.identity.public)
        assert report.ok, report.findings
    assert numbers == [1, 2]
    assert index.get(rid)["copies"] == 2
    log, findings = log_view(archive)
    assert not findings
    assert [(e["type"], e["detail"]["copy_number"]) for e in log] == [("export", 1), ("export", 2)]
    assert [e["detail"]["made_for"] for e in log] == ["ouder", "professional"]
    assert len(index.search(SearchFilter(min_copies=2))) == 1
    # the copy carries the head of the organisation's log, which includes the copy itself
    head = json.loads((result.folder / "custody-head.json").read_text())
    assert head["log"] == "organisation" and head["seq"] == 1


def test_two_people_exporting_at_once_get_different_numbers(world):
    kit, org, stick, archive, index, db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[0]
    numbers, errors = [], []
    barrier = threading.Barrier(3)

    def run(i):
        idx = _index(archive, db)
        try:
            barrier.wait()
            result, _ = export_copy(archive, idx, rid, org_key=org.hpke,
                                    to=kit.root / f"out{i}", signing_key=org.signing)
            numbers.append(result.copy["copy_number"])
        except Exception as exc:
            errors.append(exc)
        finally:
            idx.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(numbers) == [1, 2, 3]
    assert audit(archive, index).ok


def test_decrypt_gives_back_the_audio(world):
    kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[0]
    out = kit.root / "a.wav"
    report, problems = to_wav(archive, index, rid, org_key=org.hpke, out=out)
    assert report.ok and not problems
    with wave.open(str(out)) as w:
        assert w.getnframes() == 4 * 800


def test_delete_crypto_shreds_logs_and_keeps_the_fact(world):
    kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[0]
    objects = json.loads(index.get(rid)["objects"])
    delete(archive, index, rid, reason="AVG-verzoek ouder, dossier 123", signing_key=org.signing)
    assert not any(archive.object_path(d).exists() for d in objects.values())
    row = index.get(rid)
    assert row["status"] == "deleted" and row["delete_reason"].startswith("AVG")
    with pytest.raises(UsageError, match="was deleted"):
        export_copy(archive, index, rid, org_key=org.hpke, to=kit.root / "x",
                    signing_key=org.signing)
    assert audit(archive, index).ok
    log, _ = log_view(archive)
    assert log[-1]["type"] == "archive_delete" and log[-1]["recording_id"] == rid


def test_verify_finds_a_changed_object_and_a_changed_log(world):
    kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[0]
    export_copy(archive, index, rid, org_key=org.hpke, to=kit.root / "out",
                signing_key=org.signing)
    assert audit(archive, index).ok
    digest = json.loads(index.get(rid)["objects"])["manifest.json"]
    obj = archive.object_path(digest)
    obj.write_bytes(obj.read_bytes().replace(b"complete", b"COMPLETE"))
    res = audit(archive, index)
    assert not res.ok and any("does not match its hash" in f for f in res.findings)
    assert any(rid in f for f in res.findings)
    # an insider edits the organisation's log: who the copy was for
    text = archive.log_path.read_text()
    assert '"made_for":null' in text
    archive.log_path.write_text(text.replace('"made_for":null', '"made_for":"iemand anders"'))
    res = audit(archive, index)
    assert any(f.startswith("organisation log:") for f in res.findings), res.findings


def test_a_log_entry_signed_by_an_unknown_key_is_a_finding(world):
    kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[0]
    export_copy(archive, index, rid, org_key=org.hpke, to=kit.root / "out",
                signing_key=Signer.org(OrgSigningKey.generate("Ander")))
    res = audit(archive, index)
    assert any(f.startswith("organisation log:") for f in res.findings), res.findings


def test_an_admin_key_cannot_sign_the_organisations_log(world):
    kit, org, stick, archive, index, _db = world
    from test_collect import _admin

    ingest(archive, index, stick, key=_admin(org, ["collect"]))  # receipts: admins may
    rid = kit.state.recording_ids()[0]
    with pytest.raises(UsageError, match="organisation signing key"):
        export_copy(archive, index, rid, org_key=org.hpke, to=kit.root / "out",
                    signing_key=_admin(org, ["collect"]))


def test_the_cli_end_to_end(world, capsys):
    kit, org, stick, archive, _index, db = world
    a = ["--archive", str(archive.root)] + (["--db", db] if db else [])
    assert main(["archive", "ingest", str(stick), *a, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["stored"]) == 3
    assert main(["archive", "list", *a, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["count"] == 3
    rid = listed["recordings"][0]["recording_id"]
    assert main(["archive", "search", *a, "--device", "kamer-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3
    assert main(["archive", "export", rid, *a, "--key", str(org.hpke_key),
                 "--to", str(kit.root / "copies"), "--for", "ouder"]) == 0
    assert "copy 1 written" in capsys.readouterr().out
    assert main(["archive", "show", rid, *a, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["copies_made"][0]["made_for"] == "ouder" and shown["log"]
    assert main(["archive", "decrypt", rid, *a, "--key", str(org.hpke_key),
                 "--out", str(kit.root / "x.wav")]) == 0
    assert main(["archive", "delete", rid, *a, "--reason", "AVG"]) == 2  # no --yes
    assert main(["archive", "delete", rid, *a, "--reason", "AVG", "--yes"]) == 0
    assert main(["archive", "verify", *a, "--json"]) == 0
    capsys.readouterr()
    # the archive's log is the organisation's log `akkoord custody --org-log` checks,
    # and a later copy's head is found in it
    assert main(["custody", "--org-log", str(archive.log_path), "--trust",
                 str(org.signing_pub)]) == 0
    copy = next((kit.root / "copies").iterdir())
    assert main(["custody", "--org-log", str(archive.log_path), "--trust",
                 str(org.signing_pub), "--check-head", str(copy / "custody-head.json")]) == 0
    capsys.readouterr()
    # the stick changed since: quarantined (one not deleted above: a deleted recording is
    # never stored again, not even in quarantine)
    _tamper(stick, kit, next(r for r in kit.state.recording_ids() if r != rid))
    assert main(["archive", "ingest", str(stick), *a]) == 1
    assert "QUARANTINED" in capsys.readouterr().out
    assert main(["archive", "list", "--archive", str(kit.root / "nothing")]) == 2


def test_verify_finds_a_changed_container_named_by_its_chain_head(world):
    kit, org, stick, archive, index, _db = world
    ingest(archive, index, stick, key=org.signing)
    rid = kit.state.recording_ids()[2]
    obj = archive.object_path(json.loads(index.get(rid)["objects"])["recording.akr"])
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 1
    obj.write_bytes(bytes(data))
    res = audit(archive, index)
    assert not res.ok and any(rid in f for f in res.findings)
    obj.write_bytes(bytes(data) + b"\0" * 7)  # trailing bytes after the last frame
    assert not audit(archive, index).ok


def test_a_recording_made_outside_the_certificate_validity_is_quarantined(world):
    kit, org, _stick, archive, index, _db = world
    from archivekit import T0, certify

    # The certificate travels in each recording's header (format /2): a device whose installed
    # certificate starts only in ten days makes recordings the archive must not accept.
    late = certify(org, kit.identity, "kamer-1", start=T0 + 10 * 86400)
    (kit.state.keys_dir / "device.cert.json").write_text(json.dumps(late))
    writer, _pcm = record(kit, segments=2, seed=9)
    rid = writer.recording_id.hex()
    stick = kit.root / "stick-2"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    res = ingest(archive, index, stick, key=org.signing)
    assert rid in res.quarantined and rid not in res.stored
    assert "outside the certificate's validity" in res.quarantined[rid]
    assert len(res.stored) == 3  # the honest recordings from before still go in


def test_prefix_ranges_cover_exactly_the_prefix():
    from akkoord.archive.index import _prefix_range

    assert _prefix_range("ab9") == ("ab9", "aba")
    assert _prefix_range("abf") == ("abf", "abg")
    assert _prefix_range("0") == ("0", "1")
    lo, hi = _prefix_range("a9")
    assert lo <= "a9ffff" < hi and not lo <= "aa0000" < hi


def test_an_interrupted_recording_is_collected_and_archived_as_interrupted(world):
    kit, org, _stick, archive, index, _db = world
    from akkoord.store.recovery import recover_all

    record(kit, segments=3, close=False, seed=77)  # power lost mid-recording
    recover_all(kit.state, kit.identity, kit.clock, kit.custody)
    stick = kit.root / "stick-after"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    res = ingest(archive, index, stick, key=org.signing)
    assert res.ok and len(res.stored) == 4
    assert len(index.search(SearchFilter(status="interrupted"))) == 1


def test_ingest_follows_no_link_on_the_stick(world):
    kit, org, stick, archive, index, _db = world
    rid = kit.state.recording_ids()[0]
    f = device_folder(stick, kit.identity.fingerprint) / "recordings" / rid / "manifest.sig"
    f.unlink()
    f.symlink_to("/etc/hostname")
    res = ingest(archive, index, stick, key=org.signing)
    assert rid not in res.stored and len(res.stored) == 2
    assert any(rid in p for p in res.problems) or rid in res.quarantined
