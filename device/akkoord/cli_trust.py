"""`akkoord keys certify | install-certificate | trust | revoke | publish-page`, and the trust
options of `akkoord verify` (--trust, --revocations, [trust] in the configuration).

The organisation's computer makes keys, certificates, revocation lists and the published
page; the device installs its certificate and trusted organisation keys; any verifier turns
"genuine" into "genuine and vouched for by organisation X" (FORMAT.md §10, exit codes below).

Exit codes of `akkoord verify` (cli.py lists the others):
  0  genuine and unchanged (or interrupted, disclosed) AND anchored to a trusted organisation
  1  findings: changed, forged, not signed, certificate revoked / expired / for another key
  2  unreadable input or bad usage
  3  genuine and unchanged, but NOT anchored: no trusted organisation key given, or the
     recording carries no certificate from one ("cannot tell who made this")
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from akkoord.errors import KeyMaterialError, UsageError

__all__ = [
    "EXIT_UNANCHORED",
    "add_verify_options",
    "anchor_manifest",
    "register_keys",
    "trust_inputs",
    "verdict_exit",
]

EXIT_UNANCHORED = 3


# --- trust inputs for verify ---------------------------------------------------------------


def add_verify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust", action="append", default=[], metavar="ORG_SIGNING_PUB",
                   help="organisation signing public key to anchor the verdict to (repeatable)")
    p.add_argument("--revocations", action="append", default=[], metavar="FILE",
                   help="the organisation's signed revocation list (repeatable)")
    p.add_argument("--config", metavar="FILE",
                   help="configuration with a [trust] section (default /etc/akkoord/akkoord.toml)")


def trust_inputs(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """(trusted organisation signing keys, revocation lists) from --trust/--revocations, the
    configuration's [trust], and on a device its <state>/keys/trust/."""
    from akkoord.config import DEFAULT_PATH, load_config
    from akkoord.trust import OrgSigningPublicKey, load_statement_file

    keys = [Path(p) for p in getattr(args, "trust", [])]
    lists = [Path(p) for p in getattr(args, "revocations", [])]
    cfg_path = getattr(args, "config", None)
    if cfg_path or DEFAULT_PATH.exists():
        cfg = load_config(Path(cfg_path) if cfg_path else None)
        keys += [Path(p) for p in cfg.trust.org_signing_keys]
        lists += [Path(p) for p in cfg.trust.revocation_lists]
    try:
        from akkoord.store.layout import StateDir, state_from_env

        trust_dir = StateDir(state_from_env(getattr(args, "state", None))).trust_dir
        keys += sorted(trust_dir.glob("*.pub")) if trust_dir.is_dir() else []
    except OSError:
        pass
    anchors = [OrgSigningPublicKey.load(p) for p in keys]
    return anchors, [load_statement_file(p) for p in lists]


def verdict_exit(ok: bool, anchored: bool) -> int:
    if not ok:
        return 1
    return 0 if anchored else EXIT_UNANCHORED


def anchor_manifest(manifest: dict[str, Any] | None, trust: list[Any], revocations: list[Any]
                    ) -> Any:
    """The trust chain of a signed recording folder's manifest (its device block)."""
    from akkoord.export.copycheck import _epoch
    from akkoord.store.keys import DevicePublicKey
    from akkoord.trust import Chain, check_device

    if manifest is None or not isinstance(manifest.get("device"), dict):
        return Chain("no_certificate", "no signed manifest")
    try:
        key = DevicePublicKey.from_json(manifest["device"], "manifest: device")
    except KeyMaterialError as exc:
        return Chain("bad_certificate", str(exc))
    return check_device(manifest["device"].get("certificate"), key.algorithm, key.raw, trust,
                        revocations, _epoch(manifest.get("created")))


def device_trust(state: Any, pub: Any) -> dict[str, Any]:
    """`keys show`: the trusted organisation keys and the installed certificate's state now."""
    from akkoord.trust import OrgSigningPublicKey, TrustError, check_device

    anchors, problems = [], []
    if state.trust_dir.is_dir():
        for p in sorted(state.trust_dir.glob("*.pub")):
            try:
                anchors.append(OrgSigningPublicKey.load(p))
            except TrustError as exc:
                problems.append(str(exc))
    cert = state.device_certificate()
    chain = None
    if pub is not None and (cert is not None or anchors):
        chain = check_device(cert, pub.algorithm, pub.raw, anchors, (), int(time.time()))
    return {
        "trust": [{"organisation": a.organisation, "fingerprint": a.fingerprint}
                  for a in anchors],
        "certificate": chain.to_json() if chain else None,
        "trust_problems": problems,
    }


def print_device_trust(doc: dict[str, Any]) -> None:
    from akkoord.store.keys import fingerprint_display

    for t in doc["trust"]:
        print(f"trusts:     {t['organisation']} ({fingerprint_display(t['fingerprint'])})")
    c = doc["certificate"]
    if c is None:
        print("certificate: none — copies verify as 'not anchored' (akkoord keys "
              "install-certificate)")
    elif c["anchored"]:
        print(f"certificate: {c['serial']} by {c['organisation']}, {c['label']!r}, "
              f"valid until {c['valid_until']}")
    else:
        print(f"certificate: NOT VALID NOW: {c['message']}")
    for p in doc["trust_problems"]:
        print(f"  problem: {p}")


# --- organisation side ---------------------------------------------------------------------


def _days(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days") from None
    if not 1 <= n <= 20 * 366:
        raise argparse.ArgumentTypeError("days must be from 1 to 7320")
    return n


def cmd_keys_certify(args: argparse.Namespace) -> int:
    from akkoord.fsutil import atomic_write
    from akkoord.store.keys import DevicePublicKey, fingerprint_display
    from akkoord.trust import OrgSigningKey, device_certificate, parse_time

    org = OrgSigningKey.load(Path(args.org_key))
    device = DevicePublicKey.load(Path(args.device_pub))
    now = int(time.time())
    start = parse_time(args.valid_from, "--valid-from") if args.valid_from else now
    cert = device_certificate(org, device.algorithm, device.raw, args.label, start,
                              start + args.days * 86400, now)
    out = Path(args.out)
    if out.exists():
        raise UsageError(f"{out} already exists; choose another file name")
    atomic_write(out, json.dumps(cert, indent=1, ensure_ascii=False).encode() + b"\n", 0o644,
                 exclusive=True)
    st = cert["statement"]
    print(f"certificate {st['serial']} for device {fingerprint_display(device.fingerprint)}")
    print(f"  {args.label!r}, valid {st['valid_from']} to {st['valid_until']}")
    print(f"  signed by {org.organisation} ({fingerprint_display(org.fingerprint)})")
    print(f"install it on the device: akkoord keys install-certificate {out.name} "
          "--org-pub org-signing.pub")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from akkoord.fsutil import atomic_write
    from akkoord.trust import (
        REVOCATION_TYPE,
        OrgSigningKey,
        TrustError,
        format_time,
        load_statement_file,
        parse_time,
        revocation_list,
    )

    org = OrgSigningKey.load(Path(args.org_key))
    entries: list[dict[str, Any]] = []
    number = 1
    if args.list:
        old = load_statement_file(Path(args.list))
        if old.type != REVOCATION_TYPE or old.signer != org.public.key or not old.verify():
            raise TrustError(f"{args.list}: not a revocation list signed by this organisation")
        entries = list(old.statement.get("revoked") or [])
        number = int(old.statement.get("number", 0)) + 1
    serial, fp = args.serial, args.fingerprint
    if args.certificate:
        cert = load_statement_file(Path(args.certificate))
        serial = str(cert.statement.get("serial"))
    if not serial and not fp:
        raise UsageError("say what to revoke: --serial, --fingerprint or --certificate")
    when = format_time(parse_time(args.at, "--at") if args.at else time.time())
    entries.append({"serial": serial, "fingerprint": fp, "revoked_at": when,
                    "reason": args.reason})
    doc = revocation_list(org, number, entries, int(time.time()))
    out = Path(args.out)
    atomic_write(out, json.dumps(doc, indent=1, ensure_ascii=False).encode() + b"\n", 0o644)
    print(f"revocation list {number} of {org.organisation}: {len(entries)} revoked; "
          f"written to {out}")
    print("publish it next to the verify page; verifiers take it with --revocations")
    return 0


def cmd_keys_publish_page(args: argparse.Namespace) -> int:
    from akkoord.export.verifypage import render_published_page
    from akkoord.fsutil import atomic_write
    from akkoord.store.keys import fingerprint_display
    from akkoord.trust import (
        ORG_SIGNING_KEY_TYPE,
        OrgSigningKey,
        OrgSigningPublicKey,
        load_statement_file,
    )

    path = Path(args.org_key)
    head = path.read_bytes()[:4096] if path.is_file() else b""
    org = (OrgSigningKey.load(path).public if ORG_SIGNING_KEY_TYPE.encode() + b'"' in head
           else OrgSigningPublicKey.load(path))
    lists = [load_statement_file(Path(p)) for p in args.revocations]
    html = render_published_page(org, lists)
    atomic_write(Path(args.out), html.encode("utf-8"), 0o644)
    print(f"wrote {args.out}: the verify page of {org.organisation}")
    print(f"  signing key fingerprint {fingerprint_display(org.fingerprint)}")
    print("publish the page and this fingerprint on the organisation's website (docs/publiek.md)")
    return 0


# --- device side ---------------------------------------------------------------------------


def _install_trust(state: Any, org: Any, custody: Any) -> bool:
    from akkoord.fsutil import atomic_write

    state.trust_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = state.trust_dir / f"{org.fingerprint[:16]}.pub"
    if target.exists():
        return False
    atomic_write(target, org.dumps(), 0o644, exclusive=True)
    custody.append("trust_added", fingerprint=org.fingerprint, organisation=org.organisation)
    return True


def cmd_keys_trust(args: argparse.Namespace) -> int:
    from akkoord.cli import _state
    from akkoord.clock import SystemClock
    from akkoord.store.custody import CustodyLog
    from akkoord.store.keys import fingerprint_display
    from akkoord.trust import ORG_SIGNING_KEY_TYPE, OrgSigningPublicKey

    path = Path(args.file)
    if path.is_file() and ORG_SIGNING_KEY_TYPE.encode() + b'"' in path.read_bytes()[:4096]:
        raise KeyMaterialError(f"{path} is the organisation's PRIVATE signing key; it must "
                               "never be put on the device. Give it org-signing.pub instead.")
    org = OrgSigningPublicKey.load(path)
    state = _state(args)
    custody = CustodyLog(state.custody_path, state.identity(), SystemClock())
    added = _install_trust(state, org, custody)
    print(("now trusting " if added else "already trusted: ") + f"{org.organisation} "
          f"({fingerprint_display(org.fingerprint)})")
    return 0


def cmd_keys_install_certificate(args: argparse.Namespace) -> int:
    from akkoord.cli import _state
    from akkoord.clock import SystemClock
    from akkoord.fsutil import atomic_write
    from akkoord.store.custody import CustodyLog
    from akkoord.store.keys import fingerprint_display
    from akkoord.trust import OrgSigningPublicKey, TrustError, check_device, load_statement_file

    state = _state(args)
    identity = state.identity()
    env = load_statement_file(Path(args.file))
    anchors = [OrgSigningPublicKey.load(p) for p in sorted(state.trust_dir.glob("*.pub"))] \
        if state.trust_dir.is_dir() else []
    new_org = OrgSigningPublicKey.load(Path(args.org_pub)) if args.org_pub else None
    if new_org is not None:
        anchors.append(new_org)
    pub = identity.public
    chain = check_device(env.to_json(), pub.algorithm, pub.raw, anchors, (), int(time.time()))
    if not chain.anchored:
        hint = "" if anchors else " (give the organisation's key: --org-pub org-signing.pub)"
        raise TrustError(f"{args.file}: not installed: {chain.message}{hint}")
    custody = CustodyLog(state.custody_path, identity, SystemClock())
    if new_org is not None:
        _install_trust(state, new_org, custody)
    atomic_write(state.certificate_path,
                 json.dumps(env.to_json(), indent=1, ensure_ascii=False).encode() + b"\n", 0o644)
    custody.append("certificate_installed", serial=chain.serial,
                   organisation_fingerprint=chain.org_fingerprint,
                   valid_until=chain.valid_until)
    print(f"certificate {chain.serial} installed: device {fingerprint_display(pub.fingerprint)}")
    print(f"  {chain.label!r}, certified by {chain.organisation} until {chain.valid_until}")
    print("every new recording carries it; copies then verify as anchored to the organisation")
    return 0


# --- parser --------------------------------------------------------------------------------


def register_keys(ksub: Any, common: argparse.ArgumentParser) -> None:
    """The `akkoord keys …` subcommands of this module."""
    p = ksub.add_parser("certify", parents=[common],
                        help="certify a device key (on the organisation's computer)")
    p.add_argument("device_pub", metavar="DEVICE_PUB")
    p.add_argument("--org-key", required=True, metavar="ORG_SIGNING_KEY")
    p.add_argument("--label", required=True, help="where the device is used, e.g. 'Noord, kamer 2'")
    p.add_argument("--days", type=_days, default=3 * 365,
                   help="how long the certificate is valid (default 3 years)")
    p.add_argument("--valid-from", metavar="YYYY-MM-DDTHH:MM:SSZ", help="default: now")
    p.add_argument("--out", required=True, metavar="FILE")
    p.set_defaults(func=cmd_keys_certify)

    p = ksub.add_parser("install-certificate", parents=[common],
                        help="install this device's certificate (checks it is for this device)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--org-pub", metavar="ORG_SIGNING_PUB",
                   help="the organisation's signing public key; also trusted from now on")
    p.set_defaults(func=cmd_keys_install_certificate)

    p = ksub.add_parser("trust", parents=[common],
                        help="trust an organisation signing public key on this device")
    p.add_argument("file", metavar="ORG_SIGNING_PUB")
    p.set_defaults(func=cmd_keys_trust)

    p = ksub.add_parser("revoke", parents=[common],
                        help="make the next signed revocation list (organisation's computer)")
    p.add_argument("--org-key", required=True, metavar="ORG_SIGNING_KEY")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--serial", metavar="HEX32")
    what.add_argument("--certificate", metavar="FILE")
    p.add_argument("--fingerprint", metavar="HEX64", help="a device or admin key fingerprint")
    p.add_argument("--reason", default="key_compromise",
                   help="e.g. key_compromise, device_lost, retired (default key_compromise)")
    p.add_argument("--at", metavar="YYYY-MM-DDTHH:MM:SSZ", help="when (default: now)")
    p.add_argument("--list", metavar="FILE", help="the current list, to extend (number + 1)")
    p.add_argument("--out", required=True, metavar="FILE")
    p.set_defaults(func=cmd_keys_revoke)

    p = ksub.add_parser("publish-page", parents=[common],
                        help="the verify page with the organisation's signing key built in")
    p.add_argument("--org-key", required=True, metavar="ORG_SIGNING_PUB",
                   help="org-signing.pub (or org-signing.key; only its public half is used)")
    p.add_argument("--revocations", action="append", default=[], metavar="FILE")
    p.add_argument("--out", required=True, metavar="FILE.html")
    p.set_defaults(func=cmd_keys_publish_page)
