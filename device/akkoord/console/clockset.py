"""Setting the wall clock: a narrow, replaceable seam (the recorder holds no CAP_SYS_TIME).

`ClockSetter.set_time(epoch)` is all the console needs. The shipped implementation runs one
fixed command with the time (UTC, ``YYYY-MM-DDTHH:MM:SSZ``) as its last argument:
``[console] clock_command``, by default ``akkoord clock-set-request``, the appliance's narrow
root path (appliance.py: a request file that akkoord-clock.service, holding CAP_SYS_TIME and
nothing more, validates again, applies, and answers). The console has validated the time
already (format, clock floor, not while recording); the privileged side trusts no caller.
A first word ``akkoord`` means this very installation (`python -m akkoord`), so the daemon
never depends on PATH.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Protocol

from akkoord.errors import AkkoordError

__all__ = ["ClockSetter", "CommandClockSetter"]

_TIMEOUT_S = 30.0  # the root helper itself waits up to 15 s for its path unit


class ClockSetter(Protocol):
    def set_time(self, epoch: int) -> None:
        """Set the system wall clock to `epoch` (UTC seconds) or raise AkkoordError."""
        ...


class CommandClockSetter:
    """Runs `command + ["YYYY-MM-DDTHH:MM:SSZ"]`; exit 0 means the clock was set."""

    def __init__(self, command: Sequence[str]) -> None:
        if not command:
            raise AkkoordError("no clock command configured ([console] clock_command)")
        words = list(command)
        if words[0] == "akkoord":
            words = [sys.executable, "-m", "akkoord", *words[1:]]
        self.command = words

    def set_time(self, epoch: int) -> None:
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
        try:
            done = subprocess.run([*self.command, text], capture_output=True, text=True,
                                  timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AkkoordError(f"setting the clock failed: {self.command[0]}: {exc}") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip()[-300:]
            raise AkkoordError(f"setting the clock failed (exit {done.returncode}): {why}")
