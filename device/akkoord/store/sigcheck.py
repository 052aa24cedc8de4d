"""Checking many signatures by one device key: the checkpoints of a recording.

`akkoord.trust.verify_signature` is strict (FORMAT.md §10.1) and validates the public key
and `R` in pure Python on every call (~1.3 ms each). A recording carries a checkpoint every
10 s, all under one key, so the key is validated once here, and `R` is checked against what
the strict rule refuses that OpenSSL would not: a non-canonical encoding (`y ≥ p`, or `x = 0`
with the sign bit set) and the eight points of small order (listed below; each has exactly
one canonical encoding). An `R` that is not on the curve cannot equal the encoding OpenSSL
recomputes, so OpenSSL refuses it. The outcome is the strict rule's, at OpenSSL's speed
(tests/test_trust_sigcheck.py compares them).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from akkoord.store.keys import DevicePublicKey

__all__ = ["SMALL_ORDER", "signature_checker"]

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
SMALL_ORDER = frozenset(bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
))


def _r_ok(r: bytes) -> bool:
    n = int.from_bytes(r, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= _P or (sign and y in (1, _P - 1)):
        return False
    return r not in SMALL_ORDER


def signature_checker(key: DevicePublicKey) -> Callable[[bytes, bytes], bool]:
    """`check(signature, message)` for many signatures by `key`, strict as §10.1."""
    if key.algorithm != "ed25519":
        return key.verify
    from akkoord.trust import ed25519_point_ok

    if len(key.raw) != 32 or not ed25519_point_ok(key.raw):
        return lambda _sig, _msg: False
    pub = ed25519.Ed25519PublicKey.from_public_bytes(key.raw)

    def check(sig: bytes, message: bytes) -> bool:
        if len(sig) != 64 or int.from_bytes(sig[32:], "little") >= _L or not _r_ok(sig[:32]):
            return False
        try:
            pub.verify(sig, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    return check
