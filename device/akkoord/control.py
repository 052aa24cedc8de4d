"""The daemon's local control socket: how udev's stick unit reaches the running daemon.

A datagram socket at /run/akkoord/control.sock (root only). One line per datagram:

    usb-device /dev/sda1      a stick partition appeared: mount it (vfat/exfat/ext4 only)
    usb-removed /dev/sda1     it is gone: unmount lazily, forget it

`akkoord stick added|removed DEVICE` sends these; systemd/akkoord-stick@.service runs it.
Mounting happens on a worker thread with timeouts, so a bad stick cannot stall the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path

from akkoord.errors import AkkoordError, UsageError
from akkoord.export.stick import MountedStick, mount_stick, unmount_stale, unmount_stick

__all__ = ["DEFAULT_SOCKET", "ControlServer", "send_command"]

log = logging.getLogger(__name__)
DEFAULT_SOCKET = Path("/run/akkoord/control.sock")
_MAX = 512


def send_command(command: str, device: str, path: Path = DEFAULT_SOCKET) -> None:
    if command not in ("usb-device", "usb-removed"):
        raise UsageError(f"unknown control command {command!r}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(f"{command} {device}".encode(), str(path))
        except OSError as exc:
            raise AkkoordError(
                f"cannot reach the akkoord daemon at {path}: {exc.strerror}"
            ) from exc


class ControlServer:
    def __init__(
        self,
        daemon: object,
        path: Path = DEFAULT_SOCKET,
        mount_root: Path = Path("/run/akkoord/sticks"),
    ) -> None:
        self.daemon = daemon
        self.path = Path(path)
        self.mount_root = mount_root
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        self.sock.settimeout(0.5)
        self._mounted: dict[str, MountedStick] = {}
        for stale in unmount_stale(mount_root):
            log.warning("unmounted %s, left mounted by a previous run", stale)
        self._thread = threading.Thread(target=self._serve, name="akkoord-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop listening and unmount every stick we mounted (flushing it)."""
        for device, stick in list(self._mounted.items()):
            self._mounted.pop(device, None)
            with contextlib.suppress(AkkoordError):
                unmount_stick(stick)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        stopping = self.daemon.stopping  # type: ignore[attr-defined]
        while not stopping.is_set():
            try:
                data = self.sock.recv(_MAX)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                command, device = data.decode("ascii").strip().split(" ", 1)
            except (UnicodeDecodeError, ValueError):
                log.warning("control socket: ignoring malformed message %r", data[:80])
                continue
            if command == "usb-device":
                threading.Thread(target=self._mount, args=(device,), daemon=True).start()
            elif command == "usb-removed":
                self._removed(device)
            else:
                log.warning("control socket: unknown command %r", command)

    def _mount(self, device: str) -> None:
        try:
            stick = mount_stick(device, root=self.mount_root)
        except AkkoordError as exc:
            self.daemon.report("usb_refused", device=device, error=str(exc))  # type: ignore[attr-defined]
            return
        self._mounted[device] = stick

        def unmount() -> None:
            if self._mounted.pop(device, None) is not None:
                unmount_stick(stick)

        self.daemon.stick_inserted(stick.path, unmount)  # type: ignore[attr-defined]

    def _removed(self, device: str) -> None:
        stick = self._mounted.pop(device, None)
        if stick is not None:
            with contextlib.suppress(AkkoordError):
                unmount_stick(stick)
        self.daemon.stick_removed()  # type: ignore[attr-defined]
