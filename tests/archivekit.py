"""Building blocks for collection and archive tests: an organisation with its signing key,
a certified device that trusts it, a collection stick, an archive."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from akkoord.archive.index import Index, open_index
from akkoord.archive.store import Archive, init_archive
from akkoord.collect.package import COLLECT_DIR, TOKEN_FILE
from akkoord.collect.service import CollectionOutcome, run_collection
from akkoord.collect.statements import SigningKey, make_token, sign_statement, utc
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey
from storekit import Kit

# storekit's FixedClock starts here; certificates and tokens are valid around it.
T0 = 1_800_000_000.0


@dataclass
class Org:
    root: Path
    signing: SigningKey
    signing_pub: Path
    signing_key_path: Path
    hpke: OrgPrivateKey
    hpke_pub: Path
    hpke_key: Path
    name: str = "Jeugdzorg Test"


def make_org(root: Path, hpke: OrgPrivateKey, name: str = "Jeugdzorg Test") -> Org:
    root.mkdir(parents=True, exist_ok=True)
    signing = SigningKey.generate(name)
    kp, pp = signing.save(root)
    (root / "org.pub").write_bytes(hpke.public.dumps())
    (root / "org.key").write_bytes(hpke.dumps())
    return Org(root, signing, pp, kp, hpke, root / "org.pub", root / "org.key", name)


def device_certificate(org: Org, identity: DeviceIdentity, label: str = "kamer-1",
                       *, start: float = T0 - 86400, days: float = 365) -> dict:
    pub = identity.public.to_json()
    s = {"type": "akkoord-device-certificate", "version": 2, "serial": os.urandom(16).hex(),
         "organisation": {"name": org.name,
                          "signing_key_fingerprint": org.signing.public.fingerprint},
         "device": {"label": label, "algorithm": "ed25519", "public_key": pub["public_key"],
                    "fingerprint": identity.fingerprint},
         "valid_from": utc(start), "valid_until": utc(start + days * 86400),
         "issued": utc(start)}
    return sign_statement(s, org.signing)


def provision(kit: Kit, org: Org, label: str = "kamer-1") -> None:
    """What the installer does: trust anchor and the device's certificate."""
    trust = kit.state.keys_dir / "trust"
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "org-signing.pub").write_bytes(org.signing_pub.read_bytes())
    cert = device_certificate(org, kit.identity, label)
    (kit.state.keys_dir / "device.cert.json").write_text(json.dumps(cert))


def put_token(org: Org, stick: Path, devices: list[str], *, now: float = T0,
              days: float = 7, key: SigningKey | None = None,
              certificate: dict | None = None) -> dict:
    token = make_token(key or org.signing, devices, organisation=org.name, now=now, days=days,
                       certificate=certificate)
    (stick / COLLECT_DIR).mkdir(parents=True, exist_ok=True)
    (stick / COLLECT_DIR / TOKEN_FILE).write_text(json.dumps(token))
    return token


def collect(kit: Kit, stick: Path, **kw: object) -> CollectionOutcome:
    return run_collection(kit.state, kit.identity, kit.custody, stick, kit.clock.wall_epoch(),
                          **kw)


def make_archive(root: Path, org: Org, db: str | None = None) -> tuple[Archive, Index]:
    archive = init_archive(root, organisation=org.name, trust=[org.signing_pub],
                           recipients=[org.hpke_pub], db=db,
                           signing_key=org.signing_key_path, certificate=None)
    index = open_index(archive.root, db)
    index.migrate()
    return archive, index
