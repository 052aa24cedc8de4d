"""`akkoord archive …`: the organisation's archive (runs on the organisation's computer).

Exit codes as for the rest of akkoord: 0 done; 1 findings (a recording quarantined, a
verification failure, an audit finding); 2 bad usage or unreadable input; 4 storage failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    from akkoord.archive.index import open_index
    from akkoord.archive.store import Archive
    from akkoord.errors import UsageError

    root = args.archive or os.environ.get("AKKOORD_ARCHIVE")
    if not root:
        raise UsageError("which archive? pass --archive DIR (or set AKKOORD_ARCHIVE)")
    archive = Archive.open(Path(root))
    index = open_index(archive.root, getattr(args, "db", None) or archive.db)
    index.migrate()
    return archive, index


def _bar(total: int, what: str, enabled: bool, unit: str = "B") -> Any:
    from tqdm import tqdm

    # disable=None: shown on a terminal, silent in pipes and logs.
    scale = unit == "B"
    return tqdm(total=total, desc=what, unit=unit, unit_scale=scale, unit_divisor=1024,
                file=sys.stderr, disable=None if enabled else True, leave=False)


def cmd_init(args: argparse.Namespace) -> int:
    from akkoord.archive.index import open_index
    from akkoord.archive.store import init_archive

    archive = init_archive(Path(args.dir), organisation=args.organisation,
                           trust=[Path(p) for p in args.trust],
                           recipients=[Path(p) for p in args.recipient], db=args.db,
                           signing_key=Path(args.signing_key) if args.signing_key else None,
                           certificate=Path(args.certificate) if args.certificate else None,
                           ledger=Path(args.ledger) if args.ledger else None)
    index = open_index(archive.root, args.db)
    index.migrate()
    index.close()
    print(f"archive made in {archive.root} (index: {index.where})")
    return EXIT_OK


def cmd_ingest(args: argparse.Namespace) -> int:
    from akkoord.archive.ingest import ingest, package_size

    archive, index = _open(args)
    source = Path(args.source)
    with _bar(package_size(source), "ingest", not args.json) as bar:
        result = ingest(archive, index, source,
                        key=archive.signer(args.signing_key, args.certificate), progress=bar.update,
                        write_receipts=not args.no_receipt)
    index.close()
    if args.json:
        _print_json(result.to_json())
    else:
        print(f"{source}: {len(result.stored)} stored, {len(result.already)} already archived, "
              f"{len(result.quarantined)} quarantined")
        for rid, why in result.quarantined.items():
            print(f"  QUARANTINED {rid}: {why}")
        for p in result.problems:
            print(f"  PROBLEM {p}")
        for r in result.receipts:
            print(f"  receipt written: {r} (the device marks these recordings archived on the "
                  "next collection)")
    return EXIT_OK if result.ok else EXIT_FINDINGS


def _filter(args: argparse.Namespace) -> Any:
    from akkoord.archive.index import SearchFilter

    return SearchFilter(since=args.since, until=args.until, device=args.device,
                        min_duration=args.min_duration, max_duration=args.max_duration,
                        status=args.status, min_copies=args.copies, text=args.id,
                        limit=args.limit, offset=args.offset)


def cmd_list(args: argparse.Namespace) -> int:
    _archive, index = _open(args)
    t0 = time.perf_counter()
    rows = index.search(_filter(args))
    took = time.perf_counter() - t0
    index.close()
    if args.json:
        _print_json({"recordings": rows, "count": len(rows),
                     "query_ms": round(took * 1000, 2)})
        return EXIT_OK
    for r in rows:
        print(f"{r['recording_id']}  {r['created'] or '?':<24} {r['duration_seconds']:>9.1f} s  "
              f"{r['status']:<11} copies {r['copies']:<3} {r['device_label']}")
    print(f"{len(rows)} recording(s)")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    archive, index = _open(args)
    row = index.get(args.recording_id)
    if row is None:
        print(f"akkoord: no recording {args.recording_id} in {archive.root}", file=sys.stderr)
        return EXIT_USAGE
    from akkoord.archive.ops import log_view

    entries, findings = log_view(archive)
    doc = {**row, "objects": json.loads(row["objects"]),
           "copies_made": index.copies_of(args.recording_id),
           "log": [e for e in entries if e.get("recording_id") == args.recording_id],
           "log_findings": findings}
    index.close()
    if args.json:
        _print_json(doc)
        return EXIT_OK
    for k in ("recording_id", "device_label", "device_fingerprint", "created", "ended",
              "duration_seconds", "status", "chain_head", "ingested", "copies", "deleted",
              "delete_reason"):
        if doc.get(k) is not None:
            print(f"{k:<19}{doc[k]}")
    for c in doc["copies_made"]:
        print(f"copy {c['copy_number']:<14}{c['made']} {c['made_for'] or ''}")
    for e in doc["log"]:
        when = e["time"].get("utc") if isinstance(e.get("time"), dict) else e.get("time")
        print(f"log {e['seq']:<15}{when} {e['type']} {e.get('detail', {})}")
    for f in doc["log_findings"]:
        print(f"FINDING {f}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from akkoord.archive.ops import export_copy
    from akkoord.errors import FormatError
    from akkoord.store.keys import OrgPrivateKey

    archive, index = _open(args)
    row = index.get(args.recording_id)
    size = 0
    if row is not None and row["status"] != "deleted":  # the WAV is about the container's size
        container = json.loads(row["objects"]).get("recording.akr")
        with contextlib.suppress(OSError, ValueError):
            size = archive.object_path(container).stat().st_size
    try:
        with _bar(size, "copy", True) as bar:
            result, _report = export_copy(
                archive, index, args.recording_id, org_key=OrgPrivateKey.load(Path(args.key)),
                to=Path(args.to), signing_key=archive.signer(args.signing_key, args.certificate),
                made_for=args.made_for, progress=bar.update)
    except FormatError as exc:
        print(f"akkoord: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    finally:
        index.close()
    print(f"copy {result.copy['copy_number']} written to {result.folder} and verified; "
          "logged in the organisation's log")
    return EXIT_OK


def cmd_decrypt(args: argparse.Namespace) -> int:
    from akkoord.archive.ops import to_wav
    from akkoord.store.keys import OrgPrivateKey

    archive, index = _open(args)
    try:
        report, problems = to_wav(archive, index, args.recording_id,
                                  org_key=OrgPrivateKey.load(Path(args.key)), out=Path(args.out))
    finally:
        index.close()
    if not report.ok:
        for f in report.findings:
            print(f"  FINDING {f.code}: {f.message}", file=sys.stderr)
        print("refusing to write audio that fails verification", file=sys.stderr)
        return EXIT_FINDINGS
    print(f"wrote {args.out} ({report.status})")
    for p in problems:
        print(f"  problem: {p}")
    return EXIT_FINDINGS if problems else EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from akkoord.archive.ops import delete

    if not args.yes:
        print("akkoord: deleting from the archive cannot be undone; add --yes to confirm",
              file=sys.stderr)
        return EXIT_USAGE
    archive, index = _open(args)
    try:
        entry = delete(archive, index, args.recording_id, reason=args.reason,
                       signing_key=archive.signer(args.signing_key, args.certificate))
    finally:
        index.close()
    print(f"recording {args.recording_id} crypto-shredded; organisation log entry "
          f"{entry['seq']} of {archive.log_path}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from akkoord.archive.ops import audit

    archive, index = _open(args)
    try:
        with _bar(index.count(), "verify", not args.json, unit="rec") as bar:
            res = audit(archive, index, bar.update)
    finally:
        index.close()
    if args.json:
        _print_json(res.to_json())
    else:
        print(f"{archive.root}: {res.objects} objects, {res.recordings} recordings, "
              f"{res.log_entries} log entries: " + ("OK" if res.ok else "NOT OK"))
        for f in res.findings:
            print(f"  FINDING {f}")
        if not res.ledger.get("ledger"):
            print("  note: this archive keeps no ledger, so erasures cannot be re-applied "
                  "after restoring a backup (docs/AVG.md; `archive init --ledger`)")
    return EXIT_OK if res.ok else EXIT_FINDINGS


def cmd_restore(args: argparse.Namespace) -> int:
    from akkoord.archive.ledger import LedgerRefused, restore

    archive, index = _open(args)
    try:
        res = restore(archive, index, Path(args.ledger) if args.ledger else None)
    except LedgerRefused as exc:
        print(f"akkoord: REFUSED: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    finally:
        index.close()
    if args.json:
        _print_json(res.to_json())
    else:
        print(f"{archive.root} brought up to its ledger {res.ledger}: "
              f"{len(res.deleted) + len(res.tombstones)} deletion(s) carried out again, "
              f"{len(res.already)} already done, {res.copies} copy number(s) reserved, "
              f"{res.log_entries_added} log entries added")
        for rid in res.deleted + res.tombstones:
            print(f"  deleted again: {rid}")
    return EXIT_OK


def cmd_ledger(args: argparse.Namespace) -> int:
    from akkoord.archive.ledger import LedgerRefused, start_ledger
    from akkoord.errors import UsageError

    archive, index = _open(args)
    index.close()
    signer = archive.signer(args.signing_key, None)
    if signer.org_key is None:
        raise UsageError("the ledger's first entry is signed with the organisation signing key")
    try:
        path = start_ledger(archive, Path(args.file), signer.org_key)
    except LedgerRefused as exc:
        print(f"akkoord: REFUSED: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    print(f"{archive.root} now keeps its ledger in {path}; keep that file outside the archive "
          "and its backups")
    return EXIT_OK


def cmd_token(args: argparse.Namespace) -> int:
    from akkoord.collect.package import COLLECT_DIR, TOKEN_FILE
    from akkoord.collect.statements import load_signer, make_token
    from akkoord.fsutil import atomic_write

    signer = load_signer(Path(args.signing_key),
                         Path(args.certificate) if args.certificate else None)
    token = make_token(signer, args.device, now=time.time(), days=args.days)
    out = Path(args.out)
    if out.is_dir():  # a mounted stick: put it where the device looks
        (out / COLLECT_DIR).mkdir(exist_ok=True)
        out = out / COLLECT_DIR / TOKEN_FILE
    atomic_write(out, json.dumps(token, indent=1).encode() + b"\n")
    print(f"collection token {token['statement']['serial']} written to {out}, valid until "
          f"{token['statement']['valid_until']}")
    return EXIT_OK


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="UTC", help="created at or after (e.g. 2026-01-01)")
    p.add_argument("--until", metavar="UTC", help="created before")
    p.add_argument("--device", metavar="LABEL", help="device label, or fingerprint prefix")
    p.add_argument("--min-duration", type=float, metavar="SECONDS")
    p.add_argument("--max-duration", type=float, metavar="SECONDS")
    p.add_argument("--status", choices=("complete", "interrupted", "deleted"))
    p.add_argument("--copies", type=int, metavar="N", help="at least N copies made")
    p.add_argument("--id", metavar="PREFIX", help="recording id prefix")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    top = sub.add_parser("archive", help="the organisation's archive (collect, keep, copy)")
    asub = top.add_subparsers(dest="archive_command", required=True,
                              parser_class=type(top))
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--archive", metavar="DIR", help="the archive (default $AKKOORD_ARCHIVE)")
    where.add_argument("--db", metavar="URL", help="postgresql://… index (default: as at init)")
    signer = argparse.ArgumentParser(add_help=False)
    signer.add_argument("--signing-key", metavar="FILE",
                        help="organisation signing key, or an admin key (with --certificate)")
    signer.add_argument("--certificate", metavar="FILE",
                        help="the admin certificate (role collect) when an admin key signs")

    p = asub.add_parser("init", parents=[common], help="make an archive")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--organisation", required=True, metavar="NAME")
    p.add_argument("--trust", action="append", required=True, metavar="ORG_SIGNING_PUB")
    p.add_argument("--recipient", action="append", required=True, metavar="ORG_PUBLIC_KEY")
    p.add_argument("--db", metavar="URL",
                   help="keep the index in PostgreSQL (postgresql://user@host/db; put the "
                        "password in ~/.pgpass, not in the URL: the URL is stored)")
    p.add_argument("--signing-key", metavar="FILE")
    p.add_argument("--certificate", metavar="FILE")
    p.add_argument("--ledger", metavar="FILE")
    p.set_defaults(func=cmd_init)

    p = asub.add_parser("ingest", parents=[common, where, signer],
                        help="verify and store a collection package, write receipts")
    p.add_argument("source", metavar="STICK_OR_FOLDER")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-receipt", action="store_true", help="store, but write no receipt")
    p.set_defaults(func=cmd_ingest)

    for name, text in (("list", "archived recordings, newest first"),
                       ("search", "archived recordings matching filters")):
        p = asub.add_parser(name, parents=[common, where], help=text)
        _filters(p)
        p.set_defaults(func=cmd_list)

    p = asub.add_parser("show", parents=[common, where], help="one recording, copies, log")
    p.add_argument("recording_id", metavar="ID")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = asub.add_parser("export", parents=[common, where, signer],
                        help="a later copy for a party (logged, numbered)")
    p.add_argument("recording_id", metavar="ID")
    p.add_argument("--key", required=True, metavar="ORG_PRIVATE_KEY")
    p.add_argument("--to", required=True, metavar="DIR")
    p.add_argument("--for", dest="made_for", metavar="WHO", help="logged: who asked for it")
    p.set_defaults(func=cmd_export)

    p = asub.add_parser("decrypt", parents=[common, where], help="the audio as WAV")
    p.add_argument("recording_id", metavar="ID")
    p.add_argument("--key", required=True, metavar="ORG_PRIVATE_KEY")
    p.add_argument("--out", required=True, metavar="FILE.wav")
    p.set_defaults(func=cmd_decrypt)

    p = asub.add_parser("delete", parents=[common, where, signer],
                        help="crypto-shred a recording (AVG request, retention), logged")
    p.add_argument("recording_id", metavar="ID")
    p.add_argument("--reason", required=True)
    p.add_argument("--yes", action="store_true", help="confirm")
    p.set_defaults(func=cmd_delete)

    p = asub.add_parser("verify", parents=[common, where],
                        help="every object, every signature, the organisation's log")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = asub.add_parser("restore", parents=[common, where],
                        help="after restoring a backup: re-apply every deletion in the ledger")
    p.add_argument("--ledger", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_restore)

    p = asub.add_parser("ledger", parents=[common, where],
                        help="start a ledger for an archive made without one")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--signing-key", metavar="FILE")
    p.set_defaults(func=cmd_ledger)

    p = asub.add_parser("token", parents=[common], help="make a collection token (for a stick)")
    p.add_argument("--signing-key", required=True, metavar="FILE")
    p.add_argument("--certificate", metavar="FILE")
    p.add_argument("--device", action="append", required=True, metavar="FINGERPRINT")
    p.add_argument("--days", type=float, default=7)
    p.add_argument("--out", required=True, metavar="FILE_OR_STICK")
    p.set_defaults(func=cmd_token)
