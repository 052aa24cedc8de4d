"""Exports the custody log began but never concluded (a crash or power cut mid-copy).

`export_copy` logs `export` before it writes, and `export_failed` when it fails; a copy that
succeeded is recorded in the recording's own `exports.akr`. An `export` with neither outcome
means the device went down while copying. At the next start each such entry gets one
`export_reconciled` entry saying what is known: the copy was not completed (whatever it left on
the stick is a `.partial` folder, which never verifies as a finished copy), or the recording is
gone and the outcome is unknown. A copy whose export frame is there succeeded and needs
nothing.
"""

from __future__ import annotations

from typing import Any

from akkoord.store.catalog import shared_catalog
from akkoord.store.custody import CustodyLog
from akkoord.store.layout import StateDir

__all__ = ["open_exports", "reconcile_exports"]

_CONCLUDED = ("export_failed", "export_reconciled")


def _key(entry: dict[str, Any]) -> tuple[str, Any]:
    return str(entry.get("recording_id")), (entry.get("detail") or {}).get("copy_number")


def open_exports(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`export` entries that no later entry concludes, oldest first."""
    pending: dict[tuple[str, Any], dict[str, Any]] = {}
    for e in entries:
        if e.get("type") == "export":
            pending[_key(e)] = e
        elif e.get("type") in _CONCLUDED:
            pending.pop(_key(e), None)
    return list(pending.values())


def _completed(state: StateDir, recording_id: str, copy_number: Any) -> bool | None:
    directory = state.recordings_dir / recording_id
    if not directory.is_dir():
        return None
    # Every copy that succeeded stays an `export` entry with no conclusion in the log, so
    # each start asks this of every copy of every recording kept: through the catalog, each
    # recording's manifest and export record are read once (not once per copy), and the
    # console finds them read. The numbers are read_exports' own.
    try:
        summary = shared_catalog().summary(directory)
    except OSError:
        return None
    if summary.copy_numbers is None:
        return None
    return any(n == copy_number for n in summary.copy_numbers)


def reconcile_exports(state: StateDir, custody: CustodyLog) -> list[dict[str, Any]]:
    """Append one `export_reconciled` per unconcluded export; returns their details."""
    done = []
    for entry in open_exports(list(custody.entries())):
        rid, number = _key(entry)
        completed = _completed(state, rid, number)
        if completed:
            continue
        outcome = "not_completed" if completed is False else "unknown"
        detail = {
            "copy_number": number,
            "export_seq": entry.get("seq"),
            "outcome": outcome,
            "stick_id_sha256": (entry.get("detail") or {}).get("stick_id_sha256"),
        }
        custody.append("export_reconciled", rid, **detail)
        done.append({"recording_id": rid, **detail})
    return done
