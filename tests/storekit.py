"""Building blocks for store tests: deterministic recordings and byte-level surgery."""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from akkoord.clock import FixedClock
from akkoord.store.custody import CustodyLog
from akkoord.store.format import Kind
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey, generate_org_key
from akkoord.store.layout import CONTAINER_FILE, StateDir
from akkoord.store.reader import ParsedFrame, scan
from akkoord.store.writer import AudioParams, FileOps, RecordingWriter
from akkoord.trust import OrgSigningKey, device_certificate

RATE = 16000
SEG = 800  # 50 ms segments keep test files small; the format does not care


_SCRATCH: dict[int, Path] = {}  # pid -> this process's scratch root


def _scratch_root() -> Path:
    """One scratch root per test process, removed when it exits.

    tmpfs is memory: folders left behind by every run would pile up (gigabytes on a CI
    machine that runs the suite all day). Keyed by pid so a forked child never removes its
    parent's root."""
    pid = os.getpid()
    if pid not in _SCRATCH:
        shm = "/dev/shm"
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
        root = Path(tempfile.mkdtemp(prefix=f"akkoord-test-{pid}-", dir=base))
        _SCRATCH[pid] = root
        atexit.register(_remove_scratch, pid, root)
    return _SCRATCH[pid]


def _remove_scratch(pid: int, root: Path) -> None:
    if os.getpid() == pid:
        shutil.rmtree(root, ignore_errors=True)


def examples(n: int) -> int:
    """Hypothesis examples for a property test: `n`, but few in a mutation run
    (scripts/mutation.py sets AKKOORD_MUTATION=1), which runs the test once per mutant and
    relies on the deterministic tests beside it to kill mutants."""
    return min(n, 8) if os.environ.get("AKKOORD_MUTATION") == "1" else n


def fast_tmp() -> Path:
    """A scratch dir on tmpfs where there is one: fsync is free there, semantics the same."""
    return Path(tempfile.mkdtemp(prefix="s-", dir=_scratch_root()))


@dataclass
class Kit:
    root: Path
    state: StateDir
    identity: DeviceIdentity
    org: OrgPrivateKey
    clock: FixedClock
    custody: CustodyLog
    signing: OrgSigningKey | None = None  # the organisation that certified this device

    def writer(
        self,
        *,
        rate: int = RATE,
        seg: int = SEG,
        ops: FileOps | None = None,
        sync: bool = True,
        simulated: bool = False,
        **kw: object,
    ) -> RecordingWriter:
        return RecordingWriter.create(
            self.state,
            self.identity,
            [self.org.public],
            AudioParams(sample_rate=rate, segment_samples=seg),
            self.clock,
            custody=self.custody,
            ops=ops,
            sync=sync,
            simulated=simulated,
            **kw,
        )

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


_ORG_CACHE: dict[str, OrgPrivateKey] = {}
SIGNING = OrgSigningKey.from_seed(bytes(32), "Jeugdzorg Testregio")


def provision(state: StateDir, identity: DeviceIdentity, now: int,
              org: OrgSigningKey = SIGNING) -> None:
    """What the organisation does at provisioning: certify the device key, install the
    certificate and the organisation's signing key on the device (FORMAT.md §10)."""
    cert = device_certificate(org, identity.public.algorithm, identity.public.raw,
                              "Testlocatie", now - 86400, now + 10 * 365 * 86400, now)
    state.trust_dir.mkdir(parents=True, exist_ok=True)
    (state.trust_dir / f"{org.fingerprint[:16]}.pub").write_bytes(org.public.dumps())
    state.certificate_path.write_text(json.dumps(cert, indent=1))


def make_kit(root: Path | None = None, kem: str = "x25519", *, certified: bool = True) -> Kit:
    root = root or fast_tmp()
    state = StateDir(root / "state")
    state.ensure()
    identity = DeviceIdentity.generate()
    identity.save(state.keys_dir)
    if kem not in _ORG_CACHE:  # ML-KEM key generation is cheap, but not free
        _ORG_CACHE[kem] = generate_org_key(kem)
    clock = FixedClock()
    if certified:
        provision(state, identity, int(clock.t))
    return Kit(
        root,
        state,
        identity,
        _ORG_CACHE[kem],
        clock,
        CustodyLog(state.custody_path, identity, clock),
        SIGNING if certified else None,
    )


def pcm(seed: int, samples: int = SEG) -> bytes:
    return random.Random(seed).randbytes(samples * 2)


def record(
    kit: Kit,
    segments: int = 6,
    *,
    gap_after: int | None = None,
    close: bool = True,
    seed: int = 0,
    stop_reason: str = "party_b",
) -> tuple[RecordingWriter, list[bytes]]:
    """A typical ceremony: two presses, start, audio, optionally a gap, stop."""
    w = kit.writer()
    w.add_event("press", party="A")
    kit.clock.advance(3)
    w.add_event("press", party="B")
    w.add_event("start")
    audio = []
    for i in range(segments):
        data = pcm(seed * 1000 + i)
        w.add_audio(data)
        audio.append(data)
        kit.clock.advance(SEG / RATE)
        if gap_after is not None and i == gap_after:
            w.add_gap(SEG // 2, "overflow", estimated=False)
    if close:
        w.close(stop_reason, party="B")
    return w, audio


def frames_of(container: Path) -> list[ParsedFrame]:
    with open(container, "rb") as f:
        return [x for x in scan(f, container.stat().st_size) if isinstance(x, ParsedFrame)]


def copy_recording(src: Path, dst_root: Path) -> Path:
    dst = dst_root / src.name
    shutil.copytree(src, dst)
    return dst


def frame_bytes(container: Path) -> list[bytes]:
    data = container.read_bytes()
    return [data[f.offset : f.offset + f.length] for f in frames_of(container)]


def rewrite(directory: Path, frames: list[bytes]) -> None:
    (directory / CONTAINER_FILE).write_bytes(b"".join(frames))


def kinds(container: Path) -> list[str]:
    return [Kind(f.header.kind).name for f in frames_of(container)]


class FaultyOps(FileOps):
    """Fails the n-th write or sync (1-based) with `err`, once; everything else is real.
    A failing write first writes half its data, as a filling disk does."""

    def __init__(self, op: str, n: int, err: int) -> None:
        self.op, self.n, self.err = op, n, err
        self.count = {"write": 0, "sync": 0}
        self.fired = False
        self.acknowledged = 0  # frames whose write and sync both returned

    def _fires(self, op: str) -> bool:
        self.count[op] += 1
        if op == self.op and self.count[op] == self.n and not self.fired:
            self.fired = True
            return True
        return False

    def write(self, fd: int, data: bytes, where: str) -> None:
        if self._fires("write"):
            os.write(fd, data[: len(data) // 2])
            raise OSError(self.err, os.strerror(self.err))
        super().write(fd, data, where)

    def sync(self, fd: int, where: str) -> None:
        if self._fires("sync"):
            raise OSError(self.err, os.strerror(self.err))
        super().sync(fd, where)
        self.acknowledged += 1
