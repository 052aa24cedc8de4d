"""Building blocks for collection and archive tests: an organisation with its signing key,
a certified device that trusts it, a collection stick, an archive."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from akkoord.archive.index import Index, open_index
from akkoord.archive.store import Archive, init_archive
from akkoord.collect.package import COLLECT_DIR, TOKEN_FILE
from akkoord.collect.service import CollectionOutcome, run_collection
from akkoord.collect.statements import Signer, make_token
from akkoord.store.keys import DeviceIdentity, OrgPrivateKey
from akkoord.trust import OrgSigningKey, device_certificate, write_org_signing_pair
from storekit import Kit

# storekit's FixedClock starts here; certificates and tokens are valid around it.
T0 = 1_800_000_000.0


@dataclass
class Org:
    root: Path
    signing: Signer
    org_key: OrgSigningKey
    signing_pub: Path
    signing_key_path: Path
    hpke: OrgPrivateKey
    hpke_pub: Path
    hpke_key: Path
    name: str = "Jeugdzorg Test"


def make_org(root: Path, hpke: OrgPrivateKey, name: str = "Jeugdzorg Test") -> Org:
    root.mkdir(parents=True, exist_ok=True)
    key = OrgSigningKey.generate(name)
    kp, pp = write_org_signing_pair(key, root)
    (root / "org.pub").write_bytes(hpke.public.dumps())
    (root / "org.key").write_bytes(hpke.dumps())
    return Org(root, Signer.org(key), key, pp, kp, hpke, root / "org.pub", root / "org.key",
               name)


def certify(org: Org, identity: DeviceIdentity, label: str = "kamer-1",
            *, start: float = T0 - 86400, days: float = 365) -> dict:
    return device_certificate(org.org_key, "ed25519", identity.public.raw, label, int(start),
                              int(start + days * 86400), int(start))


def provision(kit: Kit, org: Org, label: str = "kamer-1") -> None:
    """What the installer does: trust anchor and the device's certificate."""
    trust = kit.state.keys_dir / "trust"
    trust.mkdir(parents=True, exist_ok=True)
    (trust / "org-signing.pub").write_bytes(org.signing_pub.read_bytes())
    cert = certify(org, kit.identity, label)
    (kit.state.keys_dir / "device.cert.json").write_text(json.dumps(cert))


def put_token(org: Org, stick: Path, devices: list[str], *, now: float = T0,
              days: float = 7, key: Signer | None = None) -> dict:
    token = make_token(key or org.signing, devices, now=now, days=days)
    (stick / COLLECT_DIR).mkdir(parents=True, exist_ok=True)
    (stick / COLLECT_DIR / TOKEN_FILE).write_text(json.dumps(token))
    return token


def collect(kit: Kit, stick: Path, **kw: object) -> CollectionOutcome:
    return run_collection(kit.state, kit.identity, kit.custody, stick, kit.clock.wall_epoch(),
                          **kw)


def make_archive(root: Path, org: Org, db: str | None = None,
                 ledger: Path | None = None) -> tuple[Archive, Index]:
    archive = init_archive(root, organisation=org.name, trust=[org.signing_pub],
                           recipients=[org.hpke_pub], db=db,
                           signing_key=org.signing_key_path, certificate=None, ledger=ledger)
    index = open_index(archive.root, db)
    index.migrate()
    return archive, index
