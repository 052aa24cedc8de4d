"""The notice on a copy, for a parent: local time with its zone, parties by role, natural
wording, English with no Dutch in it, and a file list that matches the folder."""

from __future__ import annotations

import os
import re

import pytest

from akkoord.clock import FixedClock
from akkoord.export.package import write_copy
from akkoord.export.service import export_copy
from akkoord.export.wording import clock_position, duration_nl, seconds_en, seconds_nl
from akkoord.store.verify import load_content_keys
from storekit import make_kit, record

ROLES = {"A": {"nl": "ouder / gezin", "en": "parent / family"},
         "B": {"nl": "professional", "en": "professional"}}

# Dutch words that must not appear in README.txt (file names like opname.wav aside).
_DUTCH = {"de", "het", "een", "en", "van", "niet", "partij", "kopie", "opname", "klok",
          "gelijkgezet", "seconde", "seconden", "gestopt", "drukte", "deze", "tekst", "map",
          "uur", "tijd", "nederlandse", "onveranderd", "bestanden", "geluid"}


@pytest.fixture
def device_copy(tmp_path):
    kit = make_kit(tmp_path / "k")
    w = kit.writer()
    w.add_event("press", party="A")
    w.add_event("press", party="B")
    w.add_event("start", roles=ROLES)
    for _ in range(30):
        w.add_audio(os.urandom(1600))
    w.add_gap(4000, "overflow")
    w.add_audio(os.urandom(1600))
    w.close("party_b")
    stick = tmp_path / "stick"
    stick.mkdir()
    result = export_copy(w.path, w.keys, stick, identity=kit.identity, clock=kit.clock,
                         custody=kit.custody)
    return kit, w, result.folder


def _listed(text: str) -> list[str]:
    block = text.split("\n\n")[-1] if not text.endswith("\n") else text.rstrip("\n")
    return [m.group(1) for m in re.finditer(r"^  (\S+\.\w+)\s", block + "\n", re.M)]


def test_times_are_local_with_the_zone_named(device_copy):
    _, _, folder = device_copy
    nl = (folder / "LEESMIJ.txt").read_text()
    en = (folder / "README.txt").read_text()
    assert re.search(r"Opgenomen op \d+ \w+ \d{4}, \d\d\.\d\d uur \(Nederlandse tijd, CES?T\)", nl)
    assert re.search(r"Recorded on \d+ \w+ \d{4}, \d\d:\d\d \(Netherlands time, CES?T\)", en)
    assert "UTC" not in nl and "UTC" not in en
    # FixedClock starts 2027-01-15 08:00 UTC: 09.00 in Amsterdam.
    assert "15 januari 2027, 09.00 uur" in nl


def test_parties_are_named_by_their_role(device_copy):
    _, _, folder = device_copy
    nl = (folder / "LEESMIJ.txt").read_text()
    en = (folder / "README.txt").read_text()
    assert "De opname is gestopt omdat partij B (professional) op de akkoord-knop drukte." \
        in nl.replace("\n", " ")
    assert "partij A (ouder / gezin) en partij B (professional)" in nl.replace("\n", " ")
    assert "party A (parent / family) and party B (professional)" in en.replace("\n", " ")


def test_gaps_read_as_a_person_says_them(device_copy):
    _, _, folder = device_copy
    nl = (folder / "LEESMIJ.txt").read_text().replace("\n", " ")
    assert "bij 0:01 in de opname ontbreekt 0,25 seconde geluid" in nl
    assert "Lengte: 1,8 seconden." in nl  # 31 segments of 50 ms and a 0.25 s gap


def test_readme_has_no_dutch_left(device_copy):
    _, _, folder = device_copy
    en = (folder / "README.txt").read_text()
    text = re.sub(r"\S+\.(wav|json|sig|pub|txt|html)", "", en.lower())
    text = re.sub(r"\b\w*\d\w*\b", "", text)  # ids and fingerprints: hex, not Dutch
    words = set(re.findall(r"[a-zà-ÿ]+", text))
    assert not words & _DUTCH, words & _DUTCH


def test_both_notices_list_exactly_the_files_in_the_folder(device_copy):
    kit, w, folder = device_copy
    for name in ("LEESMIJ.txt", "README.txt"):
        assert sorted(_listed((folder / name).read_text())) == sorted(os.listdir(folder))
    # The organisation's copy has no custody head: its notices do not list one.
    org_target = folder.parent.parent / "org"
    org_target.mkdir()
    signed_keys = load_content_keys(w.path, kit.org)
    res = write_copy(w.path, signed_keys, org_target, copy_number=2, made_by="organisation",
                     clock=FixedClock(), device_key=kit.identity.public, custody_head=None)
    assert "custody-head.json" not in os.listdir(res.folder)
    for name in ("LEESMIJ.txt", "README.txt"):
        listed = _listed((res.folder / name).read_text())
        assert sorted(listed) == sorted(os.listdir(res.folder)) and "custody-head.json" \
            not in listed


def test_the_clock_caveat_is_said_once(tmp_path):
    kit = make_kit(tmp_path / "k")
    kit.clock.quality = "unsynchronized"
    w, _ = record(kit)
    stick = tmp_path / "s"
    stick.mkdir()
    folder = export_copy(w.path, w.keys, stick, identity=kit.identity, clock=kit.clock,
                         custody=kit.custody).folder
    nl = (folder / "LEESMIJ.txt").read_text()
    assert nl.count("niet gelijkgezet") == 1


@pytest.mark.parametrize(("x", "nl", "en"), [
    (1.621, "1,6 seconden", "1.6 seconds"), (1, "1 seconde", "1 second"),
    (0.25, "0,25 seconde", "0.25 seconds"), (12, "12 seconden", "12 seconds"),
    (61, "1 minuut en 1 seconde", "1 minute and 1 second"),
])
def test_seconds_as_people_say_them(x, nl, en):
    assert seconds_nl(x) == nl and seconds_en(x) == en


def test_durations_and_positions():
    assert duration_nl(3725) == "1 uur, 2 minuten en 5 seconden"
    assert clock_position(72.9) == "1:12" and clock_position(3725) == "1:02:05"
