"""The Python copy verifier (export/copycheck.py) on its own, without a browser.

test_verify_page.py holds the page and the Python check to the same verdicts, but it skips
where Chromium is missing; the guarantees the Python check carries are pinned here too.
"""

from __future__ import annotations

import pytest

from akkoord.export.copycheck import verify_copy
from akkoord.store.keys import DeviceIdentity
from copykit import AUDIO, at, clone, pcm, record_copy, resign, samples, tampered_copy
from storekit import make_kit


@pytest.fixture(scope="module")
def kit():
    k = make_kit()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def gapped(kit):
    return record_copy(kit, 3, seed=40, gap_after=0)  # 0.25 s gap at second 1


@pytest.fixture(scope="module")
def stranger():
    return DeviceIdentity.generate()


def test_gap_of_silence_is_unchanged(kit, gapped):
    rep = verify_copy(gapped.folder, kit.identity.public)
    assert rep.ok and rep.findings == [] and rep.changed_seconds == []


@pytest.mark.parametrize("value", [1, 0x7FFF], ids=["one_lsb", "loud"])
def test_sound_in_a_gap_is_a_change_there(kit, gapped, tmp_path, value):
    """A gap carries no MAC: only the rule "a gap is silence" stops sound being pasted in."""
    n = samples(0.25)
    sound = value.to_bytes(2, "little") * n if value != 1 else b"\x01\x00" + bytes(2 * n - 2)
    filled = tampered_copy(gapped, tmp_path / "filled", lambda d: d[: at(1)] + sound + d[at(1.25):])
    rep = verify_copy(filled, kit.identity.public)
    assert not rep.ok
    assert rep.changed_seconds == [[1, 1.25]]


def test_random_sound_in_a_gap_is_a_change(kit, gapped, tmp_path):
    filled = tampered_copy(
        gapped, tmp_path / "noise", lambda d: d[: at(1)] + pcm(5, samples(0.25)) + d[at(1.25):]
    )
    rep = verify_copy(filled, kit.identity.public)
    assert not rep.ok and rep.changed_seconds == [[1, 1.25]]


def test_copy_of_another_device_fails_the_trusted_key(kit, gapped, stranger):
    """Genuine, unchanged, validly signed - by a device other than the one the verifier
    was told to expect."""
    assert verify_copy(gapped.folder).ok  # untrusted check: signature and audio are fine
    rep = verify_copy(gapped.folder, stranger.public)
    assert not rep.ok and rep.findings


def test_copy_resigned_by_another_device_fails_the_trusted_key(kit, gapped, stranger, tmp_path):
    folder = clone(gapped.folder, tmp_path / "resigned")
    resign(folder, stranger, name_signer=True)  # a valid signature by the stranger's key
    assert (folder / AUDIO).exists()
    rep = verify_copy(folder, kit.identity.public)
    assert not rep.ok and rep.findings
