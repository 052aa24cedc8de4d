"""Collection tokens and archive receipts: statements the organisation signs (pure, no files).

Both use the shared statement envelope of FORMAT.md §10::

    {"statement": S, "signer": {"algorithm", "public_key", "fingerprint"},
     "certificate": <admin certificate envelope, only when an admin signed>,
     "signature": base64(sign("akkoord/v2/statement\\n" | S.type | "\\n" | canonical(S)))}

The signer is the organisation signing key itself, or an admin whose certificate (signed by
the organisation signing key) grants role ``collect``. A verifier refuses an envelope whose
statement is not exactly its canonical form (nothing a parser could read two ways).

``akkoord-collection-token`` (on a collection stick): ``serial`` (32 hex), ``organisation``
(``name``, ``signing_key_fingerprint``), ``devices`` (device fingerprints it is for),
``valid_from``, ``valid_until``, ``issued``.

``akkoord-archive-receipt`` (written back by `akkoord archive ingest`): ``serial``,
``organisation``, ``device`` (fingerprint), ``token_serial``, ``recordings`` (list of
``{"recording_id", "chain_head"}``), ``issued``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from akkoord.errors import FormatError, KeyMaterialError
from akkoord.fsutil import atomic_write
from akkoord.store.format import canonical_json
from akkoord.store.keys import key_fingerprint

__all__ = [
    "RECEIPT_TYPE",
    "TOKEN_TYPE",
    "SigningKey",
    "SigningPublicKey",
    "StatementError",
    "load_statement",
    "make_receipt",
    "make_token",
    "sign_statement",
    "utc",
    "verify_receipt",
    "verify_statement",
    "verify_token",
]

STATEMENT_CONTEXT = b"akkoord/v2/statement\n"
TOKEN_TYPE = "akkoord-collection-token"
RECEIPT_TYPE = "akkoord-archive-receipt"
ADMIN_CERT_TYPE = "akkoord-admin-certificate"
SIGNING_KEY_TYPE = "akkoord-org-signing-key"
SIGNING_PUB_TYPE = "akkoord-org-signing-public-key"
PURPOSE = "org-signing-ed25519"
ADMIN_PURPOSE = "admin-ed25519"
MAX_STATEMENT = 1 << 20
# Ed25519 group order: a signature with S >= L is malleable and refused.
_L = 2**252 + 27742317777372353535851937790883648493


class StatementError(FormatError):
    """A token or receipt that is not what it claims: says what and where."""


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _parse_utc(text: Any, what: str) -> float:
    if not isinstance(text, str):
        raise StatementError(f"{what}: expected a UTC time YYYY-MM-DDTHH:MM:SSZ")
    try:
        import calendar

        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        raise StatementError(f"{what}: {text!r} is not YYYY-MM-DDTHH:MM:SSZ") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise StatementError(f"{what}: expected base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise StatementError(f"{what}: not valid base64") from None


@dataclass(frozen=True)
class SigningPublicKey:
    raw: bytes
    organisation: str = ""

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(PURPOSE, self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        if len(signature) != 64 or int.from_bytes(signature[32:], "little") >= _L:
            return False
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"type": SIGNING_PUB_TYPE, "version": 2, "algorithm": "ed25519",
                "public_key": _b64(self.raw), "organisation": self.organisation}

    @classmethod
    def load(cls, path: Path) -> SigningPublicKey:
        try:
            doc = json.loads(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyMaterialError(f"{path}: not a readable signing public key ({exc})") from None
        return cls.from_json(doc, str(path))

    @classmethod
    def from_json(cls, doc: Any, where: str) -> SigningPublicKey:
        if not isinstance(doc, dict) or doc.get("type") != SIGNING_PUB_TYPE:
            raise KeyMaterialError(f"{where}: expected a {SIGNING_PUB_TYPE!r} file")
        if doc.get("algorithm") != "ed25519":
            raise KeyMaterialError(f"{where}: unsupported algorithm {doc.get('algorithm')!r}")
        try:
            raw = _unb64(doc.get("public_key"), f"{where}: public_key")
        except StatementError as exc:
            raise KeyMaterialError(str(exc)) from None
        if len(raw) != 32:
            raise KeyMaterialError(f"{where}: an Ed25519 public key has 32 bytes")
        return cls(raw, str(doc.get("organisation", "")))


class SigningKey:
    """The organisation signing key (or an admin key): kept off the device."""

    def __init__(self, private: ed25519.Ed25519PrivateKey, organisation: str = "") -> None:
        self._key = private
        self.public = SigningPublicKey(private.public_key().public_bytes_raw(), organisation)

    @classmethod
    def generate(cls, organisation: str = "") -> SigningKey:
        return cls(ed25519.Ed25519PrivateKey.generate(), organisation)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def save(self, directory: Path, stem: str = "org-signing") -> tuple[Path, Path]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        priv = {"type": SIGNING_KEY_TYPE, "version": 2, "algorithm": "ed25519",
                "private_key": _b64(self._key.private_bytes_raw())}
        kp, pp = directory / f"{stem}.key", directory / f"{stem}.pub"
        atomic_write(kp, json.dumps(priv, indent=1).encode() + b"\n", 0o600, exclusive=True)
        atomic_write(pp, json.dumps(self.public.to_json(), indent=1).encode() + b"\n")
        return kp, pp

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            doc = json.loads(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise KeyMaterialError(f"{path}: not a readable signing key ({exc})") from None
        if not isinstance(doc, dict) or doc.get("type") != SIGNING_KEY_TYPE:
            raise KeyMaterialError(f"{path}: expected a {SIGNING_KEY_TYPE!r} file")
        raw = _unb64(doc.get("private_key"), f"{path}: private_key")
        if len(raw) != 32:
            raise KeyMaterialError(f"{path}: an Ed25519 private key has 32 bytes")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw))


def _message(statement: dict[str, Any]) -> bytes:
    return STATEMENT_CONTEXT + str(statement["type"]).encode() + b"\n" + canonical_json(statement)


def sign_statement(statement: dict[str, Any], key: SigningKey,
                   certificate: dict[str, Any] | None = None) -> dict[str, Any]:
    env: dict[str, Any] = {
        "statement": statement,
        "signer": {"algorithm": "ed25519", "public_key": _b64(key.public.raw),
                   "fingerprint": key.public.fingerprint},
        "signature": _b64(key.sign(_message(statement))),
    }
    if certificate is not None:
        env["certificate"] = certificate
    return env


def load_statement(data: bytes, where: str) -> dict[str, Any]:
    if len(data) > MAX_STATEMENT:
        raise StatementError(f"{where}: implausibly large ({len(data)} bytes)")
    try:
        env = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatementError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(env, dict) or not isinstance(env.get("statement"), dict):
        raise StatementError(f"{where}: not a signed statement")
    return env


def _check_sig(env: dict[str, Any], where: str) -> tuple[dict[str, Any], bytes]:
    s = env.get("statement")
    signer = env.get("signer")
    if not isinstance(s, dict) or not isinstance(signer, dict):
        raise StatementError(f"{where}: not a signed statement")
    if s.get("version") != 2 or not isinstance(s.get("type"), str):
        raise StatementError(f"{where}: statement version {s.get('version')!r}, expected 2")
    if signer.get("algorithm") != "ed25519":
        raise StatementError(f"{where}: signer algorithm {signer.get('algorithm')!r} unsupported")
    raw = _unb64(signer.get("public_key"), f"{where}: signer.public_key")
    if len(raw) != 32:
        raise StatementError(f"{where}: signer public key is not 32 bytes")
    sig = _unb64(env.get("signature"), f"{where}: signature")
    if not SigningPublicKey(raw).verify(sig, _message(s)):
        raise StatementError(f"{where}: signature invalid (forged or changed)")
    return s, raw


def verify_statement(env: dict[str, Any], trusted: Iterable[SigningPublicKey], *,
                     want_type: str, role: str, now: float, where: str) -> dict[str, Any]:
    """The statement, if it is signed by a trusted organisation key or by an admin that a
    trusted key certified for `role`, and `now` is inside every validity window."""
    s, raw = _check_sig(env, where)
    if s.get("type") != want_type:
        raise StatementError(f"{where}: a {s.get('type')!r}, not a {want_type!r}")
    anchors = {k.raw for k in trusted}
    if raw in anchors:
        return s
    cert_env = env.get("certificate")
    if not isinstance(cert_env, dict):
        raise StatementError(f"{where}: signed by a key this side does not trust "
                             f"({key_fingerprint(PURPOSE, raw)[:16]})")
    cert, cert_signer = _check_sig(cert_env, f"{where}: certificate")
    if cert.get("type") != ADMIN_CERT_TYPE or cert_signer not in anchors:
        raise StatementError(f"{where}: the admin certificate is not from a trusted organisation")
    admin = cert.get("admin") or {}
    if _unb64(admin.get("public_key"), f"{where}: certificate admin key") != raw:
        raise StatementError(f"{where}: the certificate is for another admin key")
    if role not in (cert.get("roles") or []):
        raise StatementError(f"{where}: the admin is not certified for role {role!r}")
    _window(cert, now, f"{where}: admin certificate")
    return s


def _window(s: dict[str, Any], now: float, where: str) -> None:
    start = _parse_utc(s.get("valid_from"), f"{where}: valid_from")
    end = _parse_utc(s.get("valid_until"), f"{where}: valid_until")
    if now < start:
        raise StatementError(f"{where}: not valid before {s['valid_from']}")
    if now > end:
        raise StatementError(f"{where}: expired at {s['valid_until']}")


def _org(key: SigningKey, name: str) -> dict[str, Any]:
    return {"name": name, "signing_key_fingerprint": key.public.fingerprint}


def make_token(key: SigningKey, devices: list[str], *, organisation: str, now: float,
               days: float = 7, certificate: dict[str, Any] | None = None) -> dict[str, Any]:
    s = {"type": TOKEN_TYPE, "version": 2, "serial": os.urandom(16).hex(),
         "organisation": _org(key, organisation), "devices": sorted(devices),
         "valid_from": utc(now - 300), "valid_until": utc(now + days * 86400), "issued": utc(now)}
    return sign_statement(s, key, certificate)


def verify_token(env: dict[str, Any], trusted: Iterable[SigningPublicKey], *,
                 device_fingerprint: str, now: float, where: str) -> dict[str, Any]:
    s = verify_statement(env, trusted, want_type=TOKEN_TYPE, role="collect", now=now,
                         where=where)
    _window(s, now, where)
    if device_fingerprint not in (s.get("devices") or []):
        raise StatementError(f"{where}: the token is not for this device")
    return s


def make_receipt(key: SigningKey, device_fingerprint: str, recordings: list[dict[str, str]], *,
                 organisation: str, token_serial: str | None, now: float,
                 certificate: dict[str, Any] | None = None) -> dict[str, Any]:
    s = {"type": RECEIPT_TYPE, "version": 2, "serial": os.urandom(16).hex(),
         "organisation": _org(key, organisation), "device": device_fingerprint,
         "token_serial": token_serial,
         "recordings": sorted(recordings, key=lambda r: r["recording_id"]), "issued": utc(now)}
    return sign_statement(s, key, certificate)


def verify_receipt(env: dict[str, Any], trusted: Iterable[SigningPublicKey], *,
                   device_fingerprint: str, now: float, where: str) -> dict[str, Any]:
    s = verify_statement(env, trusted, want_type=RECEIPT_TYPE, role="collect", now=now,
                         where=where)
    if s.get("device") != device_fingerprint:
        raise StatementError(f"{where}: the receipt is for another device")
    recs = s.get("recordings")
    if not isinstance(recs, list) or not all(
        isinstance(r, dict) and isinstance(r.get("recording_id"), str)
        and isinstance(r.get("chain_head"), str) for r in recs
    ):
        raise StatementError(f"{where}: recordings must be a list of recording_id/chain_head")
    return s


DEVICE_CERT_TYPE = "akkoord-device-certificate"


def verify_device_certificate(env: dict[str, Any], trusted: Iterable[SigningPublicKey], *,
                              device_public_key: str, when: float,
                              where: str) -> dict[str, Any]:
    """The device certificate's statement, if a trusted organisation key issued it for
    exactly this device key (base64) and `when` lies inside its validity window."""
    s, raw = _check_sig(env, where)
    if s.get("type") != DEVICE_CERT_TYPE:
        raise StatementError(f"{where}: a {s.get('type')!r}, not a device certificate")
    if raw not in {k.raw for k in trusted}:
        raise StatementError(f"{where}: issued by an organisation key this side does not trust")
    if (s.get("device") or {}).get("public_key") != device_public_key:
        raise StatementError(f"{where}: certifies another device key")
    _window(s, when, where)
    return s
