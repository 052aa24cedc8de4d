"""The daemon's local control socket: how udev's stick unit reaches the running daemon.

A datagram socket at /run/akkoord/control.sock (the daemon's user only; root reaches it too).
One line per datagram:

    usb-mounted /dev/sda1 PATH  the stick unit (root) mounted the stick for us; copies go to
                                PATH, a folder below our mount root (akkoord.appliance)
    usb-device /dev/sda1        a stick partition appeared: mount it ourselves (only when the
                                daemon runs as root, as before the appliance split)
    usb-removed /dev/sda1       it is gone: unmount lazily (if ours), forget it
    sim a | sim press b | ...   simulated configuration only (pin factory "mock"): drive the
                                mock buttons, or unplug/plug the WAV microphone

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
from typing import Any

from akkoord.errors import AkkoordError, UsageError
from akkoord.export.stick import MountedStick, mount_stick, unmount_stale, unmount_stick

__all__ = ["DEFAULT_SOCKET", "ControlServer", "send_command"]

log = logging.getLogger(__name__)
DEFAULT_SOCKET = Path("/run/akkoord/control.sock")
_MAX = 512


def send_command(command: str, device: str, path: Path = DEFAULT_SOCKET) -> None:
    if command not in ("usb-device", "usb-removed", "usb-mounted", "sim"):
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
        self._handed: dict[str, Path] = {}  # device -> mount point the stick unit made
        self._sim: Any = None
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
            elif command == "usb-mounted":
                self._handed_over(device)
            elif command == "sim":
                self._simulate(device)
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

    def _handed_over(self, args: str) -> None:
        """A stick the stick unit mounted: accept only a folder of /dev/NAME's mount point."""
        from akkoord.appliance import request_eject

        device, _, folder = args.partition(" ")
        name = Path(device).name
        mount_point = self.mount_root / name
        path = Path(folder)
        if (
            device != f"/dev/{name}"
            or not path.is_absolute()
            or ".." in path.parts
            or not (path == mount_point or path.parent == mount_point)
            or not os.path.ismount(mount_point)
            or not path.is_dir()
        ):
            self.daemon.report("usb_refused", device=device, error=f"bad hand-over {folder!r}")  # type: ignore[attr-defined]
            return
        self._handed[device] = mount_point

        def eject() -> None:
            # After a copy: the stick unit's root helper unmounts (flushes) it. Not when the
            # stick was pulled: then the stick unit unmounts it itself.
            if self._handed.pop(device, None) is not None:
                request_eject(name, mount_point)

        self.daemon.stick_inserted(path, eject)  # type: ignore[attr-defined]

    def _simulate(self, command: str) -> None:
        """Mock buttons/microphone, only in the simulated configuration (MockFactory pins)."""
        from gpiozero.pins.mock import MockFactory

        from akkoord.simulator import Simulator

        words = command.split()
        panel = getattr(self.daemon, "panel", None)
        if not isinstance(getattr(panel, "pin_factory", None), MockFactory):
            log.warning("control socket: 'sim' refused: the pins are real")
            return
        if not words or words[0].lower() not in ("a", "b", "press", "release", "unplug", "plug"):
            log.warning("control socket: 'sim %s' is not a button or microphone command", command)
            return
        if self._sim is None:
            backend = getattr(self.daemon, "backend", None)
            self._sim = Simulator(self.daemon, wav_backend=backend if hasattr(backend, "unplug")
                                  else None)  # fmt: skip
        self._sim.execute(command)

    def _removed(self, device: str) -> None:
        self._handed.pop(device, None)
        stick = self._mounted.pop(device, None)
        if stick is not None:
            with contextlib.suppress(AkkoordError):
                unmount_stick(stick)
        self.daemon.stick_removed()  # type: ignore[attr-defined]
