"""The consent panel on real GPIO: gpiozero devices in, consent events out, actions rendered.

:class:`Panel` owns the devices: two pull-up ``Button`` s (callbacks only stamp the time and
enqueue a :mod:`~akkoord.consent` event), two ``PWMLED`` s in the buttons, an ``RGBLED``
status light, a ``TonalBuzzer`` (or an active ``Buzzer``) and an optional power-fail input.
The ``pin_factory`` is injected (None = gpiozero's default); creating a ``Panel`` is the first
moment anything touches hardware - importing this module does not.

:class:`ConsentLoop` is the single consumer of the panel's queue: it feeds every event to
:func:`~akkoord.consent.step`, performs the LED and buzzer actions at once, and hands every
action to the daemon's ``on_action`` in order. The daemon posts its own events (faults, stick,
copy results, recording ended) with :meth:`ConsentLoop.post` from any thread.

LED patterns and chimes are rendered here from pure functions of time
(:meth:`~akkoord.consent.Pattern.level`, the note tables in :mod:`~akkoord.sounds`) instead of
gpiozero's ``blink()``/``pulse()`` threads: fault blink codes need patterns those cannot
express, one frame clock keeps every output in step, and tests can render any instant exactly
by passing ``now`` instead of sleeping.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from gpiozero import PWMLED, RGBLED, Button, Buzzer, DigitalInputDevice, TonalBuzzer
from gpiozero.exc import GPIOZeroError
from gpiozero.tones import Tone

from akkoord.consent import (
    OFF,
    Action,
    Chime,
    Event,
    Fault,
    FaultCleared,
    FaultRaised,
    Leds,
    Log,
    Machine,
    Party,
    Pattern,
    Pressed,
    Released,
    StartFailed,
    StartRecording,
    StatusLight,
    Tick,
    Timing,
    start,
    step,
)
from akkoord.errors import HardwareError
from akkoord.panel_config import PanelConfig
from akkoord.sounds import CHIMES, MAX_HZ, MIN_HZ, ChimeName

if TYPE_CHECKING:
    from gpiozero import Device
    from gpiozero.pins import Factory

__all__ = ["ConsentLoop", "Panel", "make_pin_factory"]

log = logging.getLogger(__name__)

Clock = Callable[[], float]
_D = TypeVar("_D", bound="Device")
_A = TypeVar("_A")

# Long holds are judged by the consent machine, not gpiozero's when_held. gpiozero's hold
# thread still runs, and close() waits up to hold_time for it while a button is down: keep
# that short so shutting down with a stuck button stays quick.
_HOLD_THREAD_S = 0.1

# Chimes queue behind each other; beyond this backlog new ones are dropped, so a burst of
# events cannot keep the buzzer busy for long after the fact.
_MAX_CHIME_BACKLOG_S = 3.0


def make_pin_factory(name: str) -> Factory:
    """The gpiozero pin factory named in the configuration: "lgpio" (the Pi) or "mock"."""
    if name == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        # PWM pins, because the button LEDs and status light are PWM devices.
        return MockFactory(pin_class=MockPWMPin)
    if name == "lgpio":
        try:
            from gpiozero.pins.lgpio import LGPIOFactory

            return LGPIOFactory()
        except (ImportError, OSError, GPIOZeroError) as exc:
            raise HardwareError(
                f"cannot open GPIO with the lgpio pin factory ({exc}); on the Pi run "
                f"`sudo make install` again (it installs lgpio for this machine) and check "
                f'that the user is in the group "gpio"; elsewhere use pin_factory = "mock"'
            ) from exc
    raise HardwareError(f'unknown pin factory "{name}" (use "lgpio" or "mock")')


class Panel:
    """The panel's gpiozero devices. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        config: PanelConfig,
        *,
        pin_factory: Factory | None = None,
        clock: Clock = time.monotonic,
        events: queue.Queue[Event] | None = None,
    ) -> None:
        self.config = config
        self.events: queue.Queue[Event] = events if events is not None else queue.Queue()
        self._clock = clock
        self._devices: list[Device] = []
        self._closed = False
        # Rendering state: per output the pattern shown and when it started.
        self._buttons_shown: dict[str, tuple[Pattern, float]] = {}
        self._status_shown: tuple[StatusLight, float] | None = None
        #: Copy progress 0..1 shown on the button LEDs until the next Leds action.
        self._progress: float | None = None
        self._written: dict[str, object] = {}
        self._notes: deque[tuple[float | None, float]] = deque()  # (Hz or rest, end time)
        self._notes_end = 0.0
        pins = config.pins
        bounce = config.bounce_s or None
        try:
            self.button_a = self._open(
                "button_a",
                pins.button_a,
                lambda: Button(
                    pins.button_a,
                    pull_up=True,
                    bounce_time=bounce,
                    hold_time=_HOLD_THREAD_S,
                    pin_factory=pin_factory,
                ),
            )
            self.button_b = self._open(
                "button_b",
                pins.button_b,
                lambda: Button(
                    pins.button_b,
                    pull_up=True,
                    bounce_time=bounce,
                    hold_time=_HOLD_THREAD_S,
                    pin_factory=pin_factory,
                ),
            )
            high = config.leds_active_high
            self.led_a = self._open(
                "led_a",
                pins.led_a,
                lambda: PWMLED(pins.led_a, active_high=high, pin_factory=pin_factory),
            )
            self.led_b = self._open(
                "led_b",
                pins.led_b,
                lambda: PWMLED(pins.led_b, active_high=high, pin_factory=pin_factory),
            )
            self.status = self._open(
                "status",
                pins.status_red,
                lambda: RGBLED(
                    pins.status_red,
                    pins.status_green,
                    pins.status_blue,
                    active_high=high,
                    pwm=True,
                    pin_factory=pin_factory,
                ),
            )
            self.buzzer: TonalBuzzer | Buzzer | None = None
            if config.buzzer != "none" and pins.buzzer is not None:
                buzzer_pin = pins.buzzer
                if config.buzzer == "tonal":
                    # A5 +/- 2 octaves = 220..3520 Hz, the range sounds.CHIMES stays in.
                    self.buzzer = self._open(
                        "buzzer",
                        buzzer_pin,
                        lambda: TonalBuzzer(
                            buzzer_pin, mid_tone=Tone("A5"), octaves=2, pin_factory=pin_factory
                        ),
                    )
                else:
                    self.buzzer = self._open(
                        "buzzer", buzzer_pin, lambda: Buzzer(buzzer_pin, pin_factory=pin_factory)
                    )
            self.power_fail: DigitalInputDevice | None = None
            if pins.power_fail is not None:
                pf_pin = pins.power_fail
                active_high = config.power_fail_active_high
                # Pulled towards "power ok", so a panel without a UPS reads as mains-powered.
                self.power_fail = self._open(
                    "power_fail",
                    pf_pin,
                    lambda: DigitalInputDevice(
                        pf_pin, pull_up=not active_high, bounce_time=bounce, pin_factory=pin_factory
                    ),
                )
            self.pin_factory: Factory = self.button_a.pin_factory
            # Callbacks run on gpiozero's thread: they only stamp the time and enqueue.
            self.button_a.when_pressed = self._poster(lambda t: Pressed(Party.A, t))
            self.button_a.when_released = self._poster(lambda t: Released(Party.A, t))
            self.button_b.when_pressed = self._poster(lambda t: Pressed(Party.B, t))
            self.button_b.when_released = self._poster(lambda t: Released(Party.B, t))
            if self.power_fail is not None:
                self.power_fail.when_activated = self._poster(
                    lambda t: FaultRaised(Fault.POWER_LOST, t)
                )
                self.power_fail.when_deactivated = self._poster(
                    lambda t: FaultCleared(Fault.POWER_LOST, t)
                )
                if self.power_fail.is_active:
                    self.events.put(FaultRaised(Fault.POWER_LOST, self.now()))
        except BaseException:
            self.close()
            raise

    def _open(self, role: str, pin: int, make: Callable[[], _D]) -> _D:
        try:
            device = make()
        except GPIOZeroError as exc:
            raise HardwareError(f"cannot open GPIO{pin} for {role}: {exc}") from exc
        self._devices.append(device)
        return device

    def _poster(self, make: Callable[[float], Event]) -> Callable[[], None]:
        def post() -> None:
            self.events.put(make(self._clock()))

        return post

    # -- inputs -----------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def pressed_at_boot(self) -> tuple[bool, bool]:
        """Button levels now (read after the callbacks are wired, so no edge is lost)."""
        return bool(self.button_a.is_pressed), bool(self.button_b.is_pressed)

    # -- outputs ----------------------------------------------------------------------

    def show(self, leds: Leds, now: float) -> None:
        """Switch to new patterns; an output keeps its phase if its pattern is unchanged."""
        self._progress = None  # a new state ends any progress display
        for key, pattern in (("led_a", leds.button_a), ("led_b", leds.button_b)):
            current = self._buttons_shown.get(key)
            if current is None or current[0] != pattern:
                self._buttons_shown[key] = (pattern, now)
        if self._status_shown is None or self._status_shown[0] != leds.status:
            self._status_shown = (leds.status, now)

    def show_progress(self, fraction: float, now: float) -> None:
        """A copy advances (hardware/SIGNALS.md): button A fills over the first half, button B
        over the second. Safe from the copy thread: it only sets a value the next frame
        renders; the state's next Leds action clears it."""
        self._progress = min(max(float(fraction), 0.0), 1.0)

    @staticmethod
    def progress_levels(fraction: float) -> tuple[float, float]:
        """(button A, button B) brightness for a copy `fraction` done."""
        return (round(min(1.0, 2 * fraction), 3), round(max(0.0, 2 * fraction - 1.0), 3))

    def chime(self, name: ChimeName, now: float) -> None:
        """Queue a chime on the buzzer (ignored without one)."""
        if self.buzzer is None:
            return
        begin = max(now, self._notes_end)
        if begin - now > _MAX_CHIME_BACKLOG_S:
            log.warning("chime %s dropped: %.1f s of chimes already queued", name, begin - now)
            return
        for frequency, duration in CHIMES[name]:
            begin += duration
            self._notes.append((frequency, begin))
        self._notes_end = begin

    def perform(self, action: Action, now: float) -> None:
        """Carry out the panel's part of an action (Leds, Chime); other actions pass by."""
        if isinstance(action, Leds):
            self.show(action, now)
            self.render(now)  # at once: the indicator must be lit before capture may start
        elif isinstance(action, Chime):
            self.chime(action.name, now)

    def render(self, now: float) -> None:
        """Set every output to its value at ``now``."""
        progress = self._progress
        levels = self.progress_levels(progress) if progress is not None else None
        for i, (key, device) in enumerate((("led_a", self.led_a), ("led_b", self.led_b))):
            pattern, since = self._buttons_shown.get(key, (OFF, now))
            level = round(pattern.level(now - since), 3) if levels is None else levels[i]
            self._write(key, device, level)
        rgb = (0.0, 0.0, 0.0)
        if self._status_shown is not None:
            status, since = self._status_shown
            rgb = tuple(round(c, 3) for c in status.rgb(now - since))  # type: ignore[assignment]
        self._write("status", self.status, rgb)
        self._render_buzzer(now)

    def _render_buzzer(self, now: float) -> None:
        if self.buzzer is None:
            return
        while self._notes and self._notes[0][1] <= now:
            self._notes.popleft()
        frequency = self._notes[0][0] if self._notes else None
        if self._written.get("buzzer") == frequency:
            return
        self._written["buzzer"] = frequency
        if isinstance(self.buzzer, TonalBuzzer):
            if frequency is None:
                self.buzzer.stop()
            else:
                self.buzzer.play(Tone(min(max(frequency, MIN_HZ), MAX_HZ)))
        elif frequency is None:
            self.buzzer.off()
        else:
            self.buzzer.on()

    def _write(self, key: str, device: PWMLED | RGBLED, value: object) -> None:
        # Writing only changes keeps the pins quiet (and a mock pin's history readable).
        if self._written.get(key) != value:
            self._written[key] = value
            device.value = value

    # -- lifetime ---------------------------------------------------------------------

    def close(self) -> None:
        """Close every device (outputs go off, pins are released). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for device in reversed(self._devices):
            try:
                device.close()
            except GPIOZeroError as exc:  # keep closing the others
                log.warning("closing %r failed: %s", device, exc)
        self._devices.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConsentLoop:
    """Runs the consent machine over the panel's queue (one thread: the loop's)."""

    def __init__(
        self,
        panel: Panel,
        timing: Timing,
        *,
        on_action: Callable[[Action], object] | None = None,
        on_event: Callable[[Event], None] | None = None,
        faults: Iterable[Fault] = (),
        frame_s: float | None = None,
        prepare: Callable[[StartRecording], StartFailed | None] | None = None,
    ) -> None:
        self.panel = panel
        self._on_action = on_action
        self._prepare = prepare
        #: Handlers that raised (logged): the daemon's exit status reports them.
        self.failures = 0
        self._on_event = on_event
        self.frame_s = panel.config.frame_s if frame_s is None else frame_s
        a_down, b_down = panel.pressed_at_boot()
        now = panel.now()
        self.machine: Machine
        self.machine, actions = start(timing, now, a_down=a_down, b_down=b_down, faults=faults)
        self._perform(actions)

    def post(self, event: Event) -> None:
        """Queue an event from any thread (the daemon's faults, stick, copy results...)."""
        self.panel.events.put(event)

    def handle(self, event: Event) -> list[Action]:
        """Step the machine with one event and perform its actions; returns them."""
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # an observer must not stop the panel (see _perform)
                self.failures += 1
                log.exception("observing %r failed", event)
        self.machine, actions = step(self.machine, event)
        self._perform(actions)
        return actions

    def pump(self) -> list[Action]:
        """Handle every queued event without blocking, then a Tick, then render one frame."""
        actions: list[Action] = []
        while True:
            try:
                event = self.panel.events.get_nowait()
            except queue.Empty:
                break
            actions += self.handle(event)
        now = self.panel.now()
        actions += self.handle(Tick(now))
        self.panel.render(now)
        return actions

    def run(self, stopping: threading.Event) -> None:
        """Loop until ``stopping`` is set; wakes at once for an event, else every frame."""
        while not stopping.is_set():
            try:
                event = self.panel.events.get(timeout=self.frame_s)
            except queue.Empty:
                pass
            else:
                self.handle(event)
            self.pump()

    def _perform(self, actions: list[Action]) -> None:
        # A recording is prepared (created, presses written) BEFORE anything of its step is
        # shown: one that cannot be written is never lit red nor announced.
        start_action = next((a for a in actions if isinstance(a, StartRecording)), None)
        if start_action is not None and self._prepare is not None:
            failed = self._guard(self._prepare, start_action)
            if isinstance(failed, StartFailed):
                self._abort_start(actions, failed)
                return
        # Outputs start from the time they are shown, not from the event's time stamp, so a
        # chime or a blink is never cut short by queueing delay.
        now = self.panel.now()
        for action in actions:
            # The panel acts first: the indicator pin is lit before StartRecording reaches
            # the daemon, and StopRecording reaches it before the Leds that turn it off.
            self.panel.perform(action, now)
            if isinstance(action, Log):
                log.info("%s", action)
            if self._on_action is not None:
                # The loop must survive a failing daemon handler: withdrawal (a stop
                # press) has to keep working. The daemon reports its own failure back
                # as FaultRaised / RecordingEnded / StartFailed.
                result = self._guard(self._on_action, action)
                if isinstance(result, StartFailed):
                    # The microphone did not open: nothing after the start is announced.
                    self._abort_start([], result)
                    return

    def _guard(self, fn: Callable[[_A], object], arg: _A) -> object:
        try:
            return fn(arg)
        except Exception:
            self.failures += 1
            log.exception("handling %r failed", arg)
            if isinstance(arg, StartRecording):
                return StartFailed(Fault.STORAGE_ERROR, self.panel.now(), "internal error")
            return None

    def _abort_start(self, actions: list[Action], failed: StartFailed) -> None:
        for action in actions:
            if isinstance(action, Log) and self._on_action is not None:
                self._guard(self._on_action, action)
        self.handle(failed)
