"""Key files and content-key wrapping, to the byte and the word: fingerprints match the
committed vectors, every refused key file says which file and why, wrapping round-trips for
both KEMs and names whom a recording is wrapped to when it is not wrapped to you."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from akkoord.errors import KeyMaterialError, NoRecipientError
from akkoord.store.keys import (
    CONTENT_KEY_LEN,
    ContentKeys,
    DeviceIdentity,
    DevicePublicKey,
    OrgPrivateKey,
    OrgPublicKey,
    fingerprint_display,
    generate_org_key,
    key_fingerprint,
    new_content_key,
    unwrap_content_key,
    wipe,
    wrap_content_key,
    write_org_key_pair,
)

VECTORS = Path(__file__).parent / "vectors"
RID = bytes(range(16))


@pytest.fixture(scope="module")
def hybrid():
    return generate_org_key("mlkem768-x25519")


def test_fingerprints_match_the_committed_key_files():
    pub = json.loads((VECTORS / "device.pub").read_text())
    key = DevicePublicKey.load(VECTORS / "device.pub")
    assert key.fingerprint == pub["fingerprint"]
    assert key.to_json() == pub
    org = OrgPrivateKey.load(VECTORS / "org.key")
    assert org.fingerprint == json.loads((VECTORS / "org.key").read_text())["fingerprint"]
    assert json.loads(org.dumps()) == json.loads((VECTORS / "org.key").read_text())


def test_fingerprint_purposes_never_collide():
    raw = bytes(32)
    assert key_fingerprint("device-ed25519", raw) != key_fingerprint("org-x25519", raw)
    assert len(key_fingerprint("x", raw)) == 64
    assert fingerprint_display("0123456789abcdef" * 4) == (
        "0123 4567 89ab cdef 0123 4567 89ab cdef")


def test_a_saved_identity_loads_and_is_never_replaced(tmp_path):
    ident = DeviceIdentity.generate()
    ident.save(tmp_path / "keys")
    key, pub = tmp_path / "keys" / "device.key", tmp_path / "keys" / "device.pub"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) & 0o077 == 0
    doc = json.loads(key.read_text())
    assert (doc["type"], doc["version"], doc["algorithm"]) == ("akkoord-device-key", 1,
                                                              "ed25519")
    assert DeviceIdentity.load(tmp_path / "keys").fingerprint == ident.fingerprint
    assert DevicePublicKey.load(pub) == ident.public
    with pytest.raises(KeyMaterialError) as err:
        DeviceIdentity.generate().save(tmp_path / "keys")
    assert str(err.value) == (f"{key} already exists: this device has an identity; "
                              "refusing to replace it")
    assert DeviceIdentity.load(tmp_path / "keys").fingerprint == ident.fingerprint


def _key_file(path: Path, doc) -> Path:
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("not json", "not an akkoord key file (not JSON)"),
        (b"\xff\xfe", "not an akkoord key file (not JSON)"),
        ([1, 2], "expected a 'akkoord-device-key' file, found 'list'"),
        ({"type": "akkoord-org-private-key"},
         "expected a 'akkoord-device-key' file, found 'akkoord-org-private-key'"),
        ({"type": "akkoord-device-key", "version": 2}, "unsupported key file version 2"),
        ({"type": "akkoord-device-key"}, "unsupported key file version None"),
        ({"type": "akkoord-device-key", "version": 1, "private_key": 5},
         "private_key: expected base64 text"),
        ({"type": "akkoord-device-key", "version": 1, "private_key": "a!b="},
         "private_key: not valid base64"),
        ({"type": "akkoord-device-key", "version": 1, "private_key": "é"},
         "private_key: not valid base64"),
        ({"type": "akkoord-device-key", "version": 1,
          "private_key": base64.b64encode(bytes(31)).decode()},
         "an Ed25519 private key has 32 bytes, not 31"),
    ],
)
def test_a_bad_device_key_file_says_what_is_wrong(tmp_path, content, why):
    path = tmp_path / "device.key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        _key_file(path, content)
    with pytest.raises(KeyMaterialError) as err:
        DeviceIdentity.load(tmp_path)
    assert str(err.value) == f"{path}: {why}"


def test_a_key_that_is_not_a_file_says_so(tmp_path):
    with pytest.raises(KeyMaterialError) as err:
        DeviceIdentity.load(tmp_path)
    assert str(err.value) == f"{tmp_path / 'device.key'}: no such key file"
    os.mkfifo(tmp_path / "device.key")
    with pytest.raises(KeyMaterialError) as err:
        DeviceIdentity.load(tmp_path)  # returns at once: O_NONBLOCK
    assert str(err.value) == f"{tmp_path / 'device.key'}: not a regular file"
    (tmp_path / "device.key").unlink()
    (tmp_path / "device.key").mkdir()
    with pytest.raises(KeyMaterialError) as err:
        DeviceIdentity.load(tmp_path)
    assert str(err.value) == f"{tmp_path / 'device.key'}: cannot read key file: Is a directory"
    (tmp_path / "device.key").rmdir()
    (tmp_path / "device.key").symlink_to(tmp_path / "device.key")
    with pytest.raises(KeyMaterialError) as err:
        DeviceIdentity.load(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'device.key'}: cannot read key file: "
                              "Too many levels of symbolic links")


def test_a_device_public_key_file_is_checked(tmp_path):
    path = _key_file(tmp_path / "d.pub", {"type": "akkoord-device-public-key", "version": 1,
                                          "public_key": base64.b64encode(bytes(31)).decode()})
    with pytest.raises(KeyMaterialError, match=f"^{path}: "):
        DevicePublicKey.load(path)
    _key_file(path, {"type": "akkoord-device-public-key", "version": 1, "algorithm": 7,
                     "public_key": base64.b64encode(DeviceIdentity.generate().public.raw)
                     .decode()})
    with pytest.raises(KeyMaterialError) as err:
        DevicePublicKey.load(path)
    assert str(err.value) == f"{path}: algorithm must be text"


@pytest.mark.parametrize("kem", ["x25519", "mlkem768-x25519"])
def test_org_key_pairs_round_trip_and_are_never_overwritten(tmp_path, kem, hybrid):
    key = hybrid if kem != "x25519" else generate_org_key("x25519")
    priv, pub = write_org_key_pair(key, tmp_path / "org")
    assert (priv.name, pub.name) == ("org.key", "org.pub")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644
    loaded = OrgPrivateKey.load(priv)
    assert loaded.kem == kem and loaded.fingerprint == key.fingerprint
    assert OrgPublicKey.load(pub) == key.public
    assert json.loads(pub.read_text()) == {
        "type": "akkoord-org-public-key", "version": 1, "kem": kem,
        "public_key": base64.b64encode(key.public.raw).decode(),
        "fingerprint": key.fingerprint,
    }
    assert len(key.public.raw) == (32 if kem == "x25519" else 1184 + 32)
    # written like org.key (committed in tests/vectors): one-space indent, a final newline
    assert pub.read_text() == json.dumps(json.loads(pub.read_text()), indent=1) + "\n"
    before = priv.read_bytes()
    with pytest.raises(KeyMaterialError) as err:
        write_org_key_pair(generate_org_key("x25519"), tmp_path / "org")
    assert str(err.value) == f"{priv} already exists; refusing to overwrite a key"
    priv.unlink()
    with pytest.raises(KeyMaterialError) as err:
        write_org_key_pair(generate_org_key("x25519"), tmp_path / "org")
    assert str(err.value) == f"{pub} already exists; refusing to overwrite a key"
    assert not priv.exists() and before


@pytest.mark.parametrize(
    ("cls", "typ", "field", "kem", "raw", "why"),
    [
        (OrgPublicKey, "akkoord-org-public-key", "public_key", "rsa", bytes(32),
         "unknown kem 'rsa'; expected one of ('mlkem768-x25519', 'x25519')"),
        (OrgPublicKey, "akkoord-org-public-key", "public_key", "x25519", bytes(33),
         "a x25519 public key has 32 bytes, not 33"),
        (OrgPublicKey, "akkoord-org-public-key", "public_key", "mlkem768-x25519", bytes(32),
         "a mlkem768-x25519 public key has 1216 bytes, not 32"),
        (OrgPrivateKey, "akkoord-org-private-key", "private_key", None, bytes(32),
         "unknown kem None; expected one of ('mlkem768-x25519', 'x25519')"),
        (OrgPrivateKey, "akkoord-org-private-key", "private_key", "x25519", bytes(64),
         "a x25519 private key has 32 bytes, not 64"),
        (OrgPrivateKey, "akkoord-org-private-key", "private_key", "mlkem768-x25519",
         bytes(32), "a mlkem768-x25519 private key has 96 bytes, not 32"),
    ],
)
def test_a_bad_org_key_file_says_what_is_wrong(tmp_path, cls, typ, field, kem, raw, why):
    doc = {"type": typ, "version": 1, field: base64.b64encode(raw).decode()}
    if kem is not None:
        doc["kem"] = kem
    path = _key_file(tmp_path / "k", doc)
    with pytest.raises(KeyMaterialError) as err:
        cls.load(path)
    assert str(err.value) == f"{path}: {why}"


def test_an_unknown_kem_is_not_generated():
    with pytest.raises(KeyMaterialError) as err:
        generate_org_key("rsa")
    assert str(err.value) == "unknown kem 'rsa'; expected one of ('mlkem768-x25519', 'x25519')"


def test_the_committed_recording_unwraps_with_the_committed_key():
    keys = json.loads((VECTORS / "complete" / "recording" / "keys.json").read_text())
    org = OrgPrivateKey.load(VECTORS / "org.key")
    rid = bytes.fromhex(keys["recording_id"])
    ck = unwrap_content_key(keys["recipients"], rid, org, "keys.json")
    assert len(ck) == CONTENT_KEY_LEN
    with pytest.raises(KeyMaterialError) as err:  # bound to its recording id (HPKE info)
        unwrap_content_key(keys["recipients"], bytes(16), org, "keys.json")
    assert str(err.value) == (f"keys.json: the wrapped content key for {org.fingerprint[:16]} "
                              "does not decrypt")


@pytest.mark.parametrize("kem", ["x25519", "mlkem768-x25519"])
def test_wrapping_round_trips_to_every_recipient(kem, hybrid):
    mine = hybrid if kem != "x25519" else generate_org_key("x25519")
    other = generate_org_key("x25519")
    ck = os.urandom(32)
    wrapped = wrap_content_key(ck, RID, [other.public, mine.public])
    assert [(w["fingerprint"], w["kem"]) for w in wrapped] == [
        (other.fingerprint, "x25519"), (mine.fingerprint, kem)]
    assert unwrap_content_key(wrapped, RID, mine, "w") == ck
    assert unwrap_content_key(wrapped, RID, other, "w") == ck


def test_a_recording_not_wrapped_to_you_names_whom_it_is_wrapped_to():
    a, b, me = (generate_org_key("x25519") for _ in range(3))
    wrapped = wrap_content_key(os.urandom(32), RID, [a.public, b.public])
    with pytest.raises(KeyMaterialError) as err:
        unwrap_content_key([*wrapped, "junk", {"kem": "x"}], RID, me, "R/keys.json")
    assert str(err.value) == (
        f"R/keys.json: this recording is not wrapped to key {me.fingerprint[:16]} "
        f"(it is wrapped to: {a.fingerprint[:16]}, {b.fingerprint[:16]}, ?)")
    with pytest.raises(KeyMaterialError) as err:
        unwrap_content_key([], RID, me, "R/keys.json")
    assert str(err.value).endswith("(it is wrapped to: nobody)")


def test_a_wrapped_key_of_the_wrong_length_or_garbled_is_refused():
    me = generate_org_key("x25519")
    (short,) = wrap_content_key(os.urandom(16), RID, [me.public])
    with pytest.raises(KeyMaterialError) as err:
        unwrap_content_key([short], RID, me, "w")
    assert str(err.value) == "w: wrapped content key has the wrong length"
    (good,) = wrap_content_key(os.urandom(32), RID, [me.public])
    ct = bytearray(base64.b64decode(good["hpke"]))
    ct[-1] ^= 1
    with pytest.raises(KeyMaterialError) as err:
        unwrap_content_key([{**good, "hpke": base64.b64encode(ct).decode()}], RID, me, "w")
    assert str(err.value) == (f"w: the wrapped content key for {me.fingerprint[:16]} "
                              "does not decrypt")
    with pytest.raises(KeyMaterialError) as err:
        unwrap_content_key([{**good, "hpke": "%%"}], RID, me, "w")
    assert str(err.value) == "w: hpke: not valid base64"


def test_no_recipient_no_recording():
    with pytest.raises(NoRecipientError) as err:
        wrap_content_key(os.urandom(32), RID, [])
    assert "akkoord keys add-recipient org.pub" in str(err.value)


def test_content_subkeys_differ_by_purpose_and_by_recording_and_wipe():
    ck = bytearray(os.urandom(32))
    k = ContentKeys.derive(ck, RID)
    assert k.seal_key != k.mac_key and len(k.seal_key) == len(k.mac_key) == 32
    assert k == ContentKeys.derive(bytes(ck), RID)
    assert k != ContentKeys.derive(ck, bytes(16))
    assert k != ContentKeys(k.seal_key, bytes(32)) and k != ContentKeys(bytes(32), k.mac_key)
    assert k != "not keys"
    assert ContentKeys(k.seal_key, k.mac_key) == k
    assert not k.wiped
    half = ContentKeys(k.seal_key, bytes(32))
    assert not half.wiped and not ContentKeys(bytes(32), k.mac_key).wiped
    k.wipe()
    assert k.wiped and k.seal_key == bytes(32) and k.mac_key == bytes(32)
    buf = bytearray(b"secret")
    wipe(buf)
    assert buf == bytes(6)
    wipe(None)
    fresh = new_content_key()
    assert isinstance(fresh, bytearray) and len(fresh) == 32 and fresh != new_content_key()


def test_an_org_public_key_that_is_not_a_key_says_so(tmp_path):
    path = _key_file(tmp_path / "org.pub", {
        "type": "akkoord-org-public-key", "version": 1, "kem": "mlkem768-x25519",
        "public_key": base64.b64encode(b"\xff" * (1184 + 32)).decode()})
    with pytest.raises(KeyMaterialError) as err:
        OrgPublicKey.load(path)
    assert str(err.value).startswith(f"{path}: not a valid mlkem768-x25519 public key: ")
    _key_file(path, {"type": "akkoord-org-public-key", "version": 1, "kem": "x25519",
                     "public_key": "!!!!"})
    with pytest.raises(KeyMaterialError) as err:
        OrgPublicKey.load(path)
    assert str(err.value) == f"{path}: public_key: not valid base64"


def test_an_org_key_pair_goes_into_a_new_nested_folder(tmp_path):
    priv, pub = write_org_key_pair(generate_org_key("x25519"), tmp_path / "a" / "b")
    assert priv.parent == tmp_path / "a" / "b" and pub.exists()


def test_a_device_public_key_names_its_algorithm_or_is_ed25519(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    raw = DeviceIdentity.generate().public.raw
    path = _key_file(tmp_path / "d.pub", {"type": "akkoord-device-public-key", "version": 1,
                                          "public_key": base64.b64encode(raw).decode()})
    assert DevicePublicKey.load(path) == DevicePublicKey(raw, "ed25519")
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    _key_file(path, {"type": "akkoord-device-public-key", "version": 1,
                     "algorithm": "ecdsa-p256", "public_key": base64.b64encode(p256).decode()})
    key = DevicePublicKey.load(path)
    assert (key.algorithm, key.raw) == ("ecdsa-p256", p256)
    _key_file(path, {"type": "akkoord-device-public-key", "version": 1, "public_key": "!"})
    with pytest.raises(KeyMaterialError) as err:
        DevicePublicKey.load(path)
    assert str(err.value) == f"{path}: public_key: not valid base64"


def test_a_key_file_is_read_up_to_one_mebibyte(tmp_path):
    doc = json.loads((VECTORS / "org.key").read_text())
    path = tmp_path / "org.key"
    path.write_text(" " * (1 << 20) + json.dumps(doc))  # the key after 1 MiB of spaces
    with pytest.raises(KeyMaterialError) as err:
        OrgPrivateKey.load(path)
    assert str(err.value) == f"{path}: not an akkoord key file (not JSON)"
    path.write_text(" " * ((1 << 20) - len(json.dumps(doc))) + json.dumps(doc))
    assert OrgPrivateKey.load(path).fingerprint == doc["fingerprint"]


def test_the_org_key_file_is_written_as_committed():
    key = OrgPrivateKey.load(VECTORS / "org.key")
    assert key.dumps() == (VECTORS / "org.key").read_bytes()


def test_an_org_private_key_with_bad_base64_says_where(tmp_path):
    path = _key_file(tmp_path / "org.key", {"type": "akkoord-org-private-key", "version": 1,
                                            "kem": "x25519", "private_key": "!!!!"})
    with pytest.raises(KeyMaterialError) as err:
        OrgPrivateKey.load(path)
    assert str(err.value) == f"{path}: private_key: not valid base64"


def test_no_recipient_is_explained_in_full():
    with pytest.raises(NoRecipientError) as err:
        wrap_content_key(os.urandom(32), RID, [])
    assert str(err.value) == (
        "no organisation key is configured: a recording could never be read back. "
        "Add one with `akkoord keys add-recipient org.pub`.")


def test_the_vector_device_saves_its_public_key_as_committed(tmp_path):
    """scripts/make_vectors.py makes its device from a fixed seed: saved by today's code,
    its public key file is the committed one, byte for byte (into folders made on the way)."""
    import hashlib

    seed = hashlib.sha256(b"akkoord test vector seed: device").digest()
    ident = DeviceIdentity.from_seed(seed)
    ident.save(tmp_path / "new" / "keys")
    assert (tmp_path / "new" / "keys" / "device.pub").read_bytes() == (
        VECTORS / "device.pub").read_bytes()
    doc = json.loads((tmp_path / "new" / "keys" / "device.key").read_bytes())
    assert (tmp_path / "new" / "keys" / "device.key").read_text() == json.dumps(
        doc, indent=1) + "\n"
    assert base64.b64decode(doc["private_key"]) == seed


def test_the_committed_recording_opens_with_the_derived_subkeys():
    """Known answer for the key schedule: the content key unwrapped from the committed
    recording derives the seal key that opens its first audio frame and the MAC key that
    its header's audio MAC was made with."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from akkoord.store.format import HEADER_LEN, Kind, audio_mac, nonce_for
    from storekit import frames_of

    rec = VECTORS / "complete" / "recording"
    keys = json.loads((rec / "keys.json").read_text())
    rid = bytes.fromhex(keys["recording_id"])
    ck = unwrap_content_key(keys["recipients"], rid, OrgPrivateKey.load(VECTORS / "org.key"),
                            "keys.json")
    sub = ContentKeys.derive(ck, rid)
    data = (rec / "recording.akr").read_bytes()
    f = next(x for x in frames_of(rec / "recording.akr") if x.header.kind == Kind.AUDIO)
    at = f.offset + HEADER_LEN + len(f.meta_bytes)
    body = data[at : at + f.header.body_len]
    pcm = ChaCha20Poly1305(bytes(sub.seal_key)).decrypt(
        nonce_for(f.header.index, f.header.final), body, f.header_bytes + f.meta_bytes)
    assert len(pcm) == f.header.samples * 2
    assert audio_mac(bytes(sub.mac_key), pcm) == f.header.audio_mac
    wav = (VECTORS / "complete" / "copy" / "opname.wav").read_bytes()
    assert wav[44 : 44 + len(pcm)] == pcm
