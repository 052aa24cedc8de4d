"""The host side: send one framed request, wait for its answer (docs/CONSOLE.md §3).

`ConsoleClient.call(cmd)` returns the reply payload. With an `AdminKey` and its certificate it
runs admin commands: ask for a challenge, sign (nonce | device fingerprint | command digest),
send the command with the proof. Noise and answers to other requests on the line are skipped.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from akkoord.console.auth import AdminKey, make_proof
from akkoord.console.protocol import (
    HOST_MAX_LINE,
    PROTOCOL_VERSION,
    Frame,
    LineReader,
    encode_frame,
)
from akkoord.errors import AkkoordError

__all__ = ["ConsoleClient", "ConsoleTimeout"]

DEFAULT_TIMEOUT_S = 10.0
SLOW_COMMANDS = {"verify": 900.0, "delete": 120.0, "time": 60.0}


class ConsoleTimeout(AkkoordError, TimeoutError):
    """No answer: wrong port, wrong baud rate, no daemon serving the console, or a cable."""


class ConsoleClient:
    def __init__(self, port: Any, *, admin: tuple[AdminKey, dict[str, Any]] | None = None,
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.port = port
        self.admin = admin
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._reader = LineReader(HOST_MAX_LINE, idle_timeout=self.timeout)

    def call(self, cmd: list[Any], admin_needed: bool = False) -> dict[str, Any]:
        if admin_needed and self.admin is not None:
            challenge = self._request({"cmd": ["challenge"]}, self.timeout)
            if not challenge.get("ok"):
                return challenge
            c = challenge["result"]
            key, cert = self.admin
            auth = make_proof(key, cert, c["nonce"], c["device_fingerprint"], cmd)
            return self._request({"cmd": cmd, "auth": auth}, self._timeout_for(cmd))
        return self._request({"cmd": cmd}, self._timeout_for(cmd))

    def _timeout_for(self, cmd: list[Any]) -> float:
        first = cmd[0] if cmd and isinstance(cmd[0], str) else ""
        return max(self.timeout, SLOW_COMMANDS.get(first, 0.0))

    def _request(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        rid = next(self._ids)
        self.port.write(encode_frame({"v": PROTOCOL_VERSION, "id": rid, **body}))
        self.port.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.port.read(max(1, min(self.port.in_waiting, 65536)))
            for item in self._reader.feed(data, time.monotonic()):
                if not isinstance(item, Frame):
                    continue
                reply_id = item.payload.get("id")
                # id null: the device could not read our frame (bad_frame, too_long).
                if reply_id == rid or (reply_id is None and not item.payload.get("ok")):
                    return item.payload
        raise ConsoleTimeout(f"no answer within {timeout:.0f} s: is the daemon serving the "
                             "console on this port, at this baud rate?")
