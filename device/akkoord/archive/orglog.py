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
from akkoord.collect.statements import (
    ADMIN_CERT_TYPE,
    SigningKey,
    SigningPublicKey,
    StatementError,
    verify_statement,
)
from akkoord.store.format import canonical_json

__all__ = ["append_log", "verify_log"]

ENTRY_LABEL = b"akkoord/v2/org-log\n"
HEAD_LABEL = b"akkoord/v2/org-log-head\n"
ZERO = "0" * 64


def _hash(entry: dict[str, Any]) -> bytes:
    return hashlib.sha256(ENTRY_LABEL + canonical_json(entry)).digest()


def _head(seq: int, digest: bytes) -> bytes:
    return HEAD_LABEL + seq.to_bytes(8, "big") + digest


def append_log(index: Index, key: SigningKey, kind: str, recording_id: str | None, *,
               certificate: dict[str, Any] | None = None, **detail: Any) -> dict[str, Any]:
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
        doc = {"entry": entry, "hash": digest.hex(), "signer": key.public.fingerprint,
               "sig": base64.b64encode(key.sign(_head(seq + 1, digest))).decode()}
        if certificate is not None:  # an admin signed: the proof of its role travels along
            doc["certificate"] = certificate
        if index.log_insert(seq + 1, canonical_json(doc).decode()):
            return doc


def _admin_key(doc: dict[str, Any], trusted: list[SigningPublicKey],
               when: float) -> SigningPublicKey | None:
    cert = doc.get("certificate")
    if not isinstance(cert, dict):
        return None
    try:
        s = verify_statement(cert, trusted, want_type=ADMIN_CERT_TYPE, role="collect",
                             now=when, where="certificate")
        raw = base64.b64decode(s["admin"]["public_key"], validate=True)
    except (StatementError, KeyError, TypeError, ValueError, binascii.Error):
        return None
    if "collect" not in (s.get("roles") or []):
        return None
    return SigningPublicKey(raw)


def verify_log(index: Index, trusted: list[SigningPublicKey]) -> tuple[int, list[str]]:
    """Entries checked and findings: sequence, chain, hash, a signature by a known key."""
    keys = {k.fingerprint: k for k in trusted}
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
        key = keys.get(doc.get("signer")) or _admin_key(doc, trusted, time.time())
        if key is None or not key.verify(sig, _head(int(entry.get("seq", -1)), digest)):
            findings.append(f"{where}: not signed by a trusted organisation key")
        prev = digest.hex()
    return n, findings
