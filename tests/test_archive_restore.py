"""Restoring a backup of the archive never brings an erased recording back.

The ledger (archive/ledger.py) is a copy of the organisation's signed log kept outside the
archive and its backups. After a restore the archive refuses copies and deletions until
`archive restore` has re-applied every deletion the ledger holds; a ledger that does not
chain, or does not belong to this archive, is refused and changes nothing. Both index
backends (the backup of a PostgreSQL index is its rows, taken with the folder)."""

from __future__ import annotations

import json
import shutil

import pytest

from akkoord.archive.index import open_index
from akkoord.archive.ingest import ingest
from akkoord.archive.ledger import LedgerRefused, restore
from akkoord.archive.ops import audit, delete, export_copy, log_view
from akkoord.archive.store import Archive
from akkoord.cli import main
from akkoord.errors import UsageError
from archivekit import collect, make_archive, make_org, provision, put_token
from pgkit import pg_server  # noqa: F401 - the session fixture
from storekit import make_kit, record

TABLES = ("recordings", "copies", "quarantine")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request):
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("pg_server").new_database()


@pytest.fixture
def world(backend):
    kit = make_kit()
    org = make_org(kit.root / "org", kit.org)
    provision(kit, org)
    for i in range(2):
        record(kit, segments=4, seed=i)
        kit.clock.advance(3600)
    stick = kit.root / "stick"
    put_token(org, stick, [kit.identity.fingerprint])
    collect(kit, stick)
    ledger = kit.root / "elsewhere" / "ledger.log"
    archive, index = make_archive(kit.root / "archive", org, backend, ledger=ledger)
    res = ingest(archive, index, stick, key=org.signing)
    assert len(res.stored) == 2
    yield kit, org, stick, archive, index, backend, ledger
    index.close()
    kit.cleanup()


def _backup(archive, index, to):
    """The folder, and the index's rows (for SQLite they are in the folder too)."""
    shutil.copytree(archive.root, to)
    return {t: index.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}


def _put_back(archive, index, backup, rows):
    shutil.rmtree(archive.root)
    shutil.copytree(backup, archive.root)
    if archive.db:  # PostgreSQL: the rows as they were in the backup
        with index.transaction():
            for t in TABLES:
                index.execute(f"DELETE FROM {t}")
                for r in rows[t]:
                    marks = ", ".join("?" for _ in r)
                    index.execute(f"INSERT INTO {t} VALUES ({marks})", list(r))
    return Archive.open(archive.root), _reopen(archive, index)


def _reopen(archive, index):
    index.close()
    idx = open_index(archive.root, archive.db)
    idx.migrate()
    return idx


def _log(archive):
    return archive.log_path.read_bytes() if archive.log_path.exists() else b""


def _after_backup(world):
    """Backup, then an erasure and a later copy; then the backup is restored."""
    kit, org, _stick, archive, index, _db, _ledger = world
    a, b = kit.state.recording_ids()
    rows = _backup(archive, index, kit.root / "backup")
    keys_a = archive.object_path(json.loads(index.get(a)["objects"])["keys.json"])
    delete(archive, index, a, reason="AVG art. 17, kenmerk 2026-041", signing_key=org.signing)
    copy, _ = export_copy(archive, index, b, org_key=org.hpke, to=kit.root / "copy1",
                          signing_key=org.signing, made_for="ouder")
    assert not keys_a.exists()
    archive, index = _put_back(archive, index, kit.root / "backup", rows)
    assert keys_a.exists() and index.get(a)["status"] == "complete"  # the erasure is undone
    return archive, index, a, b, keys_a, copy.copy["copy_number"]


def test_a_restored_backup_is_refused_until_its_deletions_are_replayed(world):
    kit, org, stick, *_rest, ledger = world
    archive, index, a, b, keys_a, number = _after_backup(world)
    # verify says what happened and what to do
    res = audit(archive, index)
    assert not res.ok and res.to_json()["ledger_relation"] == "archive_behind"
    assert any("archive restore" in f and a in f for f in res.findings)
    # nothing may be added to a log that is behind: it would fork from the ledger
    log_before = _log(archive)
    with pytest.raises(UsageError, match="archive restore"):
        export_copy(archive, index, b, org_key=org.hpke, to=kit.root / "copy2",
                    signing_key=org.signing)
    with pytest.raises(UsageError, match="archive restore"):
        delete(archive, index, b, reason="x", signing_key=org.signing)
    assert _log(archive) == log_before

    out = restore(archive, index)
    assert out.deleted == [a] and out.copies == 1 and out.log_entries_added == 2
    assert not keys_a.exists() and index.get(a)["status"] == "deleted"
    assert index.get(a)["delete_reason"] == "AVG art. 17, kenmerk 2026-041"
    assert archive.log_path.read_bytes() == ledger.read_bytes()
    res = audit(archive, index)
    assert res.ok, res.findings
    # idempotent
    again = restore(archive, index)
    assert again.deleted == [] and again.already == [a] and again.log_entries_added == 0
    # copy numbers never repeat: the copy made after the backup is known again
    later, _ = export_copy(archive, index, b, org_key=org.hpke, to=kit.root / "copy3",
                           signing_key=org.signing)
    assert later.copy["copy_number"] == number + 1
    assert archive.log_path.read_bytes() == ledger.read_bytes()
    # and the device's stick, ingested again, does not bring it back either
    res = ingest(archive, index, stick, key=org.signing)
    assert res.stored == [] and any(a in p and "deleted" in p for p in res.problems)
    assert not keys_a.exists() and not any(
        a in p.name for p in archive.quarantine.iterdir())
    with open(res.receipts[0]) as f:
        receipt = json.load(f)
    assert [r["recording_id"] for r in receipt["statement"]["recordings"]] == [b]
    index.close()


def _tamper_reason(lines):
    i = next(i for i, ln in enumerate(lines) if b"archive_delete" in ln)
    lines[i] = lines[i].replace(b"kenmerk 2026-041", b"kenmerk 2026-042")
    return lines


def _drop_entry(lines):  # the erasure taken out; what follows no longer chains
    assert b"archive_delete" in lines[1]
    return lines[:1] + lines[2:]


def _swap(lines):
    return [lines[0], lines[2], lines[1], *lines[3:]]


@pytest.mark.parametrize("tamper", [_tamper_reason, _drop_entry, _swap])
def test_a_ledger_that_does_not_chain_is_refused_and_changes_nothing(world, tamper):
    *_rest, ledger = world
    archive, index, a, _b, keys_a, _n = _after_backup(world)
    ledger.write_bytes(b"".join(tamper(ledger.read_bytes().splitlines(keepends=True))))
    before = _log(archive)
    with pytest.raises(LedgerRefused):
        restore(archive, index)
    assert keys_a.exists() and index.get(a)["status"] == "complete"
    assert _log(archive) == before
    assert not audit(archive, index).ok
    index.close()


def test_a_ledger_of_another_archive_is_refused(world, tmp_path):
    kit, org, *_rest = world
    archive, index, _a, _b, keys_a, _n = _after_backup(world)
    other, oidx = make_archive(tmp_path / "other", org, None, ledger=tmp_path / "other.log")
    ingest(other, oidx, world[2], key=org.signing)
    delete(other, oidx, kit.state.recording_ids()[1], reason="x", signing_key=org.signing)
    oidx.close()
    # the other archive's ledger chains, but this archive's log is not a prefix of it
    with pytest.raises(LedgerRefused, match="not a prefix"):
        restore(archive, index, tmp_path / "other.log")
    assert keys_a.exists()
    index.close()


def test_the_cli_restores_and_refuses_with_exit_codes(world, capsys):
    *_rest, ledger = world
    archive, index, a, _b, keys_a, _n = _after_backup(world)
    index.close()
    good = ledger.read_bytes()
    ledger.write_bytes(b"".join(_tamper_reason(good.splitlines(keepends=True))))
    assert main(["archive", "restore", "--archive", str(archive.root)]) == 1
    assert "REFUSED" in capsys.readouterr().err and keys_a.exists()
    ledger.write_bytes(good)
    assert main(["archive", "restore", "--archive", str(archive.root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == [a]
    assert main(["archive", "verify", "--archive", str(archive.root)]) == 0
    assert not keys_a.exists()


def test_the_ledger_lives_outside_the_archive(tmp_path):
    kit = make_kit()
    try:
        org = make_org(kit.root / "org", kit.org)
        with pytest.raises(UsageError, match="outside the archive"):
            make_archive(tmp_path / "a", org, None, ledger=tmp_path / "a" / "ledger.log")
    finally:
        kit.cleanup()


def test_a_missing_ledger_is_a_finding_and_stops_new_entries(world):
    kit, org, _stick, archive, index, _db, ledger = world
    ledger.unlink()
    assert any("missing" in f for f in audit(archive, index).findings)
    with pytest.raises(UsageError, match="missing"):
        delete(archive, index, kit.state.recording_ids()[0], reason="x",
               signing_key=org.signing)
    assert [e["type"] for e in log_view(archive)[0]] == ["archive_created"]


def test_deleting_also_erases_a_copy_held_in_quarantine(world):
    """An earlier ingest of a damaged copy left the recording in quarantine, with its wrapped
    keys; erasing the recording erases that copy too (and a restore does it again)."""
    kit, org, stick, archive, index, _db, _ledger = world
    a = kit.state.recording_ids()[0]
    bad = kit.root / "bad"
    shutil.copytree(stick, bad)
    rec = next((bad / "akkoord-collect").glob(f"*/recordings/{a}"))
    data = bytearray((rec / "recording.akr").read_bytes())
    data[len(data) // 2] ^= 1
    (rec / "recording.akr").write_bytes(bytes(data))
    res = ingest(archive, index, bad, key=org.signing)
    # (ingest of an already-held id with other bytes: quarantined, reported)
    assert list(res.quarantined) == [a]
    (q,) = index.quarantined()
    assert (archive.root / q["path"] / "keys.json").exists()
    rows = _backup(archive, index, kit.root / "backup2")
    delete(archive, index, a, reason="AVG", signing_key=org.signing)
    assert not (archive.root / q["path"]).exists()
    archive, index = _put_back(archive, index, kit.root / "backup2", rows)
    assert (archive.root / q["path"] / "keys.json").exists()
    assert restore(archive, index).deleted == [a]
    assert not (archive.root / q["path"]).exists()
    assert audit(archive, index).ok
    index.close()


def test_a_crash_between_log_and_ledger_is_caught_up(world):
    """The log got an entry the ledger did not (a crash between the two appends): verify
    says so, and restore (or the next entry) brings the ledger up to the log."""
    kit, org, _stick, archive, index, _db, ledger = world
    a = kit.state.recording_ids()[0]
    delete(archive, index, a, reason="AVG", signing_key=org.signing)
    lines = ledger.read_bytes().splitlines(keepends=True)
    ledger.write_bytes(b"".join(lines[:-1]))
    res = audit(archive, index)
    assert res.to_json()["ledger_relation"] == "ledger_behind" and not res.ok
    out = restore(archive, index)
    assert out.already == [a] and ledger.read_bytes() == archive.log_path.read_bytes()
    assert audit(archive, index).ok


def test_init_with_a_ledger_needs_the_organisation_signing_key(tmp_path, capsys):
    kit = make_kit()
    try:
        org = make_org(kit.root / "org", kit.org)
        base = ["archive", "init", "--organisation", org.name, "--trust", str(org.signing_pub),
                "--recipient", str(org.hpke_pub), "--ledger", str(tmp_path / "l.log")]
        assert main([*base[:2], str(tmp_path / "a"), *base[2:]]) == 2
        assert "signing" in capsys.readouterr().err and not (tmp_path / "l.log").exists()
        assert main([*base[:2], str(tmp_path / "b"), *base[2:], "--signing-key",
                     str(org.signing_key_path)]) == 0
        b = Archive.open(tmp_path / "b")
        assert b.config["ledger"] == str((tmp_path / "l.log").resolve())
        assert (tmp_path / "l.log").read_bytes() == b.log_path.read_bytes()
        (entry,) = log_view(b)[0]
        assert entry["type"] == "archive_created"
        assert entry["detail"]["archive_id"] == b.config["archive_id"]
    finally:
        kit.cleanup()


def test_an_archive_made_without_a_ledger_can_start_one(tmp_path, capsys):
    """`archive ledger FILE` for an existing archive: the whole log so far goes into it; a
    backup from before that (whose archive.json knows no ledger) is restored with
    `archive restore --ledger FILE`, which also records the ledger in it."""
    kit = make_kit()
    try:
        org = make_org(kit.root / "org", kit.org)
        provision(kit, org)
        for i in range(2):
            record(kit, segments=4, seed=i)
        stick = kit.root / "stick"
        put_token(org, stick, [kit.identity.fingerprint])
        collect(kit, stick)
        archive, index = make_archive(kit.root / "archive", org)
        ingest(archive, index, stick, key=org.signing)
        a, b = kit.state.recording_ids()
        export_copy(archive, index, b, org_key=org.hpke, to=kit.root / "c1",
                    signing_key=org.signing)
        rows = _backup(archive, index, kit.root / "backup")
        index.close()
        ledger = tmp_path / "ledger.log"
        where = ["--archive", str(archive.root)]
        assert main(["archive", "ledger", str(ledger), *where]) == 0
        assert main(["archive", "ledger", str(tmp_path / "two.log"), *where]) == 2  # has one
        archive = Archive.open(archive.root)
        assert ledger.read_bytes() == archive.log_path.read_bytes()
        assert [e["type"] for e in log_view(archive)[0]] == ["export", "ledger_started"]
        index = _reopen(archive, open_index(archive.root, None))
        delete(archive, index, a, reason="AVG", signing_key=org.signing)
        archive, index = _put_back(archive, index, kit.root / "backup", rows)
        assert "ledger" not in archive.config and index.get(a)["status"] == "complete"
        out = restore(archive, index, ledger)
        assert out.deleted == [a] and out.log_entries_added == 2
        assert Archive.open(archive.root).config["ledger"] == str(ledger.resolve())
        assert audit(Archive.open(archive.root), index).ok
        index.close()
    finally:
        kit.cleanup()
