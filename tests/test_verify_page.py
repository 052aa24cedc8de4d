"""The offline verify page (assets/verify.html) in headless Chromium.

Every copy here is made by the project's own exporter (`write_copy`), then tampered with the
way a holder or a forger could. Each verdict and each changed-seconds range the page reaches
is asserted, and asserted equal to what the Python reference (`copycheck.verify_copy`, the
CLI's `akkoord verify`) reaches on the same files.

Debian's /usr/bin/chromium driven by Python Playwright; never a downloaded browser. Where
Debian's firefox-esr is installed, one smoke test runs the page there too (WebDriver BiDi).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import shutil
from pathlib import Path

import pytest

from akkoord.export.verifypage import PLACEHOLDER, verify_page_template
from akkoord.store.keys import DeviceIdentity, DevicePublicKey, fingerprint_display
from copykit import (
    AUDIO,
    RATE,
    Firefox,
    at,
    clone,
    flip_sample,
    generic_page,
    python_verdict,
    random_change,
    read_wav,
    record_copy,
    render_page,
    resign,
    samples,
    tampered_copy,
    write_wav,
    write_wav_with_extra_chunk,
)
from storekit import make_kit, pcm

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Python playwright is not installed (pip install playwright; it drives "
    "/usr/bin/chromium — never run `playwright install`)",
)

VECTORS = Path(__file__).parent / "vectors"
APP_MARKER = 'id="akkoord-verify-app"'
UNTIL_DONE = (
    "s => { const r = window.akkoordResult;"
    " return r.seq > s && (r.stage === 'audio' || r.status === 'error' || r.stage === 'start'); }"
)


# --- browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


def _watch(pg, problems: list[str]) -> None:
    pg.set_default_timeout(20_000)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on(  # the page is offline: nothing but file: URLs (and its own blob: playback), ever
        "request",
        lambda r: None
        if r.url.startswith(("file:", "blob:"))
        else problems.append(f"network: {r.url}"),
    )


@pytest.fixture(scope="module")
def context(browser):
    # Playwright's wait_for_function evaluates its predicate as a string, which the page's
    # own CSP forbids; test_page_runs_under_its_own_content_security_policy runs without this.
    ctx = browser.new_context(bypass_csp=True)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def shared(context):
    """One tab for the module: every test navigates it afresh (fast on a slow machine)."""
    problems: list[str] = []
    pg = context.new_page()
    _watch(pg, problems)
    yield pg, problems
    pg.close()


@pytest.fixture
def page(shared):
    pg, problems = shared
    problems.clear()
    yield pg
    assert problems == [], "the page misbehaved"


@pytest.fixture
def fresh_page(context):
    """A tab of its own, for tests that install init scripts."""
    problems: list[str] = []
    pg = context.new_page()
    _watch(pg, problems)
    yield pg
    pg.close()
    assert problems == [], "the page misbehaved"


def result(pg) -> dict:
    return pg.evaluate("() => window.akkoordResult")


def load(pg, html: Path) -> dict:
    pg.goto(html.as_uri(), wait_until="commit")
    pg.wait_for_function("() => window.akkoordResult && window.akkoordResult.seq >= 1")
    return result(pg)


def choose(pg, selector: str, files) -> dict:
    seq = result(pg)["seq"]
    pg.set_input_files(selector, files)
    pg.wait_for_function(UNTIL_DONE, arg=seq)
    return result(pg)


def check_wav(pg, wav: Path) -> dict:
    return choose(pg, "#wav-input", str(wav))


def drop(pg, files: dict[str, bytes]) -> dict:
    """Drag and drop `files` (name -> bytes) onto the page, as a holder would."""
    seq = result(pg)["seq"]
    dt = pg.evaluate_handle(
        """(files) => {
            const dt = new DataTransfer();
            for (const [name, b64] of files) {
                const bin = atob(b64), bytes = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                dt.items.add(new File([bytes], name));
            }
            return dt;
        }""",
        [[name, base64.b64encode(data).decode()] for name, data in files.items()],
    )
    pg.dispatch_event("#pick", "drop", {"dataTransfer": dt})
    pg.wait_for_function(UNTIL_DONE, arg=seq)
    return result(pg)


def copy_files(
    folder: Path,
    names=("manifest.json", "manifest.sig", "copy.json", "custody-head.json", AUDIO),
):
    return [str(folder / n) for n in names if (folder / n).exists()]


def verdict_text(pg) -> str:
    return pg.inner_text("#verdict")


def assert_agrees(res: dict, folder: Path, trusted: DevicePublicKey | None) -> None:
    """The page and the Python reference reach the same verdict and the same seconds."""
    expected = python_verdict(folder, trusted)
    assert (res["status"], res["changed_seconds"]) == expected, res["message"]


# --- recordings ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit():
    k = make_kit()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def made(kit):
    """Five 1-second segments, party B stopped: the copy every tamper case starts from."""
    return record_copy(kit, 5, seed=1)


@pytest.fixture(scope="module")
def stranger():
    return DeviceIdentity.generate()


# --- an untouched copy ---------------------------------------------------------------------


def test_unchanged_copy_shows_fingerprint_and_timeline_then_verifies(page, kit, made):
    res = load(page, made.folder / "verify.html")
    # Before any file is chosen: signature checked, fingerprint and timeline on screen.
    assert (res["stage"], res["status"], res["mode"]) == ("manifest", "waiting", "embedded")
    assert res["fingerprint"] == kit.identity.fingerprint
    # The page on the stick is made by the same hands as the copy: never the anchor.
    assert res["anchored"] is False and res["device_trusted"] is True
    assert page.inner_text("#fingerprint") == fingerprint_display(kit.identity.fingerprint)
    assert "website van de organisatie" in page.inner_text("#device")
    timeline = page.inner_text("#timeline")
    for phrase in (
        "Partij A drukte op de akkoord-knop (4,2 seconden voor de start)",  # as people say it
        "Partij B drukte op de akkoord-knop.",
        "De opname begon.",
        "De opname stopte omdat partij B op de knop drukte.",
    ):
        assert phrase in timeline
    assert "regel 6" in page.inner_text("#rules")
    assert "toestemming van de andere partij" in page.inner_text("#rules")

    res = check_wav(page, made.wav)
    assert (res["stage"], res["status"], res["changed_seconds"]) == ("audio", "unchanged", [])
    assert page.get_attribute("#verdict", "data-status") == "unchanged"
    # Genuine but not anchored: amber, never green, with what to compare.
    assert page.get_attribute("#verdict", "data-tone") == "warn"
    assert res["anchored"] is False and res["claims_signed"] is True
    assert "niet vast te stellen wie" in verdict_text(page)
    assert "Onveranderd" in verdict_text(page)
    assert_agrees(res, made.folder, kit.identity.public)


def test_page_is_accessible_and_switches_to_english(page, made, tmp_path):
    load(page, made.folder / "verify.html")
    verdict = page.locator("#verdict")
    assert verdict.get_attribute("aria-live") == "polite"
    assert verdict.get_attribute("role") == "status"
    # The file input has a visible label, and everything is reachable by keyboard.
    assert page.get_by_label("Geluidsbestand (opname.wav)").is_visible()
    assert page.evaluate("document.documentElement.lang") == "nl"
    page.focus("#lang")
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.akkoordResult.lang === 'en'")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.inner_text("#lang") == "Nederlands"
    assert "Now choose the audio file" in verdict_text(page)
    assert "organisation's website" in page.inner_text("#device")
    assert "Party A pressed the akkoord button" in page.inner_text("#timeline")

    res = check_wav(page, write_wav(tmp_path / AUDIO, made.audio[: at(2)] + made.audio[at(3) :]))
    assert res["status"] == "changed" and res["lang"] == "en"
    assert res["message"].startswith("Changed. Changed at second 2 to 3.")
    assert "cut out at second 2" in res["message"]
    page.click("#lang")
    page.wait_for_function("() => window.akkoordResult.lang === 'nl'")
    assert result(page)["message"].startswith("Veranderd. Veranderd bij seconde 2 tot 3.")
    assert result(page)["seq"] == res["seq"]  # re-rendered, not re-checked


# --- changed audio -------------------------------------------------------------------------

TAMPER = {
    # name: (change to the data chunk, status, changed seconds, a phrase of the verdict)
    "cut_1s": (
        lambda d: d[: at(2)] + d[at(3) :],
        "changed",
        [[2, 3]],
        "Er is 1 seconde geluid weggeknipt, bij seconde 2.",
    ),
    "duplicated_1s": (
        lambda d: d[: at(2)] + d[at(1) : at(2)] + d[at(2) :],
        "changed",
        [[2, 3]],
        "Er is 1 seconde geluid tussengevoegd, bij seconde 2.",
    ),
    "silenced_1s": (
        lambda d: d[: at(2)] + bytes(at(1)) + d[at(3) :],
        "changed",
        [[2, 3]],
        "Veranderd bij seconde 2 tot 3.",
    ),
    "one_sample": (
        lambda d: flip_sample(d, samples(2.5)),
        "changed",
        [[2, 3]],
        "Veranderd bij seconde 2 tot 3.",
    ),
    "two_places": (
        lambda d: flip_sample(flip_sample(d, samples(0.5)), samples(3.5)),
        "changed",
        [[0, 1], [3, 4]],
        "Veranderd bij seconde 0 tot 1 en 3 tot 4.",
    ),
    "neighbours_merge": (
        lambda d: flip_sample(flip_sample(d, samples(1.5)), samples(2.5)),
        "changed",
        [[1, 3]],
        "Veranderd bij seconde 1 tot 3.",
    ),
    "end_cut_off": (
        lambda d: d[: at(4.5)],
        "changed",
        [[4, 5]],
        "Het geluid is 0,5 seconde korter dan de opname.",
    ),
    "appended": (
        lambda d: d + pcm(99, samples(0.5)),
        "changed",
        [],
        "Het geluid is 0,5 seconde langer dan de opname.",
    ),
    "half_sample": (
        lambda d: d + b"\x01",
        "changed",
        [],
        "midden in een geluidsmonster",
    ),
    "all_replaced": (
        lambda d: pcm(7, len(d) // 2),
        "wrong_recording",
        [[0, 5]],
        "Deze opname hoort niet bij deze kopie",
    ),
}


@pytest.mark.parametrize("name", list(TAMPER))
def test_changed_audio_is_located_to_the_second_like_the_cli(page, kit, made, tmp_path, name):
    change, status, seconds, phrase = TAMPER[name]
    folder = tampered_copy(made, tmp_path / "copy", change)
    load(page, folder / "verify.html")
    res = check_wav(page, folder / AUDIO)
    assert (res["status"], res["changed_seconds"]) == (status, seconds), res["message"]
    assert page.get_attribute("#verdict", "data-status") == status
    assert phrase in verdict_text(page)
    assert_agrees(res, folder, kit.identity.public)


@pytest.mark.parametrize("window", [4096, 40_000])
@pytest.mark.parametrize("name", ["cut_1s", "duplicated_1s", "two_places"])
def test_small_read_windows_give_the_same_answer(fresh_page, kit, made, tmp_path, name, window):
    """The WAV is read in File.slice windows (8 MiB by default); tiny windows force many
    reads, some straddling segments, as an hour-long file does."""
    change, status, seconds, _ = TAMPER[name]
    folder = tampered_copy(made, tmp_path / "copy", change)
    fresh_page.add_init_script(f"window.AKKOORD_WINDOW_BYTES = {window};")
    load(fresh_page, folder / "verify.html")
    res = check_wav(fresh_page, folder / AUDIO)
    assert (res["status"], res["changed_seconds"]) == (status, seconds)
    assert_agrees(res, folder, kit.identity.public)


def test_seconds_are_rounded_like_python(page, kit, tmp_path):
    """1/16 s segments put range ends on exact binary ties (0.0625 s): Python's round()
    takes them to even (0.062), JavaScript's toFixed would not."""
    m = record_copy(kit, 4, seed=81, seg=1000)
    folder = tampered_copy(m, tmp_path / "copy", lambda d: flip_sample(d, 1500))
    load(page, folder / "verify.html")
    res = check_wav(page, folder / AUDIO)
    assert (res["status"], res["changed_seconds"]) == ("changed", [[0.062, 0.125]])
    assert_agrees(res, folder, kit.identity.public)


def test_random_changes_agree_with_the_cli(page, kit, tmp_path):
    """Cuts, insertions, swaps… at arbitrary samples, across segment ends and a gap."""
    m = record_copy(kit, 40, seed=80, seg=1000, gap_after=7, gap_samples=333)
    rng = random.Random(5)
    load(page, m.folder / "verify.html")
    for i in range(16):
        what, data = random_change(rng, m.audio)
        folder = tampered_copy(m, tmp_path / f"c{i}", lambda _d, data=data: data)
        res = check_wav(page, folder / AUDIO)
        expected = python_verdict(folder, kit.identity.public)
        assert (res["status"], res["changed_seconds"]) == expected, what


def test_resaved_wav_with_extra_chunks_is_refused(page, kit, made, tmp_path):
    """A re-saved WAV (a LIST chunk before the audio) is no longer the one layout a copy has:
    the same samples, but a finding (FORMAT.md §9 step 4), in both verifiers."""
    folder = clone(made.folder, tmp_path / "copy")
    write_wav_with_extra_chunk(folder / AUDIO, made.audio)
    load(page, folder / "verify.html")
    res = check_wav(page, folder / AUDIO)
    assert (res["status"], res["findings"]) == ("changed", ["wav_not_canonical"])
    assert res["playback"] is False
    assert_agrees(res, folder, kit.identity.public)


def test_wav_with_another_sample_rate_is_changed(page, kit, made, tmp_path):
    folder = clone(made.folder, tmp_path / "copy")
    write_wav(folder / AUDIO, made.audio, rate=RATE // 2)
    load(page, folder / "verify.html")
    res = check_wav(page, folder / AUDIO)
    assert (res["status"], res["changed_seconds"]) == ("changed", [])
    assert "ander formaat" in verdict_text(page)
    assert_agrees(res, folder, kit.identity.public)


# --- another recording, another device -----------------------------------------------------


@pytest.mark.parametrize("seconds", [5, 3])
def test_manifest_of_another_recording(page, kit, made, tmp_path, seconds):
    """The page and files of another recording (same device), with this recording's WAV."""
    other = record_copy(kit, seconds, seed=20 + seconds)
    folder = clone(other.folder, tmp_path / "mixed")
    shutil.copyfile(made.wav, folder / AUDIO)
    res = load(page, folder / "verify.html")
    assert res["status"] == "waiting"  # the signature is fine: it is the audio that is not
    res = check_wav(page, folder / AUDIO)
    assert res["status"] == "wrong_recording"
    assert res["changed_seconds"] == [[0, seconds]]
    assert "Deze opname hoort niet bij deze kopie" in verdict_text(page)
    assert_agrees(res, folder, kit.identity.public)


def _expect_other_device(folder, kit, stranger):
    render_page(folder / "verify.html", folder, stranger.public)
    return stranger.public


def _resigned_by_other_device(folder, kit, stranger):
    resign(folder, stranger, name_signer=True)
    render_page(folder / "verify.html", folder, kit.identity.public)
    return kit.identity.public


def _signature_by_other_key(folder, kit, stranger):
    resign(folder, stranger, name_signer=False)
    render_page(folder / "verify.html", folder, kit.identity.public)
    return kit.identity.public


def _manifest_edited(folder, kit, stranger):
    path = folder / "manifest.json"
    data = path.read_bytes()
    edited = data.replace(b'"reason":"party_b"', b'"reason":"party_a"')
    assert edited != data and len(edited) == len(data)
    path.write_bytes(edited)
    render_page(folder / "verify.html", folder, kit.identity.public)
    return kit.identity.public


DEVICE_CASES = {
    "expected_key_of_another_device": (_expect_other_device, "wrong_device"),
    "resigned_by_another_device": (_resigned_by_other_device, "wrong_device"),
    "signature_by_another_key": (_signature_by_other_key, "not_signed"),
    "manifest_edited_after_signing": (_manifest_edited, "not_signed"),
}


@pytest.mark.parametrize("name", list(DEVICE_CASES))
def test_not_signed_by_this_device(page, kit, made, stranger, tmp_path, name):
    prepare, status = DEVICE_CASES[name]
    folder = clone(made.folder, tmp_path / "copy")
    trusted = prepare(folder, kit, stranger)
    res = load(page, folder / "verify.html")
    # Known at once, before the audio is chosen.
    assert (res["stage"], res["status"]) == ("manifest", status)
    assert "Niet ondertekend door dit apparaat" in verdict_text(page)
    assert page.get_attribute("#verdict", "data-status") == status
    if status == "not_signed":
        assert "niet ondertekend" in page.inner_text("#timeline")
    res = check_wav(page, folder / AUDIO)
    assert (res["stage"], res["status"], res["changed_seconds"]) == ("audio", status, [])
    assert_agrees(res, folder, trusted)


# --- interrupted, gaps, simulated ----------------------------------------------------------


def test_interrupted_recording_verifies_and_says_so(page, kit, tmp_path):
    m = record_copy(kit, 3, seed=30, interrupted=True)
    res = load(page, m.folder / "verify.html")
    assert res["recording_status"] == "interrupted"
    assert "onderbroken" in verdict_text(page)
    # The frames recovered after the last signed checkpoint are disclosed (FORMAT.md §11.2).
    tail = json.loads((m.folder / "manifest.json").read_text())["unsigned_tail"]
    assert tail["frames"] > 0 and res["unsigned_tail_seconds"] == tail["seconds"]
    assert "niet ondertekend" in verdict_text(page)
    assert "onderbroken door stroomuitval" in page.inner_text("#timeline")
    assert "Onderbroken door stroomuitval" in page.inner_text("#recording")
    res = check_wav(page, m.wav)
    assert (res["status"], res["changed_seconds"]) == ("unchanged", [])
    assert "onderbroken" in verdict_text(page)
    assert_agrees(res, m.folder, kit.identity.public)
    # Cut inside an interrupted recording is still found.
    folder = tampered_copy(m, tmp_path / "cut", lambda d: d[: at(1)] + d[at(2) :])
    res = check_wav(page, folder / AUDIO)
    assert (res["status"], res["changed_seconds"]) == ("changed", [[1, 2]])
    assert_agrees(res, folder, kit.identity.public)


def test_gap_is_silence_in_the_copy_and_listed(page, kit, tmp_path):
    m = record_copy(kit, 3, seed=40, gap_after=0)  # 0.25 s gap at second 1
    load(page, m.folder / "verify.html")
    timeline = page.inner_text("#timeline")
    assert "Hier ontbreekt 0,25 seconde geluid" in timeline
    assert "1 gat" in page.inner_text("#recording")
    res = check_wav(page, m.wav)
    assert (res["status"], res["changed_seconds"]) == ("unchanged", [])
    assert_agrees(res, m.folder, kit.identity.public)

    # Sound pasted into the gap is a change there, and only there.
    filled = tampered_copy(
        m, tmp_path / "filled", lambda d: d[: at(1)] + pcm(5, samples(0.25)) + d[at(1.25) :]
    )
    res = check_wav(page, filled / AUDIO)
    assert (res["status"], res["changed_seconds"]) == ("changed", [[1, 1.25]])
    assert_agrees(res, filled, kit.identity.public)

    # The gap joined away (silence removed) is a cut of 0.25 s at second 1.
    joined = tampered_copy(m, tmp_path / "joined", lambda d: d[: at(1)] + d[at(1.25) :])
    res = check_wav(page, joined / AUDIO)
    assert (res["status"], res["changed_seconds"]) == ("changed", [[1, 1.25]])
    assert "0,25 seconde geluid weggeknipt, bij seconde 1" in verdict_text(page)
    assert_agrees(res, joined, kit.identity.public)


def test_simulated_recording_is_marked_as_proefopname(page, kit):
    m = record_copy(kit, 2, seed=50, simulated=True)
    res = load(page, m.folder / "verify.html")
    assert res["simulated"] is True
    assert "proefopname" in verdict_text(page)
    res = check_wav(page, m.wav)
    assert res["status"] == "unchanged"
    assert "proefopname" in verdict_text(page)
    assert "Proefopname (simulator)" in page.inner_text("#recording")


# --- generic mode (no data block) ----------------------------------------------------------


def test_generic_mode_checks_the_chosen_files(page, kit, made, tmp_path):
    res = load(page, generic_page(tmp_path / "verify.html"))
    assert (res["mode"], res["stage"], res["status"]) == ("generic", "start", "waiting")
    assert page.is_visible("#files-input") and page.is_visible("#dir-input")
    assert not page.is_visible("#wav-input")
    res = choose(page, "#files-input", copy_files(made.folder))
    assert (res["status"], res["changed_seconds"]) == ("unchanged", [])
    assert res["anchored"] is False and res["device_trusted"] is None
    assert res["fingerprint"] == kit.identity.fingerprint
    assert page.inner_text("#fingerprint") == fingerprint_display(kit.identity.fingerprint)
    assert "Jeugdzorg Testregio" in page.inner_text("#device")  # claimed, not vouched for
    assert "website van de organisatie" in verdict_text(page)
    assert_agrees(res, made.folder, None)


def test_generic_mode_takes_the_whole_folder(page, made, tmp_path):
    folder = tampered_copy(made, tmp_path / "kopie", TAMPER["cut_1s"][0])
    load(page, generic_page(tmp_path / "verify.html"))
    res = choose(page, "#dir-input", str(folder))
    assert (res["status"], res["changed_seconds"]) == ("changed", [[2, 3]])
    assert_agrees(res, folder, None)


def test_dropping_the_wav_on_the_page(page, kit, made, tmp_path):
    folder = tampered_copy(made, tmp_path / "copy", TAMPER["silenced_1s"][0])
    load(page, folder / "verify.html")
    res = drop(page, {"opname.wav": (folder / AUDIO).read_bytes()})
    assert (res["status"], res["changed_seconds"]) == ("changed", [[2, 3]])
    assert_agrees(res, folder, kit.identity.public)
    # Dropping the copy's files together: the page takes the audio file copy.json names.
    res = drop(page, {n: (made.folder / n).read_bytes() for n in ("copy.json", AUDIO)})
    assert (res["status"], res["changed_seconds"]) == ("unchanged", [])


def test_dropping_the_copy_files_in_generic_mode(page, made, tmp_path):
    folder = tampered_copy(made, tmp_path / "copy", TAMPER["duplicated_1s"][0])
    load(page, generic_page(tmp_path / "verify.html"))
    names = ("manifest.json", "manifest.sig", "copy.json", "custody-head.json", AUDIO)
    res = drop(page, {n: (folder / n).read_bytes() for n in names})
    assert (res["status"], res["changed_seconds"]) == ("changed", [[2, 3]])
    assert_agrees(res, folder, None)


def test_generic_mode_files_one_at_a_time(page, made, tmp_path):
    load(page, generic_page(tmp_path / "verify.html"))
    res = choose(page, "#files-input", [str(made.wav)])
    assert (res["stage"], res["status"]) == ("start", "waiting")
    assert "Nog nodig: manifest.json, copy.json" in verdict_text(page)
    res = choose(page, "#files-input", copy_files(made.folder, ("manifest.sig", "copy.json")))
    assert "Nog nodig: manifest.json" in verdict_text(page)
    res = choose(page, "#files-input", [str(made.folder / "manifest.json")])
    assert "Nog nodig: custody-head.json" in verdict_text(page)  # a device copy has one
    res = choose(page, "#files-input", [str(made.folder / "custody-head.json")])
    assert (res["status"], res["changed_seconds"]) == ("unchanged", [])


def test_generic_mode_shows_whichever_device_signed(page, made, stranger, tmp_path):
    """Without an anchored key a forger's own signature checks out: only the fingerprint,
    compared with the organisation's, tells. The page must show the forger's."""
    folder = clone(made.folder, tmp_path / "copy")
    resign(folder, stranger)
    load(page, generic_page(tmp_path / "verify.html"))
    res = choose(page, "#files-input", copy_files(folder))
    assert res["status"] == "unchanged" and res["fingerprint"] == stranger.fingerprint
    assert res["anchored"] is False  # amber: a party's own key is never green
    assert page.get_attribute("#verdict", "data-tone") == "warn"
    assert page.inner_text("#fingerprint") == fingerprint_display(stranger.fingerprint)
    assert_agrees(res, folder, None)


def test_generic_mode_without_signature_is_not_signed(page, made, tmp_path):
    folder = clone(made.folder, tmp_path / "copy")
    (folder / "manifest.sig").unlink()
    load(page, generic_page(tmp_path / "verify.html"))
    res = choose(page, "#files-input", copy_files(folder))
    assert res["status"] == "not_signed"
    assert "manifest.sig" in verdict_text(page)
    assert_agrees(res, folder, None)


def test_generic_mode_refuses_two_copies_at_once(page, kit, made, tmp_path):
    other = record_copy(kit, 2, seed=60)
    both = tmp_path / "stick"
    clone(made.folder, both / "a")
    clone(other.folder, both / "b")
    load(page, generic_page(tmp_path / "verify.html"))
    res = choose(page, "#dir-input", str(both))
    assert (res["stage"], res["status"]) == ("start", "waiting")
    assert "meer dan één kopie" in verdict_text(page)


# --- hostile input -------------------------------------------------------------------------

EVIL = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def test_manifest_strings_are_text_never_html(page, kit, tmp_path):
    m = record_copy(kit, 2, seed=70, note=EVIL)
    load(page, m.folder / "verify.html")
    assert EVIL in page.inner_text("#timeline")
    assert page.evaluate("document.querySelectorAll('main img, main script').length") == 0
    res = check_wav(page, m.wav)
    assert res["status"] == "unchanged"
    assert page.evaluate("window.pwned") is None


def test_copy_data_cannot_break_out_of_its_script_element(page, kit, made, tmp_path):
    folder = clone(made.folder, tmp_path / "copy")
    copy = json.loads((folder / "copy.json").read_bytes())
    copy["made_by"] = "</script><script>window.pwned=3</script>" + EVIL
    (folder / "copy.json").write_text(json.dumps(copy))
    render_page(folder / "verify.html", folder, kit.identity.public)
    load(page, folder / "verify.html")
    res = check_wav(page, folder / AUDIO)
    # copy.json's maker is no longer what the device signed in its custody record.
    assert res["status"] == "changed" and res["findings"] == ["custody_head"]
    assert page.evaluate("window.pwned") is None
    assert_agrees(res, folder, kit.identity.public)


def test_a_file_that_is_not_a_wav_is_a_clear_error(page, kit, made, tmp_path):
    folder = clone(made.folder, tmp_path / "copy")
    (folder / AUDIO).write_bytes(b"this is not audio\n" * 10)
    load(page, folder / "verify.html")
    res = check_wav(page, folder / AUDIO)
    assert res["status"] == "changed" and res["findings"] == ["wav_not_canonical"]
    assert "geen WAV-bestand" in verdict_text(page)
    assert_agrees(res, folder, kit.identity.public)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("manifest.json", b"{ not json", "bad_json"),
        ("manifest.json", b"[1, 2, 3]\n", "not_object"),
        ("copy.json", b'{"format": "something-else/1"}', "copy_format"),
    ],
)
def test_malformed_files_are_a_clear_error(page, made, tmp_path, name, content, error):
    folder = clone(made.folder, tmp_path / "copy")
    (folder / name).write_bytes(content)
    load(page, generic_page(tmp_path / "verify.html"))
    res = choose(page, "#files-input", copy_files(folder))
    assert (res["status"], res["error"]) == ("error", error)
    assert page.get_attribute("#verdict", "data-status") == "error"
    assert "Controle niet mogelijk" in verdict_text(page)
    assert_agrees(res, folder, None)


@pytest.mark.parametrize(
    "block",
    [
        '{"manifest": "not base64!!", "signature": "", "copy": {}, "expected_device_key": ""}',
        '{"manifest": ',
        "[]",
    ],
)
def test_damaged_data_block_is_a_clear_error(page, tmp_path, block):
    html = tmp_path / "verify.html"
    html.write_text(
        verify_page_template().replace(
            PLACEHOLDER, f'<script type="application/json" id="akkoord-copy">{block}</script>'
        )
    )
    res = load(page, html)
    assert (res["status"], res["error"]) == ("error", "page_data")
    assert "beschadigd" in verdict_text(page)


# --- the page as a file ------------------------------------------------------------------


def _inline_script(html: str) -> str:
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1, "the page has exactly one executable inline script"
    return scripts[0]


def test_template_is_self_contained_and_pins_its_script():
    html = verify_page_template()
    assert html.count(PLACEHOLDER) == 1
    for needle in (
        "http://",
        "https://",
        "<link",
        " src=",
        "@import",
        "url(",
        "eval(",
        "innerHTML",
    ):
        assert needle not in html.replace("http-equiv", ""), needle
    digest = base64.b64encode(hashlib.sha256(_inline_script(html).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html, (
        "verify.html's Content-Security-Policy must pin the inline script: after editing the "
        f"script, set script-src 'sha256-{digest}' in its <meta http-equiv> tag"
    )


def test_page_runs_under_its_own_content_security_policy(browser, made):
    ctx = browser.new_context()  # the page's CSP enforced
    try:
        pg = ctx.new_page()
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto((made.folder / "verify.html").as_uri())
        pg.wait_for_selector('#verdict[data-status="waiting"]', timeout=20_000)
        pg.set_input_files("#wav-input", str(made.wav))
        pg.wait_for_selector('#verdict[data-status="unchanged"]', timeout=20_000)
        assert errors == []
    finally:
        ctx.close()


def test_page_is_readable_on_a_phone(browser, made):
    ctx = browser.new_context(viewport={"width": 360, "height": 740}, bypass_csp=True)
    try:
        pg = ctx.new_page()
        load(pg, made.folder / "verify.html")
        check_wav(pg, made.wav)
        assert pg.evaluate("document.documentElement.scrollWidth") <= 360
        size = pg.evaluate("parseFloat(getComputedStyle(document.querySelector('.word')).fontSize)")
        assert size >= 24
    finally:
        ctx.close()


# --- tests/vectors -------------------------------------------------------------------------

VECTOR_COPIES = sorted(VECTORS.glob("*/copy"))
VECTOR_PARAMS = [pytest.param(c, id=c.parent.name) for c in VECTOR_COPIES] or [
    pytest.param(None, marks=pytest.mark.skip(reason="no tests/vectors/*/copy/ yet (make vectors)"))
]


def _vector_device() -> DevicePublicKey:
    return DevicePublicKey.load(VECTORS / "device.pub")


@pytest.mark.parametrize("how", ["embedded", "stored", "generic"])
@pytest.mark.parametrize("copy_dir", VECTOR_PARAMS)
def test_vectors_verify_as_expected(page, tmp_path, copy_dir, how):
    expected = json.loads((copy_dir.parent / "expected-verify-copy.json").read_text())
    device = _vector_device()
    trusted: DevicePublicKey | None = device
    if how == "embedded":  # the current page, filled with this copy's data
        html = render_page(tmp_path / "verify.html", copy_dir, device)
    elif how == "stored":  # the page the vector was made with
        html = copy_dir / "verify.html"
        if APP_MARKER not in html.read_text(encoding="utf-8"):
            pytest.skip("this vector's verify.html predates the page: regenerate (make vectors)")
    else:
        html = generic_page(tmp_path / "verify.html")
        trusted = None
    load(page, html)
    if how == "generic":
        res = choose(page, "#files-input", copy_files(copy_dir))
    else:
        res = check_wav(page, copy_dir / AUDIO)
    assert res["status"] == expected["status"], res["message"]
    assert res["changed_seconds"] == expected["changed_seconds"]
    assert res["recording_status"] == expected["recording_status"]
    assert res["fingerprint"] == expected["device"]["fingerprint"]
    assert res["simulated"] == bool(expected["simulated"])
    assert_agrees(res, copy_dir, trusted)


@pytest.mark.parametrize("copy_dir", VECTOR_PARAMS)
def test_vectors_tampered_agree_with_the_cli(page, tmp_path, copy_dir):
    rate, data = read_wav(copy_dir / AUDIO)
    sec = rate * 2
    device = _vector_device()
    for name, changed in {
        "cut": data[:sec] + data[2 * sec :],
        "silenced": data[:sec] + bytes(sec) + data[2 * sec :],
        "duplicated": data[: 2 * sec] + data[sec:],
    }.items():
        folder = clone(copy_dir, tmp_path / name)
        write_wav(folder / AUDIO, changed, rate=rate)
        render_page(folder / "verify.html", folder, device)
        load(page, folder / "verify.html")
        res = check_wav(page, folder / AUDIO)
        assert res["status"] == "changed", (name, res["message"])
        assert_agrees(res, folder, device)


# --- Firefox -------------------------------------------------------------------------------

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")


@pytest.mark.skipif(
    FIREFOX is None, reason="no firefox-esr here (apt-get install firefox-esr); Chromium only"
)
def test_page_works_in_firefox(kit, made, stranger, tmp_path):
    """The same page in Firefox (its own WebCrypto Ed25519, File.slice…), same verdicts."""
    cut = tampered_copy(made, tmp_path / "cut", TAMPER["cut_1s"][0])
    unsigned = clone(made.folder, tmp_path / "unsigned")
    _signature_by_other_key(unsigned, kit, stranger)
    ff = Firefox(FIREFOX)
    try:
        for folder, trusted in ((made.folder, kit.identity.public), (cut, kit.identity.public)):
            ff.open(folder / "verify.html")
            res = ff.choose("#wav-input", [folder / AUDIO])
            assert_agrees(res, folder, trusted)
        assert res["changed_seconds"] == [[2, 3]]
        res = ff.open(unsigned / "verify.html")
        assert res["status"] == "not_signed"
        ff.open(generic_page(tmp_path / "verify.html"))
        res = ff.choose("#files-input", [Path(f) for f in copy_files(cut)])
        assert res["status"] == "changed" and res["device_anchored"] is False
        assert_agrees(res, cut, None)
        assert (
            ff.evaluate("document.querySelector('#verdict').dataset.status")["value"] == "changed"
        )
    finally:
        ff.close()
