"""The console's dispatcher: one request payload in, one reply payload out.

Runs on the console's own thread, never on the recorder's loop. Everything a request can do
is decided here, in order: protocol version, command and arguments (commands.py), the
administrator's proof for admin commands (gate.py + auth.py, audited in the custody log), then
the handler (device.py). Nothing a host sends can raise out of `handle`: a failure becomes an
error reply, so the daemon never dies of its console.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from akkoord.console import gate as g
from akkoord.console.auth import AuthFailure, check_proof, nonce
from akkoord.console.commands import Command, CommandError, help_rows, parse_command
from akkoord.console.device import ConsoleDevice, Refused
from akkoord.console.protocol import PROTOCOL_VERSION
from akkoord.errors import AkkoordError

__all__ = ["ConsoleService"]

log = logging.getLogger(__name__)
_MAX_ID = 64


def _error(rid: Any, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": rid, "ok": False,
            "error": {"code": code, "message": message, **extra}}


def _jsonable(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=str))


class ConsoleService:
    def __init__(
        self,
        device: ConsoleDevice,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        make_nonce: Callable[[], str] = nonce,
    ) -> None:
        self.device = device
        self.monotonic = monotonic
        self.make_nonce = make_nonce
        self.gate = g.Gate()

    def handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        rid = payload.get("id")
        if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool))
                or (isinstance(rid, str) and len(rid) <= _MAX_ID)):
            rid = None
        if payload.get("v") != PROTOCOL_VERSION:
            return _error(rid, "version", f"this device speaks protocol {PROTOCOL_VERSION}, "
                          f"the request says {str(payload.get('v'))[:20]!r}")
        try:
            command = parse_command(payload.get("cmd"))
            result = self._run(command, payload)
        except CommandError as exc:
            return _error(rid, "usage", str(exc))
        except _Unauthorised as exc:
            return _error(rid, "unauthorised", str(exc), **exc.extra)
        except Refused as exc:
            return _error(rid, exc.code, str(exc))
        except AkkoordError as exc:
            return _error(rid, "failed", str(exc))
        except Exception as exc:  # a bug must cost one reply, never the daemon
            log.exception("console: %s failed", payload.get("cmd"))
            return _error(rid, "internal", f"internal error ({type(exc).__name__})")
        return {"v": PROTOCOL_VERSION, "id": rid, "ok": True, "result": _jsonable(result)}

    # -- authentication -------------------------------------------------------------------------

    def _step(self, event: g.Event) -> list[g.Action]:
        self.gate, actions = g.step(self.gate, event)
        for a in actions:
            if isinstance(a, g.Audit):
                self.device.custody.append(a.kind, **a.detail)
        return actions

    def _gate_status(self) -> dict[str, Any]:
        t = self.monotonic()
        state = self.gate.state(t)
        out: dict[str, Any] = {"administration": str(state)}
        if state is g.GateState.LOCKED:
            out["retry_after"] = round(self.gate.locked_until - t)
        return out

    def _challenge(self) -> dict[str, Any]:
        for a in self._step(g.Asked(self.monotonic(), self.make_nonce())):
            if isinstance(a, g.Issue):
                return {"nonce": a.nonce, "expires_in": a.expires_in,
                        "device_fingerprint": self.device.fingerprint}
            if isinstance(a, g.Refuse):
                raise _Unauthorised(a.reason, retry_after=a.retry_after)
        raise AssertionError("the gate neither issued nor refused")

    def _authorise(self, command: Command, payload: dict[str, Any]) -> dict[str, Any]:
        auth = payload.get("auth")
        if auth is None:
            raise _Unauthorised(f"{command.name} needs an administrator: ask for a "
                                "`challenge` and sign it (akkoord console --admin-key)")
        n = auth.get("nonce") if isinstance(auth, dict) else None
        actions = self._step(g.Presented(self.monotonic(), str(n)[:64], command.name))
        for a in actions:
            if isinstance(a, g.Refuse):
                raise _Unauthorised(a.reason, retry_after=a.retry_after)
        trusted, revocations = self.device.trust()
        try:
            admin: dict[str, Any] | None = check_proof(
                auth, payload["cmd"], self.device.fingerprint, trusted, revocations,
                self.device.clock_trusted_time())
            why, claimed = "", None
        except AuthFailure as exc:  # the reason may quote the host's bytes: keep it short
            admin, why, claimed = None, exc.why[:300], exc.claimed
        if admin is not None and self.device.clock_unset():
            admin["clock_unset"] = True
        for a in self._step(g.Checked(self.monotonic(), command.name, admin, why, claimed)):
            if isinstance(a, g.Allow):
                return a.admin
            if isinstance(a, g.Refuse):
                raise _Unauthorised(a.reason, retry_after=a.retry_after)
        raise AssertionError("the gate neither allowed nor refused")

    # -- commands -------------------------------------------------------------------------------

    def _run(self, command: Command, payload: dict[str, Any]) -> dict[str, Any]:
        d, a = self.device, command.args
        if command.name == "challenge":
            return self._challenge()
        admin = self._authorise(command, payload) if command.admin else {}
        match command.name:
            case "hello":
                return d.hello()
            case "help":
                return {"commands": help_rows()}
            case "status":
                return {**d.status(), "console": self._gate_status()}
            case "list":
                return d.list()
            case "verify":
                return d.verify(a["recording_id"])
            case "log":
                return d.log(a["since"], a["limit"])
            case "head":
                return d.head(a["held"])
            case "time set":
                return d.time_set(a["utc"], admin)
            case "retention show":
                return d.retention_show()
            case "retention set":
                return d.retention_set(a["days"], admin)
            case "delete":
                return d.delete(a["recording_id"], a["reason"], a["force"], admin)
            case "recipients":
                return d.recipients()
            case "recipients add":
                return d.recipients_add(a["document"], admin)
            case "certificate install":
                return d.certificate_install(a["document"], admin)
            case "config show":
                return d.config_show()
        raise CommandError(f"no handler for {command.name}")


class _Unauthorised(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.extra = {"retry_after": round(retry_after)} if retry_after is not None else {}
