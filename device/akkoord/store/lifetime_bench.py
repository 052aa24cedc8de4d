"""What grows with the device's age: figures for `akkoord bench` (issue 11).

A device in a youth-care office makes ~4 recordings a day for years. The recordings kept in
the state folder are bounded by the disk and by collection (months of them when collection
is late); the custody log is never cut, so it grows for the device's whole life (~7 entries
per recording). This module builds two state folders in the same run — a young device and an
old one — and measures the user-facing operations on both, alternated, best of several; each
figure is a ratio `<op>_large_vs_small`, so the machine's speed cancels out.

The old device's folder is built fast and honestly for what the measured code reads: one
real recording (writer, manifest, export frames, receipt), and its siblings made from it
with their own ids, times, signatures, export frames and receipts; their containers are
hard links to the first one's (nothing measured here reads a container). The custody log
holds one signed, chained entry per event of every recording the device ever made, deleted
ones included.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.clock import FixedClock
from akkoord.collect.package import pending_recordings
from akkoord.collect.receipts import (
    ARCHIVED_FILE,
    is_receipted,
    pending_count,
    trusted_signing_keys,
)
from akkoord.collect.statements import Signer, make_receipt
from akkoord.store.catalog import RACY_NS, shared_catalog
from akkoord.store.custody import ZERO_HASH, CustodyLog, new_entry, signed_line
from akkoord.store.exports import append_export, read_exports
from akkoord.store.keys import DeviceIdentity, generate_org_key
from akkoord.store.layout import CONTAINER_FILE, WRAPPED_KEYS_FILE, StateDir
from akkoord.store.manifest import MANIFEST_FILE, read_manifest, write_manifest_bytes
from akkoord.store.reconcile import open_exports, reconcile_exports
from akkoord.store.writer import AudioParams, RecordingWriter
from akkoord.trust import OrgSigningKey, device_certificate

__all__ = ["AgedState", "build_state", "lifetime_figures"]

T0 = 1_800_000_000  # the young device's first day (2027-01-15)
DAY = 86400


class _LogLines:
    """Custody lines exactly as CustodyLog.append writes them, without re-reading the log
    for every line (building a log of years one append at a time would take hours)."""

    def __init__(self, identity: DeviceIdentity) -> None:
        self.identity = identity
        self.seq, self.prev = 0, ZERO_HASH
        self.lines: list[bytes] = []

    def add(self, when: float, kind: str, rid: str | None = None, **detail: Any) -> dict:
        entry = new_entry(self.seq, self.prev, FixedClock(when).wall().to_json(), kind, rid,
                          detail)
        digest, _, line = signed_line(entry, self.identity)
        self.lines.append(line)
        self.seq, self.prev = self.seq + 1, digest.hex()
        return entry

    def write(self, path: Path) -> None:
        path.write_bytes(b"".join(self.lines))


@dataclass
class AgedState:
    state: StateDir
    identity: DeviceIdentity
    org: OrgSigningKey
    now: float
    kept: list[str]  # recording ids in the folder, oldest first
    entries: int  # custody log entries


def build_state(root: Path, *, kept: int, deleted: int, segments: int,
                receipted: float = 0.5) -> AgedState:
    """A device that made `kept + deleted` recordings of `segments` seconds each, four a
    day; the oldest `deleted` were collected, receipted and deleted; of the `kept` ones the
    oldest `receipted` share is collected and receipted, the rest waits for collection.
    Every recording has two copies for the parties."""
    state = StateDir(root / "state")
    state.ensure()
    identity = DeviceIdentity.generate()
    identity.save(state.keys_dir)
    recipient = generate_org_key("x25519")
    state.recipients_dir.mkdir(parents=True, exist_ok=True)
    (state.recipients_dir / f"{recipient.fingerprint[:16]}.pub").write_bytes(
        recipient.public.dumps())
    org = OrgSigningKey.from_seed(bytes(range(32)), "Jeugdzorg Bench")
    state.trust_dir.mkdir(parents=True, exist_ok=True)
    (state.trust_dir / f"{org.fingerprint[:16]}.pub").write_bytes(org.public.dumps())
    cert = device_certificate(org, identity.public.algorithm, identity.public.raw, "Bench",
                              T0 - DAY, T0 + 20 * 365 * DAY, T0 - DAY)
    state.certificate_path.write_text(json.dumps(cert, indent=1))
    signer = Signer.org(org)

    total = kept + deleted
    when = [T0 + (i // 4) * DAY + (i % 4) * 7200 for i in range(total)]
    now = when[-1] + 3 * DAY
    log = _LogLines(identity)
    log.add(T0 - DAY, "device_initialised")

    # The template: one real recording (the oldest kept), closed and signed by the writer.
    if kept < 1:
        raise ValueError("a state to measure keeps at least one recording")
    clock = FixedClock(when[deleted])
    w = RecordingWriter.create(state, identity, [recipient.public],
                               AudioParams(),
                               clock, sync=False, reserve_bytes=0)
    w.add_event("press", party="A")
    w.add_event("press", party="B")
    w.add_event("start")
    pcm = bytes(AudioParams().segment_samples * 2)
    for _ in range(segments):
        w.add_audio(pcm)
    clock.advance(segments)
    w.close("party_b", party="B")
    template = w.path
    tid = template.name
    data = (template / MANIFEST_FILE).read_bytes()
    created = FixedClock(when[deleted]).wall().to_json()["utc"].encode()
    ended = FixedClock(when[deleted] + segments).wall().to_json()["utc"].encode()
    doc = json.loads(data)
    head = doc["chain_head"]

    kept_ids: list[str] = []
    receipt_batch: list[str] = []
    for i in range(total):
        rid = tid if i == deleted else os.urandom(16).hex()
        t = when[i]
        log.add(t, "recording_started", rid, simulated=False, header_seal="00" * 32)
        log.add(t + segments, "recording_closed", rid, status="complete", chain_head=head)
        copies = [log.add(t + segments + 60 * n, "export", rid, copy_number=n,
                          stick_id_sha256=None)["seq"] for n in (1, 2)]
        is_kept = i >= deleted
        collected = not is_kept or (i - deleted) < int(kept * receipted)
        if collected:
            log.add(t + 30 * DAY, "archive_collected", rid, token_serial="0" * 32,
                    chain_head=head, stick_path="/media/stick")
            log.add(t + 31 * DAY, "archive_receipt", rid, receipt_serial="1" * 32,
                    chain_head=head, organisation=org.organisation)
        if not is_kept:
            log.add(t + 90 * DAY, "recording_deleted", rid, reason="retention",
                    chain_head=head)
            for n in (1, 2):  # what the next start's reconcile_exports says of its copies
                log.add(t + 91 * DAY, "export_reconciled", rid, copy_number=n,
                        export_seq=None, outcome="unknown", stick_id_sha256=None)
            continue
        directory = state.recordings_dir / rid
        if rid != tid:
            directory.mkdir(mode=0o700)
            own = (data.replace(tid.encode(), rid.encode())
                   .replace(created, FixedClock(t).wall().to_json()["utc"].encode())
                   .replace(ended, FixedClock(t + segments).wall().to_json()["utc"].encode()))
            write_manifest_bytes(directory, own, identity)
            shutil.copyfile(template / WRAPPED_KEYS_FILE, directory / WRAPPED_KEYS_FILE)
            os.link(template / CONTAINER_FILE, directory / CONTAINER_FILE)
        for n, seq in enumerate(copies, 1):
            append_export(directory, identity, FixedClock(t + segments + 60 * n),
                          copy_number=n, stick_id_sha256=None, custody_seq=seq)
        kept_ids.append(rid)
        if collected:
            receipt_batch.append(rid)
        # One receipt per collection (~a month of recordings), kept whole in every
        # recording it covers, as apply_receipt does.
        if receipt_batch and (len(receipt_batch) == 120 or not collected):
            _receipt(state, signer, identity, receipt_batch, head, t)
            receipt_batch = []
    if receipt_batch:
        _receipt(state, signer, identity, receipt_batch, head, when[-1])
    log.write(state.custody_path)
    return AgedState(state, identity, org, now, kept_ids, log.seq)


def _receipt(state: StateDir, signer: Signer, identity: DeviceIdentity, rids: list[str],
             head: str, t: float) -> None:
    env = make_receipt(signer, identity.fingerprint,
                       [{"recording_id": r, "chain_head": head} for r in rids],
                       token_serial=None, now=t)
    blob = json.dumps(env, indent=1).encode() + b"\n"
    for r in rids:
        (state.recording_dir(r) / ARCHIVED_FILE).write_bytes(blob)


class _View:
    """An idle daemon, as the console sees it."""

    def machine_state(self) -> str:
        return "ready"

    def faults(self) -> list[str]:
        return []

    def active_recording(self) -> str | None:
        return None

    def exportable_recording(self) -> str | None:
        return None


@dataclass
class _Device:
    aged: AgedState
    console: Any
    custody: CustodyLog
    clock: FixedClock

    @classmethod
    def open(cls, aged: AgedState) -> _Device:
        from akkoord.config import parse_config
        from akkoord.console.clockset import CommandClockSetter
        from akkoord.console.device import ConsoleDevice

        clock = FixedClock(aged.now)
        custody = CustodyLog(aged.state.custody_path, aged.identity, clock)
        config = parse_config({}, "bench")
        console = ConsoleDevice(state=aged.state, config=config, custody=custody, clock=clock,
                                fingerprint=aged.identity.fingerprint, view=_View(),
                                clock_setter=CommandClockSetter(config.console.clock_command))
        return cls(aged, console, custody, clock)

    def advice(self) -> int:
        a = self.aged
        return pending_count(a.state, trusted_signing_keys(a.state), a.identity.fingerprint,
                             a.now)

    def advice_before(self) -> int:
        """The advice as it was counted before: every receipt verified, every receipted
        recording's manifest read, per request."""
        a = self.aged
        trusted = trusted_signing_keys(a.state)
        fp = a.identity.fingerprint
        archived = {rid for rid in a.state.recording_ids()
                    if is_receipted(a.state, rid, trusted, fp, a.now)}
        return len(pending_recordings(a.state, archived))

    def reconcile(self) -> None:
        """The start-up's reconciliation, as in a fresh process: nothing read yet."""
        shared_catalog().clear()
        if reconcile_exports(self.aged.state, self.custody):
            raise AssertionError("a steady state has no export left to reconcile")

    def reconcile_before(self) -> None:
        """The same question asked as before: the export record read per copy."""
        for e in open_exports(list(self.custody.entries())):
            directory = self.aged.state.recordings_dir / str(e.get("recording_id"))
            if directory.is_dir():
                read_exports(directory)

    def read_manifests(self) -> None:
        """What `list` and `status` did per request before: every manifest read."""
        for rid in self.aged.state.recording_ids():
            read_manifest(self.aged.state.recording_dir(rid), segments=False)

    def parse_log(self) -> None:
        """What `log` did per request before: the whole log parsed."""
        list(self.custody.entries())

    def log_after_append(self) -> float:
        """`log` answered right after the device appended an entry (a recording made since
        the last request): the index hashes the bytes it holds again, then parses one line."""
        self.custody.append("bench_marker")
        t = time.perf_counter()
        self.console.log(None, 100)
        return time.perf_counter() - t


def _timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _sizes(aged: AgedState) -> dict[str, Any]:
    return {"recordings": len(aged.kept), "custody_entries": aged.entries,
            "custody_log_mb": round(aged.state.custody_path.stat().st_size / 1e6, 1)}


def lifetime_figures(root: Path, quick: bool) -> dict[str, Any]:
    """Each operation on a young and an old device in the same run, alternated, best of
    `rounds`, as `<op>_large_vs_small`; plus the operations against what they replaced
    (`<op>_vs_<what it did before>`), measured on the old device."""
    if quick:
        small = dict(kept=4, deleted=16, segments=30)
        large = dict(kept=150, deleted=350, segments=120)
        rounds = 3
    else:
        small = dict(kept=10, deleted=20, segments=1800)
        large = dict(kept=1000, deleted=4000, segments=1800)
        rounds = 7
    root = Path(root)
    devices = {}
    for name, size in (("small", small), ("large", large)):
        devices[name] = _Device.open(build_state(root / name, **size))
    # A file changed less than RACY_NS ago is read again every time (store/catalog.py):
    # measure the steady state of a device whose recordings were made earlier.
    time.sleep(RACY_NS / 1e9 + 0.1)

    ops: dict[str, Callable[[_Device], Any]] = {
        "console_status": lambda d: d.console.status(),
        "console_list": lambda d: d.console.list(),
        "console_log": lambda d: d.console.log(None, 100),
        "storage_advice": lambda d: d.advice(),
        "storage_advice_before": lambda d: d.advice_before(),
        "start_reconcile": lambda d: d.reconcile(),
        "start_reconcile_before": lambda d: d.reconcile_before(),
        "read_manifests": lambda d: d.read_manifests(),
        "parse_log": lambda d: d.parse_log(),
    }
    best: dict[tuple[str, str], float] = {}

    def keep(op: str, name: str, t: float) -> None:
        best[op, name] = min(best.get((op, name), float("inf")), t)

    for name in ("small", "large"):  # first calls fill the caches: not measured
        for op in ops.values():
            op(devices[name])
    for _ in range(rounds):
        for op, fn in ops.items():
            for name in ("small", "large"):
                keep(op, name, _timed(lambda fn=fn, name=name: fn(devices[name])))
    # Last: after an append the log is hashed again on every request for RACY_NS.
    for _ in range(rounds):
        for name in ("small", "large"):
            keep("log_after_append", name, devices[name].log_after_append())

    def ratio(op: str) -> float:
        return round(best[op, "large"] / best[op, "small"], 2)

    n_small, n_large = len(devices["small"].aged.kept), len(devices["large"].aged.kept)
    per_row = (best["console_list", "large"] / n_large) / (best["console_list", "small"]
                                                          / n_small)
    out: dict[str, Any] = {
        "lifetime_small": _sizes(devices["small"].aged),
        "lifetime_large": _sizes(devices["large"].aged),
        "console_status_large_vs_small": ratio("console_status"),
        "console_list_per_recording_large_vs_small": round(per_row, 2),
        "console_list_vs_reading_manifests": round(
            best["console_list", "large"] / best["read_manifests", "large"], 3),
        "console_log_large_vs_small": ratio("console_log"),
        "console_log_after_append_vs_parsing_log": round(
            best["log_after_append", "large"] / best["parse_log", "large"], 3),
        "storage_advice_large_vs_small": ratio("storage_advice"),
        "storage_advice_vs_before": round(
            best["storage_advice", "large"] / best["storage_advice_before", "large"], 3),
        "start_reconcile_vs_before": round(
            best["start_reconcile", "large"] / best["start_reconcile_before", "large"], 3),
        "console_list_large_ms": round(best["console_list", "large"] * 1000, 1),
        "console_status_large_ms": round(best["console_status", "large"] * 1000, 1),
    }
    return out
