"""The organisation's own signed log: every later copy and every deletion the archive makes.

Same shape as the device's custody log (FORMAT.md §7), but signed by the organisation signing
key (or a certified admin) and kept in the archive index, so that several people or sites
sharing one PostgreSQL archive append to one chain::

    {"entry": {"seq", "prev", "time", "type", "recording_id", "detail"},
     "hash": SHA-256("akkoord/v2/org-log\\n" | canonical(entry)),
     "signer": <fingerprint>, "sig": Ed25519("akkoord/v2/org-log-head\\n" | seq | hash)}

Sequence numbers are the table's primary key: two writers racing for the same number, one
wins and the other re-reads the tail and chains to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from typing import Any

from akkoord.archive.index import Index
from akkoord.collect.statements import Signer
from akkoord.store.format import canonical_json
from akkoord.trust import OrgSigningPublicKey, PublicKey, TrustError, check_admin, parse_time

__all__ = ["append_log", "verify_log"]

ENTRY_LABEL = b"akkoord/v2/org-log\n"
HEAD_LABEL = b"akkoord/v2/org-log-head\n"
ZERO = "0" * 64


def _when(text: Any) -> float:
    try:
        return float(parse_time(text))
    except TrustError:
        return 0.0


def _hash(entry: dict[str, Any]) -> bytes:
    return hashlib.sha256(ENTRY_LABEL + canonical_json(entry)).digest()


def _head(seq: int, digest: bytes) -> bytes:
    return HEAD_LABEL + seq.to_bytes(8, "big") + digest


def append_log(index: Index, key: Signer, kind: str, recording_id: str | None,
               **detail: Any) -> dict[str, Any]:
    while True:
        seq, line = index.log_tail()
        prev = json.loads(line)["hash"] if line else ZERO
        entry: dict[str, Any] = {
            "seq": seq + 1, "prev": prev,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "type": kind,
        }
        if recording_id is not None:
            entry["recording_id"] = recording_id
        if detail:
            entry["detail"] = detail
        digest = _hash(entry)
        doc = {"entry": entry, "hash": digest.hex(), "signer": key.fingerprint,
               "sig": base64.b64encode(key.sign(_head(seq + 1, digest))).decode()}
        if key.certificate is not None:  # an admin signed: the proof of its role travels along
            doc["certificate"] = key.certificate
        if index.log_insert(seq + 1, canonical_json(doc).decode()):
            return doc


def _admin_key(doc: dict[str, Any], trusted: list[OrgSigningPublicKey],
               when: float) -> PublicKey | None:
    """The admin key a log line names, if its certificate (role collect) anchors it."""
    cert = doc.get("certificate")
    try:
        admin = PublicKey.from_json(cert["statement"]["admin"], "admin", "certificate")
    except (KeyError, TypeError, ValueError):
        return None
    if admin.fingerprint("admin") != doc.get("signer"):
        return None
    chain = check_admin(cert, admin.algorithm, admin.raw, trusted, (), int(when), "collect")
    return admin if chain.anchored else None


def verify_log(index: Index, trusted: list[OrgSigningPublicKey]) -> tuple[int, list[str]]:
    """Entries checked and findings: sequence, chain, hash, a signature by a known key."""
    keys: dict[str, PublicKey] = {k.fingerprint: k.key for k in trusted}
    findings: list[str] = []
    prev = ZERO
    n = 0
    for i, (seq, line) in enumerate(index.log_lines()):
        n += 1
        where = f"organisation log entry {seq}"
        try:
            doc = json.loads(line)
            entry, digest = doc["entry"], bytes.fromhex(doc["hash"])
            sig = base64.b64decode(doc["sig"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            findings.append(f"{where}: unreadable")
            continue
        if seq != i or entry.get("seq") != i:
            findings.append(f"{where}: expected sequence number {i} (an entry is missing)")
        if entry.get("prev") != prev:
            findings.append(f"{where}: does not chain to the entry before it")
        if _hash(entry) != digest:
            findings.append(f"{where}: content does not match its hash")
        key = keys.get(doc.get("signer")) or _admin_key(
            doc, trusted, _when(entry.get("time")))
        if key is None or not key.verify(sig, _head(int(entry.get("seq", -1)), digest)):
            findings.append(f"{where}: not signed by a trusted organisation key")
        prev = digest.hex()
    return n, findings
