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


def cmd_simulate_microphone(args: argparse.Namespace) -> int:
    """A WAV for the simulated configuration: a quiet 440 Hz tone (then the file ends and
    the WAV microphone delivers silence)."""
    import math
    import struct
    import wave

    from akkoord.audio.config import AudioConfig

    rate = AudioConfig().sample_rate
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        period = [int(3000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(rate // 10)]
        block = struct.pack(f"<{len(period)}h", *period)  # 0.1 s, a whole number of periods
        for _ in range(int(args.seconds * 10)):
            w.writeframes(block)
    tmp.replace(out)
    print(out)
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

    p = sub.add_parser("simulate-microphone", parents=[common],
                       help="write the simulated configuration's WAV microphone")  # fmt: skip
    p.add_argument("out", metavar="FILE.wav")
    p.add_argument("--seconds", type=float, default=60.0)
    p.set_defaults(func=cmd_simulate_microphone)

    p = sub.add_parser("simulate", parents=[common],
                       help="simulated configuration: mock buttons")  # fmt: skip
    p.add_argument("words", nargs="+", metavar="WORD",
                   help="a | b | press a|b | release a|b | unplug | plug")  # fmt: skip
    p.add_argument("--socket", metavar="PATH", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_simulate)
