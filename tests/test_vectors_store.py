"""tests/vectors/store-refusals/: what every verifier must refuse (issue 8 §3–§5), verdict by
verdict; and the generator still produces the same verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from vectors_store import _custody, _verify

REFUSED = Path(__file__).parent / "vectors" / "store-refusals"
RECORDINGS = sorted(p.name for p in REFUSED.iterdir() if (p / "recording").is_dir())
STATES = sorted(p.name for p in REFUSED.iterdir() if (p / "state").is_dir())


def _expected(case: str) -> dict:
    doc = json.loads((REFUSED / case / "expected.json").read_text())
    doc.pop("why")
    return doc


def test_there_are_refusal_vectors():
    assert {"checkpoint-forged", "keys-changed", "manifest-1e999"} <= set(RECORDINGS)
    assert {"head-dropped-tail"} <= set(STATES)


@pytest.mark.parametrize("case", RECORDINGS)
def test_a_refused_recording_is_refused_exactly_so(case):
    got = _verify(REFUSED / case / "recording", REFUSED / "device.pub")
    assert got == _expected(case)
    assert got["exit_code"] in (1, 2)


@pytest.mark.parametrize("case", STATES)
def test_a_refused_state_folder_is_refused_exactly_so(case, tmp_path):
    import shutil

    state = tmp_path / "state"
    shutil.copytree(REFUSED / case / "state", state)
    head = REFUSED / case / "head.json"
    got = _custody(state, *(["--check-head", str(head)] if head.exists() else []))
    assert got == _expected(case) and got["exit_code"] == 1


def test_generator_reproduces_the_refusals(tmp_path):
    script = Path(__file__).parent.parent / "scripts" / "make_vectors.py"
    subprocess.run([sys.executable, str(script), str(tmp_path)], check=True)
    for case in RECORDINGS + STATES:
        fresh = json.loads((tmp_path / "store-refusals" / case / "expected.json").read_text())
        assert fresh == json.loads((REFUSED / case / "expected.json").read_text()), case
