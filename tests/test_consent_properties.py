"""Properties of the consent machine over random event sequences (hypothesis).

An independent model replays every action in order, the way the daemon would, and checks:
capture never runs while the indicator is off; StartRecording carries two distinct parties whose
presses were fresh edges inside the window and not held past the hold limit; no fault was
present at the start; stops honour the refractory interval; a copy needs both parties; every
state change is logged along allowed edges; the LEDs shown always match the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.consent import (
    ALLOWED,
    STUCK_FAULTS,
    CopyFinished,
    Event,
    ExportWindowClosed,
    Fault,
    FaultCleared,
    FaultRaised,
    Leds,
    Log,
    Machine,
    MakeCopy,
    Party,
    Pressed,
    RecordingEnded,
    Released,
    StartRecording,
    State,
    StickInserted,
    StickRemoved,
    StopReason,
    StopRecording,
    Tick,
    TimelineEvent,
    TimelineKind,
    Timing,
    capture_allowed,
    indicator_on,
    leds_for,
    start,
    step,
)

A, B = Party.A, Party.B
EXTERNAL_FAULTS = [f for f in Fault if f not in STUCK_FAULTS]
END_REASONS = [r for r in StopReason if r not in (StopReason.PARTY_A, StopReason.PARTY_B)]

# Button traffic dominates, as at a real table; the daemon's notices arrive now and then, and
# faults clear more often than they are raised (else most runs would be fault-blocked).
_COMMON = st.sampled_from(
    [("press", A), ("release", A), ("press", B), ("release", B)] * 3
    + [("tick", None)] * 3
    + [("stick_in", None), ("stick_out", None), ("export_closed", None)]
)
_RARE = st.one_of(
    st.tuples(st.just("fault"), st.sampled_from(EXTERNAL_FAULTS)),
    st.tuples(st.just("clear"), st.sampled_from(EXTERNAL_FAULTS)),
    st.tuples(st.just("clear"), st.sampled_from(EXTERNAL_FAULTS)),
    st.tuples(st.just("clear"), st.sampled_from(EXTERNAL_FAULTS)),
    st.tuples(st.just("copy"), st.booleans()),
    st.tuples(st.just("ended"), st.sampled_from(END_REASONS)),
)
# (st.one_of drops repeated strategies, so weights go through sampled_from.)
op = st.sampled_from([_COMMON] * 7 + [_RARE]).flatmap(lambda strategy: strategy)
# Gaps: mostly bounce- and human-scale; sometimes long enough to cross every timer.
_SHORT = st.floats(0.0, 0.05)
_HUMAN = st.floats(0.0, 1.5)
_GAPS = [_SHORT, _HUMAN, _SHORT, _HUMAN, _HUMAN, st.floats(0.0, 8.0), st.floats(15.0, 70.0)]
gap = st.sampled_from(_GAPS).flatmap(lambda strategy: strategy)
script = st.lists(st.tuples(gap, op), min_size=10, max_size=80)
timings = st.builds(
    Timing,
    window_s=st.sampled_from([5.0, 20.0]),
    hold_limit_s=st.sampled_from([2.0, 5.0]),
    refractory_s=st.sampled_from([0.0, 0.6, 1.0]),
    copy_confirm_s=st.sampled_from([10.0, 60.0]),
)


def to_event(kind: str, arg: object, t: float) -> Event:
    match kind:
        case "press":
            return Pressed(arg, t)  # type: ignore[arg-type]
        case "release":
            return Released(arg, t)  # type: ignore[arg-type]
        case "tick":
            return Tick(t)
        case "fault":
            return FaultRaised(arg, t)  # type: ignore[arg-type]
        case "clear":
            return FaultCleared(arg, t)  # type: ignore[arg-type]
        case "stick_in":
            return StickInserted(t)
        case "stick_out":
            return StickRemoved(t)
        case "copy":
            return CopyFinished(bool(arg), t)
        case "export_closed":
            return ExportWindowClosed(t)
        case "ended":
            return RecordingEnded(arg, t)  # type: ignore[arg-type]
    raise AssertionError(kind)


@dataclass
class Model:
    """What the daemon and an observer of the pins would see."""

    timing: Timing
    capturing: bool = False
    indicator: bool = False
    last_leds: Leds | None = None
    down: dict[Party, bool] = field(default_factory=lambda: {A: False, B: False})
    fresh: dict[Party, list[float]] = field(default_factory=lambda: {A: [], B: []})
    releases: dict[Party, list[float]] = field(default_factory=lambda: {A: [], B: []})
    faults: set[Fault] = field(default_factory=set)
    last_start: float = -math.inf
    last_stop: float = -math.inf
    copy_presses: set[Party] = field(default_factory=set)
    starts: int = 0

    def before(self, machine: Machine, event: Event) -> None:
        if isinstance(event, Pressed):
            if not self.down[event.party]:
                self.fresh[event.party].append(event.t)
            self.down[event.party] = True
        elif isinstance(event, Released):
            self.down[event.party] = False
            self.releases[event.party].append(event.t)
        elif isinstance(event, FaultRaised):
            self.faults.add(event.fault)
        elif isinstance(event, FaultCleared):
            self.faults.discard(event.fault)
        elif isinstance(event, RecordingEnded) and machine.state is State.RECORDING:
            self.capturing = False  # the daemon stopped and sealed before telling us
            self.last_stop = event.t

    def held_too_long(self, party: Party, pressed: float, until: float) -> bool:
        released = next((r for r in self.releases[party] if r >= pressed), None)
        end = until if released is None else min(released, until)
        return end - pressed >= self.timing.hold_limit_s

    def replay(self, old: Machine, event: Event, actions: list, new: Machine) -> None:
        for action in actions:
            if isinstance(action, Leds):
                self.indicator = indicator_on(action)
                self.last_leds = action
            elif isinstance(action, StartRecording):
                self.check_start(action, event)
                self.capturing = True
                self.last_start = action.t
                self.starts += 1
            elif isinstance(action, StopRecording):
                assert self.capturing, "stop without a recording"
                assert isinstance(event, Pressed), "only a press stops from the panel"
                assert action.reason.value == f"party_{event.party.value}"
                assert action.t >= self.last_start + self.timing.refractory_s
                self.capturing = False
                self.last_stop = action.t
            elif isinstance(action, TimelineEvent) and action.kind is TimelineKind.COPY_PRESS:
                self.copy_presses.add(action.party)  # type: ignore[arg-type]
            elif (
                isinstance(action, Log)
                and action.new is State.COPY_CONFIRM
                and action.old is not State.COPY_CONFIRM
            ):
                self.copy_presses = set()
            elif isinstance(action, MakeCopy):
                assert self.copy_presses == {A, B}, "a copy needs both parties"
            # THE invariant, at every point of the action list.
            assert not (self.capturing and not self.indicator), f"indicator off: {action}"

        # After the step, the state agrees with the replay.
        assert capture_allowed(new) == self.capturing
        assert self.indicator == self.capturing, "solid red is the recording indicator only"
        assert self.last_leds == leds_for(new)
        if new.state is State.WAITING:
            assert not new.faults, "faults cancel a pending consent"
        # Every state change logged, along allowed edges, from old to new.
        path = [(a.old, a.new) for a in actions if isinstance(a, Log) and a.old is not a.new]
        current = old.state
        for edge in path:
            assert edge[0] is current and edge in ALLOWED, (path, old.state)
            current = edge[1]
        assert current is new.state

    def check_start(self, action: StartRecording, event: Event) -> None:
        assert not self.capturing, "a second recording while one runs"
        parties = [p for p, _ in action.consents]
        assert len(parties) == 2 and set(parties) == {A, B}, parties
        assert isinstance(event, Pressed) and event.party is parties[1]
        assert not self.faults, f"started despite {self.faults}"
        for party, pressed in action.consents:
            assert pressed in self.fresh[party], "consent without a fresh press edge"
            assert pressed >= self.last_stop + self.timing.refractory_s
            assert not self.held_too_long(party, pressed, action.t)
        first = action.consents[0][1]
        assert action.t == action.consents[1][1]
        assert action.t - first < self.timing.window_s


def run_script(timing: Timing, a_down: bool, b_down: bool, steps: list) -> Model:
    machine, actions = start(timing, 0.0, a_down=a_down, b_down=b_down)
    model = Model(timing, down={A: a_down, B: b_down})
    model.replay(machine, Tick(0.0), actions, machine)
    t = 0.0
    for dt, (kind, arg) in steps:
        t += dt
        event = to_event(kind, arg, t)
        model.before(machine, event)
        new, actions = step(machine, event)
        model.replay(machine, event, actions, new)
        machine = new
    return model


@settings(max_examples=400, deadline=None)
@given(timings, st.booleans(), st.booleans(), script)
def test_invariants_hold_for_any_sequence(
    timing: Timing, a_down: bool, b_down: bool, steps: list
) -> None:
    run_script(timing, a_down, b_down, steps)


@settings(max_examples=300, deadline=None)
@given(timings, st.booleans(), script)
def test_a_single_party_never_starts_a_recording(
    timing: Timing, boot_down: bool, steps: list
) -> None:
    # Drop every event of party B: whatever A and the daemon do, nothing records.
    only_a = [(dt, o) for dt, o in steps if o[1] is not B]
    model = run_script(timing, boot_down, False, only_a)
    assert model.starts == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 0.59), min_size=1, max_size=12))
def test_bounce_around_start_never_stops_or_restarts(bounces: list[float]) -> None:
    """Press/release chatter within the refractory interval after a start does nothing."""
    machine, _ = start(Timing(), 0.0)
    for event in (Pressed(A, 1.0), Released(A, 1.1), Pressed(B, 2.0)):
        machine, _ = step(machine, event)
    assert machine.state is State.RECORDING
    t = 2.0
    down = {A: False, B: True}
    for i, gap_s in enumerate(sorted(bounces)):
        t = max(t, 2.0 + gap_s)
        party = (A, B)[i % 2]
        event: Event = Released(party, t) if down[party] else Pressed(party, t)
        down[party] = not down[party]
        machine, actions = step(machine, event)
        assert not any(isinstance(a, (StopRecording, StartRecording)) for a in actions)
    assert machine.state is State.RECORDING
