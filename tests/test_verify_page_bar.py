"""The page as a picture and as advice (issue 14), in headless Chromium: the time bar with
loudness computed from the checked audio, gaps, changed seconds in red and the timeline's
events; clicking a mark plays that moment; every verdict says what to do next; parties by
role, seconds as people say them, local time with its zone, the clock caveat once."""

from __future__ import annotations

from pathlib import Path

import pytest

from akkoord.export.package import write_copy
from copykit import AUDIO, RATE, at, flip_sample, read_wav, record_copy, tampered_copy
from storekit import make_kit, pcm

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")

UNTIL_DONE = (
    "s => { const r = window.akkoordResult;"
    " return r && r.seq > s && (r.stage === 'audio' || r.status === 'error'); }"
)
ROLES = {"A": {"nl": "ouder / gezin", "en": "parent / family"},
         "B": {"nl": "professional", "en": "professional"}}


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--disable-gpu",
                                    "--autoplay-policy=no-user-gesture-required"])
        ctx = b.new_context(bypass_csp=True)  # wait_for_function evaluates strings
        pg = ctx.new_page()
        pg.set_default_timeout(20_000)
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        yield pg, errors
        assert errors == [], errors
        b.close()


def check(pg, folder: Path) -> dict:
    pg.goto((folder / "verify.html").as_uri(), wait_until="commit")
    pg.wait_for_function("() => window.akkoordResult && window.akkoordResult.seq >= 1")
    seq = pg.evaluate("() => window.akkoordResult.seq")
    pg.set_input_files("#wav-input", str(folder / AUDIO))
    pg.wait_for_function(UNTIL_DONE, arg=seq)
    pg.wait_for_function("() => window.akkoordBar && window.akkoordBar.buckets > 0")
    return pg.evaluate("() => ({r: window.akkoordResult, bar: window.akkoordBar})")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return make_kit(tmp_path_factory.mktemp("bar"))


def test_the_bar_draws_loudness_gaps_and_events(page, kit):
    pg, _ = page
    made = record_copy(kit, segments=6, gap_after=2)
    got = check(pg, made.folder)
    assert got["r"]["status"] == "unchanged"
    bar = got["bar"]
    assert bar["buckets"] == 500 and bar["loud"] > 300  # test audio is loud noise
    assert bar["gaps"] == 1 and bar["changed"] == []
    assert {"press", "start", "stop"} <= set(bar["events"])
    assert pg.locator("#bar svg.bar rect.bar-level").count() == 500
    assert pg.locator("#bar rect.bar-gap").count() == 1
    assert pg.locator("#bar g.bar-event").count() == len(bar["events"])
    # The gap is silence in the file: its buckets are quiet, the rest loud.
    levels = pg.evaluate("() => Array.from(document.querySelectorAll('#bar rect.bar-level'))"
                         ".map(r => +r.getAttribute('height'))")
    gap_bucket = int((3 + 0.125) / 6.25 * 500)
    assert levels[gap_bucket] < 2 < levels[10]


def test_changed_seconds_are_red_and_a_click_plays_that_moment(page, kit, tmp_path):
    pg, _ = page
    made = record_copy(kit, segments=6, seed=3)
    changed = tampered_copy(made, tmp_path / "changed",
                            lambda d: flip_sample(d, at(4.5) // 2))
    got = check(pg, changed)
    assert got["r"]["status"] == "changed" and got["r"]["changed_seconds"] == [[4, 5]]
    assert got["bar"]["changed"] == [[4, 5]]
    assert pg.locator("#bar rect.bar-changed").count() == 1
    button = pg.locator("#bar ul.bar-list li.changed button.bar-play")
    assert button.inner_text() == "▶ 0:04"
    button.click()
    pg.wait_for_function("() => Math.abs(document.getElementById('player').currentTime - 4) < 0.5")
    assert "niet de oorspronkelijke opname" in pg.inner_text("#verdict-next")
    assert "nieuwe kopie" in pg.inner_text("#verdict-next")


def test_every_verdict_says_what_to_do_next(page, kit):
    pg, _ = page
    made = record_copy(kit, segments=3, seed=5)
    check(pg, made.folder)
    text = pg.inner_text("#verdict-next")
    assert text.startswith("Wat nu?") and "vingerafdruk" in text  # the stick's page: unanchored
    assert "manifest.json" in pg.inner_text("#embedded-note")  # what this page did not read
    pg.click("#lang")
    assert pg.inner_text("#verdict-next").startswith("What next?")
    pg.click("#lang")


def test_parties_by_role_seconds_as_said_local_time_and_the_clock_caveat_once(page, tmp_path):
    pg, _ = page
    kit = make_kit(tmp_path / "k")
    kit.clock.quality = "unsynchronized"
    w = kit.writer(rate=RATE, seg=RATE)
    w.add_event("press", party="A", before_start_seconds=1.621)
    w.add_event("press", party="B", before_start_seconds=0.0)
    w.add_event("start", roles=ROLES)
    for i in range(3):
        w.add_audio(pcm(i, RATE))
    w.close("party_b", party="B")
    stick = tmp_path / "stick"
    stick.mkdir()
    folder = write_copy(w.path, w.keys, stick, copy_number=1, made_by="device", clock=kit.clock,
                        device_key=kit.identity.public, custody_head=kit.custody.append(
                            "export", w.id, copy_number=1, stick_id_sha256=None).to_json()
                        ).folder
    assert read_wav(folder / AUDIO)[0] == RATE
    check(pg, folder)
    timeline = pg.inner_text("#timeline")
    assert "Partij A (ouder / gezin) drukte op de akkoord-knop (1,6 seconden voor de start)" \
        in timeline
    assert "1,621" not in timeline
    assert "niet gelijkgezet" not in timeline  # not on every line...
    assert pg.locator("#clock-note").count() == 1  # ...but said once
    assert "CET" in pg.inner_text("#recording")  # Europe/Amsterdam, with the zone named
    assert "gestopt omdat partij B (professional) op de knop drukte" in pg.inner_text("#recording")


def test_an_edited_manifest_json_is_explained_by_both_page_and_cli(page, kit, tmp_path, capsys):
    """The page on the stick checks the description built into it; the CLI checks the
    manifest.json beside it. Edit that file: the CLI says not OK *and* why the page differs;
    the page says what it checked. Neither contradicts the other without explanation."""
    import json

    from akkoord.cli import main

    pg, _ = page
    made = record_copy(kit, segments=3, seed=7)
    doc = json.loads((made.folder / "manifest.json").read_text())
    doc["duration_seconds"] = 999
    (made.folder / "manifest.json").write_text(json.dumps(doc))
    got = check(pg, made.folder)
    assert got["r"]["status"] == "unchanged"  # what the page checked: its own description
    assert "manifest.json" in pg.inner_text("#embedded-note")
    assert main(["verify", str(made.folder), "--device-key",
                 str(kit.state.keys_dir / "device.pub")]) == 1
    out = capsys.readouterr().out
    assert "not signed" in out.lower() and "differs from manifest.json" in out


def test_an_unfinished_partial_folder_is_not_a_finished_copy_on_the_generic_page(
        page, kit, tmp_path):
    import shutil

    from akkoord.export.verifypage import verify_page_template

    pg, _ = page
    made = record_copy(kit, segments=2, seed=9)
    partial = tmp_path / f".{made.folder.name}.1a2b3c4d.partial"
    shutil.copytree(made.folder, partial)  # every file whole, as a crash before the rename
    generic = tmp_path / "controle.html"
    generic.write_text(verify_page_template(), encoding="utf-8")
    pg.goto(generic.as_uri(), wait_until="commit")
    pg.wait_for_function("() => window.akkoordResult && window.akkoordResult.seq >= 1")
    seq = pg.evaluate("() => window.akkoordResult.seq")
    pg.set_input_files("#dir-input", str(partial))
    pg.wait_for_function(UNTIL_DONE, arg=seq)
    res = pg.evaluate("() => window.akkoordResult")
    assert res["status"] == "changed" and "unfinished_copy" in res["findings"]
    assert "onafgemaakte kopie" in pg.inner_text("#verdict")
    # The finished copy, picked the same way, is fine.
    seq = res["seq"]
    pg.set_input_files("#dir-input", str(made.folder))
    pg.wait_for_function(UNTIL_DONE, arg=seq)
    assert pg.evaluate("() => window.akkoordResult.status") == "unchanged"
