"""Keys, separated by purpose.

- The device identity (Ed25519) signs manifests, recovery notes, exports and custody heads.
  It lives on the device (`<state>/keys/device.key`, mode 0600).
- Organisation keys (HPKE, RFC 9180) receive each recording's content key. Their private half
  never touches the device; `akkoord keys org-new` runs on the organisation's own computer.
- The per-recording content key exists only in RAM; two subkeys come from it with HKDF:
  one seals frames (ChaCha20-Poly1305), one keys the audio MACs handed out with copies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM768X25519PublicKey,
    Suite,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from akkoord.errors import KeyMaterialError, NoRecipientError
from akkoord.fsutil import atomic_write
from akkoord.store.format import HPKE_INFO_PREFIX, KDF_MAC_INFO, KDF_SEAL_INFO

__all__ = [
    "CONTENT_KEY_LEN",
    "KEMS",
    "ContentKeys",
    "DeviceIdentity",
    "OrgPrivateKey",
    "OrgPublicKey",
    "fingerprint_display",
    "generate_org_key",
    "unwrap_content_key",
    "wrap_content_key",
]

CONTENT_KEY_LEN = 32
KEM_X25519 = "x25519"
KEM_HYBRID = "mlkem768-x25519"
KEMS = (KEM_HYBRID, KEM_X25519)
_MLKEM768_PUB_LEN = 1184
_MLKEM_SEED_LEN = 64

DEVICE_KEY_TYPE = "akkoord-device-key"
DEVICE_PUB_TYPE = "akkoord-device-public-key"
ORG_KEY_TYPE = "akkoord-org-private-key"
ORG_PUB_TYPE = "akkoord-org-public-key"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise KeyMaterialError(f"{what}: expected base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise KeyMaterialError(f"{what}: not valid base64") from exc


def key_fingerprint(purpose: str, public: bytes) -> str:
    """SHA-256 over a purpose label and the raw public key, hex. Purposes never collide."""
    return hashlib.sha256(b"akkoord/v1/key\0" + purpose.encode() + b"\0" + public).hexdigest()


def fingerprint_display(fingerprint: str) -> str:
    """First 128 bits in groups of four, for people comparing a printed fingerprint."""
    head = fingerprint[:32]
    return " ".join(head[i : i + 4] for i in range(0, len(head), 4))


def _read_json_key(path: Path, expected_type: str) -> dict[str, Any]:
    try:
        # O_NONBLOCK and a regular-file check: a FIFO given as a key must not hang us.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise KeyMaterialError(f"{path}: not a regular file")
            raw = f.read(1 << 20)
    except FileNotFoundError:
        raise KeyMaterialError(f"{path}: no such key file") from None
    except OSError as exc:
        raise KeyMaterialError(f"{path}: cannot read key file: {exc.strerror}") from exc
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KeyMaterialError(f"{path}: not an akkoord key file (not JSON)") from None
    if not isinstance(doc, dict) or doc.get("type") != expected_type:
        found = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise KeyMaterialError(f"{path}: expected a {expected_type!r} file, found {found!r}")
    if doc.get("version") != 1:
        raise KeyMaterialError(f"{path}: unsupported key file version {doc.get('version')!r}")
    return doc


# --- device identity --------------------------------------------------------------------


@dataclass(frozen=True)
class DevicePublicKey:
    """A device's public key: Ed25519 today, ECDSA P-256 for a key in a TPM / secure element
    (FORMAT.md §10.1). Verification is strict (akkoord.trust.verify_signature)."""

    raw: bytes
    algorithm: str = "ed25519"

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(f"device-{self.algorithm}", self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        from akkoord.trust import verify_signature

        return verify_signature(self.algorithm, self.raw, signature, message)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": DEVICE_PUB_TYPE,
            "version": 1,
            "algorithm": self.algorithm,
            "public_key": _b64(self.raw),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], where: str) -> DevicePublicKey:
        from akkoord.trust import TrustError, check_public_key

        algorithm = doc.get("algorithm", "ed25519")
        raw = _unb64(doc.get("public_key"), f"{where}: public_key")
        if not isinstance(algorithm, str):
            raise KeyMaterialError(f"{where}: algorithm must be text")
        try:
            check_public_key(algorithm, raw)
        except TrustError as exc:
            raise KeyMaterialError(f"{where}: {exc}") from None
        return cls(raw, algorithm)

    @classmethod
    def load(cls, path: Path) -> DevicePublicKey:
        return cls.from_json(_read_json_key(path, DEVICE_PUB_TYPE), str(path))


class DeviceIdentity:
    """The device's Ed25519 signing key."""

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        self.public = DevicePublicKey(private.public_key().public_bytes_raw())

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> DeviceIdentity:
        """Deterministic identity, for test vectors only."""
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    def save(self, directory: Path) -> None:
        """Write device.key (0600) and device.pub; refuse to replace an existing identity."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key_path, pub_path = directory / "device.key", directory / "device.pub"
        if key_path.exists():
            raise KeyMaterialError(
                f"{key_path} already exists: this device has an identity; refusing to replace it"
            )
        doc = {
            "type": DEVICE_KEY_TYPE,
            "version": 1,
            "algorithm": "ed25519",
            "private_key": _b64(self._private.private_bytes_raw()),
        }
        atomic_write(key_path, json.dumps(doc, indent=1).encode() + b"\n", 0o600, exclusive=True)
        atomic_write(pub_path, json.dumps(self.public.to_json(), indent=1).encode() + b"\n")

    @classmethod
    def load(cls, directory: Path) -> DeviceIdentity:
        path = Path(directory) / "device.key"
        doc = _read_json_key(path, DEVICE_KEY_TYPE)
        raw = _unb64(doc.get("private_key"), f"{path}: private_key")
        if len(raw) != 32:
            raise KeyMaterialError(f"{path}: an Ed25519 private key has 32 bytes, not {len(raw)}")
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(raw))


# --- organisation keys (HPKE recipients) --------------------------------------------------


def _suite(kem: str) -> Suite:
    kem_id = KEM.MLKEM768_X25519 if kem == KEM_HYBRID else KEM.X25519
    return Suite(kem_id, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)


@dataclass(frozen=True)
class OrgPublicKey:
    kem: str
    raw: bytes  # hybrid: ML-KEM-768 public (1184) | X25519 public (32)

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(f"org-{self.kem}", self.raw)

    def hpke_key(self) -> x25519.X25519PublicKey | MLKEM768X25519PublicKey:
        if self.kem == KEM_X25519:
            return x25519.X25519PublicKey.from_public_bytes(self.raw)
        return MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:_MLKEM768_PUB_LEN]),
            x25519.X25519PublicKey.from_public_bytes(self.raw[_MLKEM768_PUB_LEN:]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": ORG_PUB_TYPE,
            "version": 1,
            "kem": self.kem,
            "public_key": _b64(self.raw),
            "fingerprint": self.fingerprint,
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=1).encode() + b"\n"

    @classmethod
    def load(cls, path: Path) -> OrgPublicKey:
        doc = _read_json_key(path, ORG_PUB_TYPE)
        kem = doc.get("kem")
        if kem not in KEMS:
            raise KeyMaterialError(f"{path}: unknown kem {kem!r}; expected one of {KEMS}")
        raw = _unb64(doc.get("public_key"), f"{path}: public_key")
        want = 32 if kem == KEM_X25519 else _MLKEM768_PUB_LEN + 32
        if len(raw) != want:
            raise KeyMaterialError(f"{path}: a {kem} public key has {want} bytes, not {len(raw)}")
        key = cls(kem, raw)
        try:
            key.hpke_key()
        except ValueError as exc:
            raise KeyMaterialError(f"{path}: not a valid {kem} public key: {exc}") from exc
        return key


class OrgPrivateKey:
    """The organisation's decryption key. Used on the organisation's computer only."""

    def __init__(self, kem: str, raw: bytes) -> None:
        self.kem = kem
        self._raw = raw  # hybrid: ML-KEM seed (64) | X25519 private (32)
        if kem == KEM_X25519:
            self._key: Any = x25519.X25519PrivateKey.from_private_bytes(raw)
            pub = self._key.public_key().public_bytes_raw()
        else:
            m = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM_SEED_LEN])
            x = x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM_SEED_LEN:])
            self._key = MLKEM768X25519PrivateKey(m, x)
            pub = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
        self.public = OrgPublicKey(kem, pub)

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    def hpke_key(self) -> Any:
        return self._key

    def dumps(self) -> bytes:
        doc = {
            "type": ORG_KEY_TYPE,
            "version": 1,
            "kem": self.kem,
            "private_key": _b64(self._raw),
            "fingerprint": self.fingerprint,
        }
        return json.dumps(doc, indent=1).encode() + b"\n"

    @classmethod
    def load(cls, path: Path) -> OrgPrivateKey:
        doc = _read_json_key(path, ORG_KEY_TYPE)
        kem = doc.get("kem")
        if kem not in KEMS:
            raise KeyMaterialError(f"{path}: unknown kem {kem!r}; expected one of {KEMS}")
        raw = _unb64(doc.get("private_key"), f"{path}: private_key")
        want = 32 if kem == KEM_X25519 else _MLKEM_SEED_LEN + 32
        if len(raw) != want:
            raise KeyMaterialError(f"{path}: a {kem} private key has {want} bytes, not {len(raw)}")
        try:
            return cls(kem, raw)
        except ValueError as exc:
            raise KeyMaterialError(f"{path}: not a valid {kem} private key: {exc}") from exc


def generate_org_key(kem: str = KEM_HYBRID) -> OrgPrivateKey:
    if kem == KEM_X25519:
        raw = x25519.X25519PrivateKey.generate().private_bytes_raw()
    elif kem == KEM_HYBRID:
        raw = (
            mlkem.MLKEM768PrivateKey.generate().private_bytes_raw()
            + x25519.X25519PrivateKey.generate().private_bytes_raw()
        )
    else:
        raise KeyMaterialError(f"unknown kem {kem!r}; expected one of {KEMS}")
    return OrgPrivateKey(kem, raw)


def write_org_key_pair(key: OrgPrivateKey, out_dir: Path) -> tuple[Path, Path]:
    """org.key (0600) and org.pub in `out_dir`; never replaces an existing key."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    priv, pub = out_dir / "org.key", out_dir / "org.pub"
    for p in (priv, pub):
        if p.exists():
            raise KeyMaterialError(f"{p} already exists; refusing to overwrite a key")
    atomic_write(priv, key.dumps(), 0o600, exclusive=True)
    atomic_write(pub, key.public.dumps(), 0o644, exclusive=True)
    return priv, pub


# --- content keys -------------------------------------------------------------------------


def _hpke_info(recording_id: bytes) -> bytes:
    return HPKE_INFO_PREFIX + recording_id


def wrap_content_key(
    content_key: bytes, recording_id: bytes, recipients: list[OrgPublicKey]
) -> list[dict[str, str]]:
    """One HPKE ciphertext (enc | ct) per recipient; refuses an empty recipient list."""
    if not recipients:
        raise NoRecipientError(
            "no organisation key is configured: a recording could never be read back. "
            "Add one with `akkoord keys add-recipient org.pub`."
        )
    out = []
    for r in recipients:
        ct = _suite(r.kem).encrypt(content_key, r.hpke_key(), info=_hpke_info(recording_id))
        out.append({"fingerprint": r.fingerprint, "kem": r.kem, "hpke": _b64(ct)})
    return out


def unwrap_content_key(
    wrapped: list[dict[str, Any]], recording_id: bytes, key: OrgPrivateKey, where: str
) -> bytes:
    for entry in wrapped:
        if not isinstance(entry, dict) or entry.get("fingerprint") != key.fingerprint:
            continue
        ct = _unb64(entry.get("hpke"), f"{where}: hpke")
        try:
            ck = _suite(key.kem).decrypt(ct, key.hpke_key(), info=_hpke_info(recording_id))
        except Exception as exc:  # cryptography raises several types for a bad ciphertext
            raise KeyMaterialError(
                f"{where}: the wrapped content key for {key.fingerprint[:16]} does not decrypt"
            ) from exc
        if len(ck) != CONTENT_KEY_LEN:
            raise KeyMaterialError(f"{where}: wrapped content key has the wrong length")
        return ck
    fps = ", ".join(str(e.get("fingerprint", "?"))[:16] for e in wrapped if isinstance(e, dict))
    raise KeyMaterialError(
        f"{where}: this recording is not wrapped to key {key.fingerprint[:16]} "
        f"(it is wrapped to: {fps or 'nobody'})"
    )


def _hkdf(content_key: bytes, recording_id: bytes, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=recording_id, info=info).derive(content_key)


@dataclass(frozen=True)
class ContentKeys:
    """Subkeys of one recording's content key. Never written to disk."""

    seal_key: bytes
    mac_key: bytes

    @classmethod
    def derive(cls, content_key: bytes, recording_id: bytes) -> ContentKeys:
        return cls(
            _hkdf(content_key, recording_id, KDF_SEAL_INFO),
            _hkdf(content_key, recording_id, KDF_MAC_INFO),
        )


def new_content_key() -> bytes:
    return os.urandom(CONTENT_KEY_LEN)
