"""The Python copy verifier (export/copycheck.py) on its own, without a browser.

test_verify_page.py holds the page and the Python check to the same verdicts, but it skips
where Chromium is missing; the guarantees the Python check carries are pinned here too.
"""

from __future__ import annotations

import pytest

from akkoord.export.copycheck import verify_copy
from akkoord.store.keys import DeviceIdentity
from copykit import (
    AUDIO,
    at,
    clone,
    flip_sample,
    pcm,
    python_verdict,
    record_copy,
    resign,
    samples,
    tampered_copy,
)
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


# --- changed audio, located (the same cases the page is held to in test_verify_page.py) ----

@pytest.fixture(scope="module")
def made(kit):
    return record_copy(kit, 5, seed=10)  # five 1 s segments


TAMPER = {
    # name: (change to the data chunk, status, changed seconds, finding codes)
    "cut_1s": (lambda d: d[: at(2)] + d[at(3):], "changed", [[2, 3]],
               {"audio_changed", "length_changed"}),
    "duplicated_1s": (lambda d: d[: at(2)] + d[at(1): at(2)] + d[at(2):], "changed", [[2, 3]],
                      {"length_changed"}),
    "silenced_1s": (lambda d: d[: at(2)] + bytes(at(1)) + d[at(3):], "changed", [[2, 3]],
                    {"audio_changed"}),
    "one_sample": (lambda d: flip_sample(d, samples(2.5)), "changed", [[2, 3]],
                   {"audio_changed"}),
    "two_places": (lambda d: flip_sample(flip_sample(d, samples(0.5)), samples(3.5)), "changed",
                   [[0, 1], [3, 4]], {"audio_changed"}),
    "neighbours_merge": (lambda d: flip_sample(flip_sample(d, samples(1.5)), samples(2.5)),
                         "changed", [[1, 3]], {"audio_changed"}),
    "end_cut_off": (lambda d: d[: at(4.5)], "changed", [[4, 5]],
                    {"audio_changed", "length_changed"}),
    "appended": (lambda d: d + pcm(99, samples(0.5)), "changed", [], {"length_changed"}),
    "half_sample": (lambda d: d + b"\x01", "changed", [], {"length_changed"}),
    "all_replaced": (lambda d: pcm(7, len(d) // 2), "wrong_recording", [[0, 5]],
                     {"audio_changed", "wrong_recording"}),
}


@pytest.mark.parametrize("name", list(TAMPER))
def test_changed_audio_is_located_to_the_second(kit, made, tmp_path, name):
    change, status, seconds, codes = TAMPER[name]
    folder = tampered_copy(made, tmp_path / "copy", change)
    assert python_verdict(folder, kit.identity.public) == (status, seconds)
    rep = verify_copy(folder, kit.identity.public)
    assert not rep.ok and {f.code for f in rep.findings} == codes


def test_cut_and_insertion_say_where_and_how_much(kit, made, tmp_path):
    cut = verify_copy(tampered_copy(made, tmp_path / "cut", TAMPER["cut_1s"][0]))
    (msg,) = [f for f in cut.findings if f.code == "length_changed"]
    assert msg.second == 2 and "1 s shorter" in msg.message and "cut out at second 2" in msg.message
    dup = verify_copy(tampered_copy(made, tmp_path / "dup", TAMPER["duplicated_1s"][0]))
    (msg,) = [f for f in dup.findings if f.code == "length_changed"]
    assert msg.second == 2 and "1 s longer" in msg.message and "inserted at second 2" in msg.message


def test_unchanged_copy_reports_what_it_checked(kit, made):
    rep = verify_copy(made.wav, kit.identity.public)  # the WAV's path works like the folder's
    assert rep.ok and rep.status == "unchanged" and rep.changed_seconds == []
    assert rep.device_trusted is True and rep.copy_number == 1 and rep.made_by == "device"
    assert rep.recording_status == "complete" and rep.duration_seconds == 5
    assert rep.device_fingerprint == kit.identity.fingerprint
