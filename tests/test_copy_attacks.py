"""Issue 8 §1, §2, §4, §5 against the copy verifier (`akkoord verify COPY`), attack by attack.

Each attack is built the way a holder with a hex editor, a forger with their own key, or a
thief with the device key would build it, and the verdict is asserted: never exit 0 unless
the copy is genuine, unchanged AND its device key chains to a trusted organisation key.
The page's side of the same attacks is tests/test_verify_page_trust.py.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from akkoord.cli import main
from akkoord.store.keys import DeviceIdentity
from akkoord.store.manifest import manifest_bytes
from akkoord.trust import OrgSigningKey, device_certificate, format_time, revocation_list
from copykit import AUDIO, RATE, clone, record_copy, resign
from storekit import SIGNING, make_kit

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_UNANCHORED = 0, 1, 2, 3
FFMPEG = shutil.which("ffmpeg")


@pytest.fixture(scope="module")
def kit():
    k = make_kit()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def made(kit):
    return record_copy(kit, 3, seed=8)


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No state folder with trust anchors: only what each test passes counts."""
    monkeypatch.setenv("AKKOORD_STATE", str(tmp_path / "no-state"))
    org_pub = tmp_path / "org-signing.pub"
    org_pub.write_bytes(SIGNING.public.dumps())
    return tmp_path, org_pub


def verify(capsys, folder: Path, *extra: str) -> tuple[int, dict, str]:
    code = main(["verify", str(folder), "--json", *extra])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else {}), err


def codes(doc: dict) -> list[str]:
    return [f["code"] for f in doc.get("findings", [])]


# --- §2: anchored verdicts -----------------------------------------------------------------


def test_honest_copy_is_exit_0_with_trust_and_exit_3_without(capsys, env, made):
    _, org_pub = env
    code, doc, _ = verify(capsys, made.folder, "--trust", str(org_pub))
    assert code == EXIT_OK and doc["anchored"] is True and doc["status"] == "unchanged"
    assert doc["organisation"] == SIGNING.organisation
    assert doc["trust"]["signing_key_fingerprint"] == SIGNING.fingerprint
    assert doc["claims_signed"] is True
    code, doc, _ = verify(capsys, made.folder)
    assert code == EXIT_UNANCHORED and doc["ok"] and doc["anchored"] is False
    assert doc["trust"]["status"] == "no_trust"


def test_trust_from_the_configuration(capsys, env, made):
    tmp, org_pub = env
    cfg = tmp / "akkoord.toml"
    cfg.write_text(f'[trust]\norg_signing_keys = ["{org_pub}"]\n')
    assert verify(capsys, made.folder, "--config", str(cfg))[0] == EXIT_OK


def test_forged_copy_under_a_partys_own_key_is_never_0(capsys, env, made, tmp_path):
    """A holder re-signs everything with a key of their own: the signatures check out, but
    nothing chains to the organisation."""
    _, org_pub = env
    forger = DeviceIdentity.generate()
    folder = clone(made.folder, tmp_path / "forged")
    resign(folder, forger)
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_UNANCHORED and doc["trust"]["status"] == "no_certificate"
    assert doc["device"]["fingerprint"] == forger.fingerprint
    # ...and keeping the device's real certificate in the forged manifest makes it a finding.
    doc_m = json.loads((made.folder / "manifest.json").read_bytes())
    cert = doc_m["device"]["certificate"]
    forged = json.loads((folder / "manifest.json").read_bytes())
    forged["device"]["certificate"] = cert
    (folder / "manifest.json").write_bytes(manifest_bytes(forged))
    resign(folder, forger, name_signer=False)
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and codes(doc) == ["certificate"]
    assert doc["trust"]["status"] == "wrong_key"


def test_forged_certificate_from_an_untrusted_organisation_is_unanchored(capsys, env, kit,
                                                                        tmp_path):
    """A forger sets up their own 'organisation' with the real one's name."""
    _, org_pub = env
    fake = OrgSigningKey.generate(SIGNING.organisation)
    forger = DeviceIdentity.generate()
    made = record_copy(kit, 2, seed=9)
    folder = clone(made.folder, tmp_path / "fake-org")
    now = int(kit.clock.t)
    doc = json.loads((folder / "manifest.json").read_bytes())
    doc["device"] = {
        "algorithm": "ed25519", "fingerprint": forger.fingerprint,
        "public_key": base64.b64encode(forger.public.raw).decode(),
        "certificate": device_certificate(fake, "ed25519", forger.public.raw, "x",
                                          now - 10, now + 10**6, now),
    }
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    resign(folder, forger, name_signer=False)
    resign_head(folder, forger)
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_UNANCHORED and doc["trust"]["status"] == "untrusted_organisation"
    assert doc["organisation"] is None


def resign_head(folder: Path, signer: DeviceIdentity) -> None:
    from akkoord.store.custody import head_message
    from akkoord.store.format import canonical_json

    head = json.loads((folder / "custody-head.json").read_bytes())
    sig = signer.sign(head_message(head["seq"], bytes.fromhex(head["hash"])))
    head["signature"] = base64.b64encode(sig).decode()
    (folder / "custody-head.json").write_bytes(canonical_json(head) + b"\n")


def test_revoked_certificate_is_a_finding(capsys, env, made, tmp_path):
    _, org_pub = env
    serial = json.loads((made.folder / "manifest.json").read_bytes())["device"]["certificate"][
        "statement"]["serial"]
    rl = tmp_path / "revoked.json"
    rl.write_text(json.dumps(revocation_list(
        SIGNING, 1, [{"serial": serial, "revoked_at": format_time(0), "reason": "device_lost"}],
        0)))
    code, doc, _ = verify(capsys, made.folder, "--trust", str(org_pub), "--revocations", str(rl))
    assert code == EXIT_FINDINGS and doc["trust"]["status"] == "revoked"
    assert "device_lost" in doc["findings"][0]["message"]
    # A revocation list signed by anyone else revokes nothing.
    other = tmp_path / "other.json"
    other.write_text(json.dumps(revocation_list(
        OrgSigningKey.generate("x"), 1, [{"serial": serial, "revoked_at": format_time(0)}], 0)))
    code, _, _ = verify(capsys, made.folder, "--trust", str(org_pub), "--revocations", str(other))
    assert code == EXIT_OK


def test_expired_certificate_is_a_finding(capsys, env, tmp_path):
    _, org_pub = env
    kit = make_kit(tmp_path / "k", certified=False)
    now = int(kit.clock.t)
    kit.state.certificate_path.write_text(json.dumps(device_certificate(
        SIGNING, "ed25519", kit.identity.public.raw, "x", now - 3000, now - 1000, now - 3000)))
    made = record_copy(kit, 2)
    code, doc, _ = verify(capsys, made.folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and doc["trust"]["status"] == "expired"


def test_certificate_for_another_key_is_a_finding(capsys, env, tmp_path):
    _, org_pub = env
    kit = make_kit(tmp_path / "k", certified=False)
    now = int(kit.clock.t)
    other = DeviceIdentity.generate()
    kit.state.certificate_path.write_text(json.dumps(device_certificate(
        SIGNING, "ed25519", other.public.raw, "x", now - 10, now + 10**6, now)))
    made = record_copy(kit, 2)
    code, doc, _ = verify(capsys, made.folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and doc["trust"]["status"] == "wrong_key"


def test_all_identity_key_with_identity_r_and_zero_s_is_not_signed(capsys, env, made, tmp_path):
    """An edited manifest under the all-identity key, R = identity, S = 0: OpenSSL and
    WebCrypto accept that signature for any message; akkoord's verifiers must not."""
    _, org_pub = env
    folder = clone(made.folder, tmp_path / "identity")
    doc = json.loads((folder / "manifest.json").read_bytes())
    identity = (1).to_bytes(32, "little")
    doc["device"] = {"algorithm": "ed25519", "public_key": base64.b64encode(identity).decode(),
                     "fingerprint": "0" * 64}
    doc["status"] = "complete"
    doc["timeline"] = []  # the edit: the presses are gone
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    (folder / "manifest.sig").write_bytes(base64.b64encode(identity + bytes(32)) + b"\n")
    for extra in ([], ["--trust", str(org_pub)]):
        code, out, _ = verify(capsys, folder, *extra)
        assert code == EXIT_FINDINGS and out["status"] == "not_signed", extra


def test_p256_device_key_is_representable(capsys, env, tmp_path):
    """A device key held in a TPM (ECDSA P-256) needs no format change: manifest, certificate
    and verifier all carry the algorithm."""
    from akkoord.store.manifest import MANIFEST_SIG_CONTEXT
    from akkoord.trust import EcdsaP256Signer

    _, org_pub = env
    hsm = EcdsaP256Signer.generate()
    kit = make_kit(tmp_path / "k")
    made = record_copy(kit, 2)
    folder = clone(made.folder, tmp_path / "p256")
    now = int(kit.clock.t)
    doc = json.loads((folder / "manifest.json").read_bytes())
    from akkoord.trust import PublicKey

    doc["device"] = {**PublicKey("ecdsa-p256", hsm.public_raw).to_json("device"),
                     "certificate": device_certificate(SIGNING, "ecdsa-p256", hsm.public_raw,
                                                       "TPM", now - 10, now + 10**6, now)}
    data = manifest_bytes(doc)
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(
        base64.b64encode(hsm.sign(MANIFEST_SIG_CONTEXT + data)) + b"\n")
    from akkoord.store.custody import head_message
    from akkoord.store.format import canonical_json

    head = json.loads((folder / "custody-head.json").read_bytes())
    head["signature"] = base64.b64encode(
        hsm.sign(head_message(head["seq"], bytes.fromhex(head["hash"])))).decode()
    (folder / "custody-head.json").write_bytes(canonical_json(head) + b"\n")
    code, out, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_OK and out["anchored"], out["findings"]


# --- §4: copy.json claims are signed -------------------------------------------------------


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.update(copy_number=7),
        lambda c: c.update(made={"utc": "2020-01-01T00:00:00.000Z", "clock": "ntp"}),
        lambda c: c.update(made_by="organisation"),
    ],
    ids=["copy_number", "made", "made_by"],
)
def test_copy_json_claims_are_checked_against_the_signed_custody_entry(capsys, env, made,
                                                                     tmp_path, edit):
    _, org_pub = env
    folder = clone(made.folder, tmp_path / "claims")
    copy = json.loads((folder / "copy.json").read_bytes())
    edit(copy)
    (folder / "copy.json").write_text(json.dumps(copy))
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and codes(doc) == ["custody_head"]


def test_custody_head_removed_or_forged_is_a_finding(capsys, env, made, tmp_path):
    _, org_pub = env
    folder = clone(made.folder, tmp_path / "nohead")
    (folder / "custody-head.json").unlink()
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and codes(doc) == ["custody_head"]
    folder = clone(made.folder, tmp_path / "badhead")
    head = json.loads((folder / "custody-head.json").read_bytes())
    head["entry"]["detail"]["copy_number"] = 2
    (folder / "custody-head.json").write_text(json.dumps(head))
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and "does not match its hash" in doc["findings"][0]["message"]
    # An entry that is not even canonical JSON (a lone surrogate) is the same finding.
    (folder / "custody-head.json").write_text(
        json.dumps(head).replace('"export"', '"\\ud800"'))
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and "does not match its hash" in doc["findings"][0]["message"]


# --- §1: what is verified is what plays ----------------------------------------------------


def _fmt(rate: int, channels: int) -> bytes:
    return struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, channels, rate, rate * channels * 2,
                       channels * 2, 16)


def _riff(body: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body


def _data(pcm: bytes) -> bytes:
    return b"data" + struct.pack("<I", len(pcm)) + pcm


def decode(path: Path) -> tuple[bytes, str]:
    """What a real player decodes: Debian's ffmpeg, raw PCM out, and the stream it saw."""
    assert FFMPEG, "ffmpeg (Debian package) is needed to show what players play"
    pcm = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                            "stream=sample_rate,channels", "-of", "csv=p=0", str(path)],
                           capture_output=True, text=True, check=True).stdout.strip()
    return pcm, probe


def _edited(made) -> bytes:
    return bytes(len(made.audio))  # the "edited" audio: a second of silence for the whole


def test_two_data_chunks_players_play_the_second_verifier_refuses(capsys, env, made, tmp_path):
    _, org_pub = env
    folder = clone(made.folder, tmp_path / "two-data")
    wav = folder / AUDIO
    wav.write_bytes(_riff(_fmt(RATE, 1) + _data(made.audio) + _data(_edited(made))))
    played, _ = decode(wav)
    assert played == _edited(made) and played != made.audio  # the disagreement
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and codes(doc) == ["wav_not_canonical"]
    assert "'data' chunk" in doc["findings"][0]["message"]


def test_two_fmt_chunks_players_take_the_first_verifier_refuses(capsys, env, made, tmp_path):
    _, org_pub = env
    folder = clone(made.folder, tmp_path / "two-fmt")
    wav = folder / AUDIO
    # The first fmt (what ffmpeg uses) halves the speed and makes it stereo; the second is
    # what a lenient chunk walker (akkoord before format /2) compared with the manifest.
    wav.write_bytes(_riff(_fmt(RATE // 2, 2) + _fmt(RATE, 1) + _data(made.audio)))
    _, stream = decode(wav)
    assert stream == f"{RATE // 2},2"
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and codes(doc) == ["wav_not_canonical"]


@pytest.mark.parametrize(
    "build,problem",
    [
        (lambda a: _riff(_fmt(RATE, 1) + _data(a) + b"junk" + struct.pack("<I", 4) + b"xxxx"),
         "follow the data chunk"),
        (lambda a: _riff(_fmt(RATE, 1) + b"LIST" + struct.pack("<I", 4) + b"INFO" + _data(a)),
         "follows the fmt chunk"),
        (lambda a: _riff(_fmt(RATE, 1) + _data(a))[:-100], "data chunk declares"),
        (lambda a: b"RIFF" + struct.pack("<I", 7) + _riff(_fmt(RATE, 1) + _data(a))[8:],
         "RIFF size"),
        (lambda a: _riff(_fmt(RATE, 1) + _data(a)) + b"\0" * 2, "follow the data chunk"),
        (lambda a: b"RIFX" + _riff(_fmt(RATE, 1) + _data(a))[4:], "not a RIFF/WAVE"),
        (lambda a: _riff(struct.pack("<4sIHHIIHH", b"fmt ", 16, 3, 1, RATE, RATE * 2, 2, 16)
                         + _data(a)), "audio format 3"),
        (lambda a: _riff(struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, RATE, RATE, 2, 16)
                         + _data(a)), "contradicts itself"),
        (lambda a: b"RIFF", "too short"),
    ],
    ids=["trailing_junk", "list_chunk", "truncated", "riff_size", "trailing_bytes", "rifx", "float",
         "byte_rate", "stub"],
)
def test_every_other_layout_is_a_named_finding(capsys, env, made, tmp_path, build, problem):
    _, org_pub = env
    folder = clone(made.folder, tmp_path / "layout")
    (folder / AUDIO).write_bytes(build(made.audio))
    code, doc, _ = verify(capsys, folder, "--trust", str(org_pub))
    assert code == EXIT_FINDINGS and codes(doc) == ["wav_not_canonical"], doc["findings"]
    assert problem in doc["findings"][0]["message"]


# --- §5: hostile input fails fast, one line, exit 2 ----------------------------------------


def _manifest_edit(folder: Path, fn) -> None:
    text = (folder / "manifest.json").read_text()
    (folder / "manifest.json").write_text(fn(text))


@pytest.mark.parametrize(
    "attack,words",
    [
        (lambda f: _manifest_edit(f, lambda t: t.replace('"sample_width":2', '"sample_width":0')),
         "sample_width"),
        (lambda f: _manifest_edit(f, lambda t: t.replace('"sample_rate":16000',
                                                          '"sample_rate":1e999')), "out of range"),
        (lambda f: _manifest_edit(f, lambda t: t.replace('"duration_samples":',
                                                          '"duration_samples":9' + "9" * 40
                                                          + ',"x":')), "duration_samples"),
        (lambda f: _manifest_edit(f, lambda t: t.replace('"channels":1', '"channels":NaN')),
         "not JSON"),
        (lambda f: (f / "copy.json").write_text(json.dumps({
            **json.loads((f / "copy.json").read_bytes()), "audio_file": "op\0name.wav"})),
         "audio_file"),
        (lambda f: ((f / "manifest.json").unlink(), os.mkfifo(f / "manifest.json")),
         "not a regular file"),
        (lambda f: ((f / AUDIO).unlink(), os.mkfifo(f / AUDIO)), "not a regular file"),
        (lambda f: ((f / AUDIO).unlink(), os.symlink("/etc/passwd", f / AUDIO)), "cannot open"),
    ],
    ids=["sample_width_0", "1e999", "huge_int", "nan", "nul_in_name", "fifo_manifest",
         "fifo_wav", "symlink_wav"],
)
def test_hostile_input_is_exit_2_with_one_line(capsys, env, made, tmp_path, attack, words):
    folder = clone(made.folder, tmp_path / "hostile")
    attack(folder)
    code = main(["verify", str(folder)])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and words in err, err


def test_fifo_given_as_the_copy_is_exit_2(capsys, env, tmp_path):
    fifo = tmp_path / "opname.wav"
    os.mkfifo(fifo)
    code = main(["verify", str(fifo)])
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE and err.count("\n") == 1


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_unsigned_manifest_with_10000_segments_and_a_sparse_huge_wav_reads_almost_nothing(
    capsys, env, made, tmp_path
):
    """Bounded work (not timed here: `akkoord bench` measures it): after a failed signature
    nothing of the audio is read, whatever the manifest claims."""
    folder = clone(made.folder, tmp_path / "sparse")
    doc = json.loads((folder / "manifest.json").read_bytes())
    seg = 200_000
    doc["segments"] = [[i + 4, i * seg, seg, "ab" * 32] for i in range(10_000)]
    doc["gaps"] = []
    doc["duration_samples"] = 10_000 * seg
    (folder / "manifest.json").write_bytes(manifest_bytes(doc))
    data_len = 10_000 * seg * 2
    with open(folder / AUDIO, "wb") as f:
        f.write(_riff(_fmt(RATE, 1) + b"data" + struct.pack("<I", data_len))[:44])
        f.truncate(44 + data_len)  # sparse: 4 GB that cost nothing on disk
    before = _rchar()
    code, out, _ = verify(capsys, folder)
    read = _rchar() - before
    assert code == EXIT_FINDINGS and out["status"] == "not_signed"
    assert read < 8 << 20, f"read {read} bytes"


@pytest.mark.parametrize("option", ["--trust", "--device-key", "--revocations"])
def test_a_fifo_given_as_a_key_or_list_is_exit_2(capsys, env, made, tmp_path, option):
    fifo = tmp_path / "key.pub"
    os.mkfifo(fifo)
    code = main(["verify", str(made.folder), option, str(fifo)])
    _, err = capsys.readouterr()
    assert code == EXIT_USAGE and "not a regular file" in err and err.count("\n") == 1
