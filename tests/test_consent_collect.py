"""Collection in the consent machine: offered only when idle with no copy window, one press,
progress on the lights, done/failed like a copy (pure: no GPIO, no clock)."""

from __future__ import annotations

from akkoord.consent import (
    BLINK,
    ON,
    Collect,
    CollectionFinished,
    CollectionProgress,
    CollectionStickInserted,
    Colour,
    ExportWindowClosed,
    Fault,
    FaultRaised,
    MakeCopy,
    StartRecording,
    State,
    Stick,
    StickRemoved,
    Tick,
    leds_for,
)
from akkoord.prompts import PromptId
from test_consent import A, B, Run, of, recording, says, stopped


def offered(t: float = 1.0) -> Run:
    run = Run()
    run(CollectionStickInserted(t))
    assert run.state is State.COLLECT_CONFIRM
    return run


def test_a_collection_stick_in_ready_is_offered_and_one_press_confirms():
    run = offered()
    assert says(run.all) == [PromptId.COLLECT_CONFIRM]
    acts = run.tap(B, 2.0)
    assert run.state is State.COLLECTING and of(acts, Collect)
    assert not of(acts, MakeCopy) and not of(acts, StartRecording)


def test_collection_is_not_a_recording_and_not_a_copy():
    run = offered()
    run.tap(A, 2.0)
    run.tap(B, 3.0)  # a second press while collecting does nothing
    assert run.state is State.COLLECTING
    assert not of(run.all, StartRecording) and not of(run.all, MakeCopy)


def test_progress_shows_on_the_buttons_and_done_on_the_status_light():
    run = offered()
    run.tap(A, 2.0)
    assert (run.leds.button_a, run.leds.button_b) == (BLINK, BLINK)
    run(CollectionProgress(1, 2, 3.0))
    assert (run.leds.button_a, run.leds.button_b) == (ON, BLINK)
    run(CollectionProgress(2, 2, 4.0))
    assert (run.leds.button_a, run.leds.button_b) == (ON, ON)
    out = run(CollectionFinished(True, 5.0))
    assert says(out) == [PromptId.COLLECT_DONE]
    assert run.state is State.READY and run.m.stick is Stick.DONE
    assert run.leds.status.colour is Colour.CYAN


def test_a_failed_collection_shows_failed():
    run = offered()
    run.tap(A, 2.0)
    assert says(run(CollectionFinished(False, 3.0, "stick full"))) == [PromptId.COLLECT_FAILED]
    assert run.state is State.READY and run.m.stick is Stick.FAILED
    assert run.leds == leds_for(run.m) and run.leds.status.colour is Colour.AMBER


def test_during_a_copy_window_the_collection_waits_until_it_closes():
    run = stopped(1.0)
    run(CollectionStickInserted(10.0))
    assert run.state is State.STOPPED and run.m.stick is Stick.COLLECT_PENDING
    run(ExportWindowClosed(11.0), Tick(12.0))
    assert run.state is State.COLLECT_CONFIRM


def test_while_recording_the_collection_waits_and_never_stops_the_recording():
    run = recording(1.0)
    run(CollectionStickInserted(5.0))
    assert run.state is State.RECORDING
    run.tap(A, 10.0)  # the stop press
    assert run.state is State.STOPPED  # a copy window now, not a collection


def test_the_offer_times_out_and_removing_the_stick_withdraws_it():
    run = offered(1.0)
    run(Tick(62.0))
    assert run.state is State.READY and run.m.stick is Stick.SPENT
    run = offered(1.0)
    run(StickRemoved(2.0))
    assert run.state is State.READY and run.m.stick is Stick.ABSENT


def test_storage_low_does_not_block_collection():
    run = Run(faults=[Fault.STORAGE_LOW])
    run(FaultRaised(Fault.STORAGE_LOW, 0.5), CollectionStickInserted(1.0))
    run.tap(A, 2.0)
    assert run.state is State.COLLECTING


def test_a_press_blocked_by_a_full_store_says_collect_recordings():
    run = Run()
    run(FaultRaised(Fault.STORAGE_LOW, 0.5))
    assert says(run.tap(A, 1.0)) == [PromptId.COLLECT_RECORDINGS]
    run(FaultRaised(Fault.STORAGE_ERROR, 2.0))  # a worse fault is shown first: its prompt
    assert says(run.tap(A, 3.0)) == [PromptId.FAULT]
