"""Copies on real directories and small file systems: atomic, verified, never trusting the
target, and every copy logged."""

from __future__ import annotations

import contextlib
import errno
import json
import os

import pytest

from akkoord.errors import StorageError
from akkoord.export import package as package_mod
from akkoord.export.copycheck import AUDIO_FILE, verify_copy
from akkoord.export.package import write_copy
from akkoord.export.service import export_copy
from akkoord.store.exports import read_exports
from akkoord.store.verify import verify_recording
from storekit import make_kit, record


@pytest.fixture
def made(tmp_path):
    kit = make_kit(tmp_path / "k")
    w, _ = record(kit, gap_after=1)
    return kit, w


def _export(kit, w, target):
    return export_copy(
        w.path, w.keys, target, identity=kit.identity, clock=kit.clock, custody=kit.custody
    )


def _entries(target):
    return sorted(os.listdir(target))


def test_copy_is_complete_verified_and_logged(made, tmp_path):
    kit, w = made
    stick = tmp_path / "stick"
    stick.mkdir()
    result = _export(kit, w, stick)
    assert _entries(stick) == [result.name]
    rep = verify_copy(result.folder, kit.identity.public)
    assert rep.ok and rep.status == "unchanged" and rep.copy_number == 1
    head = json.loads((result.folder / "custody-head.json").read_text())
    types = [e["type"] for e in kit.custody.entries()]
    assert types[-1] == "export" and head["seq"] == len(types) - 1
    (record_,) = read_exports(w.path, kit.identity.public)
    assert record_.problem is None and record_.meta["copy_number"] == 1
    assert verify_recording(w.path, kit.org).exports[0]["copy_number"] == 1


def test_repeated_copies_get_their_own_number_and_folder(made, tmp_path):
    kit, w = made
    stick = tmp_path / "stick"
    stick.mkdir()
    names = [_export(kit, w, stick).name for _ in range(3)]
    assert len(set(names)) == 3 and names[1].endswith("kopie2")
    assert [r.meta["copy_number"] for r in read_exports(w.path, kit.identity.public)] == [1, 2, 3]
    assert [e["type"] for e in kit.custody.entries()].count("export") == 3
    assert verify_recording(w.path).ok


def test_existing_symlink_or_file_is_never_followed_or_replaced(made, tmp_path):
    kit, w = made
    stick = tmp_path / "stick"
    stick.mkdir()
    victim = tmp_path / "victim"
    victim.mkdir()
    name = package_mod.folder_name(json.loads((w.path / "manifest.json").read_text()), 1)
    os.symlink(victim, stick / name)
    (stick / f"{name}-2").write_text("not ours")
    result = _export(kit, w, stick)
    assert result.name == f"{name}-3"
    assert os.listdir(victim) == [] and (stick / f"{name}-2").read_text() == "not ours"
    assert os.path.islink(stick / name)


def test_write_failure_mid_copy_leaves_nothing_that_looks_complete(made, tmp_path, monkeypatch):
    """A stick pulled mid-write: writes start failing with EIO."""
    kit, w = made
    stick = tmp_path / "stick"
    stick.mkdir()
    real_write = package_mod._write
    calls = {"n": 0}

    def flaky(fd, data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.EIO, "Input/output error")
        return real_write(fd, data)

    monkeypatch.setattr(package_mod, "_write", flaky)
    with pytest.raises(StorageError) as info:
        _export(kit, w, stick)
    assert info.value.errno == errno.EIO
    assert all(n.endswith(".partial") for n in _entries(stick))
    assert [e["type"] for e in kit.custody.entries()][-1] == "export_failed"
    assert read_exports(w.path) == []
    monkeypatch.undo()
    assert _export(kit, w, stick).copy["copy_number"] == 1  # the next stick works


@pytest.mark.root
def test_full_stick_fails_cleanly(made, tmp_path, tmpfs):
    kit, w = made
    stick = tmpfs(tmp_path / "small", "size=16k")
    with pytest.raises(StorageError) as info:
        _export(kit, w, stick)
    assert info.value.errno == errno.ENOSPC
    assert all(n.endswith(".partial") for n in _entries(stick))
    assert verify_recording(w.path, kit.org).ok  # the recording itself is untouched


@pytest.mark.root
def test_read_only_stick_fails_cleanly(made, tmp_path, tmpfs):
    kit, w = made
    stick = tmpfs(tmp_path / "ro", "size=4m,ro")
    with pytest.raises(StorageError) as info:
        _export(kit, w, stick)
    assert info.value.errno == errno.EROFS
    assert _entries(stick) == []


def test_export_refuses_a_recording_that_does_not_match(made, tmp_path):
    kit, w = made
    data = bytearray((w.path / "recording.akr").read_bytes())
    data[-100] ^= 1
    (w.path / "recording.akr").write_bytes(bytes(data))
    stick = tmp_path / "stick"
    stick.mkdir()
    with pytest.raises(Exception, match=r"damaged|does not match"):
        write_copy(
            w.path,
            w.keys,
            stick,
            copy_number=1,
            made_by="device",
            clock=kit.clock,
            device_key=kit.identity.public,
            custody_head=None,
        )
    assert all(n.endswith(".partial") for n in _entries(stick))


# --- a stick that lies on read (FUSE) ------------------------------------------------------


@pytest.fixture
def lying_stick(tmp_path):
    """`lying_stick(flip)`: a FUSE pass-through stick, reads of `flip=(name, offset)` corrupted."""
    from fusekit import fuse_unavailable, mounted

    why = fuse_unavailable()
    if why is not None:
        pytest.skip(why)
    with contextlib.ExitStack() as stack:
        n = iter(range(100))

        def make(flip):
            i = next(n)
            return stack.enter_context(
                mounted(tmp_path / f"backing{i}", tmp_path / f"stick{i}", flip)
            ), tmp_path / f"backing{i}"

        yield make


def test_copy_through_an_honest_fuse_stick_is_made(made, lying_stick):
    """The control: the pass-through alone changes nothing."""
    kit, w = made
    stick, backing = lying_stick(None)
    result = _export(kit, w, stick)
    assert verify_copy(backing / result.name, kit.identity.public).ok


def test_stick_that_flips_a_byte_on_read_gets_no_copy(made, lying_stick):
    """What was written is intact on the stick's media; what reads back is not. The device
    must not call that copy made: no published folder, the failure logged, no export frame."""
    kit, w = made
    stick, backing = lying_stick((AUDIO_FILE, 4096))
    with pytest.raises(StorageError):
        _export(kit, w, stick)
    # Nothing published, and the failed copy's .partial folder is removed (issue 14); the
    # control test above shows the same stick without the flip gets a good copy.
    assert _entries(backing) == []
    assert [e["type"] for e in kit.custody.entries()][-1] == "export_failed"
    assert read_exports(w.path) == []
