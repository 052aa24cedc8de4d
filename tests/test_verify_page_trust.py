"""verify.html against issue 8: anchored (green) only on the organisation's published page,
amber for a genuine but unanchored copy, red for every attack; canonical WAV; strict Ed25519;
playback of exactly the checked bytes; bounded work. Each verdict is also compared with the
Python reference (`copycheck.verify_copy` with the same trust), so CLI and page agree.

Debian's /usr/bin/chromium through Python Playwright, as tests/test_verify_page.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest

from akkoord.export.copycheck import verify_copy
from akkoord.export.verifypage import render_published_page
from akkoord.store.keys import DeviceIdentity, fingerprint_display
from akkoord.store.manifest import manifest_bytes
from akkoord.trust import OrgSigningKey, format_time, parse_envelope, revocation_list
from copykit import AUDIO, RATE, clone, record_copy, resign
from storekit import SIGNING, make_kit

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

FILES = ("manifest.json", "manifest.sig", "copy.json", "custody-head.json", AUDIO)
DONE = (
    "s => { const r = window.akkoordResult;"
    " return r.seq > s && (r.stage === 'audio' || r.status === 'error' || r.stage === 'start'); }"
)


@pytest.fixture(scope="module")
def page():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--disable-gpu"])
        ctx = b.new_context(bypass_csp=True)
        pg = ctx.new_page()
        pg.set_default_timeout(20_000)
        problems: list[str] = []
        pg.on("pageerror", lambda e: problems.append(str(e)))
        pg.on("request", lambda r: None if r.url.startswith(("file:", "blob:"))
              else problems.append(r.url))
        yield pg
        assert problems == []
        b.close()


@pytest.fixture(scope="module")
def kit():
    k = make_kit()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def made(kit):
    return record_copy(kit, 3, seed=21)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """The page the organisation publishes: its signing key built in."""
    out = tmp_path_factory.mktemp("site") / "controle.html"
    out.write_text(render_published_page(SIGNING.public), encoding="utf-8")
    return out


def run(pg, html: Path, folder: Path, names=FILES) -> dict:
    pg.goto(html.as_uri(), wait_until="commit")
    pg.wait_for_function("() => window.akkoordResult && window.akkoordResult.seq >= 1")
    seq = pg.evaluate("() => window.akkoordResult.seq")
    pg.set_input_files("#files-input", [str(folder / n) for n in names if (folder / n).exists()])
    pg.wait_for_function(DONE, arg=seq)
    return pg.evaluate("() => window.akkoordResult")


def python(folder: Path, trust=(SIGNING.public,), revocations=()) -> tuple[str, bool]:
    rep = verify_copy(folder, None, trust, revocations)
    status = rep.status
    if status == "changed" and any(f.code == "wrong_recording" for f in rep.findings):
        status = "wrong_recording"
    return status, rep.anchored


def test_honest_copy_is_green_on_the_published_page_with_organisation_and_key(page, published,
                                                                              made):
    res = run(page, published, made.folder)
    assert (res["status"], res["anchored"]) == ("unchanged", True)
    assert page.get_attribute("#verdict", "data-tone") == "ok"
    assert res["organisation"] == SIGNING.organisation
    assert res["org_fingerprint"] == SIGNING.fingerprint
    assert page.inner_text("#org-fingerprint") == fingerprint_display(SIGNING.fingerprint)
    assert SIGNING.organisation in page.inner_text("#organisation")
    assert (res["status"], res["anchored"]) == python(made.folder)


def test_the_page_on_the_stick_is_amber_never_green(page, made):
    res = run(page, made.folder / "verify.html", made.folder, (AUDIO,))
    assert (res["status"], res["anchored"]) == ("unchanged", False)
    assert page.get_attribute("#verdict", "data-tone") == "warn"
    text = page.inner_text("#verdict")
    assert "niet vast te stellen wie" in text
    # What to compare: the organisation signing key the copy claims.
    assert fingerprint_display(SIGNING.fingerprint) in text
    assert python(made.folder, ()) == ("unchanged", False)


def test_playback_is_exactly_the_checked_bytes(page, published, made):
    run(page, published, made.folder)
    assert page.is_visible("#player")
    digest = page.evaluate(
        """async () => {
            const src = document.getElementById('player').src;
            const buf = await (await fetch(src)).arrayBuffer();
            const h = await crypto.subtle.digest('SHA-256', buf);
            return Array.from(new Uint8Array(h)).map(b => b.toString(16).padStart(2, '0')).join('');
        }"""
    )
    assert digest == hashlib.sha256((made.folder / AUDIO).read_bytes()).hexdigest()
    assert page.evaluate("document.getElementById('player').src").startswith("blob:")


def test_forgery_under_a_partys_own_key_is_amber(page, published, made, tmp_path):
    folder = clone(made.folder, tmp_path / "forged")
    resign(folder, DeviceIdentity.generate())
    res = run(page, published, folder)
    assert (res["status"], res["anchored"], res["chain_status"]) == (
        "unchanged", False, "no_certificate")
    assert page.get_attribute("#verdict", "data-tone") == "warn"
    assert (res["status"], res["anchored"]) == python(folder)


def test_keeping_the_real_certificate_on_a_forgery_is_red(page, published, made, tmp_path):
    folder = clone(made.folder, tmp_path / "forged-cert")
    cert = json.loads((made.folder / "manifest.json").read_bytes())["device"]["certificate"]
    forger = DeviceIdentity.generate()
    resign(folder, forger)
    doc = json.loads((folder / "manifest.json").read_bytes())
    doc["device"]["certificate"] = cert
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    resign(folder, forger, name_signer=False)
    res = run(page, published, folder)
    assert (res["status"], res["chain_status"]) == ("wrong_device", "wrong_key")
    assert page.get_attribute("#verdict", "data-tone") == "bad"
    assert python(folder)[0] == "wrong_device"


def test_revoked_certificate_is_red_on_a_page_published_with_the_list(page, made, tmp_path):
    serial = json.loads((made.folder / "manifest.json").read_bytes())["device"]["certificate"][
        "statement"]["serial"]
    rl = revocation_list(SIGNING, 1, [{"serial": serial, "revoked_at": format_time(0),
                                       "reason": "key_compromise"}], 0)
    html = tmp_path / "controle.html"
    html.write_text(render_published_page(SIGNING.public, [parse_envelope(rl, "rl")]),
                    encoding="utf-8")
    res = run(page, html, made.folder)
    assert (res["status"], res["chain_status"]) == ("wrong_device", "revoked")
    assert "ingetrokken" in page.inner_text("#verdict")
    assert python(made.folder, revocations=[rl])[0] == "wrong_device"


def test_certificate_from_an_untrusted_organisation_is_amber(page, made, tmp_path):
    other = OrgSigningKey.generate("Andere Organisatie")
    html = tmp_path / "controle.html"
    html.write_text(render_published_page(other.public), encoding="utf-8")
    res = run(page, html, made.folder)
    assert (res["status"], res["anchored"], res["chain_status"]) == (
        "unchanged", False, "untrusted_organisation")
    assert python(made.folder, (other.public,)) == ("unchanged", False)


def test_identity_key_forgery_is_not_signed(page, published, made, tmp_path):
    folder = clone(made.folder, tmp_path / "identity")
    doc = json.loads((folder / "manifest.json").read_bytes())
    ident = (1).to_bytes(32, "little")
    doc["device"] = {"algorithm": "ed25519", "public_key": base64.b64encode(ident).decode()}
    doc["timeline"] = []
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    (folder / "manifest.sig").write_bytes(base64.b64encode(ident + bytes(32)) + b"\n")
    res = run(page, published, folder)
    assert res["status"] == "not_signed" and res["audio_checked"] is False
    assert python(folder)[0] == "not_signed"


def _fmt(rate: int, channels: int) -> bytes:
    return struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, channels, rate, rate * channels * 2,
                       channels * 2, 16)


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


def _data(pcm: bytes) -> bytes:
    return b"data" + struct.pack("<I", len(pcm)) + pcm


@pytest.mark.parametrize(
    "build",
    [
        lambda a: _riff(_fmt(RATE, 1) + _data(a) + _data(bytes(len(a)))),
        lambda a: _riff(_fmt(RATE // 2, 2) + _fmt(RATE, 1) + _data(a)),
        lambda a: _riff(_fmt(RATE, 1) + _data(a) + b"junk" + struct.pack("<I", 2) + b"xx"),
    ],
    ids=["two_data", "two_fmt", "trailing_junk"],
)
def test_non_canonical_wav_is_red_in_both(page, published, made, tmp_path, build):
    folder = clone(made.folder, tmp_path / "wav")
    (folder / AUDIO).write_bytes(build(made.audio))
    res = run(page, published, folder)
    assert (res["status"], res["findings"]) == ("changed", ["wav_not_canonical"])
    assert res["playback"] is False
    assert python(folder)[0] == "changed"


def test_unsigned_manifest_with_a_sparse_huge_wav_stops_at_the_signature(page, published, made,
                                                                         tmp_path):
    folder = clone(made.folder, tmp_path / "sparse")
    doc = json.loads((folder / "manifest.json").read_bytes())
    seg = 200_000
    doc["segments"] = [[i + 4, i * seg, seg, "ab" * 32] for i in range(10_000)]
    doc["gaps"], doc["duration_samples"] = [], 10_000 * seg
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    with open(folder / AUDIO, "wb") as f:
        f.write(_riff(_fmt(RATE, 1) + b"data" + struct.pack("<I", 4 * 10**9))[:44])
        f.truncate(44 + 4 * 10**9)
    res = run(page, published, folder)
    assert res["status"] == "not_signed" and res["audio_checked"] is False
    assert python(folder)[0] == "not_signed"


# --- the refusal vectors (tests/vectors/refusals), in the organisation's published page --------

VECTORS = Path(__file__).parent / "vectors"
REFUSALS = sorted(p for p in (VECTORS / "refusals").iterdir() if p.is_dir())


@pytest.mark.parametrize("folder", REFUSALS, ids=[p.name for p in REFUSALS])
def test_refusal_vectors_in_the_published_page(page, tmp_path, folder):
    from akkoord.trust import OrgSigningPublicKey

    expected = json.loads((folder / "expected-verify-copy.json").read_text())
    revs = [json.loads((folder / "revocations.json").read_text())] if (
        folder / "revocations.json").exists() else []
    html = tmp_path / "controle.html"
    html.write_text(render_published_page(OrgSigningPublicKey.load(VECTORS / "org-signing.pub"),
                                          revs), encoding="utf-8")
    page.goto(html.as_uri(), wait_until="commit")
    page.wait_for_function("() => window.akkoordResult && window.akkoordResult.seq >= 1")
    seq = page.evaluate("() => window.akkoordResult.seq")
    page.set_input_files("#dir-input", str(folder))
    page.wait_for_function(DONE, arg=seq)
    res = page.evaluate("() => window.akkoordResult")
    if expected["exit_code"] == 2:
        assert res["status"] == "error", res["message"]
        return
    assert res["status"] == expected["status"], res["message"]
    assert res["anchored"] is False
    assert res["findings"] == [f["code"] for f in expected["findings"]]
    if expected["exit_code"] == 3:
        assert page.get_attribute("#verdict", "data-tone") == "warn"
    else:
        assert page.get_attribute("#verdict", "data-tone") == "bad"


@pytest.mark.parametrize("case", ["complete", "gap", "interrupted"])
def test_honest_vectors_are_green_offline_in_the_published_page(page, tmp_path, case):
    from akkoord.trust import OrgSigningPublicKey

    html = tmp_path / "controle.html"
    html.write_text(render_published_page(OrgSigningPublicKey.load(VECTORS / "org-signing.pub")),
                    encoding="utf-8")
    res = run(page, html, VECTORS / case / "copy")
    expected = json.loads((VECTORS / case / "expected-verify-copy.json").read_text())
    assert (res["status"], res["anchored"]) == ("unchanged", True) == (
        expected["status"], expected["anchored"])
    assert res["organisation"] == expected["organisation"]
    assert page.get_attribute("#verdict", "data-tone") == "ok"


def test_an_ecdsa_p256_device_key_verifies_in_both(page, published, made, tmp_path):
    """A device key in a TPM (ECDSA P-256) needs no format change: the page verifies it with
    WebCrypto's ECDSA, the certificate anchors it, and a flipped signature bit is refused."""
    from akkoord.store.custody import head_message
    from akkoord.store.format import canonical_json
    from akkoord.store.manifest import MANIFEST_SIG_CONTEXT
    from akkoord.trust import EcdsaP256Signer, PublicKey, device_certificate

    hsm = EcdsaP256Signer.generate()
    folder = clone(made.folder, tmp_path / "p256")
    doc = json.loads((folder / "manifest.json").read_bytes())
    now = 1_800_000_000
    doc["device"] = {**PublicKey("ecdsa-p256", hsm.public_raw).to_json("device"),
                     "certificate": device_certificate(SIGNING, "ecdsa-p256", hsm.public_raw,
                                                       "TPM", now - 10**7, now + 10**8, now)}
    data = manifest_bytes(doc)
    (folder / "manifest.json").write_bytes(data)
    sig = hsm.sign(MANIFEST_SIG_CONTEXT + data)
    (folder / "manifest.sig").write_bytes(base64.b64encode(sig) + b"\n")
    head = json.loads((folder / "custody-head.json").read_bytes())
    head["signature"] = base64.b64encode(
        hsm.sign(head_message(head["seq"], bytes.fromhex(head["hash"])))).decode()
    (folder / "custody-head.json").write_bytes(canonical_json(head) + b"\n")
    res = run(page, published, folder)
    assert (res["status"], res["anchored"]) == ("unchanged", True), res["message"]
    assert (res["status"], res["anchored"]) == python(folder)
    bad = bytearray(sig)
    bad[40] ^= 1
    (folder / "manifest.sig").write_bytes(base64.b64encode(bytes(bad)) + b"\n")
    res = run(page, published, folder)
    assert res["status"] == "not_signed" and python(folder)[0] == "not_signed"


def test_chromium_itself_plays_the_second_data_chunk(page, published, made, tmp_path):
    """The disagreement the canonical rule removes, shown with the browser's own decoder:
    Chromium decodes the SECOND data chunk (the edited audio), while a chunk walker that
    stops at the first would have checked the genuine one."""
    edited = bytes(len(made.audio))  # silence
    wav = _riff(_fmt(RATE, 1) + _data(made.audio) + _data(edited))
    page.goto(published.as_uri())
    decoded = page.evaluate(
        """async ([b64, rate]) => {
            const bin = atob(b64), bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            const ctx = new OfflineAudioContext(1, rate, rate);
            const buf = await ctx.decodeAudioData(bytes.buffer);
            const ch = buf.getChannelData(0);
            let energy = 0;
            for (let i = 0; i < ch.length; i++) energy += Math.abs(ch[i]);
            return {length: ch.length, energy: energy};
        }""",
        [base64.b64encode(wav).decode(), RATE],
    )
    assert decoded["length"] == len(made.audio) // 2
    assert decoded["energy"] == 0  # it played the edited (silent) chunk, not the genuine one
    folder = clone(made.folder, tmp_path / "two-data")
    (folder / AUDIO).write_bytes(wav)
    res = run(page, published, folder)
    assert (res["status"], res["findings"]) == ("changed", ["wav_not_canonical"])


@pytest.mark.parametrize(
    "label",
    [
        "Kamer \"2\" \\ noord",
        "tab\there, newline\nthere, \x01\x1f\x7f",
        "emoji 🎙️ and U+2028 \u2028 U+2029 \u2029 and é",
        "</script><script>alert(1)</script>",
    ],
    ids=["quotes", "controls", "unicode", "script"],
)
def test_canonical_json_is_the_same_in_python_and_the_page(page, published, kit, made,
                                                          tmp_path, label):
    """The page re-serialises a certificate to check its signature (FORMAT.md §10.2): any
    difference from Python's canonical JSON would turn an honest certificate red."""
    from akkoord.trust import device_certificate

    folder = clone(made.folder, tmp_path / "label")
    doc = json.loads((folder / "manifest.json").read_bytes())
    now = int(kit.clock.t)
    doc["device"]["certificate"] = device_certificate(
        SIGNING, "ed25519", kit.identity.public.raw, label, now - 10**8, now + 10**8, now)
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    resign(folder, kit.identity, name_signer=False)
    res = run(page, published, folder)
    assert (res["status"], res["anchored"]) == ("unchanged", True), res["message"]
    assert python(folder) == ("unchanged", True)
    assert label[:3] in page.inner_text("#organisation")  # shown as text, never HTML


# --- a later copy from the organisation (its copy log signs the head, FORMAT.md §11.5) -----


@pytest.fixture(scope="module")
def org_made(kit, tmp_path_factory):
    """A copy made with `akkoord export --org-signing-key`, logged under SIGNING (the
    organisation that certified the kit's device), as `archive export` makes them."""
    from akkoord.cli import main
    from akkoord.trust import write_org_signing_pair
    from storekit import record

    where = tmp_path_factory.mktemp("org-copy")
    w, _ = record(kit, seed=29)
    (where / "org.key").write_bytes(kit.org.dumps())
    priv, _pub = write_org_signing_pair(SIGNING, where)
    to = where / "copies"
    to.mkdir()
    assert main(["export", str(w.path), "--key", str(where / "org.key"), "--to", str(to),
                 "--org-signing-key", str(priv)]) == 0
    (folder,) = [p.parent for p in to.glob("*/copy.json")]
    return folder


def test_an_organisation_copy_is_green_with_its_claims_signed(page, published, org_made):
    res = run(page, published, org_made)
    assert (res["status"], res["anchored"], res["claims_signed"]) == ("unchanged", True, True)
    assert res["findings"] == []
    rep = verify_copy(org_made, None, (SIGNING.public,))
    assert (rep.status, rep.claims_signed) == ("unchanged", True)


def test_an_organisation_copy_on_its_own_page_is_amber_with_claims_unsigned(page, org_made):
    res = run(page, org_made / "verify.html", org_made, (AUDIO,))
    assert (res["status"], res["anchored"], res["claims_signed"]) == ("unchanged", False, False)
    assert res["findings"] == []


@pytest.mark.parametrize("edit", [{"copy_number": 99}, {"made_by": "device"},
                                  {"made": "2020-01-01T00:00:00Z"}])
def test_an_organisation_copy_with_edited_claims_is_not_vouched_for(page, published, org_made,
                                                                    tmp_path, edit):
    folder = clone(org_made, tmp_path / "edited")
    doc = json.loads((folder / "copy.json").read_text())
    (folder / "copy.json").write_text(json.dumps({**doc, **edit}))
    res = run(page, published, folder)
    assert not res["claims_signed"]
    assert res["findings"] == ["custody_head"]
    rep = verify_copy(folder, None, (SIGNING.public,))
    assert not rep.claims_signed
    assert [f.code for f in rep.findings] == ["custody_head"]
    assert res["status"] == rep.status
