"""Serial console test kit: real pty pairs (socat), a device-side console on a provisioned
state directory, and an organisation with an administrator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from akkoord.clock import FixedClock
from akkoord.config import parse_config
from akkoord.console.auth import AdminKey
from akkoord.console.clockset import CommandClockSetter
from akkoord.console.device import ConsoleDevice
from akkoord.console.serial_port import ConsoleServer
from akkoord.console.service import ConsoleService
from akkoord.store.custody import CustodyLog
from akkoord.store.layout import StateDir
from akkoord.trust import OrgSigningKey, admin_certificate
from simkit import provision


class PtyPair:
    """Two linked ptys from socat: what one end writes, the other reads (a null-modem cable)."""

    def __init__(self, root: Path) -> None:
        if shutil.which("socat") is None:
            pytest.skip("socat is not installed (scripts/bootstrap.sh --test installs it)")
        self.device, self.host = str(root / "tty-device"), str(root / "tty-host")
        self.proc = subprocess.Popen(
            ["socat", f"pty,raw,echo=0,link={self.device}", f"pty,raw,echo=0,link={self.host}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (Path(self.device).exists() and Path(self.host).exists()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"socat did not make a pty pair: {self.proc.stderr.read()}")
            time.sleep(0.01)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


@pytest.fixture
def pty_pair(tmp_path):
    pair = PtyPair(tmp_path)
    yield pair
    pair.close()


@dataclass
class View:
    """The daemon's read-only view, held still: a test double of the whole `DaemonView`."""

    state: str = "ready"
    fault_list: list[str] = field(default_factory=list)
    active: str | None = None
    exportable: str | None = None

    def machine_state(self) -> str:
        return self.state

    def faults(self) -> list[str]:
        return list(self.fault_list)

    def active_recording(self) -> str | None:
        return self.active

    def exportable_recording(self) -> str | None:
        return self.exportable


CLOCK_SCRIPT = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"


@dataclass
class Org:
    key: OrgSigningKey
    admin: AdminKey
    cert: dict[str, Any]
    admin_dir: Path


def make_org(root: Path, name: str = "Jeugdzorg Utrecht", roles=("console",),
             valid_days: int = 30, now: float | None = None) -> Org:
    org = OrgSigningKey.generate(name)
    admin = AdminKey.generate("Technicus Tess")
    t = int(now if now is not None else time.time())
    cert = admin_certificate(org, admin.name, "ed25519", admin.signer.public_raw, roles,
                             t - 60, t + valid_days * 86400, t)
    d = root / f"admin-{org.fingerprint[:8]}"
    admin.write_pair(d)
    (d / "admin.cert.json").write_text(json.dumps(cert))
    return Org(org, admin, cert, d)


def trust(state: StateDir, org: Org) -> None:
    d = state.keys_dir / "trust"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{org.key.fingerprint[:16]}.pub").write_bytes(org.key.public.dumps())


@dataclass
class Device:
    state: StateDir
    org_key_file: Path
    clock: FixedClock
    view: View
    custody: CustodyLog
    device: ConsoleDevice
    service: ConsoleService
    clock_file: Path


def make_device(root: Path, *, clock_start: float | None = None) -> Device:
    state, org_key_file = provision(root)
    clock = FixedClock(start=clock_start if clock_start is not None else time.time())
    identity = state.identity()
    custody = CustodyLog(state.custody_path, identity, clock)
    clock_file = root / "clock-request"
    config = parse_config({"console": {"clock_command": [sys.executable, "-c", CLOCK_SCRIPT,
                                                          str(clock_file)]}}, "test")
    view = View()
    device = ConsoleDevice(state=state, config=config, custody=custody, clock=clock,
                           fingerprint=identity.fingerprint, view=view,
                           clock_setter=CommandClockSetter(config.console.clock_command))
    service = ConsoleService(device, monotonic=clock.monotonic)
    return Device(state, org_key_file, clock, view, custody, device, service, clock_file)


class Served:
    """A device console served on a real pty by its own thread."""

    def __init__(self, dev: Device, url: str) -> None:
        self.stopping = threading.Event()
        self.events: list[tuple[str, dict]] = []
        self.server = ConsoleServer(dev.service, url, stopping=self.stopping,
                                    report=lambda e, **f: self.events.append((e, f)))
        self.server.start()
        deadline = time.monotonic() + 10
        while not any(e == "console_open" for e, _ in self.events):  # opening flushes input
            assert time.monotonic() < deadline, self.events
            time.sleep(0.01)

    def close(self) -> None:
        self.server.close()


def make_recording(dev: Device, segments: int = 4) -> str:
    from akkoord.store.keys import OrgPrivateKey
    from akkoord.store.writer import AudioParams, RecordingWriter

    org = OrgPrivateKey.load(dev.org_key_file)
    w = RecordingWriter.create(dev.state, dev.state.identity(), [org.public],
                               AudioParams(sample_rate=16000, segment_samples=800), dev.clock,
                               custody=dev.custody, sync=False)
    w.add_event("press", party="A")
    w.add_event("press", party="B")
    w.add_event("start")
    for i in range(segments):
        w.add_audio(bytes([i]) * 1600)
        dev.clock.advance(0.05)
    w.close("party_b", party="B")
    return w.id
