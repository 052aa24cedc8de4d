"""The README's short tour is a test: its command block runs as written, in the clone.

Only `/tmp/` is moved into this test's own folder and `HOME` pointed there, so the run leaves
nothing behind; every other character is the README's. `set -euo pipefail`: a command that
fails, fails the tour.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tour_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## A short tour"):]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, "the tour is an sh block"
    return blocks[0]  # the tour itself; later blocks (the organisation's side) need more


def test_the_tour_names_every_step_a_new_user_needs():
    block = tour_block()
    for step in ("keys init", "add-recipient", "run --simulate", "usb /tmp/stick", "verify",
                 "decrypt", "export", "list", "custody"):
        assert step in block, step


def test_the_readme_tour_runs_as_written(tmp_path):
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("the tour starts with `. .venv/bin/activate`: run scripts/bootstrap.sh")
    script = "set -euo pipefail\n" + tour_block().replace("/tmp/", f"{tmp_path}/")
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("AKKOORD_STATE", "VIRTUAL_ENV")}
    env["HOME"] = str(home)
    before = set(os.listdir(ROOT))
    r = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=180)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    # The test runner's own caches may appear meanwhile (pytest writes .pytest_cache whenever
    # it likes); anything else new in the clone came from the tour.
    runner = {".pytest_cache", ".hypothesis", ".ruff_cache"}
    assert set(os.listdir(ROOT)) - runner <= before, "the tour writes nothing into the clone"
    copies = sorted((tmp_path / "stick").glob("akkoord-*-kopie1"))
    assert len(copies) == 1, "the tour's presses after `usb` made the copy"
    assert (tmp_path / "opname.wav").stat().st_size > 44
    assert len(list((tmp_path / "stick2").glob("akkoord-*-kopie2"))) == 1
    assert "copy_made" in r.stdout and "RECORDING" in r.stdout  # the list's header
    assert "intact" in r.stdout  # the custody log, checked
