"""What the console's commands do on the device: reads of the store, and admin actions.

The daemon is reached only through `DaemonView` (a read-only snapshot of the loop's state,
taken under the GIL without locks); everything else goes through the state directory and the
custody log, the same way the CLI does while the daemon runs. No handler returns audio, a
content key or a private key: results are built from manifests, fingerprints and the custody
log, never from `keys.json`, `device.key` or the container's bodies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from akkoord import __version__
from akkoord.clock import Clock
from akkoord.collect.receipts import ReceiptMemo, trusted_signing_keys
from akkoord.collect.receipts import is_receipted as receipt_holds
from akkoord.collect.runner import RETENTION_FILE  # the console writes it, the collector reads it
from akkoord.config import Config
from akkoord.console.clockset import ClockSetter
from akkoord.console.protocol import PROTOCOL_VERSION
from akkoord.errors import AkkoordError, KeyMaterialError
from akkoord.fsutil import atomic_write
from akkoord.recorder import free_seconds
from akkoord.store.catalog import shared_catalog
from akkoord.store.custody import CustodyLog, entry_hash
from akkoord.store.custody_index import CustodyIndex
from akkoord.store.delete import delete_recording
from akkoord.store.keys import ORG_KEY_TYPE, ORG_PUB_TYPE, OrgPublicKey
from akkoord.store.layout import StateDir
from akkoord.trust import (
    OrgSigningPublicKey,
    TrustError,
    check_device,
    load_statement_file,
    parse_envelope,
    parse_time,
)

__all__ = ["RETENTION_FILE", "ConsoleDevice", "DaemonView", "Refused"]

COLLECTED_TYPE = "archive_collected"
VERIFY_TIMEOUT_S = 900.0
_DAY = 86400.0


class Refused(AkkoordError):
    """The device will not do this (the message says why); nothing was changed."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.code = code


class DaemonView(Protocol):
    """The console's only window into the running recorder. Read-only."""

    def machine_state(self) -> str: ...

    def faults(self) -> list[str]: ...

    def active_recording(self) -> str | None: ...

    def exportable_recording(self) -> str | None: ...


VerifyRunner = Callable[[StateDir, Path, Config], tuple[int, dict[str, Any]]]


def verify_in_child(state: StateDir, directory: Path, config: Config
                    ) -> tuple[int, dict[str, Any]]:
    """`akkoord verify --json` in a niced child process: a long verification neither holds
    the daemon's GIL nor grows its memory, and a crash in it cannot take the daemon down.
    It trusts what the daemon trusts: this state's keys/trust and the daemon's [trust]."""
    cmd = ["nice", "-n", "10", sys.executable, "-m", "akkoord", "verify", "--json",
           "--state", str(state.root), str(directory)]
    if Path(config.source).is_file():
        cmd[-1:-1] = ["--config", config.source]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=VERIFY_TIMEOUT_S,
                              check=False)
    except OSError as exc:
        raise Refused(f"verification could not start: {exc}", "failed") from None
    except subprocess.TimeoutExpired:
        raise Refused(f"verification took longer than {VERIFY_TIMEOUT_S:.0f} s",
                      "failed") from None
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise Refused(f"verification failed: {done.stderr.strip()[-300:]}", "failed") from None


class ConsoleDevice:
    def __init__(
        self,
        *,
        state: StateDir,
        config: Config,
        custody: CustodyLog,
        clock: Clock,
        fingerprint: str,
        view: DaemonView,
        clock_setter: ClockSetter,
        verify: VerifyRunner = verify_in_child,
    ) -> None:
        self.state = state
        self.config = config
        self.custody = custody
        self.clock = clock
        self.fingerprint = fingerprint
        self.view = view
        self.clock_setter = clock_setter
        self._verify = verify
        self._log_index = CustodyIndex(custody.path)

    # -- trust ------------------------------------------------------------------------------

    def trust(self) -> tuple[list[OrgSigningPublicKey], list[Any]]:
        """What `akkoord verify` trusts on this device (cli_trust.trust_inputs): organisation
        signing keys in `<state>/keys/trust/*.pub` and `[trust] org_signing_keys`, revocation
        lists in `[trust] revocation_lists`. Files are re-read per request, so a list the
        organisation installs takes effect at once. An unreadable anchor is skipped (one
        damaged anchor must not lock the technician out of the others); an unreadable
        revocation list is a refusal, since skipping it would let a revoked key back in."""
        paths = list(self.config.trust.org_signing_keys)
        with contextlib.suppress(OSError):
            paths += sorted(str(p) for p in self.state.trust_dir.glob("*.pub"))
        keys, lists = [], []
        for p in paths:
            with contextlib.suppress(TrustError):
                keys.append(OrgSigningPublicKey.load(Path(p)))
        for p in self.config.trust.revocation_lists:
            try:
                lists.append(load_statement_file(Path(p)))
            except TrustError as exc:
                raise Refused(f"revocation list unreadable, so no certificate can be "
                              f"trusted: {exc}") from None
        return keys, lists

    def clock_trusted_time(self) -> int | None:
        """Wall time to check certificates against, or None while the clock is unset."""
        return None if self.clock_unset() else int(self.clock.wall_epoch())  # type: ignore[attr-defined]

    def clock_unset(self) -> bool:
        return self.clock.wall_epoch() < self._floor_epoch()  # type: ignore[attr-defined]

    def _floor_epoch(self) -> float:
        """`[store] clock_floor`: no honest clock reads earlier than this."""
        return datetime.fromisoformat(self.config.store.clock_floor).replace(
            tzinfo=UTC).timestamp()

    # -- open commands ----------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        return {"protocol": PROTOCOL_VERSION, "akkoord": __version__,
                "device_fingerprint": self.fingerprint}

    def _certificate(self) -> dict[str, Any] | None:
        path = self.state.certificate_path
        if not path.exists():
            return None
        pub = self.state.device_public_key()
        try:
            trusted, revocations = self.trust()
            env = load_statement_file(path)
        except (TrustError, Refused) as exc:
            return {"status": "bad_certificate", "anchored": False, "message": str(exc)}
        assert pub is not None
        return check_device(env.to_json(), "ed25519", pub.raw, trusted, revocations,
                            self.clock_trusted_time()).to_json()

    def _recordings(self) -> list[dict[str, Any]]:
        # From the process's catalog (store/catalog.py): each manifest is read again only
        # when it is not the file read last time, not once per request.
        rows = []
        for rid, summary in shared_catalog().summaries(self.state):
            doc = summary.doc or {}
            rows.append({
                "recording_id": rid,
                "start": (doc.get("created") or {}).get("utc"),
                "duration_seconds": doc.get("duration_seconds"),
                "ended": (doc.get("ended") or {}).get("utc"),
                "status": doc.get("status", "open"),
                "simulated": bool(doc.get("simulated", False)),
                "_summary": summary,
            })
        rows.sort(key=lambda r: r["start"] or "")
        return rows

    def status(self) -> dict[str, Any]:
        wall = self.clock.wall()
        rows = self._recordings()
        last = None
        if rows:
            last = {k: v for k, v in rows[-1].items() if not k.startswith("_") and k != "ended"}
        try:
            free_min: float | None = round(
                free_seconds(self.state.recordings_dir, self.config.audio.sample_rate) / 60, 1)
        except OSError:
            free_min = None
        try:
            recipients = [r.fingerprint for r in self.state.recipients()]
        except AkkoordError as exc:
            recipients = [f"unreadable: {exc}"]
        try:
            trusted, _ = self.trust()
        except Refused:
            trusted = []
        return {
            "state": self.view.machine_state(),
            "faults": self.view.faults(),
            "recording": self.view.active_recording(),
            "free_minutes": free_min,
            "clock": {"utc": wall.utc, "quality": wall.clock, "unset": self.clock_unset()},
            "keys": {
                "device": self.fingerprint,
                "recipients": recipients,
                "trusted_organisations": [
                    {"name": t.organisation, "fingerprint": t.fingerprint} for t in trusted],
                "certificate": self._certificate(),
            },
            "last_recording": last,
            "recordings": len(rows),
            "akkoord": __version__,
        }

    def _wall(self) -> float:
        return float(self.clock.wall_epoch())  # type: ignore[attr-defined]

    def retention_days(self) -> int | None:
        path = self.state.root / RETENTION_FILE
        try:
            doc = json.loads(path.read_bytes())
            days = doc["days"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            raise Refused(f"{path} is unreadable; set the retention period again") from None
        return int(days) if isinstance(days, int) and days > 0 else None

    def list(self) -> dict[str, Any]:
        collected = self._log_index.collected(self.custody.entries)
        # Receipts as is_receipted checks them, each distinct receipt verified once, with
        # the chain head from the manifest summary just read.
        memo = ReceiptMemo(trusted_signing_keys(self.state), self.fingerprint, self._wall())
        days = self.retention_days()
        now = self.clock.wall_epoch()  # type: ignore[attr-defined]
        out = []
        for row in self._recordings():
            summary = row.pop("_summary")
            copies = summary.copies  # None: the export record is unreadable
            left = None
            since = row.pop("ended") or row["start"]  # retention counts from the end
            if days is not None and since:
                t0 = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp()
                left = round((t0 + days * _DAY - now) / _DAY, 1)
            rid = row["recording_id"]
            head = (summary.doc or {}).get("chain_head")
            receipted = receipt_holds(self.state, rid, memo.trusted, self.fingerprint,
                                      memo.now, memo=memo, chain_head=head)
            out.append({**row, "copies": copies, "collected": rid in collected,
                        "receipted": receipted, "retention_left_days": left})
        return {"recordings": out, "retention_days": days}

    def verify(self, recording_id: str) -> dict[str, Any]:
        directory = self.state.recording_dir(recording_id)
        if not directory.is_dir():
            raise Refused(f"no recording {recording_id} on this device", "not_found")
        code, report = self._verify(self.state, directory, self.config)
        return {"exit_code": code, "report": report}

    def log(self, since: int | None, limit: int) -> dict[str, Any]:
        # From the index (store/custody_index.py): only the lines answered with are parsed.
        if since is None:
            return {"entries": self._log_index.tail(limit, self.custody.entries)}
        return {"entries": self._log_index.since(since, limit, self.custody.entries)}

    def head(self, held: dict[str, Any] | None = None) -> dict[str, Any]:
        head = self.custody.head()
        out: dict[str, Any] = {"head": head.to_json() if head else None}
        if held is not None:
            out["check"] = self._check_head(held)
        return out

    def _check_head(self, held: dict[str, Any]) -> dict[str, Any]:
        """Does this log still hold, at the same place, the head a party's copy carries?
        No means the log was rewritten or cut after that copy was made (or the copy is from
        another device): a finding for the organisation, not for the party."""
        seq, digest = held.get("seq"), held.get("hash")
        if held.get("device_fingerprint") not in (None, self.fingerprint):
            return {"contains": False, "message": "that head is from another device"}
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(digest, str):
            raise Refused("a custody head has an integer seq and a hash", "usage")
        entry = self._log_index.at(seq, self.custody.entries)
        if entry is not None:
            ok = entry_hash(entry).hex() == digest
            return {"seq": seq, "contains": ok, "message": (
                f"entry {seq} is the one the copy holds: the history since is an extension"
                if ok else f"entry {seq} differs from the one the copy holds: this log was "
                "rewritten after that copy was made")}
        return {"seq": seq, "contains": False,
                "message": f"this log has no entry {seq}: it was cut after that copy was made"}

    # -- admin commands ----------------------------------------------------------------------

    def time_set(self, utc: str, admin: dict[str, Any]) -> dict[str, Any]:
        if self.view.active_recording() is not None:
            raise Refused("the device is recording; set the clock when it is idle")
        try:
            target = parse_time(utc, "time")
        except TrustError as exc:
            raise Refused(str(exc), "usage") from None
        if target < self._floor_epoch() or target >= 4102444800:  # 2100-01-01
            raise Refused(f"{utc} is before the clock floor {self.config.store.clock_floor} "
                          "or after 2099: refusing an implausible time", "usage")
        old = self.clock.wall()
        self.clock_setter.set_time(target)
        self.custody.append("clock_set", old=old.to_json(), new=utc, admin=admin,
                            via="console")
        return {"old": old.to_json(), "new": utc}

    def retention_show(self) -> dict[str, Any]:
        return {"retention_days": self.retention_days()}

    def retention_set(self, days: int, admin: dict[str, Any]) -> dict[str, Any]:
        old = self.retention_days()
        doc = {"type": "akkoord-retention", "version": 1, "days": days}
        atomic_write(self.state.root / RETENTION_FILE, json.dumps(doc).encode() + b"\n", 0o640)
        self.custody.append("retention_changed", old_days=old, new_days=days, admin=admin,
                            via="console")
        return {"old_days": old, "retention_days": days}

    def delete(self, recording_id: str, reason: str, force: bool,
               admin: dict[str, Any]) -> dict[str, Any]:
        if recording_id in (self.view.active_recording(), self.view.exportable_recording()):
            raise Refused(f"{recording_id} is being recorded or is in its copy window")
        if not self.state.recording_dir(recording_id).is_dir():
            raise Refused(f"no recording {recording_id} on this device", "not_found")
        is_receipted = receipt_holds(self.state, recording_id,
                                     trusted_signing_keys(self.state), self.fingerprint,
                                     self._wall())
        if not is_receipted and not force:
            raise Refused(f"{recording_id} has no archive receipt yet: deleting it would "
                          "destroy the only copy. Collect it first, or add --force (logged).")
        delete_recording(self.state, recording_id, self.custody, reason,
                         extra={"receipted": is_receipted, "forced": force and not is_receipted,
                                "admin": admin, "via": "console"})
        return {"deleted": recording_id, "receipted": is_receipted,
                "forced": force and not is_receipted}

    def recipients(self) -> dict[str, Any]:
        return {"recipients": [{"fingerprint": r.fingerprint, "kem": r.kem}
                               for r in self.state.recipients()]}

    def recipients_add(self, document: dict[str, Any], admin: dict[str, Any]) -> dict[str, Any]:
        if document.get("type") == ORG_KEY_TYPE:
            raise Refused("that is the organisation's PRIVATE key: it must never be put on "
                          "the device; send org.pub")
        if document.get("type") != ORG_PUB_TYPE:
            raise Refused(f"expected an {ORG_PUB_TYPE!r} document", "usage")
        data = json.dumps(document, indent=1).encode() + b"\n"
        self.state.recipients_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Checked outside the recipients folder: the recorder reads every *.pub in it.
        tmp = self.state.root / ".incoming-recipient.json"
        atomic_write(tmp, data, 0o600)
        try:
            key = OrgPublicKey.load(tmp)
        except KeyMaterialError as exc:
            raise Refused(str(exc).replace(str(tmp), "the key"), "usage") from None
        finally:
            tmp.unlink(missing_ok=True)
        target = self.state.recipients_dir / f"{key.fingerprint[:16]}.pub"
        if target.exists():
            return {"fingerprint": key.fingerprint, "added": False}
        atomic_write(target, key.dumps(), 0o644, exclusive=True)
        self.custody.append("recipient_added", fingerprint=key.fingerprint, kem=key.kem,
                            admin=admin, via="console")
        return {"fingerprint": key.fingerprint, "added": True}

    def certificate_install(self, document: dict[str, Any],
                            admin: dict[str, Any]) -> dict[str, Any]:
        try:
            env = parse_envelope(document, "certificate")
        except TrustError as exc:
            raise Refused(str(exc), "usage") from None
        pub = self.state.device_public_key()
        if pub is None:
            raise Refused("this device has no identity yet (`akkoord keys init`)")
        trusted, revocations = self.trust()
        chain = check_device(env.to_json(), "ed25519", pub.raw, trusted, revocations,
                             self.clock_trusted_time())
        if not chain.anchored:
            raise Refused(f"certificate refused: {chain.status}: {chain.message}")
        data = json.dumps(env.to_json(), indent=1, ensure_ascii=False).encode() + b"\n"
        atomic_write(self.state.certificate_path, data, 0o644)
        self.custody.append("certificate_installed", serial=chain.serial,
                            organisation_fingerprint=chain.org_fingerprint,
                            organisation=chain.organisation, valid_until=chain.valid_until,
                            admin=admin, via="console")
        return {"certificate": chain.to_json()}

    def config_show(self) -> dict[str, Any]:
        return {"config": dataclasses.asdict(self.config)}
