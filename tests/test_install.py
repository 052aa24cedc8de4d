"""The appliance, offline: installer and units agree, the recorder's exposure score and its
justifications, the lgpio marker, the simulated configuration, and the root helpers
(akkoord.appliance) against real files, sockets and (as root) real tmpfs mounts.

Under a real systemd, end to end: `make system-test` (tests/system/run.py).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from akkoord import appliance, cli, config, control
from akkoord.errors import AkkoordError, UsageError
from akkoord.export import stick

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
INSTALL = SYSTEMD / "install.sh"
MAX_EXPOSURE = 2.0


def _install_vars() -> dict[str, str]:
    """PREFIX=..., CURRENT=$PREFIX/current, ... as the shell would expand them."""
    out: dict[str, str] = {}
    for line in INSTALL.read_text().splitlines():
        m = re.match(r"^([A-Z_]+)=(\S+)$", line)
        if m and "$(" not in m[2]:
            out[m[1]] = re.sub(r"\$(\w+)", lambda v: out[v[1]], m[2])
    return out


def _unit_files() -> list[Path]:
    return sorted(p for p in SYSTEMD.rglob("*") if p.suffix in (".service", ".conf", ".path")
                  and p.is_file())  # fmt: skip


def _exec_argv(path: Path) -> list[list[str]]:
    out = []
    for raw in path.read_text().splitlines():
        key, sep, value = raw.partition("=")
        if sep and key.strip().startswith("Exec") and value.strip():
            out.append(shlex.split(value.strip().lstrip("-@:+!")))
    return out


# --- installer <-> units ----------------------------------------------------------------------


def test_installer_and_units_agree_on_the_program() -> None:
    v = _install_vars()
    assert v["PREFIX"] == "/opt/akkoord" and v["EXE"] == "/opt/akkoord/current/bin/akkoord"
    seen = 0
    for path in _unit_files():
        for argv in _exec_argv(path):
            if argv[0] in ("/bin/sh", "/usr/bin/python3"):
                continue
            assert argv[0] == v["EXE"], f"{path.name} runs {argv[0]}, not {v['EXE']}"
            seen += 1
    assert seen >= 6  # recorder, simulated recorder, stick start/stop, clock, eject


def test_installer_installs_every_unit_it_ships() -> None:
    text = INSTALL.read_text()
    for path in _unit_files():
        rel = path.relative_to(REPO)
        assert str(rel).replace("systemd/", "$SRC/systemd/") in text or path.name in text, (
            f"install.sh does not install {rel}"
        )
    for rules in SYSTEMD.glob("*.rules"):
        assert rules.name in text
    for unit in ("akkoord.service", "akkoord-clock.path", "akkoord-eject.path"):
        assert re.search(rf"enable [^\n]*{re.escape(unit)}", text), f"{unit} not enabled"


def test_simulated_configuration_is_consistent() -> None:
    v = _install_vars()
    cfg = config.load_config(SYSTEMD / "simulated/akkoord.toml")
    assert cfg.panel.pin_factory == "mock"
    (argv,) = _exec_argv(SYSTEMD / "simulated/akkoord.conf")
    args = cli.build_parser().parse_args(argv[1:])
    assert args.func is cli.cmd_run and args.audio_file == v["SIM_WAV"] and not args.simulate
    # The drop-in resets ExecStart= first (otherwise systemd refuses two for a non-oneshot).
    assert "ExecStart=\n" in (SYSTEMD / "simulated/akkoord.conf").read_text()


def test_runtime_install_needs_no_browser_or_test_tools() -> None:
    text = INSTALL.read_text()
    assert "[test]" not in text and "chromium" not in text.lower()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in deps if re.match(r"(pytest|playwright|hypothesis|ruff)", d)]


def test_lgpio_comes_from_pypi_on_the_pi_only() -> None:
    from packaging.requirements import Requirement

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (lgpio,) = [Requirement(d) for d in deps if d.startswith("lgpio")]
    for machine, wanted in (("aarch64", True), ("armv7l", True), ("x86_64", False)):
        env = {"platform_machine": machine}
        assert lgpio.marker is not None and lgpio.marker.evaluate(env) is wanted, machine


def test_installer_refuses_bad_options_clearly() -> None:
    for args, expect in ((["--packages", "conda"], "use auto, distro or pypi"),
                         (["--purge"], "--purge only goes with --uninstall"),
                         (["--bogus"], "unknown option --bogus")):  # fmt: skip
        r = subprocess.run(["sh", str(INSTALL), *args], capture_output=True, text=True,
                           timeout=30, check=False)  # fmt: skip
        assert r.returncode == 1 and expect in r.stderr, (args, r.stderr)
    r = subprocess.run(["sh", "-n", str(INSTALL)], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_installer_passes_shellcheck() -> None:
    r = subprocess.run(["shellcheck", "-s", "sh", str(INSTALL)], capture_output=True, text=True,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout


# --- the recorder's exposure --------------------------------------------------------------------


def _security(unit: Path) -> tuple[float, list[str]]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    r = subprocess.run([exe, "security", "--offline=yes", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "SYSTEMD_COLORS": "0"})  # fmt: skip
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    open_items = [line.split()[1].split("=")[0] for line in r.stdout.splitlines()
                  if line.startswith("✗")]  # fmt: skip
    return float(m[1]), open_items


def _justified(text: str) -> str:
    start = text.index("# What is left of the exposure")
    return text[start:]


def test_recorder_exposure_is_low_and_every_remaining_point_justified(tmp_path: Path) -> None:
    unit = SYSTEMD / "akkoord.service"
    score, open_items = _security(unit)
    assert score <= MAX_EXPOSURE, f"exposure {score} > {MAX_EXPOSURE}"
    comment = _justified(unit.read_text())
    m = re.search(r"exposure \((\d+\.\d+)\)", comment)
    assert m and float(m[1]) == score, "the comment states the score systemd-analyze gives"
    for item in open_items:
        assert f"{item}=" in comment or item.split("/")[0] in comment, (
            f"{item} counts against the exposure but is not justified in the comment"
        )


def test_exposure_check_notices_a_weakened_unit(tmp_path: Path) -> None:
    """The check above can fail: the recorder as root with the network is far above 2.0."""
    text = (SYSTEMD / "akkoord.service").read_text()
    for line in ("User=akkoord", "PrivateNetwork=yes", "CapabilityBoundingSet=",
                 "ProtectSystem=strict", "RestrictAddressFamilies=AF_UNIX", "IPAddressDeny=any"):
        assert f"\n{line}\n" in text, line
        text = text.replace(f"\n{line}\n", "\n")
    weak = tmp_path / "akkoord.service"
    weak.write_text(text)
    score, open_items = _security(weak)
    assert score > MAX_EXPOSURE and "PrivateNetwork" in open_items


# --- root helpers: the clock ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2026-13-01T00:00:00Z", "2026-05-01 10:00:00", "2023-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
     "2026-05-01T10:00:00+02:00", "2026-05-01T10:00:00Z; reboot", "now"],
)  # fmt: skip
def test_clock_request_refuses_bad_times(text: str) -> None:
    with pytest.raises(UsageError):
        appliance.parse_request_time(text)


def test_clock_request_round_trip(tmp_path: Path) -> None:
    """The client writes, the root side (here a thread with a fake clock setter) applies."""
    set_to: list[float] = []
    done = threading.Event()

    def helper() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not done.is_set():
            if appliance.apply_clock_request(requests=tmp_path, set_clock=set_to.append,
                                             rtc=tmp_path / "no-rtc") is not None:  # fmt: skip
                return
            time.sleep(0.02)

    t = threading.Thread(target=helper)
    t.start()
    answer = appliance.write_clock_request("2031-02-03T04:05:06Z", requests=tmp_path, wait=10)
    done.set()
    t.join()
    assert answer["ok"] and answer["set_to"] == "2031-02-03T04:05:06Z" and answer["rtc"] is False
    assert set_to == [datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC).timestamp()]
    assert not (tmp_path / "clock").exists(), "the request is consumed"


def test_clock_request_is_readable_by_a_root_without_dac_override(tmp_path: Path) -> None:
    """The helper runs as root without CAP_DAC_OVERRIDE and outside the group: the request
    must be readable for "other" (the folder keeps everyone else out)."""
    with pytest.raises(AkkoordError):
        appliance.write_clock_request("2031-02-03T04:05:06Z", requests=tmp_path, wait=0.1)
    assert (tmp_path / "clock").stat().st_mode & 0o004


def test_clock_helper_refuses_a_crafted_request(tmp_path: Path) -> None:
    called: list[float] = []
    (tmp_path / "clock").write_text("1999-01-01T00:00:00Z\n")
    answer = appliance.apply_clock_request(requests=tmp_path, set_clock=called.append)
    assert answer is not None and answer["ok"] is False and "outside" in answer["error"]
    assert not called
    assert json.loads((tmp_path / "clock.result").read_text())["ok"] is False
    # A symlink planted as the request is not followed (O_NOFOLLOW).
    secret = tmp_path / "secret"
    secret.write_text("2030-01-01T00:00:00Z")
    (tmp_path / "clock").symlink_to(secret)
    answer = appliance.apply_clock_request(requests=tmp_path, set_clock=called.append)
    assert answer is not None and answer["ok"] is False and not called
    # Too long.
    (tmp_path / "clock").write_text("2030-01-01T00:00:00Z" + " " * 400)
    answer = appliance.apply_clock_request(requests=tmp_path, set_clock=called.append)
    assert answer is not None and answer["ok"] is False and "too long" in answer["error"]
    assert appliance.apply_clock_request(requests=tmp_path, set_clock=called.append) is None


def test_clock_client_reports_a_refusal_and_a_missing_helper(tmp_path: Path) -> None:
    with pytest.raises(AkkoordError, match="no answer from the clock helper"):
        appliance.write_clock_request("2031-02-03T04:05:06Z", requests=tmp_path, wait=0.3)
    (tmp_path / "clock").unlink()  # the unanswered request

    def refuse() -> None:
        while not (tmp_path / "clock").exists():
            time.sleep(0.02)
        appliance.apply_clock_request(requests=tmp_path, set_clock=lambda ts: (_ for _ in ()).throw(
            PermissionError(1, "Operation not permitted")))

    t = threading.Thread(target=refuse)
    t.start()
    with pytest.raises(AkkoordError, match=r"not set: .*not permitted"):
        appliance.write_clock_request("2031-02-03T04:05:06Z", requests=tmp_path, wait=10)
    t.join()


# --- root helpers: sticks -----------------------------------------------------------------------


def _tmpfs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
                       capture_output=True, text=True, check=False)  # fmt: skip
    if r.returncode:
        pytest.skip(f"needs CAP_SYS_ADMIN: mount -t tmpfs refused ({r.stderr.strip()}); be root")


def _is_mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path)
               for line in Path("/proc/self/mounts").read_text().splitlines())  # fmt: skip


@pytest.mark.root
def test_eject_requests_unmount_only_sticks_below_the_root(tmp_path: Path) -> None:
    root, requests, elsewhere = tmp_path / "sticks", tmp_path / "requests", tmp_path / "etc"
    requests.mkdir()
    _tmpfs(root / "sda1")
    _tmpfs(elsewhere)
    try:
        for name in ("eject-sda1", "eject-..", "eject-sdb1", "unrelated"):
            (requests / name).touch()
        (requests / "eject-etc").touch()
        done = appliance.process_eject_requests(requests=requests, root=root)
        assert done == ["sda1"] and not _is_mounted(root / "sda1")
        assert _is_mounted(elsewhere), "a request names a stick, never another path"
        assert sorted(os.listdir(requests)) == ["unrelated"]
    finally:
        for p in (root / "sda1", elsewhere):
            if _is_mounted(p):
                subprocess.run(["umount", "-l", str(p)], check=False)


@pytest.mark.root
def test_request_eject_waits_for_the_root_helper(tmp_path: Path) -> None:
    root, requests = tmp_path / "sticks", tmp_path / "requests"
    requests.mkdir()
    _tmpfs(root / "sdb1")
    try:
        helper = threading.Thread(target=lambda: (time.sleep(0.3), appliance.process_eject_requests(
            requests=requests, root=root)))
        helper.start()
        appliance.request_eject("sdb1", root / "sdb1", requests=requests, timeout=10)
        helper.join()
        assert not _is_mounted(root / "sdb1")
        with pytest.raises(stick.StickError):
            appliance.request_eject("../x", root / "x", requests=requests)
    finally:
        if _is_mounted(root / "sdb1"):
            subprocess.run(["umount", "-l", str(root / "sdb1")], check=False)


@pytest.mark.root
def test_stick_removed_tells_the_daemon_and_unmounts(tmp_path: Path) -> None:
    root, sock = tmp_path / "sticks", tmp_path / "control.sock"
    _tmpfs(root / "sdc1")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(sock))
        server.settimeout(5)
        appliance.stick_removed("/dev/sdc1", root=root, socket=sock)
        assert server.recv(512) == b"usb-removed /dev/sdc1"
    assert not _is_mounted(root / "sdc1") and not (root / "sdc1").exists()
    # No daemon listening: it still unmounts.
    _tmpfs(root / "sdc1")
    appliance.stick_removed("/dev/sdc1", root=root, socket=tmp_path / "gone.sock")
    assert not _is_mounted(root / "sdc1")
    with pytest.raises(stick.StickError):
        appliance.stick_removed("/dev/../etc", root=root, socket=sock)


@pytest.mark.root
def test_stick_added_gives_the_recorder_a_folder_on_ext4(tmp_path: Path) -> None:
    """ext4 keeps its owners: the recorder gets its own folder; a symlink there is refused."""
    root, sock = tmp_path / "sticks", tmp_path / "control.sock"
    user = pwd.getpwuid(os.getuid()).pw_name

    def fake_mount(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        if argv[0] == "mount":
            Path(argv[-1]).mkdir(exist_ok=True)
        return subprocess.CompletedProcess(argv, 0, "", "")

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(sock))
        server.settimeout(5)
        folder = appliance.stick_added("/dev/sdd1", root=root, socket=sock, user=user,
                                       run=fake_mount, probe=lambda d: "ext4",
                                       check_device=False)  # fmt: skip
        assert folder == root / "sdd1" / appliance.EXT4_FOLDER and folder.is_dir()
        assert server.recv(512).decode() == f"usb-mounted /dev/sdd1 {folder}"
        # The same stick again: the folder is already the recorder's (no CAP_FOWNER needed).
        assert appliance.stick_added("/dev/sdd1", root=root, socket=sock, user=user,
                                     run=fake_mount, probe=lambda d: "ext4",
                                     check_device=False) == folder  # fmt: skip
        assert server.recv(512).decode() == f"usb-mounted /dev/sdd1 {folder}"
        # A stick whose "akkoord" is a symlink (to anywhere): refused, unmounted again.
        folder.rmdir()
        folder.symlink_to(tmp_path)
        calls: list[str] = []

        def record(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
            calls.append(argv[0])
            return fake_mount(argv, **kw)

        with pytest.raises(stick.StickError, match="not a usable folder"):
            appliance.stick_added("/dev/sdd1", root=root, socket=sock, user=user, run=record,
                                  probe=lambda d: "ext4", check_device=False)  # fmt: skip
        assert calls == ["mount", "umount"]


def test_stick_added_needs_the_recorder_user() -> None:
    with pytest.raises(UsageError, match="run the installer"):
        appliance.stick_added("/dev/sda1", user="no-such-user-akkoord")


# --- the control server: hand-over and simulated presses ---------------------------------------


class _FakeDaemon:
    def __init__(self, pin_factory: object = None) -> None:
        self.stopping = threading.Event()
        self.inserted: list[tuple[Path, object]] = []
        self.reports: list[tuple[str, dict]] = []
        self.panel = SimpleNamespace(pin_factory=pin_factory)

    def report(self, event: str, **fields: object) -> None:
        self.reports.append((event, fields))

    def stick_inserted(self, path: Path, unmount: object) -> None:
        self.inserted.append((path, unmount))

    def stick_removed(self) -> None:
        self.reports.append(("removed", {}))


@pytest.mark.root
def test_control_server_accepts_only_a_folder_of_the_named_mount(tmp_path: Path) -> None:
    root = tmp_path / "sticks"
    daemon = _FakeDaemon()
    server = control.ControlServer(daemon, path=tmp_path / "c.sock", mount_root=root)
    _tmpfs(root / "sde1")  # after the server: it unmounts what it finds at start
    (root / "sde1" / "akkoord").mkdir()
    try:
        sde1 = root / "sde1"
        bad = [f"/dev/sde1 {tmp_path}", f"/dev/sde1 {sde1}/../..", f"/dev/sdf1 {root / 'sdf1'}",
               f"/dev/sde1 {sde1 / 'nope'}", f"sde1 {sde1}", "/dev/sde1 relative"]  # fmt: skip
        for args in bad:
            server._handed_over(args)
        assert not daemon.inserted
        assert [e for e, _ in daemon.reports] == ["usb_refused"] * len(bad)
        server._handed_over(f"/dev/sde1 {root / 'sde1' / 'akkoord'}")
        ((path, _eject),) = daemon.inserted
        assert path == root / "sde1" / "akkoord"
        server._removed("/dev/sde1")  # pulled: the stick unit unmounts, not an eject request
        _eject()  # type: ignore[operator]
        assert _is_mounted(root / "sde1")
    finally:
        server.close()
        subprocess.run(["umount", "-l", str(root / "sde1")], check=False)


def test_simulated_presses_only_with_mock_pins(tmp_path: Path) -> None:
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    real = _FakeDaemon(pin_factory=object())
    server = control.ControlServer(real, path=tmp_path / "a.sock", mount_root=tmp_path / "s")
    try:
        server._simulate("a")
        assert server._sim is None, "real pins: no simulated presses"
    finally:
        server.close()
    factory = MockFactory(pin_class=MockPWMPin)
    mock = _FakeDaemon(pin_factory=factory)
    mock.config = config.load_config(REPO / "systemd/simulated/akkoord.toml")  # type: ignore[attr-defined]
    server = control.ControlServer(mock, path=tmp_path / "b.sock", mount_root=tmp_path / "s")
    try:
        pin = factory.pin(mock.config.panel.pins.button_a)  # type: ignore[attr-defined]
        server._simulate("press a")
        assert pin.state == 0, "pressed = low"
        server._simulate("release a")
        assert pin.state == 1
        server._simulate("quit")  # not allowed over the socket
        assert not mock.stopping.is_set()
    finally:
        server.close()
        factory.reset()


def test_cli_simulate_sends_one_datagram(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        s.settimeout(5)
        assert cli.main(["simulate", "press", "b", "--socket", str(path)]) == 0
        assert s.recv(512) == b"sim press b"


def test_simulated_microphone_is_a_wav_the_daemon_takes(tmp_path: Path) -> None:
    from akkoord.audio import check_wav

    out = tmp_path / "mic.wav"
    assert cli.main(["simulate-microphone", str(out), "--seconds", "0.5"]) == 0
    channels, rate, frames = check_wav(out, config.load_config(None).audio.sample_rate)
    assert channels == 1 and frames == rate // 2


def test_python_is_the_venv_one() -> None:
    # The tests above run the CLI in-process; the installer's venv has the same entry point.
    assert Path(sys.executable).parent.joinpath("akkoord").exists()
