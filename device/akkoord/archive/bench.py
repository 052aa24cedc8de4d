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
import os
import random
import shutil
import subprocess
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


def _write_read_back(files: list[Path], target: Path) -> int:
    """The stick's own limit: write the bytes, fsync, drop the cache, read them back."""
    target.mkdir()
    total = 0
    for i, src in enumerate(files):
        dst = target / f"{i}"
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(CHUNK):
                fout.write(chunk)
                total += len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
            _drop(fout.fileno())
        with open(dst, "rb") as f:
            # Drop again at read time, as collection does: right after fsync some pages may
            # still be under write-back and stay cached, and a read from the page cache
            # would not be a read of the stick.
            _drop(f.fileno())
            while f.read(CHUNK):
                pass
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
    (root), else a folder on the bench's file system (said in the result)."""
    img, mnt = root / "stick.img", root / "stick"
    mnt.mkdir(parents=True)
    if os.geteuid() == 0 and shutil.which("mkfs.ext4"):
        with open(img, "wb") as f:
            f.truncate(mb * 1024 * 1024)
        made = subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], capture_output=True)
        if made.returncode == 0 and subprocess.run(
                ["mount", "-o", "loop", str(img), str(mnt)], capture_output=True).returncode == 0:
            try:
                yield mnt, "loop-mounted ext4 image"
            finally:
                subprocess.run(["umount", str(mnt)], capture_output=True)
                img.unlink()
            return
    yield mnt, "folder on the bench file system (not root: no loop mount)"


def _collection(root: Path, count: int, seconds: int) -> dict[str, Any]:
    from akkoord.store.keys import generate_org_key

    ident, org = DeviceIdentity.generate(), generate_org_key("x25519")
    state = StateDir(root / "state")
    state.ensure()
    ident.save(state.keys_dir)
    _recordings(state, ident, org, count, seconds)
    os.sync()  # the fixture's own dirty pages must not be flushed inside a measurement
    files = sorted(p for p in state.recordings_dir.rglob("*") if p.is_file())
    custody = CustodyLog(state.custody_path, ident, FixedClock())
    best_collect = best_limit = best_ingest = best_copy = float("inf")
    nbytes = sum(p.stat().st_size for p in files)
    okey = OrgSigningKey.generate("Bench")
    write_org_signing_pair(okey, root / "org")
    (root / "org" / "org.pub").write_bytes(org.public.dumps())
    cert = device_certificate(okey, "ed25519", ident.public.raw, "bench", 0, 4_000_000_000, 0)
    signer = Signer.org(okey)
    repeats = 5  # best of each, alternating: a busy neighbour slows both, not the ratio
    with _stick(root / "fs", int(nbytes * 2.5 / MB) + 64) as (fs, kind):
        for i in range(repeats):
            stick = fs / "collect"
            t0 = time.perf_counter()
            res = collect_to_stick(state, ident, custody, stick, token={"serial": "bench"},
                                   archived=set(), certificate=json_bytes(cert))
            best_collect = min(best_collect, time.perf_counter() - t0)
            assert res.ok and len(res.collected) == count, res.failed
            # the package is kept (off the stick) for the ingest figures below
            shutil.rmtree(root / f"pkg{i}", ignore_errors=True)
            shutil.copytree(stick, root / f"pkg{i}")
            shutil.rmtree(stick)
            t0 = time.perf_counter()
            _write_read_back(files, fs / "limit")
            best_limit = min(best_limit, time.perf_counter() - t0)
            shutil.rmtree(fs / "limit")
    os.sync()
    for i in range(repeats):
        stick = root / f"pkg{i}"
        archive = init_archive(root / f"archive{i}", organisation="Bench",
                               trust=[root / "org" / "org-signing.pub"],
                               recipients=[root / "org" / "org.pub"], db=None,
                               signing_key=None, certificate=None)
        index = open_index(archive.root, None)
        index.migrate()
        t0 = time.perf_counter()
        got = ingest(archive, index, stick, key=signer)
        best_ingest = min(best_ingest, time.perf_counter() - t0)
        index.close()
        assert got.ok and len(got.stored) == count, got.to_json()
        pkg = sorted(p for p in (stick / "akkoord-collect").rglob("recordings/*/*"))
        t0 = time.perf_counter()
        _plain_copy(pkg, root / f"plain{i}")
        best_copy = min(best_copy, time.perf_counter() - t0)
    return {
        "collect_stick": kind,
        "collect_mb": round(nbytes / MB, 1),
        "collect_mb_s": round(nbytes / MB / best_collect, 1),
        "collect_limit_mb_s": round(nbytes / MB / best_limit, 1),
        "collect_vs_write_read_back": round(best_limit / best_collect, 3),
        "ingest_mb_s": round(nbytes / MB / best_ingest, 1),
        "ingest_plain_copy_mb_s": round(nbytes / MB / best_copy, 1),
        "ingest_vs_plain_copy": round(best_copy / best_ingest, 3),
    }


def json_bytes(doc: Any) -> bytes:
    import json

    return json.dumps(doc).encode()


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
    `recordings` = (count, seconds each) collected and ingested."""
    root.mkdir(parents=True, exist_ok=True)
    count, seconds = recordings or ((4, 60) if quick else (10, 300))
    out = _collection(root / "collect", count, seconds)
    n = rows if rows is not None else (20_000 if quick else 100_000)
    out.update(_index_figures(root / "index", n, postgresql))
    return out
