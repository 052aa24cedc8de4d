"""tests/vectors/ verify exactly as recorded there, and the generator still produces them."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from akkoord.cli import main

VECTORS = Path(__file__).parent / "vectors"
CASES = sorted(p.name for p in VECTORS.iterdir() if (p / "recording").is_dir())


def _verify(path: Path, *extra: str) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(
            ["verify", str(path), "--json", "--device-key", str(VECTORS / "device.pub"),
             "--trust", str(VECTORS / "org-signing.pub"), *extra]
        )
    doc = json.loads(buf.getvalue())
    doc.pop("path")
    doc["exit_code"] = code
    return doc


def test_there_are_vectors():
    assert set(CASES) >= {"complete", "gap", "interrupted"}


@pytest.mark.parametrize("case", CASES)
def test_recording_vector(case):
    expected = json.loads((VECTORS / case / "expected-verify-recording.json").read_text())
    got = _verify(VECTORS / case / "recording", "--key", str(VECTORS / "org.key"))
    assert got == expected
    assert got["exit_code"] == 0


@pytest.mark.parametrize("case", CASES)
def test_copy_vector(case):
    expected = json.loads((VECTORS / case / "expected-verify-copy.json").read_text())
    got = _verify(VECTORS / case / "copy")
    assert got == expected
    assert got["exit_code"] == 0 and got["status"] == "unchanged"


def test_copy_wav_path_verifies_like_its_folder():
    folder = _verify(VECTORS / "complete" / "copy")
    wav = _verify(VECTORS / "complete" / "copy" / "opname.wav")
    assert wav == folder


REFUSALS = sorted(p.name for p in (VECTORS / "refusals").iterdir() if p.is_dir())


def verify_refusal(folder: Path) -> dict:
    """As scripts/make_vectors.py records it: a holder's check with the organisation's key."""
    out, err = io.StringIO(), io.StringIO()
    extra = ["--revocations", str(folder / "revocations.json")] if (
        folder / "revocations.json").exists() else []
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--state", str(folder / "no-state"), "verify", str(folder), "--json",
                     "--trust", str(VECTORS / "org-signing.pub"), *extra])
    if code == 2:
        return {"exit_code": 2, "error": err.getvalue().strip().replace(str(folder), "<case>")}
    doc = json.loads(out.getvalue())
    doc.pop("path")
    doc["exit_code"] = code
    return doc


def test_there_are_refusal_vectors():
    assert {"two-data-chunks", "two-fmt-chunks", "identity-key", "forged-own-key",
            "certificate-revoked", "certificate-expired", "certificate-for-another-key",
            "certificate-untrusted-organisation", "sample-width-0"} <= set(REFUSALS)


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_vector(case):
    folder = VECTORS / "refusals" / case
    expected = json.loads((folder / "expected-verify-copy.json").read_text())
    got = verify_refusal(folder)
    assert got == expected
    assert got["exit_code"] != 0  # never genuine-and-anchored


def _without_seals(doc):
    """Seals depend on the HPKE-wrapped key, which is fresh on every run (see README)."""
    if isinstance(doc, dict):
        return {k: _without_seals(v) for k, v in doc.items() if k != "chain_head"}
    if isinstance(doc, list):
        return [_without_seals(v) for v in doc]
    return doc


def test_generator_reproduces_the_expected_results(tmp_path):
    script = Path(__file__).parent.parent / "scripts" / "make_vectors.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    for case in CASES:
        for what in ("recording", "copy"):
            name = f"expected-verify-{what}.json"
            fresh = json.loads((tmp_path / case / name).read_text())
            committed = json.loads((VECTORS / case / name).read_text())
            assert _without_seals(fresh) == _without_seals(committed), (case, what)
    for case in REFUSALS:
        name = f"refusals/{case}/expected-verify-copy.json"
        fresh = json.loads((tmp_path / name).read_text())
        committed = json.loads((VECTORS / name).read_text())
        assert _without_seals(fresh) == _without_seals(committed), case
