"""`akkoord run --simulate`: the real daemon on gpiozero's MockFactory pins, scripted on stdin.

Commands, one per line (blank lines and `# comments` are ignored; end of input = quit):

    a | b                  party A / B presses and releases their button
    press a | release a    (and b) press or release without the other half
    sleep SECONDS          wait before the next command
    usb PATH               a stick mounted at PATH appears (the folder is made if missing);
                           returns once the device has taken it: copy offered, "nothing to
                           copy" said, or remembered until the recording ends
    usb-remove             the stick is taken out
    unplug | plug          the microphone is pulled out / plugged back in
    quit                   stop (an open recording is sealed, reason "shutdown"; a copy
                           being written is finished first)

Every event and state change is printed as a line (`--json`: one JSON object per line, with at
least `event` and `state`, and `recording_id` where there is one). A command that cannot be
carried out (unknown, a missing stick folder, `usb-remove` with no stick...) prints an `error`
line and ends the run with exit code 2; with `--keep-going` the device keeps running and the
exit code is still 2 at the end, so a script never fails silently. A recording both parties
asked for that could not start (reported as a fault and an `error` event, never announced)
makes the run exit 4.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from akkoord.errors import UsageError

__all__ = ["Printer", "Simulator"]

_PRESS_S = 0.12  # how long `a` / `b` hold the button: a brisk human press
_STICK_TAKEN_S = 5.0  # offer waits out the 0.6 s refractory interval; generous on a busy box


class Printer:
    """Writes the daemon's report lines: human-readable or JSON lines."""

    def __init__(self, out: TextIO, as_json: bool, state: Callable[[], str]) -> None:
        self.out = out
        self.as_json = as_json
        self.state = state
        self.t0 = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, fields: dict[str, Any]) -> None:
        doc = {"t": round(time.monotonic() - self.t0, 3), **fields}
        doc.setdefault("state", self.state())
        if self.as_json:
            line = json.dumps(doc, ensure_ascii=False, default=str)
        else:
            extra = " ".join(
                f"{k}={v}"
                for k, v in doc.items()
                if k not in ("t", "event", "state") and v not in (None, "")
            )
            line = f"{doc['t']:8.2f}  {doc['event']:<18} [{doc['state']}] {extra}".rstrip()
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()


class Simulator:
    def __init__(
        self,
        daemon: Any,
        *,
        wav_backend: Any | None,
        sleep: Callable[[float], None] = time.sleep,
        keep_going: bool = False,
    ) -> None:
        self.daemon = daemon
        self.wav = wav_backend
        self.sleep = sleep
        self.keep_going = keep_going
        #: Commands that could not be carried out; the run's exit code reports them.
        self.failures = 0
        pins = daemon.config.panel.pins
        factory = daemon.panel.pin_factory
        self.pins = {"a": factory.pin(pins.button_a), "b": factory.pin(pins.button_b)}

    def feed(self, stream: TextIO) -> None:
        """Run commands until `quit` or end of input, then stop the daemon."""
        try:
            for raw in stream:
                if self.daemon.stopping.is_set():
                    return
                if not self.execute(raw):
                    break
                if self.failures and not self.keep_going:
                    self.daemon.report("quit", reason="a command could not be carried out")
                    break
            self._finish_copy()
        finally:
            self.daemon.stopping.set()

    def _finish_copy(self) -> None:
        """Ending the script does not pull the plug on a copy being written."""
        deadline = time.monotonic() + self.daemon.config.export.timeout_seconds
        while self.daemon.copying and time.monotonic() < deadline:
            time.sleep(0.05)

    def execute(self, raw: str) -> bool:
        """One command line; False for quit."""
        line = raw.split("#", 1)[0].strip()
        if not line:
            return True
        words = line.split()
        try:
            return self._run(words)
        except (UsageError, ValueError, OSError) as exc:
            self.failures += 1
            self.daemon.report("error", message=f"{line!r}: {exc}")
            return True

    def _party(self, word: str) -> Any:
        pin = self.pins.get(word.lower())
        if pin is None:
            raise UsageError("a party is a or b")
        return pin

    def _run(self, words: list[str]) -> bool:
        cmd, args = words[0].lower(), words[1:]
        if cmd in ("a", "b") and not args:
            pin = self._party(cmd)
            pin.drive_low()  # buttons are wired to ground: pressed = low
            self.sleep(_PRESS_S)
            pin.drive_high()
        elif cmd in ("press", "release") and len(args) == 1:
            pin = self._party(args[0])
            (pin.drive_low if cmd == "press" else pin.drive_high)()
        elif cmd == "sleep" and len(args) == 1:
            seconds = float(args[0])
            if not 0 <= seconds < 3600 or math.isnan(seconds):
                raise UsageError("sleep takes 0 to 3600 seconds")
            self.sleep(seconds)
        elif cmd == "usb" and len(args) == 1:
            path = Path(args[0]).expanduser()
            if path.exists() and not path.is_dir():
                raise UsageError(f"{path} is not a folder (a stick is a mounted folder here)")
            path.mkdir(parents=True, exist_ok=True)
            if self.daemon.has_stick:
                raise UsageError("a stick is already in; `usb-remove` it first")
            taken = self.daemon.stick_inserted(path)
            if not taken.wait(_STICK_TAKEN_S):
                raise UsageError(f"the device did not take the stick within {_STICK_TAKEN_S:g} s")
        elif cmd == "usb-remove" and not args:
            if not self.daemon.has_stick:
                raise UsageError("there is no stick to remove")
            self.daemon.stick_removed()
        elif cmd in ("unplug", "plug") and not args:
            if self.wav is None:
                raise UsageError(f"{cmd} needs --audio-file (a simulated microphone)")
            (self.wav.unplug if cmd == "unplug" else self.wav.plug)()
            self.daemon.report("microphone", plugged=cmd == "plug")
        elif cmd == "quit" and not args:
            self._finish_copy()
            self.daemon.report("quit")
            return False
        else:
            raise UsageError(
                "unknown command; use a, b, press/release a|b, sleep S, usb PATH, usb-remove, "
                "unplug, plug, quit"
            )
        return True
