"""The device-wide custody log: chained, signed, tamper-evident, survives a torn append."""

from __future__ import annotations

import json

import pytest

from akkoord.store.custody import CustodyLog, verify_custody_log
from akkoord.store.keys import DeviceIdentity
from storekit import make_kit


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _fill(kit, n=4):
    for i in range(n):
        kit.custody.append("recording_started", f"{i:032x}", simulated=False)


def test_entries_chain_and_verify(kit):
    _fill(kit)
    count, findings = verify_custody_log(kit.state.custody_path, kit.identity.public)
    assert (count, findings) == (4, [])
    head = kit.custody.head()
    assert head.seq == 3 and head.device_fingerprint == kit.identity.fingerprint


def test_head_signature_checks_out(kit):
    import base64

    from akkoord.store.custody import head_message

    _fill(kit, 2)
    head = kit.custody.head()
    msg = head_message(head.seq, bytes.fromhex(head.hash))
    assert kit.identity.public.verify(base64.b64decode(head.sig), msg)


@pytest.mark.parametrize("edit", ["change", "delete", "swap", "resign_other_key"])
def test_any_rewrite_is_found(kit, edit):
    _fill(kit)
    path = kit.state.custody_path
    lines = path.read_bytes().splitlines(keepends=True)
    if edit == "change":
        lines[1] = lines[1].replace(b"recording_started", b"recording_deleted")
    elif edit == "delete":
        del lines[1]
    elif edit == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    else:
        forger = CustodyLog(path.with_name("forged"), DeviceIdentity.generate(), kit.clock)
        for i in range(4):
            forger.append("recording_started", f"{i:032x}", simulated=False)
        lines = path.with_name("forged").read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines))
    _, findings = verify_custody_log(path, kit.identity.public)
    assert findings, edit


def test_torn_last_line_is_set_aside_and_the_log_continues(kit):
    _fill(kit, 3)
    path = kit.state.custody_path
    data = path.read_bytes()
    path.write_bytes(data + data.splitlines(keepends=True)[0][:37])  # half an entry
    kit.custody.append("recording_closed", "0" * 32)
    count, findings = verify_custody_log(path, kit.identity.public)
    assert (count, findings) == (4, [])
    aside = list(path.parent.glob("custody.log.tail-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == 37


def test_entries_are_json_lines_with_time_and_type(kit):
    _fill(kit, 1)
    (line,) = kit.state.custody_path.read_text().splitlines()
    doc = json.loads(line)
    assert doc["entry"]["type"] == "recording_started"
    assert doc["entry"]["time"]["clock"] in ("ntp", "rtc", "unsynchronized")


def test_entry_spliced_from_another_log_of_the_same_device_is_found(kit):
    """Same device key, same sequence number: hash and signature of the spliced entry are
    valid, so only the `prev` chain can tell it does not belong here."""
    _fill(kit, 4)
    path = kit.state.custody_path
    other = CustodyLog(path.with_name("other.log"), kit.identity, kit.clock)
    for i in range(4):
        other.append("recording_deleted", f"{i + 100:032x}", reason="retention")
    assert verify_custody_log(other.path, kit.identity.public)[1] == []
    ours = path.read_bytes().splitlines(keepends=True)
    theirs = other.path.read_bytes().splitlines(keepends=True)
    assert json.loads(theirs[2])["entry"]["seq"] == json.loads(ours[2])["entry"]["seq"] == 2
    ours[2] = theirs[2]
    path.write_bytes(b"".join(ours))
    count, findings = verify_custody_log(path, kit.identity.public)
    assert count == 4 and findings
    # Located: the spliced entry (its prev) and the entry after it (whose prev it breaks).
    assert any("entry 2 " in f for f in findings) and any("entry 3 " in f for f in findings)
