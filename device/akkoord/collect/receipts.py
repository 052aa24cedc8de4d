"""Receipts on the device: which recordings the organisation's archive holds, and retention.

A receipt is kept next to the recording it covers (``<state>/recordings/<id>/archived.json``,
the whole signed envelope) and re-verified every time retention looks at it: an insider with
write access to the state folder cannot make retention shred an unreceipted recording by
dropping a file there, because the file must carry the organisation's signature over this
device's fingerprint, this recording id and this recording's chain head.

Every receipt applied is remembered by serial (``<state>/collect/receipts/<serial>.json``):
a replayed old receipt changes nothing and is reported as such.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from akkoord.collect.statements import (
    StatementError,
    load_statement,
    verify_receipt,
)
from akkoord.errors import FormatError
from akkoord.fsutil import atomic_write
from akkoord.store.catalog import shared_catalog
from akkoord.store.custody import CustodyLog
from akkoord.store.delete import delete_recording
from akkoord.store.layout import StateDir
from akkoord.store.manifest import read_manifest
from akkoord.store.safeio import read_regular
from akkoord.trust import MAX_STATEMENT_BYTES, OrgSigningPublicKey, TrustError

__all__ = [
    "ARCHIVED_FILE",
    "ReceiptMemo",
    "ReceiptOutcome",
    "apply_receipt",
    "archived_ids",
    "is_receipted",
    "receipted_ids",
    "retention_due",
    "run_retention",
    "trusted_signing_keys",
]

ARCHIVED_FILE = "archived.json"
_READ: Any = object()  # is_receipted: read the chain head from the manifest


def trusted_signing_keys(state: StateDir) -> list[OrgSigningPublicKey]:
    """The organisation signing keys this device trusts (`<state>/keys/trust/*.pub`)."""
    out = []
    for p in sorted((state.keys_dir / "trust").glob("*.pub")):
        try:
            out.append(OrgSigningPublicKey.load(p))
        except TrustError:
            continue  # an unreadable anchor trusts nothing; `keys show` reports it
    return out


@dataclass
class ReceiptOutcome:
    serial: str | None = None
    applied: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def _chain_head(state: StateDir, rid: str) -> str | None:
    doc = _manifest_doc(state, rid)
    return doc.get("chain_head") if doc is not None else None


def _receipt_covers(env: dict[str, Any], trusted: list[OrgSigningPublicKey], fp: str, rid: str,
                    head: str | None, now: float) -> bool:
    try:
        s = verify_receipt(env, trusted, device_fingerprint=fp, now=now, where=rid)
    except (StatementError, FormatError):
        return False
    return head is not None and {"recording_id": rid, "chain_head": head} in s["recordings"]


class ReceiptMemo:
    """Receipts verified during one pass over the recordings (one `list`, one retention run),
    by the SHA-256 of their bytes. One receipt covers a whole collection, and every recording
    it covers keeps a copy of it: verifying each distinct receipt once instead of once per
    recording changes no answer, since the same bytes under the same trusted keys, device and
    time verify the same way. A memo lives for one pass (one `now`, one set of trusted keys)."""

    def __init__(self, trusted: list[OrgSigningPublicKey], device_fingerprint: str,
                 now: float) -> None:
        self.trusted, self.fingerprint, self.now = trusted, device_fingerprint, now
        self._seen: dict[bytes, frozenset[tuple[str, str]] | None] = {}

    def covered(self, data: bytes, where: str) -> frozenset[tuple[str, str]] | None:
        """The (recording id, chain head) pairs a verified receipt lists, exactly as
        `_receipt_covers` matches them; None when `data` is no valid receipt for us."""
        digest = hashlib.sha256(data).digest()
        if digest not in self._seen:
            try:
                env = load_statement(data, where)
                s = verify_receipt(env, self.trusted, device_fingerprint=self.fingerprint,
                                   now=self.now, where=where)
            except (StatementError, FormatError):
                self._seen[digest] = None
            else:
                # `{"recording_id": rid, "chain_head": head} in s["recordings"]`: an item
                # with any other key never equals that dict.
                self._seen[digest] = frozenset(
                    (r["recording_id"], r["chain_head"]) for r in s["recordings"]
                    if r.keys() == {"recording_id", "chain_head"})
        return self._seen[digest]


def apply_receipt(state: StateDir, custody: CustodyLog, data: bytes, where: str, *,
                  device_fingerprint: str, trusted: list[OrgSigningPublicKey],
                  now: float) -> ReceiptOutcome:
    """Mark the recordings a verified receipt lists as archived. Raises StatementError for a
    receipt that is forged, for another device, or from an untrusted signer."""
    env = load_statement(data, where)
    s = verify_receipt(env, trusted, device_fingerprint=device_fingerprint, now=now, where=where)
    out = ReceiptOutcome(serial=str(s.get("serial")))
    seen = state.root / "collect" / "receipts" / f"{out.serial}.json"
    if not (isinstance(s.get("serial"), str) and len(s["serial"]) == 32):
        raise StatementError(f"{where}: receipt serial must be 32 hex digits")
    if seen.exists():
        out.replayed = True
        return out
    blob = json.dumps(env, indent=1).encode() + b"\n"
    for item in s["recordings"]:
        rid, head = item["recording_id"], item["chain_head"]
        try:
            directory = state.recording_dir(rid)
        except Exception:
            out.refused[rid] = "not a recording id"
            continue
        if not directory.is_dir():
            out.refused[rid] = "not on this device"
            continue
        if _chain_head(state, rid) != head:
            out.refused[rid] = "the receipt names another chain head than this recording's"
            continue
        marker = directory / ARCHIVED_FILE
        if marker.exists():
            out.already.append(rid)
            continue
        atomic_write(marker, blob)
        custody.append("archive_receipt", rid, receipt_serial=out.serial, chain_head=head,
                       organisation=(s.get("organisation") or {}).get("name"))
        out.applied.append(rid)
    seen.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(seen, blob)
    return out


def is_receipted(state: StateDir, rid: str, trusted: list[OrgSigningPublicKey],
                 device_fingerprint: str, now: float, *, memo: ReceiptMemo | None = None,
                 chain_head: Any = _READ) -> bool:
    """THE notion of "receipted" on the device (retention, the console's `list` and
    `delete`, the "collect recordings" advice all ask this): the recording's archived.json is
    a receipt signed by a trusted organisation (or admin) key, for this device, naming this
    recording id with this recording's chain head. Custody entries are history, not proof:
    a stray `archive_receipt` line, or an archived.json an insider wrote or copied from
    another recording, makes nothing receipted.

    `memo`: receipts already verified in this pass (same trusted keys, device and time).
    `chain_head`: this recording's chain head when the caller has just read its manifest
    (None: it has none or it is unreadable); by default the manifest is read here."""
    marker = state.recording_dir(rid) / ARCHIVED_FILE
    try:
        data = read_regular(marker, MAX_STATEMENT_BYTES, "receipt")
        if memo is None:
            env = load_statement(data, str(marker))
    except (OSError, FormatError):
        return False
    head = _chain_head(state, rid) if chain_head is _READ else chain_head
    if memo is None:
        return _receipt_covers(env, trusted, device_fingerprint, rid, head, now)
    if not isinstance(head, str):  # a receipt's chain heads are strings: nothing else matches
        return False
    covered = memo.covered(data, rid)
    return covered is not None and (rid, head) in covered


def archived_ids(state: StateDir, trusted: list[OrgSigningPublicKey], device_fingerprint: str,
                 now: float) -> set[str]:
    """Recordings whose archived.json is a valid receipt for exactly this recording."""
    memo = ReceiptMemo(trusted, device_fingerprint, now)
    return {rid for rid in state.recording_ids()
            if is_receipted(state, rid, trusted, device_fingerprint, now, memo=memo)}


def receipted_ids(state: StateDir, device_fingerprint: str, now: float) -> set[str]:
    """`archived_ids` against the organisation keys this device trusts now."""
    return archived_ids(state, trusted_signing_keys(state), device_fingerprint, now)


def _manifest_doc(state: StateDir, rid: str) -> dict[str, Any] | None:
    try:
        signed = read_manifest(state.recording_dir(rid), segments=False)
    except FormatError:
        return None
    return signed.doc if signed else None


def _ended(doc: dict[str, Any] | None) -> float | None:
    when = (doc.get("ended") or doc.get("created") or {}) if doc is not None else {}
    text = when.get("utc") if isinstance(when, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def retention_due(state: StateDir, trusted: list[OrgSigningPublicKey], device_fingerprint: str,
                  now: float, max_age_days: float) -> list[str]:
    """Receipted recordings older than the retention age. Never an unreceipted one.
    Each manifest is read once, for its chain head and its end (this decides a deletion:
    nothing cached, only receipts already verified in this very pass)."""
    memo = ReceiptMemo(trusted, device_fingerprint, now)
    due = []
    for rid in state.recording_ids():
        if not os.path.lexists(state.recording_dir(rid) / ARCHIVED_FILE):
            continue  # no receipt: is_receipted says no without reading the manifest
        doc = _manifest_doc(state, rid)
        head = doc.get("chain_head") if doc is not None else None
        if not is_receipted(state, rid, trusted, device_fingerprint, now, memo=memo,
                            chain_head=head):
            continue
        ended = _ended(doc)
        if ended is not None and now - ended > max_age_days * 86400:
            due.append(rid)
    return due


def run_retention(state: StateDir, custody: CustodyLog, trusted: list[OrgSigningPublicKey],
                  device_fingerprint: str, now: float, max_age_days: float) -> list[str]:
    due = retention_due(state, trusted, device_fingerprint, now, max_age_days)
    for rid in due:
        delete_recording(state, rid, custody,
                         f"retention: archived by the organisation, older than "
                         f"{max_age_days:g} days")
    return due


def pending_count(state: StateDir, trusted: list[OrgSigningPublicKey], device_fingerprint: str,
                  now: float) -> int:
    """Closed recordings still waiting for the organisation (for the "collect" advice).

    Advice, asked on the daemon's loop when storage runs low — when most recordings are
    kept: chain heads come from the process's catalog (store/catalog.py; read again when a
    manifest is not the file read before), each distinct receipt is verified once."""
    from akkoord.collect.package import pending_recordings

    memo = ReceiptMemo(trusted, device_fingerprint, now)
    catalog = shared_catalog()
    archived = set()
    for rid in state.recording_ids():
        directory = state.recording_dir(rid)
        if not os.path.lexists(directory / ARCHIVED_FILE):
            continue  # no receipt: not archived, whatever the manifest says
        head = (catalog.summary(directory).doc or {}).get("chain_head")
        if is_receipted(state, rid, trusted, device_fingerprint, now, memo=memo,
                        chain_head=head):
            archived.add(rid)
    return len(pending_recordings(state, archived))
