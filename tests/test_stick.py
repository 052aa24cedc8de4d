"""The stick mount adapter: what it refuses, and how it mounts (real tmpfs where allowed)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from akkoord.export.stick import (
    MOUNT_OPTIONS,
    StickError,
    check_stick_device,
    mount_options,
    mount_stick,
    unmount_stale,
    unmount_stick,
)


def _sysfs(tmp_path, disks):
    """A fake /sys/class/block + /sys/dev/block: disks = {"sda": ["sda1", "sda2"], ...};
    the real root file system's device number points at the first partition of the first."""
    block, dev = tmp_path / "class_block", tmp_path / "dev_block"
    block.mkdir()
    dev.mkdir()
    first = True
    for disk, parts in disks.items():
        d = tmp_path / "devices" / disk
        d.mkdir(parents=True)
        (block / disk).symlink_to(d)
        for p in parts:
            (d / p).mkdir()
            (d / p / "partition").write_text("1\n")
            (block / p).symlink_to(d / p)
            if first:
                st = os.stat("/")
                (dev / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").symlink_to(d / p)
                first = False
    return block, dev


def test_refuses_names_that_are_not_usb_or_sd_devices():
    for bad in ("/dev/vda1", "/dev/sda1; rm -rf /", "/etc/passwd", "/dev/../dev/sda1", "sda1"):
        with pytest.raises(StickError, match="not a USB or SD"):
            check_stick_device(bad)


def test_refuses_a_device_that_is_already_mounted(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sdb1 /media/x vfat rw 0 0\n")
    with pytest.raises(StickError, match="already mounted at /media/x"):
        check_stick_device("/dev/sdb1", mounts=mounts, sys_block=tmp_path / "none")


def test_refuses_the_disk_the_system_runs_from(tmp_path):
    """A Pi booting from a USB stick: its boot partition looks like any USB vfat stick."""
    block, dev = _sysfs(tmp_path, {"sda": ["sda1", "sda2"], "sdb": ["sdb1"]})
    mounts = tmp_path / "mounts"
    mounts.write_text("")
    for device in ("/dev/sda1", "/dev/sda2", "/dev/sda"):
        with pytest.raises(StickError, match="disk the system runs from"):
            check_stick_device(device, mounts=mounts, sys_dev=dev, sys_block=block)
    check_stick_device("/dev/sdb1", mounts=mounts, sys_dev=dev, sys_block=block)


def test_refuses_file_systems_other_than_vfat_exfat_ext4(tmp_path):
    for fs in ("ntfs", "", "squashfs", "iso9660"):
        with pytest.raises(StickError, match="not used for copies"):
            mount_stick("/dev/sdz1", root=tmp_path, probe=lambda d, fs=fs: fs,
                        check_device=False)


def test_a_hanging_mount_times_out_cleanly(tmp_path):
    def hang(argv, **kw):
        raise subprocess.TimeoutExpired(argv, kw.get("timeout"))

    with pytest.raises(StickError, match="no answer"):
        mount_stick("/dev/sdz1", root=tmp_path, run=hang, probe=lambda d: "vfat",
                    check_device=False)


def test_stale_mounts_under_the_root_are_detached(tmp_path):
    mounts = tmp_path / "mounts"
    root = tmp_path / "sticks"
    mounts.write_text(f"/dev/sdb1 {root}/sdb1 vfat rw 0 0\n/dev/vda1 / ext4 rw 0 0\n")
    calls = []

    def fake(argv, **kw):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert unmount_stale(root, mounts, fake) == [f"{root}/sdb1"]
    assert calls == [["umount", "-l", f"{root}/sdb1"]]


@pytest.mark.root
def test_real_mount_is_private_and_nosuid_nodev_noexec_noatime(tmp_path):
    root = tmp_path / "sticks"
    try:
        stick = mount_stick("tmpfs", root=root, probe=lambda d: "tmpfs",
                            allowed=("tmpfs",), check_device=False)
    except StickError as exc:
        pytest.skip(f"needs CAP_SYS_ADMIN: the stick mount was refused ({exc}); run as root")
    try:
        assert set(MOUNT_OPTIONS.split(",")) <= mount_options(stick.path)
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        (stick.path / "x").write_text("copy")
    finally:
        unmount_stick(stick)
    assert not stick.path.exists() and mount_options(stick.path) == set()
