"""Driving `akkoord run --simulate --json` as a subprocess, the way the demo and CI do."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

from akkoord.clock import SystemClock
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import DeviceIdentity, generate_org_key
from akkoord.store.layout import StateDir
from storekit import provision as certify

ASSETS = Path(__file__).resolve().parent.parent / "device" / "akkoord" / "assets"
DEMO_WAV = ASSETS / "demo" / "gesprek.wav"


def provision(root: Path) -> tuple[StateDir, Path]:
    """A state dir with a device identity and one organisation recipient; returns the
    state and the organisation's private key file."""
    state = StateDir(root / "state")
    state.ensure()
    identity = DeviceIdentity.generate()
    identity.save(state.keys_dir)
    org = generate_org_key("x25519")
    state.recipients_dir.mkdir(parents=True, exist_ok=True)
    (state.recipients_dir / f"{org.fingerprint[:16]}.pub").write_bytes(org.public.dumps())
    key = root / "org.key"
    key.write_bytes(org.dumps())
    CustodyLog(state.custody_path, identity, SystemClock()).append("device_initialised")
    certify(state, identity, int(time.time()))  # a provisioned device (FORMAT.md §10)
    return state, key


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


class Sim:
    """A running simulator: send commands, wait for events."""

    def __init__(self, state: StateDir, *args: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        cmd = [sys.executable, "-m", "akkoord", "run", "--simulate", "--json",
               "--state", str(state.root), *args]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env or dict(os.environ), cwd=cwd, bufsize=1,
        )
        self.events: list[dict] = []
        self._q: queue.Queue[dict | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._q.put(json.loads(line))
            except json.JSONDecodeError:
                self._q.put({"event": "unparsed", "line": line})
        self._q.put(None)

    def send(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait_for(self, event: str, timeout: float = 20.0, **match: object) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if (e.get("event") == event and not e.get("_seen")
                        and all(e.get(k) == v for k, v in match.items())):
                    e["_seen"] = True
                    return e
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event} {match} within {timeout} s: {self.events}")
            try:
                item = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise AssertionError(f"simulator ended before {event}: {self.events}\n"
                                     f"{self.stderr()}")
            self.events.append(item)

    def finish(self, timeout: float = 20.0) -> int:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.events.append(item)
        return rc

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_script(state: StateDir, script: str, *args: str, timeout: float = 60.0,
               env: dict[str, str] | None = None) -> tuple[int, list[dict], str]:
    cmd = [sys.executable, "-m", "akkoord", "run", "--simulate", "--json",
           "--state", str(state.root), *args]
    r = subprocess.run(cmd, input=script, capture_output=True, text=True, timeout=timeout,
                       env=env)
    events = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    return r.returncode, events, r.stderr
