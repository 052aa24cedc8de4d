"""Organisation trust: signed statements, certificates, revocation (docs/FORMAT.md §10).

Pure: no files are read or written here except through the explicit `load`/`dumps` helpers
of the key classes, and no clock is read (callers pass the time to check against).

Stable API (other modules and helpers build on it; extend, don't rename):

Signatures
  ALGORITHMS                      ("ed25519", "ecdsa-p256")
  check_public_key(alg, raw)      raises TrustError for a key no verifier may accept:
                                  Ed25519 non-canonical or small-order; P-256 off-curve
  verify_signature(alg, raw, sig, message) -> bool   strict: Ed25519 also refuses a
                                  non-canonical / small-order R and S >= L; P-256 takes
                                  raw r|s (64 bytes, SHA-256), 1 <= r, s < n
  PublicKey(algorithm, raw)       .fingerprint(purpose_prefix) .verify(sig, msg) .to_json()
  Ed25519Signer, EcdsaP256Signer  .algorithm .public_raw .sign(msg) (raw r|s for P-256)

Statements (one envelope for everything the organisation or an admin signs)
  STATEMENT_CONTEXT               b"akkoord/v2/statement\\n"
  statement_message(S) -> bytes   CONTEXT | S["type"] | "\\n" | canonical_json(S)
  sign_statement(S, signer, purpose) -> envelope dict
      {"statement": S, "signer": {"algorithm", "public_key", "fingerprint"},
       "signature": base64}
  parse_envelope(doc | bytes, where) -> Envelope   structural + canonical-form checks only
  Envelope.verify() -> bool       the signature under the signer it names

Organisation signing key
  OrgSigningKey.generate(name)    .public (OrgSigningPublicKey) .sign_statement(S) .dumps()
  OrgSigningKey.load(path)        OrgSigningPublicKey.load(path) / .from_json / .dumps()
  write_org_signing_pair(key, dir) -> (org-signing.key, org-signing.pub)

Certificates and revocation
  new_serial()                    32 hex digits
  format_time(epoch) / parse_time(text)      "YYYY-MM-DDTHH:MM:SSZ" <-> epoch seconds
  device_certificate(org, device_alg, device_raw, label, valid_from, valid_until,
                     issued, serial=None) -> envelope
  admin_certificate(org, name, admin_alg, admin_raw, roles, valid_from, valid_until,
                    issued, serial=None) -> envelope
  revocation_list(org, number, revoked, issued) -> envelope
      revoked: [{"serial", "fingerprint", "revoked_at", "reason"}]
  check_device(certificate, device_alg, device_raw, trusted, revocations, at) -> Chain
  check_admin(certificate, admin_alg, admin_raw, trusted, revocations, at, role) -> Chain
  Chain: .status (one of CHAIN_STATUSES) .anchored .finding .organisation
         .org_fingerprint .serial .label .message .to_json(); organisation and
         org_fingerprint name a TRUSTED organisation only; .claimed_organisation and
         .claimed_fingerprint are what an uncheckable certificate says of itself

Verdict mapping (FORMAT.md §10.6): `anchored` -> exit 0 possible; `finding` (forged, wrong
key, expired, revoked) -> exit 1; otherwise (no anchors, no certificate, unknown
organisation) -> exit 3, "genuine but not anchored".
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from akkoord.errors import AkkoordError
from akkoord.fsutil import atomic_write
from akkoord.store.format import canonical_json
from akkoord.store.keys import key_fingerprint

__all__ = [
    "ADMIN_CERT_TYPE",
    "ALGORITHMS",
    "CHAIN_STATUSES",
    "DEVICE_CERT_TYPE",
    "ORG_SIGNING_KEY_TYPE",
    "ORG_SIGNING_PUB_TYPE",
    "REVOCATION_TYPE",
    "STATEMENT_CONTEXT",
    "Chain",
    "EcdsaP256Signer",
    "Ed25519Signer",
    "Envelope",
    "OrgSigningKey",
    "OrgSigningPublicKey",
    "PublicKey",
    "TrustError",
    "admin_certificate",
    "check_admin",
    "check_device",
    "check_public_key",
    "device_certificate",
    "format_time",
    "load_statement_file",
    "loads_strict",
    "new_serial",
    "parse_envelope",
    "parse_time",
    "revocation_list",
    "sign_statement",
    "statement_message",
    "strict_decoder",
    "verify_signature",
    "write_org_signing_pair",
]

ED25519 = "ed25519"
ECDSA_P256 = "ecdsa-p256"
ALGORITHMS = (ED25519, ECDSA_P256)
_PUB_LEN = {ED25519: 32, ECDSA_P256: 65}  # P-256: SEC1 uncompressed 04 | x | y

STATEMENT_CONTEXT = b"akkoord/v2/statement\n"
STATEMENT_VERSION = 2
DEVICE_CERT_TYPE = "akkoord-device-certificate"
ADMIN_CERT_TYPE = "akkoord-admin-certificate"
REVOCATION_TYPE = "akkoord-revocation-list"
ORG_SIGNING_KEY_TYPE = "akkoord-org-signing-key"
ORG_SIGNING_PUB_TYPE = "akkoord-org-signing-public-key"
ROLES = ("console", "collect")
MAX_STATEMENT_BYTES = 1 << 20
_SAFE_INT = (1 << 53) - 1  # what a browser's JSON.parse keeps exactly
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class TrustError(AkkoordError, ValueError):
    """A statement, certificate or trust key is malformed or does not verify."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise TrustError(f"{what}: expected base64 text")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise TrustError(f"{what}: not valid base64") from None


# --- Ed25519, strictly ---------------------------------------------------------------------
# OpenSSL accepts an all-identity public key with R = identity and S = 0 as a valid signature
# of ANY message. The curve arithmetic below exists only to refuse such keys and signatures;
# the actual verification stays with OpenSSL. Refused (FORMAT.md §10.1): encodings with
# y >= p or x = 0 with the sign bit set (non-canonical), points not on the curve, and points
# of small order (8·P = identity: the 8 torsion points), for A and for R; and S >= L.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _decode_point(raw: bytes) -> tuple[int, int] | None:
    """RFC 8032 §5.1.3 decoding; None for anything non-canonical or off the curve."""
    if len(raw) != 32:
        return None
    n = int.from_bytes(raw, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    if x2 == 0:
        return None if sign else (0, y)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _double(pt: tuple[int, int]) -> tuple[int, int]:
    x, y = pt
    t = _D * x * x * y * y % _P
    return (
        2 * x * y * pow(1 + t, _P - 2, _P) % _P,
        (y * y + x * x) * pow(1 - t, _P - 2, _P) % _P,
    )


def _order_divides_8(pt: tuple[int, int]) -> bool:
    for _ in range(3):
        pt = _double(pt)
    return pt == (0, 1)


# The 8 points of small order have y in {1, -1 (orders 1, 2), 0 (order 4), ±Y8 (order 8)};
# x = 0 with the sign bit set (the other non-canonical spelling) only occurs for y = ±1. So
# "canonical and not of small order" is a test on y alone: no curve arithmetic per signature.
_Y8 = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_SMALL_ORDER_Y = frozenset({0, 1, _P - 1, _Y8, _P - _Y8})
_pt8 = _decode_point(_Y8.to_bytes(32, "little"))
assert _pt8 is not None and _order_divides_8(_pt8) and _double(_double(_pt8)) != (0, 1)


def ed25519_point_ok(raw: bytes) -> bool:
    """A canonical encoding that is not one of the 8 small-order points. (Whether it is on
    the curve at all is checked by `check_public_key` for keys, and by OpenSSL when it
    verifies; both refuse a point off the curve.)"""
    if len(raw) != 32:
        return False
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    return y < _P and y not in _SMALL_ORDER_Y


def _ed25519_verify(pub: bytes, sig: bytes, message: bytes) -> bool:
    if len(pub) != 32 or len(sig) != 64:
        return False
    if int.from_bytes(sig[32:], "little") >= _L:
        return False
    if not ed25519_point_ok(pub) or not ed25519_point_ok(sig[:32]):
        return False
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(sig, message)
    except (InvalidSignature, ValueError):
        return False
    return True


# --- ECDSA P-256 (for a key held in a TPM or secure element) -------------------------------

_N256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _p256_key(raw: bytes) -> ec.EllipticCurvePublicKey | None:
    if len(raw) != 65 or raw[0] != 4:
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        return None


def _p256_verify(pub: bytes, sig: bytes, message: bytes) -> bool:
    key = _p256_key(pub)
    if key is None or len(sig) != 64:
        return False
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    if not (0 < r < _N256 and 0 < s < _N256):
        return False
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def check_public_key(algorithm: str, raw: bytes) -> None:
    """Raise TrustError unless `raw` is a public key every akkoord verifier accepts."""
    if algorithm not in ALGORITHMS:
        raise TrustError(f"unknown signature algorithm {algorithm!r}; expected one of {ALGORITHMS}")
    if len(raw) != _PUB_LEN[algorithm]:
        raise TrustError(
            f"an {algorithm} public key has {_PUB_LEN[algorithm]} bytes, not {len(raw)}"
        )
    if algorithm == ED25519 and not ed25519_point_ok(raw):
        raise TrustError("a weak Ed25519 public key (small order or non-canonical) is refused")
    if algorithm == ED25519 and _decode_point(raw) is None:
        raise TrustError("not a point on Ed25519")
    if algorithm == ECDSA_P256 and _p256_key(raw) is None:
        raise TrustError("not a point on P-256 (uncompressed SEC1 encoding expected)")


def verify_signature(algorithm: str, raw: bytes, signature: bytes, message: bytes) -> bool:
    if algorithm == ED25519:
        return _ed25519_verify(raw, signature, message)
    if algorithm == ECDSA_P256:
        return _p256_verify(raw, signature, message)
    return False


@dataclass(frozen=True)
class PublicKey:
    algorithm: str
    raw: bytes

    def fingerprint(self, purpose_prefix: str) -> str:
        """`key_fingerprint(f"{purpose_prefix}-{algorithm}", raw)`, e.g. org-signing-ed25519."""
        return key_fingerprint(f"{purpose_prefix}-{self.algorithm}", self.raw)

    def verify(self, signature: bytes, message: bytes) -> bool:
        return verify_signature(self.algorithm, self.raw, signature, message)

    def to_json(self, purpose_prefix: str) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "public_key": _b64(self.raw),
            "fingerprint": self.fingerprint(purpose_prefix),
        }

    @classmethod
    def from_json(cls, doc: Any, purpose_prefix: str, where: str) -> PublicKey:
        """From {"algorithm", "public_key", "fingerprint"?}; a given fingerprint must match."""
        if not isinstance(doc, dict):
            raise TrustError(f"{where}: expected an object with algorithm and public_key")
        alg = doc.get("algorithm")
        if not isinstance(alg, str):
            raise TrustError(f"{where}: algorithm missing")
        raw = _unb64(doc.get("public_key"), f"{where}: public_key")
        try:
            check_public_key(alg, raw)
        except TrustError as exc:
            raise TrustError(f"{where}: {exc}") from None
        key = cls(alg, raw)
        fp = doc.get("fingerprint")
        if fp is not None and fp != key.fingerprint(purpose_prefix):
            raise TrustError(f"{where}: fingerprint does not belong to the public key")
        return key


class Signer(Protocol):
    algorithm: str
    public_raw: bytes

    def sign(self, message: bytes) -> bytes: ...


class Ed25519Signer:
    algorithm = ED25519

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        self.public_raw = private.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def private_raw(self) -> bytes:
        return self._private.private_bytes_raw()


class EcdsaP256Signer:
    """A software P-256 key, standing in for one in a TPM / secure element (tests, vectors)."""

    algorithm = ECDSA_P256

    def __init__(self, private: ec.EllipticCurvePrivateKey) -> None:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._private = private
        self._decode = decode_dss_signature
        self.public_raw = private.public_key().public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint
        )

    @classmethod
    def generate(cls) -> EcdsaP256Signer:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    def sign(self, message: bytes) -> bytes:
        r, s = self._decode(self._private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# --- statements ----------------------------------------------------------------------------


def _normalise(value: Any, where: str, depth: int = 0) -> Any:
    """The statement as a browser's JSON.parse sees it, so both sides sign-check the same
    bytes: integral numbers are integers (1.0 == 1), anything else numeric is refused, as are
    integers a browser cannot hold exactly, non-ASCII object keys (sort orders differ), lone
    surrogates, and deep nesting."""
    if depth > 16:
        raise TrustError(f"{where}: nested too deeply")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise TrustError(f"{where}: numbers in a statement must be integers")
        value = int(value)
    if isinstance(value, int):
        if abs(value) > _SAFE_INT:
            raise TrustError(f"{where}: integer out of range")
        return value
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise TrustError(f"{where}: text is not valid Unicode") from None
        return value
    if isinstance(value, list):
        return [_normalise(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not k.isascii():
                raise TrustError(f"{where}: object keys must be ASCII")
            out[k] = _normalise(v, f"{where}.{k}", depth + 1)
        return out
    raise TrustError(f"{where}: not a JSON value")


def statement_message(statement: dict[str, Any]) -> bytes:
    """The bytes a signature covers."""
    statement = _normalise(statement, "statement")
    kind = statement.get("type")
    if not isinstance(kind, str) or "\n" in kind:
        raise TrustError("statement: type missing")
    return STATEMENT_CONTEXT + kind.encode() + b"\n" + canonical_json(statement)


def sign_statement(
    statement: dict[str, Any], signer: Signer, purpose_prefix: str = "org-signing"
) -> dict[str, Any]:
    if statement.get("version") != STATEMENT_VERSION:
        raise TrustError(f"statement: version must be {STATEMENT_VERSION}")
    message = statement_message(statement)
    pub = PublicKey(signer.algorithm, signer.public_raw)
    return {
        "statement": statement,
        "signer": pub.to_json(purpose_prefix),
        "signature": _b64(signer.sign(message)),
    }


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise TrustError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise TrustError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise TrustError(f"{text[:20]} is out of range")
    return value


def strict_decoder() -> json.JSONDecoder:
    """loads_strict's rules as a decoder, for a reader that walks a document value by value
    (the copy verifier never builds a manifest's segment list)."""
    return json.JSONDecoder(
        object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_finite_float
    )


def loads_strict(data: bytes, where: str, limit: int = MAX_STATEMENT_BYTES) -> Any:
    """JSON without duplicate keys, NaN/Infinity, or floats that overflow (1e999)."""
    if len(data) > limit:
        raise TrustError(f"{where}: implausibly large ({len(data)} bytes)")
    try:
        return json.loads(
            data,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_float=_finite_float,
        )
    except TrustError as exc:
        raise TrustError(f"{where}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError):
        raise TrustError(f"{where}: not valid JSON") from None


@dataclass(frozen=True)
class Envelope:
    statement: dict[str, Any]
    signer: PublicKey
    purpose_prefix: str
    signature: bytes

    @property
    def type(self) -> str:
        return str(self.statement["type"])

    @property
    def signer_fingerprint(self) -> str:
        return self.signer.fingerprint(self.purpose_prefix)

    def verify(self) -> bool:
        return self.signer.verify(self.signature, statement_message(self.statement))

    def to_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "signer": self.signer.to_json(self.purpose_prefix),
            "signature": _b64(self.signature),
        }


def parse_envelope(doc: Any, where: str, purpose_prefix: str = "org-signing") -> Envelope:
    """Structure only (the signature is checked by `Envelope.verify`)."""
    if isinstance(doc, bytes | bytearray):
        doc = loads_strict(bytes(doc), where)
    if not isinstance(doc, dict) or set(doc) != {"statement", "signer", "signature"}:
        raise TrustError(f"{where}: not a signed statement (statement, signer, signature)")
    st = doc["statement"]
    if not isinstance(st, dict) or not isinstance(st.get("type"), str):
        raise TrustError(f"{where}: statement has no type")
    if st.get("version") != STATEMENT_VERSION:
        raise TrustError(f"{where}: unsupported statement version {st.get('version')!r}")
    st = _normalise(st, f"{where}: statement")
    signer = PublicKey.from_json(doc["signer"], purpose_prefix, f"{where}: signer")
    sig = _unb64(doc["signature"], f"{where}: signature")
    return Envelope(st, signer, purpose_prefix, sig)


# --- times and serials ---------------------------------------------------------------------


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch)))


def parse_time(text: Any, where: str = "time") -> int:
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise TrustError(f"{where}: expected a UTC time YYYY-MM-DDTHH:MM:SSZ, got {text!r}")
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise TrustError(f"{where}: not a valid date and time: {text!r}") from None


def new_serial() -> str:
    return os.urandom(16).hex()


# --- organisation signing key --------------------------------------------------------------


@dataclass(frozen=True)
class OrgSigningPublicKey:
    key: PublicKey
    organisation: str

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint("org-signing")

    def to_json(self) -> dict[str, Any]:
        return {
            "type": ORG_SIGNING_PUB_TYPE,
            "version": 2,
            "algorithm": self.key.algorithm,
            "public_key": _b64(self.key.raw),
            "fingerprint": self.fingerprint,
            "organisation": self.organisation,
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False).encode() + b"\n"

    @classmethod
    def from_json(cls, doc: Any, where: str) -> OrgSigningPublicKey:
        if not isinstance(doc, dict) or doc.get("type") != ORG_SIGNING_PUB_TYPE:
            found = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
            raise TrustError(f"{where}: expected an {ORG_SIGNING_PUB_TYPE!r} file, found {found!r}")
        if doc.get("version") != 2:
            raise TrustError(f"{where}: unsupported key file version {doc.get('version')!r}")
        name = doc.get("organisation")
        if not isinstance(name, str) or not name.strip():
            raise TrustError(f"{where}: organisation name missing")
        return cls(PublicKey.from_json(doc, "org-signing", where), name)

    @classmethod
    def load(cls, path: Path) -> OrgSigningPublicKey:
        return cls.from_json(_load_file(path), str(path))


class OrgSigningKey:
    """The organisation's statement-signing key. Lives on the organisation's computer only."""

    def __init__(self, signer: Ed25519Signer, organisation: str) -> None:
        self.signer = signer
        self.public = OrgSigningPublicKey(PublicKey(ED25519, signer.public_raw), organisation)

    @property
    def organisation(self) -> str:
        return self.public.organisation

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    @classmethod
    def generate(cls, organisation: str) -> OrgSigningKey:
        return cls(Ed25519Signer(ed25519.Ed25519PrivateKey.generate()), organisation)

    @classmethod
    def from_seed(cls, seed: bytes, organisation: str) -> OrgSigningKey:
        """Deterministic key, for test vectors only."""
        return cls(Ed25519Signer(ed25519.Ed25519PrivateKey.from_private_bytes(seed)), organisation)

    def sign_statement(self, statement: dict[str, Any]) -> dict[str, Any]:
        return sign_statement(statement, self.signer, "org-signing")

    def dumps(self) -> bytes:
        doc = {
            "type": ORG_SIGNING_KEY_TYPE,
            "version": 2,
            "algorithm": ED25519,
            "private_key": _b64(self.signer.private_raw()),
            "organisation": self.organisation,
            "fingerprint": self.fingerprint,
        }
        return json.dumps(doc, indent=1, ensure_ascii=False).encode() + b"\n"

    @classmethod
    def load(cls, path: Path) -> OrgSigningKey:
        doc = _load_file(path)
        where = str(path)
        if not isinstance(doc, dict) or doc.get("type") != ORG_SIGNING_KEY_TYPE:
            found = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
            raise TrustError(f"{where}: expected an {ORG_SIGNING_KEY_TYPE!r} file, found {found!r}")
        if doc.get("version") != 2 or doc.get("algorithm") != ED25519:
            raise TrustError(f"{where}: unsupported key file (version 2, ed25519 expected)")
        raw = _unb64(doc.get("private_key"), f"{where}: private_key")
        if len(raw) != 32:
            raise TrustError(f"{where}: an Ed25519 private key has 32 bytes, not {len(raw)}")
        name = doc.get("organisation")
        if not isinstance(name, str) or not name.strip():
            raise TrustError(f"{where}: organisation name missing")
        return cls(Ed25519Signer(ed25519.Ed25519PrivateKey.from_private_bytes(raw)), name)


def _load_file(path: Path) -> Any:
    path = Path(path)
    try:
        # O_NONBLOCK: a FIFO planted where a file belongs must not hang us.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
            if not _is_regular(f.fileno()):
                raise TrustError(f"{path}: not a regular file")
            data = f.read(MAX_STATEMENT_BYTES + 1)
    except FileNotFoundError:
        raise TrustError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TrustError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise TrustError(f"{path}: cannot read: {exc.strerror}") from None
    return loads_strict(data, str(path))


def _is_regular(fd: int) -> bool:
    import stat

    return stat.S_ISREG(os.fstat(fd).st_mode)


def load_statement_file(path: Path) -> Envelope:
    """A signed statement file (certificate, revocation list), structure checked."""
    return parse_envelope(_load_file(path), str(path))


def write_org_signing_pair(key: OrgSigningKey, out_dir: Path) -> tuple[Path, Path]:
    """org-signing.key (0600) and org-signing.pub; never replaces an existing key."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    priv, pub = out_dir / "org-signing.key", out_dir / "org-signing.pub"
    for p in (priv, pub):
        if p.exists():
            raise TrustError(f"{p} already exists; refusing to overwrite a key")
    atomic_write(priv, key.dumps(), 0o600, exclusive=True)
    atomic_write(pub, key.public.dumps(), 0o644, exclusive=True)
    return priv, pub


# --- certificates and revocation lists -----------------------------------------------------


def _org_block(org: OrgSigningKey) -> dict[str, str]:
    return {"name": org.organisation, "signing_key_fingerprint": org.fingerprint}


def _validity(valid_from: int, valid_until: int) -> tuple[str, str]:
    if valid_until <= valid_from:
        raise TrustError("a certificate must end after it begins")
    return format_time(valid_from), format_time(valid_until)


def device_certificate(
    org: OrgSigningKey,
    device_algorithm: str,
    device_raw: bytes,
    label: str,
    valid_from: int,
    valid_until: int,
    issued: int,
    serial: str | None = None,
) -> dict[str, Any]:
    check_public_key(device_algorithm, device_raw)
    if not label.strip():
        raise TrustError("a device certificate needs a label (where the device is used)")
    vf, vu = _validity(valid_from, valid_until)
    dev = PublicKey(device_algorithm, device_raw)
    return org.sign_statement(
        {
            "type": DEVICE_CERT_TYPE,
            "version": STATEMENT_VERSION,
            "serial": serial or new_serial(),
            "organisation": _org_block(org),
            "device": {"label": label, **dev.to_json("device")},
            "valid_from": vf,
            "valid_until": vu,
            "issued": format_time(issued),
        }
    )


def admin_certificate(
    org: OrgSigningKey,
    name: str,
    admin_algorithm: str,
    admin_raw: bytes,
    roles: Sequence[str],
    valid_from: int,
    valid_until: int,
    issued: int,
    serial: str | None = None,
) -> dict[str, Any]:
    check_public_key(admin_algorithm, admin_raw)
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise TrustError(f"admin roles must be a non-empty subset of {ROLES}, got {list(roles)}")
    vf, vu = _validity(valid_from, valid_until)
    adm = PublicKey(admin_algorithm, admin_raw)
    return org.sign_statement(
        {
            "type": ADMIN_CERT_TYPE,
            "version": STATEMENT_VERSION,
            "serial": serial or new_serial(),
            "organisation": _org_block(org),
            "admin": {"name": name, **adm.to_json("admin")},
            "roles": sorted(set(roles)),
            "valid_from": vf,
            "valid_until": vu,
            "issued": format_time(issued),
        }
    )


def revocation_list(
    org: OrgSigningKey, number: int, revoked: Iterable[dict[str, Any]], issued: int
) -> dict[str, Any]:
    entries = []
    for e in revoked:
        entry = {
            "serial": e.get("serial"),
            "fingerprint": e.get("fingerprint"),
            "revoked_at": e.get("revoked_at"),
            "reason": e.get("reason", "unspecified"),
        }
        _check_revocation_entry(entry, "revocation")
        entries.append(entry)
    if not isinstance(number, int) or number < 1:
        raise TrustError("a revocation list number is a positive integer")
    return org.sign_statement(
        {
            "type": REVOCATION_TYPE,
            "version": STATEMENT_VERSION,
            "organisation": _org_block(org),
            "number": number,
            "issued": format_time(issued),
            "revoked": entries,
        }
    )


def _check_revocation_entry(e: Any, where: str) -> None:
    if not isinstance(e, dict):
        raise TrustError(f"{where}: not an object")
    serial, fp = e.get("serial"), e.get("fingerprint")
    if serial is None and fp is None:
        raise TrustError(f"{where}: names neither a serial nor a fingerprint")
    if serial is not None and (not isinstance(serial, str) or not _HEX32.match(serial)):
        raise TrustError(f"{where}: serial must be 32 hex digits")
    if fp is not None and (not isinstance(fp, str) or not _HEX64.match(fp)):
        raise TrustError(f"{where}: fingerprint must be 64 hex digits")
    parse_time(e.get("revoked_at"), f"{where}: revoked_at")
    if not isinstance(e.get("reason"), str):
        raise TrustError(f"{where}: reason must be text")


# --- checking a chain ----------------------------------------------------------------------

#: status -> (anchored, finding)
CHAIN_STATUSES: dict[str, tuple[bool, bool]] = {
    "anchored": (True, False),
    "no_trust": (False, False),  # the verifier was given no organisation key
    "no_certificate": (False, False),  # the recording carries no certificate
    "untrusted_organisation": (False, False),  # certified by a key the verifier does not trust
    "bad_certificate": (False, True),  # claims a trusted organisation but does not verify
    "wrong_key": (False, True),  # certifies another key than the one that signed
    "expired": (False, True),  # made after the certificate ended
    "not_yet_valid": (False, True),  # made before the certificate began
    "wrong_role": (False, True),  # an admin certificate without the needed role
    "revoked": (False, True),  # on a valid revocation list of the organisation
}


@dataclass
class Chain:
    status: str
    message: str
    organisation: str | None = None
    org_fingerprint: str | None = None
    serial: str | None = None
    label: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    notes: list[str] = field(default_factory=list)
    claimed_organisation: str | None = None  # what an uncheckable certificate says
    claimed_fingerprint: str | None = None

    @property
    def anchored(self) -> bool:
        return CHAIN_STATUSES[self.status][0]

    @property
    def finding(self) -> bool:
        return CHAIN_STATUSES[self.status][1]

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "anchored": self.anchored,
            "message": self.message,
            "organisation": self.organisation,
            "signing_key_fingerprint": self.org_fingerprint,
            "serial": self.serial,
            "label": self.label,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "claimed_organisation": self.claimed_organisation,
            "claimed_signing_key_fingerprint": self.claimed_fingerprint,
        }


def _trusted_match(
    env: Envelope, trusted: Sequence[OrgSigningPublicKey]
) -> OrgSigningPublicKey | None:
    for t in trusted:
        if t.key == env.signer:
            return t
    return None


def _revoked(
    serial: str, subject_fp: str, org: OrgSigningPublicKey, revocations: Sequence[Any]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The revocation entry for this certificate from a list `org` signed; notes on lists
    that were ignored (another organisation's, or not verifying)."""
    notes = []
    for i, item in enumerate(revocations):
        where = f"revocation list {i + 1}"
        try:
            env = item if isinstance(item, Envelope) else parse_envelope(item, where)
        except TrustError as exc:
            notes.append(f"{exc}; ignored")
            continue
        if env.type != REVOCATION_TYPE or env.signer != org.key:
            continue
        if not env.verify():
            notes.append(f"{where}: signature does not verify; ignored")
            continue
        entries = env.statement.get("revoked")
        if not isinstance(entries, list):
            notes.append(f"{where}: malformed; ignored")
            continue
        for e in entries:
            try:
                _check_revocation_entry(e, where)
            except TrustError:
                continue
            if e.get("serial") == serial or e.get("fingerprint") == subject_fp:
                return e, notes
    return None, notes


def _check(
    certificate: Any,
    cert_type: str,
    subject_field: str,
    subject_purpose: str,
    subject_algorithm: str,
    subject_raw: bytes,
    trusted: Sequence[OrgSigningPublicKey],
    revocations: Sequence[Any],
    at: int | None,
) -> tuple[Chain, Envelope | None]:
    what = cert_type.removeprefix("akkoord-").replace("-", " ")
    env: Envelope | None = None
    problem = None
    if certificate is not None:
        try:
            env = parse_envelope(certificate, what)
        except TrustError as exc:
            problem = str(exc)
    # What the certificate says of itself: shown (as a claim) where it cannot be checked.
    claimed: dict[str, Any] = {}
    if env is not None:
        ob = env.statement.get("organisation")
        claimed = {
            "claimed_organisation": ob.get("name") if isinstance(ob, dict)
            and isinstance(ob.get("name"), str) else None,
            "claimed_fingerprint": env.signer_fingerprint,
        }
    if not trusted:
        return Chain("no_trust", "no organisation key to check against (--trust)",
                     **claimed), None
    if certificate is None:
        return Chain("no_certificate", f"no {what}: not vouched for by any organisation"), None
    if env is None:
        return Chain("bad_certificate", f"malformed {what}: {problem}"), None
    org = _trusted_match(env, trusted)
    if org is None:
        return (
            Chain(
                "untrusted_organisation",
                f"{what} signed by organisation key {env.signer_fingerprint[:16]}, "
                "which is not among the trusted keys",
                **claimed,
            ),
            None,
        )
    base = dict(organisation=org.organisation, org_fingerprint=org.fingerprint)
    st = env.statement
    if env.type != cert_type or not env.verify():
        return Chain("bad_certificate", f"the {what} does not verify: forged or damaged",
                     **base), None
    try:
        serial = st.get("serial")
        if not isinstance(serial, str) or not _HEX32.match(serial):
            raise TrustError("serial must be 32 hex digits")
        ob = st.get("organisation")
        if not isinstance(ob, dict) or ob.get("signing_key_fingerprint") != org.fingerprint:
            raise TrustError("names another organisation key than the one that signed it")
        name = ob.get("name")
        subject = PublicKey.from_json(st.get(subject_field), subject_purpose, subject_field)
        vf = parse_time(st.get("valid_from"), "valid_from")
        vu = parse_time(st.get("valid_until"), "valid_until")
    except TrustError as exc:
        return Chain("bad_certificate", f"the {what} is malformed: {exc}", **base), None
    label = st[subject_field].get("label") or st[subject_field].get("name")
    chain = Chain(
        "anchored",
        f"certified by {name!s}",
        organisation=str(name) if isinstance(name, str) else org.organisation,
        org_fingerprint=org.fingerprint,
        serial=serial,
        label=str(label) if isinstance(label, str) else None,
        valid_from=st["valid_from"],
        valid_until=st["valid_until"],
    )
    if (subject.algorithm, subject.raw) != (subject_algorithm, subject_raw):
        chain.status = "wrong_key"
        other = subject.fingerprint(subject_purpose)[:16]
        chain.message = f"the {what} is for another key ({other})"
        return chain, env
    entry, chain.notes = _revoked(
        serial, subject.fingerprint(subject_purpose), org, revocations
    )
    if entry is not None:
        chain.status = "revoked"
        chain.message = (
            f"the organisation revoked this {what} on {entry['revoked_at']} "
            f"(reason: {entry['reason']})"
        )
        return chain, env
    if at is not None and at < vf:
        chain.status = "not_yet_valid"
        chain.message = f"made {format_time(at)}, before the {what} began ({st['valid_from']})"
    elif at is not None and at > vu:
        chain.status = "expired"
        chain.message = f"made {format_time(at)}, after the {what} ended ({st['valid_until']})"
    return chain, env


def check_device(
    certificate: Any,
    device_algorithm: str,
    device_raw: bytes,
    trusted: Sequence[OrgSigningPublicKey],
    revocations: Sequence[Any] = (),
    at: int | None = None,
) -> Chain:
    """Does the device key chain to a trusted organisation key at time `at` (the signed
    creation time of the recording)? `certificate` is the envelope (dict or bytes) or None."""
    chain, _ = _check(
        certificate, DEVICE_CERT_TYPE, "device", "device", device_algorithm, device_raw,
        trusted, revocations, at,
    )
    return chain


def check_admin(
    certificate: Any,
    admin_algorithm: str,
    admin_raw: bytes,
    trusted: Sequence[OrgSigningPublicKey],
    revocations: Sequence[Any] = (),
    at: int | None = None,
    role: str | None = None,
) -> Chain:
    """Is this admin key certified by a trusted organisation (for `role`, at `at`)?"""
    chain, env = _check(
        certificate, ADMIN_CERT_TYPE, "admin", "admin", admin_algorithm, admin_raw,
        trusted, revocations, at,
    )
    if chain.anchored and role is not None and env is not None:
        roles = env.statement.get("roles")
        if not isinstance(roles, list) or role not in roles:
            chain.status = "wrong_role"
            chain.message = f"the admin certificate does not grant the role {role!r}"
    return chain
