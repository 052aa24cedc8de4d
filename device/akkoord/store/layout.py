"""Where things live in the state directory (`--state`, AKKOORD_STATE, /var/lib/akkoord).

<state>/keys/device.key, device.pub     device identity (Ed25519)
<state>/keys/recipients/<fp>.pub         organisation public keys new recordings wrap to
<state>/keys/device.cert.json            the organisation's certificate for the device key
<state>/keys/trust/<fp>.pub              organisation signing keys the device trusts
<state>/recordings/<id>/                 one folder per recording (see FORMAT.md)
<state>/quarantine/<id>/                 recordings recovery found corrupt (kept whole)
<state>/custody.log                      device-wide custody log
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.errors import KeyMaterialError, UsageError
from akkoord.store.keys import DeviceIdentity, DevicePublicKey, OrgPublicKey

__all__ = [
    "CONTAINER_FILE",
    "DEFAULT_STATE",
    "EXPORTS_FILE",
    "RESERVE_FILE",
    "WRAPPED_KEYS_FILE",
    "StateDir",
    "state_from_env",
]

DEFAULT_STATE = Path("/var/lib/akkoord")
CONTAINER_FILE = "recording.akr"
WRAPPED_KEYS_FILE = "keys.json"
EXPORTS_FILE = "exports.akr"
RESERVE_FILE = ".reserve"  # freed to close a recording cleanly when the disk fills up
RECORDING_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def state_from_env(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get("AKKOORD_STATE")
    return Path(env) if env else DEFAULT_STATE


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def recipients_dir(self) -> Path:
        return self.keys_dir / "recipients"

    @property
    def recordings_dir(self) -> Path:
        return self.root / "recordings"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def custody_path(self) -> Path:
        return self.root / "custody.log"

    @property
    def lock_path(self) -> Path:
        return self.root / "akkoord.lock"

    def ensure(self) -> None:
        for d in (self.root, self.recordings_dir, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    def recording_dir(self, recording_id: str) -> Path:
        if not RECORDING_ID_RE.match(recording_id):
            raise UsageError(f"{recording_id!r} is not a recording id (32 hex digits)")
        return self.recordings_dir / recording_id

    def recording_ids(self) -> list[str]:
        try:
            names = os.listdir(self.recordings_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if RECORDING_ID_RE.match(n))

    def identity(self) -> DeviceIdentity:
        if not (self.keys_dir / "device.key").exists():
            raise KeyMaterialError(
                f"no device identity in {self.keys_dir}: run `akkoord keys init` first"
            )
        return DeviceIdentity.load(self.keys_dir)

    def device_public_key(self) -> DevicePublicKey | None:
        path = self.keys_dir / "device.pub"
        return DevicePublicKey.load(path) if path.exists() else None

    @property
    def certificate_path(self) -> Path:
        return self.keys_dir / "device.cert.json"

    @property
    def trust_dir(self) -> Path:
        return self.keys_dir / "trust"

    def device_certificate(self) -> dict[str, Any] | None:
        """The installed certificate as JSON (checked at install), or None."""
        try:
            doc = json.loads(self.certificate_path.read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def recipients(self) -> list[OrgPublicKey]:
        try:
            paths = sorted(self.recipients_dir.glob("*.pub"))
        except OSError:
            return []
        return [OrgPublicKey.load(p) for p in paths]
