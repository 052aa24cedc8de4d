"""The consent state machine, transition by transition (pure: no GPIO, no clock)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import pytest

from akkoord.consent import (
    ALLOWED,
    BLINK,
    DIM,
    EVENT_TYPES,
    FAST_BLINK,
    FAULT_SIGNALS,
    INDICATOR,
    NO_REACTION,
    OFF,
    ON,
    SLOW_PULSE,
    TRANSITIONS,
    Action,
    Chime,
    CollectionFinished,
    CollectionStickInserted,
    Colour,
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
    Pattern,
    Pressed,
    RecordingEnded,
    Released,
    Say,
    StartFailed,
    StartRecording,
    State,
    StatusLight,
    Stick,
    StickInserted,
    StickRemoved,
    StopReason,
    StopRecording,
    Tick,
    TimelineEvent,
    TimelineKind,
    Timing,
    blink_code,
    capture_allowed,
    indicator_on,
    leds_for,
    start,
    step,
)
from akkoord.prompts import PromptId
from akkoord.sounds import ChimeName

A, B = Party.A, Party.B
T = Timing()  # window 20 s, hold 5 s, refractory 0.6 s, copy offer 60 s


class Run:
    """A machine plus everything it emitted, fed one event at a time."""

    def __init__(self, machine: Machine | None = None, **boot: object) -> None:
        if machine is None:
            machine, actions = start(T, 0.0, **boot)  # type: ignore[arg-type]
        else:
            actions = []
        self.m = machine
        self.all: list[Action] = list(actions)
        self.last: list[Action] = list(actions)

    def __call__(self, *events: Event) -> list[Action]:
        self.last = []
        for event in events:
            self.m, actions = step(self.m, event)
            self.last += actions
        self.all += self.last
        return self.last

    def tap(self, party: Party, t: float, hold: float = 0.1) -> list[Action]:
        return self(Pressed(party, t), Released(party, t + hold))

    @property
    def state(self) -> State:
        return self.m.state

    @property
    def leds(self) -> Leds:
        return [a for a in self.all if isinstance(a, Leds)][-1]


def of(actions: Iterable[Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def chimes(actions: Iterable[Action]) -> list[ChimeName]:
    return [a.name for a in of(actions, Chime)]


def says(actions: Iterable[Action]) -> list[PromptId]:
    return [a.prompt for a in of(actions, Say)]


def recording(t0: float = 1.0) -> Run:
    """A, then B 2 s later: recording since t0 + 2."""
    run = Run()
    run.tap(A, t0)
    run.tap(B, t0 + 2)
    assert run.state is State.RECORDING
    return run


def stopped(t0: float = 1.0) -> Run:
    run = recording(t0)
    run.tap(A, t0 + 10)
    assert run.state is State.STOPPED
    return run


def copy_confirm(t0: float = 1.0) -> Run:
    run = stopped(t0)
    run(StickInserted(t0 + 20))
    assert run.state is State.COPY_CONFIRM
    return run


# --------------------------------------------------------------------------- boot


def test_boot_is_ready_and_shows_dim_green() -> None:
    run = Run()
    assert run.state is State.READY
    assert run.all[0] == Log(State.READY, State.READY, "boot")
    assert run.leds == Leds(OFF, OFF, StatusLight(Colour.GREEN, Pattern("dim", ((0.15, 1.0),))))
    assert not capture_allowed(run.m)


def test_boot_with_faults_shows_them_with_low_tone() -> None:
    run = Run(faults=[Fault.NO_KEYS])
    assert run.m.faults == {Fault.NO_KEYS}
    assert chimes(run.all) == [ChimeName.FAULT]
    assert run.leds.status == FAULT_SIGNALS[Fault.NO_KEYS]
    with pytest.raises(ValueError):
        start(T, 0.0, faults=[Fault.STUCK_BUTTON_A])


# --------------------------------------------------------------------------- consent


def test_a_then_b_starts_recording_with_both_consents() -> None:
    run = Run()
    out = run.tap(A, 1.0)
    assert run.state is State.WAITING
    assert of(out, TimelineEvent)[0] == TimelineEvent(TimelineKind.CONSENT, A, 1.0)
    assert chimes(out) == [ChimeName.CONSENT]
    assert says(out) == [PromptId.WAITING_FOR_OTHER]
    assert run.leds == Leds(ON, BLINK, StatusLight(Colour.GREEN, ON))
    assert Log(State.READY, State.WAITING, "party a pressed") in out

    out = run.tap(B, 4.0)
    assert run.state is State.RECORDING
    (start_action,) = of(out, StartRecording)
    assert start_action == StartRecording(((A, 1.0), (B, 4.0)), 4.0)
    assert chimes(out) == [ChimeName.RECORDING_START]
    assert says(out) == [PromptId.RECORDING_STARTED]
    assert run.leds == Leds(SLOW_PULSE, SLOW_PULSE, INDICATOR)
    assert capture_allowed(run.m) and capture_allowed(State.RECORDING)
    kinds = [(e.kind, e.party) for e in of(out, TimelineEvent)]
    assert kinds == [(TimelineKind.CONSENT, B), (TimelineKind.START, None)]


def test_b_then_a_is_symmetric() -> None:
    run = Run()
    run.tap(B, 1.0)
    assert run.leds == Leds(BLINK, ON, StatusLight(Colour.GREEN, ON))
    out = run.tap(A, 2.0)
    assert of(out, StartRecording)[0].consents == ((B, 1.0), (A, 2.0))


def test_indicator_goes_on_before_start_in_the_same_step() -> None:
    run = Run()
    run.tap(A, 1.0)
    out = run(Pressed(B, 2.0))
    leds_at = next(i for i, a in enumerate(out) if isinstance(a, Leds))
    start_at = next(i for i, a in enumerate(out) if isinstance(a, StartRecording))
    assert leds_at < start_at
    assert indicator_on(out[leds_at])


def test_simultaneous_presses_start() -> None:
    run = Run()
    out = run(Pressed(A, 5.000), Pressed(B, 5.001))
    assert run.state is State.RECORDING
    assert of(out, StartRecording)[0].consents == ((A, 5.000), (B, 5.001))


def test_same_party_twice_is_still_one_party() -> None:
    run = Run()
    run.tap(A, 1.0)
    out = run.tap(A, 2.0)
    assert run.state is State.WAITING
    assert out == []  # no consent event, no sound, no window restart
    assert run.m.presses == ((A, 1.0),)


def test_window_expires_on_tick_with_distinct_sound_and_nothing_started() -> None:
    run = Run()
    run.tap(A, 1.0)
    assert run(Tick(20.999)) == []
    out = run(Tick(21.0))  # window is [1.0, 21.0)
    assert run.state is State.READY
    assert chimes(out) == [ChimeName.WINDOW_EXPIRED]
    assert says(out) == [PromptId.WINDOW_EXPIRED]
    assert TimelineEvent(TimelineKind.WINDOW_EXPIRED, A, 21.0) in out
    assert Log(State.WAITING, State.READY, "window expired") in out
    assert not of(run.all, StartRecording)
    assert run.leds.status.colour is Colour.GREEN


def test_late_press_without_a_tick_is_still_too_late() -> None:
    # Timers run before every event: the outcome cannot depend on how often Tick comes.
    run = Run()
    run.tap(A, 1.0)
    out = run(Pressed(B, 21.0))
    assert not of(out, StartRecording)
    assert run.state is State.WAITING
    assert run.m.presses == ((B, 21.0),)  # B's press opens a new flow


def test_press_just_inside_the_window_starts() -> None:
    run = Run()
    run.tap(A, 1.0)
    run(Pressed(B, 20.999))
    assert run.state is State.RECORDING


def test_window_is_configurable() -> None:
    m, _ = start(Timing(window_s=5.0), 0.0)
    run = Run(m)
    run.tap(A, 1.0)
    run(Tick(6.0))
    assert run.state is State.READY


def test_consent_needs_a_fresh_edge_not_a_level() -> None:
    run = Run()
    run(Pressed(A, 1.0))
    out = run(Pressed(A, 1.5))  # no release in between: not an edge
    assert out == [] and run.m.presses == ((A, 1.0),)


def test_a_press_still_down_from_the_stop_is_not_consent() -> None:
    run = recording(1.0)
    run(Pressed(A, 10.0))  # stops; A keeps the button down
    out = run(Pressed(A, 11.0))  # a second Pressed without a release: no edge
    assert out == [] and run.state is State.STOPPED


# --------------------------------------------------------------------------- held / stuck


def test_button_held_too_long_withdraws_consent_and_blocks_until_released() -> None:
    run = Run()
    run(Pressed(A, 1.0))
    out = run(Tick(6.0))  # held 5 s = hold limit
    assert Fault.STUCK_BUTTON_A in run.m.faults
    assert run.state is State.READY
    assert TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, A, 6.0, "button held") in out
    assert chimes(out) == [ChimeName.FAULT]
    assert run.leds == Leds(FAST_BLINK, OFF, FAULT_SIGNALS[Fault.STUCK_BUTTON_A])

    out = run.tap(B, 7.0)  # blocked: fault tone and prompt, nothing else
    assert run.state is State.READY
    assert chimes(out) == [ChimeName.FAULT] and says(out) == [PromptId.FAULT]

    out = run(Released(A, 8.0))
    assert not run.m.faults
    assert any(isinstance(a, Log) and "released" in a.reason for a in out)
    assert run.state is State.READY  # a release is never consent
    run.tap(B, 9.0)
    assert run.state is State.WAITING


def test_other_party_held_while_waiting_cancels_the_consent() -> None:
    # B is down at boot; A's press is blocked and A keeps holding. B releases and presses:
    # WAITING for A. When A's hold reaches the limit, the new fault cancels B's consent too.
    run = Run(b_down=True)
    run(Pressed(A, 0.0), Released(B, 1.0), Pressed(B, 1.0))
    assert run.state is State.WAITING and run.m.presses == ((B, 1.0),)
    out = run(Tick(5.0))
    assert run.state is State.READY
    assert TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, B, 5.0, "fault stuck_button_a") in out


def test_repeated_pressed_without_release_keeps_the_hold_timer() -> None:
    run = Run()
    run(Pressed(A, 0.0), Pressed(A, 3.0))  # a duplicate edge report must not reset the hold
    run(Pressed(B, 5.0))
    assert not of(run.all, StartRecording)
    assert Fault.STUCK_BUTTON_A in run.m.faults


def test_hold_detected_even_without_ticks() -> None:
    run = Run()
    run(Pressed(A, 1.0))
    run(Pressed(B, 7.0))  # A was held 6 s: stuck before B's press is handled
    assert run.state is State.READY
    assert Fault.STUCK_BUTTON_A in run.m.faults
    assert not of(run.all, StartRecording)


def test_release_after_long_hold_still_counts_as_stuck_for_the_withdrawal() -> None:
    run = Run()
    run(Pressed(A, 1.0))
    out = run(Released(A, 7.0))
    assert run.state is State.READY
    assert TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, A, 7.0, "button held") in out
    assert not run.m.faults  # and cleared by the same release


def test_button_held_at_boot_is_stuck_and_never_consent() -> None:
    run = Run(a_down=True)
    assert Fault.STUCK_BUTTON_A in run.m.faults
    assert chimes(run.all) == [ChimeName.FAULT]
    assert run.leds.button_a == FAST_BLINK
    run.tap(B, 1.0)
    assert run.state is State.READY  # blocked by A's stuck fault
    run(Released(A, 2.0))
    assert not run.m.faults and run.state is State.READY
    run.tap(A, 3.0)
    run.tap(B, 4.0)
    assert run.state is State.RECORDING


def test_both_held_at_boot() -> None:
    run = Run(a_down=True, b_down=True)
    assert run.m.faults == {Fault.STUCK_BUTTON_A, Fault.STUCK_BUTTON_B}
    run(Released(A, 1.0), Released(B, 1.0))
    assert not run.m.faults


def test_holding_the_start_press_does_not_stop_the_recording() -> None:
    run = Run()
    run.tap(A, 1.0)
    run(Pressed(B, 2.0))
    out = run(Tick(8.0))  # B keeps holding: stuck fault, recording goes on
    assert run.state is State.RECORDING
    assert Fault.STUCK_BUTTON_B in run.m.faults
    assert not of(out, StopRecording)
    assert run.leds.status == INDICATOR
    run(Released(B, 9.0))
    run.tap(A, 10.0)  # the other party still stops with one press
    assert run.state is State.STOPPED


# --------------------------------------------------------------------------- stop


@pytest.mark.parametrize(("party", "reason"), [(A, StopReason.PARTY_A), (B, StopReason.PARTY_B)])
def test_either_party_stops_with_one_press(party: Party, reason: StopReason) -> None:
    run = recording(1.0)
    out = run(Pressed(party, 10.0))
    assert run.state is State.STOPPED
    assert of(out, StopRecording) == [StopRecording(reason, 10.0)]
    assert TimelineEvent(TimelineKind.STOP, party, 10.0, reason.value) in out
    assert chimes(out) == [ChimeName.RECORDING_STOP]
    assert says(out) == [PromptId.RECORDING_STOPPED]
    # Stop first (the daemon seals the last audio), then the indicator goes off.
    i_stop = out.index(StopRecording(reason, 10.0))
    i_leds = next(i for i, a in enumerate(out) if isinstance(a, Leds))
    i_timeline = out.index(TimelineEvent(TimelineKind.STOP, party, 10.0, reason.value))
    assert i_timeline < i_stop < i_leds
    assert not indicator_on(out[i_leds])
    assert run.leds == Leds(OFF, OFF, StatusLight(Colour.BLUE, ON))
    assert run.m.copy_available


def test_refractory_after_start_ignores_bounce_but_records_it() -> None:
    run = Run()
    run.tap(A, 1.0)
    run(Pressed(B, 2.0))
    out = run(Released(B, 2.05), Pressed(B, 2.1), Released(B, 2.2), Pressed(A, 2.59))
    assert run.state is State.RECORDING
    assert not of(out, StopRecording)
    ignored = [e for e in of(out, TimelineEvent) if e.kind is TimelineKind.IGNORED_PRESS]
    assert [(e.party, e.t) for e in ignored] == [(B, 2.1), (A, 2.59)]
    run(Released(A, 2.595))
    run(Pressed(A, 2.6))  # exactly at the end of the interval: acts
    assert run.state is State.STOPPED


def test_refractory_after_stop_does_not_open_a_new_flow() -> None:
    run = recording(1.0)
    run(Pressed(A, 10.0))
    run(Pressed(B, 10.2))  # the other party's simultaneous stop press
    assert run.state is State.STOPPED
    run(Released(A, 10.3), Released(B, 10.3))
    run.tap(B, 10.7)
    assert run.state is State.WAITING


def test_refractory_is_configurable() -> None:
    m, _ = start(Timing(refractory_s=0.0), 0.0)
    run = Run(m)
    run.tap(A, 1.0)
    run(Pressed(B, 2.0), Released(B, 2.01), Pressed(B, 2.02))
    assert run.state is State.STOPPED


@pytest.mark.parametrize("reason", [r for r in StopReason if not r.value.startswith("party")])
def test_daemon_ended_recording(reason: StopReason) -> None:
    run = recording(1.0)
    out = run(RecordingEnded(reason, 20.0))
    assert run.state is State.STOPPED
    assert not of(out, StopRecording)  # the daemon already stopped and sealed
    assert TimelineEvent(TimelineKind.STOP, None, 20.0, reason.value) in out
    assert chimes(out) == [ChimeName.RECORDING_STOP]
    assert not indicator_on(run.leds)


def test_recording_ended_outside_a_recording_is_ignored() -> None:
    run = Run()
    assert run(RecordingEnded(StopReason.SHUTDOWN, 1.0)) == []
    with pytest.raises(ValueError):
        RecordingEnded(StopReason.PARTY_A, 1.0)  # the message is checked below


def test_press_in_stopped_starts_a_new_flow_and_expiry_returns_to_stopped() -> None:
    run = stopped(1.0)
    run.tap(A, 15.0)
    assert run.state is State.WAITING
    run(Tick(35.0))
    assert run.state is State.STOPPED  # the earlier recording is still in its window


# --------------------------------------------------------------------------- faults


def test_fault_blocks_start_with_low_tone_and_clears() -> None:
    run = Run()
    out = run(FaultRaised(Fault.NO_MICROPHONE, 1.0))
    assert chimes(out) == [ChimeName.FAULT]
    assert Log(State.READY, State.READY, "fault raised: no_microphone") in out
    assert run.leds.status == StatusLight(Colour.RED, blink_code(1))
    assert run(FaultRaised(Fault.NO_MICROPHONE, 1.5)) == []  # already raised
    out = run.tap(A, 2.0)
    assert run.state is State.READY
    assert chimes(out) == [ChimeName.FAULT] and says(out) == [PromptId.FAULT]
    out = run(FaultCleared(Fault.NO_MICROPHONE, 3.0))
    assert Log(State.READY, State.READY, "fault cleared: no_microphone") in out
    assert run.leds.status.colour is Colour.GREEN
    assert run(FaultCleared(Fault.NO_MICROPHONE, 3.5)) == []
    run.tap(A, 4.0)
    assert run.state is State.WAITING


@pytest.mark.parametrize("fault", [f for f in Fault if f.value.startswith("stuck")])
def test_stuck_faults_are_not_raised_from_outside(fault: Fault) -> None:
    with pytest.raises(ValueError, match=f"{fault}.*not raised"):
        FaultRaised(fault, 0.0)
    with pytest.raises(ValueError, match=f"{fault}.*released"):
        FaultCleared(fault, 0.0)


def test_fault_while_waiting_cancels_the_pending_consent() -> None:
    run = Run()
    run.tap(A, 1.0)
    out = run(FaultRaised(Fault.STORAGE_LOW, 2.0))
    assert run.state is State.READY
    assert TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, A, 2.0, "fault storage_low") in out
    run.tap(B, 3.0)
    assert run.state is State.READY


def test_fault_during_recording_keeps_recording_and_indicator() -> None:
    run = recording(1.0)
    out = run(FaultRaised(Fault.STORAGE_LOW, 5.0))
    assert run.state is State.RECORDING
    assert chimes(out) == [ChimeName.FAULT]
    assert not of(out, Leds)  # the indicator is not replaced by a fault pattern
    run.tap(B, 6.0)
    assert run.state is State.STOPPED
    assert run.leds.status == FAULT_SIGNALS[Fault.STORAGE_LOW]


def test_fault_pattern_priority_and_distinctness() -> None:
    run = Run()
    run(FaultRaised(Fault.STORAGE_LOW, 1.0), FaultRaised(Fault.STORAGE_ERROR, 1.0))
    assert run.leds.status == FAULT_SIGNALS[Fault.STORAGE_ERROR]
    run(FaultCleared(Fault.STORAGE_ERROR, 2.0))
    assert run.leds.status == FAULT_SIGNALS[Fault.STORAGE_LOW]
    external = [FAULT_SIGNALS[f] for f in Fault if not f.value.startswith("stuck")]
    assert len(set(external)) == len(external)
    assert INDICATOR not in FAULT_SIGNALS.values()  # solid red means recording, only


# --------------------------------------------------------------------------- copies


def test_stick_in_stopped_offers_a_copy_both_must_press() -> None:
    run = stopped(1.0)
    out = run(StickInserted(20.0))
    assert run.state is State.COPY_CONFIRM
    assert chimes(out) == [ChimeName.COPY_CONFIRM] and says(out) == [PromptId.COPY_CONFIRM]
    assert run.leds == Leds(BLINK, BLINK, StatusLight(Colour.BLUE, BLINK))

    out = run.tap(A, 21.0)
    assert run.state is State.COPY_CONFIRM
    assert TimelineEvent(TimelineKind.COPY_PRESS, A, 21.0) in out
    assert run.leds.button_a == ON and run.leds.button_b == BLINK
    assert run.tap(A, 22.0) == []  # same party again
    out = run.tap(B, 23.0)
    assert run.state is State.COPYING
    assert of(out, MakeCopy) == [MakeCopy(23.0)]
    assert run.leds == Leds(OFF, OFF, run.leds.status)
    assert run.tap(A, 24.0) == []  # presses while copying do nothing

    out = run(CopyFinished(True, 30.0, "copy 1"))
    assert run.state is State.STOPPED
    assert run.m.stick is Stick.DONE
    assert chimes(out) == [ChimeName.COPY_DONE] and says(out) == [PromptId.COPY_MADE]
    assert run.leds.status == StatusLight(Colour.CYAN, ON)  # safe to remove
    run(Tick(40.0))
    assert run.state is State.STOPPED  # not offered again until reinserted
    run(StickRemoved(41.0))
    assert run.leds.status == StatusLight(Colour.BLUE, ON)
    run(StickInserted(42.0))
    assert run.state is State.COPY_CONFIRM  # another copy, again with both presses


def test_copy_failed_signal_until_removed() -> None:
    run = copy_confirm(1.0)
    run.tap(A, 25.0)
    run.tap(B, 26.0)
    out = run(CopyFinished(False, 27.0, "stick full"))
    assert run.state is State.STOPPED and run.m.stick is Stick.FAILED
    assert chimes(out) == [ChimeName.COPY_FAILED] and says(out) == [PromptId.COPY_FAILED]
    assert TimelineEvent(TimelineKind.COPY_FAILED, None, 27.0, "stick full") in out
    assert run.leds.status.colour is Colour.AMBER
    run(StickRemoved(28.0))
    assert run.leds.status == StatusLight(Colour.BLUE, ON)


def test_stick_pulled_during_copy() -> None:
    run = copy_confirm(1.0)
    run.tap(A, 25.0)
    run.tap(B, 26.0)
    run(StickRemoved(26.5))
    assert run.state is State.COPYING  # the daemon will answer
    run(CopyFinished(False, 27.0))
    assert run.m.stick is Stick.ABSENT
    assert run.leds.status == StatusLight(Colour.BLUE, ON)


def test_stick_without_recording_gives_distinct_signal_only() -> None:
    run = Run()
    out = run(StickInserted(1.0))
    assert run.state is State.READY
    assert chimes(out) == [ChimeName.NO_RECORDING] and says(out) == [PromptId.NO_RECORDING]
    assert not of(out, MakeCopy)
    assert run(Tick(2.0)) == []  # said once


def test_stick_during_recording_is_offered_after_stop_and_refractory() -> None:
    run = recording(1.0)
    out = run(StickInserted(5.0))
    assert chimes(out) == [] and run.state is State.RECORDING
    assert run.m.stick is Stick.PENDING
    run(Pressed(A, 10.0))
    assert run.state is State.STOPPED
    run(Tick(10.3))
    assert run.state is State.STOPPED  # still in the refractory interval
    run(Released(A, 10.4), Tick(10.6))
    assert run.state is State.COPY_CONFIRM
    assert run.m.presses == ()  # the stop press did not count as a copy press


def test_stick_during_waiting_is_offered_when_idle() -> None:
    run = stopped(1.0)
    run.tap(A, 15.0)
    run(StickInserted(16.0))
    assert run.state is State.WAITING
    run(Tick(35.0))  # window expires -> STOPPED
    run(Tick(35.1))
    assert run.state is State.COPY_CONFIRM


def test_stick_during_waiting_without_recording() -> None:
    run = Run()
    run.tap(A, 1.0)
    run(StickInserted(2.0))
    out = run(Tick(21.0), Tick(21.1))
    assert run.state is State.READY
    assert ChimeName.NO_RECORDING in chimes(out)


def test_copy_offer_times_out() -> None:
    run = copy_confirm(1.0)  # offered at 21.0
    run.tap(A, 30.0)
    out = run(Tick(81.0))
    assert run.state is State.STOPPED
    assert run.m.stick is Stick.SPENT
    assert chimes(out) == [ChimeName.WINDOW_EXPIRED]
    run(Tick(82.0))
    assert run.state is State.STOPPED


def test_stick_removed_withdraws_the_offer() -> None:
    run = copy_confirm(1.0)
    run.tap(A, 22.0)
    run(StickRemoved(23.0))
    assert run.state is State.STOPPED and run.m.presses == ()


def test_copy_press_held_too_long_is_withdrawn() -> None:
    run = copy_confirm(1.0)
    run(Pressed(A, 22.0))
    run(Tick(27.0))
    assert run.state is State.COPY_CONFIRM
    assert run.m.presses == ()
    assert run.leds.button_a == FAST_BLINK
    run.tap(B, 28.0)
    assert run.state is State.COPY_CONFIRM  # A's held press no longer counts


def test_reinserting_during_offer_or_copy_is_not_acted_on() -> None:
    run = copy_confirm(1.0)
    assert run(StickInserted(22.0)) == []
    run.tap(A, 23.0)
    run.tap(B, 24.0)
    assert run(StickInserted(25.0)) == []


def test_export_window_closing() -> None:
    run = stopped(1.0)
    out = run(ExportWindowClosed(30.0))
    assert run.state is State.READY and not run.m.copy_available
    assert Log(State.STOPPED, State.READY, "export window closed") in out

    run = copy_confirm(1.0)
    run(ExportWindowClosed(30.0))
    assert run.state is State.READY

    run = copy_confirm(1.0)
    run.tap(A, 22.0)
    run.tap(B, 23.0)
    run(ExportWindowClosed(24.0))
    assert run.state is State.COPYING  # the copy under way finishes
    run(CopyFinished(True, 25.0))
    assert run.state is State.READY

    run = stopped(1.0)
    run.tap(A, 15.0)
    run(ExportWindowClosed(16.0))
    run(Tick(35.0))
    assert run.state is State.READY

    run = recording(1.0)
    run(ExportWindowClosed(5.0))
    assert run.state is State.RECORDING


def test_stale_copy_finished_is_ignored() -> None:
    run = stopped(1.0)
    assert run(CopyFinished(True, 30.0)) == []


# --------------------------------------------------------------------------- plumbing


def test_time_never_runs_backwards() -> None:
    run = Run()
    run.tap(A, 10.0)
    run(Pressed(B, 9.0))  # stamped before the last event: handled at 10.1
    (start_action,) = of(run.all, StartRecording)
    assert start_action.t == pytest.approx(10.1)


def test_table_covers_every_state_and_event_exactly_once() -> None:
    pairs = {(s, e) for s in State for e in EVENT_TYPES}
    assert set(TRANSITIONS) | NO_REACTION == pairs
    assert not set(TRANSITIONS) & NO_REACTION


def test_leds_for_is_what_was_last_emitted() -> None:
    run = stopped(1.0)
    assert run.leds == leds_for(run.m)


def test_timing_validation() -> None:
    with pytest.raises(ValueError):
        Timing(window_s=0)
    with pytest.raises(ValueError):
        Timing(refractory_s=-1)
    with pytest.raises(ValueError):
        Timing(refractory_s=6.0)  # longer than the hold limit
    with pytest.raises(ValueError, match="refractory_s must be >= 0 and shorter"):
        Timing(refractory_s=5.0)  # as long as the hold limit: not shorter
    with pytest.raises(ValueError, match="copy_confirm_s must be > 0"):
        Timing(copy_confirm_s=0)
    assert Timing(copy_confirm_s=0.5, window_s=0.7, hold_limit_s=0.8).copy_confirm_s == 0.5


def test_a_party_stop_is_not_a_daemon_stop() -> None:
    why = r"^a party's stop is a Pressed event, not RecordingEnded$"
    with pytest.raises(ValueError, match=why):
        RecordingEnded(StopReason.PARTY_B, 1.0)


def test_pattern_validation_and_shape() -> None:
    with pytest.raises(ValueError, match=r"'zero': steps need levels 0\.\.1, durations > 0"):
        Pattern("zero", ((1.0, 0.0),))
    # a three-step smooth pattern glides from each level towards the NEXT one
    p = Pattern("three", ((0.0, 1.0), (1.0, 1.0), (0.5, 1.0)), smooth=True)
    assert p.level(0.5) == pytest.approx(0.5)  # halfway from 0.0 to 1.0
    assert p.level(1.5) == pytest.approx(0.75)  # halfway from 1.0 to 0.5
    assert p.level(2.5) == pytest.approx(0.25)  # halfway from 0.5 back to 0.0
    # float rounding can leave the remainder past the last step: it holds the last level
    odd = Pattern("odd", ((1.0, 0.1), (0.5, 0.1), (0.25, 0.35)))
    assert odd.level(0.5499999999999999) == 0.25
    # a fault code: flashes of 0.2 s, 0.3 s apart, then a 1.5 s pause
    assert blink_code(3).steps == (
        (1.0, 0.2), (0.0, 0.3), (1.0, 0.2), (0.0, 0.3), (1.0, 0.2), (0.0, 1.5)
    )
    assert StatusLight(Colour.AMBER, DIM).rgb(0.0) == pytest.approx((0.15, 0.045, 0.0))
    assert StatusLight(Colour.BLUE, DIM).rgb(0.0) == pytest.approx((0.0, 0.0, 0.15))


def test_patterns() -> None:
    assert [BLINK.level(t) for t in (0.0, 0.49, 0.5, 0.99, 1.0)] == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert SLOW_PULSE.level(0.0) == pytest.approx(0.1)
    assert SLOW_PULSE.level(1.5) == pytest.approx(1.0)
    assert SLOW_PULSE.level(0.75) == pytest.approx(0.55)
    assert SLOW_PULSE.level(3.0) == pytest.approx(0.1)
    assert all(0.1 - 1e-9 <= SLOW_PULSE.level(t / 10) <= 1.0 for t in range(100))
    code3 = blink_code(3)
    flashes = [code3.level(t / 100) for t in range(int(code3.period * 100))]
    rising = sum(1 for a, b in itertools.pairwise([0.0, *flashes]) if b > a)
    assert rising == 3
    assert StatusLight(Colour.CYAN, ON).rgb(0.0) == (0.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        Pattern("bad", ((2.0, 1.0),))


def test_tour_exercises_every_allowed_edge_and_nothing_else() -> None:
    run = Run()
    run.tap(A, 1.0)  # READY -> WAITING
    run(Tick(21.0))  # WAITING -> READY
    run.tap(A, 22.0)
    run.tap(B, 23.0)  # WAITING -> RECORDING
    run.tap(A, 30.0)  # RECORDING -> STOPPED
    run.tap(B, 31.0)  # STOPPED -> WAITING
    run(Tick(51.0))  # WAITING -> STOPPED
    run(StickInserted(52.0))  # STOPPED -> COPY_CONFIRM
    run(StickRemoved(53.0))  # COPY_CONFIRM -> STOPPED
    run(StickInserted(54.0))
    run.tap(A, 55.0)
    run.tap(B, 56.0)  # COPY_CONFIRM -> COPYING
    run(CopyFinished(True, 57.0))  # COPYING -> STOPPED
    run(StickRemoved(58.0), StickInserted(59.0))
    run(ExportWindowClosed(60.0))  # COPY_CONFIRM -> READY
    run.tap(A, 61.0)
    run.tap(B, 62.0)
    run.tap(A, 70.0)
    run(StickRemoved(71.0), StickInserted(72.0))
    run.tap(A, 73.0)
    run.tap(B, 74.0)
    run(ExportWindowClosed(75.0), CopyFinished(True, 76.0))  # COPYING -> READY
    run.tap(A, 80.0)
    run.tap(B, 81.0)
    run.tap(A, 90.0)
    run(ExportWindowClosed(91.0))  # STOPPED -> READY
    run(StickRemoved(92.0), CollectionStickInserted(93.0))  # READY -> COLLECT_CONFIRM
    run(StickRemoved(94.0))  # COLLECT_CONFIRM -> READY
    run(CollectionStickInserted(95.0))
    run.tap(A, 96.0)  # COLLECT_CONFIRM -> COLLECTING
    run(CollectionFinished(True, 97.0))  # COLLECTING -> READY
    run.tap(A, 105.0)
    run.tap(B, 106.0)
    run(StartFailed(Fault.STORAGE_ERROR, 106.1))  # RECORDING -> READY
    edges = {(a.old, a.new) for a in of(run.all, Log) if a.old is not a.new}
    assert edges == ALLOWED


# --------------------------------------------------------------------------- held buttons
# Deterministic cases for what test_consent_properties.py finds only on some seeds: a button
# still down from an earlier press (here: the stop press) gives Pressed again without a
# release - no edge, so it is not the second party's consent, nor a copy confirmation.


def test_a_held_button_is_not_the_second_consent() -> None:
    run = recording(1.0)
    run(Pressed(B, 10.0))  # B stops the recording and keeps the button down
    assert run.state is State.STOPPED
    run.tap(A, 11.0)  # A asks for a new recording, after the refractory interval
    assert run.state is State.WAITING
    out = run(Pressed(B, 12.0))  # B still held (2 s, under the hold limit): no edge
    assert run.state is State.WAITING and run.m.presses == ((A, 11.0),)
    assert of(out, StartRecording) == [] and not capture_allowed(run.m)
    assert of(out, TimelineEvent) == []
    run(Released(B, 12.5))
    run(Pressed(B, 13.0))  # a real press of B: now both consent
    assert run.state is State.RECORDING


def test_a_held_button_is_not_a_copy_confirmation() -> None:
    run = recording(1.0)
    run(Pressed(B, 10.0))  # stop; B keeps the button down
    run(StickInserted(10.1), Tick(10.7))  # offered once out of the refractory interval
    assert run.state is State.COPY_CONFIRM
    out = run(Pressed(B, 11.0))  # still the stop press: no edge
    assert run.m.presses == () and of(out, TimelineEvent) == []
    out = run.tap(A, 11.5)
    assert run.state is State.COPY_CONFIRM and of(out, MakeCopy) == []
    run(Released(B, 12.0))
    out = run(Pressed(B, 12.5))
    assert run.state is State.COPYING and len(of(out, MakeCopy)) == 1
