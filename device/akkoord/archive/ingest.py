"""Ingest a collection package (a stick or a folder) into the archive, and write receipts.

For every recording: copy each file into the archive's staging area (hashing as it goes),
verify the staged copy (structure, chain, device signature), check that the device is
certified by a key the archive trusts and that the recording is wrapped to one of the
organisation's keys, then link the files into the object store and insert the index row.
A recording that fails any check moves whole into quarantine with its reason; it is reported
and never silently dropped, and it gets no receipt, so the device keeps it.

Idempotent: objects are linked with link(2) (an existing object is left alone) and the index
row is INSERT … ON CONFLICT DO NOTHING, so the same package twice, or two overlapping packages
at once, store each recording once.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.archive.index import Index
from akkoord.archive.store import Archive, container_object_name
from akkoord.collect.package import (
    CHUNK,
    COLLECT_DIR,
    DEVICE_FILE,
    RECEIPTS_DIR,
    RECORDING_FILES,
    TOKEN_FILE,
)
from akkoord.collect.statements import Signer, load_statement, make_receipt, utc
from akkoord.errors import AkkoordError, FormatError, KeyMaterialError
from akkoord.fsutil import atomic_write, fsync_dir
from akkoord.store.exports import read_exports
from akkoord.store.keys import DevicePublicKey
from akkoord.store.layout import CONTAINER_FILE, RECORDING_ID_RE
from akkoord.store.manifest import read_manifest
from akkoord.store.safeio import open_regular, read_regular
from akkoord.store.verify import verify_recording
from akkoord.trust import check_device, parse_time

__all__ = ["IngestResult", "device_folders", "ingest"]

Bytes = Callable[[int], None]


@dataclass
class IngestResult:
    stored: list[str] = field(default_factory=list)  # new in the archive
    already: list[str] = field(default_factory=list)  # held before: nothing changed
    quarantined: dict[str, str] = field(default_factory=dict)  # id -> reason
    receipts: list[str] = field(default_factory=list)  # paths written
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.quarantined and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "stored": self.stored, "already": self.already,
                "quarantined": self.quarantined, "receipts": self.receipts,
                "problems": self.problems}


def device_folders(source: Path) -> list[Path]:
    root = Path(source)
    if (root / COLLECT_DIR).is_dir():
        root = root / COLLECT_DIR
    if (root / DEVICE_FILE).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if (p / DEVICE_FILE).is_file())


def package_size(source: Path) -> int:
    total = 0
    for dev in device_folders(source):
        for rec in (dev / "recordings").glob("*"):
            if RECORDING_ID_RE.match(rec.name):
                total += sum((rec / n).stat().st_size for n in RECORDING_FILES
                             if (rec / n).is_file())
    return total


def _stage(src: Path, dst: Path, progress: Bytes | None) -> dict[str, str]:
    """Copy the recording's files (and nothing else), fsynced; SHA-256s of all but the
    container (named after verification by its chain head: see container_object_name)."""
    dst.mkdir()
    digests = {}
    for name in RECORDING_FILES:
        path = src / name
        if not path.is_file() or path.is_symlink():
            continue
        h = None if name == CONTAINER_FILE else hashlib.sha256()
        with open_regular(path, name) as fin, open(dst / name, "xb") as fout:
            while chunk := fin.read(CHUNK):
                if h is not None:
                    h.update(chunk)
                fout.write(chunk)
                if progress:
                    progress(len(chunk))
            fout.flush()
            os.fsync(fout.fileno())
        if h is not None:
            digests[name] = h.hexdigest()
    return digests


def _parse_time(doc: Any) -> float | None:
    text = doc.get("utc") if isinstance(doc, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


class _Device:
    def __init__(self, folder: Path, archive: Archive) -> None:
        where = str(folder / DEVICE_FILE)
        try:
            doc = json.loads(read_regular(folder / DEVICE_FILE, 1 << 20, "device description"))
            self.key = DevicePublicKey.from_json(doc["device"], where)
        except (OSError, ValueError, KeyError, TypeError, AkkoordError) as exc:
            raise FormatError(f"{where}: not a device description ({exc})") from None
        self.certificate = doc.get("certificate")
        self.archive = archive
        self._chains: dict[str, Any] = {}  # one chain check per certificate, not per recording

    def check(self, manifest: dict[str, Any]) -> tuple[str | None, str]:
        """(reason it is refused or None, device label)."""
        head_cert = (manifest.get("device") or {}).get("certificate")
        cert = head_cert if isinstance(head_cert, dict) else self.certificate
        if not isinstance(cert, dict):
            return "no device certificate: the device is not anchored to the organisation", ""
        when = _parse_time(manifest.get("created")) or time.time()
        key = json.dumps(cert, sort_keys=True)
        chain = self._chains.get(key)
        if chain is None:
            chain = self._chains[key] = check_device(
                cert, "ed25519", self.key.raw, self.archive.trusted(), (), None)
        if not chain.anchored:
            return f"device certificate: {chain.message}", ""
        vf, vu = parse_time(chain.valid_from), parse_time(chain.valid_until)
        if not vf <= when <= vu:  # the recording's signed creation time, as check_device does
            return (f"device certificate: the recording was made {utc(when)}, outside the "
                    f"certificate's validity ({chain.valid_from} – {chain.valid_until})"), ""
        return None, chain.label or self.key.fingerprint[:16]


def _quarantine(archive: Archive, index: Index, staged: Path, rid: str, reason: str,
                result: IngestResult) -> None:
    dst = archive.quarantine / f"{rid}-{secrets.token_hex(4)}"
    os.rename(staged, dst)
    atomic_write(dst / "reason.txt", reason.encode() + b"\n")
    fsync_dir(archive.quarantine)
    index.add_quarantine(str(dst.relative_to(archive.root)), rid, reason, utc(time.time()))
    result.quarantined[rid] = reason


@dataclass
class _Staged:
    src: Path
    staged: Path | None = None
    digests: dict[str, str] | None = None
    error: str | None = None


def _stage_one(archive: Archive, src: Path, progress: Bytes | None) -> _Staged:
    staged = archive.scratch() / src.name
    try:
        return _Staged(src, staged, _stage(src, staged, progress))
    except (OSError, FormatError) as exc:
        shutil.rmtree(staged.parent, ignore_errors=True)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return _Staged(src, error=f"{src}: cannot read it from the stick ({why}); not "
                                  "ingested, the device keeps it")


def _check_and_store(archive: Archive, index: Index, dev: _Device, st: _Staged,
                     result: IngestResult, dirty: set[Path]) -> dict[str, str] | None:
    rid = st.src.name
    if st.error is not None or st.staged is None or st.digests is None:
        result.problems.append(st.error or f"{st.src}: not staged")
        return None
    staged, digests = st.staged, st.digests
    gone = index.get(rid)
    if gone is not None and gone["status"] == "deleted":
        # Erased on purpose (AVG): never stored again, not even in quarantine, and no
        # receipt (the archive does not hold it). The device still has it: delete it there.
        shutil.rmtree(staged.parent, ignore_errors=True)
        result.problems.append(
            f"{rid}: deleted from the archive on {gone['deleted']} ({gone['delete_reason']}); "
            "not stored again and not receipted: delete it on the device too (console "
            "`delete ID --force`)")
        return None
    try:
        report = verify_recording(staged, None, dev.key)
        signed = read_manifest(staged)
    except (FormatError, KeyMaterialError) as exc:
        _quarantine(archive, index, staged, rid, f"unreadable: {exc}", result)
        return None
    reason = None
    label = ""
    if not report.ok or signed is None:
        reason = "fails verification: " + "; ".join(f.message for f in report.findings[:5])
    elif report.status not in ("complete", "interrupted"):
        reason = f"status {report.status}"
    elif signed.doc.get("recording_id") != rid:
        reason = f"the folder is named {rid} but holds recording {signed.doc.get('recording_id')}"
    else:
        reason, label = dev.check(signed.doc)
        if reason is None and not (set(signed.doc.get("recipients") or [])
                                   & archive.recipient_fingerprints()):
            reason = "not wrapped to any of this organisation's keys"
    if reason is None:
        existing = index.get(rid)
        if existing is not None and existing["chain_head"] != signed.doc["chain_head"]:
            reason = "another recording with this id (other chain head) is already archived"
    if reason is not None:
        _quarantine(archive, index, staged, rid, reason, result)
        return None
    assert signed is not None
    size = (staged / CONTAINER_FILE).stat().st_size
    digests[CONTAINER_FILE] = container_object_name(signed.doc["chain_head"], size)
    for name, digest in digests.items():
        archive.put(staged / name, digest, dirty)
    doc = signed.doc
    row = {
        "recording_id": rid,
        "device_fingerprint": dev.key.fingerprint,
        "device_label": label,
        "created": (doc.get("created") or {}).get("utc"),
        "ended": (doc.get("ended") or {}).get("utc"),
        "duration_seconds": float(doc.get("duration_seconds") or 0),
        "status": doc.get("status"),
        "chain_head": doc["chain_head"],
        "objects": json.dumps(digests, sort_keys=True),
        "ingested": utc(time.time()),
        "copies": len(read_exports(staged, dev.key)),
        "deleted": None,
        "delete_reason": None,
    }
    if index.add_recording(row):
        result.stored.append(rid)
    else:
        result.already.append(rid)
    shutil.rmtree(staged.parent, ignore_errors=True)
    return {"recording_id": rid, "chain_head": doc["chain_head"]}


def ingest(archive: Archive, index: Index, source: Path, *, key: Signer,
           progress: Bytes | None = None,
           write_receipts: bool = True) -> IngestResult:
    result = IngestResult()
    folders = device_folders(source)
    if not folders:
        raise FormatError(f"{source}: no collection package here (no {COLLECT_DIR}/…/"
                          f"{DEVICE_FILE})")
    for folder in folders:
        try:
            dev = _Device(folder, archive)
        except FormatError as exc:
            result.problems.append(str(exc))
            continue
        held = []
        dirty: set[Path] = set()
        recs = folder / "recordings"
        # .partial folders are collections cut short: the device still has those.
        srcs = [p for p in sorted(recs.iterdir())
                if RECORDING_ID_RE.match(p.name) and p.is_dir()] if recs.is_dir() else []
        # Verification streams alongside the copy: while one recording is verified (CPU),
        # the next is copied into staging (I/O) on a second thread.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="akkoord-stage") as pool:
            nxt = pool.submit(_stage_one, archive, srcs[0], progress) if srcs else None
            for i in range(len(srcs)):
                assert nxt is not None
                st = nxt.result()
                if i + 1 < len(srcs):
                    nxt = pool.submit(_stage_one, archive, srcs[i + 1], progress)
                got = _check_and_store(archive, index, dev, st, result, dirty)
                if got is not None:
                    held.append(got)
        for d in sorted(dirty):  # every object durable before the receipt says "held"
            fsync_dir(d)
        dirty.clear()
        if held and write_receipts:
            receipt = make_receipt(key, dev.key.fingerprint, held,
                                   token_serial=_token_serial(folder.parent), now=time.time())
            out = folder.parent / RECEIPTS_DIR  # the collection root, beside the token
            try:
                out.mkdir(exist_ok=True)
                path = out / f"{receipt['statement']['serial']}.json"
                atomic_write(path, json.dumps(receipt, indent=1).encode() + b"\n")
                result.receipts.append(str(path))
            except OSError as exc:
                result.problems.append(f"could not write the receipt to {out}: "
                                       f"{exc.strerror or exc}; the recordings are archived, "
                                       "ingest the stick again to write it")
    with contextlib.suppress(OSError):
        for leftover in archive.staging.iterdir():
            if not any(leftover.iterdir()):
                leftover.rmdir()
    return result


def _token_serial(collect_root: Path) -> str | None:
    """The serial of the token the stick carried (for the record; not a check)."""
    try:
        doc = load_statement(read_regular(collect_root / TOKEN_FILE, 1 << 20, "token"), "token")
    except (OSError, FormatError):
        return None
    serial = doc["statement"].get("serial")
    return serial if isinstance(serial, str) else None
