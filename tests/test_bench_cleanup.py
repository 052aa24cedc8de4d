"""`akkoord bench` stopped by SIGTERM (systemd, a CI timeout, `kill`) removes its scratch.

The bench keeps hundreds of MB to GB of recordings in tmpfs (memory); a run killed without
unwinding left them behind until the next reboot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SHM = Path("/dev/shm")


def _bench_dirs() -> set[str]:
    return {p.name for p in SHM.glob("akkoord-bench-*")}


@pytest.mark.skipif(not os.access(SHM, os.W_OK), reason="needs root: /dev/shm not writable")
def test_sigterm_mid_bench_removes_its_scratch() -> None:
    before = _bench_dirs()
    proc = subprocess.Popen([sys.executable, "-m", "akkoord", "bench", "--quick", "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (new := _bench_dirs() - before):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the bench never made its scratch folder"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not {d for d in new if (SHM / d).exists()}, "scratch left behind in /dev/shm"
