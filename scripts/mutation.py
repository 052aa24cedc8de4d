#!/usr/bin/env python3
"""Mutation testing of the modules that carry akkoord's guarantees (`make mutation`).

    scripts/mutation.py                 every target below
    scripts/mutation.py consent         one target (names below)
    scripts/mutation.py --jobs 2 store  a group: every store-* target, one after another
    scripts/mutation.py store-writer    one module (or small group) of store/
    scripts/mutation.py --survivors store-writer
                                        rerun only the last run's survivors and timeouts

For each target, mutmut (https://github.com/boxed/mutmut) changes the code one small edit at
a time (a comparison flipped, a constant changed, a call dropped…) and runs the tests that
reach the changed function; a mutant no test notices "survived". Each target runs only its own
test files, so one module takes minutes, not the whole suite per mutant.

mutmut only finds code under ./, src/ or source/, and names mutants after the import path, so
each target runs in a staging folder build/mutation/<target>/ holding src/akkoord (a copy of
device/akkoord), tests/ and a pyproject.toml with the target's [tool.mutmut] section. The
summary (killed, survived, score, time, survivors) goes to build/mutation/<target>.json and
is printed; docs/TESTING.md records the measured figures and which survivors are equivalent.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build" / "mutation"
MUTMUT = Path(sys.executable).parent / "mutmut"

# target -> (files to mutate under akkoord/, test files that guard them)
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "consent": (["consent.py"], ["test_consent.py", "test_consent_properties.py",
                                 "test_consent_transcripts.py"]),
    # store/: one target per module (or small group), each with the tests that guard it;
    # "store" in GROUPS runs them all.
    "store-format": (["store/format.py"], [
        "test_store_roundtrip.py", "test_store_tamper.py", "test_store_verify.py",
        "test_store_faults.py", "test_vectors_store.py", "test_store_format.py",
    ]),
    "store-custody": (["store/custody.py"], [
        "test_custody.py", "test_trust_custody.py", "test_store_recovery.py",
        "test_trust_recovery.py", "test_trust_hostile.py", "test_trust_orglog.py",
        "test_store_custody_chain.py", "test_custody_tail.py",
    ]),
    "store-manifest": (["store/manifest.py"], [
        "test_manifest_walk.py", "test_store_manifest.py", "test_store_roundtrip.py",
        "test_store_verify.py", "test_trust_recovery.py", "test_export_package.py",
        "test_perf_stream.py", "test_perf_manifest_skip.py", "test_perf_copycheck.py",
        "test_copycheck_words.py",
    ]),
    "store-writer": (["store/writer.py"], [
        "test_store_writer.py", "test_store_roundtrip.py", "test_store_faults.py",
    ]),
    "store-recovery": (["store/recovery.py", "store/reconcile.py"], [
        "test_store_recovery_pins.py", "test_store_resync.py", "test_store_recovery.py",
        "test_trust_recovery.py", "test_store_faults.py",
    ]),
    "store-exports": (["store/exports.py"], [
        "test_store_exports.py", "test_export_package.py", "test_trust_custody.py",
    ]),
    "store-keys": (["store/keys.py", "store/delete.py"], [
        "test_store_keys.py", "test_store_delete.py", "test_trust.py", "test_trust_sigcheck.py",
        "test_store_roundtrip.py",
    ]),
    "store-trustlogs": (["store/statecheck.py", "store/orglog.py", "store/sigcheck.py"], [
        "test_store_trustlogs.py", "test_trust_custody.py", "test_trust_orglog.py",
        "test_trust_sigcheck.py",
    ]),
    "store-io": (["store/safeio.py", "store/layout.py", "store/inspect.py"], [
        "test_store_io.py", "test_trust_hostile.py", "test_cli_store.py",
    ]),
    "store-reader": (["store/reader.py"], [
        "test_store_reader_pins.py", "test_store_resync.py", "test_store_reader_buffers.py",
        "test_store_fuzz.py",
        "test_store_roundtrip.py", "test_store_verify.py", "test_store_tamper.py",
        "test_store_writer.py", "test_store_recovery_pins.py", "test_perf_pipeline.py",
        "test_perf_adaptive.py",
    ]),
    "store-verify": (["store/verify.py"], [
        "test_store_verify.py", "test_store_tamper.py", "test_store_roundtrip.py",
        "test_store_recovery.py", "test_store_faults.py", "test_trust_custody.py",
        "test_trust_recovery.py", "test_trust_hostile.py", "test_vectors_store.py",
        "test_store_verify_pins.py", "test_store_verify_pins2.py", "test_perf_pipeline.py",
        "test_perf_stream.py",
    ]),
    "store-audio": (["store/audio_out.py"], [
        "test_store_audio_out.py", "test_store_roundtrip.py", "test_perf_stream.py",
        "test_store_format.py", "test_perf_pipeline.py",
    ]),
    "store-lifetime": (["store/catalog.py", "store/custody_index.py"], [
        "test_lifetime.py", "test_receipted.py", "test_console_commands.py",
    ]),
    "copycheck": (["export/copycheck.py"], ["test_copycheck.py", "test_copycheck_words.py",
                                            "test_manifest_walk.py",
                                            "test_copy_attacks.py", "test_perf_copycheck.py",
                                            "test_trust_hostile.py", "test_trust_orglog.py",
                                            "test_export_package.py", "test_vectors.py"]),
    "package": (["export/package.py"], ["test_export_package.py",
                                        "test_export_package_contents.py", "test_copycheck.py"]),
    "recorder": (["recorder.py"], ["test_recorder.py", "test_recorder_inprocess.py",
                                   "test_daemon_disk.py"]),
}

# group -> targets: `scripts/mutation.py store` runs every store-* target.
GROUPS: dict[str, list[str]] = {"store": [t for t in TARGETS if t.startswith("store-")]}

# Tests that start `python -m akkoord` in a subprocess import the unmutated package (the
# venv's editable install), so they cannot kill a mutant: left out to save time.
DESELECT = [
    "-m", "not browser and not alsa",
    # regenerates the vectors with scripts/make_vectors.py in a subprocess: slow, cannot kill
    "--deselect", "tests/test_vectors.py::test_generator_reproduces_the_expected_results",
    "--deselect", "tests/test_vectors_store.py::test_generator_reproduces_the_refusals",
]


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def stage(name: str, timeout_multiplier: float = 15.0) -> Path:
    files, tests = TARGETS[name]
    where = BUILD / name
    if where.exists():
        shutil.rmtree(where)
    (where / "src").mkdir(parents=True)
    shutil.copytree(ROOT / "device" / "akkoord", where / "src" / "akkoord",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("tests", "scripts"):  # tests/test_vectors_store.py imports from scripts/
        shutil.copytree(ROOT / folder, where / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    # a target may name the test file meant to guard it before that file exists
    selected = [f"tests/{t}" for t in tests if (ROOT / "tests" / t).exists()]
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject += f"""
[tool.mutmut]
source_paths = ["src/akkoord"]
also_copy = ["scripts"]
only_mutate = {_toml_list([f"src/akkoord/{f}" for f in files])}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", {", ".join(json.dumps(a) for a in DESELECT)}]
pytest_add_cli_args_test_selection = {_toml_list(selected)}
timeout_multiplier = {timeout_multiplier}
"""
    (where / "pyproject.toml").write_text(pyproject)
    return where


def _sweep_scratch() -> None:
    """Remove the tmpfs scratch roots (tests/storekit.py) of test processes that are gone:
    mutmut ends each mutant's process with os._exit, so their atexit clean-up never runs, and
    tmpfs is memory (a store run left ~4,700 folders)."""
    for root in Path("/dev/shm").glob("akkoord-test-*-*"):
        pid = root.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(root, ignore_errors=True)


def _listed(listing: str, *statuses: str) -> list[str]:
    return [line.split(":")[0].strip() for line in listing.splitlines()
            if line.strip().endswith(statuses)]


def run(name: str, jobs: int, survivors_only: bool = False,
        timeout_multiplier: float = 15.0) -> dict:
    """One target. `survivors_only`: rerun just the survivors and timeouts of the last run
    recorded in build/mutation/<target>.json against today's tests (minutes instead of the
    whole run); its killed mutants stay killed, as tests are only ever added."""
    before = json.loads((BUILD / f"{name}.json").read_text()) if survivors_only else None
    rerun = [*before["survivors"], *before.get("timeouts", [])] if before else []
    if before is not None and not rerun:
        return before
    where = stage(name, timeout_multiplier)
    t0 = time.monotonic()
    # AKKOORD_MUTATION=1: Hypothesis tests run few examples per mutant (tests/storekit.py)
    env = {**os.environ, "AKKOORD_MUTATION": "1"}
    done = subprocess.run([str(MUTMUT), "run", "--max-children", str(jobs), *rerun],
                          cwd=where, text=True, capture_output=True, env=env)
    elapsed = time.monotonic() - t0
    _sweep_scratch()
    (where / "mutmut-run.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise SystemExit(f"mutmut failed for {name} (exit {done.returncode}):\n{tail}")
    subprocess.run([str(MUTMUT), "export-cicd-stats"], cwd=where, check=True,
                   capture_output=True)
    stats = json.loads((where / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = subprocess.run([str(MUTMUT), "results"], cwd=where, text=True,
                             capture_output=True, check=True).stdout
    survivors = _listed(listing, "survived", "no tests")
    no_tests = _listed(listing, "no tests")
    timeouts = _listed(listing, "timeout")
    if before is not None:  # only the earlier survivors and timeouts ran: add the rest
        ran = set(rerun)
        survivors = [m for m in survivors if m in ran]
        no_tests = [m for m in no_tests if m in ran]
        timeouts = [m for m in timeouts if m in ran]
        stats = dict(before["stats"])
        stats["killed"] = (before["stats"].get("killed", 0)
                           + len(rerun) - len(survivors) - len(timeouts))
        # timeouts of the earlier run not listed by name (and so not rerun) stay killed
        stats["timeout"] = len(timeouts) + (before["stats"].get("timeout", 0)
                                            - len(before.get("timeouts", [])))
        stats["no_tests"] = len(no_tests)
        stats["survived"] = len(survivors) - len(no_tests)
        elapsed += before["seconds"]
    killed = stats.get("killed", 0) + stats.get("timeout", 0) + stats.get("segfault", 0)
    judged = killed + stats.get("survived", 0) + stats.get("no_tests", 0)
    summary = {
        "target": name,
        "modules": TARGETS[name][0],
        "tests": TARGETS[name][1],
        "seconds": round(elapsed),
        "stats": stats,
        # timeouts count as killed (mutmut's rule), but are listed: a busy machine can make
        # a mutant time out; --survivors runs them again.
        "score_percent": round(100 * killed / judged, 1) if judged else None,
        "survivors": survivors,
        "no_tests": no_tests,
        "timeouts": timeouts,
        "runs": (before or {}).get("runs", 0) + 1,
    }
    (BUILD / f"{name}.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", metavar="TARGET",
                    help=f"one or more of: {', '.join([*GROUPS, *TARGETS])} (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="parallel mutants (default 2)")
    ap.add_argument("--survivors", action="store_true",
                    help="rerun only the survivors of each target's last run "
                         "(build/mutation/<target>.json), e.g. after adding tests")
    ap.add_argument("--timeout-multiplier", type=float, default=15.0,
                    help="mutmut's: a mutant is stopped after this many times its tests' "
                         "usual time (default 15; a mutant that deadlocks waits that long)")
    args = ap.parse_args()
    names = [t for name in args.targets for t in GROUPS.get(name, [name])]
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; "
                 f"choose from {', '.join([*GROUPS, *TARGETS])}")
    if not MUTMUT.exists():
        print(f"mutmut is not installed in {MUTMUT.parent} (make mutation installs it)",
              file=sys.stderr)
        return 2
    worst = 100.0
    for name in names or list(TARGETS):
        s = run(name, args.jobs, args.survivors, args.timeout_multiplier)
        score = s["score_percent"]
        worst = min(worst, score if score is not None else 0.0)
        print(f"{name}: {score}% killed ({s['stats']}) in {s['seconds']} s; "
              f"{len(s['survivors'])} survivors, listed in build/mutation/{name}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
