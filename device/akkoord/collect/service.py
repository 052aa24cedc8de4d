"""One collection, as the device runs it after the confirming press (device idle).

1. The token on the stick must verify against `<state>/keys/trust/*.pub`, be inside its
   validity window and name this device; otherwise the stick is a party's stick, as before.
2. Receipts on the stick (from the previous ingest) are applied first: forged ones, ones for
   another device and replays change nothing and are reported.
3. Every closed recording without a valid receipt is written to the stick (package.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.collect.package import (
    CERT_FILE,
    COLLECT_DIR,
    RECEIPTS_DIR,
    TOKEN_FILE,
    CollectResult,
    Progress,
    collect_to_stick,
)
from akkoord.collect.receipts import (
    ReceiptOutcome,
    apply_receipt,
    archived_ids,
    trusted_signing_keys,
)
from akkoord.collect.statements import StatementError, load_statement, verify_token
from akkoord.errors import FormatError
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import StateDir
from akkoord.store.safeio import read_regular
from akkoord.trust import MAX_STATEMENT_BYTES as MAX_STATEMENT

__all__ = ["CollectionOutcome", "collection_token", "run_collection"]


def collection_token(state: StateDir, identity: DeviceIdentity, stick: Path,
                     now: float) -> dict[str, Any] | None:
    """The verified token statement; None if the stick has no token (a party's stick).
    Raises StatementError for a token that is forged, expired or for another device."""
    path = Path(stick) / COLLECT_DIR / TOKEN_FILE
    try:  # the stick is not trusted: no FIFO, no link, nothing huge
        data = read_regular(path, MAX_STATEMENT, "collection token")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StatementError(f"{path}: cannot read the collection token ({exc.strerror})"
                             ) from None
    except FormatError as exc:
        raise StatementError(str(exc)) from None
    env = load_statement(data, str(path))
    return verify_token(env, trusted_signing_keys(state),
                        device_fingerprint=identity.fingerprint, now=now, where=str(path))


@dataclass
class CollectionOutcome:
    token: dict[str, Any]
    receipts: list[ReceiptOutcome] = field(default_factory=list)
    receipt_problems: list[str] = field(default_factory=list)
    other_devices: list[str] = field(default_factory=list)  # receipts left for other devices
    result: CollectResult = field(default_factory=CollectResult)

    def to_json(self) -> dict[str, Any]:
        return {
            "token_serial": self.token.get("serial"),
            "receipts": [{"serial": r.serial, "applied": r.applied, "already": r.already,
                          "refused": r.refused, "replayed": r.replayed} for r in self.receipts],
            "receipt_problems": self.receipt_problems,
            "receipts_for_other_devices": self.other_devices,
            "collected": self.result.collected,
            "already_on_stick": self.result.already,
            "failed": self.result.failed,
        }


def run_collection(state: StateDir, identity: DeviceIdentity, custody: CustodyLog,
                   stick: Path, now: float, progress: Progress | None = None,
                   ) -> CollectionOutcome:
    token = collection_token(state, identity, stick, now)
    if token is None:
        raise FormatError(f"{stick}: no collection token; this is not a collection stick")
    trusted = trusted_signing_keys(state)
    out = CollectionOutcome(token)
    receipts = Path(stick) / COLLECT_DIR / RECEIPTS_DIR
    for path in sorted(receipts.glob("*.json")) if receipts.is_dir() else []:
        try:
            data = read_regular(path, MAX_STATEMENT, "receipt")
            out.receipts.append(apply_receipt(
                state, custody, data, str(path),
                device_fingerprint=identity.fingerprint, trusted=trusted, now=now))
        except FormatError as exc:  # StatementError included
            if "another device" in str(exc):  # one stick may serve several devices
                out.other_devices.append(str(path))
            else:
                out.receipt_problems.append(str(exc))
        except OSError as exc:
            out.receipt_problems.append(f"{path}: {exc.strerror or exc}")
    cert_path = state.keys_dir / CERT_FILE
    cert = cert_path.read_bytes() if cert_path.exists() else None
    if cert is not None:
        json.loads(cert)  # a corrupt certificate file should fail here, not on the stick
    out.result = collect_to_stick(
        state, identity, custody, stick, token=token,
        archived=archived_ids(state, trusted, identity.fingerprint, now),
        certificate=cert, progress=progress)
    return out
