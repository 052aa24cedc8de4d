"""What still needs root on the appliance, each behind one narrow, validated request.

The recorder daemon runs as its own unprivileged user (systemd/akkoord.service). Three things
it cannot do itself happen in short-lived root units instead:

- **Mounting a stick** (akkoord-stick@.service, started by udev): `akkoord stick added DEV`
  checks the device (USB/SD partition name, vfat/exfat/ext4, not the system disk, not already
  mounted), mounts it `nosuid,nodev,noexec,noatime` at /run/akkoord/sticks/NAME with the
  recorder's user as owner, and hands the folder to the daemon over the control socket
  (`usb-mounted DEV PATH`). `akkoord stick removed DEV` tells the daemon and unmounts.
- **Ejecting a stick after a copy**: the daemon writes /run/akkoord/requests/eject-NAME; the
  path unit akkoord-eject.path starts akkoord-eject.service (`akkoord stick eject-requests`),
  which unmounts /run/akkoord/sticks/NAME -- nothing else -- and removes the request.
- **Setting the clock** (the console's `time set`): `akkoord clock-set-request TIME` writes
  /run/akkoord/requests/clock; akkoord-clock.path starts akkoord-clock.service
  (`akkoord clock-apply`, CAP_SYS_TIME only), which validates the time, sets the system clock
  and the RTC, and answers in /run/akkoord/requests/clock.result (JSON).

A request is a file in /run/akkoord/requests (root:akkoord 0770), so only root and the
recorder's user can make one, and the root side reads nothing from it but a name or a time it
checks against a strict pattern.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import stat
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from akkoord.control import DEFAULT_SOCKET, send_command
from akkoord.errors import AkkoordError, UsageError
from akkoord.export.stick import (
    _DEVICE_RE,
    DEFAULT_ROOT,
    MountedStick,
    StickError,
    mount_stick,
    unmount_stick,
)

__all__ = [
    "EXT4_FOLDER",
    "RECORDER_USER",
    "REQUESTS",
    "apply_clock_request",
    "process_eject_requests",
    "request_eject",
    "stick_added",
    "stick_removed",
    "write_clock_request",
]

RECORDER_USER = "akkoord"
REQUESTS = Path("/run/akkoord/requests")
#: On an ext4 stick (which keeps its own owners) the recorder writes into this folder, which
#: the stick unit makes and gives to the recorder's user. FAT/exFAT: the stick's top level.
EXT4_FOLDER = "akkoord"
# The same names the daemon's device check accepts, without /dev/.
_NAME_RE = re.compile(_DEVICE_RE.pattern.replace("^/dev/", "^", 1))
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
#: The clock helper refuses times outside this range: before it, the request is certainly
#: wrong (a flat RTC reads 2000-01-01); after it, a typo.
CLOCK_MIN = "2024-01-01T00:00:00Z"
CLOCK_MAX = "2100-01-01T00:00:00Z"
_MAX_REQUEST = 256

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


def recorder_ids(user: str = RECORDER_USER) -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(
            f"there is no user {user!r}: run the installer (sudo make install) first"
        ) from None
    return pw.pw_uid, pw.pw_gid


# --- sticks (root side: akkoord-stick@.service, akkoord-eject.service) ---------------------


def _recorder_folder(mount: Path, uid: int, gid: int) -> Path:
    """The folder on an ext4 stick the recorder may write into (made and owned for it)."""
    folder = mount / EXT4_FOLDER
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o755)
    # O_NOFOLLOW: a symlink on the stick must not make root chown something elsewhere.
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise StickError(f"{folder}: not a usable folder ({exc.strerror})") from None
    try:
        # The stick unit has no CAP_FOWNER: it may change the mode only of what root owns, so
        # mode first, then owner. Already the recorder's (the stick was used before): as is.
        owner = os.fstat(fd).st_uid
        if owner == 0:
            os.fchmod(fd, 0o755)
        if owner != uid:
            os.fchown(fd, uid, gid)
    finally:
        os.close(fd)
    return folder


def stick_added(
    device: str,
    *,
    root: Path = DEFAULT_ROOT,
    socket: Path = DEFAULT_SOCKET,
    user: str = RECORDER_USER,
    run: Runner = subprocess.run,
    probe: Callable[[str], str] | None = None,
    check_device: bool = True,
) -> Path:
    """Mount `device` for the recorder and hand it over; returns the folder handed over."""
    uid, gid = recorder_ids(user)
    stick = mount_stick(device, root=root, owner=(uid, gid), run=run, probe=probe,
                        check_device=check_device)  # fmt: skip
    try:
        # The recorder must reach its mount point: root:recorder 0750 (mount_stick made 0700).
        os.chown(root, 0, gid)
        os.chmod(root, 0o750)
        target = _recorder_folder(stick.path, uid, gid) if stick.fstype == "ext4" else stick.path
        send_command("usb-mounted", f"{device} {target}", socket)
    except BaseException:
        with contextlib.suppress(AkkoordError):
            unmount_stick(stick, run)
        raise
    return target


def _mounted(path: Path, mounts: Path = Path("/proc/self/mounts")) -> bool:
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return os.path.ismount(path)
    return any(len(p := line.split()) > 1 and p[1] == str(path) for line in lines)


def stick_removed(
    device: str,
    *,
    root: Path = DEFAULT_ROOT,
    socket: Path = DEFAULT_SOCKET,
    run: Runner = subprocess.run,
) -> None:
    """Tell the daemon (if it is there), then unmount (lazily if the stick is gone)."""
    name = Path(device).name
    if not _NAME_RE.match(name) or device != f"/dev/{name}":
        raise StickError(f"{device!r} is not a USB or SD partition device name")
    with contextlib.suppress(AkkoordError):
        send_command("usb-removed", device, socket)
    path = root / name
    if _mounted(path):
        unmount_stick(MountedStick(device, "", path), run)
    else:
        with contextlib.suppress(OSError):
            path.rmdir()


def request_eject(name: str, mount_point: Path, *, requests: Path = REQUESTS,
                  timeout: float = 20.0, poll: float = 0.1) -> None:
    """Daemon side: ask for `mount_point` to be unmounted, wait until it is (flushed)."""
    if not _NAME_RE.match(name):
        raise StickError(f"{name!r} is not a stick name")
    if not _mounted(mount_point):
        return
    request = requests / f"eject-{name}"
    request.touch(mode=0o660)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _mounted(mount_point):
            return
        time.sleep(poll)
    raise StickError(f"{mount_point} was not unmounted within {timeout:g} s")


def process_eject_requests(*, requests: Path = REQUESTS, root: Path = DEFAULT_ROOT,
                           run: Runner = subprocess.run) -> list[str]:
    """Root side: unmount what eject-NAME files ask for, only below `root`; remove them."""
    done = []
    try:
        entries = sorted(os.listdir(requests))
    except FileNotFoundError:
        return done
    for entry in entries:
        if not entry.startswith("eject-"):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(requests / entry)
        name = entry.removeprefix("eject-")
        if not _NAME_RE.match(name):
            continue
        path = root / name
        if _mounted(path):
            unmount_stick(MountedStick(f"/dev/{name}", "", path), run)
            done.append(name)
    return done


# --- the clock ------------------------------------------------------------------------------


def parse_request_time(text: str) -> datetime:
    text = text.strip()
    if not _TIME_RE.match(text):
        raise UsageError(f"{text[:40]!r}: give the time in UTC as YYYY-MM-DDTHH:MM:SSZ")
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise UsageError(f"{text!r}: not a real date and time ({exc})") from None
    lo = datetime.strptime(CLOCK_MIN, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    hi = datetime.strptime(CLOCK_MAX, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if not lo <= when < hi:
        raise UsageError(f"{text}: outside {CLOCK_MIN} .. {CLOCK_MAX}; refusing")
    return when


def write_clock_request(text: str, *, requests: Path = REQUESTS, wait: float = 15.0,
                        poll: float = 0.1) -> dict[str, Any]:
    """Ask the root clock helper to set the clock; returns its answer (or raises)."""
    parse_request_time(text)  # the same check the root side makes: fail early and clearly
    result = requests / "clock.result"
    with contextlib.suppress(FileNotFoundError):
        result.unlink()
    tmp = requests / f".clock.{os.getpid()}"
    tmp.write_text(text.strip() + "\n")
    # Readable for root's helper, which has no DAC override and is not in the group; nobody
    # else reaches it (the folder is root:akkoord 0770).
    os.chmod(tmp, 0o644)
    os.replace(tmp, requests / "clock")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            answer = json.loads(result.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(poll)
            continue
        if not answer.get("ok"):
            raise AkkoordError(f"the clock was not set: {answer.get('error', 'no reason given')}")
        return answer
    raise AkkoordError(
        f"no answer from the clock helper within {wait:g} s (is akkoord-clock.path enabled?)"
    )


def _read_request(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{path}: not a regular file")
        data = os.read(fd, _MAX_REQUEST + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_REQUEST:
        raise UsageError(f"{path}: request too long")
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not ASCII") from None


def apply_clock_request(
    *,
    requests: Path = REQUESTS,
    set_clock: Callable[[float], None] = lambda ts: time.clock_settime(time.CLOCK_REALTIME, ts),
    run: Runner = subprocess.run,
    rtc: Path = Path("/dev/rtc0"),
) -> dict[str, Any] | None:
    """Root side (akkoord-clock.service): one request, validated, applied, answered."""
    path = requests / "clock"
    try:
        text = _read_request(path)
    except FileNotFoundError:
        return None
    except (OSError, UsageError) as exc:
        text, answer = "", {"ok": False, "error": str(exc)}
    else:
        answer = {}
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if not answer:
        previous = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            when = parse_request_time(text)
            set_clock(when.timestamp())
            answer = {"ok": True, "previous": previous, "set_to": text.strip(), "rtc": False}
            if rtc.exists():
                r = run(["hwclock", "--systohc", "--utc"], capture_output=True, text=True,
                        timeout=20, check=False)  # fmt: skip
                answer["rtc"] = r.returncode == 0
                if r.returncode:
                    answer["rtc_error"] = (r.stderr or r.stdout).strip()[:200]
        except (UsageError, OSError) as exc:
            answer = {"ok": False, "error": str(exc), "previous": previous}
    tmp = requests / ".clock.result.tmp"
    tmp.write_text(json.dumps(answer, sort_keys=True) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, requests / "clock.result")
    return answer
