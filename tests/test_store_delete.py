"""Deletion crypto-shreds: the wrapped content keys are overwritten in place before unlinking.

Unlinking alone leaves the bytes in the file system's free blocks (and on flash, in old pages).
A hard link made before the delete keeps the same inode alive, so after the delete it shows
exactly what was left in the blocks the device wrote: the test reads what the product did to
the file, not a value it read itself.
"""

from __future__ import annotations

import json
import os

import pytest

from akkoord.errors import UsageError
from akkoord.store.delete import delete_recording
from akkoord.store.layout import WRAPPED_KEYS_FILE
from storekit import make_kit, record


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path)


def _key_strings(doc: object) -> set[str]:
    """Every long string in keys.json: the wrapped keys and their encapsulations."""
    if isinstance(doc, dict):
        return set().union(*(_key_strings(v) for v in doc.values())) if doc else set()
    if isinstance(doc, list):
        return set().union(*(_key_strings(v) for v in doc)) if doc else set()
    return {doc} if isinstance(doc, str) and len(doc) >= 32 else set()


def test_delete_overwrites_the_wrapped_keys_before_unlinking(kit):
    w, _ = record(kit, segments=2)
    keys = w.path / WRAPPED_KEYS_FILE
    before = keys.read_bytes()
    secrets = _key_strings(json.loads(before))
    assert secrets, "keys.json holds no wrapped key material to shred"
    held = kit.root / "held-inode"
    os.link(keys, held)  # same inode, same blocks: survives the unlink
    inode = keys.stat().st_ino

    delete_recording(kit.state, w.id, kit.custody, "retention")

    assert not w.path.exists()
    assert held.stat().st_ino == inode and held.stat().st_nlink == 1
    after = held.read_bytes()
    assert len(after) == len(before)  # overwritten in place, not truncated and rewritten
    assert after != before
    assert not any(s.encode() in after for s in secrets)
    last = list(kit.custody.entries())[-1]
    assert last["type"] == "recording_deleted" and last["recording_id"] == w.id


def test_an_open_recording_is_not_deleted(kit):
    w, _ = record(kit, segments=1, close=False)
    with pytest.raises(UsageError) as err:
        delete_recording(kit.state, w.id, kit.custody, "retention")
    assert str(err.value) == (f"recording {w.id} is still open (no manifest): let recovery "
                              "close it first (`akkoord recover`)")
    assert (w.path / WRAPPED_KEYS_FILE).exists()


def test_the_deletion_is_logged_with_its_reason_and_chain_head(kit):
    w, _ = record(kit, segments=1)
    head = json.loads((w.path / "manifest.json").read_bytes())["chain_head"]
    delete_recording(kit.state, w.id, kit.custody, "retention",
                     {"requested_by": "console", "forced": True})
    last = list(kit.custody.entries())[-1]
    assert last["detail"] == {"reason": "retention", "chain_head": head,
                              "requested_by": "console", "forced": True}
    assert sorted(p.name for p in kit.state.recordings_dir.iterdir()) == []


def test_a_recording_whose_keys_are_already_gone_is_still_deleted(kit):
    w, _ = record(kit, segments=1)
    head = json.loads((w.path / "manifest.json").read_bytes())["chain_head"]
    (w.path / WRAPPED_KEYS_FILE).unlink()
    delete_recording(kit.state, w.id, kit.custody, "retention")
    assert not w.path.exists()
    assert list(kit.custody.entries())[-1]["detail"] == {"reason": "retention",
                                                         "chain_head": head}


def test_an_unknown_recording_says_where_it_looked(kit):
    with pytest.raises(UsageError) as err:
        delete_recording(kit.state, "ab" * 16, kit.custody, "retention")
    assert str(err.value) == f"no recording {'ab' * 16} in {kit.state.recordings_dir}"
