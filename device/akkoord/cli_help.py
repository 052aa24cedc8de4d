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
    "keys certify": ["akkoord keys certify device.pub --org-key ~/org/org-signing.key "
                     "--label 'Noord, kamer 2' --out device.cert.json"],
    "keys install-certificate": ["akkoord keys install-certificate device.cert.json"],
    "keys trust": ["akkoord keys trust ~/org/org-signing.pub"],
    "keys revoke": ["akkoord keys revoke --org-key ~/org/org-signing.key "
                    "--certificate device.cert.json --reason device_lost --out revoked.json"],
    "keys publish-page": ["akkoord keys publish-page --org-key ~/org/org-signing.pub "
                          "--out controle.html"],
    "keys admin-new": ["akkoord keys admin-new --out ~/admin --name 'J. de Vries' "
                       "--org-key ~/org/org-signing.key --roles console,collect"],
    "console": [
        "akkoord console --port /dev/ttyACM0 status",
        "akkoord console --port /dev/ttyACM0 --admin-key ~/admin/admin.key "
        "--admin-cert ~/admin/admin.cert.json time set 2026-11-29T14:00:00Z",
        "akkoord console --port /dev/ttyUSB0          # an interactive prompt",
    ],
    "clock-set-request": ["akkoord clock-set-request 2026-11-29T14:00:00Z   "
                          "# the console's `time set` does this"],
    "clock-apply": ["akkoord clock-apply          # run by akkoord-clock.service (root)"],
    "stick-eject-requests": ["akkoord stick-eject-requests   # run by akkoord-eject.service"],
    "simulate-microphone": ["akkoord simulate-microphone /var/lib/akkoord/mic.wav --seconds 600"],
    "simulate": ["akkoord simulate a", "akkoord simulate press b", "akkoord simulate unplug"],
    "archive init": ["akkoord archive init /srv/archief --organisation 'Jeugdzorg Noord' "
                     "--trust ~/org/org-signing.pub --recipient ~/org/org.pub "
                     "--ledger /mnt/worm/archief-ledger.log"],
    "archive ledger": ["akkoord archive ledger /mnt/worm/archief-ledger.log --archive /srv/archief "
                       "--signing-key ~/org/org-signing.key"],
    "archive restore": ["akkoord archive restore --archive /srv/archief   "
                        "# after restoring /srv/archief from a backup"],
    "archive ingest": ["akkoord archive ingest /media/stick --archive /srv/archief "
                       "--signing-key ~/org/org-signing.key"],
    "archive list": ["akkoord archive list --archive /srv/archief --limit 20"],
    "archive search": ["akkoord archive search --archive /srv/archief --device 'kamer 2' "
                       "--since 2026-11-01T00:00:00Z --min-duration 600"],
    "archive show": ["akkoord archive show 3f2a9c1e --archive /srv/archief"],
    "archive export": ["akkoord archive export 3f2a9c1e --archive /srv/archief "
                       "--key ~/org/org.key --signing-key ~/org/org-signing.key "
                       "--to /media/stick --for ouder"],
    "archive decrypt": ["akkoord archive decrypt 3f2a9c1e --archive /srv/archief "
                        "--key ~/org/org.key --out opname.wav"],
    "archive delete": ["akkoord archive delete 3f2a9c1e --archive /srv/archief "
                       "--signing-key ~/org/org-signing.key --reason 'AVG-verzoek' --yes"],
    "archive verify": ["akkoord archive verify --archive /srv/archief"],
    "archive token": ["akkoord archive token --signing-key ~/org/org-signing.key "
                      "--device b7e2a04ced5b... --days 7 --out /media/stick"],
}

#: Argument name -> help, where the parser builder gave none and the name means the same in
#: every command.
_ARG_HELP = {
    "json": "print JSON (one document) instead of text",
    "key": "the organisation's private key file (org.key)",
    "device_key": "the device public key file (device.pub) the recording must be signed by",
    "reason": "why, for the custody log",
    "socket": argparse.SUPPRESS,
}

_RECORDING = "a recording folder, its id or the first digits of its id (`akkoord list`)"
#: (command, argument) -> help, where the meaning depends on the command.
_COMMAND_ARG_HELP = {
    ("verify", "path"): _RECORDING + ", or a copy folder or its opname.wav",
    ("decrypt", "path"): _RECORDING,
    ("inspect", "path"): _RECORDING,
    ("export", "recording"): _RECORDING,
    ("export", "to"): "an existing folder, e.g. a mounted stick; it is never created",
    ("decrypt", "out"): "the WAV file to write (a new file; --force to replace one)",
    ("delete", "recording_id"): "the recording's full id (32 hex digits; `akkoord list`)",
    ("keys org-new", "out"): "a folder for the new key files (made if missing)",
    ("keys add-recipient", "file"): "the organisation's public key file (org.pub)",
    ("keys trust", "file"): "the organisation's signing public key (org-signing.pub)",
    ("keys install-certificate", "file"):
        "the device certificate (made by `akkoord keys certify`)",
    ("keys certify", "device_pub"): "the device's public key file (device.pub)",
    ("keys certify", "org_key"): "the organisation's signing key (org-signing.key)",
    ("keys certify", "out"): "the certificate file to write",
    ("keys revoke", "org_key"): "the organisation's signing key (org-signing.key)",
    ("keys revoke", "serial"): "the serial number of the certificate to revoke",
    ("keys revoke", "certificate"): "the certificate file to revoke",
    ("keys revoke", "out"): "the new revocation list to write",
    ("keys publish-page", "revocations"): "the organisation's current revocation list",
    ("keys publish-page", "out"): "the page to write, for the organisation's website",
    ("stick", "change"): "added or removed",
    ("keys admin-new", "out"): "a folder for admin.key, admin.pub and admin.cert.json",
    ("simulate-microphone", "out"): "the WAV file the simulated microphone plays",
    ("simulate-microphone", "seconds"): "how many seconds of audio to write",
    ("console", "baud"): "the serial line's speed (default 115200)",
    ("console", "timeout"): "seconds to wait for the device's answer",
    ("archive init", "dir"): "the folder for the archive (objects and index)",
    ("archive init", "organisation"): "the organisation's name, as on its certificates",
    ("archive init", "trust"): "the organisation signing public key (org-signing.pub)",
    ("archive init", "recipient"): "the organisation's public key recordings are wrapped to "
                                   "(org.pub)",
    ("archive init", "signing_key"): "the organisation signing key for receipts and the log",
    ("archive init", "certificate"): "an admin certificate, when an admin key signs instead",
    ("archive init", "ledger"): "a file OUTSIDE the archive and its backups that keeps a copy "
                                "of the organisation's log, so a restore cannot undo a deletion",
    ("archive ledger", "file"): "the ledger file to start, outside the archive and its backups",
    ("archive ledger", "signing_key"): "the organisation signing key (default: as at init)",
    ("archive restore", "ledger"): "the ledger to replay (default: the one set at init)",
    ("archive ingest", "source"): "a collection stick or a folder copied from one",
    ("archive show", "recording_id"): "the recording's id or the first digits of it",
    ("archive export", "recording_id"): "the recording's id or the first digits of it",
    ("archive export", "to"): "an existing folder, e.g. a mounted stick",
    ("archive decrypt", "recording_id"): "the recording's id or the first digits of it",
    ("archive decrypt", "out"): "the WAV file to write",
    ("archive delete", "recording_id"): "the recording's full id",
    ("archive token", "signing_key"): "the organisation signing key (or an admin key)",
    ("archive token", "certificate"): "the admin certificate, when an admin key signs",
    ("archive token", "device"): "the fingerprint of a device the token is for (repeatable)",
    ("archive token", "days"): "how many days the token stays valid",
    ("archive token", "out"): "the token file, or a stick folder to put it on",
}
for _cmd in ("archive list", "archive search"):
    _COMMAND_ARG_HELP |= {
        (_cmd, "min_duration"): "only recordings at least this many seconds long",
        (_cmd, "max_duration"): "only recordings at most this many seconds long",
        (_cmd, "status"): "only recordings with this status",
        (_cmd, "limit"): "show at most this many",
        (_cmd, "offset"): "skip this many first (for paging)",
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
