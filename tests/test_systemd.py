"""systemd/: the units, the udev rule and the tmpfiles lines, checked offline.

- `systemd-analyze verify` on both units (a copy whose ExecStart= points at this venv's
  `akkoord`, because verify insists the executable exists), with a self-check that it does
  complain about a broken unit, so a silent verify cannot pass for a clean one.
- The udev rule is parsed and evaluated against the properties real devices carry.
- Every ExecStart=/ExecStop= command is parsed by the real CLI parser; the stick commands are
  run against a test socket and must send what the daemon's control server reads.
- Paths in the units agree with the daemon's defaults; no setting that would hide the daemon's
  stick mounts (a mount namespace) or close its devices crept in; the system call filter allows
  the calls the daemon makes on purpose.
- The tmpfiles lines parse, and `systemd-tmpfiles --root` creates the directories.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from akkoord import cli, config, control
from akkoord.export import stick
from akkoord.notify import Notifier
from akkoord.store import layout

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
SERVICE = SYSTEMD / "akkoord.service"
STICK = SYSTEMD / "akkoord-stick@.service"
RULES = SYSTEMD / "99-akkoord-stick.rules"
TMPFILES = SYSTEMD / "akkoord.tmpfiles"

INSTALLED_EXE = "/opt/akkoord/.venv/bin/akkoord"
REPO_EXE = Path(sys.executable).parent / "akkoord"
INSTANCE = "sda1"

# Settings that give a service its own mount namespace in systemd 252 or later (PrivateNetwork=
# and PrivateIPC= imply PrivateMounts= from v254). Stick mounts made inside one would not reach
# the host, so neither unit may use them (README.md, "Hardening").
MOUNT_NAMESPACE_KEYS = {
    "BindPaths", "BindReadOnlyPaths", "ExecPaths", "ExtensionDirectories", "ExtensionImages",
    "InaccessiblePaths", "MountAPIVFS", "MountFlags", "MountImages", "NoExecPaths",
    "PrivateDevices", "PrivateIPC", "PrivateMounts", "PrivateNetwork", "PrivatePIDs",
    "PrivateTmp", "ProcSubset", "ProtectControlGroups", "ProtectHome", "ProtectKernelLogs",
    "ProtectKernelModules", "ProtectKernelTunables", "ProtectProc", "ProtectSystem",
    "ReadOnlyPaths", "ReadWritePaths", "RootDirectory", "RootImage", "TemporaryFileSystem",
}  # fmt: skip
# Device allow-lists would close /dev/snd (a USB microphone may come later), /dev/gpiochip*
# and the sticks' block devices; ProtectClock= implies one (DeviceAllow=char-rtc).
DEVICE_POLICY_KEYS = {"DeviceAllow", "DevicePolicy", "PrivateDevices", "ProtectClock"}


# Known harmless `systemd-analyze verify` output: none about our units (systemd 252 prints
# nothing for them). verify also loads the units ours refer to (sound.target, time-set.target,
# dev-sda1.device, ...) from the host, and reports a host's own broken unit files under their
# names; those are not ours to judge. Every line naming an akkoord unit or file is a finding.
def _is_ours(line: str) -> bool:
    return "akkoord" in line


# --- unit files ---------------------------------------------------------------------------


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order, as systemd reads them (comments, continuations)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= expected once, found {found}"
    return found[0]


def words(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [w for v in values(unit, section, key) for w in v.split()]


def all_keys(unit: dict[str, list[tuple[str, str]]]) -> set[str]:
    return {k for entries in unit.values() for k, _ in entries}


_UNITS_S = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0,
            "min": 60.0, "m": 60.0, "h": 3600.0}  # fmt: skip


def seconds(span: str) -> float:
    """systemd time span ("10s", "5min", "1min 30s", bare number = seconds) in seconds."""
    total, parts = 0.0, re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    assert parts and "".join(n + u for n, u in parts) == span.replace(" ", ""), span
    for number, unit in parts:
        total += float(number) * _UNITS_S[unit or "s"]
    return total


def command(value: str) -> list[str]:
    """An Exec*= line as argv: prefixes (-@:+!) dropped, %I/%i as instance INSTANCE."""
    argv = shlex.split(value.lstrip("-@:+!").replace("%I", INSTANCE).replace("%i", INSTANCE))
    assert argv, value
    return argv


@pytest.fixture(scope="module")
def service() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(SERVICE)


@pytest.fixture(scope="module")
def stick_unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(STICK)


# --- systemd-analyze verify -------------------------------------------------------------------


def _analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return exe


def _installable_copies(directory: Path, edit: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Copies of both units whose commands point at this venv's akkoord (verify checks that
    every ExecStart= executable exists), plus optional text edits."""
    if not REPO_EXE.is_file():
        pytest.skip(f"{REPO_EXE} missing: run the tests with the venv's python (make test)")
    if any(c.isspace() for c in str(REPO_EXE)):
        pytest.skip(f"{REPO_EXE}: a path with white space would need quoting in ExecStart=")
    out, applied = [], set()
    for src in (SERVICE, STICK):
        text = src.read_text()
        assert INSTALLED_EXE in text, f"{src.name} no longer runs {INSTALLED_EXE}"
        text = text.replace(INSTALLED_EXE, str(REPO_EXE))
        for old, new in (edit or {}).items():
            if old in text:
                text = text.replace(old, new)
                applied.add(old)
        dst = directory / src.name
        dst.write_text(text)
        out.append(dst)
    assert applied == set(edit or {}), f"edits that no longer apply: {set(edit or {}) - applied}"
    return out[0], out[1]


def _verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_analyze(), "verify", *map(str, units)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": ""},
    )  # fmt: skip


def _findings(directory: Path, edit: dict[str, str] | None = None) -> list[str]:
    """What verify says about our two units (the template instantiated the way udev does it,
    akkoord-stick@sda1.service); empty when they are clean."""
    svc, tmpl = _installable_copies(directory, edit)
    r = _verify(svc, directory / tmpl.name.replace("@.", f"@{INSTANCE}."))
    ours = [line for line in (r.stderr + r.stdout).splitlines() if _is_ours(line)]
    return ours + ([f"exit status {r.returncode}"] if r.returncode else [])


def test_units_verify_clean(tmp_path: Path) -> None:
    findings = _findings(tmp_path)
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        ({"RemainAfterExit=yes": "RemainAfterExitt=yes"}, "Unknown key"),
        ({"WatchdogSec=10s": "WatchdogSec=ten"}, "Failed to parse sec value"),
        ({f"{REPO_EXE} run": "/nonexistent/akkoord run"}, "not executable"),
    ],
)  # fmt: skip
def test_verify_complains_about_a_broken_unit(
    tmp_path: Path, edit: dict[str, str], expect: str
) -> None:
    """The check above is not blind: each deliberate mistake is a finding."""
    findings = _findings(tmp_path, edit)
    assert any(expect in line for line in findings), findings


# --- akkoord.service --------------------------------------------------------------------------


def test_service_is_notify_with_a_watchdog_the_daemon_follows(service: dict) -> None:
    assert one(service, "Service", "Type") == "notify"
    assert one(service, "Service", "NotifyAccess") == "main"
    watchdog = seconds(one(service, "Service", "WatchdogSec"))
    assert 4 <= watchdog <= 30, "long enough for a busy Zero 2 W, short enough to matter"
    # What systemd hands the daemon, read by the daemon's own notifier: it pings at half that.
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": str(int(watchdog * 1e6))}
    assert Notifier(env).watchdog_interval == watchdog
    assert one(service, "Service", "WatchdogSignal") == "SIGABRT"
    assert "PYTHONFAULTHANDLER=1" in words(service, "Service", "Environment")


def test_service_restarts_forever(service: dict) -> None:
    assert one(service, "Service", "Restart") == "always"
    assert 1 <= seconds(one(service, "Service", "RestartSec")) <= 30
    # 0 = no start rate limit: the recorder is never left dead after a crash loop.
    assert seconds(one(service, "Unit", "StartLimitIntervalSec")) == 0
    assert not values(service, "Unit", "StartLimitAction")


def test_service_stops_after_the_seal(service: dict) -> None:
    # SIGTERM to the daemon, which seals the recording within 2 s; SIGKILL only after that.
    assert one(service, "Service", "KillMode") == "mixed"
    assert one(service, "Service", "KillSignal") == "SIGTERM"
    assert 2 < seconds(one(service, "Service", "TimeoutStopSec")) <= 10
    # Recovery at start-up reads whole recordings: more than the 90 s default.
    assert seconds(one(service, "Service", "TimeoutStartSec")) >= 120


def test_service_orders_after_clock_and_sound_but_starts_offline(service: dict) -> None:
    after = words(service, "Unit", "After")
    assert {"time-set.target", "sound.target"} <= set(after)
    # time-sync.target waits for the network; an offline recorder must still start.
    assert "time-sync.target" not in after + words(service, "Unit", "Wants")
    assert one(service, "Install", "WantedBy") == "multi-user.target"


def test_service_has_no_mount_namespace_nor_device_policy(service: dict) -> None:
    keys = all_keys(service)
    assert not keys & MOUNT_NAMESPACE_KEYS, "the daemon's stick mounts must reach the host"
    assert not keys & DEVICE_POLICY_KEYS, "the daemon needs /dev/snd, gpiochip, block devices"
    # libffi closures (the ctypes callback silencing ALSA); see the comment in the unit.
    assert "MemoryDenyWriteExecute" not in keys


def test_service_hardening_fits_the_daemon(service: dict) -> None:
    assert words(service, "Service", "RestrictAddressFamilies") == ["AF_UNIX"]
    caps = set(words(service, "Service", "CapabilityBoundingSet"))
    assert "CAP_SYS_ADMIN" in caps, "mounting sticks"
    assert not caps & {"CAP_SYS_TIME", "CAP_SYS_MODULE", "CAP_NET_ADMIN", "CAP_SYS_PTRACE"}
    assert one(service, "Service", "NoNewPrivileges") == "yes"
    assert one(service, "Service", "LimitCORE") == "0", "keys are in memory: no core dumps"
    assert not values(service, "Service", "User"), "root: it mounts sticks"
    assert not values(service, "Service", "UMask"), "copies on ext4 sticks must stay 0644"


def _syscall_groups() -> dict[str, list[str]]:
    out = subprocess.run([_analyze(), "syscall-filter"], capture_output=True, text=True,
                         timeout=60, check=True).stdout  # fmt: skip
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.split()[0], [])
        elif current is not None and line.strip() and not line.strip().startswith("#"):
            current.append(line.split()[0])
    return groups


def _allowed_syscalls(unit: dict) -> set[str]:
    groups = _syscall_groups()

    def expand(item: str) -> set[str]:
        if not item.startswith("@"):
            return {item}
        assert item in groups, f"unknown system call group {item}"
        return set().union(*(expand(x) for x in groups[item]))

    allowed = expand("@default")  # always allowed once a filter is set
    for value in values(unit, "Service", "SystemCallFilter"):
        deny = value.startswith("~")
        names = set().union(*(expand(x) for x in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


def test_service_syscall_filter_allows_what_the_daemon_calls(service: dict) -> None:
    allowed = _allowed_syscalls(service)
    needed = {
        "mount", "umount2",                # sticks (mount/umount children inherit the filter)
        "adjtimex", "clock_adjtime",       # clock quality, read-only (akkoord/clock.py)
        "ioctl", "poll", "mmap",           # ALSA, gpiochip
        "mknodat",                         # lgpio's notification FIFO
        "memfd_create",                    # libffi closures' fallback (ctypes callbacks)
        "socket", "sendto", "recvfrom",    # control socket, sd_notify
        "execve", "wait4", "fsync", "renameat2", "statfs",
    }  # fmt: skip
    assert needed <= allowed, f"filtered out: {sorted(needed - allowed)}"
    assert not {"clock_settime", "settimeofday", "init_module", "reboot", "ptrace"} & allowed
    assert one(service, "Service", "SystemCallErrorNumber") == "EPERM"


def test_service_paths_agree_with_the_daemon(service: dict) -> None:
    state = Path("/var/lib") / one(service, "Service", "StateDirectory")
    runtime = Path("/run") / one(service, "Service", "RuntimeDirectory")
    etc = Path("/etc") / one(service, "Service", "ConfigurationDirectory")
    assert state == layout.DEFAULT_STATE
    assert control.DEFAULT_SOCKET.parent == runtime
    mount_root = Path(config.ExportConfig.mount_root)
    assert mount_root == stick.DEFAULT_ROOT == runtime / "sticks"
    assert inspect.signature(control.ControlServer).parameters["mount_root"].default == mount_root
    assert config.DEFAULT_PATH.parent == etc
    assert one(service, "Service", "StateDirectoryMode") == "0700"
    assert one(service, "Service", "RuntimeDirectoryMode") == "0700"
    # Never removed on stop: sticks may be mounted below it.
    assert one(service, "Service", "RuntimeDirectoryPreserve") == "yes"
    # lgpio drops its FIFO into the working directory.
    assert Path(one(service, "Service", "WorkingDirectory")) == runtime
    cleanup = " ".join(values(service, "Service", "ExecStopPost"))
    assert f"{mount_root}/*/" in cleanup and "umount" in cleanup
    # `run` takes the state directory the unit creates.
    args = cli.build_parser().parse_args(command(one(service, "Service", "ExecStart"))[1:])
    assert Path(args.state) == state


def _mounted(path: Path) -> bool:
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return any(line.split()[1] == str(path) for line in mounts)


@pytest.mark.root
def test_service_stop_post_unmounts_left_over_sticks(service: dict, tmp_path: Path) -> None:
    """ExecStopPost='s shell, run for real on a stand-in for /run/akkoord/sticks: a mount left
    by a crashed daemon goes, a plain directory and an empty root are fine."""
    sticks = tmp_path / "sticks"
    left, plain = sticks / "sda1", sticks / "sdb1"
    left.mkdir(parents=True)
    plain.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(left)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    if r.returncode:
        pytest.skip(f"needs CAP_SYS_ADMIN: mount -t tmpfs refused ({r.stderr.strip()}); "
                    "run as root")
    try:
        value = one(service, "Service", "ExecStopPost")
        # A lone $ would be expanded (to nothing) by systemd itself, not by the shell.
        assert "$" not in value.replace("$$", ""), value
        argv = command(value)
        assert argv[:2] == ["/bin/sh", "-c"]
        # systemd turns $$ into $ before the shell sees it.
        script = argv[2].replace("$$", "$").replace(config.ExportConfig.mount_root, str(sticks))
        assert str(sticks) in script
        done = subprocess.run([*argv[:2], script], capture_output=True, text=True, timeout=30,
                              check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert not _mounted(left) and plain.is_dir()
        empty = tmp_path / "empty"
        empty.mkdir()
        again = subprocess.run([*argv[:2], script.replace(str(sticks), str(empty))],
                               capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
        assert again.returncode == 0, again.stderr
    finally:
        if _mounted(left):
            subprocess.run(["umount", "--lazy", str(left)], check=False)


# --- ExecStart=/ExecStop= against the real CLI ------------------------------------------------


def _exec_lines() -> list[tuple[str, str, str]]:
    out = []
    for path in (SERVICE, STICK):
        for key, value in parse_unit(path)["Service"]:
            if key in ("ExecStart", "ExecStop"):
                out.append((path.name, key, value))
    return out


@pytest.mark.parametrize(("unit", "key", "value"), _exec_lines())
def test_exec_commands_are_real_cli_subcommands(unit: str, key: str, value: str) -> None:
    argv = command(value)
    assert argv[0] == INSTALLED_EXE, f"{unit} {key}= runs {argv[0]}"
    args = cli.build_parser().parse_args(argv[1:])
    if unit == SERVICE.name:
        assert args.func is cli.cmd_run and not args.simulate and not args.audio_file
    else:
        assert args.func is cli.cmd_stick
        assert args.change == ("added" if key == "ExecStart" else "removed")
        assert args.device == f"/dev/{INSTANCE}"


def test_cli_parser_rejects_a_misspelled_subcommand() -> None:
    """The check above can fail: the parser refuses what the CLI does not have."""
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["stick", "inserted", "/dev/sda1"])


def test_stick_unit_commands_send_what_the_control_server_reads(
    stick_unit: dict, tmp_path: Path
) -> None:
    path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        got = []
        for key in ("ExecStart", "ExecStop"):
            argv = command(one(stick_unit, "Service", key))
            assert cli.main([*argv[1:], "--socket", str(path)]) == cli.EXIT_OK
            got.append(server.recv(512).decode("ascii"))
    # ControlServer splits "COMMAND DEVICE" and knows exactly these two commands.
    assert got == [f"usb-device /dev/{INSTANCE}", f"usb-removed /dev/{INSTANCE}"]


def test_stick_command_fails_clearly_without_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What ExecStart= does when akkoord.service is not running: a failed unit, a plain message.
    code = cli.main(["stick", "added", "/dev/sda1", "--socket", str(tmp_path / "none.sock")])
    assert code == cli.EXIT_USAGE
    assert "cannot reach the akkoord daemon" in capsys.readouterr().err


# --- akkoord-stick@.service -----------------------------------------------------------------------


def test_stick_unit_follows_the_device_and_the_daemon(stick_unit: dict) -> None:
    assert one(stick_unit, "Service", "Type") == "oneshot"
    assert one(stick_unit, "Service", "RemainAfterExit") == "yes"
    assert words(stick_unit, "Unit", "BindsTo") == ["dev-%i.device"]
    assert {"dev-%i.device", "akkoord.service"} <= set(words(stick_unit, "Unit", "After"))
    assert words(stick_unit, "Unit", "PartOf") == ["akkoord.service"]
    # The daemon may be gone when the stick is withdrawn; that must not fail the unit.
    assert one(stick_unit, "Service", "ExecStop").startswith("-")
    assert not values(stick_unit, "Install", "WantedBy"), "started by udev only"


def test_stick_unit_has_no_mount_namespace_and_no_capabilities(stick_unit: dict) -> None:
    assert not all_keys(stick_unit) & MOUNT_NAMESPACE_KEYS
    assert one(stick_unit, "Service", "CapabilityBoundingSet") == ""
    assert words(stick_unit, "Service", "RestrictAddressFamilies") == ["AF_UNIX"]
    assert {"socket", "sendto"} <= _allowed_syscalls(stick_unit)


# --- the udev rule --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z_]+(?:\{[^}]*\})?)\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)'
)
_MATCH_OPS = ("==", "!=")


def parse_rules(path: Path) -> list[list[tuple[str, str, str]]]:
    """udev rules as lists of (key, op, value); every character of a rule must be consumed."""
    rules, pending = [], ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if not line or line.startswith("#"):
            continue
        tokens, pos = [], 0
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            assert m and m.end() > pos, f"{path.name}: cannot parse at {line[pos : pos + 40]!r}"
            tokens.append((m["key"], m["op"], m["value"]))
            pos = m.end()
        rules.append(tokens)
    return rules


def _glob(pattern: str, value: str) -> bool:
    # udev patterns: shell globs, "|" separates alternatives; "" matches an unset property.
    return any(fnmatch.fnmatchcase(value, alt) for alt in pattern.split("|"))


def apply_rules(rules: list[list[tuple[str, str, str]]], device: dict[str, str]) -> dict:
    """What the rules do to a device: {"TAG": [...], "ENV": {...}} (match keys used here only)."""
    env = dict(device)
    result: dict = {"TAG": [], "ENV": {}}
    for rule in rules:
        matched = True
        for key, op, value in rule:
            if op not in _MATCH_OPS:
                continue
            name = key[4:-1] if key.startswith("ENV{") else key
            assert name in ("ACTION", "SUBSYSTEM", "KERNEL", "DEVTYPE") or key.startswith("ENV{"), (
                f"match key {key} is not simulated by this test"
            )
            hit = _glob(value, env.get(name, ""))
            if hit != (op == "=="):
                matched = False
                break
        if not matched:
            continue
        for key, op, value in rule:
            if op in _MATCH_OPS:
                continue
            value = value.replace("%k", env["KERNEL"])
            if key == "TAG":
                result["TAG"].append(value)
            elif key.startswith("ENV{"):
                name = key[4:-1]
                old = result["ENV"].get(name, "")
                result["ENV"][name] = (old + " " + value).strip() if op == "+=" else value
    return result


def _disk(kernel: str, devtype: str, **props: str) -> dict[str, str]:
    return {"ACTION": "add", "SUBSYSTEM": "block", "KERNEL": kernel, "DEVTYPE": devtype, **props}


USB = {"ID_BUS": "usb", "ID_USB_DRIVER": "usb-storage"}
OFFERED = {
    "FAT partition on a stick": _disk("sda1", "partition", **USB, ID_FS_TYPE="vfat",
                                      ID_PART_TABLE_TYPE="dos"),
    "exFAT partition": _disk("sdb1", "partition", **USB, ID_FS_TYPE="exfat",
                             ID_PART_TABLE_TYPE="gpt"),
    "ext4 partition": _disk("sdc2", "partition", **USB, ID_FS_TYPE="ext4",
                            ID_PART_TABLE_TYPE="dos", ID_FS_LABEL="backup"),
    "unpartitioned FAT stick": _disk("sda", "disk", **USB, ID_FS_TYPE="vfat"),
}  # fmt: skip
IGNORED = {
    "the stick's partitioned disk": _disk("sda", "disk", **USB, ID_PART_TABLE_TYPE="dos"),
    "NTFS partition": _disk("sda1", "partition", **USB, ID_FS_TYPE="ntfs"),
    "no file system": _disk("sda1", "partition", **USB),
    "SD card the system runs from": _disk("mmcblk0p2", "partition", ID_FS_TYPE="ext4",
                                          ID_PART_TABLE_TYPE="dos", ID_PATH="platform-mmc"),
    "SATA SSD in a USB enclosure": _disk("sda1", "partition", ID_BUS="ata",
                                         ID_USB_DRIVER="uas", ID_FS_TYPE="ext4"),
    "Pi OS boot partition on USB": _disk("sda1", "partition", **USB, ID_FS_TYPE="vfat",
                                         ID_FS_LABEL="bootfs"),
    "Pi OS root partition on USB": _disk("sda2", "partition", **USB, ID_FS_TYPE="ext4",
                                         ID_FS_LABEL="rootfs"),
    "stick removed": {**_disk("sda1", "partition", **USB, ID_FS_TYPE="vfat"), "ACTION": "remove"},
    "change event": {**_disk("sda1", "partition", **USB, ID_FS_TYPE="vfat"), "ACTION": "change"},
    "not a block device": {"ACTION": "add", "SUBSYSTEM": "sound", "KERNEL": "card1",
                           "ID_BUS": "usb", "ID_FS_TYPE": "vfat"},
}  # fmt: skip


@pytest.fixture(scope="module")
def rules() -> list[list[tuple[str, str, str]]]:
    return parse_rules(RULES)


def test_udev_rules_only_ask_systemd(rules: list) -> None:
    assert rules
    template = STICK.name  # akkoord-stick@.service
    for rule in rules:
        keys = {k for k, _, _ in rule}
        # No programs from udev: what they start is killed when the event is handled, and
        # udevd's PrivateMounts=yes would hide a mount anyway.
        assert not {k for k in keys if k.startswith(("RUN", "PROGRAM", "IMPORT"))}, rule
        assert ("ACTION", "==", "add") in rule
        assert ("SUBSYSTEM", "==", "block") in rule
        assert ("ENV{ID_BUS}", "==", "usb") in rule
        assert ("TAG", "+=", "systemd") in rule
        # += so other rules' SYSTEMD_WANTS survive; %k is the kernel name (sda1).
        assert ("ENV{SYSTEMD_WANTS}", "+=", template.replace("@.", "@%k.")) in rule
        (fs,) = [v for k, op, v in rule if k == "ENV{ID_FS_TYPE}" and op == "=="]
        assert set(fs.split("|")) == set(stick.ALLOWED_FS), "same file systems as the daemon"
    devtypes = {v for rule in rules for k, op, v in rule if k == "ENV{DEVTYPE}" and op == "=="}
    assert devtypes == {"partition", "disk"}


@pytest.mark.parametrize("name", sorted(OFFERED))
def test_udev_offers_sticks(rules: list, name: str) -> None:
    device = OFFERED[name]
    result = apply_rules(rules, device)
    assert "systemd" in result["TAG"]
    assert result["ENV"]["SYSTEMD_WANTS"] == f"akkoord-stick@{device['KERNEL']}.service"
    assert result["ENV"]["UDISKS_IGNORE"] == "1"


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_udev_leaves_other_devices_alone(rules: list, name: str) -> None:
    assert apply_rules(rules, IGNORED[name]) == {"TAG": [], "ENV": {}}


@pytest.mark.parametrize("device", sorted({d["KERNEL"] for d in OFFERED.values()} | {"sdab15"}))
def test_mount_adapter_accepts_what_udev_offers(tmp_path: Path, device: str) -> None:
    """The instance name (%k -> /dev/%I) passes the daemon's own device check, and is mounted
    with the options the design asks for. The mount command is captured, not run."""
    calls: list[list[str]] = []

    def run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    mounted = stick.mount_stick(f"/dev/{device}", root=tmp_path, run=run, probe=lambda d: "vfat")
    assert mounted.path == tmp_path / device
    (argv,) = calls
    assert argv[:3] == ["mount", "-t", "vfat"]
    assert argv[-2:] == [f"/dev/{device}", str(tmp_path / device)]
    assert {"nosuid", "nodev", "noexec", "noatime"} <= set(argv[4].split(","))


# --- tmpfiles -----------------------------------------------------------------------------------


def parse_tmpfiles(path: Path) -> list[dict[str, str]]:
    lines = []
    for raw in path.read_text().splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.split()
        assert 6 <= len(fields) <= 7, f"{path.name}: {raw!r}"
        lines.append(dict(zip(("type", "path", "mode", "user", "group", "age", "arg"), fields,
                              strict=False)))  # fmt: skip
    return lines


def test_tmpfiles_lines(service: dict) -> None:
    lines = parse_tmpfiles(TMPFILES)
    for line in lines:
        # "d" only: create and fix mode/owner. D/R/r/e would empty or clean -- recordings!
        assert line["type"] == "d", line
        assert line["mode"] == "0700", line
        assert line["user"] == line["group"] == "root", line
        assert line["age"] == "-", "never cleaned: recordings, and sticks mounted below"
        assert Path(line["path"]).is_absolute(), line
    runtime = Path("/run") / one(service, "Service", "RuntimeDirectory")
    assert {Path(line["path"]) for line in lines} == {
        runtime, Path(config.ExportConfig.mount_root), layout.DEFAULT_STATE,
    }  # fmt: skip


def test_tmpfiles_creates_the_directories(tmp_path: Path) -> None:
    exe = shutil.which("systemd-tmpfiles")
    if exe is None:
        pytest.skip("systemd-tmpfiles is not installed (Debian package systemd)")
    if os.geteuid() != 0:
        pytest.skip("needs root: the lines name owner root; only root can create them as such")
    r = subprocess.run([exe, "--create", f"--root={tmp_path}", str(TMPFILES)],
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    for line in parse_tmpfiles(TMPFILES):
        made = tmp_path / line["path"].lstrip("/")
        st = made.lstat()
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, made
        assert st.st_uid == 0, made
