"""The console's authentication gate: pure data in, pure data out (the shape of consent.py).

``step(gate, event) -> (gate, actions)``. No I/O, no clock and no randomness: every event
carries its time ``t`` (monotonic seconds) and the adapter supplies fresh nonces. The adapter
checks signatures when asked (``CheckProof``) and reports back with ``Checked``; it writes the
``Audit`` actions to the custody log and sends ``Reply`` / ``Refuse`` to the host.

One gate per device, not per connection: a second cable, or reconnecting, must not reset the
count of failures. States (``Gate.locked_until`` decides which)::

               Asked -> Issue(nonce)              5 failures within 300 s
  +------+     Presented(known nonce) -> CheckProof   +--------+
  | OPEN | ------------------------------------------> | LOCKED |
  +------+ <------------------------------------------ +--------+
                      300 s after the fifth failure

Rules:

* A nonce is issued by ``Asked``, lives ``NONCE_TTL_S`` (60 s: long enough to sign by hand on
  a laptop, short enough that a captured challenge is useless soon), and is spent by the first
  ``Presented`` that names it, whatever the outcome: a replayed proof always meets a spent
  nonce. At most ``MAX_OUTSTANDING`` nonces are live; asking for more forgets the oldest, so
  asking in a loop costs the device a bounded table.
* A proof naming an unknown, spent or expired nonce is a failure (a replay, or a slow hand),
  as is a proof that does not check. Every failure is audited (``console_auth_failed``) and
  counted; ``MAX_FAILURES`` within ``FAILURE_WINDOW_S`` lock the gate for ``LOCK_S``. While
  locked, challenges and proofs are refused *without* an audit entry or a signature check:
  a flood must cost neither custody-log space nor CPU (the entry that locked says for how long).
* Every success is audited (``console_auth``) and resets nothing: failures age out on their own,
  so a valid administrator cannot launder an attacker's attempts.
* Time never runs backwards inside the gate: an event stamped earlier than the last one is
  handled at the last one's time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "FAILURE_WINDOW_S",
    "LOCK_S",
    "MAX_FAILURES",
    "MAX_OUTSTANDING",
    "NONCE_TTL_S",
    "Action",
    "Allow",
    "Asked",
    "Audit",
    "CheckProof",
    "Checked",
    "Event",
    "Gate",
    "GateState",
    "Issue",
    "Presented",
    "Refuse",
    "step",
]

NONCE_TTL_S = 60.0
MAX_OUTSTANDING = 4
MAX_FAILURES = 5
FAILURE_WINDOW_S = 300.0
LOCK_S = 300.0


class GateState(StrEnum):
    OPEN = "open"
    LOCKED = "locked"


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Asked:
    """The host asks for a challenge; `nonce` is fresh randomness from the adapter."""

    t: float
    nonce: str


@dataclass(frozen=True, slots=True)
class Presented:
    """An administrator's proof arrives for `nonce` (`command` names what it authorises)."""

    t: float
    nonce: str
    command: str


@dataclass(frozen=True, slots=True)
class Checked:
    """The adapter checked the proof `CheckProof` asked for: `admin` on success, else `why`."""

    t: float
    command: str
    admin: dict[str, Any] | None
    why: str = ""
    claimed: dict[str, Any] | None = None  # who the proof says it is, when that was readable


Event = Asked | Presented | Checked


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Issue:
    nonce: str
    expires_in: float


@dataclass(frozen=True, slots=True)
class CheckProof:
    nonce: str


@dataclass(frozen=True, slots=True)
class Allow:
    admin: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Refuse:
    reason: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Audit:
    """Append to the custody log: `kind` is console_auth or console_auth_failed."""

    kind: str
    detail: dict[str, Any]


Action = Issue | CheckProof | Allow | Refuse | Audit


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Gate:
    nonces: tuple[tuple[str, float], ...] = ()  # live (nonce, issued at), oldest first
    failures: tuple[float, ...] = ()  # times of failures inside the window
    locked_until: float = 0.0
    last_t: float = float("-inf")

    def locked(self, t: float) -> bool:
        return t < self.locked_until

    def state(self, t: float) -> GateState:
        return GateState.LOCKED if self.locked(t) else GateState.OPEN


def _fail(gate: Gate, t: float, command: str, why: str, admin: dict[str, Any] | None
          ) -> tuple[Gate, list[Action]]:
    failures = (*(f for f in gate.failures if t - f < FAILURE_WINDOW_S), t)
    detail: dict[str, Any] = {"command": command, "reason": why}
    if admin:
        detail["admin"] = admin
    locked_until = gate.locked_until
    if len(failures) >= MAX_FAILURES:
        locked_until = t + LOCK_S
        failures = ()
        detail["locked_seconds"] = LOCK_S
    gate = replace(gate, failures=failures, locked_until=locked_until)
    return gate, [Audit("console_auth_failed", detail), Refuse(f"not authorised: {why}")]


def step(gate: Gate, event: Event) -> tuple[Gate, list[Action]]:
    t = max(event.t, gate.last_t)
    live = tuple((n, at) for n, at in gate.nonces if t - at < NONCE_TTL_S)
    gate = replace(gate, last_t=t, nonces=live)
    if gate.locked(t) and not isinstance(event, Checked):
        wait = gate.locked_until - t
        return gate, [Refuse(f"too many failed authentications; try again in {wait:.0f} s",
                             retry_after=wait)]
    if isinstance(event, Asked):
        nonces = (*live, (event.nonce, t))[-MAX_OUTSTANDING:]
        return replace(gate, nonces=nonces), [Issue(event.nonce, NONCE_TTL_S)]
    if isinstance(event, Presented):
        if all(n != event.nonce for n, _ in live):
            return _fail(gate, t, event.command, "unknown, spent or expired nonce", None)
        gate = replace(gate, nonces=tuple((n, at) for n, at in live if n != event.nonce))
        return gate, [CheckProof(event.nonce)]
    if event.admin is None:
        return _fail(gate, t, event.command, event.why or "proof does not check", event.claimed)
    detail = {"command": event.command, "admin": event.admin}
    return gate, [Audit("console_auth", detail), Allow(event.admin)]
