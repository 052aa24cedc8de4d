"""The console's commands as data: parse a request's `cmd` array into a `Command` (pure).

`cmd` is a JSON array: words and flags as strings; a document the host read from a file (a
certificate, a public key) as a JSON object in its place. Parsing knows nothing of the device:
it only decides what is asked and whether it needs an administrator (docs/CONSOLE.md §4).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from akkoord.errors import UsageError

__all__ = ["COMMANDS", "Command", "CommandError", "Spec", "help_rows", "parse_command"]

_RID = re.compile(r"^[0-9a-f]{32}$")
_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MAX_WORDS = 16
MAX_REASON = 500


class CommandError(UsageError):
    """The request names no command, or its arguments do not fit the command."""


@dataclass(frozen=True)
class Command:
    name: str  # "status", "time set", ...
    admin: bool
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    name: str
    admin: bool
    usage: str
    summary: str
    parse: Callable[[list[Any]], dict[str, Any]]


def _no_args(rest: list[Any]) -> dict[str, Any]:
    if rest:
        raise CommandError(f"takes no arguments, got {_show(rest[0])}")
    return {}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else type(value).__name__
    return repr(text[:40])


def _flags(rest: list[Any], with_value: set[str], bare: set[str]) -> tuple[list[str], dict]:
    positional: list[str] = []
    flags: dict[str, Any] = {}
    it = iter(rest)
    for word in it:
        if not isinstance(word, str):
            raise CommandError(f"expected a word, got {_show(word)}")
        if word in with_value:
            value = next(it, None)
            if not isinstance(value, str):
                raise CommandError(f"{word} needs a value")
            flags[word] = value
        elif word in bare:
            flags[word] = True
        elif word.startswith("--"):
            raise CommandError(f"unknown option {word!r}")
        else:
            positional.append(word)
    return positional, flags


def _recording_id(word: str) -> str:
    if not _RID.match(word):
        raise CommandError(f"{word[:40]!r} is not a recording id (32 hex digits)")
    return word


def _count(flags: dict[str, Any], name: str, lo: int, hi: int, default: int | None) -> int | None:
    if name not in flags:
        return default
    try:
        value = int(flags[name])
    except ValueError:
        raise CommandError(f"{name} takes a whole number") from None
    if not lo <= value <= hi:
        raise CommandError(f"{name} must be between {lo} and {hi}")
    return value


def _head(rest: list[Any]) -> dict[str, Any]:
    if not rest:
        return {"held": None}
    if len(rest) != 1 or not isinstance(rest[0], dict):
        raise CommandError("usage: head [CUSTODY_HEAD] (the host sends custody-head.json)")
    return {"held": rest[0]}


def _verify(rest: list[Any]) -> dict[str, Any]:
    pos, _ = _flags(rest, set(), set())
    if len(pos) != 1:
        raise CommandError("usage: verify RECORDING_ID")
    return {"recording_id": _recording_id(pos[0])}


def _log(rest: list[Any]) -> dict[str, Any]:
    pos, flags = _flags(rest, {"--since", "--limit"}, set())
    if pos:
        raise CommandError("usage: log [--since SEQ] [--limit N]")
    return {
        "since": _count(flags, "--since", 0, 2**62, None),
        "limit": _count(flags, "--limit", 1, 1000, 100),
    }


def _time_set(rest: list[Any]) -> dict[str, Any]:
    pos, _ = _flags(rest, set(), set())
    if len(pos) != 1 or not _UTC.match(pos[0]):
        raise CommandError("usage: time set YYYY-MM-DDTHH:MM:SSZ (UTC)")
    return {"utc": pos[0]}


def _retention_set(rest: list[Any]) -> dict[str, Any]:
    pos, _ = _flags(rest, set(), set())
    if len(pos) != 1 or not pos[0].isdigit() or not 1 <= int(pos[0]) <= 36500:
        raise CommandError("usage: retention set DAYS (1 to 36500)")
    return {"days": int(pos[0])}


def _delete(rest: list[Any]) -> dict[str, Any]:
    pos, flags = _flags(rest, {"--reason"}, {"--force"})
    if len(pos) != 1 or not flags.get("--reason", "").strip():
        raise CommandError("usage: delete RECORDING_ID --reason TEXT [--force]")
    reason = flags["--reason"].strip()
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise CommandError(f"--reason: printable text of at most {MAX_REASON} characters")
    return {"recording_id": _recording_id(pos[0]), "reason": reason,
            "force": bool(flags.get("--force"))}


def _document(rest: list[Any], usage: str) -> dict[str, Any]:
    if len(rest) != 1 or not isinstance(rest[0], dict):
        raise CommandError(f"usage: {usage} (the host sends the file's JSON)")
    return {"document": rest[0]}


COMMANDS: tuple[Spec, ...] = (
    Spec("hello", False, "hello", "protocol version, software version, device fingerprint",
         _no_args),
    Spec("help", False, "help", "this list", _no_args),
    Spec("status", False, "status",
         "state, faults, free space, clock, keys and certificate, last recording", _no_args),
    Spec("list", False, "list", "recordings: start, duration, copies, receipts, retention left",
         _no_args),
    Spec("verify", False, "verify RECORDING_ID", "check a recording's structure, chain and "
         "signatures (no audio is decrypted)", _verify),
    Spec("log", False, "log [--since SEQ] [--limit N]", "custody log entries", _log),
    Spec("head", False, "head [CUSTODY_HEAD]", "the custody head; given the head a party's "
         "copy holds (custody-head.json), whether this device's log still contains it", _head),
    Spec("challenge", False, "challenge", "a fresh nonce for an administrator to sign",
         _no_args),
    Spec("time set", True, "time set YYYY-MM-DDTHH:MM:SSZ", "set the clock (UTC)", _time_set),
    Spec("retention show", True, "retention show", "how long recordings are kept", _no_args),
    Spec("retention set", True, "retention set DAYS", "change the retention period",
         _retention_set),
    Spec("delete", True, "delete RECORDING_ID --reason TEXT [--force]",
         "crypto-shred a recording (refused before the archive's receipt unless --force)",
         _delete),
    Spec("recipients", True, "recipients", "organisation keys new recordings are wrapped to",
         _no_args),
    Spec("recipients add", True, "recipients add ORG_PUB", "add an organisation public key",
         lambda rest: _document(rest, "recipients add ORG_PUB")),
    Spec("certificate install", True, "certificate install CERT",
         "install this device's certificate",
         lambda rest: _document(rest, "certificate install CERT")),
    Spec("config show", True, "config show", "the configuration the daemon runs with",
         _no_args),
)
_BY_NAME = {s.name: s for s in COMMANDS}


def parse_command(cmd: Any) -> Command:
    if not isinstance(cmd, list) or not cmd:
        raise CommandError("`cmd` must be a non-empty array of words")
    if len(cmd) > MAX_WORDS:
        raise CommandError(f"at most {MAX_WORDS} words")
    if not isinstance(cmd[0], str):
        raise CommandError("a command starts with a word")
    two = f"{cmd[0]} {cmd[1]}" if len(cmd) > 1 and isinstance(cmd[1], str) else None
    spec = _BY_NAME.get(two) if two else None
    rest = cmd[2:] if spec else cmd[1:]
    spec = spec or _BY_NAME.get(cmd[0])
    if spec is None:
        raise CommandError(f"unknown command {cmd[0][:40]!r}; `help` lists the commands")
    try:
        return Command(spec.name, spec.admin, spec.parse(list(rest)))
    except CommandError as exc:
        raise CommandError(f"{spec.name}: {exc}") from None


def help_rows() -> list[dict[str, Any]]:
    return [{"usage": s.usage, "admin": s.admin, "summary": s.summary} for s in COMMANDS]
