"""The serial adapter: pyserial in, `ConsoleService` in the middle, pyserial out.

One daemon thread owns the port. It reads whatever has arrived (at most `_CHUNK` bytes at a
time), feeds `LineReader`, answers each frame in order, and never blocks the recorder: it
holds no lock the recorder takes, and a host that stops reading only makes our writes time
out. A port that disappears (USB gadget unplugged, UART error) is reopened once a second until
the daemon stops. Noise gets at most one plain-text hint per `_HINT_EVERY_S`, so a technician
typing at a bare terminal learns what to do, and line noise cannot make the device chatter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from akkoord.console.protocol import (
    DEVICE_MAX_LINE,
    PROTOCOL_VERSION,
    BadFrame,
    Frame,
    LineReader,
    Noise,
    Overlong,
    TimedOut,
    encode_frame,
)
from akkoord.console.service import ConsoleService

__all__ = ["ConsoleServer", "open_port"]

log = logging.getLogger(__name__)
_CHUNK = 4096
_READ_TIMEOUT_S = 0.2
_WRITE_TIMEOUT_S = 2.0
_REOPEN_S = 1.0
_HINT_EVERY_S = 10.0
_COMPLAIN_EVERY_S = 1.0  # bad_frame / too_long answers: no amplifying a flood
_NICE = 10
HINT = (b"\r\nakkoord: this is a framed console (docs/CONSOLE.md); "
        b"use `akkoord console --port PORT`\r\n")


def open_port(url: str, baudrate: int) -> Any:
    import serial  # only the adapter imports pyserial

    return serial.serial_for_url(url, baudrate=baudrate, timeout=_READ_TIMEOUT_S,
                                 write_timeout=_WRITE_TIMEOUT_S, exclusive=_exclusive(url))


def _exclusive(url: str) -> bool | None:
    # A real tty is locked against a second reader (a stray getty would eat our bytes);
    # URL handlers such as loop:// do not take the argument.
    return True if "://" not in url else None


class ConsoleServer:
    def __init__(
        self,
        service: ConsoleService,
        url: str,
        baudrate: int = 115200,
        *,
        stopping: threading.Event,
        report: Callable[..., None] | None = None,
        opener: Callable[[str, int], Any] = open_port,
        port: Any = None,
    ) -> None:
        self.service = service
        self.url = url
        self.baudrate = baudrate
        self.stopping = stopping
        self.report = report or (lambda event, **f: None)
        self._opener = opener
        self._port = port
        self._reader = LineReader(DEVICE_MAX_LINE)
        self._last_hint = -1e18
        self._last_complaint = -1e18
        self._thread = threading.Thread(target=self._serve, name="akkoord-console", daemon=True)
        self.requests = 0  # answered frames, for tests and `akkoord bench`

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        self.stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._close_port()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _serve(self) -> None:
        # Below the recorder in the scheduler: the console may be slow, never the recording.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        failed_once = False
        while not self.stopping.is_set():
            if self._port is None:
                try:
                    self._port = self._opener(self.url, self.baudrate)
                    self.report("console_open", port=self.url)
                    failed_once = False
                except Exception as exc:
                    if not failed_once:
                        self.report("console_unavailable", port=self.url, error=str(exc))
                        failed_once = True
                    self.stopping.wait(_REOPEN_S)
                    continue
            try:
                self._pump_once()
            except Exception as exc:  # a vanished port, or a driver error: reopen it
                self.report("console_lost", port=self.url, error=str(exc))
                self._close_port()
                self._reader = LineReader(DEVICE_MAX_LINE)
                self.stopping.wait(_REOPEN_S)
        self._close_port()

    def _pump_once(self) -> None:
        port = self._port
        waiting = port.in_waiting
        data = port.read(min(max(waiting, 1), _CHUNK))
        for item in self._reader.feed(data, time.monotonic()):
            self._answer(item)

    def _answer(self, item: Any) -> None:
        if isinstance(item, Frame) and "ok" in item.payload:
            return  # an answer, echoed back (a loopback plug, a terminal's local echo)
        if isinstance(item, Frame):
            reply = self.service.handle(item.payload)
            self.requests += 1
        elif isinstance(item, BadFrame | Overlong) and not self._may_complain():
            return
        elif isinstance(item, BadFrame):
            reply = {"v": PROTOCOL_VERSION, "id": None, "ok": False,
                     "error": {"code": "bad_frame", "message": item.reason}}
        elif isinstance(item, Overlong):
            reply = {"v": PROTOCOL_VERSION, "id": None, "ok": False,
                     "error": {"code": "too_long",
                               "message": f"line longer than {item.limit} bytes, discarded"}}
        elif isinstance(item, TimedOut):
            return  # a partial line from a host that went away: nobody to tell
        elif isinstance(item, Noise):
            now = time.monotonic()
            if item.printable and now - self._last_hint >= _HINT_EVERY_S:
                self._last_hint = now
                self._write(HINT)
            return
        else:
            return
        self._write(encode_frame(reply))

    def _may_complain(self) -> bool:
        now = time.monotonic()
        if now - self._last_complaint < _COMPLAIN_EVERY_S:
            return False
        self._last_complaint = now
        return True

    def _write(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)
        except serial.SerialTimeoutException:
            log.warning("console: host is not reading; answer dropped")
