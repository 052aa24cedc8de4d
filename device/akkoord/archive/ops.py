"""What the organisation does with archived recordings: later copies, audio, deletion, audit.

Every later copy and every deletion is an entry in the organisation's own signed log
(store/orglog.py, the same log `akkoord export` keeps; FORMAT.md §11.5) *before* it happens,
and a later copy carries that log's head. Copy numbers continue after every number the
device's export record and the log hold, and are reserved in the index (primary key), so two
people exporting at once never get the same number.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.archive.index import Index
from akkoord.archive.ledger import check_before_append, ledger_state, sync_ledger
from akkoord.archive.store import Archive, container_object_name, hash_file
from akkoord.clock import SystemClock
from akkoord.collect.statements import Signer, utc
from akkoord.errors import FormatError, UsageError
from akkoord.export.package import CopyResult, write_copy
from akkoord.fsutil import fsync_dir, fsync_fd, write_all
from akkoord.store.audio_out import decrypt_to_wav
from akkoord.store.keys import DevicePublicKey, OrgPrivateKey
from akkoord.store.layout import CONTAINER_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import read_manifest
from akkoord.store.orglog import OrgLog, next_copy_number, read_org_log
from akkoord.store.verify import Report, load_content_keys, verify_recording
from akkoord.trust import OrgSigningKey

__all__ = ["AuditResult", "audit", "delete", "destroy_objects", "destroy_quarantined",
           "export_copy", "open_recording", "to_wav"]


def _row(index: Index, rid: str) -> dict[str, Any]:
    row = index.get(rid)
    if row is None:
        raise UsageError(f"no recording {rid} in the archive")
    if row["status"] == "deleted":
        raise UsageError(f"recording {rid} was deleted on {row['deleted']} "
                         f"({row['delete_reason']})")
    return row


class open_recording:
    """The recording as a folder (hard links to its objects), removed afterwards."""

    def __init__(self, archive: Archive, index: Index, rid: str) -> None:
        self.archive, self.row = archive, _row(index, rid)
        self.rid = rid

    def __enter__(self) -> Path:
        self.tmp = self.archive.scratch()
        return self.archive.materialise(json.loads(self.row["objects"]), self.tmp / self.rid)

    def __exit__(self, *_exc: object) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _device_key(directory: Path) -> DevicePublicKey:
    signed = read_manifest(directory)
    if signed is None:
        raise FormatError(f"{directory}: no manifest")
    return DevicePublicKey.from_json(signed.doc["device"], "manifest")


class _LedgeredLog:
    """The organisation's log, every entry also appended to the archive's ledger (outside
    the archive, ledger.py), so a restored backup can have its deletions re-applied."""

    def __init__(self, archive: Archive, log: OrgLog) -> None:
        self.archive, self.log = archive, log

    def view(self) -> Any:
        return self.log.view()

    def append(self, kind: str, recording_id: str | None = None, **detail: Any
               ) -> dict[str, Any]:
        head = self.log.append(kind, recording_id, **detail)
        sync_ledger(self.archive)
        return head


def _org_log(archive: Archive, signer: Signer) -> _LedgeredLog:
    if signer.org_key is None:
        raise UsageError("later copies and deletions are signed into the organisation's log "
                         "with the organisation signing key (--signing-key org-signing.key), "
                         "not an admin key")
    key: OrgSigningKey = signer.org_key
    check_before_append(archive)  # a restored archive is brought up to date first
    return _LedgeredLog(archive, OrgLog(archive.log_path, key, SystemClock()))


def log_view(archive: Archive) -> tuple[list[dict[str, Any]], list[str]]:
    """The log's entries and findings, checked against the archive's trusted keys (the log
    is signed by one of them; the one it verifies under is used)."""
    best: tuple[list[dict[str, Any]], list[str]] | None = None
    for key in archive.trusted():
        view = read_org_log(archive.log_path, key)
        if not view.findings:
            return view.entries, []
        if best is None or len(view.entries) > len(best[0]):
            best = (view.entries, [f"organisation log: {f}" for f in view.findings])
    return best or ([], [])


def export_copy(archive: Archive, index: Index, rid: str, *, org_key: OrgPrivateKey,
                to: Path, signing_key: Signer, made_for: str | None = None,
                certificate: dict[str, Any] | None = None,
                progress: Callable[[int], None] | None = None) -> tuple[CopyResult, Report]:
    with open_recording(archive, index, rid) as directory:
        dev = _device_key(directory)
        report = verify_recording(directory, org_key, dev)
        if not report.ok:
            raise FormatError(f"recording {rid} fails verification in the archive: "
                              + "; ".join(f.message for f in report.findings[:5]))
        olog = _org_log(archive, signing_key)
        first = next_copy_number(directory, olog.view())
        number = index.reserve_copy(rid, first, utc(time.time()), made_for)
        head = olog.append("export", rid, copy_number=number, made_by="organisation",
                           chain_head=report_head(directory), made_for=made_for)
        to.mkdir(parents=True, exist_ok=True)
        keys = load_content_keys(directory, org_key)
        try:
            result = write_copy(directory, keys, to, copy_number=number,
                                made_by="organisation", clock=SystemClock(), device_key=dev,
                                custody_head=head, progress=progress)
        except (FormatError, OSError) as exc:
            olog.append("export_failed", rid, copy_number=number, error=str(exc)[:300])
            raise
        finally:
            keys.wipe()
    return result, report


def report_head(directory: Path) -> str | None:
    signed = read_manifest(directory)
    return signed.doc.get("chain_head") if signed else None


def to_wav(archive: Archive, index: Index, rid: str, *, org_key: OrgPrivateKey,
           out: Path) -> tuple[Report, list[str]]:
    with open_recording(archive, index, rid) as directory:
        report = verify_recording(directory, org_key, _device_key(directory))
        if not report.ok:
            return report, []
        doc = read_manifest(directory).doc  # type: ignore[union-attr]
        audio = doc.get("audio") or {}
        problems = decrypt_to_wav(
            directory, load_content_keys(directory, org_key), out,
            rate=int(audio.get("sample_rate", 48000)), channels=int(audio.get("channels", 1)),
            width=int(audio.get("sample_width", 2)),
            total_samples=int(doc.get("duration_samples", 0)))
    return report, problems


def _shred(path: Path) -> None:
    """Overwrite in place, then unlink: the wrapped keys are the point of no return."""
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    try:
        write_all(fd, os.urandom(size), str(path))
        fsync_fd(fd, str(path))
    finally:
        os.close(fd)
    os.unlink(path)
    fsync_dir(path.parent)


def delete(archive: Archive, index: Index, rid: str, *, reason: str,
           signing_key: Signer) -> dict[str, Any]:
    """Crypto-shred: logged first, then the wrapped keys destroyed, then the rest removed.
    The index keeps the row (status ``deleted``, when, why) so the deletion is accountable."""
    row = _row(index, rid)
    if not reason.strip():
        raise UsageError("a deletion needs a --reason (it is logged)")
    objects = json.loads(row["objects"])
    entry = _org_log(archive, signing_key).append(
        "archive_delete", rid, reason=reason, chain_head=row["chain_head"],
        copies_made=row["copies"])
    destroy_objects(archive, objects)
    destroy_quarantined(archive, index, rid)
    index.mark_deleted(rid, utc(time.time()), reason)
    return entry


def destroy_quarantined(archive: Archive, index: Index, rid: str) -> list[str]:
    """A copy of the recording held in quarantine (an earlier ingest that failed) is erased
    too: its keys.json would decrypt it as well as the archived one."""
    done = []
    for q in index.quarantined():
        if q["recording_id"] != rid:
            continue
        folder = archive.root / q["path"]
        if not folder.is_dir() or folder.is_symlink() or archive.quarantine not in \
                folder.resolve().parents:
            continue
        keys = folder / WRAPPED_KEYS_FILE
        if keys.is_file() and not keys.is_symlink():
            _shred(keys)
        shutil.rmtree(folder)
        done.append(q["path"])
    return done


def destroy_objects(archive: Archive, objects: dict[str, str]) -> None:
    """The wrapped keys first, overwritten then unlinked (the point of no return), then the
    rest. Whatever is already gone is skipped: a deletion carried out again is a no-op."""
    order = [WRAPPED_KEYS_FILE, *sorted(n for n in objects if n != WRAPPED_KEYS_FILE)]
    for name in order:
        if name not in objects:
            continue
        path = archive.object_path(objects[name])
        if path.exists():
            if name == WRAPPED_KEYS_FILE:
                _shred(path)
            else:
                path.unlink()


@dataclass
class AuditResult:
    objects: int = 0
    recordings: int = 0
    log_entries: int = 0
    findings: list[str] = field(default_factory=list)
    ledger: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "objects": self.objects, "recordings": self.recordings,
                "log_entries": self.log_entries, "findings": self.findings, **self.ledger}


def audit(archive: Archive, index: Index, progress: Callable[[int], None] | None = None,
          ) -> AuditResult:
    """Every object's hash, every recording's structure/chain/signature, the log chain."""
    res = AuditResult()
    rows = [r for r in (index.get(rid) for rid in index.all_ids()) if r is not None]
    containers = {json.loads(r["objects"]).get(CONTAINER_FILE) for r in rows}
    for sub in sorted(archive.objects.iterdir()) if archive.objects.is_dir() else []:
        for obj in sorted(sub.iterdir()):
            res.objects += 1
            # A container is checked below by verification, against its chain-head name.
            if obj.name not in containers and hash_file(obj) != obj.name:
                res.findings.append(f"object {obj.relative_to(archive.root)}: content does "
                                    "not match its hash")
    for row in rows:
        rid = row["recording_id"]
        if row["status"] == "deleted":
            continue
        res.recordings += 1
        objects = json.loads(row["objects"])
        missing = [n for n, d in objects.items() if not archive.object_path(d).exists()]
        if missing:
            res.findings.append(f"recording {rid}: missing objects {', '.join(missing)}")
            continue
        with open_recording(archive, index, rid) as directory:
            report = verify_recording(directory, None, _device_key(directory))
            signed = read_manifest(directory)
            size = (directory / CONTAINER_FILE).stat().st_size
        head = signed.doc.get("chain_head") if signed else None
        if not report.ok:
            res.findings += [f"recording {rid}: {f.message}" for f in report.findings]
        elif report.device_fingerprint != row["device_fingerprint"]:
            res.findings.append(f"recording {rid}: signed by another device than indexed")
        elif head != row["chain_head"] or objects.get(CONTAINER_FILE) != \
                container_object_name(head, size):
            res.findings.append(f"recording {rid}: the container is not the one indexed "
                                "(chain head or size changed)")
        if progress:
            progress(1)
    entries, log_findings = log_view(archive)
    res.log_entries = len(entries)
    res.findings += log_findings
    ledger = ledger_state(archive)
    res.ledger = ledger.to_json()
    res.findings += ledger.findings
    by_id = {r["recording_id"]: r for r in rows}
    for e in _ledger_deletions(archive, ledger.path):
        row = by_id.get(e)
        if row is not None and (row["status"] != "deleted" or any(
                archive.object_path(d).exists() for d in json.loads(row["objects"]).values())):
            res.findings.append(f"recording {e} was deleted (the ledger says so) but is in "
                                "the archive again: run `akkoord archive restore`")
    return res


def _ledger_deletions(archive: Archive, path: str | None) -> list[str]:
    if path is None or not Path(path).is_file():
        return []
    out = []
    for key in archive.trusted():
        view = read_org_log(Path(path), key)
        out = [e["recording_id"] for e in view.entries
               if e.get("type") == "archive_delete" and isinstance(e.get("recording_id"), str)]
        if not view.findings:
            break
    return out
