"""The ledger: a copy of the organisation's log kept outside the archive and its backups.

A backup of the archive folder taken before an erasure still holds the recording's wrapped
keys, and its own copy of the organisation's log (DIR/org-custody.log) ends before the
`archive_delete` entry. Restoring that backup would silently bring the recording back. So
every entry appended to the log is also appended, byte for byte, to a ledger file that lives
elsewhere (`archive init --ledger PATH`, stored in archive.json): another disk, another
machine's share, WORM storage — anywhere that is *not* rolled back with the archive.

* Before any entry is appended, the archive's log must hold the whole ledger (the ledger is a
  prefix of the log). A restored archive, whose log is behind, refuses every later copy and
  deletion until `archive restore` has brought it up to date; it can never fork the log.
* `archive restore` checks that the ledger chains and is signed by a trusted organisation key
  (a tampered or re-ordered ledger is refused and changes nothing), that the archive's log is
  a prefix of it, then carries out every `archive_delete` the ledger holds (crypto-shredding
  whatever of the recording is back; a tombstone row where the index has none, so a later
  ingest cannot store it again), reserves the copy numbers of later copies, and appends the
  missing entries to the archive's log. Idempotent: a second run finds nothing to do.
* `archive verify` reports a ledger that is missing, does not chain, or that the archive is
  behind (or ahead) of, and any recording the ledger says was deleted that is back.

What it cannot see: a ledger that was itself cut back (its last entries removed) still
chains. The ledger's head (`archive verify --json`, `ledger_head`) belongs in the privacy
officer's register next to each deletion request, so a shortened ledger is noticed there.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.archive.index import Index
from akkoord.archive.store import Archive
from akkoord.errors import UsageError
from akkoord.fsutil import fsync_fd, write_all
from akkoord.store.orglog import read_org_log

__all__ = ["LedgerState", "RestoreResult", "check_before_append", "ledger_state", "restore",
           "start_ledger", "sync_ledger"]


def _lines(path: Path) -> list[bytes]:
    """Complete lines (a torn last line, from a crash mid-append, is not one)."""
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    return [ln for ln in lines if ln.endswith(b"\n")]


def _is_prefix(short: list[bytes], long: list[bytes]) -> bool:
    return len(short) <= len(long) and long[:len(short)] == short


def _ledger_path(archive: Archive, override: Path | None = None) -> Path | None:
    path = override or archive.config.get("ledger")
    return Path(path) if path else None


@dataclass
class LedgerState:
    path: str | None
    entries: int = 0
    log_entries: int = 0
    relation: str = "none"  # none | equal | archive_behind | ledger_behind | diverged | missing
    head: str | None = None
    findings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ledger": self.path, "ledger_entries": self.entries,
                "ledger_relation": self.relation, "ledger_head": self.head}


def _verified(archive: Archive, path: Path) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """The ledger's entries, its findings (none if it chains under one trusted key), head."""
    best: tuple[list[dict[str, Any]], list[str], str | None] | None = None
    for key in archive.trusted():
        view = read_org_log(path, key)
        head = view.hashes[-1] if view.hashes else None
        if not view.findings:
            return view.entries, [], head
        if best is None or len(view.entries) > len(best[0]):
            best = (view.entries, [f"ledger {path}: {f}" for f in view.findings], head)
    return best or ([], [f"ledger {path}: the archive trusts no key"], None)


def ledger_state(archive: Archive, override: Path | None = None) -> LedgerState:
    path = _ledger_path(archive, override)
    if path is None:
        return LedgerState(None)
    st = LedgerState(str(path))
    if not path.is_file():
        st.relation = "missing"
        st.findings.append(f"ledger {path} is missing: deletions since the last backup cannot "
                           "be re-applied after a restore")
        return st
    entries, findings, st.head = _verified(archive, path)
    st.entries, st.findings = len(entries), findings
    ledger = _lines(path)
    log = _lines(archive.log_path) if archive.log_path.exists() else []
    st.log_entries = len(log)
    if ledger == log:
        st.relation = "equal"
    elif _is_prefix(log, ledger):
        st.relation = "archive_behind"
        st.findings.append(
            f"the archive's log ends at entry {len(log)}, its ledger {path} at {len(ledger)}: "
            "the archive was restored from a backup; run `akkoord archive restore` before "
            "using it (it re-applies every deletion since)")
    elif _is_prefix(ledger, log):
        st.relation = "ledger_behind"
        st.findings.append(f"the ledger {path} ends at entry {len(ledger)}, before the "
                           f"archive's log ({len(log)}): cut back or replaced, or a crash "
                           "between the two appends (the next copy, deletion or `archive "
                           "restore` brings it up to the log)")
    else:
        st.relation = "diverged"
        first = next(i for i, (a, b) in enumerate(zip(ledger, log, strict=False)) if a != b)
        st.findings.append(f"the archive's log and its ledger {path} differ at entry {first}")
    return st


def check_before_append(archive: Archive) -> None:
    """Refuse to extend a log that is behind (or not) its ledger: a restored archive must be
    brought up to date with `archive restore` first, never fork the organisation's log."""
    path = _ledger_path(archive)
    if path is None:
        return
    if not path.is_file():
        raise UsageError(f"the archive's ledger {path} is missing; if it is truly lost, create "
                         "an empty file there to start it again from this archive's log")
    log = _lines(archive.log_path) if archive.log_path.exists() else []
    if not _is_prefix(_lines(path), log):
        raise UsageError(f"the archive's log does not hold everything its ledger {path} holds "
                         "(restored from a backup?): run `akkoord archive restore` first; "
                         "nothing was changed")


def sync_ledger(archive: Archive) -> None:
    """Append to the ledger every log line it lacks (after an append to the log), fsynced."""
    path = _ledger_path(archive)
    if path is None:
        return
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        ledger = _lines(path)
        log = _lines(archive.log_path)
        if not _is_prefix(ledger, log):
            raise UsageError(f"the ledger {path} is not a prefix of the archive's log; run "
                             "`akkoord archive verify`")
        missing = b"".join(log[len(ledger):])
        if missing:
            write_all(fd, missing, str(path))
            fsync_fd(fd, str(path))
    finally:
        os.close(fd)


def init_ledger(path: Path, archive_root: Path) -> str:
    """Start an empty ledger for a new archive; it must live outside the archive folder."""
    path = Path(path).resolve()
    root = Path(archive_root).resolve()
    if path == root or root in path.parents:
        raise UsageError(f"the ledger {path} must be outside the archive folder {root} (and "
                         "outside its backups): it is what survives a restore")
    if path.exists() and path.stat().st_size:
        raise UsageError(f"{path} already holds a ledger (of another archive?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o640)
    try:
        fsync_fd(fd, str(path))
    finally:
        os.close(fd)
    return str(path)


def start_ledger(archive: Archive, path: Path, key: Any) -> Path:
    """Give an archive made without one a ledger (`archive ledger FILE`): its whole log, as
    it is now, plus a signed `ledger_started` entry naming the archive, is copied into it.
    Refused if the archive has one, or if its log does not verify."""
    import secrets

    from akkoord.clock import SystemClock
    from akkoord.fsutil import atomic_write
    from akkoord.store.orglog import OrgLog

    if archive.config.get("ledger"):
        raise UsageError(f"this archive already keeps a ledger: {archive.config['ledger']}")
    if archive.log_path.exists():
        _entries, findings, _head = _verified(archive, archive.log_path)
        if findings:
            raise LedgerRefused("the archive's own log does not verify, so it cannot start a "
                                "ledger: " + "; ".join(findings[:3]))
    where = init_ledger(path, archive.root)
    archive.config["ledger"] = where
    archive.config.setdefault("archive_id", secrets.token_hex(16))
    atomic_write(archive.root / "archive.json",
                 json.dumps(archive.config, indent=1).encode() + b"\n", 0o640)
    OrgLog(archive.log_path, key, SystemClock()).append(
        "ledger_started", archive_id=archive.config["archive_id"], ledger=where)
    sync_ledger(archive)
    return Path(where)


@dataclass
class RestoreResult:
    ledger: str
    deleted: list[str] = field(default_factory=list)  # shredded (again) by this run
    tombstones: list[str] = field(default_factory=list)  # not in the index: marked deleted
    already: list[str] = field(default_factory=list)
    copies: int = 0  # copy numbers reserved from later `export` entries
    log_entries_added: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"ledger": self.ledger, "deleted": self.deleted, "tombstones": self.tombstones,
                "already_deleted": self.already, "copies_reserved": self.copies,
                "log_entries_added": self.log_entries_added}


class LedgerRefused(UsageError):
    """The ledger cannot be believed (or does not fit this archive); nothing was changed."""


def restore(archive: Archive, index: Index, override: Path | None = None) -> RestoreResult:
    from akkoord.archive.ops import destroy_objects, destroy_quarantined  # ops imports us

    path = _ledger_path(archive, override)
    if path is None:
        raise UsageError("this archive has no ledger: pass --ledger PATH (a copy of the "
                         "organisation's log kept outside the archive)")
    if not path.is_file():
        raise UsageError(f"no ledger at {path}")
    entries, findings, _head = _verified(archive, path)
    if findings:
        raise LedgerRefused("the ledger does not verify, so nothing in it is carried out: "
                            + "; ".join(findings[:3]))
    ledger = _lines(path)
    log = _lines(archive.log_path) if archive.log_path.exists() else []
    if len(ledger) < len(log) and _is_prefix(ledger, log) and path == _ledger_path(archive):
        # The ledger lacks the log's last entries (a crash between the two appends): the
        # log, if it verifies, is the longer truth; the ledger is brought up to it first.
        entries, findings, _head = _verified(archive, archive.log_path)
        if findings:
            raise LedgerRefused("the ledger is behind the archive's log, and the log does "
                                "not verify: " + "; ".join(findings[:3]))
        sync_ledger(archive)
        ledger = _lines(path)
    if not _is_prefix(log, ledger):
        raise LedgerRefused(f"the archive's log is not a prefix of the ledger {path} (a ledger "
                            "of another archive, or one cut back): nothing was changed")
    out = RestoreResult(str(path))
    for e in entries:
        if e.get("type") != "archive_delete":
            continue
        rid = e.get("recording_id")
        detail = e.get("detail") or {}
        when = (e.get("time") or {}).get("utc") or time.strftime("%Y-%m-%dT%H:%M:%SZ")
        reason = str(detail.get("reason") or "")
        row = index.get(rid) if isinstance(rid, str) else None
        if not isinstance(rid, str):
            continue
        if row is None:
            index.add_recording({
                "recording_id": rid, "device_fingerprint": "", "device_label": "",
                "created": None, "ended": None, "duration_seconds": 0.0, "status": "deleted",
                "chain_head": str(detail.get("chain_head") or ""), "objects": "{}",
                "ingested": when, "copies": int(detail.get("copies_made") or 0),
                "deleted": when, "delete_reason": reason})
            destroy_quarantined(archive, index, rid)
            out.tombstones.append(rid)
            continue
        objects = json.loads(row["objects"] or "{}")
        back = [n for n, d in objects.items() if archive.object_path(d).exists()]
        if destroy_quarantined(archive, index, rid):
            back.append("quarantine")
        if row["status"] == "deleted" and not back:
            out.already.append(rid)
            continue
        destroy_objects(archive, objects)
        if row["status"] != "deleted":
            index.mark_deleted(rid, when, reason)
        out.deleted.append(rid)
    for e in entries[len(log):]:
        if e.get("type") == "export" and isinstance(e.get("recording_id"), str):
            number = (e.get("detail") or {}).get("copy_number")
            if isinstance(number, int) and index.record_copy(
                    e["recording_id"], number, (e.get("time") or {}).get("utc") or "",
                    (e.get("detail") or {}).get("made_for")):
                out.copies += 1
    missing = b"".join(ledger[len(log):])
    if missing:
        fd = os.open(archive.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW,
                     0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            write_all(fd, missing, str(archive.log_path))
            fsync_fd(fd, str(archive.log_path))
        finally:
            os.close(fd)
        out.log_entries_added = len(ledger) - len(log)
    if not archive.config.get("ledger"):
        # a backup from before `archive ledger`: from now on it is guarded like the rest
        from akkoord.fsutil import atomic_write

        archive.config["ledger"] = str(path.resolve())
        atomic_write(archive.root / "archive.json",
                     json.dumps(archive.config, indent=1).encode() + b"\n", 0o640)
    return out
