"""Mounting a USB stick the device does not trust.

Only vfat, exfat and ext4 partitions; always `nosuid,nodev,noexec,noatime`; in a private
directory (0700) under /run/akkoord; every external command with a timeout so a dying stick
cannot hang the device. The export logic itself only ever sees the mounted directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from akkoord.errors import HardwareError

__all__ = [
    "ALLOWED_FS",
    "MOUNT_OPTIONS",
    "MountedStick",
    "StickError",
    "mount_stick",
    "unmount_stick",
]

ALLOWED_FS = ("vfat", "exfat", "ext4")
MOUNT_OPTIONS = "nosuid,nodev,noexec,noatime"
# FAT and exFAT have no owners: make everything the recorder's user's (root when the daemon
# mounts itself) and unreadable to other local users.
_FS_OPTIONS = {
    "vfat": ",uid={uid},gid={gid},fmask=0077,dmask=0077,utf8",
    "exfat": ",uid={uid},gid={gid},fmask=0077,dmask=0077",
}
_DEVICE_RE = re.compile(
    r"^/dev/(sd[a-z]{1,2}[0-9]{0,3}|mmcblk[0-9]p[0-9]{1,2}|nvme[0-9]n[0-9]p[0-9]{1,2})$"
)
DEFAULT_ROOT = Path("/run/akkoord/sticks")
TIMEOUT = 20.0

Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class StickError(HardwareError):
    """The stick cannot be used; the message says why, for the log and the console."""


@dataclass(frozen=True)
class MountedStick:
    device: str
    fstype: str
    path: Path


def _run(run: Runner, argv: Sequence[str], what: str) -> str:
    try:
        r = run(list(argv), capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise StickError(f"{what}: no answer within {TIMEOUT:g} s (stick failing?)") from None
    except FileNotFoundError:
        raise StickError(f"{what}: {argv[0]} is not installed") from None
    if r.returncode != 0:
        raise StickError(f"{what} failed: {(r.stderr or r.stdout).strip() or r.returncode}")
    return r.stdout


def probe_fs_type(device: str, run: Runner = subprocess.run) -> str:
    return _run(run, ["blkid", "-o", "value", "-s", "TYPE", device], f"probing {device}").strip()


def _disk_of(name: str, sys_block: Path) -> str:
    """The whole disk a block device belongs to (sda1 -> sda; sda -> sda)."""
    path = (sys_block / name).resolve()
    return path.parent.name if (path / "partition").exists() else path.name


def _system_disks(sys_dev: Path, sys_block: Path) -> set[str]:
    """Disks holding / or /boot/firmware: never a stick, even when the Pi boots from USB."""
    disks = set()
    for mount in ("/", "/boot/firmware", "/boot"):
        try:
            st = os.stat(mount)
        except OSError:
            continue
        link = sys_dev / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
        if link.exists():
            disks.add(_disk_of(link.resolve().name, sys_block))
    return disks


def check_stick_device(
    device: str,
    *,
    mounts: Path = Path("/proc/mounts"),
    sys_dev: Path = Path("/sys/dev/block"),
    sys_block: Path = Path("/sys/class/block"),
) -> None:
    """Refuse a device that is already mounted or sits on the system's own disk."""
    if not _DEVICE_RE.match(device):
        raise StickError(f"{device!r} is not a USB or SD partition device name")
    name = Path(device).name
    try:
        for line in mounts.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == device:
                raise StickError(f"{device} is already mounted at {parts[1]}; not touching it")
    except OSError:
        pass
    if sys_block.exists() and _disk_of(name, sys_block) in _system_disks(sys_dev, sys_block):
        raise StickError(f"{device} is on the disk the system runs from; it is not a stick")


def mount_stick(
    device: str,
    *,
    root: Path = DEFAULT_ROOT,
    run: Runner = subprocess.run,
    probe: Callable[[str], str] | None = None,
    allowed: Sequence[str] = ALLOWED_FS,
    check_device: bool = True,
    owner: tuple[int, int] = (0, 0),
) -> MountedStick:
    """Mount `device` at root/NAME. `owner` (uid, gid) owns every file on vfat/exfat; ext4
    keeps the owners stored on the stick (see akkoord.appliance for the recorder's folder)."""
    if check_device:
        check_stick_device(device)
    fstype = (probe or (lambda d: probe_fs_type(d, run)))(device)
    if fstype not in allowed:
        raise StickError(
            f"{device}: file system {fstype or 'unknown'!r} is not used for copies "
            f"(only {', '.join(allowed)})"
        )
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    target = root / Path(device).name
    target.mkdir(mode=0o700, exist_ok=True)
    options = MOUNT_OPTIONS + _FS_OPTIONS.get(fstype, "").format(uid=owner[0], gid=owner[1])
    _run(run, ["mount", "-t", fstype, "-o", options, device, str(target)], f"mounting {device}")
    return MountedStick(device, fstype, target)


def unmount_stick(stick: MountedStick, run: Runner = subprocess.run) -> None:
    """Unmount (flushing the stick's own caches); lazily if the stick is already gone."""
    try:
        _run(run, ["umount", str(stick.path)], f"unmounting {stick.device}")
    except StickError:
        _run(run, ["umount", "-l", str(stick.path)], f"detaching {stick.device}")
    with contextlib.suppress(OSError):
        stick.path.rmdir()


def unmount_stale(root: Path = DEFAULT_ROOT, mounts: Path = Path("/proc/mounts"),
                  run: Runner = subprocess.run) -> list[str]:
    """Lazily unmount whatever a previous run left mounted under `root` (after a crash)."""
    done = []
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return done
    prefix = str(root).rstrip("/") + "/"
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith(prefix):
            with contextlib.suppress(StickError):
                _run(run, ["umount", "-l", parts[1]], f"unmounting stale {parts[1]}")
                done.append(parts[1])
    return done


def mount_options(path: Path, mounts: Path = Path("/proc/mounts")) -> set[str]:
    """The options a mount point is mounted with (for tests and the console)."""
    for line in mounts.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == str(path):
            return set(parts[3].split(","))
    return set()
