"""What grows with the device's age answers as before (issue 11, store/catalog.py,
store/custody_index.py, collect/receipts.py ReceiptMemo): the console's `status`, `list`,
`log` and `head`, the start-up's export reconciliation, the storage advice and retention,
on small, damaged and tampered states. Each oracle below is the code these replaced,
verbatim; no figure is timed here (store/lifetime_bench.py measures them)."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime

import pytest

from akkoord.collect.package import pending_recordings
from akkoord.collect.receipts import (
    ARCHIVED_FILE,
    ReceiptMemo,
    archived_ids,
    is_receipted,
    pending_count,
    receipted_ids,
    retention_due,
    trusted_signing_keys,
)
from akkoord.collect.statements import Signer, make_receipt
from akkoord.errors import AkkoordError
from akkoord.store import catalog as catalog_mod
from akkoord.store import custody_index as index_mod
from akkoord.store.catalog import Catalog, shared_catalog
from akkoord.store.custody import CustodyLog, entry_hash
from akkoord.store.custody_index import CustodyIndex
from akkoord.store.exports import EXPORTS_FILE, append_export, read_exports
from akkoord.store.manifest import MANIFEST_FILE, read_manifest
from akkoord.store.reconcile import reconcile_exports
from consolekit import make_device, make_org, make_recording, trust

DAY = 86400.0


@pytest.fixture
def cache_at_once(monkeypatch):
    """Cache what was just written (no racy-clean wait): the paths under test are the
    cached ones. Changes below sleep past a clock tick, so ctime moves."""
    monkeypatch.setattr(catalog_mod, "RACY_NS", 0)


def _tick():
    time.sleep(0.03)  # file times come from a coarse clock: a change lands in a later tick


def _in_place(path, old: bytes, new: bytes) -> None:
    """An insider's edit: same size, mtime set back, the inode kept."""
    assert len(old) == len(new)
    st = os.stat(path)
    data = path.read_bytes()
    assert old in data
    _tick()
    with open(path, "r+b") as f:
        f.write(data.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size, st.st_mtime_ns, st.st_ino)


# -- the code these replaced -----------------------------------------------------------------

def _old_recordings(dev):
    rows = []
    for rid in dev.state.recording_ids():
        directory = dev.state.recording_dir(rid)
        try:
            signed = read_manifest(directory)
        except AkkoordError:
            signed = None
        doc = signed.doc if signed else {}
        rows.append({
            "recording_id": rid,
            "start": (doc.get("created") or {}).get("utc"),
            "duration_seconds": doc.get("duration_seconds"),
            "ended": (doc.get("ended") or {}).get("utc"),
            "status": doc.get("status", "open"),
            "simulated": bool(doc.get("simulated", False)),
            "_dir": directory,
        })
    rows.sort(key=lambda r: r["start"] or "")
    return rows


def _old_list(dev):
    d = dev.device
    collected = {e["recording_id"] for e in dev.custody.entries()
                 if e.get("type") == "archive_collected"
                 and isinstance(e.get("recording_id"), str)}
    receipted = receipted_ids(dev.state, d.fingerprint, d._wall())
    days = d.retention_days()
    now = dev.clock.wall_epoch()
    out = []
    for row in _old_recordings(dev):
        directory = row.pop("_dir")
        try:
            copies = len(read_exports(directory))
        except AkkoordError:
            copies = None
        left = None
        since = row.pop("ended") or row["start"]
        if days is not None and since:
            t0 = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
            left = round((t0 + days * DAY - now) / DAY, 1)
        rid = row["recording_id"]
        out.append({**row, "copies": copies, "collected": rid in collected,
                    "receipted": rid in receipted, "retention_left_days": left})
    return {"recordings": out, "retention_days": days}


def _old_last(dev):
    rows = _old_recordings(dev)
    if not rows:
        return None
    return {k: v for k, v in rows[-1].items() if not k.startswith("_") and k != "ended"}


def _old_is_receipted(state, rid, trusted, fp, now):
    return is_receipted(state, rid, trusted, fp, now)  # no memo, head read here: as before


def _old_log(log, since, limit):
    entries = [e for e in log.entries() if since is None or int(e.get("seq", -1)) >= since]
    return entries[:limit] if since is not None else entries[-limit:]


def _old_at(log, seq):
    return next((e for e in log.entries() if e.get("seq") == seq), None)


# -- a state with every kind of recording ----------------------------------------------------

@pytest.fixture
def dev(tmp_path):
    d = make_device(tmp_path, clock_start=1_800_000_000.0)
    d.org = make_org(tmp_path)
    trust(d.state, d.org)
    d.device.retention_set(30, {"name": "t"})
    return d


def _head(dev, rid):
    return read_manifest(dev.state.recording_dir(rid)).doc["chain_head"]


def _receipt_blob(dev, items):
    env = make_receipt(Signer.org(dev.org.key), dev.state.identity().fingerprint, items,
                       token_serial=None, now=dev.clock.wall_epoch())
    return json.dumps(env, indent=1).encode() + b"\n"


def _mixed(dev) -> dict[str, str]:
    """Receipted (one receipt for two), unreceipted, a receipt copied from another
    recording, a receipt item with one key too many, an open recording, a damaged manifest
    with an export record, a damaged export record; copies and a collected entry."""
    ids = {name: make_recording(dev) for name in
           ("a", "b", "plain", "copied", "extra", "bad_manifest", "bad_exports")}
    identity = dev.state.identity()
    for name, n in (("a", 2), ("plain", 1), ("bad_exports", 1), ("bad_manifest", 1)):
        for k in range(1, n + 1):
            append_export(dev.state.recording_dir(ids[name]), identity, dev.clock,
                          copy_number=k, stick_id_sha256=None)
    pair = _receipt_blob(dev, [{"recording_id": ids[x], "chain_head": _head(dev, ids[x])}
                               for x in ("a", "b")])
    for x in ("a", "b"):
        (dev.state.recording_dir(ids[x]) / ARCHIVED_FILE).write_bytes(pair)
    shutil.copyfile(dev.state.recording_dir(ids["a"]) / ARCHIVED_FILE,
                    dev.state.recording_dir(ids["copied"]) / ARCHIVED_FILE)
    (dev.state.recording_dir(ids["extra"]) / ARCHIVED_FILE).write_bytes(_receipt_blob(
        dev, [{"recording_id": ids["extra"], "chain_head": _head(dev, ids["extra"]),
               "note": "x"}]))
    dev.custody.append("archive_collected", ids["a"], chain_head=_head(dev, ids["a"]))
    (dev.state.recording_dir(ids["bad_manifest"]) / MANIFEST_FILE).write_bytes(b"{not json")
    with open(dev.state.recording_dir(ids["bad_exports"]) / EXPORTS_FILE, "ab") as f:
        f.write(b"\x00garbage")
    from akkoord.store.keys import OrgPrivateKey
    from akkoord.store.writer import AudioParams, RecordingWriter
    w = RecordingWriter.create(dev.state, identity,
                               [OrgPrivateKey.load(dev.org_key_file).public],
                               AudioParams(sample_rate=16000, segment_samples=800), dev.clock,
                               custody=dev.custody, sync=False)
    w.add_audio(bytes(1600))  # left open: no manifest
    ids["open"] = w.id
    return ids


def _same_answers(dev):
    assert dev.device.list() == _old_list(dev)
    status = dev.device.status()
    assert status["last_recording"] == _old_last(dev)
    assert status["recordings"] == len(dev.state.recording_ids())


def test_list_and_status_answer_as_before_on_a_mixed_and_damaged_state(dev, cache_at_once):
    ids = _mixed(dev)
    _same_answers(dev)
    listed = {r["recording_id"]: r for r in dev.device.list()["recordings"]}
    assert {n for n, rid in ids.items() if listed[rid]["receipted"]} == {"a", "b"}
    assert listed[ids["bad_manifest"]]["status"] == "open"
    assert listed[ids["bad_manifest"]]["copies"] is None
    assert listed[ids["a"]]["copies"] == 2 and listed[ids["a"]]["collected"]
    assert listed[ids["open"]]["status"] == "open"
    assert len(shared_catalog()) >= len(ids) - 1  # answered from the catalog
    _same_answers(dev)  # and again, from what it holds


def test_an_in_place_edit_that_keeps_size_and_mtime_is_seen_at_once(dev, cache_at_once):
    ids = _mixed(dev)
    _same_answers(dev)
    directory = dev.state.recording_dir(ids["plain"])
    _in_place(directory / MANIFEST_FILE, b'"status":"complete"', b'"status":"tampered"')
    _same_answers(dev)
    listed = {r["recording_id"]: r for r in dev.device.list()["recordings"]}
    assert listed[ids["plain"]]["status"] == "tampered"
    # A receipt's chain head changed in the manifest: no longer receipted, at once.
    a = dev.state.recording_dir(ids["a"])
    head = _head(dev, ids["a"]).encode()
    _in_place(a / MANIFEST_FILE, head, head[::-1])
    _same_answers(dev)
    listed = {r["recording_id"]: r for r in dev.device.list()["recordings"]}
    assert not listed[ids["a"]]["receipted"]
    # The export record cut back by one copy, its size then restored with zeros.
    e = a / EXPORTS_FILE
    data = e.read_bytes()
    one = read_exports(a)[1].offset
    _tick()
    e.write_bytes(data[:one] + bytes(len(data) - one))
    _same_answers(dev)


def test_a_file_written_within_the_racy_window_is_never_kept(dev):
    rid = make_recording(dev)
    cat = Catalog()
    directory = dev.state.recording_dir(rid)
    cat.summary(directory)
    assert len(cat) == 0  # just written: its ctime could be shared by a write still to come
    os.utime(directory / MANIFEST_FILE, ns=(0, 0))  # mtime an insider could set: not enough
    cat.summary(directory)
    assert len(cat) == 0


def test_deleted_recordings_are_forgotten(dev, cache_at_once):
    ids = _mixed(dev)
    cat = Catalog()
    assert len(cat.summaries(dev.state)) == len(ids)
    shutil.rmtree(dev.state.recording_dir(ids["plain"]))
    assert len(cat.summaries(dev.state)) == len(ids) - 1 == len(cat)


# -- receipts --------------------------------------------------------------------------------

def test_the_memo_changes_no_receipt_answer(dev, cache_at_once):
    ids = _mixed(dev)
    # A forged receipt next to a genuine one with the same content otherwise.
    forged = json.loads(dev.state.recording_dir(ids["a"]).joinpath(ARCHIVED_FILE).read_bytes())
    forged["statement"]["issued"] = "2020-01-01T00:00:00Z"
    (dev.state.recording_dir(ids["plain"]) / ARCHIVED_FILE).write_text(json.dumps(forged))
    (dev.state.recording_dir(ids["open"]) / ARCHIVED_FILE).write_bytes(b"\xff not json")
    trusted = trusted_signing_keys(dev.state)
    fp = dev.state.identity().fingerprint
    now = dev.clock.wall_epoch()
    memo = ReceiptMemo(trusted, fp, now)
    old = {rid: _old_is_receipted(dev.state, rid, trusted, fp, now)
           for rid in dev.state.recording_ids()}
    for rid in dev.state.recording_ids():
        assert is_receipted(dev.state, rid, trusted, fp, now, memo=memo) == old[rid]
    assert archived_ids(dev.state, trusted, fp, now) == {r for r, ok in old.items() if ok}
    assert {r for r, ok in old.items() if ok} == {ids["a"], ids["b"]}
    assert pending_count(dev.state, trusted, fp, now) == len(pending_recordings(
        dev.state, {r for r, ok in old.items() if ok}))
    # Retention as before: the receipted, old enough; never the rest.
    later = now + 400 * DAY
    old_due = []
    for rid in sorted(r for r in dev.state.recording_ids()
                      if _old_is_receipted(dev.state, r, trusted, fp, later)):
        doc = read_manifest(dev.state.recording_dir(rid), segments=False).doc
        t = datetime.fromisoformat((doc.get("ended") or doc["created"])["utc"]
                                   .replace("Z", "+00:00")).timestamp()
        if later - t > 30 * DAY:
            old_due.append(rid)
    assert retention_due(dev.state, trusted, fp, later, 30) == old_due == sorted(
        [ids["a"], ids["b"]])
    assert retention_due(dev.state, trusted, fp, now, 30) == []


# -- the custody log -------------------------------------------------------------------------

def _answers(index, log):
    n = len(list(log.entries()))
    for since in (None, 0, 1, n // 2, n - 1, n, n + 5):
        for limit in (1, 3, 100):
            got = (index.tail(limit, log.entries) if since is None
                   else index.since(since, limit, log.entries))
            assert got == _old_log(log, since, limit), (since, limit)
    for seq in (0, 1, n // 2, n - 1, n, 10**6):
        assert index.at(seq, log.entries) == _old_at(log, seq)
    old_collected = {e["recording_id"] for e in log.entries()
                     if e.get("type") == "archive_collected"
                     and isinstance(e.get("recording_id"), str)}
    assert index.collected(log.entries) == old_collected


def _log(tmp_path, n=12):
    from akkoord.clock import FixedClock
    from akkoord.store.keys import DeviceIdentity
    log = CustodyLog(tmp_path / "custody.log", DeviceIdentity.generate(), FixedClock())
    for i in range(n):
        log.append("archive_collected" if i % 3 == 0 else "recording_started",
                   f"{i:032x}", i=i)
    return log


def test_the_log_index_answers_as_a_full_parse(tmp_path, cache_at_once):
    log = _log(tmp_path)
    index = CustodyIndex(log.path)
    _answers(index, log)
    log.append("export", "f" * 32, copy_number=1)  # appended since: parsed, not re-read
    _answers(index, log)
    _answers(index, log)


def test_the_log_index_sees_an_insiders_edit_of_old_lines(tmp_path, cache_at_once):
    log = _log(tmp_path)
    index = CustodyIndex(log.path)
    _answers(index, log)
    _in_place(log.path, b'{"i":1}', b'{"i":7}')
    _answers(index, log)
    _in_place(log.path, b'"type":"archive_collected"', b'"type":"archive_collectex"')
    _answers(index, log)  # what the index derived from the old bytes is derived again
    # Changed and appended to at once: the prefix is hashed again, not trusted.
    data = log.path.read_bytes()
    _tick()
    log.path.write_bytes(data.replace(b'{"i":2}', b'{"i":8}', 1))
    log.append("export", "f" * 32, copy_number=1)
    _answers(index, log)


def test_the_log_index_on_damaged_logs(tmp_path, cache_at_once):
    log = _log(tmp_path)
    index = CustodyIndex(log.path)
    _answers(index, log)
    lines = log.path.read_bytes().split(b"\n")
    _tick()
    log.path.write_bytes(b"\n".join([*lines[:5], b"{broken", *lines[5:]]))  # mid-log damage
    _answers(index, log)
    _tick()
    with open(log.path, "ab") as f:
        f.write(b'{"entry": {"seq"')  # a torn tail
    _answers(index, log)
    # A line whose seq is not its position: answered the plain way.
    _tick()
    odd = [json.loads(x) for x in lines if x]
    odd[3]["entry"]["seq"] = 2.5
    log.path.write_bytes(b"".join(json.dumps(o).encode() + b"\n" for o in odd))
    _answers(index, log)
    odd[3]["entry"]["seq"] = "x"
    _tick()
    log.path.write_bytes(b"".join(json.dumps(o).encode() + b"\n" for o in odd))
    with pytest.raises(ValueError):
        _old_log(log, 0, 5)
    with pytest.raises(ValueError):
        index.since(0, 5, log.entries)
    # Another file in its place; then none.
    (tmp_path / "b").mkdir()
    other = _log(tmp_path / "b", 4)
    _tick()
    os.replace(other.path, log.path)
    _answers(index, log)
    log.path.unlink()
    _answers(index, log)


def test_console_log_and_head_answer_as_before(dev, cache_at_once):
    _mixed(dev)
    for since, limit in ((None, 100), (None, 2), (0, 3), (5, 100)):
        assert dev.device.log(since, limit)["entries"] == _old_log(dev.custody, since, limit)
    first = next(e for e in dev.custody.entries() if e["type"] == "recording_started")
    held = {"seq": first["seq"], "hash": entry_hash(first).hex()}
    assert dev.device.head(held)["check"]["contains"]
    _in_place(dev.custody.path, b'"type":"recording_started"', b'"type":"recording_startex"')
    assert _old_at(dev.custody, first["seq"])["type"] == "recording_startex"
    assert not dev.device.head(held)["check"]["contains"]  # the edit is seen, as before
    for since, limit in ((None, 100), (0, 3)):
        assert dev.device.log(since, limit)["entries"] == _old_log(dev.custody, since, limit)
    assert "recording_startex" in [e["type"] for e in dev.device.log(None, 100)["entries"]]


# -- the start-up's reconciliation -----------------------------------------------------------

def test_reconciliation_at_start_answers_as_before(tmp_path, cache_at_once):
    from storekit import make_kit, record

    kit = make_kit(tmp_path / "k")
    done, _ = record(kit)
    broken, _ = record(kit, seed=1)
    gone, _ = record(kit, seed=2)
    for w in (done, broken, gone):
        append_export(w.path, kit.identity, kit.clock, copy_number=1, stick_id_sha256=None)
        kit.custody.append("export", w.id, copy_number=1, stick_id_sha256=None)
        kit.custody.append("export", w.id, copy_number=2, stick_id_sha256=None)  # cut short
    shared_catalog().summary(broken.path)  # read once while whole
    _tick()
    (broken.path / MANIFEST_FILE).write_bytes(b"[]")  # then damaged: outcome unknown
    shutil.rmtree(gone.path)
    got = {(x["recording_id"], x["copy_number"]): x["outcome"]
           for x in reconcile_exports(kit.state, kit.custody)}
    assert got == {(done.id, 2): "not_completed", (broken.id, 1): "unknown",
                   (broken.id, 2): "unknown", (gone.id, 1): "unknown",
                   (gone.id, 2): "unknown"}
    assert reconcile_exports(kit.state, kit.custody) == []


# -- the bench -------------------------------------------------------------------------------

def test_lifetime_bench_runs_small(tmp_path):
    from akkoord.store.lifetime_bench import lifetime_figures

    out = lifetime_figures(tmp_path, quick=True)
    keys = ("console_status_large_vs_small", "console_list_per_recording_large_vs_small",
            "console_list_vs_reading_manifests", "console_log_large_vs_small",
            "console_log_after_append_vs_parsing_log", "storage_advice_large_vs_small",
            "storage_advice_vs_before", "start_reconcile_vs_before")
    for k in keys:
        assert isinstance(out[k], float) and out[k] > 0, k
    assert out["lifetime_large"]["recordings"] > out["lifetime_small"]["recordings"]
    assert out["lifetime_large"]["custody_entries"] > out["lifetime_small"]["custody_entries"]


def test_export_records_read_with_the_manifest_in_hand_are_the_same(dev):
    ids = _mixed(dev)
    for rid in ids.values():
        d = dev.state.recording_dir(rid)
        try:
            signed = read_manifest(d, segments=False)
        except AkkoordError:
            continue
        try:
            plain = read_exports(d)
        except AkkoordError as exc:
            with pytest.raises(AkkoordError, match=str(exc).split(":")[-1].strip()):
                read_exports(d, manifest=signed)
            continue
        assert read_exports(d, manifest=signed) == plain
    # No manifest at all, but an export record: refused in the same words.
    d = dev.state.recording_dir(ids["open"])
    (d / EXPORTS_FILE).write_bytes(b"x")
    with pytest.raises(AkkoordError, match="no manifest"):
        read_exports(d)
    with pytest.raises(AkkoordError, match="no manifest"):
        read_exports(d, manifest=None)


def test_the_bench_builds_a_state_the_device_could_have_written(tmp_path):
    from akkoord.store.custody import verify_custody_log
    from akkoord.store.lifetime_bench import build_state

    aged = build_state(tmp_path, kept=6, deleted=5, segments=5)
    assert sorted(aged.kept) == aged.state.recording_ids()
    assert verify_custody_log(aged.state.custody_path, aged.identity.public) == (
        aged.entries, [])
    for rid in aged.kept:
        records = read_exports(aged.state.recording_dir(rid), aged.identity.public)
        assert [(r.problem, r.meta["copy_number"]) for r in records] == [(None, 1), (None, 2)]
    trusted = trusted_signing_keys(aged.state)
    fp = aged.identity.fingerprint
    assert sorted(archived_ids(aged.state, trusted, fp, aged.now)) == sorted(aged.kept[:3])
    assert reconcile_exports(aged.state, CustodyLog(aged.state.custody_path, aged.identity,
                                                    None)) == []  # a steady state


# -- the caches really cache (pins from mutation testing: a cache that never hits answers
# correctly too, so only counting what is read tells) ----------------------------------------

def test_a_warm_catalog_reads_nothing_and_an_export_alone_is_seen(dev, cache_at_once,
                                                                 monkeypatch):
    rid = make_recording(dev)
    directory = dev.state.recording_dir(rid)
    identity = dev.state.identity()
    for k in (1, 2):
        append_export(directory, identity, dev.clock, copy_number=k, stick_id_sha256=None)
    reads = []
    real = catalog_mod._read
    monkeypatch.setattr(catalog_mod, "_read", lambda d: reads.append(d) or real(d))
    cat = Catalog()
    assert cat.summary(directory).copy_numbers == (1, 2)
    assert cat.summary(str(directory)).copy_numbers == (1, 2)
    assert len(reads) == 1 and len(cat) == 1  # the second answer came from the cache
    # Only the export record changes (cut back to its first copy): the manifest's stamp is
    # the same, so the record's own stamp must be in the key.
    one = read_exports(directory)[1].offset
    _tick()
    with open(directory / EXPORTS_FILE, "r+b") as f:
        f.truncate(one)
    assert cat.summary(directory).copy_numbers == (1,)
    assert len(reads) == 2
    assert cat.summary(directory).copy_numbers == (1,) and len(reads) == 2


def _parsed_sizes(monkeypatch) -> list[int]:
    """How many bytes each parse of the log was given."""
    sizes: list[int] = []
    real = index_mod._parse_lines
    monkeypatch.setattr(index_mod, "_parse_lines",
                        lambda data: sizes.append(len(data)) or real(data))
    return sizes


def test_the_log_index_parses_only_what_was_appended_and_what_it_answers(
        tmp_path, cache_at_once, monkeypatch):
    log = _log(tmp_path, n=30)
    index = CustodyIndex(log.path)
    sizes = _parsed_sizes(monkeypatch)
    assert index.tail(1, log.entries) == _old_log(log, None, 1)
    whole = log.path.stat().st_size
    assert sizes[0] == whole  # the first answer parses the log once
    sizes.clear()
    _tick()
    log.append("export", "f" * 32, copy_number=1)
    new = log.path.stat().st_size - whole
    assert index.tail(1, log.entries) == _old_log(log, None, 1)
    assert sizes == [new, new]  # the appended line indexed, then read for the answer
    sizes.clear()
    _tick()
    os.utime(log.path)  # a new ctime, the same bytes: hashed again, nothing parsed anew
    assert index.since(3, 2, log.entries) == _old_log(log, 3, 2)
    assert sum(sizes) < whole // 10 and len(sizes) == 2  # the empty tail, the two lines
    assert sizes[0] == 0


def test_an_edit_of_the_logs_first_byte_is_parsed_again(tmp_path, cache_at_once,
                                                       monkeypatch):
    log = _log(tmp_path, n=8)
    index = CustodyIndex(log.path)
    assert index.tail(100, log.entries) == _old_log(log, None, 100)
    sizes = _parsed_sizes(monkeypatch)
    st = os.stat(log.path)
    _tick()
    with open(log.path, "r+b") as f:
        f.write(b" ")  # `{` -> ` `: the first entry no longer parses
    os.utime(log.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert index.tail(100, log.entries) == _old_log(log, None, 100) == []
    assert sizes[0] == st.st_size  # the whole log again, from its first byte


def test_a_log_rewritten_under_every_try_is_answered_by_the_plain_parse(
        tmp_path, cache_at_once, monkeypatch):
    log = _log(tmp_path)
    index = CustodyIndex(log.path)

    def changed(self):
        raise index_mod._Changed

    monkeypatch.setattr(CustodyIndex, "_refresh", changed)
    _answers(index, log)  # every answer through its fallback, as the old code gave it


def test_a_summary_keeps_the_refusals_words(dev, cache_at_once):
    from akkoord.store.catalog import _read

    ids = _mixed(dev)
    cat = Catalog()
    bad = dev.state.recording_dir(ids["bad_manifest"])
    with pytest.raises(AkkoordError) as manifest_refused:
        read_manifest(bad)
    s = cat.summary(bad)
    assert (s.doc, s.manifest_error) == (None, str(manifest_refused.value))
    with pytest.raises(AkkoordError) as exports_refused:
        read_exports(bad)  # it reads the manifest too
    assert (s.copy_numbers, s.exports_error) == (None, str(exports_refused.value))
    broken = dev.state.recording_dir(ids["plain"])
    (broken / EXPORTS_FILE).unlink()
    (broken / EXPORTS_FILE).mkdir()  # a record no reader takes
    with pytest.raises(AkkoordError) as exports_refused:
        read_exports(broken)
    s = cat.summary(broken)
    assert s.manifest_error is None and s.doc["status"] == "complete"
    assert (s.copy_numbers, s.exports_error) == (None, str(exports_refused.value))
    assert _read(broken) == s


def test_reading_a_range_in_chunks_gives_its_bytes_exactly(tmp_path):
    from akkoord.store.custody_index import _pread_all

    path = tmp_path / "sparse"
    size = (2 << 24) + 5  # three 16 MiB chunks, the last of 5 bytes; holes read as zeros
    with open(path, "wb") as f:
        for at, mark in ((0, b"A"), ((1 << 24) - 1, b"BC"), ((2 << 24) + 3, b"DE")):
            f.seek(at)
            f.write(mark)
    assert path.stat().st_size == size
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = _pread_all(fd, size, 0)
        assert len(whole) == size and whole == b"".join(
            os.pread(fd, 1 << 20, at) for at in range(0, size, 1 << 20))
        assert _pread_all(fd, 7, (1 << 24) - 3) == b"\0\0BC\0\0\0"
        assert _pread_all(fd, 1, size - 1) == b"E"
        assert _pread_all(fd, 100, size - 2) == b"DE"  # past the end: what is there
        assert _pread_all(fd, 0, 0) == b""
    finally:
        os.close(fd)


def test_a_log_with_whole_entries_removed_from_its_middle(tmp_path, cache_at_once):
    # Every line parses, but from the removed one on "seq" is no longer the position: `at`
    # and `since` must not take the position for the number.
    log = _log(tmp_path)
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(b"".join(lines[:5] + lines[7:]))
    _answers(CustodyIndex(log.path), log)
    lines = log.path.read_bytes().splitlines(keepends=True)
    log.path.write_bytes(lines[0].replace(b'"seq":0', b'"seq":"0"') + b"".join(lines[1:]))
    _answers(CustodyIndex(log.path), log)  # a "seq" that is not an int, at the start
    data = log.path.read_bytes()
    assert data.count(b'"seq":3,') == 1
    log.path.write_bytes(data.replace(b'"seq":3,', b""))
    _answers(CustodyIndex(log.path), log)  # an entry with no "seq" at all
