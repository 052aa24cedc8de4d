"""`akkoord custody`: the custody log, the state folder against it, and heads held elsewhere.

    akkoord custody [--json] [--entries]     log intact? state folder consistent with it?
    akkoord custody --check-head FILE        a copy's custody-head.json: still in the log?
    akkoord custody --org-log LOG --trust ORG_SIGNING_PUB [--check-head FILE]
                                             the organisation's own log of its copies

Exit codes: 0 intact / contained, 1 findings (a dropped tail, a fork, a deleted folder…),
2 unreadable input or bad usage. FORMAT.md §11.3 says what each check can and cannot see.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from akkoord.errors import AkkoordError

__all__ = ["register"]


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


def cmd_custody(args: argparse.Namespace) -> int:
    from akkoord.cli_support import (
        ensure_state_exists,
        print_custody_entries,
        read_custody_entries,
    )
    from akkoord.store.layout import StateDir, state_from_env
    from akkoord.store.safeio import check_name
    from akkoord.store.statecheck import check_head, check_state

    if args.org_log:
        return _org_log(args)
    state = StateDir(state_from_env(getattr(args, "state", None)))
    ensure_state_exists(state)
    pub = state.device_public_key()
    if pub is None:
        raise AkkoordError(f"no device public key in {state.keys_dir}")
    if args.check_head:
        result = check_head(state, pub, check_name(args.check_head))
        if args.json:
            _print_json(result.to_json())
        else:
            print(f"{args.check_head}: {'OK' if result.ok else 'NOT OK'}: {result.message}")
        return 0 if result.ok else 1
    report = check_state(state, pub)
    entries = read_custody_entries(state.custody_path) if args.entries else None
    if args.json:
        doc = report.to_json()
        if entries is not None:
            doc["log"] = entries
        _print_json(doc)
    else:
        if entries is not None:
            print_custody_entries(entries)
        print(
            f"{state.custody_path}: {report.entries} entries, {report.recordings} recordings, "
            + ("intact" if report.ok else f"{len(report.findings)} findings")
        )
        for note in report.notes:
            print(f"  note: {note}")
        for f in report.findings:
            print(f"  FINDING {f.code}: {f.message}")
    return 0 if report.ok else 1


def _org_log(args: argparse.Namespace) -> int:
    from akkoord.store.custody import head_message
    from akkoord.store.orglog import ORG_LOG_CONTEXT, read_org_log
    from akkoord.store.safeio import check_name
    from akkoord.store.statecheck import head_in_log, parse_head
    from akkoord.trust import OrgSigningPublicKey

    if not args.trust:
        raise AkkoordError("--org-log needs --trust ORG_SIGNING_PUB (whose log it is)")
    key = OrgSigningPublicKey.load(check_name(args.trust))
    view = read_org_log(check_name(args.org_log), key)
    if args.check_head:
        seq, digest, sig = parse_head(check_name(args.check_head))
        signed = key.key.verify(sig, head_message(seq, digest, ORG_LOG_CONTEXT))
        result = head_in_log(view, seq, digest, signed, f"organisation {key.organisation}")
        if args.json:
            _print_json(result.to_json())
        else:
            print(f"{args.check_head}: {'OK' if result.ok else 'NOT OK'}: {result.message}")
        return 0 if result.ok and not view.findings else 1
    if args.json:
        _print_json({"entries": len(view.entries), "ok": not view.findings,
                     "findings": view.findings})
    else:
        print(f"{args.org_log}: {len(view.entries)} entries, "
              + ("intact" if not view.findings else f"{len(view.findings)} findings"))
        for f in view.findings:
            print(f"  FINDING: {f}")
    return 0 if not view.findings else 1


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "custody",
        parents=[common],
        help="verify the custody log and the state folder against it",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--entries", action="store_true",
                   help="also show every entry: number, local time, what, recording, details")
    p.add_argument(
        "--check-head",
        metavar="FILE",
        help="a custody-head.json from a copy: does this device's log still contain it?",
    )
    p.add_argument("--org-log", metavar="FILE",
                   help="check the organisation's own copy log instead of the device's")
    p.add_argument("--trust", metavar="ORG_SIGNING_PUB",
                   help="with --org-log: the organisation signing key it must be signed with")
    p.set_defaults(func=cmd_custody)
