"""Whole transcripts: every action a step emits, in order, for the copy, stick, export-window
and daemon-stop flows.

test_consent.py checks one property per test (the state, a chime, one timeline event); these
pin the complete output of a step - what the device logs, records, says and shows - so that
dropping or changing any one action fails a test (the mutation run found such gaps).
"""

from __future__ import annotations

import pytest

from akkoord.consent import (
    BLINK,
    BREATHE,
    DIM,
    FAST_BLINK,
    INDICATOR,
    OFF,
    ON,
    SLOW_PULSE,
    Chime,
    Colour,
    CopyFinished,
    ExportWindowClosed,
    Fault,
    FaultRaised,
    Leds,
    Log,
    MakeCopy,
    Pressed,
    RecordingEnded,
    Say,
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
    start,
)
from akkoord.prompts import PromptId
from akkoord.sounds import ChimeName
from test_consent import A, B, Run, copy_confirm, recording, stopped

S = State
K = TimelineKind
IDLE_LEDS = Leds(OFF, OFF, StatusLight(Colour.GREEN, DIM))
STOPPED_LEDS = Leds(OFF, OFF, StatusLight(Colour.BLUE, ON))
OFFER_LEDS = Leds(BLINK, BLINK, StatusLight(Colour.BLUE, BLINK))


def test_copy_confirmation_then_copy_made() -> None:
    run = copy_confirm(1.0)
    assert run.tap(A, 22.0) == [
        TimelineEvent(K.COPY_PRESS, A, 22.0),
        Chime(ChimeName.CONSENT),
        Log(S.COPY_CONFIRM, S.COPY_CONFIRM, "copy confirmed by party a"),
        Leds(ON, BLINK, StatusLight(Colour.BLUE, BLINK)),
    ]
    assert run.tap(B, 23.0) == [
        TimelineEvent(K.COPY_PRESS, B, 23.0),
        Chime(ChimeName.CONSENT),
        Log(S.COPY_CONFIRM, S.COPYING, "both parties confirmed the copy"),
        MakeCopy(23.0),
        TimelineEvent(K.COPY_REQUESTED, None, 23.0),
        Leds(OFF, OFF, StatusLight(Colour.BLUE, BREATHE)),
    ]
    assert run.m.presses == ()
    assert run(CopyFinished(True, 30.0, "copy 1")) == [
        Log(S.COPYING, S.STOPPED, "copy made: copy 1"),
        TimelineEvent(K.COPY_DONE, None, 30.0, "copy 1"),
        Chime(ChimeName.COPY_DONE),
        Say(PromptId.COPY_MADE),
        Leds(OFF, OFF, StatusLight(Colour.CYAN, ON)),
    ]


def test_copy_failed_without_detail() -> None:
    run = copy_confirm(1.0)
    run.tap(A, 22.0)
    run.tap(B, 23.0)
    assert run(CopyFinished(False, 30.0)) == [
        Log(S.COPYING, S.STOPPED, "copy failed"),
        TimelineEvent(K.COPY_FAILED, None, 30.0),
        Chime(ChimeName.COPY_FAILED),
        Say(PromptId.COPY_FAILED),
        Leds(OFF, OFF, StatusLight(Colour.AMBER, BLINK)),
    ]


def test_copy_made_after_the_export_window_closed_returns_to_ready() -> None:
    run = copy_confirm(1.0)
    run.tap(A, 22.0)
    run.tap(B, 23.0)
    assert run(ExportWindowClosed(24.0)) == [Log(S.COPYING, S.COPYING, "export window closed")]
    assert run(ExportWindowClosed(24.5)) == []  # already closed
    assert run(CopyFinished(True, 25.0)) == [
        Log(S.COPYING, S.READY, "copy made"),
        TimelineEvent(K.COPY_DONE, None, 25.0),
        Chime(ChimeName.COPY_DONE),
        Say(PromptId.COPY_MADE),
        Leds(OFF, OFF, StatusLight(Colour.CYAN, ON)),
    ]


def test_daemon_ended_recording_then_stick_offered_after_refractory() -> None:
    run = recording(1.0)
    assert run(RecordingEnded(StopReason.DISK_FULL, 8.0)) == [
        TimelineEvent(K.STOP, None, 8.0, "disk_full"),
        Log(S.RECORDING, S.STOPPED, "recording ended: disk_full"),
        Chime(ChimeName.RECORDING_STOP),
        Say(PromptId.RECORDING_STOPPED),
        STOPPED_LEDS,
    ]
    assert run.m.copy_available and run.m.refractory_until == 8.6
    assert run(StickInserted(8.1)) == [Log(S.STOPPED, S.STOPPED, "stick inserted")]
    assert run(Tick(8.5)) == []  # still in the refractory interval
    assert run(Tick(8.6)) == [
        Log(S.STOPPED, S.COPY_CONFIRM, "stick inserted: copy offered"),
        Chime(ChimeName.COPY_CONFIRM),
        Say(PromptId.COPY_CONFIRM),
        OFFER_LEDS,
    ]
    out = run(Pressed(A, 8.6))  # offered at the end of the interval: the press counts
    assert TimelineEvent(K.COPY_PRESS, A, 8.6) in out and run.m.presses == ((A, 8.6),)
    assert run(StickRemoved(9.0)) == [
        Log(S.COPY_CONFIRM, S.STOPPED, "stick removed: copy offer withdrawn"),
        STOPPED_LEDS,
    ]
    assert run(StickRemoved(9.5)) == []  # already absent


def test_stick_while_recording_is_remembered() -> None:
    run = recording(1.0)
    assert run(StickInserted(5.0)) == [
        Log(S.RECORDING, S.RECORDING, "stick inserted (remembered until idle)")
    ]
    assert run(StickInserted(5.5)) == []  # the same stick, still pending


def test_stick_without_a_recording() -> None:
    run = Run()
    assert run(StickInserted(1.0)) == [
        Log(S.READY, S.READY, "stick inserted"),
        Log(S.READY, S.READY, "stick inserted: no recording to copy"),
        Chime(ChimeName.NO_RECORDING),
        Say(PromptId.NO_RECORDING),
    ]
    assert run.m.stick is Stick.SPENT  # reinsert to try again
    assert run(StickRemoved(2.0)) == [Log(S.READY, S.READY, "stick removed")]


def test_export_window_closing_transcripts() -> None:
    run = stopped(1.0)
    assert run(ExportWindowClosed(30.0)) == [
        Log(S.STOPPED, S.READY, "export window closed"),
        IDLE_LEDS,
    ]
    assert run.m.copy_available is False
    run = copy_confirm(1.0)
    run.tap(A, 22.0)
    assert run(ExportWindowClosed(30.0)) == [
        Log(S.COPY_CONFIRM, S.READY, "export window closed: copy offer withdrawn"),
        IDLE_LEDS,
    ]
    assert run.m.presses == () and run.m.copy_available is False
    run = stopped(1.0)  # a new recording while the last one is still exportable
    run.tap(A, 15.0)
    run.tap(B, 16.0)
    assert run.state is S.RECORDING and run.m.copy_available
    assert run(ExportWindowClosed(20.0)) == [Log(S.RECORDING, S.RECORDING, "export window closed")]
    assert run.m.copy_available is False


def test_fault_while_waiting_withdraws_the_consent() -> None:
    run = Run()
    run.tap(A, 1.0)
    assert run(FaultRaised(Fault.NO_KEYS, 2.0)) == [
        Log(S.WAITING, S.WAITING, "fault raised: no_keys"),
        Chime(ChimeName.FAULT),
        TimelineEvent(K.CONSENT_WITHDRAWN, A, 2.0, "fault no_keys"),
        Log(S.WAITING, S.READY, "fault no_keys: consent cancelled"),
        Leds(OFF, OFF, StatusLight(Colour.RED, blink_code(4))),
    ]
    assert run(FaultRaised(Fault.NO_KEYS, 2.5)) == []  # already raised


def test_press_in_the_refractory_interval_is_recorded_not_acted_on() -> None:
    run = recording(1.0)  # started at 3.0
    assert run(Pressed(A, 3.2)) == [
        TimelineEvent(K.IGNORED_PRESS, A, 3.2, "within 0.6 s of the start (bounce guard)")
    ]
    assert run.state is S.RECORDING
    out = run(Pressed(B, 3.6))  # exactly at the end of the interval: a stop
    assert run.state is S.STOPPED and out[0] == TimelineEvent(K.STOP, B, 3.6, "party_b")


def test_consent_start_and_stop_transcripts() -> None:
    run = Run()
    assert run.tap(A, 1.0) == [
        TimelineEvent(K.CONSENT, A, 1.0),
        Log(S.READY, S.WAITING, "party a pressed"),
        Chime(ChimeName.CONSENT),
        Say(PromptId.WAITING_FOR_OTHER),
        Leds(ON, BLINK, StatusLight(Colour.GREEN, ON)),
    ]
    assert run.tap(B, 3.0) == [
        TimelineEvent(K.CONSENT, B, 3.0),
        Log(S.WAITING, S.RECORDING, "party b pressed: both parties consented"),
        Leds(SLOW_PULSE, SLOW_PULSE, INDICATOR),
        StartRecording(((A, 1.0), (B, 3.0)), 3.0),
        TimelineEvent(K.START, None, 3.0),
        Chime(ChimeName.RECORDING_START),
        Say(PromptId.RECORDING_STARTED),
    ]
    assert run.tap(B, 10.0) == [
        TimelineEvent(K.STOP, B, 10.0, "party_b"),
        StopRecording(StopReason.PARTY_B, 10.0),
        Log(S.RECORDING, S.STOPPED, "party b pressed: stop"),
        Chime(ChimeName.RECORDING_STOP),
        Say(PromptId.RECORDING_STOPPED),
        STOPPED_LEDS,
    ]
    # A fresh press exactly at the end of the refractory interval opens a new flow.
    out = run(Pressed(A, 10.6))
    assert run.state is S.WAITING and out[:2] == [
        TimelineEvent(K.CONSENT, A, 10.6),
        Log(S.STOPPED, S.WAITING, "party a pressed"),
    ]


def test_holding_ones_own_pending_press_withdraws_it() -> None:
    run = Run()
    run(Pressed(A, 1.0))
    assert run(Tick(6.0)) == [
        Log(S.WAITING, S.WAITING, "fault raised: stuck_button_a (held 5 s)"),
        Chime(ChimeName.FAULT),
        TimelineEvent(K.CONSENT_WITHDRAWN, A, 6.0, "button held"),
        Log(S.WAITING, S.READY, "consent cancelled: button a held"),
        Leds(FAST_BLINK, OFF, StatusLight(Colour.RED, FAST_BLINK)),
    ]
    assert run.m.presses == ()


def test_the_other_button_held_cancels_the_pending_consent_as_a_fault() -> None:
    run = recording(1.0)
    run(Pressed(B, 10.0))  # stop; B stays down
    run.tap(A, 11.0)
    assert run(Tick(15.0)) == [
        Log(S.WAITING, S.WAITING, "fault raised: stuck_button_b (held 5 s)"),
        Chime(ChimeName.FAULT),
        TimelineEvent(K.CONSENT_WITHDRAWN, A, 15.0, "fault stuck_button_b"),
        Log(S.WAITING, S.STOPPED, "consent cancelled: button b held"),
        Leds(OFF, FAST_BLINK, StatusLight(Colour.RED, FAST_BLINK)),
    ]


def test_holding_a_copy_press_withdraws_that_press_and_keeps_the_offer() -> None:
    run = copy_confirm(1.0)
    run(Pressed(A, 22.0))
    assert run(Tick(27.0)) == [
        Log(S.COPY_CONFIRM, S.COPY_CONFIRM, "fault raised: stuck_button_a (held 5 s)"),
        Chime(ChimeName.FAULT),
        TimelineEvent(K.CONSENT_WITHDRAWN, A, 27.0, "button held"),
        Log(S.COPY_CONFIRM, S.COPY_CONFIRM, "press of party a withdrawn: button held"),
        Leds(FAST_BLINK, BLINK, StatusLight(Colour.BLUE, BLINK)),
    ]
    assert run.m.presses == ()


def test_button_held_at_boot_transcript_and_a_repeated_pressed_is_silent() -> None:
    m, actions = start(Timing(), 0.0, a_down=True)
    assert actions == [
        Log(S.READY, S.READY, "boot"),
        Log(S.READY, S.READY, "fault raised: stuck_button_a (held at boot)"),
        Chime(ChimeName.FAULT),
        Leds(FAST_BLINK, OFF, StatusLight(Colour.RED, FAST_BLINK)),
    ]
    run = Run(m)
    assert run(Pressed(A, 1.0)) == []  # still the same press: no edge, not even a fault tone


def test_window_expiry_and_copy_offer_timeout_transcripts() -> None:
    run = Run()
    run.tap(A, 1.0)
    assert run(Tick(21.0)) == [
        TimelineEvent(K.WINDOW_EXPIRED, A, 21.0),
        Log(S.WAITING, S.READY, "window expired"),
        Chime(ChimeName.WINDOW_EXPIRED),
        Say(PromptId.WINDOW_EXPIRED),
        IDLE_LEDS,
    ]
    assert run.m.presses == ()
    run = copy_confirm(1.0)  # offered at 21.0
    run.tap(B, 22.0)
    assert run(Tick(81.0)) == [
        Log(S.COPY_CONFIRM, S.STOPPED, "copy offer timed out"),
        Chime(ChimeName.WINDOW_EXPIRED),
        STOPPED_LEDS,
    ]
    assert run.m.presses == ()


def test_copy_press_of_b_lights_b() -> None:
    run = copy_confirm(1.0)
    assert run.tap(B, 22.0)[-1] == Leds(BLINK, ON, StatusLight(Colour.BLUE, BLINK))


def test_an_event_stamped_before_boot_is_handled_at_boot_time() -> None:
    m, _ = start(Timing(), 100.0)
    run = Run(m)
    assert run.tap(A, 50.0)[0] == TimelineEvent(K.CONSENT, A, 100.0)


def test_boot_with_faults_transcript() -> None:
    _, actions = start(Timing(), 0.0, faults=[Fault.NO_KEYS])
    assert actions == [
        Log(S.READY, S.READY, "boot"),
        Log(S.READY, S.READY, "fault raised: no_keys"),
        Chime(ChimeName.FAULT),
        Leds(OFF, OFF, StatusLight(Colour.RED, blink_code(4))),
    ]
    why = r"^stuck_button_a is derived from button levels, not raised$"
    with pytest.raises(ValueError, match=why):
        start(Timing(), 0.0, faults=[Fault.STUCK_BUTTON_A])
