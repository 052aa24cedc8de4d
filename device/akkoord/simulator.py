"""`akkoord run --simulate`: the real daemon on gpiozero's MockFactory pins, scripted on stdin.

Commands, one per line (blank lines and `# comments` are ignored; end of input = quit):

    a | b                  party A / B presses and releases their button
    press a | release a    (and b) press or release without the other half
    sleep SECONDS          wait before the next command
    usb PATH               a stick mounted at PATH appears
    usb-remove             the stick is taken out
    unplug | plug          the microphone is pulled out / plugged back in
    quit                   stop (an open recording is sealed, reason "shutdown")

Every event and state change is printed as a line (`--json`: one JSON object per line, with at
least `event` and `state`, and `recording_id` where there is one). A bad command prints an
`error` line and the device keeps running.
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
        self, daemon: Any, *, wav_backend: Any | None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.daemon = daemon
        self.wav = wav_backend
        self.sleep = sleep
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
        finally:
            self.daemon.stopping.set()

    def execute(self, raw: str) -> bool:
        """One command line; False for quit."""
        line = raw.split("#", 1)[0].strip()
        if not line:
            return True
        words = line.split()
        try:
            return self._run(words)
        except (UsageError, ValueError) as exc:
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
            path = Path(args[0])
            if not path.is_dir():
                raise UsageError(f"{path} is not a folder (a stick is a mounted folder here)")
            self.daemon.stick_inserted(path)
        elif cmd == "usb-remove" and not args:
            self.daemon.stick_removed()
        elif cmd in ("unplug", "plug") and not args:
            if self.wav is None:
                raise UsageError(f"{cmd} needs --audio-file (a simulated microphone)")
            (self.wav.unplug if cmd == "unplug" else self.wav.plug)()
            self.daemon.report("microphone", plugged=cmd == "plug")
        elif cmd == "quit" and not args:
            self.daemon.report("quit")
            return False
        else:
            raise UsageError(
                "unknown command; use a, b, press/release a|b, sleep S, usb PATH, usb-remove, "
                "unplug, plug, quit"
            )
        return True
