"""The archive folder: configuration, objects by content hash, quarantine.

    DIR/archive.json          organisation, trusted signing keys, organisation public keys
    DIR/objects/ab/<sha256>   every file of every recording, stored once, never rewritten:
                              SHA-256 of the file; for a container, SHA-256 over its verified
                              chain head and size (`container_object_name`)
    DIR/staging/              ingests in progress (a crash leaves only this to clean up)
    DIR/quarantine/<name>/    recordings that failed verification, kept whole, with reason.txt
    DIR/index.sqlite          the index (unless --db postgresql://…)
    DIR/org-custody.log       the organisation's signed log: later copies and deletions

An object is written to staging, fsynced, then linked into place with link(2), which fails
if the object exists: two ingests storing the same file at once store it once, and an
existing object is never replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.collect.statements import Signer, load_signer
from akkoord.errors import UsageError
from akkoord.fsutil import atomic_write, fsync_dir
from akkoord.store.keys import OrgPublicKey
from akkoord.trust import OrgSigningPublicKey

__all__ = ["ARCHIVE_FILE", "Archive", "init_archive"]

ARCHIVE_FILE = "archive.json"
ARCHIVE_TYPE = "akkoord-archive"
CHUNK = 1 << 20
CONTAINER_LABEL = b"akkoord/v2/archive-container\n"


@dataclass
class Archive:
    root: Path
    config: dict[str, Any]

    @property
    def organisation(self) -> str:
        return str(self.config.get("organisation", ""))

    @property
    def db(self) -> str | None:
        return self.config.get("db")

    def trusted(self) -> list[OrgSigningPublicKey]:
        where = str(self.root / ARCHIVE_FILE)
        return [OrgSigningPublicKey.from_json(d, where) for d in self.config.get("trust", [])]

    def recipient_fingerprints(self) -> set[str]:
        return set(self.config.get("recipients", []))

    def signer(self, key: str | None = None, certificate: str | None = None) -> Signer:
        path = key or self.config.get("signing_key")
        if not path:
            raise UsageError("no signing key: pass --signing-key ORG_SIGNING_KEY (or an admin "
                             "key with --certificate) or set it at `archive init`")
        cert = certificate or (None if key else self.config.get("certificate"))
        return load_signer(Path(path), Path(cert) if cert else None)

    @property
    def log_path(self) -> Path:
        """The organisation's own signed log (store/orglog.py, FORMAT.md §11.5)."""
        return self.root / "org-custody.log"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def staging(self) -> Path:
        return self.root / "staging"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def object_path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise UsageError(f"{digest!r} is not an object hash")
        return self.objects / digest[:2] / digest

    def put(self, staged: Path, digest: str, dirty: set[Path] | None = None) -> bool:
        """Link a staged, fsynced file into place as object `digest`; False if it was there.
        With `dirty`, the object's folder is added there for one fsync later (before any
        receipt is written) instead of being fsynced now."""
        dst = self.object_path(digest)
        dst.parent.mkdir(exist_ok=True)
        try:
            os.link(staged, dst)
        except FileExistsError:
            return False
        if dirty is None:
            fsync_dir(dst.parent)
        else:
            dirty.add(dst.parent)
        return True

    def materialise(self, objects: dict[str, str], into: Path) -> Path:
        """A recording folder (hard links to the objects) for the store's verifier."""
        into.mkdir(parents=True, exist_ok=True)
        for name, digest in objects.items():
            src = self.object_path(digest)
            try:
                os.link(src, into / name)
            except OSError:
                shutil.copyfile(src, into / name)
        return into

    def scratch(self) -> Path:
        self.staging.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.staging))

    @classmethod
    def open(cls, root: Path) -> Archive:
        path = Path(root) / ARCHIVE_FILE
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise UsageError(f"{root} is not an archive (no {ARCHIVE_FILE}); "
                             "make one with `akkoord archive init`") from None
        except ValueError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or doc.get("type") != ARCHIVE_TYPE:
            raise UsageError(f"{path}: not an akkoord archive configuration")
        return cls(Path(root), doc)


def container_object_name(chain_head: str, size: int) -> str:
    """A verified container's object name: its chain head already commits to every byte.

    Verification hashes every frame into the chain and finds any byte outside a frame, so a
    container that verifies is fixed by its chain head and size; hashing it a second time
    for its name would double the CPU work of an ingest for nothing."""
    return hashlib.sha256(CONTAINER_LABEL + bytes.fromhex(chain_head)
                          + size.to_bytes(8, "big")).hexdigest()


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def init_archive(root: Path, *, organisation: str, trust: list[Path], recipients: list[Path],
                 db: str | None, signing_key: Path | None,
                 certificate: Path | None, ledger: Path | None = None) -> Archive:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if (root / ARCHIVE_FILE).exists():
        raise UsageError(f"{root} is already an archive")
    if not trust:
        raise UsageError("an archive needs at least one --trust ORG_SIGNING_PUB")
    if not recipients:
        raise UsageError("an archive needs at least one --recipient ORG_PUBLIC_KEY (the key "
                         "recordings are wrapped to)")
    doc = {
        "type": ARCHIVE_TYPE,
        "version": 2,
        "organisation": organisation,
        "trust": [OrgSigningPublicKey.load(p).to_json() for p in trust],
        "recipients": [OrgPublicKey.load(p).fingerprint for p in recipients],
        "db": db,
        "signing_key": str(Path(signing_key).resolve()) if signing_key else None,
        "certificate": str(Path(certificate).resolve()) if certificate else None,
    }
    signer = None
    if ledger is not None:  # outside the archive and its backups (archive/ledger.py)
        from akkoord.archive.ledger import init_ledger

        signer = load_signer(Path(signing_key), None) if signing_key else None
        if signer is None or signer.org_key is None:
            raise UsageError("a ledger is started with a signed first entry: pass "
                             "--signing-key ORG_SIGNING_KEY (the organisation's, not an admin's)")
        doc["ledger"] = init_ledger(ledger, root)
        doc["archive_id"] = secrets.token_hex(16)
    for d in ("objects", "staging", "quarantine"):
        (root / d).mkdir(exist_ok=True, mode=0o700)
    atomic_write(root / ARCHIVE_FILE, json.dumps(doc, indent=1).encode() + b"\n", 0o640,
                 exclusive=True)
    with contextlib.suppress(OSError):
        os.chmod(root, 0o700)
    archive = Archive(root, doc)
    if signer is not None and signer.org_key is not None:
        # The log's first entry names this archive: another archive's ledger (which starts
        # with its own) can never be replayed into this one.
        from akkoord.archive.ledger import sync_ledger
        from akkoord.clock import SystemClock
        from akkoord.store.orglog import OrgLog

        OrgLog(archive.log_path, signer.org_key, SystemClock()).append(
            "archive_created", archive_id=doc["archive_id"], organisation=organisation)
        sync_ledger(archive)
    return archive
