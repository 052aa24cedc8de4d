"""Archive and collection figures for `akkoord bench`, each against a limit in the same run.

* collection: `collect_to_stick` against writing the same bytes to the same file system,
  fsyncing, dropping the cache and reading them back (what any checked copy must do);
* ingest: `archive ingest` (stage, verify, store by hash, index, receipt) against a plain copy
  of the same bytes (read, write, fsync);
* index: `archive list` / `search` queries on 100,000 indexed recordings, p95 in ms, with
  SQLite and with a throw-away PostgreSQL server (reported as skipped, with the reason, where
  PostgreSQL cannot be started).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from akkoord.archive.index import Index, SearchFilter, open_index
from akkoord.archive.ingest import ingest
from akkoord.archive.store import init_archive
from akkoord.clock import FixedClock
from akkoord.collect.package import collect_to_stick
from akkoord.collect.statements import Signer, utc
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import StateDir
from akkoord.store.writer import AudioParams, RecordingWriter
from akkoord.trust import OrgSigningKey, device_certificate, write_org_signing_pair

__all__ = ["archive_figures"]

MB = 1e6
SEG = 96000  # 1 s of 48 kHz mono 16-bit
CHUNK = 1 << 20


def _recordings(state: StateDir, ident: DeviceIdentity, org: Any, count: int,
                seconds: int) -> None:
    base = os.urandom(SEG)
    for r in range(count):
        w = RecordingWriter.create(state, ident, [org.public], AudioParams(), FixedClock(),
                                   sync=False, reserve_bytes=0)
        for i in range(seconds):
            w.add_audio((r * 100000 + i).to_bytes(4, "big") + base[4:])
        w.close("bench")


def _drop(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _drop_tree(root: Path) -> None:
    """Drop the cached pages of every file under `root`, so the next read reads the stick."""
    for p in root.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                _drop(fd)
            finally:
                os.close(fd)


def _write_read_back(files: list[Path], target: Path, check: bool = True) -> int:
    """The stick's own limit: write the bytes, fsync, drop the cache, read them back and
    (`check`) compare them with the source, file by file. Plain code, none of collection's."""
    target.mkdir()
    total = 0
    a, b = bytearray(CHUNK), bytearray(CHUNK)  # reused, as collection's are: no handicap
    for i, src in enumerate(files):
        dst = target / f"{i}"
        with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
            while n := fin.readinto(a):
                view = memoryview(a)[:n]
                while view:
                    view = view[fout.write(view):]
                total += n
            os.fsync(fout.fileno())
            _drop(fout.fileno())
        with open(dst, "rb", buffering=0) as f, open(src, "rb", buffering=0) as fin:
            # Drop again at read time, as collection does: right after fsync some pages may
            # still be under write-back and stay cached, and a read from the page cache
            # would not be a read of the stick.
            _drop(f.fileno())
            while n := f.readinto(b):
                if not check:
                    continue
                same = fin.readinto(a) == n and (a == b if n == CHUNK else a[:n] == b[:n])
                if not same:
                    raise OSError(f"{dst}: read back differs")
    return total


def _plain_copy(files: list[Path], target: Path) -> None:
    target.mkdir()
    for i, src in enumerate(files):
        with open(src, "rb") as fin, open(target / f"{i}", "wb") as fout:
            shutil.copyfileobj(fin, fout, CHUNK)
            fout.flush()
            os.fsync(fout.fileno())


@contextlib.contextmanager
def _stick(root: Path, mb: int) -> Iterator[tuple[Path, str]]:
    """A file system of its own, as a stick is: a loop-mounted ext4 image where we may mount
    (root), else a folder on the bench's file system (said in the result). Not throttled:
    on the bench's tmpfs this measures what collection and ingest cost in CPU."""
    img, mnt = root / "stick.img", root / "stick"
    mnt.mkdir(parents=True)
    if os.geteuid() == 0 and shutil.which("mkfs.ext4"):
        with open(img, "wb") as f:
            f.truncate(mb * 1024 * 1024)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], capture_output=True)
        if made.returncode == 0 and subprocess.run(
                ["mount", "-o", "loop", str(img), str(mnt)], capture_output=True).returncode == 0:
            try:
                yield mnt, f"loop-mounted ext4 image on {_fs_of(root)}, not throttled"
            finally:
                subprocess.run(["umount", str(mnt)], capture_output=True)
                img.unlink()
            return
    yield mnt, f"folder on {_fs_of(root)} (not root: no loop mount)"


def _fs_of(path: Path) -> str:
    """The file system type `path` is on (from /proc/mounts), for the report."""
    best, kind = "", "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) > 2 and str(path).startswith(parts[1]) and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    return kind


def _fixture(root: Path, count: int, seconds: int) -> dict[str, Any]:
    """A device state folder with `count` recordings, and the organisation's keys."""
    from akkoord.store.keys import generate_org_key

    ident, org = DeviceIdentity.generate(), generate_org_key("x25519")
    state = StateDir(root / "state")
    state.ensure()
    ident.save(state.keys_dir)
    _recordings(state, ident, org, count, seconds)
    okey = OrgSigningKey.generate("Bench")
    write_org_signing_pair(okey, root / "org")
    (root / "org" / "org.pub").write_bytes(org.public.dumps())
    cert = device_certificate(okey, "ed25519", ident.public.raw, "bench", 0, 4_000_000_000, 0)
    (root / "org" / "device.cert.json").write_text(json.dumps(cert))
    os.sync()  # the fixture's own dirty pages must not be flushed inside a measurement
    return {"root": str(root), "count": count}


def _measure(fixture: dict[str, Any], stick_fs: Path, work: Path, repeats: int
             ) -> dict[str, float]:
    """Best-of-`repeats` seconds of each job, alternating with its limit (a busy neighbour
    slows both, not the ratio). Collection writes to `stick_fs`; ingest reads the package
    from `stick_fs` (its cached pages dropped first) into an archive under `work`."""
    root = Path(fixture["root"])
    state = StateDir(root / "state")
    ident = DeviceIdentity.load(state.keys_dir)
    files = sorted(p for p in state.recordings_dir.rglob("*") if p.is_file())
    custody = CustodyLog(state.custody_path, ident, FixedClock())
    cert = (root / "org" / "device.cert.json").read_bytes()
    signer = Signer.org(OrgSigningKey.load(root / "org" / "org-signing.key"))
    best = dict.fromkeys(("collect", "limit", "unchecked", "ingest", "copy"), float("inf"))

    def timed(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        out = fn()
        best[name] = min(best[name], time.perf_counter() - t0)
        return out

    stick = stick_fs / "collect"
    for _ in range(repeats):
        shutil.rmtree(stick, ignore_errors=True)
        res = timed("collect", lambda: collect_to_stick(
            state, ident, custody, stick, token={"serial": "bench"}, archived=set(),
            certificate=cert))
        assert res.ok and len(res.collected) == fixture["count"], res.failed
        for name, check in (("limit", True), ("unchecked", False)):
            timed(name, lambda c=check: _write_read_back(files, stick_fs / "limit", c))
            shutil.rmtree(stick_fs / "limit")
    pkg = sorted(p for p in (stick / "akkoord-collect").rglob("recordings/*/*"))
    work.mkdir(parents=True, exist_ok=True)
    for i in range(repeats):
        archive = init_archive(work / f"archive{i}", organisation="Bench",
                               trust=[root / "org" / "org-signing.pub"],
                               recipients=[root / "org" / "org.pub"], db=None,
                               signing_key=None, certificate=None)
        index = open_index(archive.root, None)
        index.migrate()
        os.sync()
        _drop_tree(stick)
        got = timed("ingest", lambda a=archive, x=index: ingest(a, x, stick, key=signer))
        index.close()
        assert got.ok and len(got.stored) == fixture["count"], got.to_json()
        for receipt in (stick / "akkoord-collect" / "receipts").glob("*.json"):
            receipt.unlink()
        os.sync()
        _drop_tree(stick)
        timed("copy", lambda n=i: _plain_copy(pkg, work / f"plain{n}"))
        shutil.rmtree(work / f"plain{i}")
        shutil.rmtree(archive.root)
    best["bytes"] = sum(p.stat().st_size for p in files)
    return best


def _figures(best: dict[str, float], prefix: str) -> dict[str, Any]:
    nbytes = best["bytes"]
    return {
        f"{prefix}collect_mb": round(nbytes / MB, 1),
        f"{prefix}collect_mb_s": round(nbytes / MB / best["collect"], 1),
        f"{prefix}collect_limit_mb_s": round(nbytes / MB / best["limit"], 1),
        f"{prefix}collect_vs_write_read_back": round(best["limit"] / best["collect"], 3),
        f"{prefix}collect_vs_write_read_back_unchecked":
            round(best["unchecked"] / best["collect"], 3),
        f"{prefix}ingest_mb_s": round(nbytes / MB / best["ingest"], 1),
        f"{prefix}ingest_plain_copy_mb_s": round(nbytes / MB / best["copy"], 1),
        f"{prefix}ingest_vs_plain_copy": round(best["copy"] / best["ingest"], 3),
    }


_CHILD = """
import json, os, sys
from pathlib import Path
spec = json.loads(sys.argv[1])
if spec["procs"]:
    with open(spec["procs"], "w") as f:  # into the throttled cgroup, before any I/O
        f.write(str(os.getpid()))
from akkoord.archive.bench import _measure
best = _measure(spec["fixture"], Path(spec["stick"]), Path(spec["work"]), spec["repeats"])
print(json.dumps(best))
"""


def _collection(root: Path, count: int, seconds: int, repeats: int = 4,
                stick_count: tuple[int, int] | None = None) -> dict[str, Any]:
    """On a stick (a throttled loop device, bench_perf.throttled_target: a USB stick's
    speeds, so the figure is what it is for): the targets. On an unthrottled loop-mounted
    image (the ``fast_`` figures): what collection and ingest cost beyond pure I/O in CPU."""
    from akkoord.bench_perf import throttled_target

    fixture = _fixture(root / "fast", count, seconds)
    with _stick(root / "fs", int(fixture_bytes(fixture) * 3 / MB) + 64) as (fs, kind):
        fast = _measure(fixture, fs, root / "fast-work", repeats)
    out: dict[str, Any] = {"fast_collect_stick": kind, **_figures(fast, "fast_")}
    shutil.rmtree(root / "fast", ignore_errors=True)
    # a minute per recording at least (a few MB would pass inside the throttle's burst)
    n, secs = stick_count or (count, max(seconds // 5, min(seconds, 60)))
    fixture = _fixture(root / "slow", n, secs)
    size = int(fixture_bytes(fixture) * 3) + (64 << 20)
    with throttled_target(root, size) as (target, procs, what):
        spec = {"procs": procs, "fixture": fixture, "stick": str(target),
                "work": str(root / "slow-work"), "repeats": max(2, repeats - 1)}
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(spec)], check=True,
                              capture_output=True, text=True, timeout=3600)
        slow = json.loads(done.stdout.strip().splitlines()[-1])
    out.update({"collect_stick": what, "collect_throttled": procs is not None,
                **_figures(slow, "")})
    shutil.rmtree(root / "slow", ignore_errors=True)
    return out


def fixture_bytes(fixture: dict[str, Any]) -> int:
    return sum(p.stat().st_size for p in (Path(fixture["root"]) / "state").rglob("*")
               if p.is_file())


def _rows(n: int) -> list[dict[str, Any]]:
    rnd = random.Random(9)
    labels = [f"kamer-{i}" for i in range(40)]
    start = 1_700_000_000
    out = []
    for i in range(n):
        t = start + i * 900 + rnd.randrange(600)
        out.append({
            "recording_id": rnd.randbytes(16).hex(), "device_fingerprint": rnd.randbytes(32).hex(),
            "device_label": rnd.choice(labels), "created": utc(t) , "ended": utc(t + 3000),
            "duration_seconds": float(rnd.randrange(60, 7200)),
            "status": "interrupted" if rnd.random() < 0.03 else "complete",
            "chain_head": rnd.randbytes(32).hex(), "objects": "{}", "ingested": utc(t + 86400),
            "copies": rnd.choice((0, 0, 0, 1, 2)), "deleted": None, "delete_reason": None})
    return out


def _queries(rows: list[dict[str, Any]]) -> list[SearchFilter]:
    rnd = random.Random(3)
    out: list[SearchFilter] = []
    for _ in range(40):
        r = rnd.choice(rows)
        out += [
            SearchFilter(),
            SearchFilter(device=r["device_label"]),
            SearchFilter(since=r["created"][:10], until=r["created"][:8] + "28"),
            SearchFilter(min_duration=3600, max_duration=5400),
            SearchFilter(status="interrupted"),
            SearchFilter(min_copies=2, device=r["device_label"]),
            SearchFilter(text=r["recording_id"][:6]),
            SearchFilter(device=r["device_label"], since=r["created"][:7], offset=50),
        ]
    return out


def _p95(index: Index, queries: list[SearchFilter]) -> tuple[float, float]:
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[int(0.95 * (len(times) - 1))] * 1000, times[len(times) // 2] * 1000


def _index_figures(root: Path, n: int, postgresql: bool = True) -> dict[str, Any]:
    rows = _rows(n)
    queries = _queries(rows)
    out: dict[str, Any] = {"index_rows": n}
    (root / "sq").mkdir(parents=True)
    idx = open_index(root / "sq", None)
    idx.migrate()
    idx.add_many(rows)
    idx.execute("ANALYZE")
    _p95(idx, queries[:20])  # warm
    p95, p50 = _p95(idx, queries)
    idx.close()
    out.update({"sqlite_search_p95_ms": round(p95, 2), "sqlite_search_p50_ms": round(p50, 2),
                "sqlite_search_p95_vs_limit": round(p95 / 100, 3)})
    from akkoord.archive.pgtemp import TempPostgres, Unavailable

    if not postgresql:
        return out
    try:
        server = TempPostgres()
    except Unavailable as exc:
        out["postgresql_search"] = f"skipped: {exc}"
        return out
    try:
        idx = open_index(root, server.new_database())
        idx.migrate()
        idx.add_many(rows)
        idx.execute("ANALYZE")
        _p95(idx, queries[:20])
        p95, p50 = _p95(idx, queries)
        idx.close()
    finally:
        server.stop()
    out.update({"postgresql_search_p95_ms": round(p95, 2),
                "postgresql_search_p50_ms": round(p50, 2),
                "postgresql_search_p95_vs_limit": round(p95 / 100, 3)})
    return out


def archive_figures(root: Path, quick: bool = False, *, rows: int | None = None,
                    recordings: tuple[int, int] | None = None,
                    postgresql: bool = True) -> dict[str, Any]:
    """`rows` recordings in the index (default 100,000; 20,000 with `quick`), and
    `recordings` = (count, seconds each) collected and ingested (on the throttled stick a
    fifth as long each, at least a minute: a USB stick's speeds)."""
    root.mkdir(parents=True, exist_ok=True)
    count, seconds = recordings or ((4, 60) if quick else (10, 300))
    out = _collection(root / "collect", count, seconds, repeats=3 if quick else 4)
    n = rows if rows is not None else (20_000 if quick else 100_000)
    out.update(_index_figures(root / "index", n, postgresql))
    return out
