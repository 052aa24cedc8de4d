"""Wiring the console to a running daemon: the read-only view, and starting the server."""

from __future__ import annotations

from typing import Any

from akkoord.console.clockset import CommandClockSetter
from akkoord.console.device import ConsoleDevice
from akkoord.console.serial_port import ConsoleServer
from akkoord.console.service import ConsoleService

__all__ = ["DaemonStatus", "RecorderStatus", "start_console"]


class DaemonStatus:
    """`DaemonView` over the daemon: its read-only properties, each an atomic read under the
    GIL; never calls into the loop, never takes a lock the loop holds."""

    def __init__(self, daemon: Any) -> None:
        self._d = daemon

    def machine_state(self) -> str:
        return str(self._d.machine_state)

    def faults(self) -> list[str]:
        return sorted(str(f) for f in self._d.faults)

    def active_recording(self) -> str | None:
        rec = self._d.recorder
        return rec.recording_id if rec.active else None

    def exportable_recording(self) -> str | None:
        return self._d.exportable_id


class RecorderStatus:
    """`DaemonView` over a bare `Recorder` (no consent loop), as `akkoord bench` runs it."""

    def __init__(self, recorder: Any) -> None:
        self._r = recorder

    def machine_state(self) -> str:
        return "recording" if self._r.active else "ready"

    def faults(self) -> list[str]:
        return []

    def active_recording(self) -> str | None:
        return self._r.recording_id if self._r.active else None

    def exportable_recording(self) -> str | None:
        closed = self._r.closed_recording()
        return closed.recording_id if closed is not None else None


def start_console(daemon: Any, url: str) -> ConsoleServer:
    cfg = daemon.config.console
    device = ConsoleDevice(
        state=daemon.state, config=daemon.config, custody=daemon.custody, clock=daemon.clock,
        fingerprint=daemon.identity.fingerprint, view=DaemonStatus(daemon),
        clock_setter=CommandClockSetter(cfg.clock_command),
    )
    server = ConsoleServer(ConsoleService(device), url, cfg.baudrate,
                           stopping=daemon.stopping, report=daemon.report)
    server.start()
    return server
