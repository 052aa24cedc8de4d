"""Shared test set-up: tests import their kits (storekit, simkit, copykit) from this folder,
and the skip policy (skippolicy.py) is enforced here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from skippolicy import ALLOWED_SKIPS, allowed

STRICT_SKIPS = os.environ.get("AKKOORD_STRICT_SKIPS") == "1"
_unapproved: list[tuple[str, str]] = []


def _skip_reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _note_skip(report: pytest.CollectReport | pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        if not allowed(reason):
            _unapproved.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _note_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _note_skip(report)  # a whole module skipped at import (pytest.skip(allow_module_level=True))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if STRICT_SKIPS and _unapproved and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _unapproved:
        return
    tr = terminalreporter
    verdict = ("FAILS this run (AKKOORD_STRICT_SKIPS=1)" if STRICT_SKIPS
               else "allowed here, not in CI")
    tr.section(f"skipped for a reason not on the allow-list: {verdict}", sep="=", red=True)
    for nodeid, reason in _unapproved:
        tr.line(f"{nodeid}: {reason}")
    tr.line("allowed skip reasons start with: " + "; ".join(ALLOWED_SKIPS) +
            " (tests/skippolicy.py, docs/TESTING.md)")


@pytest.fixture
def tmpfs():
    """Mount a real small file system: `tmpfs(path, "size=4m")`; unmounted afterwards.
    Skips with the reason where mounting is refused (not root)."""
    mounted = []

    def mount(path: Path, options: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"needs CAP_SYS_ADMIN: mount -t tmpfs refused ({r.stderr.strip()}); "
                        "run as root")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
