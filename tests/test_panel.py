"""The panel adapter on gpiozero's MockFactory: real gpiozero devices, driven through pins.

Time is injected (a fake clock), so LED patterns and chimes are checked at exact instants
without sleeping; the one threaded test waits on a queue with a timeout.
"""

from __future__ import annotations

import dataclasses
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.consent import (
    Action,
    Chime,
    CopyFinished,
    Fault,
    FaultCleared,
    FaultRaised,
    Leds,
    MakeCopy,
    Party,
    Pressed,
    Released,
    Say,
    StartFailed,
    StartRecording,
    State,
    StickInserted,
    StopReason,
    StopRecording,
    TimelineEvent,
    TimelineKind,
    capture_allowed,
)
from akkoord.errors import HardwareError
from akkoord.panel import ConsentLoop, Panel, make_pin_factory
from akkoord.panel_config import PanelConfig, PanelPins
from akkoord.prompts import PromptId
from akkoord.sounds import CHIMES, ChimeName

PINS = PanelPins(power_fail=6)
BUTTON_A, BUTTON_B = PINS.button_a, PINS.button_b
LED_A, LED_B = PINS.led_a, PINS.led_b
RED, GREEN, BLUE = PINS.status_red, PINS.status_green, PINS.status_blue
BUZZER, POWER = PINS.buzzer, PINS.power_fail
CONFIG = PanelConfig(pins=PINS, pin_factory="mock")


def reserved(factory: MockFactory) -> set[str]:
    """Pins some device still holds (gpiozero keeps emptied entries in the dict)."""
    return {info.name for info, holders in factory._reservations.items() if holders}


class ForcedPin(MockPWMPin):
    """A pin held at a level from outside (a button down at boot, a UPS line): the pull set
    when a device opens it does not move it, as on real hardware."""

    forced: bool | None = None

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.forced is not None:
            self._state = self.forced


def forced(factory: MockFactory, n: int | None, level: bool) -> ForcedPin:
    assert n is not None
    pin = factory.pin(n, pin_class=ForcedPin)
    assert isinstance(pin, ForcedPin)
    pin.forced = level
    return pin


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Rig:
    """A panel, its loop and everything the loop handed to the daemon."""

    def __init__(self, factory: MockFactory, clock: Clock, config: PanelConfig = CONFIG) -> None:
        self.factory = factory
        self.clock = clock
        self.actions: list[Action] = []
        self.panel = Panel(config, pin_factory=factory, clock=clock)
        self.loop = ConsentLoop(self.panel, config.timing, on_action=self.actions.append)

    def pin(self, n: int | None) -> MockPWMPin:
        assert n is not None
        return self.factory.pin(n)

    def press(self, n: int) -> None:
        self.pin(n).drive_low()

    def release(self, n: int) -> None:
        self.pin(n).drive_high()

    def tap(self, n: int) -> None:
        self.press(n)
        self.clock.advance(0.1)
        self.release(n)

    def pump(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.loop.pump()

    def level(self, n: int | None) -> float:
        return float(self.pin(n).state)

    def rgb(self) -> tuple[float, float, float]:
        return (self.level(RED), self.level(GREEN), self.level(BLUE))

    def of(self, kind: type) -> list:
        return [a for a in self.actions if isinstance(a, kind)]

    def start_recording(self) -> None:
        self.tap(BUTTON_A)
        self.pump(0.1)
        self.tap(BUTTON_B)
        self.pump(0.1)
        assert self.loop.machine.state is State.RECORDING


@pytest.fixture
def rig(factory: MockFactory, clock: Clock) -> Iterator[Rig]:
    r = Rig(factory, clock)
    yield r
    r.panel.close()


# --------------------------------------------------------------------------- devices


def test_idle_outputs(rig: Rig) -> None:
    rig.pump()
    assert rig.level(LED_A) == 0.0 and rig.level(LED_B) == 0.0
    assert rig.rgb() == (0.0, 0.15, 0.0)  # green, dim
    assert rig.pin(BUZZER).frequency is None
    assert rig.loop.machine.state is State.READY


def test_button_callbacks_only_enqueue(rig: Rig) -> None:
    before = rig.rgb(), rig.level(LED_A), rig.loop.machine
    rig.press(BUTTON_A)
    rig.clock.advance(0.2)
    rig.release(BUTTON_A)
    assert rig.panel.events.get_nowait() == Pressed(Party.A, 100.0)
    assert rig.panel.events.get_nowait() == Released(Party.A, 100.2)
    assert rig.panel.events.empty()
    assert (rig.rgb(), rig.level(LED_A), rig.loop.machine) == before


def test_pull_up_buttons_and_pwm_outputs(rig: Rig) -> None:
    assert rig.panel.button_a.pull_up and rig.panel.button_b.pull_up
    assert rig.pin(BUTTON_A).pull == "up"
    assert rig.pin(LED_A).function == "output" and rig.pin(LED_A).frequency is not None


def test_close_releases_every_pin(factory: MockFactory, clock: Clock) -> None:
    first = Rig(factory, clock)
    first.panel.close()
    first.panel.close()  # twice is fine
    assert first.panel.closed
    assert reserved(factory) == set()
    second = Rig(factory, clock)  # the same pins open again
    second.panel.close()


def test_pin_in_use_is_a_hardware_error_and_leaks_nothing(
    factory: MockFactory, clock: Clock
) -> None:
    with (
        Panel(CONFIG, pin_factory=factory, clock=clock),
        pytest.raises(HardwareError, match=r"GPIO17 for button_a"),
    ):
        Panel(CONFIG, pin_factory=factory, clock=clock)
    assert reserved(factory) == set()
    Panel(CONFIG, pin_factory=factory, clock=clock).close()


def test_default_pin_factory_is_used_when_none_given(clock: Clock) -> None:
    saved = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    try:
        with Panel(CONFIG, clock=clock) as panel:
            assert panel.pin_factory is Device.pin_factory
            Device.pin_factory.pin(BUTTON_A).drive_low()
            assert panel.events.get_nowait() == Pressed(Party.A, clock.t)
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved


def test_make_pin_factory() -> None:
    mock = make_pin_factory("mock")
    assert isinstance(mock, MockFactory) and mock.pin_class is MockPWMPin
    with pytest.raises(HardwareError, match="unknown pin factory"):
        make_pin_factory("rpigpio")
    try:
        import lgpio  # noqa: F401
    except ImportError:
        with pytest.raises(HardwareError, match="lgpio"):
            make_pin_factory("lgpio")


# --------------------------------------------------------------------------- consent flow


def test_first_press_lights_own_button_and_blinks_the_other(rig: Rig) -> None:
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.WAITING
    assert rig.level(LED_A) == 1.0
    assert rig.level(LED_B) == 1.0  # blink starts on
    assert rig.rgb() == (0.0, 1.0, 0.0)
    assert rig.pin(BUZZER).frequency == pytest.approx(CHIMES[ChimeName.CONSENT][0][0], abs=0.01)
    rig.pump(0.55)  # patterns start when shown: 0.55 s into the blink is its off phase
    assert rig.level(LED_B) == 0.0 and rig.level(LED_A) == 1.0
    assert rig.pin(BUZZER).frequency is None  # chime over
    rig.pump(0.5)
    assert rig.level(LED_B) == 1.0


def test_both_presses_record_with_indicator_lit_before_capture(rig: Rig) -> None:
    seen: list[tuple[str, float]] = []

    def daemon(action: Action) -> None:
        # What the pins show at the moment the daemon is told to start or stop capture.
        if isinstance(action, StartRecording | StopRecording):
            seen.append((type(action).__name__, rig.level(RED)))

    rig.loop._on_action = daemon
    rig.start_recording()
    assert seen == [("StartRecording", 1.0)]
    assert rig.rgb() == (1.0, 0.0, 0.0)
    assert rig.level(LED_A) == pytest.approx(rig.level(LED_B))
    pulse = [rig.level(LED_A)]
    for _ in range(6):
        rig.pump(0.5)
        pulse.append(rig.level(LED_A))
    assert min(pulse) < 0.5 < max(pulse)  # slow pulse, never fully dark
    assert min(pulse) >= 0.1

    rig.clock.advance(1.0)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert seen[-1] == ("StopRecording", 1.0)  # still lit while the daemon seals
    assert rig.rgb() == (0.0, 0.0, 1.0)  # off afterwards: blue, copy available
    assert rig.level(LED_A) == 0.0 and rig.level(LED_B) == 0.0


def test_start_and_stop_reach_the_daemon_in_order(rig: Rig) -> None:
    rig.start_recording()
    (start,) = rig.of(StartRecording)
    assert [p for p, _ in start.consents] == [Party.A, Party.B]
    rig.pump(1.0)
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    assert [a.reason for a in rig.of(StopRecording)] == [StopReason.PARTY_A]


def test_simultaneous_presses(rig: Rig) -> None:
    rig.press(BUTTON_A)
    rig.press(BUTTON_B)
    rig.pump(0.01)
    assert rig.loop.machine.state is State.RECORDING
    assert rig.level(RED) == 1.0


def test_window_expires(rig: Rig) -> None:
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    rig.pump(19.7)
    assert rig.loop.machine.state is State.WAITING
    rig.pump(0.2)
    assert rig.loop.machine.state is State.READY
    assert rig.rgb() == (0.0, 0.15, 0.0)
    assert rig.level(LED_B) == 0.0
    first_note = CHIMES[ChimeName.WINDOW_EXPIRED][0][0]
    assert rig.pin(BUZZER).frequency == pytest.approx(first_note, abs=0.01)
    assert not rig.of(StartRecording)


def test_refractory_interval_ignores_a_double_press(rig: Rig) -> None:
    rig.start_recording()
    rig.tap(BUTTON_B)  # the second party presses again 0.1 s after the start
    rig.pump(0.1)
    assert rig.loop.machine.state is State.RECORDING
    assert rig.level(RED) == 1.0
    rig.pump(0.5)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.STOPPED


def test_button_held_at_boot_is_a_fault_until_released(factory: MockFactory, clock: Clock) -> None:
    pin = forced(factory, BUTTON_A, False)  # held down before the panel exists
    rig = Rig(factory, clock)
    pin.forced = None
    try:
        rig.pump()
        assert Fault.STUCK_BUTTON_A in rig.loop.machine.faults
        assert rig.level(LED_A) == 1.0 and rig.level(RED) == 1.0  # fast blink, on phase
        rig.pump(0.15)
        assert rig.level(LED_A) == 0.0 and rig.level(RED) == 0.0
        assert rig.pin(BUZZER).frequency == pytest.approx(261.63, abs=0.01)  # low tone
        rig.tap(BUTTON_B)
        rig.pump(0.1)
        assert rig.loop.machine.state is State.READY  # blocked
        rig.release(BUTTON_A)
        rig.pump(0.1)
        assert not rig.loop.machine.faults
        assert rig.loop.machine.state is State.READY  # release is not consent
        assert rig.rgb() == (0.0, 0.15, 0.0)
    finally:
        rig.panel.close()


def test_button_held_too_long_becomes_stuck(rig: Rig) -> None:
    rig.press(BUTTON_A)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.WAITING
    rig.pump(5.0)
    assert rig.loop.machine.state is State.READY
    assert Fault.STUCK_BUTTON_A in rig.loop.machine.faults
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.READY
    rig.release(BUTTON_A)
    rig.pump(0.1)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.WAITING


def test_fault_blocks_and_clears_with_its_blink_code(rig: Rig) -> None:
    rig.loop.post(FaultRaised(Fault.STORAGE_LOW, rig.clock.t))
    rig.pump()
    assert rig.rgb() == (1.0, 0.0, 0.0)  # first flash of code 2
    assert rig.pin(BUZZER).frequency == pytest.approx(261.63, abs=0.01)  # low tone
    rig.pump(0.25)
    assert rig.rgb() == (0.0, 0.0, 0.0)
    rig.pump(0.3)
    assert rig.rgb() == (1.0, 0.0, 0.0)  # second flash
    rig.pump(0.5)
    assert rig.rgb() == (0.0, 0.0, 0.0)  # pause
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.READY
    rig.loop.post(FaultCleared(Fault.STORAGE_LOW, rig.clock.t))
    rig.pump()
    assert rig.rgb() == (0.0, 0.15, 0.0)
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.WAITING


def test_copy_confirm_flow_on_pins(rig: Rig) -> None:
    rig.start_recording()
    rig.pump(2.0)
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    rig.loop.post(StickInserted(rig.clock.t))
    rig.pump(1.0)  # past the refractory interval: offered
    assert rig.loop.machine.state is State.COPY_CONFIRM
    assert rig.level(LED_A) == 1.0 and rig.level(LED_B) == 1.0 and rig.rgb() == (0, 0, 1.0)
    rig.pump(0.6)
    assert rig.level(LED_A) == 0.0 and rig.level(LED_B) == 0.0 and rig.rgb() == (0, 0, 0)
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    assert rig.level(LED_A) == 1.0  # A confirmed: steady
    assert not rig.of(MakeCopy)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert len(rig.of(MakeCopy)) == 1
    assert rig.loop.machine.state is State.COPYING
    rig.loop.post(CopyFinished(True, rig.clock.t))
    rig.pump()
    assert rig.rgb() == (0.0, 1.0, 1.0)  # cyan: safe to remove


def test_power_fail_input(factory: MockFactory, clock: Clock) -> None:
    pin = forced(factory, POWER, True)  # on battery already at boot
    with Panel(CONFIG, pin_factory=factory, clock=clock) as panel:
        pin.forced = None
        assert panel.events.get_nowait() == FaultRaised(Fault.POWER_LOST, clock.t)
        clock.advance(1)
        factory.pin(POWER).drive_low()
        assert panel.events.get_nowait() == FaultCleared(Fault.POWER_LOST, clock.t)
        factory.pin(POWER).drive_high()
        assert panel.events.get_nowait() == FaultRaised(Fault.POWER_LOST, clock.t)
    assert reserved(factory) == set()


def test_power_fail_pulled_to_power_ok_without_ups(factory: MockFactory, clock: Clock) -> None:
    with Panel(CONFIG, pin_factory=factory, clock=clock) as panel:
        assert factory.pin(POWER).pull == "down"
        assert panel.events.empty()


def test_active_low_leds(factory: MockFactory, clock: Clock) -> None:
    rig = Rig(factory, clock, dataclasses.replace(CONFIG, leds_active_high=False))
    try:
        rig.pump()
        assert rig.level(GREEN) == pytest.approx(0.85)
        assert rig.level(LED_A) == 1.0  # off = high when sinking current
    finally:
        rig.panel.close()


def test_active_buzzer(factory: MockFactory, clock: Clock) -> None:
    rig = Rig(factory, clock, dataclasses.replace(CONFIG, buzzer="active"))
    try:
        rig.tap(BUTTON_A)
        rig.pump(0.05)
        assert rig.level(BUZZER) == 1.0
        rig.pump(0.5)
        assert rig.level(BUZZER) == 0.0
    finally:
        rig.panel.close()


def test_no_buzzer(factory: MockFactory, clock: Clock) -> None:
    config = dataclasses.replace(CONFIG, buzzer="none", pins=dataclasses.replace(PINS, buzzer=None))
    rig = Rig(factory, clock, config)
    try:
        assert rig.panel.buzzer is None
        rig.tap(BUTTON_A)
        rig.pump(0.1)
        assert rig.loop.machine.state is State.WAITING
        assert f"GPIO{BUZZER}" not in reserved(factory)
    finally:
        rig.panel.close()


def test_failing_daemon_handler_does_not_stop_the_panel(rig: Rig) -> None:
    def broken(action: Action) -> None:
        if isinstance(action, TimelineEvent) and action.kind is TimelineKind.START:
            raise RuntimeError("store exploded")
        rig.actions.append(action)

    rig.loop._on_action = broken
    rig.start_recording()
    rig.pump(1.0)
    rig.tap(BUTTON_A)  # withdrawal still works
    rig.pump(0.1)
    assert rig.loop.machine.state is State.STOPPED
    assert rig.of(StopRecording)
    assert rig.loop.failures == 1  # counted, so the daemon's exit status reports it


def _status_writes(rig: Rig) -> list[object]:
    seen: list[object] = []
    write = rig.panel._write

    def spy(key: str, device: object, value: object) -> None:
        if key == "status":
            seen.append((rig.loop.machine.state, value))
        write(key, device, value)  # type: ignore[arg-type]

    rig.panel._write = spy  # type: ignore[method-assign]
    return seen


def test_a_recording_that_cannot_be_written_is_never_lit_nor_announced(rig: Rig) -> None:
    seen = _status_writes(rig)
    rig.loop._prepare = lambda start: StartFailed(Fault.STORAGE_ERROR, rig.clock.t, "read-only")
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.READY
    assert Fault.STORAGE_ERROR in rig.loop.machine.faults
    # The indicator never went red (red after this is the storage fault's blink code).
    assert (State.RECORDING, (1.0, 0.0, 0.0)) not in seen
    assert State.RECORDING not in [state for state, _ in seen]
    assert not rig.of(StartRecording)
    says = [a.prompt for a in rig.of(Say)]
    assert PromptId.RECORDING_STARTED not in says and PromptId.FAULT in says
    assert ChimeName.RECORDING_START not in [c.name for c in rig.of(Chime)]


def test_a_microphone_that_does_not_open_is_not_announced(rig: Rig) -> None:
    def on_action(action: Action) -> object:
        rig.actions.append(action)
        if isinstance(action, StartRecording):
            return StartFailed(Fault.NO_MICROPHONE, rig.clock.t, "no device")
        return None

    rig.loop._on_action = on_action
    seen = _status_writes(rig)
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.READY
    # Lit before the microphone was asked (capture never runs dark), off in the same step:
    # the next write is the fault's code, written before any frame could show the red.
    from akkoord.consent import INDICATOR

    assert rig.panel._status_shown is not None and rig.panel._status_shown[0] != INDICATOR
    assert seen[-1][0] is State.READY
    assert PromptId.RECORDING_STARTED not in [a.prompt for a in rig.of(Say)]
    assert ChimeName.RECORDING_START not in [c.name for c in rig.of(Chime)]


def test_a_raising_start_handler_is_a_failed_start(rig: Rig) -> None:
    def broken(action: Action) -> None:
        rig.actions.append(action)
        if isinstance(action, StartRecording):
            raise RuntimeError("store exploded")

    rig.loop._on_action = broken
    rig.tap(BUTTON_A)
    rig.pump(0.1)
    rig.tap(BUTTON_B)
    rig.pump(0.1)
    assert rig.loop.machine.state is State.READY
    assert Fault.STORAGE_ERROR in rig.loop.machine.faults and rig.loop.failures == 1


def test_run_loop_thread(factory: MockFactory) -> None:
    # Real clock and thread: wait on the daemon's queue with a timeout, never sleep.
    got: queue.Queue[Action] = queue.Queue()
    with Panel(CONFIG, pin_factory=factory) as panel:
        loop = ConsentLoop(panel, CONFIG.timing, on_action=got.put)
        stopping = threading.Event()
        thread = threading.Thread(target=loop.run, args=(stopping,), daemon=True)
        thread.start()
        try:
            factory.pin(BUTTON_A).drive_low()
            factory.pin(BUTTON_B).drive_low()
            deadline = time.monotonic() + 5
            while not isinstance(action := got.get(timeout=5), StartRecording):
                assert time.monotonic() < deadline
            assert {p for p, _ in action.consents} == {Party.A, Party.B}
        finally:
            stopping.set()
            thread.join(timeout=5)
        assert not thread.is_alive()


# --------------------------------------------------------------------------- property


press_ops = st.lists(
    st.tuples(
        st.sampled_from([BUTTON_A, BUTTON_B]),
        st.booleans(),
        st.floats(0.0, 3.0),
    ),
    min_size=1,
    max_size=40,
)


def solid_red(panel: Panel, factory: MockFactory, now: float) -> bool:
    """Red on, green and blue off at several instants over 1.1 s: the indicator, as a person
    sees it (fault codes are red too, but they go dark within that time)."""
    samples = []
    for k in range(11):
        panel.render(now + k * 0.11)
        samples.append(tuple(float(factory.pin(n).state) for n in (RED, GREEN, BLUE)))
    panel.render(now)
    return all(s == (1.0, 0.0, 0.0) for s in samples)


def test_indicator_on_pins_exactly_when_capture_is_allowed(factory: MockFactory) -> None:
    """Random press/release/time on the real pins: the status light is solid red exactly when
    capture is allowed, and is lit at the moment the daemon is told to start."""
    clock = Clock()
    red_at_start: list[float] = []

    def daemon(action: Action) -> None:
        if isinstance(action, StartRecording):
            red_at_start.append(float(factory.pin(RED).state))
            assert len({p for p, _ in action.consents}) == 2

    # One panel for all examples (opening and closing gpiozero buttons costs ~0.2 s); each
    # example releases the buttons, drops their queued edges and starts a fresh machine.
    with Panel(CONFIG, pin_factory=factory, clock=clock) as panel:

        @settings(max_examples=80, deadline=None)
        @given(press_ops)
        def check(ops: list) -> None:
            for n in (BUTTON_A, BUTTON_B):
                factory.pin(n).drive_high()
            while not panel.events.empty():
                panel.events.get_nowait()
            loop = ConsentLoop(panel, CONFIG.timing, on_action=daemon)
            for button, down, dt in ops:
                pin = factory.pin(button)
                (pin.drive_low if down else pin.drive_high)()
                clock.advance(dt)
                loop.pump()
                assert solid_red(panel, factory, clock.t) == capture_allowed(loop.machine)

        check()
    assert red_at_start, "no example started a recording: the strategy is too weak"
    assert all(level == 1.0 for level in red_at_start)


# --------------------------------------------------------------------------- import


def test_import_touches_no_hardware_with_fake_rpi_present() -> None:
    # fake-rpi stands in for RPi.GPIO and prints every call it receives; a fresh interpreter
    # imports the panel and must neither call it nor pick a pin factory.
    code = """
import sys
import fake_rpi
sys.modules["RPi"] = fake_rpi.RPi
sys.modules["RPi.GPIO"] = fake_rpi.RPi.GPIO
import RPi.GPIO
calls = []
for name in ("setmode", "setup", "input", "output", "add_event_detect", "cleanup"):
    setattr(RPi.GPIO, name, lambda *a, _n=name, **k: calls.append(_n))
import akkoord.panel, akkoord.consent, akkoord.panel_config, akkoord.sounds, akkoord.prompts
from gpiozero import Device
assert Device.pin_factory is None, Device.pin_factory
assert calls == [], calls
print("clean")
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # fake-rpi announces itself on import; any GPIO call would print a line of its own.
    assert result.stdout.splitlines()[-1] == "clean"
    assert "_GPIO." not in result.stdout


def test_leds_action_is_rendered_immediately(rig: Rig) -> None:
    from akkoord.consent import INDICATOR, OFF

    rig.panel.perform(Leds(OFF, OFF, INDICATOR), rig.clock.t)
    assert rig.rgb() == (1.0, 0.0, 0.0)
