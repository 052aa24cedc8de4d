"""Hostile input to the store reader and verifier (issue 8 §5): exit 2 and one line, never a
traceback or a hang. FIFOs are tried in a subprocess with a timeout, so a regression shows
as a failed test, not a stuck suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from akkoord.cli import main
from akkoord.store.layout import CONTAINER_FILE, EXPORTS_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import MANIFEST_FILE, SIGNATURE_FILE
from storekit import make_kit, record

ROOT = Path(__file__).resolve().parent.parent


def _cli(*argv: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "device"))
    if state is not None:
        env["AKKOORD_STATE"] = str(state)
    return subprocess.run(
        [sys.executable, "-m", "akkoord", *argv],
        capture_output=True, text=True, timeout=30, env=env, check=False,
    )


def _one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


@pytest.fixture
def closed(tmp_path):
    kit = make_kit(tmp_path)
    w, _ = record(kit)
    return kit, w.path


@pytest.mark.parametrize("name", [MANIFEST_FILE, CONTAINER_FILE])
def test_a_fifo_where_a_file_belongs_is_refused_at_once(closed, name):
    _, d = closed
    (d / name).unlink()
    os.mkfifo(d / name)
    r = _cli("verify", str(d))
    assert r.returncode == 2 and _one_line(r.stderr), r.stderr
    assert "not a regular file" in r.stderr and "FIFO" in r.stderr


@pytest.mark.parametrize("name", [WRAPPED_KEYS_FILE, SIGNATURE_FILE, EXPORTS_FILE])
def test_a_fifo_for_a_secondary_file_is_a_finding_not_a_hang(closed, name):
    _, d = closed
    if (d / name).exists():
        (d / name).unlink()
    os.mkfifo(d / name)
    r = _cli("verify", str(d))
    assert r.returncode == 1 and "Traceback" not in r.stderr, (r.stdout, r.stderr)


def test_a_fifo_as_the_custody_log_or_a_head_is_refused(closed, tmp_path):
    kit, _ = closed
    fifo = tmp_path / "head.json"
    os.mkfifo(fifo)
    r = _cli("custody", "--check-head", str(fifo), state=kit.state.root)
    assert r.returncode == 2 and _one_line(r.stderr), r.stderr
    kit.state.custody_path.unlink()
    os.mkfifo(kit.state.custody_path)
    r = _cli("custody", state=kit.state.root)
    assert r.returncode == 2 and _one_line(r.stderr), r.stderr


def test_a_fifo_as_a_container_is_not_recovered_or_signed(closed):
    kit, d = closed
    for name in (MANIFEST_FILE, SIGNATURE_FILE, CONTAINER_FILE):
        (d / name).unlink()
    os.mkfifo(d / CONTAINER_FILE)
    r = _cli("recover", state=kit.state.root)
    assert "Traceback" not in r.stderr and r.returncode in (0, 2), r.stderr
    assert not (d / MANIFEST_FILE).exists()


@pytest.mark.parametrize(
    "value",
    ["1e999", "-1e999", "9" * 5000, "123456789012345678901234567890", "NaN", "Infinity",
     "[" * 100000 + "]" * 100000],
)
def test_hostile_numbers_and_nesting_in_a_manifest(closed, capsys, value):
    _, d = closed
    doc = json.loads((d / MANIFEST_FILE).read_text())
    text = json.dumps(doc).replace('"duration_samples": ', f'"duration_samples": {value}, "x": ', 1)
    (d / MANIFEST_FILE).write_text(text)
    code = main(["verify", str(d)])
    err = capsys.readouterr().err
    assert code == 2 and _one_line(err), err


def test_a_nul_byte_in_a_name_is_refused(capsys):
    code = main(["verify", "/tmp/a\0b"])
    err = capsys.readouterr().err
    assert code == 2 and _one_line(err) and "NUL" in err


def test_a_symlinked_manifest_is_refused(closed, tmp_path, capsys):
    _, d = closed
    real = tmp_path / "elsewhere.json"
    real.write_bytes((d / MANIFEST_FILE).read_bytes())
    (d / MANIFEST_FILE).unlink()
    (d / MANIFEST_FILE).symlink_to(real)
    code = main(["verify", str(d)])
    err = capsys.readouterr().err
    assert code == 2 and _one_line(err), err


def test_a_huge_sparse_container_is_bounded(closed):
    """A container grown to 4 GB of holes: the scan stops at the first non-frame with a
    located finding, skipping the holes instead of reading 4 GB of zeros hunting for frames.
    (How fast is `akkoord bench`'s business; the subprocess timeout only guards a hang.)"""
    _, d = closed
    with open(d / CONTAINER_FILE, "r+b") as f:
        f.truncate(4 << 30)
    r = _cli("verify", str(d))
    assert r.returncode == 1 and "FINDING" in r.stdout, r.stderr


@pytest.mark.parametrize("width", [0, 3, -2, True])
def test_sample_width_nonsense_in_a_manifest(closed, capsys, width):
    kit, d = closed
    doc = json.loads((d / MANIFEST_FILE).read_text())
    doc["audio"]["sample_width"] = width
    (d / MANIFEST_FILE).write_text(json.dumps(doc))
    assert main(["verify", str(d)]) == 1  # the signed manifest no longer matches: a finding
    capsys.readouterr()
    key = d.parent.parent.parent / "org.key"
    key.write_bytes(kit.org.dumps())
    out = d.parent.parent.parent / "out.wav"
    code = main(["decrypt", str(d), "--key", str(key), "--out", str(out), "--force"])
    err = capsys.readouterr().err
    assert code == 2 and _one_line(err) and not out.exists(), err
