"""Setting the wall clock: a narrow, replaceable seam (the recorder holds no CAP_SYS_TIME).

`ClockSetter.set_time(epoch)` is all the console needs. The shipped implementation runs one
fixed command with the time as its single argument (``[console] clock_command``, default
``timedatectl set-time``): timedated does the setting as root, and the system grants the
recorder's user that one action and nothing else (see systemd/README.md). The console has
validated the time already (format, clock floor, not while recording); the privileged side
must validate again, since it trusts no caller.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from typing import Protocol

from akkoord.errors import AkkoordError

__all__ = ["ClockSetter", "CommandClockSetter"]

_TIMEOUT_S = 20.0


class ClockSetter(Protocol):
    def set_time(self, epoch: int) -> None:
        """Set the system wall clock to `epoch` (UTC seconds) or raise AkkoordError."""
        ...


class CommandClockSetter:
    """Runs `command + ["YYYY-MM-DD HH:MM:SS"]` (UTC, TZ=UTC in its environment)."""

    def __init__(self, command: Sequence[str]) -> None:
        if not command:
            raise AkkoordError("no clock command configured ([console] clock_command)")
        self.command = list(command)

    def set_time(self, epoch: int) -> None:
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))
        env = {**os.environ, "TZ": "UTC"}
        try:
            done = subprocess.run([*self.command, text], env=env, capture_output=True,
                                  text=True, timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AkkoordError(f"setting the clock failed: {self.command[0]}: {exc}") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip()[-300:]
            raise AkkoordError(f"setting the clock failed ({self.command[0]} exit "
                               f"{done.returncode}): {why}")
