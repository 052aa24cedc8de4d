"""akkoord command line.

Exit codes (contracts other tools rely on):
  0  success; for `verify`: intact and complete, or interrupted by a power loss (disclosed),
     and anchored: the device key is certified by a trusted organisation key (FORMAT.md §10)
  1  `verify`/`decrypt`: findings — the recording or copy was changed, cut, or is unsigned,
     or its device certificate is forged, revoked, expired or for another key
  2  bad usage, or input that cannot be read (not a recording, wrong or missing key)
  3  `verify`: genuine and unchanged, but not anchored to a trusted organisation (cli_trust)
  4  storage or hardware failure (disk full, I/O error, no microphone)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from akkoord import __version__, cli_appliance, cli_archive, cli_console, cli_trust
from akkoord.errors import AkkoordError, HardwareError, StorageError, UsageError

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 4

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"akkoord: error: {message}\n")


def _state(args: argparse.Namespace) -> Any:
    from akkoord.store.layout import StateDir, state_from_env

    return StateDir(state_from_env(getattr(args, "state", None)))


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


# --- keys ---------------------------------------------------------------------------------


def cmd_keys_init(args: argparse.Namespace) -> int:
    from akkoord.clock import SystemClock
    from akkoord.store.custody import CustodyLog
    from akkoord.store.keys import DeviceIdentity, fingerprint_display

    state = _state(args)
    state.ensure()
    identity = DeviceIdentity.generate()
    identity.save(state.keys_dir)
    CustodyLog(state.custody_path, identity, SystemClock()).append(
        "device_initialised", fingerprint=identity.fingerprint
    )
    print(f"device identity created in {state.keys_dir}")
    print(f"fingerprint: {fingerprint_display(identity.fingerprint)}")
    print("publish this fingerprint (rule 2) so anyone can check copies made by this device")
    return EXIT_OK


def cmd_keys_org_new(args: argparse.Namespace) -> int:
    from akkoord.errors import KeyMaterialError
    from akkoord.store.keys import fingerprint_display, generate_org_key, write_org_key_pair
    from akkoord.trust import OrgSigningKey, write_org_signing_pair

    out = Path(args.out)
    for name in ("org.key", "org.pub", "org-signing.key", "org-signing.pub"):
        if (out / name).exists():
            raise KeyMaterialError(f"{out / name} already exists; refusing to overwrite a key")
    signing = OrgSigningKey.generate(args.name)
    key = generate_org_key(args.kem)
    spriv, spub = write_org_signing_pair(signing, out)
    priv, pub = write_org_key_pair(key, out)
    print(f"organisation key ({args.kem}): {fingerprint_display(key.fingerprint)}")
    print(f"  private: {priv}  (keep it off the device, backed up, offline)")
    print(f"  public:  {pub}  (install on the device: akkoord keys add-recipient {pub.name})")
    print(f"signing key of {args.name!r}: {fingerprint_display(signing.fingerprint)}")
    print(f"  private: {spriv}  (certifies devices; keep it offline like org.key)")
    print(f"  public:  {spub}  (publish its fingerprint; verifiers use --trust {spub.name})")
    return EXIT_OK


def cmd_keys_add_recipient(args: argparse.Namespace) -> int:
    from akkoord.clock import SystemClock
    from akkoord.errors import KeyMaterialError
    from akkoord.fsutil import atomic_write
    from akkoord.store.custody import CustodyLog
    from akkoord.store.keys import ORG_KEY_TYPE, OrgPublicKey, fingerprint_display

    path = Path(args.file)
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise KeyMaterialError(f"{path}: cannot read: {exc.strerror}") from exc
    if ORG_KEY_TYPE.encode() in head:
        raise KeyMaterialError(
            f"{path} is the organisation's PRIVATE key; it must never be put on the device. "
            "Give the device org.pub instead."
        )
    key = OrgPublicKey.load(path)
    state = _state(args)
    identity = state.identity()
    state.recipients_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = state.recipients_dir / f"{key.fingerprint[:16]}.pub"
    if target.exists():
        print(f"already a recipient: {fingerprint_display(key.fingerprint)}")
        return EXIT_OK
    atomic_write(target, key.dumps(), 0o644, exclusive=True)
    CustodyLog(state.custody_path, identity, SystemClock()).append(
        "recipient_added", fingerprint=key.fingerprint, kem=key.kem
    )
    print(f"new recordings are now also wrapped to {fingerprint_display(key.fingerprint)}")
    return EXIT_OK


def cmd_keys_show(args: argparse.Namespace) -> int:
    from akkoord.store.keys import fingerprint_display

    state = _state(args)
    pub = state.device_public_key()
    recipients = state.recipients()
    if args.json:
        _print_json(
            {
                "device": pub.to_json() if pub else None,
                "recipients": [r.to_json() for r in recipients],
                **cli_trust.device_trust(state, pub),
            }
        )
        return EXIT_OK
    if pub is None:
        print(f"device: no identity in {state.keys_dir} (run `akkoord keys init`)")
    else:
        print(f"device:     {fingerprint_display(pub.fingerprint)}")
        print(f"            {pub.fingerprint}")
    if not recipients:
        print("recipients: none — recording is refused until one is added")
    for r in recipients:
        print(f"recipient:  {fingerprint_display(r.fingerprint)}  ({r.kem})")
    cli_trust.print_device_trust(cli_trust.device_trust(state, pub))
    return EXIT_OK


# --- recordings ---------------------------------------------------------------------------


def _trusted_key(args: argparse.Namespace) -> Any:
    from akkoord.store.keys import DevicePublicKey

    if getattr(args, "device_key", None):
        return DevicePublicKey.load(Path(args.device_key))
    try:
        return _state(args).device_public_key()
    except AkkoordError:
        return None


def _org_key(args: argparse.Namespace) -> Any:
    from akkoord.store.keys import OrgPrivateKey

    return OrgPrivateKey.load(Path(args.key)) if getattr(args, "key", None) else None


def _print_report(report: Any) -> None:
    status_text = {
        "complete": "OK: intact and complete",
        "interrupted": "OK: intact; interrupted by a power loss or crash (disclosed, signed)",
        "tampered": "NOT OK: findings below",
    }
    print(f"{report.path}: {status_text.get(report.status, report.status)}")
    if report.recording_id:
        print(f"  recording  {report.recording_id}")
    if report.duration_seconds is not None:
        print(f"  duration   {report.duration_seconds:g} s in {report.frames} frames")
    if report.device_fingerprint:
        from akkoord.store.keys import fingerprint_display

        trust = {True: " (this device)", False: " (NOT the expected device)", None: ""}
        print(
            f"  device     {fingerprint_display(report.device_fingerprint)}"
            f"{trust[report.device_trusted]}"
        )
    print(
        "  audio      "
        + (
            "decrypted and checked"
            if report.checked_audio
            else "not decrypted (no --key): structure, chain and signature checked"
        )
    )
    for note in report.notes:
        print(f"  note: {note}")
    for f in report.findings:
        print(f"  FINDING {f.code}: {f.message}")


def _check_wav_given(path: Path) -> None:
    """A file given to `verify` is a copy's WAV: say so about the file itself, not about a
    manifest next to it."""
    from akkoord.errors import UsageError

    with open(path, "rb") as f:
        head = f.read(12)
    if not head:
        raise UsageError(f"{path}: an empty file (0 bytes), not a copy's audio; give the copy's "
                         "folder or its opname.wav")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise UsageError(f"{path}: not a WAV file; give a copy's folder or its opname.wav, or a "
                         "recording folder")


def _is_copy(path: Path) -> bool:
    from akkoord.export.copycheck import COPY_FILE

    return path.is_file() or (path / COPY_FILE).exists()


def _print_copy_report(report: Any) -> None:
    from akkoord.store.keys import fingerprint_display

    verdict = {
        "unchanged": "OK: unchanged — the audio is exactly what the device recorded",
        "changed": "NOT OK: changed",
        "not_signed": "NOT OK: not signed by the device it names",
        "wrong_device": "NOT OK: not signed by this device",
        "unfinished": "NOT OK: an unfinished copy (interrupted while it was being made)",
    }
    head = verdict.get(report.status, report.status)
    if report.ok and not report.anchored:
        head = ("NOT ANCHORED: unchanged and consistently signed, but nothing ties the signing "
                "key to a trusted organisation: who made this cannot be told")
    print(f"{report.path}: {head}")
    print(f"  recording  {report.recording_id} (copy {report.copy_number}, "
          f"made by the {report.made_by})")
    print(f"  duration   {report.duration_seconds} s, recording {report.recording_status}")
    if report.device_fingerprint:
        print(f"  device     {fingerprint_display(report.device_fingerprint)}")
    if report.made:
        print(f"  made       {report.made}"
              + ("" if report.claims_signed else "  (copy number, maker, time NOT signed)"))
    if report.chain is not None and report.ok and report.chain.anchored:
        _print_trust(report.chain)  # (not anchored: the note below says so)
    for a, b in report.changed_seconds:
        print(f"  changed    second {a:g} – {b:g}")
    for note in report.notes:
        print(f"  note: {note}")
    for f in report.findings:
        print(f"  FINDING {f.code}: {f.message}")
    advice = _COPY_NEXT.get(report.status)
    if report.status == "unchanged" and not report.anchored:
        advice = ("compare the device fingerprint above with the one the organisation "
                  "publishes; if they match, keep this folder as it is")
    if advice:
        print(f"  next: {advice}")


#: What to do next, for each verdict on a copy (the page says the same).
_COPY_NEXT = {
    "unchanged": "keep this folder as it is (all files together); copy it whole to keep a backup",
    "changed": "this is not the original: ask the organisation for a new copy",
    "not_signed": "this is not the original: ask the organisation for a new copy",
    "wrong_device": "compare the device fingerprint with the one the organisation publishes; "
    "if it is not there, ask the organisation for a new copy",
    "unfinished": "this copy was never finished: ask for a new copy",
}


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit 0 / 1 / 2 as above, and 3: genuine but not anchored (cli_trust)."""
    from akkoord.cli_support import (
        check_folder_kind,
        check_readable,
        page_notes,
        resolve_recording,
    )

    path = resolve_recording(args.path, _state(args))
    check_readable(path)
    if path.is_file():
        _check_wav_given(path)
    check_folder_kind(path)
    trust, revocations = cli_trust.trust_inputs(args)
    if _is_copy(path):
        from akkoord.export.copycheck import verify_copy

        report: Any = verify_copy(path, _trusted_key(args), trust, revocations)
        report.notes += page_notes(Path(report.path))
        if args.json:
            _print_json(report.to_json())
        else:
            _print_copy_report(report)
        return cli_trust.verdict_exit(report.ok, report.anchored)
    from akkoord.store.manifest import read_manifest
    from akkoord.store.verify import Finding, verify_recording

    report = verify_recording(path, _org_key(args), _trusted_key(args))
    signed = read_manifest(path, segments=False) if path.is_dir() else None
    chain = cli_trust.anchor_manifest(signed.doc if signed else None, trust, revocations)
    if chain.finding:
        report.findings.append(Finding("certificate", chain.message))
    doc = report.to_json()
    doc.update(anchored=report.ok and chain.anchored, organisation=chain.organisation,
               trust=chain.to_json())
    if args.json:
        _print_json(doc)
    else:
        _print_report(report)
        if report.ok:
            _print_trust(chain)
    return cli_trust.verdict_exit(report.ok, chain.anchored)


def _print_trust(chain: Any) -> None:
    from akkoord.store.keys import fingerprint_display

    if chain.anchored:
        print(f"  organisation {chain.organisation} "
              f"(signing key {fingerprint_display(chain.org_fingerprint)})")
        print(f"  device cert  {chain.label!r}, serial {chain.serial}, "
              f"valid {chain.valid_from} to {chain.valid_until}")
    elif not chain.finding:
        print(f"  NOT ANCHORED: {chain.message}. Cannot tell who made this: compare the device "
              "fingerprint with the one the organisation publishes, or verify with --trust.")


def _org_signing_key_path(args: argparse.Namespace) -> Path:
    """--org-signing-key, or org-signing.key beside --key (where `keys org-new` puts both), so
    `akkoord export REC --key K --to DIR` keeps working and every copy is still logged."""
    if args.org_signing_key:
        return Path(args.org_signing_key)
    beside = Path(args.key).parent / "org-signing.key"
    if beside.is_file():
        return beside
    raise UsageError(
        f"--org-signing-key: no org-signing.key beside {args.key}; give the organisation "
        "signing key (it signs the organisation's own log of the copies it makes)"
    )


def cmd_export(args: argparse.Namespace) -> int:
    """The organisation's copy on request, from its archive, after the export window."""
    from akkoord.cli_support import resolve_recording
    from akkoord.clock import SystemClock
    from akkoord.errors import FormatError, UsageError
    from akkoord.export.package import write_copy
    from akkoord.store.keys import DevicePublicKey
    from akkoord.store.manifest import read_manifest
    from akkoord.store.verify import load_content_keys, verify_recording

    directory = resolve_recording(args.recording, _state(args))
    signing_path = _org_signing_key_path(args)
    target = Path(args.to)
    if not target.is_dir():
        # An unmounted /media/stick is an empty folder on the SD card at best: never create it.
        raise UsageError(f"--to {target}: no such folder; mount the stick (or make the folder) "
                         "first")
    org = _org_key(args)
    trusted = _trusted_key(args)
    report = verify_recording(directory, org, trusted)
    if not report.ok:
        _print_report(report)
        print("refusing to make a copy of a recording that fails verification",
              file=sys.stderr)
        return EXIT_FINDINGS
    signed = read_manifest(directory, segments=False)
    assert signed is not None
    device_key = trusted or DevicePublicKey.from_json(signed.doc["device"], "manifest")
    from akkoord.store.orglog import OrgLog, next_copy_number
    from akkoord.trust import OrgSigningKey

    # The organisation's own signed log records the copy before it is written (FORMAT §11.5).
    signing = OrgSigningKey.load(signing_path)
    log_path = Path(args.org_log) if args.org_log else signing_path.parent / "org-custody.log"
    olog = OrgLog(log_path, signing, SystemClock())
    number = next_copy_number(directory, olog.view())
    head = olog.append("export", signed.doc["recording_id"], copy_number=number,
                       chain_head=signed.doc.get("chain_head"), made_by="organisation")
    keys = load_content_keys(directory, org)
    try:
        result = write_copy(directory, keys, Path(args.to),
                            copy_number=number, made_by="organisation", clock=SystemClock(),
                            device_key=device_key, custody_head=head)
    except (FormatError, OSError) as exc:
        olog.append("export_failed", signed.doc["recording_id"], copy_number=number,
                    error=str(exc)[:300])
        print(f"akkoord: {exc}", file=sys.stderr)
        return EXIT_FINDINGS
    finally:
        keys.wipe()
    print(f"copy {number} written to {result.folder} and verified; "
          f"logged as entry {head['seq']} of {log_path}")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from akkoord.cli_support import resolve_recording
    from akkoord.store.inspect import inspect_recording

    doc = inspect_recording(resolve_recording(args.path, _state(args)))
    if args.json:
        _print_json(doc)
        return EXIT_OK
    m = doc["manifest"]
    print(
        f"{doc['path']}: recording {doc['recording_id']}, {len(doc['frames'])} frames, "
        f"{doc['size']} bytes"
    )
    if m:
        print(f"  manifest: {m['status']}, {m['duration_seconds']} s, signed={m['signed']}")
    else:
        print("  manifest: none (open or interrupted recording)")
    for fr in doc["frames"]:
        print(
            f"  #{fr['index']:<6} {fr['kind']:<8} @{fr['offset']:<10} {fr['length']:>7} B  "
            f"sample {fr['start_sample']}+{fr['samples']}"
            + (f"  {fr['meta'].get('event', '')}" if fr.get("meta") else "")
        )
    for d in doc["damage"]:
        print(f"  DAMAGE @{d['offset']} {d['length']} B: {d['reason']}")
    return EXIT_OK


def cmd_decrypt(args: argparse.Namespace) -> int:
    from akkoord.cli_support import refuse_overwrite, resolve_recording
    from akkoord.store.audio_out import decrypt_recording

    directory = resolve_recording(args.path, _state(args))
    refuse_overwrite(Path(args.out), args.force)
    # One pass: the WAV is written while the frames are verified, and published only once
    # the whole recording verified (or with --force).
    done = decrypt_recording(directory, _org_key(args), Path(args.out),
                             trusted_key=_trusted_key(args), force=args.force)
    report = done.report
    if not done.written:
        _print_report(report)
        print(
            "refusing to write audio that fails verification; use --force to write it "
            "anyway (the failures above are then reported with it)",
            file=sys.stderr,
        )
        return EXIT_FINDINGS
    print(f"wrote {args.out}: {done.total_samples} samples ({report.status})")
    if not report.ok:
        _print_report(report)
    for p in done.problems:
        print(f"  problem: {p}")
    return EXIT_OK if report.ok and not done.problems else EXIT_FINDINGS


def cmd_list(args: argparse.Namespace) -> int:
    from akkoord.cli_support import ensure_state_exists, list_rows, print_list

    state = _state(args)
    ensure_state_exists(state)
    rows = list_rows(state)
    if args.json:
        _print_json(rows)
    else:
        print_list(rows, state)
    return EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    from akkoord.clock import SystemClock
    from akkoord.store.custody import CustodyLog
    from akkoord.store.recovery import recover_all

    state = _state(args)
    identity = state.identity()
    clock = SystemClock()
    results = recover_all(state, identity, clock, CustodyLog(state.custody_path, identity, clock))
    for r in results:
        print(f"{r.recording_id}: {r.action} ({r.detail})")
    if not results:
        print("nothing to recover")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from akkoord.clock import SystemClock
    from akkoord.store.custody import CustodyLog
    from akkoord.store.delete import delete_recording

    if not args.yes:
        print(
            "deleting destroys the recording's keys for good; add --yes to confirm", file=sys.stderr
        )
        return EXIT_USAGE
    state = _state(args)
    identity = state.identity()
    custody = CustodyLog(state.custody_path, identity, SystemClock())
    delete_recording(state, args.recording_id, custody, args.reason)
    print(f"deleted {args.recording_id} (keys shredded, files removed, logged)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import dataclasses
    import signal
    import threading

    from akkoord.clock import SystemClock
    from akkoord.config import load_config
    from akkoord.daemon import Daemon, Reporter, harden_process, setup_logging
    from akkoord.notify import Notifier
    from akkoord.panel import make_pin_factory
    from akkoord.store.layout import StateDir, state_from_env

    config = load_config(Path(args.config) if args.config else None)
    if args.console or args.simulate:  # simulated: no serial port unless asked for
        config = dataclasses.replace(
            config, console=dataclasses.replace(config.console, port=args.console or ""))
    state = StateDir(state_from_env(getattr(args, "state", None)))
    setup_logging(args.simulate)
    if not args.simulate:
        harden_process()
    daemon: Any = None
    wav = None
    if args.simulate:
        from akkoord.simulator import Printer, Simulator

        config = dataclasses.replace(
            config, panel=dataclasses.replace(config.panel, pin_factory="mock"))
        printer = Printer(sys.stdout, args.json,
                          lambda: daemon.machine_state if daemon is not None else "starting")
        reporter = Reporter(printer)
    else:
        reporter = Reporter()
    if args.audio_file:
        from akkoord.audio import WavBackend, check_wav

        check_wav(Path(args.audio_file), config.audio.sample_rate)
        wav = WavBackend(Path(args.audio_file), config.audio)
        backend: Any = wav
    else:
        from akkoord.audio import AudioBackend

        backend = AudioBackend(config.audio)
    daemon = Daemon(config, state, backend=backend, clock=SystemClock(), notifier=Notifier(),
                    reporter=reporter, pin_factory=make_pin_factory(config.panel.pin_factory),
                    simulated=args.simulate)

    def on_signal(signum: int, _frame: object) -> None:
        daemon.report("signal", signal=signal.Signals(signum).name)
        daemon.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = None
    sim = None
    if args.simulate:
        sim = Simulator(daemon, wav_backend=wav, keep_going=args.keep_going)
        threading.Thread(target=sim.feed, args=(sys.stdin,), name="akkoord-stdin",
                         daemon=True).start()
    else:
        from akkoord.control import ControlServer

        server = ControlServer(daemon, mount_root=Path(config.export.mount_root))
        server.start()
    try:
        code = daemon.run()
    finally:
        if server is not None:
            server.close()
    if sim is not None and sim.failures:
        return EXIT_USAGE
    if sim is not None and daemon.failed_starts:
        return EXIT_FAILURE  # both pressed, nothing recorded: a script must not pass
    return code


def cmd_stick(args: argparse.Namespace) -> int:
    # Root, from akkoord-stick@.service: mount for the recorder and hand over, or tell and
    # unmount (akkoord.appliance).
    from akkoord import appliance
    from akkoord.control import DEFAULT_SOCKET
    from akkoord.export.stick import DEFAULT_ROOT

    sock = Path(args.socket) if args.socket else DEFAULT_SOCKET
    root = Path(args.mount_root) if args.mount_root else DEFAULT_ROOT
    if args.change == "added":
        print(appliance.stick_added(args.device, root=root, socket=sock))
    else:
        appliance.stick_removed(args.device, root=root, socket=sock)
    return EXIT_OK


@contextlib.contextmanager
def _exit_on_termination() -> Iterator[None]:
    """SIGTERM/SIGHUP unwind like Ctrl-C: the bench holds gigabytes of scratch on tmpfs, a
    loop-mounted stick and a cgroup, all released by `with`/`finally` blocks that a default
    SIGTERM (immediate death) would skip."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def cmd_bench(args: argparse.Namespace) -> int:
    from akkoord.bench import run_bench
    from akkoord.bench_targets import judge, print_judged

    with _exit_on_termination():
        result = run_bench(quick=args.quick, big_mb=args.big_mb)
    if args.json:
        print(json.dumps({**result, "verdicts": judge(result)}, sort_keys=True))
    else:
        print_judged(result)
    return EXIT_OK


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="state directory (default: $AKKOORD_STATE or /var/lib/akkoord)",
    )
    parser = _Parser(
        prog="akkoord",
        parents=[common],
        description="A recorder that records only with both parties' akkoord.",
    )
    parser.add_argument("--version", action="version", version=f"akkoord {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keys = sub.add_parser("keys", help="device identity and organisation keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    p = ksub.add_parser("init", parents=[common], help="create this device's identity")
    p.set_defaults(func=cmd_keys_init)
    p = ksub.add_parser(
        "org-new",
        parents=[common],
        help="make an organisation key pair (on the organisation's computer)",
    )
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--name", default="organisation", metavar="ORG",
                   help="the organisation's name, as verify pages show it")
    p.add_argument(
        "--kem",
        choices=("mlkem768-x25519", "x25519"),
        default="mlkem768-x25519",
        help="hybrid post-quantum (default, for records kept ~20 years) or X25519",
    )
    p.set_defaults(func=cmd_keys_org_new)
    p = ksub.add_parser(
        "add-recipient",
        parents=[common],
        help="wrap new recordings to this organisation public key",
    )
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_keys_add_recipient)
    p = ksub.add_parser("show", parents=[common], help="fingerprints")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_show)
    cli_trust.register_keys(ksub, common)

    p = sub.add_parser("verify", parents=[common],
                       help="check a recording folder, or a copy (folder or its WAV)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.add_argument("--key", metavar="ORG_PRIVATE_KEY", help="also decrypt and check every segment")
    p.add_argument(
        "--device-key",
        metavar="FILE",
        help="the device public key to expect (default: this device's, if any)",
    )
    cli_trust.add_verify_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", parents=[common],
                       help="make a copy package from the archive (organisation key)")
    p.add_argument("recording", metavar="RECORDING",
                   help="recording folder, or its id or first digits of its id in --state")
    p.add_argument("--key", required=True, metavar="ORG_PRIVATE_KEY")
    p.add_argument("--to", required=True, metavar="DIR")
    p.add_argument("--device-key", metavar="FILE")
    p.add_argument("--org-signing-key", metavar="ORG_SIGNING_KEY",
                   help="signs the organisation's own log of the copies it makes "
                        "(default: org-signing.key next to --key)")
    p.add_argument("--org-log", metavar="FILE",
                   help="the organisation's copy log (default: org-custody.log next to the key)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("inspect", parents=[common], help="list frames (no key needed)")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "decrypt", parents=[common], help="the organisation's way back to the audio (WAV)"
    )
    p.add_argument("path", metavar="PATH")
    p.add_argument("--key", required=True, metavar="ORG_PRIVATE_KEY")
    p.add_argument("--out", required=True, metavar="FILE.wav")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing --out file, and write the audio even if verification "
        "fails (the failures are reported with it)",
    )
    p.add_argument("--device-key", metavar="FILE")
    p.set_defaults(func=cmd_decrypt)

    p = sub.add_parser("list", parents=[common], help="recordings on this device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "recover",
        parents=[common],
        help="close recordings a power loss left open (also done at start-up)",
    )
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser(
        "delete", parents=[common], help="crypto-shred a recording (retention), logged"
    )
    p.add_argument("recording_id", metavar="RECORDING_ID")
    p.add_argument("--reason", default="retention period ended")
    p.add_argument("--yes", action="store_true", help="confirm")
    p.set_defaults(func=cmd_delete)

    from akkoord import cli_custody

    cli_custody.register(sub, common)

    p = sub.add_parser("run", parents=[common], help="run the recorder (the systemd service)")
    p.add_argument("--config", metavar="FILE",
                   help="configuration (default /etc/akkoord/akkoord.toml, else built-in)")
    p.add_argument("--simulate", action="store_true",
                   help="mock GPIO pins, commands on standard input (see akkoord.simulator)")
    p.add_argument("--json", action="store_true", help="with --simulate: JSON lines")
    p.add_argument("--keep-going", action="store_true",
                   help="with --simulate: a command that cannot be carried out does not end "
                   "the run (the exit code is still 2)")
    p.add_argument("--audio-file", metavar="FILE.wav",
                   help="a WAV file stands in for the microphone, paced at real time")
    p.add_argument("--console", metavar="PORT",
                   help="serve the admin console on this serial port or pyserial URL "
                        "(overrides [console] port; docs/CONSOLE.md)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stick", parents=[common],
                       help="root, from akkoord-stick@.service: mount a stick for the "
                            "recorder and hand it over, or unmount it")
    p.add_argument("change", choices=("added", "removed"))
    p.add_argument("device", metavar="DEVICE", help="e.g. /dev/sda1")
    p.add_argument("--socket", metavar="PATH", help=argparse.SUPPRESS)
    p.add_argument("--mount-root", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_stick)
    cli_appliance.register(sub, common)

    p = sub.add_parser("bench", parents=[common], help="measure against limits")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quick", action="store_true", help="smaller sizes, for a quick look")
    p.add_argument(
        "--big-mb",
        type=int,
        default=2048,
        metavar="MB",
        help="size of the recording whose verification RSS is measured",
    )
    p.set_defaults(func=cmd_bench)
    cli_console.register(sub, common)
    cli_archive.register(sub, common)

    from akkoord.cli_help import apply_help

    apply_help(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: a code, not an exception
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (StorageError, HardwareError) as exc:
        print(f"akkoord: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (AkkoordError, FileExistsError) as exc:
        print(f"akkoord: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        name = f" {exc.filename}" if exc.filename else ""
        print(f"akkoord:{name}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
