"""akkoord.trust: strict signatures, statements, certificates, revocation (FORMAT.md §10)."""

from __future__ import annotations

import base64
import json
import os
import random

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from akkoord.store.keys import DeviceIdentity
from akkoord.trust import (
    ADMIN_CERT_TYPE,
    DEVICE_CERT_TYPE,
    EcdsaP256Signer,
    Ed25519Signer,
    OrgSigningKey,
    OrgSigningPublicKey,
    TrustError,
    admin_certificate,
    check_admin,
    check_device,
    check_public_key,
    device_certificate,
    ed25519_point_ok,
    format_time,
    loads_strict,
    parse_envelope,
    parse_time,
    revocation_list,
    sign_statement,
    statement_message,
    verify_signature,
    write_org_signing_pair,
)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
T0 = parse_time("2026-06-01T00:00:00Z")
YEAR = 365 * 86400


# --- an independent model of the curve, to find the 8 torsion points -----------------------


def _add(p1, p2):
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def _mul(k, pt):
    out = (0, 1)
    while k:
        if k & 1:
            out = _add(out, pt)
        pt = _add(pt, pt)
        k >>= 1
    return out


def _encode(pt, sign_flip=False):
    x, y = pt
    return (y | (((x & 1) ^ sign_flip) << 255)).to_bytes(32, "little")


def _point_from_public(raw):
    n = int.from_bytes(raw, "little")
    y = n & ((1 << 255) - 1)
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if (x * x - x2) % P:
        return None  # not on the curve
    if x & 1 != n >> 255:
        x = P - x
    return x, y


def torsion_points():
    """All 8 points of small order, from the curve itself (no list copied from anywhere):
    L·Q is the torsion part of a random point Q; the torsion group is cyclic of order 8."""
    rng = random.Random(8)
    while True:
        q = _point_from_public(
            ed25519.Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
            .public_key().public_bytes_raw()
        )
        # Honest public keys have no torsion part; add a random point to get a general one.
        r = _point_from_public(rng.randbytes(31) + b"\x00")
        if r is None:
            continue
        t = _mul(L, _add(q, r))
        if _mul(4, t) != (0, 1):
            return sorted({_mul(k, t) for k in range(8)})


def test_there_are_exactly_eight_torsion_points_and_each_is_refused():
    pts = torsion_points()
    assert len(pts) == 8 and (0, 1) in pts
    for pt in pts:
        assert _mul(8, pt) == (0, 1)
        raw = _encode(pt)
        assert not ed25519_point_ok(raw)
        with pytest.raises(TrustError, match="small order or non-canonical"):
            check_public_key("ed25519", raw)
        # Non-canonical spellings of the same point: y + p where it fits, a flipped sign on x=0.
        y = pt[1]
        if y + P < 2**255:
            assert not ed25519_point_ok((y + P | (pt[0] & 1) << 255).to_bytes(32, "little"))
        if pt[0] == 0:
            assert not ed25519_point_ok(_encode(pt, sign_flip=True))


def test_non_canonical_y_is_refused_even_for_an_otherwise_good_point():
    for y in range(P, 2**255):
        assert not ed25519_point_ok(y.to_bytes(32, "little"))
        assert not ed25519_point_ok((y | 1 << 255).to_bytes(32, "little"))


def test_honest_keys_pass():
    for _ in range(20):
        raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert ed25519_point_ok(raw)
        check_public_key("ed25519", raw)


def test_identity_key_with_identity_r_and_zero_s_verifies_nothing():
    """The attack of issue 8: A = R = identity, S = 0 "verifies" any message in OpenSSL."""
    identity = (1).to_bytes(32, "little")
    sig = identity + bytes(32)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:  # show the hole we close, where the library has it
        Ed25519PublicKey.from_public_bytes(identity).verify(sig, b"an edited manifest")
        library_accepts = True
    except Exception:
        library_accepts = False
    assert not verify_signature("ed25519", identity, sig, b"an edited manifest")
    print("OpenSSL accepts the identity forgery:", library_accepts)


def test_s_at_or_above_l_is_refused():
    key = ed25519.Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    sig = key.sign(b"m")
    assert verify_signature("ed25519", pub, sig, b"m")
    s = int.from_bytes(sig[32:], "little")
    malleated = sig[:32] + (s + L).to_bytes(32, "little")
    assert not verify_signature("ed25519", pub, malleated, b"m")
    assert not verify_signature("ed25519", pub, sig[:32] + L.to_bytes(32, "little"), b"m")


def test_small_order_r_is_refused():
    key = ed25519.Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    for pt in torsion_points():
        assert not verify_signature("ed25519", pub, _encode(pt) + bytes(32), b"m")


def test_ecdsa_p256_verifies_raw_r_s_and_refuses_out_of_range():
    s = EcdsaP256Signer.generate()
    check_public_key("ecdsa-p256", s.public_raw)
    sig = s.sign(b"hello")
    assert len(sig) == 64 and verify_signature("ecdsa-p256", s.public_raw, sig, b"hello")
    assert not verify_signature("ecdsa-p256", s.public_raw, sig, b"hellO")
    assert not verify_signature("ecdsa-p256", s.public_raw, bytes(64), b"hello")
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    r = int.from_bytes(sig[:32], "big")
    assert not verify_signature("ecdsa-p256", s.public_raw, sig[:32] + n.to_bytes(32, "big"),
                                b"hello")
    assert r < n
    with pytest.raises(TrustError):
        check_public_key("ecdsa-p256", b"\x04" + bytes(64))  # not on the curve
    with pytest.raises(TrustError, match="unknown signature algorithm"):
        check_public_key("rsa", b"x")


# --- statements ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def org():
    return OrgSigningKey.from_seed(bytes(range(32)), "Jeugdzorg Voorbeeld")


@pytest.fixture(scope="module")
def device():
    return DeviceIdentity.from_seed(bytes(range(1, 33)))


def _cert(org, device, **kw):
    args = dict(label="Locatie Noord, kamer 2", valid_from=T0, valid_until=T0 + 2 * YEAR,
                issued=T0, serial="00" * 16)
    args.update(kw)
    return device_certificate(org, "ed25519", device.public.raw, **args)


def test_statement_signature_covers_type_and_canonical_bytes(org):
    env = org.sign_statement({"type": "x-test", "version": 2, "b": 1, "a": "é"})
    msg = statement_message(env["statement"])
    assert msg == (
        b'akkoord/v2/statement\nx-test\n{"a":"\xc3\xa9","b":1,"type":"x-test","version":2}'
    )
    parsed = parse_envelope(json.dumps(env).encode(), "t")
    assert parsed.verify()
    assert parsed.signer_fingerprint == org.fingerprint
    env["statement"]["b"] = 2
    assert not parse_envelope(env, "t").verify()


@pytest.mark.parametrize(
    "text,why",
    [
        ('{"a":1,"a":2}', "duplicate"),
        ('{"a":1e999}', "out of range"),
        ('{"a":NaN}', "not JSON"),
        ('{"a":Infinity}', "not JSON"),
        ("[" * 100000 + "]" * 100000, "JSON"),
        ('{"a":"\\ud800"}', None),
    ],
)
def test_strict_json_refuses_ambiguous_input(text, why):
    if why is None:  # a lone surrogate parses, but no statement may contain it
        doc = loads_strict(text.encode(), "t")
        with pytest.raises(TrustError, match="Unicode"):
            statement_message({"type": "x", "version": 2, **doc})
        return
    with pytest.raises(TrustError, match=why):
        loads_strict(text.encode(), "t")


@pytest.mark.parametrize("value", [1.5, 2**60, -(2**60), 1e300])
def test_statements_hold_only_safe_integers(org, value):
    with pytest.raises(TrustError):
        org.sign_statement({"type": "x", "version": 2, "v": value})


def test_envelope_with_extra_fields_or_wrong_version_is_refused(org):
    env = org.sign_statement({"type": "x", "version": 2})
    with pytest.raises(TrustError, match="not a signed statement"):
        parse_envelope({**env, "extra": 1}, "t")
    bad = json.loads(json.dumps(env))
    bad["statement"]["version"] = 1
    with pytest.raises(TrustError, match="version"):
        parse_envelope(bad, "t")


def test_statement_from_a_weak_signer_is_refused_before_any_signature_check():
    weak = {"statement": {"type": "x", "version": 2},
            "signer": {"algorithm": "ed25519",
                       "public_key": base64.b64encode((1).to_bytes(32, "little")).decode()},
            "signature": base64.b64encode((1).to_bytes(32, "little") + bytes(32)).decode()}
    with pytest.raises(TrustError, match="weak Ed25519"):
        parse_envelope(weak, "t")


# --- keys on disk --------------------------------------------------------------------------


def test_org_signing_key_files_round_trip_and_are_never_replaced(tmp_path):
    key = OrgSigningKey.generate("Stichting Voorbeeld")
    priv, pub = write_org_signing_pair(key, tmp_path)
    assert (priv.name, pub.name) == ("org-signing.key", "org-signing.pub")
    assert priv.stat().st_mode & 0o777 == 0o600
    doc = json.loads(pub.read_text())
    assert doc["type"] == "akkoord-org-signing-public-key" and doc["version"] == 2
    assert doc["organisation"] == "Stichting Voorbeeld"
    loaded = OrgSigningPublicKey.load(pub)
    assert loaded.fingerprint == key.fingerprint == OrgSigningKey.load(priv).fingerprint
    with pytest.raises(TrustError, match="already exists"):
        write_org_signing_pair(key, tmp_path)
    with pytest.raises(TrustError, match="expected an"):
        OrgSigningPublicKey.load(priv)


def test_a_fifo_where_a_key_belongs_fails_fast(tmp_path):
    fifo = tmp_path / "org-signing.pub"
    os.mkfifo(fifo)
    with pytest.raises(TrustError, match="not a regular file"):
        OrgSigningPublicKey.load(fifo)


# --- device certificates -------------------------------------------------------------------


def test_device_certificate_anchors_the_device(org, device):
    cert = _cert(org, device)
    assert cert["statement"]["type"] == DEVICE_CERT_TYPE
    assert cert["statement"]["device"]["fingerprint"] == device.fingerprint
    chain = check_device(cert, "ed25519", device.public.raw, [org.public], at=T0 + 10)
    assert chain.status == "anchored" and chain.anchored and not chain.finding
    assert chain.organisation == "Jeugdzorg Voorbeeld"
    assert chain.org_fingerprint == org.fingerprint
    assert chain.label == "Locatie Noord, kamer 2"


def test_no_trust_no_certificate_and_unknown_organisation_are_unanchored_not_findings(
    org, device
):
    cert = _cert(org, device)
    other = OrgSigningKey.generate("Iemand Anders")
    for chain in (
        check_device(cert, "ed25519", device.public.raw, [], at=T0),
        check_device(None, "ed25519", device.public.raw, [org.public], at=T0),
        check_device(cert, "ed25519", device.public.raw, [other.public], at=T0),
    ):
        assert not chain.anchored and not chain.finding, chain
    # A certificate made by an untrusted organisation under the real organisation's NAME.
    fake_org = OrgSigningKey.generate("Jeugdzorg Voorbeeld")
    fake = _cert(fake_org, device)
    chain = check_device(fake, "ed25519", device.public.raw, [org.public], at=T0)
    assert chain.status == "untrusted_organisation"
    assert chain.org_fingerprint is None and chain.organisation is None
    assert chain.claimed_fingerprint == fake_org.fingerprint
    assert chain.claimed_organisation == "Jeugdzorg Voorbeeld"


def test_certificate_for_another_key_is_a_finding(org, device):
    other = DeviceIdentity.generate()
    chain = check_device(_cert(org, other), "ed25519", device.public.raw, [org.public], at=T0)
    assert chain.status == "wrong_key" and chain.finding


def test_forged_certificate_under_a_trusted_signer_is_a_finding(org, device):
    cert = json.loads(json.dumps(_cert(org, device)))
    cert["statement"]["valid_until"] = "2099-01-01T00:00:00Z"
    chain = check_device(cert, "ed25519", device.public.raw, [org.public], at=T0)
    assert chain.status == "bad_certificate" and chain.finding


def test_validity_window(org, device):
    cert = _cert(org, device)
    assert check_device(cert, "ed25519", device.public.raw, [org.public],
                        at=T0 + 3 * YEAR).status == "expired"
    assert check_device(cert, "ed25519", device.public.raw, [org.public],
                        at=T0 - 1).status == "not_yet_valid"


def test_revocation_by_serial_or_fingerprint(org, device):
    cert = _cert(org, device)
    by_serial = revocation_list(org, 1, [{"serial": "00" * 16, "revoked_at": format_time(T0),
                                          "reason": "key_compromise"}], T0)
    by_fp = revocation_list(org, 2, [{"fingerprint": device.fingerprint,
                                      "revoked_at": format_time(T0)}], T0)
    for rl in (by_serial, by_fp, json.dumps(by_fp).encode()):
        chain = check_device(cert, "ed25519", device.public.raw, [org.public], [rl], at=T0)
        assert chain.status == "revoked" and chain.finding
    # A list signed by someone else, or tampered with, revokes nothing.
    other = OrgSigningKey.generate("x")
    foreign = revocation_list(other, 1, [{"serial": "00" * 16,
                                          "revoked_at": format_time(T0)}], T0)
    tampered = json.loads(json.dumps(by_serial))
    tampered["statement"]["number"] = 9
    chain = check_device(cert, "ed25519", device.public.raw, [org.public],
                         [foreign, tampered], at=T0)
    assert chain.status == "anchored"
    assert any("does not verify" in n for n in chain.notes)


def test_an_ecdsa_p256_device_key_certifies_and_anchors_without_format_change(org):
    hsm = EcdsaP256Signer.generate()
    cert = device_certificate(org, "ecdsa-p256", hsm.public_raw, "TPM-device",
                              T0, T0 + YEAR, T0)
    assert cert["statement"]["device"]["algorithm"] == "ecdsa-p256"
    assert check_device(cert, "ecdsa-p256", hsm.public_raw, [org.public], at=T0).anchored
    # A statement signed by a P-256 key verifies the same way.
    env = sign_statement({"type": "x", "version": 2}, hsm, "device")
    assert parse_envelope(env, "t", "device").verify()


def test_certifying_a_weak_key_is_refused(org):
    with pytest.raises(TrustError, match="weak"):
        device_certificate(org, "ed25519", (1).to_bytes(32, "little"), "x", T0, T0 + 1, T0)


# --- admin certificates --------------------------------------------------------------------


def test_admin_certificate_roles(org):
    admin = Ed25519Signer(ed25519.Ed25519PrivateKey.generate())
    cert = admin_certificate(org, "M. de Vries", "ed25519", admin.public_raw, ["collect"],
                             T0, T0 + YEAR, T0)
    assert cert["statement"]["type"] == ADMIN_CERT_TYPE
    ok = check_admin(cert, "ed25519", admin.public_raw, [org.public], at=T0, role="collect")
    assert ok.anchored and ok.label == "M. de Vries"
    assert check_admin(cert, "ed25519", admin.public_raw, [org.public], at=T0,
                       role="console").status == "wrong_role"
    with pytest.raises(TrustError, match="roles"):
        admin_certificate(org, "x", "ed25519", admin.public_raw, ["root"], T0, T0 + 1, T0)
    # A device certificate is not an admin certificate.
    dev = device_certificate(org, "ed25519", admin.public_raw, "x", T0, T0 + YEAR, T0)
    assert check_admin(dev, "ed25519", admin.public_raw, [org.public],
                       at=T0).status == "bad_certificate"


def test_times():
    assert format_time(parse_time("2026-02-28T23:59:59Z")) == "2026-02-28T23:59:59Z"
    for bad in ("2026-02-30T00:00:00Z", "2026-02-28 23:59:59", 5, "2026-02-28T23:59:59+01:00"):
        with pytest.raises(TrustError):
            parse_time(bad)


def test_a_key_off_the_curve_is_refused():
    for y in range(2, 100):
        raw = y.to_bytes(32, "little")
        if _point_from_public(raw) is None:
            break
    else:
        raise AssertionError("no off-curve y below 100")
    with pytest.raises(TrustError, match="not a point"):
        check_public_key("ed25519", raw)
    assert not verify_signature("ed25519", raw, raw + bytes(32), b"m")
