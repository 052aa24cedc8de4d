"""`akkoord console` (the technician's side of the serial console) and `akkoord keys admin-new`.

Exit codes of `akkoord console` (docs/CONSOLE.md §6):
  0  the device did what was asked
  1  the device refused or failed (the reason is printed)
  2  bad usage, or a file that cannot be read
  4  no answer: the port cannot be opened, or nothing answers on it
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["register"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 4
_DOCUMENT_COMMANDS = {("certificate", "install"), ("recipients", "add")}


def _load_admin(args: argparse.Namespace) -> Any:
    from akkoord.console.auth import AdminKey
    from akkoord.trust import load_statement_file

    if not args.admin_key:
        return None
    key_path = Path(args.admin_key)
    cert_path = Path(args.admin_cert) if args.admin_cert else key_path.with_name(
        "admin.cert.json")
    key = AdminKey.load(key_path)
    cert = load_statement_file(cert_path).to_json()
    return key, cert


def _read_json(name: str) -> Any:
    from akkoord.errors import UsageError

    try:
        return json.loads(Path(name).read_bytes())
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{name}: not a JSON file") from None


def _prepare(words: list[str]) -> list[Any]:
    """Turn typed words into the request's `cmd`: files become their JSON (`certificate
    install FILE`, `recipients add FILE`, `head FILE`), `time set` with no time takes this
    computer's clock (UTC)."""
    from akkoord.errors import UsageError

    cmd: list[Any] = list(words)
    if tuple(words[:2]) in _DOCUMENT_COMMANDS:
        if len(words) != 3:
            raise UsageError(f"usage: {words[0]} {words[1]} FILE")
        cmd[2] = _read_json(words[2])
    if words[:1] == ["head"] and len(words) == 2:
        cmd[1] = _read_json(words[1])
    if words == ["time", "set"]:
        cmd.append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return cmd


def _print_human(cmd: list[Any], reply: dict[str, Any]) -> None:
    if not reply.get("ok"):
        err = reply.get("error") or {}
        print(f"refused ({err.get('code')}): {err.get('message')}", file=sys.stderr)
        return
    result = reply.get("result") or {}
    name = cmd[0] if cmd else ""
    if name == "list":
        print(f"{'recording':<34}{'start':<26}{'seconds':>9}  {'status':<12}copies  "
              "receipt  retention left")
        for r in result.get("recordings", []):
            left = r["retention_left_days"]
            print(f"{r['recording_id']:<34}{r['start'] or '-':<26}"
                  f"{r['duration_seconds'] if r['duration_seconds'] is not None else '-':>9}  "
                  f"{r['status']:<12}{r['copies'] if r['copies'] is not None else '?':>6}  "
                  f"{'yes' if r['receipted'] else 'no':<8} "
                  f"{'-' if left is None else f'{left} days'}")
        return
    if name == "status":
        _print_status(result)
        return
    if name == "verify":
        _print_verify(result)
        return
    if name == "help":
        for c in result.get("commands", []):
            print(f"{c['usage']:<46}{'(admin) ' if c['admin'] else ''}{c['summary']}")
        return
    if name == "log":
        for e in result.get("entries", []):
            detail = json.dumps(e.get("detail", {}), ensure_ascii=False)
            print(f"{e.get('seq'):>6}  {(e.get('time') or {}).get('utc', '-'):<25}"
                  f"{e.get('type'):<24}{e.get('recording_id') or '':<34}{detail}")
        return
    _print_tree(result, 0)


def _print_status(r: dict[str, Any]) -> None:
    from akkoord.store.keys import fingerprint_display

    clock, keys, last = r.get("clock") or {}, r.get("keys") or {}, r.get("last_recording")
    cert = keys.get("certificate")
    console = r.get("console") or {}
    rows = [
        ("state", r.get("state", "?") + (f" ({r['recording']})" if r.get("recording") else "")),
        ("faults", ", ".join(r.get("faults") or []) or "none"),
        ("free space", f"{r.get('free_minutes')} minutes of audio"),
        ("clock", f"{clock.get('utc')} ({clock.get('quality')})"
                  + ("  NOT SET: set it with `time set`" if clock.get("unset") else "")),
        ("device", fingerprint_display(keys.get("device") or "")),
        ("certificate", "none" if cert is None else
         f"{cert.get('status')}: {cert.get('label') or ''} {cert.get('message')}"
         + (f", until {cert['valid_until']}" if cert.get("valid_until") else "")),
        ("recipients", ", ".join(fingerprint_display(f)[:19] for f in keys.get("recipients", []))
         or "none: recording is refused"),
        ("trusted", ", ".join(t["name"] for t in keys.get("trusted_organisations", []))
         or "no organisation"),
        ("recordings", str(r.get("recordings"))),
        ("last", "-" if not last else
         f"{last['recording_id']} {last['status']} {last.get('start') or ''} "
         f"{last.get('duration_seconds') or '-'} s"),
        ("admin", console.get("administration", "?")
         + (f" (retry in {console['retry_after']} s)" if "retry_after" in console else "")),
        ("software", f"akkoord {r.get('akkoord')}"),
    ]
    for k, v in rows:
        print(f"{k:<12} {v}")


def _print_verify(result: dict[str, Any]) -> None:
    rep = result.get("report") or {}
    verdict = {0: "OK: genuine and unchanged, anchored to the organisation",
               1: "NOT OK: findings below",
               3: "OK: genuine and unchanged, but not anchored to a trusted organisation"}
    print(f"{rep.get('recording_id')}: {verdict.get(result.get('exit_code'), rep.get('status'))}")
    print(f"  status     {rep.get('status')}, {rep.get('duration_seconds')} s in "
          f"{rep.get('frames')} frames")
    for note in rep.get("notes") or []:
        print(f"  note: {note}")
    for f in rep.get("findings") or []:
        print(f"  FINDING {f.get('code')}: {f.get('message')}")


def _print_tree(value: Any, depth: int) -> None:
    pad = "  " * depth
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                print(f"{pad}{k}:")
                _print_tree(v, depth + 1)
            else:
                print(f"{pad}{k}: {'-' if v is None or v == [] or v == {} else v}")
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, dict | list):
                print(f"{pad}-")
                _print_tree(v, depth + 1)
            else:
                print(f"{pad}- {v}")
    else:
        print(f"{pad}{value}")


def _one(client: Any, words: list[str], as_json: bool) -> int:
    from akkoord.console.commands import CommandError, parse_command
    from akkoord.errors import UsageError

    try:
        cmd = _prepare(words)
        admin_needed = parse_command(cmd).admin
    except (UsageError, CommandError) as exc:
        print(f"akkoord console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if admin_needed and client.admin is None:
        print(f"akkoord console: {' '.join(words[:2])} needs an administrator: "
              "add --admin-key admin.key (with admin.cert.json beside it)", file=sys.stderr)
        return EXIT_USAGE
    reply = client.call(cmd, admin_needed=admin_needed)
    if as_json:
        json.dump(reply.get("result") if reply.get("ok") else reply, sys.stdout, indent=1,
                  ensure_ascii=False)
        sys.stdout.write("\n")
        if not reply.get("ok"):
            err = reply.get("error") or {}
            print(f"refused ({err.get('code')}): {err.get('message')}", file=sys.stderr)
    else:
        _print_human(cmd, reply)
    return EXIT_OK if reply.get("ok") else EXIT_REFUSED


def _interactive(client: Any, as_json: bool) -> int:
    import contextlib

    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    print("akkoord console: `help` lists the commands, `quit` ends.")
    last = EXIT_OK
    while True:
        try:
            line = input("akkoord> ")
        except EOFError:
            print()
            return last
        try:
            words = shlex.split(line)
        except ValueError as exc:
            print(f"akkoord console: {exc}", file=sys.stderr)
            continue
        if not words:
            continue
        if words[0] in ("quit", "exit"):
            return last
        last = _one(client, words, as_json)


def cmd_console(args: argparse.Namespace) -> int:
    from akkoord.console.client import ConsoleClient, ConsoleTimeout
    from akkoord.console.serial_port import open_port
    from akkoord.errors import AkkoordError

    try:
        admin = _load_admin(args)
    except AkkoordError as exc:
        print(f"akkoord console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        port = open_port(args.port, args.baud)
    except Exception as exc:  # pyserial raises SerialException / ValueError / OSError
        print(f"akkoord console: cannot open {args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        client = ConsoleClient(port, admin=admin, timeout=args.timeout)
        if args.words:
            return _one(client, args.words, args.json)
        return _interactive(client, args.json)
    except ConsoleTimeout as exc:
        print(f"akkoord console: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        port.close()


def cmd_keys_admin_new(args: argparse.Namespace) -> int:
    from akkoord.console.auth import AdminKey
    from akkoord.fsutil import atomic_write
    from akkoord.store.keys import fingerprint_display
    from akkoord.trust import OrgSigningKey, admin_certificate

    org = OrgSigningKey.load(Path(args.org_key))
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    out = Path(args.out)
    cert_path = out / "admin.cert.json"
    if cert_path.exists():
        print(f"akkoord: {cert_path} already exists; refusing to overwrite", file=sys.stderr)
        return EXIT_USAGE
    key = AdminKey.generate(args.name)
    now = int(time.time())
    cert = admin_certificate(org, args.name, "ed25519", key.signer.public_raw, roles,
                             valid_from=now - 300, valid_until=now + args.days * 86400,
                             issued=now)
    priv, pub = key.write_pair(out)
    atomic_write(cert_path, json.dumps(cert, indent=1, ensure_ascii=False).encode() + b"\n",
                 0o644, exclusive=True)
    print(f"admin key for {args.name}: {fingerprint_display(key.fingerprint)}")
    print(f"  private:     {priv}  (stays with the administrator; never on a device)")
    print(f"  public:      {pub}")
    print(f"  certificate: {cert_path}  (signed by {org.organisation}, roles "
          f"{', '.join(sorted(set(roles)))}, valid {args.days} days)")
    print(f"  use: akkoord console --port PORT --admin-key {priv} COMMAND …")
    return EXIT_OK


def _keys_subparsers(sub: Any) -> Any:
    keys = sub.choices["keys"]
    for action in keys._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the keys command has no subcommands")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("console", parents=[common],
                       help="talk to a device over its serial admin console")
    p.add_argument("--port", required=True, metavar="PORT",
                   help="serial device (/dev/ttyACM0, /dev/ttyUSB0) or pyserial URL")
    p.add_argument("--baud", type=int, default=115200, metavar="RATE")
    p.add_argument("--json", action="store_true", help="the answer as JSON")
    p.add_argument("--admin-key", metavar="FILE",
                   help="admin.key from `akkoord keys admin-new`, for admin commands")
    p.add_argument("--admin-cert", metavar="FILE",
                   help="its certificate (default: admin.cert.json beside the key)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND",
                   help="one command and its arguments; none: an interactive prompt")
    p.set_defaults(func=cmd_console)

    p = _keys_subparsers(sub).add_parser(
        "admin-new", parents=[common],
        help="make an administrator's key pair and certificate (organisation's computer)")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--name", required=True, help="the administrator's name")
    p.add_argument("--org-key", required=True, metavar="ORG_SIGNING_KEY",
                   help="org-signing.key (`akkoord keys org-new`)")
    p.add_argument("--days", type=int, default=365, help="validity (default 365)")
    p.add_argument("--roles", default="console", help="console and/or collect, comma-separated")
    p.set_defaults(func=cmd_keys_admin_new)
