"""The custody log to the byte: the head a copy carries checks against the committed vectors,
each kind of damage gives its own finding at its own entry and byte, and the intact prefix
(what recovery and the state check believe) ends exactly at the first bad entry."""

from __future__ import annotations

import base64
import errno
import json
import os
import stat
from pathlib import Path

import pytest

from akkoord.errors import AkkoordError, StorageError
from akkoord.store.custody import (
    ASIDE_NAMES,
    MAX_LINE,
    MAX_LOG,
    CustodyHead,
    CustodyLog,
    CustodyView,
    entry_hash,
    head_message,
    verify_custody_log,
)
from akkoord.store.format import CUSTODY_SIG_CONTEXT
from akkoord.store.keys import DevicePublicKey
from storekit import make_kit

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _log(kit, n: int = 4, name: str = "chain.log") -> CustodyLog:
    log = CustodyLog(kit.root / name, kit.identity, kit.clock)
    for i in range(n):
        log.append("recording_started", f"{i + len(name):032x}", simulated=False)
    return log


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_the_head_on_a_committed_copy_checks_out_byte_for_byte():
    """An earlier build's copy carries its custody head: the same label, the 8-byte
    big-endian sequence number and the entry hash still make the message it signed."""
    doc = json.loads((VECTORS / "complete" / "copy" / "custody-head.json").read_text())
    key = DevicePublicKey.load(VECTORS / "device.pub")
    digest = bytes.fromhex(doc["hash"])
    assert entry_hash(doc["entry"]) == digest
    msg = head_message(doc["seq"], digest)
    assert msg == CUSTODY_SIG_CONTEXT + doc["seq"].to_bytes(8, "big") + digest
    assert key.verify(base64.b64decode(doc["signature"]), msg)
    assert not key.verify(base64.b64decode(doc["signature"]), head_message(doc["seq"] + 1, digest))


def test_head_json_keys(kit):
    log = _log(kit, 3)
    head = log.head()
    assert head.to_json() == {
        "format": "akkoord-custody-head/2",
        "seq": 2,
        "hash": head.hash,
        "signature": head.sig,
        "device_fingerprint": kit.identity.fingerprint,
        "entry": head.entry,
    }
    assert "entry" not in CustodyHead(0, "00", "", "f").to_json()


def test_head_is_the_last_entry_with_its_signature(kit):
    log = _log(kit, 3)
    last = json.loads(_lines(log.path)[-1])
    head = log.head()
    assert (head.seq, head.hash, head.sig) == (2, last["hash"], last["sig"])
    assert head.entry == last["entry"] and head.entry["recording_id"] == f"{11:032x}"
    assert CustodyLog(kit.root / "none.log", kit.identity, kit.clock).head() is None


def test_each_kind_of_damage_is_its_own_finding_at_its_entry(kit):
    log = _log(kit, 5)
    lines = _lines(log.path)
    # entry 1: another sequence number (the hash then fails too)
    doc = json.loads(lines[1])
    doc["entry"]["seq"] = 7
    lines[1] = json.dumps(doc).encode() + b"\n"
    # entry 2: the entry of the same number from another log of this device (a splice)
    lines[2] = _lines(_log(kit, 3, "another.log").path)[2]
    # entry 3: a signature of the right length but wrong
    doc = json.loads(lines[3])
    doc["sig"] = base64.b64encode(bytes(64)).decode()
    lines[3] = json.dumps(doc).encode() + b"\n"
    lines.append(b'{"entry": {"se')  # a torn append
    log.path.write_bytes(b"".join(lines))
    offsets = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    where = [f"{log.path}: entry {i} (byte {offsets[i]})" for i in range(5)]
    fp = kit.identity.fingerprint[:16]
    count, findings = verify_custody_log(log.path, kit.identity.public)
    assert count == 5
    assert findings == [
        f"{where[1]}: sequence number 7, expected 1",
        f"{where[1]}: content does not match its hash",  # its signature is of the hash
        f"{where[2]}: does not chain to the entry before it",
        f"{where[3]}: does not chain to the entry before it",
        f"{where[3]}: signature invalid for key {fp}",
        f"{log.path}: incomplete last line; 14 bytes after the last whole entry",
    ]
    view = CustodyView.read(log.path, kit.identity.public)
    assert view.findings == findings
    assert [e["seq"] for e in view.entries] == [0]  # nothing after the first bad entry
    assert view.hashes == [json.loads(lines[0])["hash"]]


def test_an_intact_log_is_believed_whole(kit):
    log = _log(kit, 4)
    view = CustodyView.read(log.path, kit.identity.public)
    assert view.findings == []
    assert [e["seq"] for e in view.entries] == [0, 1, 2, 3]
    assert view.hashes == [json.loads(x)["hash"] for x in _lines(log.path)]


def test_a_bad_last_entry_leaves_the_rest_believed(kit):
    log = _log(kit, 4)
    lines = _lines(log.path)
    lines[3] = lines[3].replace(b"recording_started", b"recording_deleted")
    log.path.write_bytes(b"".join(lines))
    view = CustodyView.read(log.path, kit.identity.public)
    assert [e["seq"] for e in view.entries] == [0, 1, 2]
    assert len(view.findings) == 1 and "entry 3 " in view.findings[0]


def test_a_missing_log_is_an_empty_view(kit):
    view = CustodyView.read(kit.root / "none.log", kit.identity.public)
    assert (view.entries, view.hashes, view.findings, view.recordings) == ([], [], [], {})


@pytest.mark.parametrize(
    ("first", "why"),
    [
        (b"\n", "unreadable entry at byte 0"),  # an empty line is not an entry
        (b"x" * (MAX_LINE + 10) + b"\n", "incomplete last line"),  # no line is that long
    ],
)
def test_what_cannot_be_an_entry_is_named(kit, first, why):
    log = _log(kit, 2)
    log.path.write_bytes(first + log.path.read_bytes())
    count, findings = verify_custody_log(log.path, kit.identity.public)
    rest = log.path.stat().st_size
    assert count == 0
    assert findings == [f"{log.path}: {why}; {rest} bytes after the last whole entry"]


@pytest.mark.parametrize("field", ["hash", "entry"])
def test_a_hash_of_the_wrong_length_or_an_entry_not_an_object_is_unreadable(kit, field):
    log = _log(kit, 2)
    lines = _lines(log.path)
    doc = json.loads(lines[1])
    doc[field] = doc["hash"][:62] if field == "hash" else [doc["entry"]]
    lines[1] = json.dumps(doc).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))
    count, findings = verify_custody_log(log.path, kit.identity.public)
    assert count == 1
    assert findings == [f"{log.path}: unreadable entry at byte {len(lines[0])}; "
                        f"{len(lines[1])} bytes after the last whole entry"]


def test_a_signature_that_is_not_strict_base64_is_unreadable(kit):
    log = _log(kit, 2)
    lines = _lines(log.path)
    doc = json.loads(lines[1])
    doc["sig"] = doc["sig"][:8] + "!" + doc["sig"][8:]  # lenient base64 would skip the '!'
    lines[1] = json.dumps(doc).encode() + b"\n"
    log.path.write_bytes(b"".join(lines))
    count, findings = verify_custody_log(log.path, kit.identity.public)
    assert count == 1
    assert findings == [f"{log.path}: unreadable entry at byte {len(lines[0])}; "
                        f"{len(lines[1])} bytes after the last whole entry"]


def test_an_implausibly_large_custody_log_says_what_it_is(kit):
    path = kit.root / "huge.log"
    with open(path, "wb") as f:
        f.truncate(MAX_LOG + 1)  # sparse: no disk used
    what = f"{path}: implausibly large for a custody log ({MAX_LOG + 1} bytes)"
    with pytest.raises(AkkoordError) as err:
        verify_custody_log(path, kit.identity.public)
    assert str(err.value) == what
    with pytest.raises(AkkoordError) as err:
        CustodyView.read(path, kit.identity.public)
    assert str(err.value) == what


def test_a_log_signed_under_another_label_does_not_verify(kit):
    """The organisation's log (orglog) signs under its own label: an entry of one cannot pass
    as an entry of the other."""
    other = b"akkoord/v1/org-log-head\n"
    log = CustodyLog(kit.root / "org.log", kit.identity, kit.clock, other)
    log.append("export", "0" * 32)
    assert verify_custody_log(log.path, kit.identity.public, other) == (1, [])
    assert CustodyView.read(log.path, kit.identity.public, other).findings == []
    count, findings = verify_custody_log(log.path, kit.identity.public)
    assert count == 1 and len(findings) == 1 and "signature invalid" in findings[0]
    assert CustodyView.read(log.path, kit.identity.public).entries == []


def test_the_view_indexes_every_kind_of_entry_by_recording(kit):
    log = CustodyLog(kit.root / "kinds.log", kit.identity, kit.clock)
    a, b = "a" * 32, "b" * 32
    log.append("device_started")  # no recording: skipped, the rest still indexed
    log.append("recording_started", a, header_seal="11" * 32)
    log.append("recording_started", a, header_seal="22" * 32)  # the first one counts
    log.append("export", a, copy_number=1)
    log.append("export_failed", a, reason="stick removed")
    log.append("export_reconciled", a, reason="no export frame")
    log.append("recording_damaged", a)
    log.append("recording_closed", a)
    log.append("recording_started", b)
    log.append("recording_interrupted", b)
    log.append("recording_quarantined", b)
    view = CustodyView.read(log.path, kit.identity.public)
    assert set(view.recordings) == {a, b}
    ha, hb = view.history(a), view.history(b)
    assert ha.header_seal == "11" * 32
    assert [e["type"] for e in ha.exports] == ["export"]
    assert [e["type"] for e in ha.failed_exports] == ["export_failed", "export_reconciled"]
    assert ha.damaged and not hb.damaged
    assert ha.closed["type"] == "recording_closed" and ha.gone is None
    assert hb.closed["type"] == "recording_interrupted"
    assert hb.gone["type"] == "recording_quarantined"
    assert hb.header_seal is None and hb.exports == [] and hb.failed_exports == []
    assert view.history("c" * 32).started is None


def test_append_returns_the_new_head(kit):
    log = _log(kit, 2)
    head = log.append("recording_closed", "c" * 32)
    assert head == log.head()
    assert head.device_fingerprint == kit.identity.fingerprint
    assert (head.seq, head.entry["type"]) == (2, "recording_closed")


def test_a_new_log_is_readable_by_owner_and_group_only(kit):
    old = os.umask(0o022)
    try:
        log = _log(kit, 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o640


def test_a_full_disk_names_the_custody_log(kit):
    log = CustodyLog(Path("/dev/full"), kit.identity, kit.clock)
    with pytest.raises(StorageError) as err:
        log.append("recording_started", "0" * 32)
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == "write failed for /dev/full: No space left on device"


def test_a_failed_fsync_names_the_custody_log(kit):
    log = CustodyLog(Path("/dev/null"), kit.identity, kit.clock)  # writes, cannot fsync
    with pytest.raises(StorageError) as err:
        log.append("recording_started", "0" * 32)
    assert err.value.errno == errno.EINVAL
    assert str(err.value) == "fsync failed for /dev/null: Invalid argument"


def test_a_torn_tail_that_cannot_be_set_aside_is_a_storage_error_naming_the_log(kit):
    log = _log(kit, 2)
    size = log.path.stat().st_size
    with open(log.path, "ab") as f:
        f.write(b'{"entry"')  # torn
    base = log.path.with_name(f"{log.path.name}.tail-{size}")
    for n in range(ASIDE_NAMES):  # every name it may use is taken
        (base.with_name(f"{base.name}.{n}") if n else base).mkdir()
    with pytest.raises(StorageError) as err:
        log.append("recording_closed", "0" * 32)
    assert err.value.errno == errno.EEXIST
    assert str(err.value) == (f"custody log {log.path}: [Errno 17] {ASIDE_NAMES} names for its "
                              f"torn tail are taken: '{base}'")
    assert log.path.stat().st_size == size + 8  # nothing cut, nothing appended


def test_a_second_torn_tail_at_the_same_length_is_set_aside_beside_the_first(kit, tmp_path):
    log = _log(kit, 2)
    size = log.path.stat().st_size
    with open(log.path, "ab") as f:
        f.write(b'{"entry"')  # torn
    log.append("recording_closed", "0" * 32)
    with open(log.path, "r+b") as f:  # a later crash cut back to the same length, torn again
        f.truncate(size)
        f.seek(size)
        f.write(b'{"entry": {"seq"')
    target = tmp_path / "elsewhere"
    base = log.path.with_name(f"{log.path.name}.tail-{size}")
    base.with_name(f"{base.name}.1").symlink_to(target)  # a planted link is not followed
    log.append("recording_closed", "1" * 32)
    assert base.read_bytes() == b'{"entry"'
    assert base.with_name(f"{base.name}.2").read_bytes() == b'{"entry": {"seq"'
    assert not target.exists()
    assert [json.loads(x)["entry"]["seq"] for x in _lines(log.path)] == [0, 1, 2]
