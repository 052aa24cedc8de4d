"""Administrator proofs for the console (docs/CONSOLE.md §5): pure functions, no files.

An administrator holds an Ed25519 key pair and an `akkoord-admin-certificate` (role
`console`) signed by the organisation signing key (trust.py). To run an admin command the host
asks for a challenge, then sends the command with::

    "auth": {"nonce": N, "certificate": <admin certificate envelope>, "signature": base64}

    signature = Sign(admin key, "akkoord/v2/console-auth\\n" | N | "\\n" | device fingerprint
                     | "\\n" | hex SHA-256(canonical_json(cmd)))

Binding the device fingerprint means a proof made for one device is worthless on another;
binding the command digest means a proof cannot be moved to a different command; the nonce
(single use, expiring: gate.py) means it cannot be replayed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from akkoord.errors import KeyMaterialError
from akkoord.fsutil import atomic_write
from akkoord.store.format import canonical_json
from akkoord.trust import (
    ADMIN_CERT_TYPE,
    Ed25519Signer,
    OrgSigningPublicKey,
    PublicKey,
    TrustError,
    check_admin,
    parse_envelope,
)

__all__ = [
    "AUTH_CONTEXT",
    "ROLE",
    "AdminKey",
    "AuthFailure",
    "check_proof",
    "command_digest",
    "make_proof",
    "proof_message",
]

AUTH_CONTEXT = b"akkoord/v2/console-auth\n"
ROLE = "console"
ADMIN_KEY_TYPE = "akkoord-admin-key"
ADMIN_PUB_TYPE = "akkoord-admin-public-key"


class AuthFailure(Exception):
    """A proof that does not authorise; `claimed` says who it claimed to be, if readable."""

    def __init__(self, why: str, claimed: dict[str, Any] | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.claimed = claimed


def command_digest(cmd: list[Any]) -> str:
    return hashlib.sha256(canonical_json(cmd)).hexdigest()


def proof_message(nonce: str, device_fingerprint: str, cmd: list[Any]) -> bytes:
    return (AUTH_CONTEXT + nonce.encode("ascii") + b"\n" + device_fingerprint.encode("ascii")
            + b"\n" + command_digest(cmd).encode("ascii"))


def _who(statement: dict[str, Any]) -> dict[str, Any]:
    admin = statement.get("admin") if isinstance(statement.get("admin"), dict) else {}
    return {
        "name": str(admin.get("name", ""))[:100],
        "fingerprint": str(admin.get("fingerprint", ""))[:64],
        "serial": str(statement.get("serial", ""))[:32],
    }


def check_proof(
    auth: Any,
    cmd: list[Any],
    device_fingerprint: str,
    trusted: Sequence[OrgSigningPublicKey],
    revocations: Sequence[Any],
    at: int | None,
) -> dict[str, Any]:
    """Who is authorised (name, fingerprint, serial, organisation), or AuthFailure.

    `at` is the device's wall time, or None when the clock is known to be unset: the
    certificate's validity period is then not checked (docs/CONSOLE.md §5.3)."""
    if not isinstance(auth, dict) or set(auth) != {"nonce", "certificate", "signature"}:
        raise AuthFailure("auth must have nonce, certificate and signature")
    try:
        env = parse_envelope(auth["certificate"], "certificate")
    except TrustError as exc:
        raise AuthFailure(str(exc)) from None
    claimed = _who(env.statement)
    if env.type != ADMIN_CERT_TYPE:
        raise AuthFailure(f"not an admin certificate ({env.type[:60]!r})", claimed)
    try:
        key = PublicKey.from_json(env.statement.get("admin"), "admin", "certificate: admin")
        signature = base64.b64decode(str(auth["signature"]).encode("ascii"), validate=True)
        message = proof_message(str(auth["nonce"]), device_fingerprint, cmd)
    except (TrustError, binascii.Error, UnicodeError, ValueError) as exc:
        raise AuthFailure(f"malformed proof: {exc}", claimed) from None
    if not key.verify(signature, message):
        raise AuthFailure("signature does not match this challenge, device and command",
                          claimed)
    chain = check_admin(env.to_json(), key.algorithm, key.raw, trusted, revocations, at, ROLE)
    if not chain.anchored:
        raise AuthFailure(f"certificate: {chain.status}: {chain.message}", claimed)
    return {**claimed, "organisation": chain.organisation}


def make_proof(key: AdminKey, certificate: dict[str, Any], nonce: str,
               device_fingerprint: str, cmd: list[Any]) -> dict[str, Any]:
    """The host's half: sign a challenge for one command."""
    sig = key.signer.sign(proof_message(nonce, device_fingerprint, cmd))
    return {"nonce": nonce, "certificate": certificate,
            "signature": base64.b64encode(sig).decode("ascii")}


@dataclass
class AdminKey:
    """An administrator's Ed25519 key (on the organisation's laptop, never on the device)."""

    signer: Ed25519Signer
    name: str

    @property
    def public(self) -> PublicKey:
        return PublicKey("ed25519", self.signer.public_raw)

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint("admin")

    @classmethod
    def generate(cls, name: str) -> AdminKey:
        return cls(Ed25519Signer(ed25519.Ed25519PrivateKey.generate()), name)

    def write_pair(self, out_dir: Path) -> tuple[Path, Path]:
        """admin.key (0600) and admin.pub; never replaces an existing key."""
        out_dir.mkdir(parents=True, exist_ok=True)
        priv, pub = out_dir / "admin.key", out_dir / "admin.pub"
        for p in (priv, pub):
            if p.exists():
                raise KeyMaterialError(f"{p} already exists; refusing to overwrite a key")
        raw = base64.b64encode(self.signer.private_raw()).decode("ascii")
        common = {"version": 2, "algorithm": "ed25519", "name": self.name,
                  "fingerprint": self.fingerprint}
        atomic_write(priv, _dumps({"type": ADMIN_KEY_TYPE, **common, "private_key": raw}),
                     0o600, exclusive=True)
        pub_doc = {"type": ADMIN_PUB_TYPE, **common,
                   "public_key": base64.b64encode(self.signer.public_raw).decode("ascii")}
        atomic_write(pub, _dumps(pub_doc), 0o644, exclusive=True)
        return priv, pub

    @classmethod
    def load(cls, path: Path) -> AdminKey:
        try:
            doc = json.loads(Path(path).read_bytes())
        except FileNotFoundError:
            raise KeyMaterialError(f"{path}: no such key file") from None
        except (OSError, ValueError) as exc:
            raise KeyMaterialError(f"{path}: not an admin key file: {exc}") from None
        if not isinstance(doc, dict) or doc.get("type") != ADMIN_KEY_TYPE:
            raise KeyMaterialError(f"{path}: expected an {ADMIN_KEY_TYPE!r} file")
        try:
            raw = base64.b64decode(str(doc.get("private_key")).encode(), validate=True)
            private = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
        except (binascii.Error, ValueError):
            raise KeyMaterialError(f"{path}: private_key is not an Ed25519 key") from None
        return cls(Ed25519Signer(private), str(doc.get("name", "")))


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, ensure_ascii=False).encode() + b"\n"


def nonce() -> str:
    return os.urandom(16).hex()
