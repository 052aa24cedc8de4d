"""The organisation's own custody log: copies it makes from its archive (FORMAT.md §11.5).

Same line format and chaining as the device's log (§7), signed with the organisation
signing key under its own label, so no head of one log can pass for the other's. Every
`akkoord export` appends an `export` entry *before* writing the copy, so the head the copy
carries (custody-head.json, `"log": "organisation"`) includes the copy itself. Copy numbers
continue after every number the recording's export record and this log already hold, so
they never repeat.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from akkoord.clock import Clock
from akkoord.store.custody import CustodyLog, CustodyView, head_message
from akkoord.store.exports import read_exports
from akkoord.trust import OrgSigningKey, OrgSigningPublicKey

__all__ = [
    "ORG_LOG_CONTEXT",
    "OrgLog",
    "next_copy_number",
    "org_head_json",
    "verify_org_head",
]

ORG_LOG_CONTEXT = b"akkoord/v2/org-custody-head\n"
HEAD_FORMAT = "akkoord-custody-head/2"


class _Signer:
    """The organisation key in the shape CustodyLog signs with."""

    def __init__(self, key: OrgSigningKey) -> None:
        self._key = key
        self.fingerprint = key.fingerprint

    def sign(self, message: bytes) -> bytes:
        return self._key.signer.sign(message)


class _Verifier:
    def __init__(self, key: OrgSigningPublicKey) -> None:
        self._key = key
        self.fingerprint = key.fingerprint

    def verify(self, signature: bytes, message: bytes) -> bool:
        return self._key.key.verify(signature, message)


class OrgLog:
    def __init__(self, path: Path, key: OrgSigningKey, clock: Clock) -> None:
        self.path = Path(path)
        self.key = key
        self._log = CustodyLog(self.path, _Signer(key), clock, ORG_LOG_CONTEXT)  # type: ignore[arg-type]

    def view(self) -> CustodyView:
        return read_org_log(self.path, self.key.public)

    def append(self, kind: str, recording_id: str | None = None, **detail: Any) -> dict[str, Any]:
        head = self._log.append(kind, recording_id, **detail)
        doc = org_head_json(head.seq, head.hash, head.sig, self.key.public)
        doc["entry"] = head.entry  # the copy shows its number/maker/time from this, signed
        return doc


def read_org_log(path: Path, key: OrgSigningPublicKey) -> CustodyView:
    return CustodyView.read(path, _Verifier(key), ORG_LOG_CONTEXT)


def org_head_json(seq: int, digest: str, sig: str, key: OrgSigningPublicKey) -> dict[str, Any]:
    return {
        "format": HEAD_FORMAT,
        "log": "organisation",
        "organisation": key.organisation,
        "seq": seq,
        "hash": digest,
        "signature": sig,
        "signer": key.key.to_json("org-signing"),
    }


def verify_org_head(doc: dict[str, Any], key: OrgSigningPublicKey) -> bool:
    """Is this copy's head signed by this organisation's key (under the org-log label)?"""
    try:
        seq = doc["seq"]
        digest = bytes.fromhex(doc["hash"])
        sig = base64.b64decode(doc["signature"], validate=True)
    except (KeyError, TypeError, ValueError):
        return False
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or len(digest) != 32:
        return False
    return key.key.verify(sig, head_message(seq, digest, ORG_LOG_CONTEXT))


def next_copy_number(directory: Path, view: CustodyView) -> int:
    """One more than any copy number the device's export record or this log has used."""
    used = [0]
    for r in read_exports(directory):
        number = (r.meta or {}).get("copy_number")
        if isinstance(number, int) and not isinstance(number, bool):
            used.append(number)
    for e in view.history(Path(directory).name).exports:
        number = (e.get("detail") or {}).get("copy_number")
        if isinstance(number, int) and not isinstance(number, bool):
            used.append(number)
    return max(used) + 1
