"""The recorder in-process: what a recording holds after every kind of start and end.

The daemon tests (test_daemon_sim.py, test_daemon_alsa.py) run the same paths through
`python -m akkoord` in a subprocess; these run them in the test process, so a broken
recorder fails here too (and mutation testing can see it, docs/TESTING.md).

The microphone is `Mic`: the real capture callback and queue of akkoord.audio.capture
(`CallbackSink`, `ItemQueue`, which make the blocks and disclose overflow and queue-full gaps
exactly as under PortAudio), fed by the test instead of a PortAudio thread. Everything the
recorder writes is read back from the real store with the organisation key
(`verify_recording`): the audio frame by frame, the timeline, the stop event. Faults in the
store come from the writer's own file-operation seam (`FileOps`, storekit.FaultyOps).
Nothing here waits for time to pass: the tests wait on events the recorder or the
microphone set, with a generous bound that only a broken recorder reaches.
"""

from __future__ import annotations

import errno
import gc
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from akkoord import recorder as recorder_mod
from akkoord.audio import End, EndReason, Gap, GapCause, SourceHealth, SourceState
from akkoord.audio.capture import CallbackSink, ItemQueue
from akkoord.errors import AkkoordError, HardwareError, NoRecipientError, StorageError
from akkoord.recorder import Recorder, StopOutcome
from akkoord.store.format import Kind
from akkoord.store.keys import ContentKeys, OrgPublicKey
from akkoord.store.verify import FrameSink, load_content_keys, verify_recording
from akkoord.store.writer import AudioParams, FileOps, RecordingWriter
from storekit import FaultyOps, make_kit, pcm

RATE = 16000
SEG = 800  # samples per sealed segment
BLOCK = SEG // 2  # samples per microphone callback
BOUND = 10.0  # seconds: reached only when the recorder is broken


class Mic:
    """A microphone whose callbacks the test makes (see the module docstring).

    `stop` (as `CaptureStream.stop`) first lets `on_stop` deliver what the driver still held,
    then ends the stream; `lose` ends it with LOST, as a pulled microphone does. `idle_reads`
    first reads return None (a read that timed out); `read_error` makes the n-th read raise;
    `hold` makes reads wait until the test sets it (a hung driver)."""

    def __init__(
        self,
        *,
        hook: Callable[[], object] | None = None,
        queue_samples: int = 1 << 24,
        on_stop: Callable[[Mic], object] | None = None,
        stop_error: Exception | None = None,
        idle_reads: int = 0,
        read_error: tuple[int, Exception] | None = None,
        hold: threading.Event | None = None,
        hold_reads: int = 1 << 30,
    ) -> None:
        self.queue = ItemQueue(queue_samples)
        self._stopping = threading.Event()
        self.sink = CallbackSink(rate=RATE, queue=self.queue, clock=lambda: 0.0,
                                 stopping=self._stopping, hook=hook)
        self.on_stop = on_stop
        self.stop_error = stop_error
        self.idle_reads = idle_reads
        self.read_error = read_error
        self.hold = hold
        self.hold_reads = hold_reads
        self.stops = 0
        self.reads = 0
        self._cond = threading.Condition()
        self._waiting = False
        self.reading = threading.Event()  # set once a read is under way
        self.gone: str | None = None  # the stream died; a read that times out notices

    @property
    def sample_rate(self) -> int:
        return RATE

    def feed(self, data: bytes, *, adc: float = 0.0, overflow: bool = False) -> None:
        self.sink.on_block(data, len(data) // 2, adc, overflow)

    def read(self, timeout: float | None = None) -> Any:
        self.reads += 1
        self.reading.set()
        if self.hold is not None and self.reads <= self.hold_reads:
            self.hold.wait(BOUND)
        if self.read_error is not None and self.reads == self.read_error[0]:
            raise self.read_error[1]
        if self.reads <= self.idle_reads:
            return None
        with self._cond:
            self._waiting = True
            self._cond.notify_all()
        try:
            item = self.queue.get(timeout)
        finally:
            with self._cond:
                self._waiting = False
        if item is None and self.gone is not None:  # as CaptureStream._check_lost
            self.queue.finish(End(self.sink.next_sample, EndReason.LOST, self.gone))
        return item

    def wait_drained(self) -> None:
        """Until the pump has taken every block and is reading again (all of it sealed)."""
        with self._cond:
            assert self._cond.wait_for(
                lambda: self._waiting and self.queue.queued_samples == 0, BOUND)

    def stop(self) -> None:
        self.stops += 1
        if self.stops == 1 and self.on_stop is not None:
            self.on_stop(self)
        self._stopping.set()
        if self.stop_error is not None:
            self.queue.finish(End(self.sink.next_sample, EndReason.LOST, "stream hung"))
            raise self.stop_error
        self.queue.finish(End(self.sink.next_sample, EndReason.STOPPED))

    def die(self, detail: str) -> None:
        """The stream stops by itself (PortAudio's thread gone): nothing more arrives, and
        only a read that times out finds out."""
        self.gone = detail

    def lose(self, detail: str) -> None:
        self.queue.finish(End(self.sink.next_sample, EndReason.LOST, detail))

    def health(self) -> SourceHealth:
        return SourceHealth(SourceState.RUNNING, 0.0, self.sink.callbacks,
                            self.sink.delivered_samples, self.sink.lost_samples, "test mic")


class Mics:
    """The capture backend: every capture is a fresh `Mic`; `error` makes opening fail."""

    def __init__(self, **mic: Any) -> None:
        self.mic = mic
        self.opened: list[Mic] = []
        self.hooks: list[Any] = []
        self.error: Exception | None = None

    def open_capture(self, *, callback_hook: Callable[[], object] | None = None) -> Mic:
        self.hooks.append(callback_hook)
        if self.error is not None:
            raise self.error
        mic = Mic(hook=callback_hook, **self.mic)
        self.opened.append(mic)
        return mic

    @property
    def last(self) -> Mic:
        return self.opened[-1]


class Collect(FrameSink):
    """The decrypted audio of a recording, frame by frame: (start sample, PCM)."""

    def __init__(self) -> None:
        self.audio: list[tuple[int, bytes]] = []

    def frame(self, frame: Any, pcm: memoryview | None, error: str | None) -> None:
        assert error is None, error
        if frame.header.kind == Kind.AUDIO:
            assert pcm is not None
            self.audio.append((frame.header.start_sample, bytes(pcm)))

    def reset(self) -> None:
        self.audio.clear()


def read_back(kit: Any, rid: str) -> tuple[Any, list[tuple[int, bytes]], list[dict[str, Any]]]:
    """(report, audio frames, timeline without wall times and frame numbers)."""
    sink = Collect()
    rep = verify_recording(kit.state.recording_dir(rid), kit.org, kit.identity.public, sink=sink)
    timeline = [{k: v for k, v in e.items() if k not in ("time", "frame", "at_seconds")}
                for e in rep.timeline]
    return rep, sink.audio, timeline


class Run:
    """A Recorder on `Mics`, recording what it calls back."""

    def __init__(self, kit: Any, mics: Mics | None = None, **kw: Any) -> None:
        self.kit = kit
        self.mics = mics or Mics()
        self.outcomes: list[StopOutcome] = []
        self.gaps: list[Gap] = []
        self.ended = threading.Event()
        kw.setdefault("stop_free_seconds", 0.0)
        self.rec = Recorder(
            state=kit.state,
            identity=kit.identity,
            custody=kit.custody,
            clock=kit.clock,
            backend=self.mics,  # type: ignore[arg-type]
            audio=AudioParams(sample_rate=RATE, segment_samples=SEG),
            on_stopped=self._stopped,
            on_gap=kw.pop("on_gap", self.gaps.append),
            **kw,
        )

    def _stopped(self, outcome: StopOutcome) -> None:
        self.outcomes.append(outcome)
        self.ended.set()

    def prepare(self, **kw: Any) -> str:
        return self.rec.prepare([self.kit.org.public], self.consents(), **kw)

    def consents(self) -> list[tuple[str, Any, float]]:
        return [("a", self.kit.clock.wall(), 2.0), ("b", self.kit.clock.wall(), 0.0)]

    def wait_ended(self) -> StopOutcome:
        assert self.ended.wait(BOUND), "the recording did not end by itself"
        (outcome,) = self.outcomes
        return outcome


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """The recorder's own log lines at `level`, as written."""
    return [r.getMessage() for r in caplog.records
            if r.name == "akkoord.recorder" and r.levelno == level]


def blocks(n: int, seed: int = 0) -> list[bytes]:
    return [pcm(seed * 100 + i, BLOCK) for i in range(n)]


def stop_event(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    assert timeline[-1]["event"] == "stop"
    return timeline[-1]


@pytest.fixture
def kit():
    k = make_kit()
    yield k
    k.cleanup()


def _custody(kit: Any, rid: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e["type"], e["detail"]) for e in kit.custody.entries() if e["recording_id"] == rid]


_CREATE = RecordingWriter.create.__func__  # type: ignore[attr-defined]


def _inject(monkeypatch: pytest.MonkeyPatch, ops: FileOps) -> None:
    """Every recording the recorder creates writes through `ops`."""
    monkeypatch.setattr(RecordingWriter, "create",
                        classmethod(lambda cls, *a, **kw: _CREATE(cls, *a, ops=ops, **kw)))


# -- a recording from start to stop ------------------------------------------------------------


def test_a_recording_holds_the_presses_the_start_and_exactly_the_audio(kit):
    run = Run(kit)
    pressed_a = kit.clock.wall()
    kit.clock.advance(4)
    pressed_b = kit.clock.wall()
    kit.clock.advance(1)  # the presses are stamped with their own times, not "now"
    rid = run.rec.prepare([kit.org.public], [("a", pressed_a, 5.12345), ("b", pressed_b, 1.0)])
    audio = blocks(5)
    for b in audio:
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.rec.stop("party_b")
    assert out == StopOutcome(rid, "party_b", out.result) and out.result.status == "complete"
    assert run.outcomes == [out]  # on_stopped, once, with the same outcome
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and rep.status == "complete" and rep.simulated is False
    joined = b"".join(audio)
    assert frames == [(0, joined[:SEG * 2]), (SEG, joined[SEG * 2:SEG * 4]),
                      (2 * SEG, joined[SEG * 4:])]
    assert timeline == [
        {"event": "press", "party": "A", "before_start_seconds": 5.123, "at_sample": 0},
        {"event": "press", "party": "B", "before_start_seconds": 1.0, "at_sample": 0},
        {"event": "start", "at_sample": 0},
        {"event": "stop", "reason": "party_b", "samples": 5 * BLOCK, "at_sample": 5 * BLOCK},
    ]
    presses = [e["time"] for e in rep.timeline[:2]]
    assert presses == [pressed_a.to_json(), pressed_b.to_json()]
    assert [t for t, _ in _custody(kit, rid)] == ["recording_started", "recording_closed"]
    assert run.mics.last.stops == 1


def test_roles_go_into_the_start_event_and_simulated_recordings_say_so(kit):
    run = Run(kit, simulated=True)
    roles = {"A": "ouder", "B": "jeugdprofessional"}
    rid = run.prepare(roles=roles)
    run.rec.begin()
    run.rec.stop("party_a")
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and rep.simulated is True and frames == []
    assert timeline[2] == {"event": "start", "roles": roles, "at_sample": 0}
    assert _custody(kit, rid)[0][1]["simulated"] is True


def test_the_state_the_daemon_reads_follows_the_recording(kit):
    run = Run(kit)
    rec = run.rec
    assert (rec.active, rec.prepared, rec.recording_id, rec.health()) == (False, False, None, None)
    assert rec.stop("party_a") is None  # nothing to stop
    assert rec.closed_recording() is None
    with pytest.raises(AkkoordError) as got:
        rec.begin()
    assert str(got.value) == "no prepared recording to begin"
    rid = run.prepare()
    assert (rec.active, rec.prepared, rec.recording_id, rec.health()) == (False, True, rid, None)
    before = threading.enumerate()
    rec.begin()
    mic = run.mics.last
    mic.feed(blocks(1)[0])
    assert (rec.active, rec.prepared, rec.recording_id) == (True, False, rid)
    (pump,) = [t for t in threading.enumerate() if t not in before]
    assert pump.daemon  # a hung microphone never keeps the process from exiting
    assert rec.health() == mic.health()
    with pytest.raises(AkkoordError) as got:
        run.prepare()
    assert str(got.value) == "a recording is already running"
    assert len(run.mics.opened) == 1  # refused before the microphone was touched
    out = rec.stop("party_a")
    assert (rec.active, rec.prepared, rec.recording_id, rec.health()) == (False, False, None, None)
    assert rec.stop("party_b") is out  # stopping again: the same outcome, nothing new
    assert run.outcomes == [out]


def test_the_closed_recording_is_handed_over_once_with_its_keys(kit, monkeypatch):
    now = SimpleNamespace(t=500.0)
    monkeypatch.setattr(recorder_mod, "time", SimpleNamespace(monotonic=lambda: now.t))
    run = Run(kit)
    rid = run.prepare()
    run.rec.begin()
    now.t = 512.5
    run.rec.stop("party_a")
    closed = run.rec.closed_recording()
    assert closed is not None
    assert (closed.recording_id, closed.path) == (rid, kit.state.recording_dir(rid))
    assert closed.keys == load_content_keys(closed.path, kit.org) and not closed.keys.wiped
    assert closed.result.status == "complete" and closed.closed_at == 512.5
    assert run.rec.closed_recording() is None


def test_a_second_recording_starts_clean(kit):
    run = Run(kit)
    first = run.prepare()
    run.rec.begin()
    run.rec.stop("party_a")  # its closed recording is never taken
    second = run.prepare()
    assert run.rec.closed_recording() is None  # the first one's window is over
    run.mics.last.feed(blocks(1)[0])
    run.rec.begin()
    out = run.rec.stop("party_b")
    assert out.recording_id == second != first and out.reason == "party_b"
    assert [o.reason for o in run.outcomes] == ["party_a", "party_b"]
    closed = run.rec.closed_recording()
    assert closed is not None and closed.recording_id == second


def test_the_callback_hook_reaches_the_microphone(kit):
    calls = []
    run = Run(kit, callback_hook=lambda: calls.append(1))
    run.prepare()
    mic = run.mics.last
    for b in blocks(3):
        mic.feed(b)
    assert len(calls) == 3
    run.rec.begin()
    run.rec.stop("party_a")


# -- gaps --------------------------------------------------------------------------------------


def test_gaps_are_sealed_where_they_fell_and_reported(kit):
    # The queue holds 5 blocks; the 6th and 7th are dropped (an exact queue-full gap).
    run = Run(kit, Mics(queue_samples=5 * BLOCK))
    rid = run.prepare()
    mic = run.mics.last
    audio = blocks(7)
    mic.feed(audio[0], adc=1.0)
    mic.feed(audio[1], adc=1.025)
    mic.feed(audio[2], adc=1.06, overflow=True)  # 0.035 s after: 160 samples lost first
    for b in audio[3:]:
        mic.feed(b)
    run.rec.begin()
    run.rec.stop("party_a")
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and rep.status == "complete"
    a = audio
    assert frames == [
        (0, a[0] + a[1]),
        (960, a[2] + a[3][:480]),  # cut at the segment boundary of the sample clock
        (1600, a[3][480:] + a[4]),  # cut before the gap
    ]
    assert timeline[3:] == [
        {"event": "gap", "cause": "input_overflow", "estimated": True, "samples": 160,
         "at_sample": 800},
        {"event": "gap", "cause": "queue_full", "estimated": False, "samples": 800,
         "at_sample": 2160},
        {"event": "stop", "reason": "party_a", "samples": 2960, "at_sample": 2960},
    ]
    assert run.gaps == [Gap(800, 160, True, GapCause.INPUT_OVERFLOW),
                        Gap(2160, 800, False, GapCause.QUEUE_FULL)]


def test_a_failing_gap_callback_ends_the_recording_sealed(kit, caplog):
    def boom(gap: Gap) -> None:
        raise RuntimeError("the daemon's gap handler broke")

    run = Run(kit, on_gap=boom)
    rid = run.prepare()
    mic = run.mics.last
    first = blocks(1)[0]
    mic.feed(first, adc=1.0)
    mic.feed(blocks(1, 1)[0], adc=2.0, overflow=True)
    run.rec.begin()
    out = run.wait_ended()  # nobody pressed stop
    assert out.reason == "storage_error" and out.result.status == "complete"
    assert mic.stops == 1
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and frames == [(0, first)]  # the gap was sealed, then the pump stopped
    assert [e["event"] for e in timeline[3:]] == ["gap", "stop"]
    assert logged(caplog, logging.ERROR) == ["the recording pump failed"]


# -- the microphone ending ---------------------------------------------------------------------


def test_a_lost_microphone_ends_the_recording_with_its_reason(kit):
    run = Run(kit)
    rid = run.prepare()
    audio = blocks(3)
    for b in audio:
        run.mics.last.feed(b)
    run.rec.begin()
    run.mics.last.lose("USB microphone pulled: " + "x" * 300)
    out = run.wait_ended()
    assert out.reason == "microphone_lost" and out.result.status == "complete"
    assert not run.rec.active and run.rec.stop("party_a") is out
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and frames == [(0, audio[0] + audio[1]), (SEG, audio[2])]
    stop = stop_event(timeline)
    assert stop["reason"] == "microphone_lost" and stop["samples"] == 3 * BLOCK
    assert stop["detail"] == ("USB microphone pulled: " + "x" * 300)[:200]


def test_a_microphone_that_dies_silently_is_found_by_a_read_that_times_out(kit):
    run = Run(kit)
    rid = run.prepare()
    run.mics.last.feed(blocks(1)[0])
    run.rec.begin()
    run.mics.last.wait_drained()
    run.mics.last.die("the audio stream ended by itself")
    assert run.wait_ended().reason == "microphone_lost"
    stop = stop_event(read_back(kit, rid)[2])
    assert stop["detail"] == "the audio stream ended by itself" and stop["samples"] == BLOCK


def test_a_stream_that_ends_without_a_stop_is_a_shutdown(kit):
    run = Run(kit)
    rid = run.prepare()
    run.mics.last.feed(blocks(1)[0])
    run.rec.begin()
    run.mics.last.stop()  # the backend closed under the recorder (daemon shutting down)
    out = run.wait_ended()
    assert out.reason == "shutdown"
    stop = stop_event(read_back(kit, rid)[2])
    assert stop["reason"] == "shutdown" and "detail" not in stop


def test_a_lost_microphone_without_detail_writes_none(kit):
    run = Run(kit)
    rid = run.prepare()
    run.rec.begin()
    run.mics.last.lose("")
    assert run.wait_ended().reason == "microphone_lost"
    stop = stop_event(read_back(kit, rid)[2])
    assert stop["reason"] == "microphone_lost" and "detail" not in stop


def test_a_microphone_that_hangs_on_stop_still_gets_a_sealed_recording(kit, caplog):
    run = Run(kit, Mics(stop_error=HardwareError("PortAudio did not stop the stream")))
    rid = run.prepare()
    run.mics.last.feed(blocks(1)[0])
    run.rec.begin()
    out = run.rec.stop("party_b")
    assert out is not None and out.reason == "party_b" and out.result.status == "complete"
    stop = stop_event(read_back(kit, rid)[2])
    assert stop["reason"] == "party_b" and stop["detail"] == "stream hung"
    assert logged(caplog, logging.WARNING) == [
        "stopping the audio source failed: PortAudio did not stop the stream"]


def test_read_timeouts_do_not_end_the_recording(kit):
    run = Run(kit, Mics(idle_reads=3))
    rid = run.prepare()
    audio = blocks(2)
    for b in audio:
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.rec.stop("party_a")
    assert out.reason == "party_a"
    assert read_back(kit, rid)[1] == [(0, audio[0] + audio[1])]


def test_a_failing_read_ends_the_recording_with_a_storage_error(kit, caplog):
    run = Run(kit, Mics(read_error=(3, OSError("driver fell over"))))
    rid = run.prepare()
    audio = blocks(4)
    for b in audio:
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.wait_ended()
    assert out.reason == "storage_error" and out.result.status == "complete"
    assert run.mics.last.stops == 1
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and frames == [(0, audio[0] + audio[1])]  # the third block was pending
    assert stop_event(timeline)["reason"] == "storage_error"
    assert logged(caplog, logging.ERROR) == ["the recording pump failed"]


def test_stop_gives_up_waiting_for_a_hung_pump_and_the_recording_still_seals(kit, caplog):
    hold = threading.Event()
    run = Run(kit, Mics(hold=hold))
    rid = run.prepare()
    run.rec.begin()
    assert run.mics.last.reading.wait(BOUND)
    assert run.rec.stop("party_a", timeout=0.01) is None
    assert logged(caplog, logging.ERROR) == ["recording did not seal within 0.0 s"]
    hold.set()
    out = run.wait_ended()
    assert out.reason == "party_a" and run.rec.stop("party_b") is out
    assert read_back(kit, rid)[0].ok


def test_a_pump_that_makes_no_progress_is_stalled(kit, monkeypatch):
    now = SimpleNamespace(t=100.0)
    monkeypatch.setattr(recorder_mod, "time", SimpleNamespace(monotonic=lambda: now.t))
    hold = threading.Event()
    run = Run(kit, Mics(hold=hold, hold_reads=1))
    run.prepare()
    now.t = 200.0
    assert not run.rec.pump_stalled(1.0)  # not recording yet
    run.rec.begin()
    assert run.mics.last.reading.wait(BOUND)  # the pump waits in its first read
    now.t = 205.0
    assert not run.rec.pump_stalled(5.0)
    assert run.rec.pump_stalled(4.5)
    now.t = 300.0
    hold.set()
    mic = run.mics.last
    mic.feed(blocks(1)[0])
    mic.wait_drained()  # every read since returned at 300
    now.t = 303.0
    assert run.rec.pump_stalled(2.5) and not run.rec.pump_stalled(3.0)
    run.rec.stop("party_a")
    assert not run.rec.pump_stalled(0.0)


# -- timeline events ---------------------------------------------------------------------------


def test_events_go_into_the_running_recording_where_they_happen(kit):
    run = Run(kit)
    assert run.rec.add_event("note", text="no recording") is False
    rid = run.prepare()
    assert run.rec.add_event("note", text="prepared only") is False
    run.rec.begin()
    mic = run.mics.last
    assert run.rec.add_event("note", text="at the start") is True
    for b in blocks(3):
        mic.feed(b)
    mic.wait_drained()  # one segment sealed, half of the next one pending
    assert run.rec.add_event("export_window", state="open") is True
    run.rec.stop("party_a")
    assert run.rec.add_event("note", text="after the stop") is False
    _, _, timeline = read_back(kit, rid)
    assert timeline[3:] == [
        {"event": "note", "text": "at the start", "at_sample": 0},
        {"event": "export_window", "state": "open", "at_sample": SEG},
        {"event": "stop", "reason": "party_a", "samples": 3 * BLOCK, "at_sample": 3 * BLOCK},
    ]


# -- the store failing -------------------------------------------------------------------------

# Writes while a recording is made: the header, the start checkpoint, two presses and the
# start, then one per segment or event.
_FIRST_AUDIO_WRITE = 6


@pytest.mark.parametrize(("err", "reason"), [(errno.ENOSPC, "disk_full"),
                                             (errno.EIO, "storage_error")])
def test_a_failing_write_stops_the_recording_and_seals_what_was_stored(
        kit, monkeypatch, caplog, err, reason):
    ops = FaultyOps("write", _FIRST_AUDIO_WRITE + 2, err)  # the third segment
    _inject(monkeypatch, ops)
    run = Run(kit)
    rid = run.prepare()
    audio = blocks(10)
    for b in audio:
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.wait_ended()  # the recorder stopped itself
    assert ops.fired and run.mics.last.stops == 1
    assert out.reason == reason and out.result.status == "complete"
    rep, frames, timeline = read_back(kit, rid)
    # Sealed up to the failure; what the microphone still delivered is past the end.
    assert rep.ok and frames == [(0, b"".join(audio[:2])), (SEG, b"".join(audio[2:4]))]
    stop = stop_event(timeline)
    assert stop["reason"] == reason and stop["samples"] == 2 * SEG
    assert stop["storage_error"].startswith("write failed at")
    (error,) = logged(caplog, logging.ERROR)
    assert error == f"storing audio failed: {stop['storage_error']}"
    assert run.rec.closed_recording() is not None


def test_a_failing_event_write_stops_the_recording(kit, monkeypatch):
    ops = FaultyOps("write", _FIRST_AUDIO_WRITE + 1, errno.ENOSPC)
    _inject(monkeypatch, ops)
    run = Run(kit)
    rid = run.prepare()
    run.rec.begin()
    mic = run.mics.last
    mic.feed(blocks(2)[0])
    mic.feed(blocks(2)[1])
    mic.wait_drained()  # one segment: write 6
    assert run.rec.add_event("note", text="the disk is full") is False  # write 7 fails
    out = run.wait_ended()
    assert out.reason == "disk_full" and out.result.status == "complete"
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and len(frames) == 1
    assert [e["event"] for e in timeline[3:]] == ["stop"]


def test_no_event_is_written_after_a_storage_failure(kit, monkeypatch, caplog):
    ops = FaultyOps("write", _FIRST_AUDIO_WRITE + 1, errno.ENOSPC)  # the second segment
    _inject(monkeypatch, ops)
    refused: list[bool] = []
    # The consent loop adds an event while the recorder is stopping on the failure.
    run = Run(kit, Mics(on_stop=lambda mic: refused.append(
        run.rec.add_event("note", text="after the failure"))))
    rid = run.prepare()
    for b in blocks(6):
        run.mics.last.feed(b)
    run.rec.begin()
    assert run.wait_ended().reason == "disk_full" and refused == [False]
    # Refused without touching the failed store: one failure, one error, one stop.
    assert len(logged(caplog, logging.ERROR)) == 1 and run.mics.last.stops == 1
    _, frames, timeline = read_back(kit, rid)
    assert len(frames) == 1 and [e["event"] for e in timeline[3:]] == ["stop"]


def test_a_failing_fsync_leaves_the_recording_for_recovery_and_wipes_its_keys(
        kit, monkeypatch):
    ops = FaultyOps("sync", _FIRST_AUDIO_WRITE, errno.EIO)
    _inject(monkeypatch, ops)
    run = Run(kit)
    rid = run.prepare()
    for b in blocks(4):
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.wait_ended()
    assert out.reason == "storage_error" and out.result.status == "left_for_recovery"
    assert "fsync failed" in (out.result.error or "")
    assert run.rec.closed_recording() is None  # no export window
    keys = load_content_keys(kit.state.recording_dir(rid), kit.org)
    gc.collect()
    live = [o for o in gc.get_objects()
            if isinstance(o, ContentKeys) and o is not keys and o == keys]
    assert live == [], "the content keys of a failed recording are still in memory"
    assert [t for t, _ in _custody(kit, rid)] == ["recording_started", "recording_failed"]


# -- prepare failing ---------------------------------------------------------------------------


def _container_bytes(kit: Any) -> dict[str, int]:
    return {p.name: (p / "audio.akr").stat().st_size
            for p in kit.state.recordings_dir.iterdir()}


def test_a_microphone_that_cannot_open_leaves_a_sealed_empty_recording(kit, caplog):
    run = Run(kit)
    run.mics.error = HardwareError("microphone [2] 'USB': gone " + "y" * 300)
    with pytest.raises(HardwareError) as got:
        run.prepare()
    assert got.value is run.mics.error  # the backend's own words
    assert not run.rec.prepared and not run.rec.active and run.rec.recording_id is None
    (rid,) = [p.name for p in kit.state.recordings_dir.iterdir()]
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and rep.status == "complete" and frames == []
    assert [e["event"] for e in timeline] == ["press", "press", "start", "stop"]
    stop = stop_event(timeline)
    assert stop["reason"] == "microphone_lost"
    assert stop["detail"] == str(run.mics.error)[:200]
    assert run.outcomes == []  # never started: nothing to report as stopped
    assert logged(caplog, logging.WARNING) == []  # no microphone to stop


def test_an_os_error_opening_the_microphone_is_a_hardware_error(kit):
    run = Run(kit)
    cause = OSError(-9996, "Invalid input device")
    run.mics.error = cause
    with pytest.raises(HardwareError, match=r"^the microphone could not be opened: ") as got:
        run.prepare()
    assert got.value.__cause__ is cause
    (rid,) = [p.name for p in kit.state.recordings_dir.iterdir()]
    assert stop_event(read_back(kit, rid)[2])["reason"] == "microphone_lost"


def test_a_failing_press_write_refuses_the_start_and_closes_the_recording(kit, monkeypatch):
    ops = FaultyOps("write", 3, errno.ENOSPC)  # the first press
    _inject(monkeypatch, ops)
    run = Run(kit)
    with pytest.raises(StorageError, match="write failed at") as got:
        run.prepare()
    mic = run.mics.last
    assert mic.stops == 1 and not run.rec.prepared
    (rid,) = [p.name for p in kit.state.recordings_dir.iterdir()]
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and rep.status == "complete" and frames == []
    stop = stop_event(timeline)
    assert stop["reason"] == "storage_error" and stop["detail"] == str(got.value)[:200]
    # The store's failure is reported even when the microphone failed too.
    ops2 = FaultyOps("write", 3, errno.EIO)
    _inject(monkeypatch, ops2)
    run.mics.error = HardwareError("no microphone either")
    with pytest.raises(StorageError, match="write failed at"):
        run.prepare()


def test_an_unwritable_event_refuses_the_start_with_a_storage_error(kit):
    run = Run(kit)
    with pytest.raises(StorageError) as got:
        run.prepare(roles={"A": {"not", "json"}})  # a set: no JSON for it
    (rid,) = [p.name for p in kit.state.recordings_dir.iterdir()]
    assert str(got.value).startswith(f"cannot write the recording {rid}: ")
    assert isinstance(got.value.__cause__, TypeError)
    assert run.mics.last.stops == 1
    stop = stop_event(read_back(kit, rid)[2])
    assert stop["reason"] == "storage_error"


def test_the_stores_own_errors_and_bugs_are_raised_as_they_are(kit, monkeypatch):
    ops = FaultyOps("write", 1, errno.EIO)  # the header
    _inject(monkeypatch, ops)
    run = Run(kit)
    with pytest.raises(StorageError) as got:
        run.prepare()
    assert str(got.value).startswith("write failed at") and got.value.errno == errno.EIO
    assert run.mics.last.stops == 1
    monkeypatch.undo()
    with pytest.raises(AttributeError):  # a bug is not dressed up as a storage failure
        run.rec.prepare([None], run.consents())  # type: ignore[list-item]


def test_a_malformed_organisation_key_refuses_the_start(kit):
    run = Run(kit)
    bad = OrgPublicKey("x25519", b"\x01" * 31)  # one byte short
    with pytest.raises(StorageError) as got:
        run.rec.prepare([bad], run.consents())
    cause = got.value.__cause__
    assert isinstance(cause, ValueError) and not isinstance(cause, OSError)
    assert str(got.value) == (
        f"cannot create a recording in {kit.state.recordings_dir}: {cause}")
    assert run.mics.last.stops == 1 and list(kit.state.recordings_dir.iterdir()) == []


def test_no_recipient_refuses_the_start_and_creates_nothing(kit):
    run = Run(kit)
    with pytest.raises(NoRecipientError):
        run.rec.prepare([], run.consents())
    assert run.mics.last.stops == 1  # the microphone opened alongside is closed again
    assert list(kit.state.recordings_dir.iterdir()) == []


def test_a_recordings_folder_that_cannot_be_written_is_a_storage_error(kit, caplog):
    run = Run(kit, Mics(stop_error=HardwareError("and the microphone hangs")))
    where = kit.state.recordings_dir
    where.rmdir()
    where.write_text("not a folder")
    with pytest.raises(StorageError) as got:
        run.prepare()
    cause = got.value.__cause__
    assert isinstance(cause, OSError) and cause.strerror
    assert str(got.value) == f"cannot create a recording in {where}: {cause.strerror}"
    assert logged(caplog, logging.WARNING) == [
        "stopping the audio source failed: and the microphone hangs"]


def test_a_second_prepare_closes_the_recording_that_never_began(kit):
    run = Run(kit)
    first = run.prepare()
    first_mic = run.mics.last
    second = run.prepare()
    assert second != first and first_mic.stops == 1 and run.rec.recording_id == second
    stop = stop_event(read_back(kit, first)[2])
    assert stop["reason"] == "storage_error" and stop["detail"] == "prepared but never started"
    run.rec.begin()
    assert run.rec.stop("party_a").recording_id == second


# -- the disk guard ----------------------------------------------------------------------------


class Disk:
    """free_bytes for the recordings folder: `seconds` of audio left, call by call."""

    def __init__(self, kit: Any, seconds: list[float | Exception]) -> None:
        self.kit = kit
        self.seconds = seconds
        self.asked: list[Path] = []

    def __call__(self, path: Path) -> int:
        assert Path(path) == self.kit.state.recordings_dir
        self.asked.append(path)
        left = self.seconds[min(len(self.asked), len(self.seconds)) - 1]
        if isinstance(left, Exception):
            raise left
        return round(left * RATE * 2 * 1.02)


def test_the_disk_guard_stops_after_the_segment_that_crossed_the_limit(
        kit, monkeypatch, caplog):
    disk = Disk(kit, [60.0, 30.0, 9.6])
    monkeypatch.setattr(recorder_mod, "free_bytes", disk)
    run = Run(kit, stop_free_seconds=10.0)
    rid = run.prepare()
    audio = blocks(12)
    mic = run.mics.last
    mic.feed(audio[0], adc=1.0)
    mic.feed(audio[1], adc=1.025)
    mic.feed(audio[2], adc=1.075, overflow=True)  # a gap: no segment, no look at the disk
    for b in audio[3:]:
        mic.feed(b)
    run.rec.begin()
    out = run.wait_ended()
    assert out.reason == "disk_full" and out.result.status == "complete"
    rep, frames, timeline = read_back(kit, rid)
    assert rep.ok and [s for s, _ in frames] == [0, 1200, 1600]
    assert stop_event(timeline)["samples"] == 2400  # the rest, already captured, is past the end
    assert logged(caplog, logging.WARNING) == [
        "10 s of space left: stopping the recording (disk full)"]


def test_the_disk_guard_keeps_recording_at_exactly_the_limit_and_when_it_cannot_look(
        kit, monkeypatch):
    disk = Disk(kit, [10.0, OSError(errno.EIO, "statvfs failed"), 10.0])
    monkeypatch.setattr(recorder_mod, "free_bytes", disk)
    run = Run(kit, stop_free_seconds=10.0)
    rid = run.prepare()
    for b in blocks(8):
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.rec.stop("party_a")
    assert out.reason == "party_a" and len(disk.asked) == 4
    assert len(read_back(kit, rid)[1]) == 4


def test_a_party_stop_is_not_turned_into_disk_full(kit, monkeypatch):
    low = SimpleNamespace(on=False)
    monkeypatch.setattr(recorder_mod, "free_bytes",
                        lambda path: 0 if low.on else 1 << 40)

    def last_blocks(mic: Mic) -> None:  # the disk fills while the driver hands out its tail
        low.on = True
        for b in blocks(4, seed=9):
            mic.feed(b)

    run = Run(kit, Mics(on_stop=last_blocks), stop_free_seconds=10.0)
    rid = run.prepare()
    run.mics.last.feed(blocks(1)[0])
    run.rec.begin()
    out = run.rec.stop("party_b")
    assert out.reason == "party_b"
    assert stop_event(read_back(kit, rid)[2])["samples"] == 5 * BLOCK


def test_a_party_stop_while_the_guard_stops_leaves_disk_full(kit, monkeypatch):
    monkeypatch.setattr(recorder_mod, "free_bytes", lambda path: 0)
    run = Run(kit, stop_free_seconds=10.0)
    late: list[Any] = []
    # The party presses stop while the guard is stopping the microphone (before the seal).
    run.mics.mic["on_stop"] = lambda mic: late.append(run.rec.stop("party_a", timeout=0))
    rid = run.prepare()
    for b in blocks(2):
        run.mics.last.feed(b)
    run.rec.begin()
    out = run.wait_ended()
    assert late == [None] and out.reason == "disk_full"
    assert stop_event(read_back(kit, rid)[2])["reason"] == "disk_full"
