"""Subcommands of the appliance's root helpers and the simulated configuration.

    akkoord clock-set-request TIME     ask the root clock helper to set the clock (UTC,
                                       YYYY-MM-DDTHH:MM:SSZ); prints its JSON answer
    akkoord clock-apply                root, akkoord-clock.service: apply one request
    akkoord stick-eject-requests       root, akkoord-eject.service: unmount what the daemon
                                       asked for after a copy
    akkoord simulate WORDS...          simulated configuration: a | b | press a | release b |
                                       unplug | plug, sent to the daemon's control socket

See akkoord.appliance and systemd/README.md ("Root helpers").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["register"]


def cmd_clock_set_request(args: argparse.Namespace) -> int:
    from akkoord.appliance import REQUESTS, write_clock_request

    answer = write_clock_request(args.time, requests=Path(args.requests or REQUESTS))
    print(json.dumps(answer, sort_keys=True))
    return 0


def cmd_clock_apply(args: argparse.Namespace) -> int:
    from akkoord.appliance import REQUESTS, apply_clock_request

    answer = apply_clock_request(requests=Path(args.requests or REQUESTS))
    if answer is None:
        print("no clock request")
        return 0
    print(json.dumps(answer, sort_keys=True))
    return 0 if answer.get("ok") else 1


def cmd_stick_eject_requests(args: argparse.Namespace) -> int:
    from akkoord.appliance import REQUESTS, process_eject_requests
    from akkoord.export.stick import DEFAULT_ROOT

    for name in process_eject_requests(requests=Path(args.requests or REQUESTS),
                                       root=Path(args.mount_root or DEFAULT_ROOT)):  # fmt: skip
        print(f"unmounted {name}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from akkoord.control import DEFAULT_SOCKET, send_command

    send_command("sim", " ".join(args.words), Path(args.socket) if args.socket else DEFAULT_SOCKET)
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("clock-set-request", parents=[common],
                       help="ask the root clock helper to set the clock (UTC)")  # fmt: skip
    p.add_argument("time", metavar="TIME", help="YYYY-MM-DDTHH:MM:SSZ, in UTC")
    p.add_argument("--requests", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_clock_set_request)

    p = sub.add_parser("clock-apply", parents=[common],
                       help="root helper: apply a clock request")  # fmt: skip
    p.add_argument("--requests", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_clock_apply)

    p = sub.add_parser("stick-eject-requests", parents=[common],
                       help="root helper: unmount sticks after a copy")  # fmt: skip
    p.add_argument("--requests", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--mount-root", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_stick_eject_requests)

    p = sub.add_parser("simulate", parents=[common],
                       help="simulated configuration: mock buttons")  # fmt: skip
    p.add_argument("words", nargs="+", metavar="WORD",
                   help="a | b | press a|b | release a|b | unplug | plug")  # fmt: skip
    p.add_argument("--socket", metavar="PATH", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_simulate)
