"""`--help` for every command: each argument described, and an example to copy.

Kept apart from the parser builder so commands can be added without touching these texts;
`apply_help` fills in what an `add_argument` left without help, by the argument's name.
"""

from __future__ import annotations

import argparse

__all__ = ["EXAMPLES", "apply_help"]

#: command path (as typed after `akkoord`) -> example lines.
EXAMPLES: dict[str, list[str]] = {
    "keys init": ["akkoord keys init --state /var/lib/akkoord"],
    "keys org-new": ["akkoord keys org-new --out ~/org"],
    "keys add-recipient": ["akkoord keys add-recipient ~/org/org.pub"],
    "keys show": ["akkoord keys show", "akkoord keys show --json"],
    "verify": [
        "akkoord verify /media/stick/akkoord-20261129-1422-3f2a9c1e-kopie1",
        "akkoord verify 3f2a9c1e                       # a recording on this device, by id",
        "akkoord verify 3f2a9c1e --key ~/org/org.key   # and every second of its audio",
    ],
    "export": ["akkoord export 3f2a9c1e --key ~/org/org.key --to /media/stick"],
    "inspect": ["akkoord inspect 3f2a9c1e --json"],
    "decrypt": ["akkoord decrypt 3f2a9c1e --key ~/org/org.key --out opname.wav"],
    "list": ["akkoord list", "akkoord list --json --state /var/lib/akkoord"],
    "recover": ["akkoord recover --state /var/lib/akkoord"],
    "delete": [
        "akkoord delete 3f2a9c1e0b7d4e5f8a9b0c1d2e3f4a5b --reason 'bewaartermijn verstreken' --yes"
    ],
    "custody": ["akkoord custody", "akkoord custody --entries", "akkoord custody --json"],
    "run": [
        "akkoord run                                   # the service (systemd runs this)",
        "akkoord run --simulate --audio-file device/akkoord/assets/demo/gesprek.wav <<'EOF'",
        "a",
        "b",
        "sleep 3",
        "b",
        "EOF",
    ],
    "stick": ["akkoord stick added /dev/sda1          # what the udev rule runs"],
    "bench": ["akkoord bench --quick", "akkoord bench --json"],
}

#: Argument name -> help, where the parser builder gave none.
_ARG_HELP = {
    "json": "print JSON (one document) instead of text",
    "path": "a recording folder, its id or the first digits of its id (`akkoord list`), "
    "or a copy folder or its opname.wav",
    "recording": "a recording folder, its id or the first digits of its id (`akkoord list`)",
    "recording_id": "the recording's full id (32 hex digits; `akkoord list`)",
    "key": "the organisation's private key file (org.key)",
    "out": "where to write (a new file; --force to replace one)",
    "to": "an existing folder, e.g. a mounted stick; it is never created",
    "device_key": "the device public key file (device.pub) the recording must be signed by",
    "file": "the organisation's public key file (org.pub)",
    "reason": "why, for the custody log",
    "change": "added or removed",
    "socket": argparse.SUPPRESS,
}


_RECORDING_ONLY = ("a recording folder, its id or the first digits of its id "
                   "(`akkoord list`)")
#: (command, argument) -> help, where the generic text above would say too much.
_COMMAND_ARG_HELP = {
    ("decrypt", "path"): _RECORDING_ONLY,
    ("inspect", "path"): _RECORDING_ONLY,
}


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((name, sub))
                found += [(f"{name} {n}", p) for n, p in _subparsers(sub)]
    return found


def apply_help(parser: argparse.ArgumentParser) -> None:
    for name, sub in _subparsers(parser):
        for action in sub._actions:
            if action.help is None:
                action.help = _COMMAND_ARG_HELP.get((name, action.dest),
                                                    _ARG_HELP.get(action.dest))
        examples = EXAMPLES.get(name)
        if examples:
            sub.epilog = "example:\n" + "\n".join(f"  {line}" for line in examples)
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
