"""The state check and the head check in words (FORMAT.md §11.3): each finding says which
recording, which log entry and what is wrong, as the report and its JSON carry it."""

from __future__ import annotations

import base64
import json
import shutil

import pytest

from akkoord.errors import FormatError
from akkoord.store.custody import CustodyLog
from akkoord.store.layout import EXPORTS_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import MANIFEST_FILE
from akkoord.store.statecheck import (
    HeadCheck,
    StateFinding,
    StateReport,
    check_head,
    check_state,
    parse_head,
)
from storekit import make_kit, record
from test_trust_custody import _export


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _lines(kit):
    return kit.state.custody_path.read_bytes().splitlines(keepends=True)


def _findings(kit):
    rep = check_state(kit.state, kit.identity.public)
    return [(f.code, f.message, f.recording_id) for f in rep.findings]


def test_the_report_and_its_json(kit):
    w, _ = record(kit)
    rep = check_state(kit.state, kit.identity.public)
    assert rep.ok and rep.recordings == 1 and rep.entries == len(_lines(kit))
    assert rep.to_json() == {"entries": rep.entries, "ok": True, "findings": [], "codes": [],
                             "recordings": 1, "notes": []}
    bad = StateReport()
    bad.add("x", "what", "r")
    assert not bad.ok and str(bad.findings[0]) == "what"
    assert bad.to_json()["codes"] == [{"code": "x", "message": "what", "recording_id": "r"}]
    assert StateFinding("c", "m").to_json() == {"code": "c", "message": "m",
                                                "recording_id": None}
    del w


def test_a_deleted_folder_is_named_with_its_start_entry(kit):
    w, _ = record(kit)
    start = next(e for e in CustodyLog(kit.state.custody_path, kit.identity, kit.clock)
                 .entries() if e["type"] == "recording_started")
    shutil.rmtree(w.path)
    assert _findings(kit) == [(
        "folder_deleted",
        f"recording {w.id}: the log shows it started (entry {start['seq']}) but its folder "
        "is gone and the log does not record its deletion", w.id)]


def test_a_missing_log_with_recordings_is_a_finding(kit):
    w, _ = record(kit)
    kit.state.custody_path.unlink()
    found = _findings(kit)
    assert found[0] == ("custody_log",
                        f"{kit.state.custody_path}: missing, but recordings exist", None)
    assert ("unknown_recording",
            f"recording {w.id}: the custody log never recorded it starting "
            "(planted, or the log lost its tail)", w.id) in found


def test_a_changed_manifest_and_a_missing_one_name_the_close_entry(kit):
    w1, _ = record(kit)
    w2, _ = record(kit, seed=2)
    closes = {e["recording_id"]: e["seq"] for e in
              CustodyLog(kit.state.custody_path, kit.identity, kit.clock).entries()
              if e["type"] == "recording_closed"}
    doc = json.loads((w1.path / MANIFEST_FILE).read_bytes())
    doc["chain_head"] = "00" * 32
    (w1.path / MANIFEST_FILE).write_text(json.dumps(doc))
    (w2.path / MANIFEST_FILE).unlink()
    found = _findings(kit)
    assert ("manifest_changed",
            f"recording {w1.id}: the manifest's chain head differs from the one the log "
            f"recorded at close (entry {closes[w1.id]})", w1.id) in found
    assert ("manifest_missing",
            f"recording {w2.id}: the log recorded its close (entry {closes[w2.id]}) "
            "but the signed manifest is gone", w2.id) in found


def test_a_dropped_close_entry_is_named(kit):
    w, _ = record(kit)
    kit.state.custody_path.write_bytes(b"".join(_lines(kit)[:-1]))
    assert _findings(kit) == [(
        "close_not_logged",
        f"recording {w.id}: closed and signed, but the log has no close entry "
        "(its tail was dropped?)", w.id)]


@pytest.mark.parametrize("how", ["missing", "changed"])
def test_changed_or_missing_keys_are_named(kit, how):
    w, _ = record(kit)
    keys = w.path / WRAPPED_KEYS_FILE
    if how == "missing":
        keys.unlink()
    else:
        keys.write_bytes(keys.read_bytes() + b" ")
    assert _findings(kit) == [(
        "keys_changed",
        f"recording {w.id}: content keys changed or missing: can no longer be decrypted "
        f"(keys.json is {how})", w.id)]


def test_an_unreadable_keys_file_counts_as_changed(kit):
    w, _ = record(kit)
    keys = w.path / WRAPPED_KEYS_FILE
    keys.unlink()
    keys.mkdir()
    (code, message, _), = _findings(kit)
    assert code == "keys_changed" and message.endswith("(keys.json is changed)")


def test_export_records_shortened_or_deleted_are_named(kit, tmp_path):
    w, _ = record(kit)
    _export(kit, w, tmp_path, n=2)
    data = (w.path / EXPORTS_FILE).read_bytes()
    from storekit import frames_of

    first, second = frames_of(w.path / EXPORTS_FILE)
    (w.path / EXPORTS_FILE).write_bytes(data[: second.offset])
    assert _findings(kit) == [(
        "exports_shortened",
        f"recording {w.id}: the log recorded copies [2] that {EXPORTS_FILE} does not hold "
        "(shortened, or a copy interrupted by a power loss)", w.id)]
    (w.path / EXPORTS_FILE).unlink()
    assert _findings(kit) == [(
        "exports_deleted",
        f"recording {w.id}: the log recorded 2 copies, but {EXPORTS_FILE} is gone", w.id)]
    del first


def test_a_damaged_export_record_is_named_at_its_frame(kit, tmp_path):
    w, _ = record(kit)
    _export(kit, w, tmp_path)
    with open(w.path / EXPORTS_FILE, "ab") as f:
        f.write(b"junk")
    (code, message, rid), = _findings(kit)
    first = json.loads((w.path / MANIFEST_FILE).read_bytes())["frame_count"]
    assert (code, rid) == ("exports_damaged", w.id)
    assert message.startswith(f"recording {w.id}: export record {first + 1} damaged: ")


def test_a_dropped_tail_is_named_by_the_header_that_points_past_it(kit):
    record(kit)
    cut = len(_lines(kit))
    kit.custody.append("device_started")
    w2, _ = record(kit, seed=2)
    kept = _lines(kit)[:cut]
    kit.state.custody_path.write_bytes(b"".join(kept))
    found = _findings(kit)
    assert ("log_tail_dropped",
            f"recording {w2.id}'s header names custody entry {cut}, but the log ends at "
            f"entry {cut - 1}: its tail was dropped", w2.id) in found


def test_a_rewritten_log_is_named_by_the_header_that_holds_the_old_hash(kit):
    record(kit)
    w2, _ = record(kit, seed=2)
    lines = _lines(kit)
    header_seq = json.loads(lines[-2])["entry"]["seq"] - 1  # the head before w2 started
    kit.state.custody_path.write_bytes(b"".join(lines[:header_seq]))
    log = CustodyLog(kit.state.custody_path, kit.identity, kit.clock)
    for _ in range(len(lines) - header_seq):
        log.append("note")  # same length, another history, signed with the device key
    found = _findings(kit)
    assert ("log_rewritten",
            f"recording {w2.id}'s header names custody entry {header_seq} with another "
            "hash: the log was rewritten from there", w2.id) in found


def test_quarantined_folders_are_listed_in_a_note(kit):
    for name in ("b" * 32, "a" * 32):
        (kit.state.quarantine_dir / name).mkdir(parents=True)
    rep = check_state(kit.state, kit.identity.public)
    assert rep.notes == [
        f"2 folder(s) in {kit.state.quarantine_dir} that recovery refused to close or sign, "
        f"kept whole for a person to look at: {'a' * 32}, {'b' * 32}"]


def test_the_head_check_in_words(kit, tmp_path):
    w, _ = record(kit)
    (head,) = _export(kit, w, tmp_path)
    seq = json.loads(head.read_text())["seq"]
    n = len(_lines(kit))
    res = check_head(kit.state, kit.identity.public, head)
    assert res == HeadCheck("contained", f"the log still contains entry {seq} as the copy "
                            f"recorded it ({n - 1 - seq} entries since)", seq, n)
    assert res.ok and res.to_json() == {"ok": True, "status": "contained",
                                        "message": res.message, "seq": seq, "log_entries": n}
    who = f"this device ({kit.identity.fingerprint[:16]})"
    kit.state.custody_path.write_bytes(b"".join(_lines(kit)[:seq - 1]))
    res = check_head(kit.state, kit.identity.public, head)
    assert res == HeadCheck(
        "dropped", f"{who} signed entry {seq}, but the log ends at entry {seq - 2}: "
        "2 or more entries were dropped", seq, seq - 1)
    assert not res.ok
    other = make_kit(tmp_path / "other")
    res = check_head(kit.state, other.identity.public, head)
    assert res == HeadCheck(
        "not_this_device", f"the head (entry {seq}) is not signed by this device "
        f"({other.identity.fingerprint[:16]}): it says nothing about this log", seq, 0)
    for _ in range(3):  # the same length again, another history
        kit.custody.append("note")
    res = check_head(kit.state, kit.identity.public, head)
    assert res == HeadCheck(
        "forked", f"{who} signed another entry {seq} than the log now holds: the log forks "
        f"at or before entry {seq}", seq, seq + 2)


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([1], "not an akkoord custody head"),
        ({"format": "other", "seq": 1}, "not an akkoord custody head"),
        ({"format": "akkoord-custody-head/2", "seq": 1, "hash": "zz", "signature": ""},
         "custody head lacks a readable hash or signature"),
        ({"format": "akkoord-custody-head/2", "seq": 1, "hash": "00" * 32,
          "signature": "a!"}, "custody head lacks a readable hash or signature"),
        ({"format": "akkoord-custody-head/2", "seq": 1, "hash": "00" * 32,
          "signature": "AA!AA"}, "custody head lacks a readable hash or signature"),
        ({"format": "akkoord-custody-head/2", "seq": 1, "signature": ""},
         "custody head lacks a readable hash or signature"),
        ({"format": "akkoord-custody-head/2", "seq": -1, "hash": "00" * 32, "signature": ""},
         "custody head has no valid seq/hash"),
        ({"format": "akkoord-custody-head/2", "seq": True, "hash": "00" * 32,
          "signature": ""}, "custody head has no valid seq/hash"),
        ({"format": "akkoord-custody-head/2", "seq": "1", "hash": "00" * 32,
          "signature": ""}, "custody head has no valid seq/hash"),
        ({"format": "akkoord-custody-head/2", "seq": 1, "hash": "00" * 31, "signature": ""},
         "custody head has no valid seq/hash"),
    ],
)
def test_a_head_file_that_is_not_one_says_why(tmp_path, doc, why):
    path = tmp_path / "custody-head.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError) as err:
        parse_head(path)
    assert str(err.value) == f"{path}: {why}"


def test_a_head_file_that_is_not_json_or_too_large_says_so(tmp_path):
    path = tmp_path / "custody-head.json"
    path.write_text("{")
    with pytest.raises(FormatError) as err:
        parse_head(path)
    assert str(err.value).startswith(f"{path}: not valid JSON (")
    doc = json.dumps({"format": "akkoord-custody-head/2", "seq": 0, "hash": "ab" * 32,
                      "signature": "AAAA"})
    path.write_text(doc + " " * (64 * 1024 - len(doc)))
    assert parse_head(path)[0] == 0
    path.write_text(doc + " " * (64 * 1024 + 1 - len(doc)))
    with pytest.raises(FormatError) as err:
        parse_head(path)
    assert str(err.value) == f"{path}: implausibly large for a custody head (65537 bytes)"


def test_a_head_file_is_parsed(tmp_path):
    path = tmp_path / "custody-head.json"
    path.write_text(json.dumps({"format": "akkoord-custody-head/2", "seq": 0,
                                "hash": "ab" * 32, "signature": "AAAA"}))
    assert parse_head(path) == (0, b"\xab" * 32, b"\x00\x00\x00")


# --- the organisation's own log (store/orglog.py) -----------------------------------------


def _org_log(tmp_path):
    from akkoord.clock import FixedClock
    from akkoord.store.orglog import OrgLog
    from storekit import SIGNING

    log = OrgLog(tmp_path / "org-custody.log", SIGNING, FixedClock())
    heads = [log.append("export", "a" * 32, copy_number=n) for n in (1, 2)]
    return log, heads


def test_an_org_head_verifies_only_as_signed(tmp_path):
    from akkoord.store.orglog import verify_org_head

    log, (_, h2) = _org_log(tmp_path)
    key = log.key.public
    assert verify_org_head(h2, key) and h2["seq"] == 1 and h2["entry"]["detail"] == {
        "copy_number": 2}
    sig = h2["signature"]
    bad = [
        {k: v for k, v in h2.items() if k != "signature"},
        {**h2, "hash": "zz"},
        {**h2, "seq": True},
        {**h2, "seq": -1},
        {**h2, "seq": "1"},
        {**h2, "hash": h2["hash"][:62]},
        {**h2, "signature": sig[:10] + "!" + sig[10:]},  # lenient base64 would skip the '!'
        {**h2, "seq": 0},
    ]
    for doc in bad:
        assert verify_org_head(doc, key) is False, doc


def test_a_tampered_org_log_names_the_signing_key(tmp_path):
    log, _ = _org_log(tmp_path)
    lines = log.path.read_bytes().splitlines(keepends=True)
    doc = json.loads(lines[1])
    doc["sig"] = base64.b64encode(bytes(64)).decode()
    lines[1] = json.dumps(doc).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))
    view = log.view()
    assert [e["seq"] for e in view.entries] == [0]
    assert view.findings == [f"{log.path}: entry 1 (byte {len(lines[0])}): signature invalid "
                             f"for key {log.key.public.fingerprint[:16]}"]


def test_a_replaced_container_is_named(kit):
    w1, _ = record(kit)
    w2, _ = record(kit, seed=2)
    shutil.copy(w2.path / "recording.akr", w1.path / "recording.akr")
    assert ("container_replaced",
            f"recording {w1.id}: its header frame is not the one the log recorded at start",
            w1.id) in _findings(kit)


def test_unreadable_containers_and_manifests_are_findings_not_crashes(kit, tmp_path):
    w1, _ = record(kit)
    w2, _ = record(kit, seed=2)
    w3, _ = record(kit, seed=3)
    w4, _ = record(kit, seed=4)
    c1 = w1.path / "recording.akr"
    c1.unlink()
    c1.symlink_to(tmp_path / "elsewhere")
    (w2.path / MANIFEST_FILE).write_text("{")
    with open(w3.path / "recording.akr", "r+b") as f:
        f.write(b"junk")  # frame 0 is no frame: no header to compare
    (w4.path / "recording.akr").unlink()
    found = _findings(kit)
    assert ("unreadable", f"recording {w1.id}: {c1}: cannot open the container: Too many "
            "levels of symbolic links", w1.id) in found
    m2, gone = [f for f in found if f[2] == w2.id]
    assert m2[0] == "unreadable" and m2[1].startswith(
        f"recording {w2.id}: {w2.path / MANIFEST_FILE}: not valid JSON (")
    assert gone[0] == "manifest_missing"  # an unreadable manifest is no signed manifest
    assert [f for f in found if f[2] in (w3.id, w4.id)] == []


def test_a_recording_left_open_is_not_a_finding(kit):
    w = kit.writer()
    w.add_audio(b"\x00\x01" * 800)
    w._close_fd()  # the power went; recovery has not run yet
    rep = check_state(kit.state, kit.identity.public)
    assert rep.ok and rep.recordings == 1


# --- the strict R rule of the fast signature checker (store/sigcheck.py) -------------------


def _enc(y: int, sign: int = 0) -> bytes:
    return (y | (sign << 255)).to_bytes(32, "little")


def test_non_canonical_r_encodings_are_refused_before_openssl_sees_them():
    """OpenSSL may accept an R whose encoding is not canonical; the strict rule (FORMAT.md
    §10.1) does not. These are the encodings the fast checker must refuse by itself."""
    from akkoord.store.sigcheck import SMALL_ORDER, _r_ok

    p = 2**255 - 19
    assert not _r_ok(_enc(p))  # y = p: the alias of 0
    assert not _r_ok(_enc(p + 5))  # y > p
    assert not _r_ok(_enc(2**255 - 1))
    assert not _r_ok(_enc(1, sign=1))  # x = 0 with the sign bit set
    assert not _r_ok(_enc(p - 1, sign=1))
    assert all(not _r_ok(r) for r in SMALL_ORDER)
    assert _r_ok(_enc(p - 2)) and _r_ok(_enc(2)) and _r_ok(_enc(2, sign=1))
    assert _r_ok(_enc(p - 20, sign=1))


def test_the_fast_checker_hands_other_algorithms_to_their_own_verifier():
    from akkoord.store.keys import DevicePublicKey
    from akkoord.store.sigcheck import signature_checker
    from akkoord.trust import EcdsaP256Signer

    signer = EcdsaP256Signer.generate()
    key = DevicePublicKey(signer.public_raw, "ecdsa-p256")
    check = signature_checker(key)
    sig = signer.sign(b"checkpoint")
    assert check(sig, b"checkpoint") and not check(sig, b"other")


def test_failed_exports_are_not_expected_in_the_record(kit, tmp_path):
    w, _ = record(kit)
    _export(kit, w, tmp_path)  # copy 1: made and recorded
    kit.custody.append("export", w.id, copy_number=2, stick_id_sha256=None)
    kit.custody.append("export_failed", w.id, copy_number=2, reason="stick removed")
    assert _findings(kit) == []


def test_an_export_record_that_cannot_be_read_is_named(kit, tmp_path):
    w, _ = record(kit)
    _export(kit, w, tmp_path)
    rec = w.path / EXPORTS_FILE
    rec.unlink()
    rec.symlink_to(tmp_path)
    assert ("exports_damaged", f"recording {w.id}: {rec}: cannot open the export record: "
            "Too many levels of symbolic links", w.id) in _findings(kit)


def test_an_export_record_without_a_custody_pointer_is_fine(kit):
    from akkoord.store.exports import append_export

    w, _ = record(kit)
    kit.custody.append("export", w.id, copy_number=1, stick_id_sha256=None)
    append_export(w.path, kit.identity, kit.clock, copy_number=1, stick_id_sha256=None)
    assert _findings(kit) == []


def test_a_dropped_tail_is_named_by_the_export_record_that_points_past_it(kit, tmp_path):
    w, _ = record(kit)
    cut = len(_lines(kit))
    _export(kit, w, tmp_path)
    kit.state.custody_path.write_bytes(b"".join(_lines(kit)[:cut]))
    from akkoord.store.exports import read_exports

    (r,) = read_exports(w.path)
    seq = r.meta["custody_seq"]
    assert ("log_tail_dropped",
            f"recording {w.id}'s export record {r.index} names custody entry {seq}, but the "
            f"log ends at entry {cut - 1}: its tail was dropped", w.id) in _findings(kit)


def test_log_findings_are_reported_in_the_logs_words(kit):
    record(kit)
    lines = _lines(kit)
    lines[1] = lines[1].replace(b"recording_closed", b"recording_deleted")
    kit.state.custody_path.write_bytes(b"".join(lines))
    from akkoord.store.custody import verify_custody_log

    _, words = verify_custody_log(kit.state.custody_path, kit.identity.public)
    assert [f for f in _findings(kit) if f[0] == "custody_log"] == [
        ("custody_log", w, None) for w in words]


def test_only_the_first_ten_quarantined_folders_are_named(kit):
    names = [f"{i:032x}" for i in range(11)]
    for name in names:
        (kit.state.quarantine_dir / name).mkdir(parents=True)
    (note,) = check_state(kit.state, kit.identity.public).notes
    assert note.startswith("11 folder(s) in ")
    assert note.endswith(", ".join(names[:10]))


def test_every_deleted_folder_is_found(kit):
    ws = sorted((record(kit, seed=s)[0] for s in range(3)), key=lambda w: w.id)
    shutil.rmtree(ws[2].path)  # the last in id order: found after the others are passed
    assert [f[0] for f in _findings(kit)] == ["folder_deleted"]


def test_copy_numbers_that_are_not_integers_are_passed_over(tmp_path):
    from akkoord.store.orglog import next_copy_number

    log, _ = _org_log(tmp_path)
    log.append("export", "a" * 32, copy_number=True)
    log.append("export", "a" * 32, copy_number="7")
    folder = tmp_path / ("a" * 32)
    folder.mkdir()
    assert next_copy_number(folder, log.view()) == 3
    log.append("export", "b" * 32, copy_number=True)  # a recording with no real number yet
    folder_b = tmp_path / ("b" * 32)
    folder_b.mkdir()
    assert next_copy_number(folder_b, log.view()) == 1


def test_a_valid_signature_around_a_small_order_r_is_refused():
    """Made with the device's own private key, a signature whose R is the identity point
    satisfies the verification equation, and OpenSSL accepts it; the strict rule (§10.1),
    and so the fast checker, must not."""
    import hashlib

    from akkoord.store.keys import DeviceIdentity
    from akkoord.store.sigcheck import signature_checker

    seed = bytes(range(32))
    ident = DeviceIdentity.from_seed(seed)
    h = hashlib.sha512(seed).digest()
    a = int.from_bytes(h[:32], "little")
    a &= (1 << 254) - 8
    a |= 1 << 254
    L = 2**252 + 27742317777372353535851937790883648493
    r = _enc(1)  # the identity point
    check = signature_checker(ident.public)
    zero_first = 0
    for n in range(2000):  # also one whose S starts with a zero byte (R read 33 bytes long)
        msg = b"checkpoint %d" % n
        k = int.from_bytes(hashlib.sha512(r + ident.public.raw + msg).digest(), "little") % L
        s = (k * a) % L
        assert not check(r + s.to_bytes(32, "little"), msg)
        zero_first += s % 256 == 0
        if zero_first and n >= 20:
            break
    assert zero_first
    assert check(ident.sign(msg), msg)
