"""The `[console]` section of the configuration (serial admin console)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from akkoord.errors import ConfigError

__all__ = ["BAUD_RATES", "ConsoleConfig", "parse_console_config"]

BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


@dataclass(frozen=True)
class ConsoleConfig:
    #: pyserial URL or device: "/dev/serial0" (UART), "/dev/ttyGS0" (USB gadget). "" = off.
    port: str = ""
    baudrate: int = 115200
    #: Run with the UTC time as last argument to set the clock (clockset.py).
    clock_command: tuple[str, ...] = field(default=("akkoord", "clock-set-request"))


def parse_console_config(table: Mapping[str, Any], source: str) -> ConsoleConfig:
    where = f"{source}: [console]"
    unknown = sorted(set(table) - {"port", "baudrate", "clock_command"})
    if unknown:
        raise ConfigError(f"{where} unknown key {unknown[0]!r} "
                          "(known: baudrate, clock_command, port)")
    port = table.get("port", "")
    if not isinstance(port, str):
        raise ConfigError(f"{where} port = {port!r}: expected text such as \"/dev/serial0\"")
    baud = table.get("baudrate", ConsoleConfig.baudrate)
    if isinstance(baud, bool) or baud not in BAUD_RATES:
        raise ConfigError(f"{where} baudrate = {baud!r}: expected one of {BAUD_RATES}")
    command = table.get("clock_command", list(ConsoleConfig.clock_command))
    if (not isinstance(command, list) or not command
            or not all(isinstance(c, str) and c for c in command)):
        raise ConfigError(f"{where} clock_command = {command!r}: expected a list of words")
    return ConsoleConfig(port, baud, tuple(command))
