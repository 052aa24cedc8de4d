"""Custody-log figures for `akkoord bench` (issue 11): an append and a head read cost the
same on a log of 10 entries and on one of 20,000 (a few years of a device's use).

Both logs are measured in the same run, alternated, best of several, so the ratio is free of
what the machine was doing meanwhile. The large log is built with the real entry, hash,
signature and line functions append uses, written in one go (20,000 appends of the old,
whole-log kind would take minutes). `custody_full_parse_large_ms` is what reading the whole
large log costs: the price every append and head paid before, and still the price of the
full checks (`akkoord custody`, recovery's read once per boot), whose job that is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from akkoord.clock import FixedClock
from akkoord.store.custody import ZERO_HASH, CustodyLog, _parse_lines, new_entry, signed_line
from akkoord.store.keys import DeviceIdentity

__all__ = ["custody_figures"]

SMALL, LARGE = 10, 20_000


def _detail(i: int) -> tuple[str, str | None, dict[str, Any]]:
    """A mix like a device's: recordings started and closed, copies, console sessions."""
    rid = f"{i // 4:032x}"
    kind = ("recording_started", "recording_closed", "export", "console_auth")[i % 4]
    if kind == "recording_started":
        return kind, rid, {"header_seal": f"{i:064x}", "simulated": False}
    if kind == "recording_closed":
        return kind, rid, {"status": "complete", "reason": "both_stopped",
                           "chain_head": f"{i:064x}"}
    if kind == "export":
        return kind, rid, {"copy_number": 1, "stick_id_sha256": f"{i:064x}"}
    admin = {"name": "beheer", "fingerprint": f"{i:064x}", "serial": f"{i:016x}",
             "organisation": "Jeugdzorg Voorbeeld"}
    return kind, None, {"command": "list", "admin": admin, "via": "console"}


def build_log(path: Path, n: int, ident: DeviceIdentity, clock: FixedClock) -> None:
    """A log of `n` entries, byte for byte what `n` appends would write, written at once."""
    prev, out = ZERO_HASH, []
    for i in range(n):
        kind, rid, detail = _detail(i)
        digest, _, line = signed_line(new_entry(i, prev, clock.wall().to_json(), kind, rid, detail),
                                      ident)
        out.append(line)
        prev = digest.hex()
    path.write_bytes(b"".join(out))


def _ms(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def custody_figures(root: Path, quick: bool = False) -> dict[str, Any]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ident, clock = DeviceIdentity.generate(), FixedClock()
    large_n = 2_000 if quick else LARGE
    logs = {}
    for name, n in (("small", SMALL), ("large", large_n)):
        path = root / f"custody-{name}.log"
        build_log(path, n, ident, clock)
        logs[name] = CustodyLog(path, ident, clock)
    best = {f"{op}_{name}": float("inf") for op in ("append", "head") for name in logs}
    for _ in range(5 if quick else 25):
        for name, log in logs.items():  # alternated: both see the same machine
            best[f"append_{name}"] = min(best[f"append_{name}"],
                                         _ms(lambda log=log: log.append("console_auth",
                                                                        command="status")))
            best[f"head_{name}"] = min(best[f"head_{name}"], _ms(log.head))
    large = logs["large"].path
    full = min(_ms(lambda: _parse_lines(large.read_bytes())) for _ in range(2 if quick else 3))
    return {
        "custody_append_small_ms": round(best["append_small"], 3),
        "custody_append_large_ms": round(best["append_large"], 3),
        "custody_append_large_vs_small": round(best["append_large"] / best["append_small"], 3),
        "custody_head_small_ms": round(best["head_small"], 4),
        "custody_head_large_ms": round(best["head_large"], 4),
        "custody_head_large_vs_small": round(best["head_large"] / best["head_small"], 3),
        "custody_large_entries": large_n,
        "custody_large_bytes": large.stat().st_size,
        "custody_full_parse_large_ms": round(full, 1),
    }
