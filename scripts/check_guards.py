#!/usr/bin/env python3
"""Each guarantee's guard, switched off, must fail its test (`make guards`).

For every row of GUARDS: copy device/ and tests/ to a scratch folder, apply the one-line change
that switches the guard off there (never in the work tree), run the named tests against that
copy, and expect them to FAIL. Then the same tests against the unchanged copy must pass.
docs/TESTING.md lists the same rows; this makes the proof repeatable after any change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (file under device/akkoord, exact text, replacement, tests that must then fail)
GUARDS: list[tuple[str, str, str, list[str]]] = [
    ("store/verify.py", "elif h.prev != prev_seal:", "elif False and h.prev != prev_seal:",
     ["tests/test_store_verify.py"]),
    ("store/custody.py", 'if ln.entry.get("prev") != prev:',
     'if False and ln.entry.get("prev") != prev:',
     ["tests/test_custody.py::test_entry_spliced_from_another_log_of_the_same_device_is_found"]),
    ("export/package.py", "if not report.ok:", "if False and not report.ok:",
     ["tests/test_export_package.py::test_stick_that_flips_a_byte_on_read_gets_no_copy"]),
    ("store/delete.py", "write_all(fd, os.urandom(size), str(keys))", "pass",
     ["tests/test_store_delete.py"]),
    ("export/copycheck.py", "return chunk == bytes(len(chunk))", "return True",
     ["tests/test_copycheck.py::test_random_sound_in_a_gap_is_a_change"]),
    ("export/copycheck.py", "rep.device_trusted = trusted_key.raw == key.raw",
     "rep.device_trusted = True",
     ["tests/test_copycheck.py::test_copy_of_another_device_fails_the_trusted_key"]),
    ("consent.py", "if not ctx.fresh or m.pressed(ev.party):", "if m.pressed(ev.party):",
     ["tests/test_consent.py::test_a_held_button_is_not_the_second_consent"]),
    ("consent.py", "if not ctx.fresh or m.now < m.refractory_until or m.pressed(ev.party):",
     "if m.now < m.refractory_until or m.pressed(ev.party):",
     ["tests/test_consent.py::test_a_held_button_is_not_a_copy_confirmation"]),
    ("recorder.py", "if left < self.stop_free_seconds and self._reason is None:",
     "if False and left < self.stop_free_seconds and self._reason is None:",
     ["tests/test_recorder.py::test_guard_stops_the_recording_before_the_disk_is_full"]),
    ("daemon.py", "if left < self.config.store.min_free_minutes * 60:",
     "if False and left < self.config.store.min_free_minutes * 60:",
     ["tests/test_daemon_disk.py::test_refuses_to_record_below_min_free_minutes"]),
    ("audio/bench.py", "rss_kb = _own_peak_rss_kb()",
     "rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss",
     ["tests/test_audio_bench.py::test_peak_rss_is_the_benchmark_process_own_not_its_parents"]),
]


def _pytest(copy: Path, tests: list[str]) -> int:
    # PYTHONPATH puts the copy's package before the venv's editable install of the work tree.
    env = {**os.environ, "PYTHONPATH": str(copy / "device")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
        cwd=copy, env=env, capture_output=True, text=True,
    ).returncode


def main() -> int:
    bad = 0
    with tempfile.TemporaryDirectory(prefix="akkoord-guards-") as tmp:
        copy = Path(tmp)
        for name in ("device", "tests", "pyproject.toml"):
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, copy / name)
        for rel, old, new, tests in GUARDS:
            path = copy / "device" / "akkoord" / rel
            original = path.read_text()
            if original.count(old) != 1:
                print(f"STALE  {rel}: the guard text {old!r} is not there exactly once")
                bad += 1
                continue
            path.write_text(original.replace(old, new))
            broken = _pytest(copy, tests)
            path.write_text(original)
            intact = _pytest(copy, tests)
            ok = broken != 0 and intact == 0
            bad += not ok
            verdict = "ok    " if ok else "FAILED"
            print(f"{verdict} {rel}: guard off -> tests {'fail' if broken else 'PASS'}, "
                  f"guard on -> tests {'pass' if intact == 0 else 'FAIL'}  ({' '.join(tests)})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
