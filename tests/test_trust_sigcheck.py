"""The checkpoint signature checker gives the strict rule's verdict (FORMAT.md §10.1) on
every kind of signature the strict rule exists for, and on honest ones."""

from __future__ import annotations

import os

import pytest

from akkoord.store.keys import DeviceIdentity, DevicePublicKey
from akkoord.store.sigcheck import SMALL_ORDER, signature_checker
from akkoord.trust import _L, _P, _decode_point, ed25519_point_ok, verify_signature

MSG = b"akkoord/v2/checkpoint\n" + os.urandom(150)


def _strict(key: DevicePublicKey, sig: bytes) -> bool:
    return verify_signature("ed25519", key.raw, sig, MSG)


def test_the_small_order_list_is_the_whole_torsion_subgroup():
    assert len(SMALL_ORDER) == 8
    for r in SMALL_ORDER:
        assert _decode_point(r) is not None and not ed25519_point_ok(r)


def _variants(sig: bytes) -> list[bytes]:
    r, s = sig[:32], int.from_bytes(sig[32:], "little")
    out = [sig, r + (s + _L).to_bytes(32, "little"), os.urandom(64), sig[:63] + b"\0"]
    out += [bad + sig[32:] for bad in SMALL_ORDER]
    out += [bad + bytes(32) for bad in SMALL_ORDER]
    y = int.from_bytes(r, "little") & ((1 << 255) - 1)
    out.append(((y + _P) % (1 << 255) | (int.from_bytes(r, "little") & (1 << 255))).to_bytes(
        32, "little") + sig[32:])  # y + p: non-canonical when it fits
    out += [(1 | (1 << 255)).to_bytes(32, "little") + sig[32:],
            ((_P - 1) | (1 << 255)).to_bytes(32, "little") + sig[32:]]
    out.append(bytes([r[0] ^ 1]) + r[1:] + sig[32:])
    return out


@pytest.mark.parametrize("n", range(20))
def test_same_verdict_as_the_strict_rule(n):
    ident = DeviceIdentity.generate()
    check = signature_checker(ident.public)
    for sig in _variants(ident.sign(MSG)):
        assert check(sig, MSG) == _strict(ident.public, sig), (n, sig.hex())


@pytest.mark.parametrize("bad", sorted(SMALL_ORDER))
def test_a_small_order_key_verifies_nothing(bad):
    key = DevicePublicKey(bad)
    check = signature_checker(key)
    assert not check(bytes.fromhex("01" + "00" * 31) + bytes(32), MSG)
    assert not check(bad + bytes(32), MSG)
