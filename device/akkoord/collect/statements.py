"""Collection tokens and archive receipts: statements in the shared envelope of trust.py.

Both are signed by the organisation signing key, or by an admin whose certificate (made by
the organisation signing key) grants role ``collect``; the admin's certificate then travels
*inside* the signed statement as ``admin_certificate``, so the envelope keeps exactly the
three fields trust.py parses (statement, signer, signature) and the certificate cannot be
swapped without breaking the signature. Verification uses trust.py throughout: strict JSON,
canonical-form, strict Ed25519/P-256, and `check_admin` for the role.

``akkoord-collection-token`` (on a collection stick): ``serial`` (32 hex), ``organisation``
(``name``, ``signing_key_fingerprint``), ``devices`` (device fingerprints it is for),
``valid_from``, ``valid_until``, ``issued``, [``admin_certificate``].

``akkoord-archive-receipt`` (written back by `akkoord archive ingest`): ``serial``,
``organisation``, ``device`` (fingerprint), ``token_serial`` (or null), ``recordings`` (list of
``{"recording_id", "chain_head"}``), ``issued``, [``admin_certificate``]. A receipt has no
validity window: it states a fact (the archive holds these recordings).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from akkoord.errors import FormatError, KeyMaterialError
from akkoord.trust import (
    Ed25519Signer,
    OrgSigningKey,
    OrgSigningPublicKey,
    TrustError,
    check_admin,
    format_time,
    loads_strict,
    new_serial,
    parse_envelope,
    parse_time,
    sign_statement,
)

__all__ = [
    "RECEIPT_TYPE",
    "TOKEN_TYPE",
    "Signer",
    "StatementError",
    "load_signer",
    "load_statement",
    "make_receipt",
    "make_token",
    "utc",
    "verify_receipt",
    "verify_statement",
    "verify_token",
]

TOKEN_TYPE = "akkoord-collection-token"
RECEIPT_TYPE = "akkoord-archive-receipt"
ADMIN_KEY_TYPE = "akkoord-admin-key"  # as `akkoord keys admin-new` writes it
ROLE = "collect"


class StatementError(FormatError):
    """A token or receipt that is not what it claims: says what and where."""


def utc(ts: float) -> str:
    return format_time(ts)


@dataclass
class Signer:
    """Who signs for the organisation here: its signing key, or a certified admin."""

    signer: Ed25519Signer
    organisation: str
    org_fingerprint: str
    certificate: dict[str, Any] | None = None  # set for an admin
    org_key: OrgSigningKey | None = None  # set for the organisation signing key

    @property
    def purpose(self) -> str:
        return "org-signing" if self.certificate is None else "admin"

    @property
    def fingerprint(self) -> str:
        from akkoord.trust import PublicKey

        return PublicKey(self.signer.algorithm, self.signer.public_raw).fingerprint(self.purpose)

    def sign(self, message: bytes) -> bytes:
        return self.signer.sign(message)

    @classmethod
    def org(cls, key: OrgSigningKey) -> Signer:
        return cls(key.signer, key.organisation, key.fingerprint, None, key)

    @classmethod
    def admin(cls, private: ed25519.Ed25519PrivateKey, certificate: dict[str, Any]) -> Signer:
        org = (certificate.get("statement") or {}).get("organisation") or {}
        return cls(Ed25519Signer(private), str(org.get("name", "")),
                   str(org.get("signing_key_fingerprint", "")), certificate)


def load_signer(key_path: Path, certificate_path: Path | None = None) -> Signer:
    """The organisation signing key file, or an admin key file with its certificate."""
    try:
        doc = json.loads(Path(key_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyMaterialError(f"{key_path}: not a readable key file ({exc})") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind != ADMIN_KEY_TYPE:
        try:
            return Signer.org(OrgSigningKey.load(Path(key_path)))
        except TrustError as exc:
            raise KeyMaterialError(str(exc)) from None
    if certificate_path is None:
        raise KeyMaterialError(f"{key_path}: an admin key signs only with its certificate "
                               "(--certificate admin.cert.json)")
    try:
        raw = base64.b64decode(str(doc.get("private_key")).encode(), validate=True)
        private = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"{key_path}: private_key is not an Ed25519 key") from None
    cert = json.loads(Path(certificate_path).read_bytes())
    return Signer.admin(private, cert)


def _sign(statement: dict[str, Any], signer: Signer) -> dict[str, Any]:
    if signer.certificate is not None:
        statement["admin_certificate"] = signer.certificate
    return sign_statement(statement, signer.signer, signer.purpose)


def load_statement(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = loads_strict(data, where)
    except TrustError as exc:
        raise StatementError(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("statement"), dict):
        raise StatementError(f"{where}: not a signed statement")
    return doc


def verify_statement(doc: dict[str, Any], trusted: Sequence[OrgSigningPublicKey], *,
                     want_type: str, now: float, where: str) -> dict[str, Any]:
    """The statement, if it is signed by a trusted organisation key, or by an admin that a
    trusted key certified for role ``collect`` (valid at `now`)."""
    st = doc.get("statement") if isinstance(doc, dict) else None
    cert = st.get("admin_certificate") if isinstance(st, dict) else None
    try:
        env = parse_envelope(doc, where, "admin" if cert is not None else "org-signing")
    except TrustError as exc:
        raise StatementError(str(exc)) from None
    if not env.verify():
        raise StatementError(f"{where}: signature invalid (forged or changed)")
    if env.type != want_type:
        raise StatementError(f"{where}: a {env.type!r}, not a {want_type!r}")
    if cert is None:
        if any(t.key == env.signer for t in trusted):
            return env.statement
        raise StatementError(f"{where}: signed by a key this device or archive does not "
                             f"trust ({env.signer_fingerprint[:16]})")
    chain = check_admin(cert, env.signer.algorithm, env.signer.raw, list(trusted), (),
                        int(now), ROLE)
    if not chain.anchored:
        raise StatementError(f"{where}: the admin who signed it is not authorised: "
                             f"{chain.message}")
    return env.statement


def _window(s: dict[str, Any], now: float, where: str) -> None:
    try:
        start = parse_time(s.get("valid_from"), f"{where}: valid_from")
        end = parse_time(s.get("valid_until"), f"{where}: valid_until")
    except TrustError as exc:
        raise StatementError(str(exc)) from None
    if now < start:
        raise StatementError(f"{where}: not valid before {s['valid_from']}")
    if now > end:
        raise StatementError(f"{where}: expired at {s['valid_until']}")


def _org(signer: Signer) -> dict[str, Any]:
    return {"name": signer.organisation, "signing_key_fingerprint": signer.org_fingerprint}


def make_token(signer: Signer, devices: list[str], *, now: float,
               days: float = 7) -> dict[str, Any]:
    s = {"type": TOKEN_TYPE, "version": 2, "serial": new_serial(), "organisation": _org(signer),
         "devices": sorted(devices), "valid_from": utc(now - 300),
         "valid_until": utc(now + days * 86400), "issued": utc(now)}
    return _sign(s, signer)


def verify_token(doc: dict[str, Any], trusted: Sequence[OrgSigningPublicKey], *,
                 device_fingerprint: str, now: float, where: str) -> dict[str, Any]:
    s = verify_statement(doc, trusted, want_type=TOKEN_TYPE, now=now, where=where)
    _window(s, now, where)
    if device_fingerprint not in (s.get("devices") or []):
        raise StatementError(f"{where}: the token is not for this device")
    return s


def make_receipt(signer: Signer, device_fingerprint: str, recordings: list[dict[str, str]], *,
                 token_serial: str | None, now: float) -> dict[str, Any]:
    s = {"type": RECEIPT_TYPE, "version": 2, "serial": new_serial(),
         "organisation": _org(signer), "device": device_fingerprint,
         "token_serial": token_serial,
         "recordings": sorted(recordings, key=lambda r: r["recording_id"]), "issued": utc(now)}
    return _sign(s, signer)


def verify_receipt(doc: dict[str, Any], trusted: Sequence[OrgSigningPublicKey], *,
                   device_fingerprint: str, now: float, where: str) -> dict[str, Any]:
    s = verify_statement(doc, trusted, want_type=RECEIPT_TYPE, now=now, where=where)
    if s.get("device") != device_fingerprint:
        raise StatementError(f"{where}: the receipt is for another device")
    recs = s.get("recordings")
    if not isinstance(recs, list) or not all(
        isinstance(r, dict) and isinstance(r.get("recording_id"), str)
        and isinstance(r.get("chain_head"), str) for r in recs
    ):
        raise StatementError(f"{where}: recordings must be a list of recording_id/chain_head")
    return s
