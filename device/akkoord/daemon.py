"""The composition root: configuration -> real adapters -> one loop.

One thread runs the consent machine and everything it asks for (``ConsentLoop``); the
recorder's pump thread seals audio; an export thread writes copies; an announcer thread plays
chimes and prompts; the simulator (or the control socket) posts stick events. Nothing but
this module decides which adapters are real.

Health, as systemd sees it: ``READY=1`` once the panel is up and recovery has run; ``STATUS=``
on every state change; ``WATCHDOG=1`` only while the loop turns *and* the audio path is
healthy. A hung PortAudio callback therefore ends in a watchdog restart, and the recording
it was making is closed as *interrupted* by recovery on the next start.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from akkoord.audio import Gap
from akkoord.audio.model import CaptureBackend
from akkoord.clock import Clock
from akkoord.collect.runner import Collector
from akkoord.config import Config
from akkoord.consent import (
    IDLE,
    Action,
    Chime,
    Collect,
    CollectionStickInserted,
    CopyFinished,
    Event,
    ExportWindowClosed,
    Fault,
    FaultCleared,
    FaultRaised,
    Log,
    MakeCopy,
    Pressed,
    RecordingEnded,
    Released,
    Say,
    StartFailed,
    StartRecording,
    Stick,
    StickInserted,
    StickRemoved,
    StopReason,
    StopRecording,
    TimelineEvent,
    TimelineKind,
)
from akkoord.errors import AkkoordError, HardwareError
from akkoord.export.progress import CopyProgress
from akkoord.export.service import export_copy
from akkoord.notify import Notifier
from akkoord.panel import ConsentLoop, Panel
from akkoord.prompts import prompt_path, prompt_text
from akkoord.recorder import Recorder, Recording, StopOutcome, free_seconds
from akkoord.sounds import render_pcm
from akkoord.store.custody import CustodyLog
from akkoord.store.layout import StateDir
from akkoord.store.reconcile import reconcile_exports
from akkoord.store.recovery import recover_all
from akkoord.store.writer import AudioParams

__all__ = ["Daemon", "Reporter", "harden_process", "setup_logging"]

log = logging.getLogger(__name__)

# Timeline kinds the recorder writes itself (presses in StartRecording, start, the END frame).
_WRITTEN_ELSEWHERE = {TimelineKind.CONSENT, TimelineKind.START, TimelineKind.STOP}
_FAULT_CHECK_S = 1.0
#: What a technician reads with a fault the daemon finds itself: which part, and what to do.
_FAULT_DETAIL = {
    Fault.NO_KEYS: "no organisation key (recipient) installed: recordings cannot be encrypted "
    "to anyone; install the organisation's public key: akkoord keys add-recipient ORG.pub",
    Fault.STORAGE_LOW: "less free space than [store] min_free_minutes of audio",
    Fault.CLOCK_UNSET: "the clock is before [store] clock_floor: set the time (RTC or NTP)",
    Fault.STORAGE_ERROR: "the state folder cannot be read or written",
}
_MIC_PROBE_S = 2.0


_SYSLOG_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                    logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    """`<N>` prefixes let journald keep the level (journalctl -p warning works)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_SYSLOG_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def setup_logging(simulate: bool) -> None:
    handler = logging.StreamHandler()
    fmt = "%(name)s: %(message)s"
    if not simulate and os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter(fmt))
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s " + fmt))
    logging.basicConfig(level=logging.WARNING if simulate else logging.INFO,
                        handlers=[handler], force=True)


def harden_process() -> None:
    """No core dumps and no ptrace by other users: content keys live in this memory."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)  # libc is already loaded: no ldconfig subprocess
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


class Reporter:
    """Where the daemon says what happens: the simulator's stdout, or the journal."""

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._emit = emit

    def __call__(self, event: str, **fields: Any) -> None:
        if self._emit is not None:
            self._emit({"event": event, **fields})
        else:
            log.info("%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))


class _Stick:
    def __init__(self, path: Path, unmount: Callable[[], None] | None) -> None:
        self.path = path
        self.unmount = unmount


class Daemon:
    def __init__(
        self,
        config: Config,
        state: StateDir,
        *,
        backend: CaptureBackend,
        clock: Clock,
        notifier: Notifier | None = None,
        reporter: Reporter | None = None,
        pin_factory: Any = None,
        simulated: bool = False,
        callback_hook: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.backend = backend
        self.clock = clock
        self.notifier = notifier or Notifier({})
        self.report = reporter or Reporter()
        self.simulated = simulated
        self.stopping = threading.Event()
        self._faults: set[Fault] = set()
        self._exportable: Recording | None = None
        self._exportable_until = 0.0
        self._stick: _Stick | None = None
        self._copy_thread: threading.Thread | None = None
        self._copy_deadline = 0.0
        self._copy_token = 0
        self._next_fault_check = 0.0
        self._next_mic_probe = 0.0
        self._next_watchdog = 0.0
        self._announce: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=16)
        self._loop_alive = time.monotonic()
        self._stick_taken: threading.Event | None = None
        #: Recordings both parties asked for that could not start (the simulator's exit code).
        self.failed_starts = 0

        state.ensure()
        self.identity = state.identity()
        self.custody = CustodyLog(state.custody_path, self.identity, clock)
        self.collector = Collector(state, self.identity, self.custody, clock, self.report,
                                   lambda e: self.post(e), lambda: self.panel.now())
        # Recovery reads whole recordings; on a Zero 2 W that can take a while, so tell
        # systemd not to count it against the start timeout.
        self.notifier.send("EXTEND_TIMEOUT_USEC=600000000", "STATUS=recovering recordings")
        for r in recover_all(state, self.identity, clock, self.custody):
            self.report("recovered", recording_id=r.recording_id, action=r.action, detail=r.detail)
        for x in reconcile_exports(state, self.custody):
            self.report("export_reconciled", **x)
        audio = config.audio
        self.recorder = Recorder(
            state=state,
            identity=self.identity,
            custody=self.custody,
            clock=clock,
            backend=backend,
            audio=AudioParams(sample_rate=audio.sample_rate, segment_samples=audio.segment_samples),
            stop_free_seconds=config.store.stop_free_minutes * 60,
            simulated=simulated,
            on_stopped=self._stopped,
            on_gap=self._gap,
            callback_hook=callback_hook,
        )
        try:
            backend.start()
        except HardwareError as exc:
            self.report("fault", fault=Fault.NO_MICROPHONE.value, detail=str(exc))
            self._faults.add(Fault.NO_MICROPHONE)
        self.panel = Panel(config.panel, pin_factory=pin_factory, clock=time.monotonic)
        try:
            for fault in sorted(self._check_faults() - self._faults):
                self._faults.add(fault)
                self.report("fault", fault=fault.value, detail=_FAULT_DETAIL.get(fault, ""),
                            at_start=True)
            self.loop = ConsentLoop(
                self.panel,
                config.panel.timing,
                on_action=self._on_action,
                on_event=self._on_event,
                faults=self._faults,
                prepare=self._prepare_start,
            )
        except BaseException:
            self.panel.close()
            raise
        self._announcer = threading.Thread(
            target=self._announce_loop, name="akkoord-announce", daemon=True
        )
        self._announcer.start()

    # -- public ----------------------------------------------------------------------------

    @property
    def machine_state(self) -> str:
        loop = getattr(self, "loop", None)  # None while the loop performs its boot actions
        return str(loop.machine.state) if loop is not None else "starting"

    @property
    def faults(self) -> frozenset[Fault]:
        """A snapshot, safe to take from another thread (the serial console's)."""
        return frozenset(self._faults)

    @property
    def exportable_id(self) -> str | None:
        """The recording whose copy window is open, if any (its keys stay in here)."""
        held = self._exportable
        return held.recording_id if held is not None else None

    def post(self, event: Event) -> None:
        self.loop.post(event)

    def stick_inserted(
        self, path: Path, unmount: Callable[[], None] | None = None
    ) -> threading.Event:
        """A stick is mounted at `path` (the simulator's `usb PATH`, or the mount adapter).
        The returned event is set once the device has taken it: offered a copy, said there is
        nothing to copy, or remembered it until the recording ends."""
        self._stick = _Stick(Path(path), unmount)
        taken = threading.Event()
        self.report("usb_inserted", path=str(path))
        if self.collector.is_collection_stick(Path(path)):  # a verified collection token
            self.post(CollectionStickInserted(self.panel.now()))
        else:
            self.post(StickInserted(self.panel.now()))
        # Only now: _periodic (loop thread) sets it once the queue holds no event before it
        # was handled; set before posting, an empty queue would release it too early.
        self._stick_taken = taken
        return taken

    @property
    def has_stick(self) -> bool:
        return self._stick is not None

    @property
    def copying(self) -> bool:
        return self._copy_thread is not None

    def stick_removed(self) -> None:
        stick, self._stick = self._stick, None
        mid_copy = self._copy_thread is not None
        if mid_copy:
            # Pulled mid-copy: the copy is lost, whatever the writing thread still thinks.
            self._copy_token += 1  # its progress callback now abandons the copy
            self._copy_thread = None
        if stick is not None and stick.unmount is not None:
            with contextlib.suppress(AkkoordError):
                stick.unmount()
        self.report("usb_removed")
        if mid_copy:
            rid = self._exportable.recording_id if self._exportable else None
            self.report("copy_failed", recording_id=rid, error="the stick was removed")
            self.post(CopyFinished(False, self.panel.now(), "the stick was removed"))
        self.post(StickRemoved(self.panel.now()))

    def run(self) -> int:
        self.notifier.ready(f"ready: {self.machine_state}")
        self.report("ready", fingerprint=self.identity.fingerprint)
        frame = self.loop.frame_s
        console = None
        if self.config.console.port:  # its own thread; reads our state, never drives the loop
            from akkoord.console.attach import start_console

            console = start_console(self, self.config.console.port)
        try:
            while not self.stopping.is_set():
                try:
                    event = self.panel.events.get(timeout=frame)
                except queue.Empty:
                    pass
                else:
                    self.loop.handle(event)
                self.loop.pump()
                self._periodic(time.monotonic())
        finally:
            self.shutdown()
            if console is not None:
                console.close()
        # A handler that raised was logged and survived; the run still did not go as it should.
        return 4 if self.loop.failures else 0

    def shutdown(self) -> None:
        """Seal an open recording (reason "shutdown"), then release everything."""
        self.notifier.stopping()
        if self.recorder.active:
            self.recorder.stop(StopReason.SHUTDOWN.value)
        if self._exportable is not None:
            self._exportable.keys.wipe()  # keys leave memory with us
        self._exportable = None
        self._announce.put(("quit", None))
        self.panel.close()
        with contextlib.suppress(Exception):
            self.backend.close()

    # -- periodic ---------------------------------------------------------------------------

    def _periodic(self, now: float) -> None:
        self._loop_alive = now
        taken = self._stick_taken
        # On the loop thread, an empty queue means the StickInserted posted earlier was handled.
        if taken is not None and self.panel.events.empty():
            m = self.loop.machine
            if m.stick is not Stick.PENDING or m.state not in IDLE:
                taken.set()
                self._stick_taken = None
        if (self._exportable is not None and now >= self._exportable_until
                and self._copy_thread is None):  # a running copy still reads the keys
            self._drop_keys("export window closed")
        if self._copy_thread is not None and now > self._copy_deadline:
            self._copy_token += 1  # the thread's late answer is ignored
            self._copy_thread = None
            self.report("copy_failed", error="timed out")
            self.post(CopyFinished(False, self.panel.now(), "timed out"))
        self.collector.check(now)
        if now >= self._next_fault_check:
            self._next_fault_check = now + _FAULT_CHECK_S
            self._sync_faults(self._check_faults())
        if (
            Fault.NO_MICROPHONE in self._faults
            and not self.recorder.active
            and now >= self._next_mic_probe
        ):
            self._next_mic_probe = now + _MIC_PROBE_S
            if self.backend.probe_input() is not None:
                self._set_fault(Fault.NO_MICROPHONE, False)
        interval = self.notifier.watchdog_interval
        if interval is not None and now >= self._next_watchdog and self.healthy():
            self._next_watchdog = now + interval / 2
            self.notifier.watchdog()

    def healthy(self) -> bool:
        """The loop turns (we are in it) and, while recording, audio keeps arriving."""
        if not self.recorder.active:
            return True
        health = self.recorder.health()
        if health is not None and not health.healthy:
            return False
        return not self.recorder.pump_stalled(self.config.audio.stall_seconds + 2)

    def _check_faults(self) -> set[Fault]:
        """Faults the daemon observes (the machine derives stuck buttons itself)."""
        faults = set(self._faults & {Fault.NO_MICROPHONE, Fault.STORAGE_ERROR})
        try:
            if not self.state.recipients():
                faults.add(Fault.NO_KEYS)
        except AkkoordError:
            faults.add(Fault.NO_KEYS)
        if not self.recorder.active:
            try:
                left = free_seconds(self.state.recordings_dir, self.config.audio.sample_rate)
                if left < self.config.store.min_free_minutes * 60:
                    faults.add(Fault.STORAGE_LOW)
            except OSError:
                faults.add(Fault.STORAGE_ERROR)
        elif Fault.STORAGE_LOW in self._faults:
            faults.add(Fault.STORAGE_LOW)
        floor = datetime.fromisoformat(self.config.store.clock_floor).replace(tzinfo=UTC)
        if self.clock.wall_epoch() < floor.timestamp():
            faults.add(Fault.CLOCK_UNSET)
        return faults

    def _sync_faults(self, faults: set[Fault]) -> None:
        for f in sorted(faults - self._faults):
            self._set_fault(f, True)
        for f in sorted(self._faults - faults):
            self._set_fault(f, False)

    def _set_fault(self, fault: Fault, on: bool, detail: str = "") -> None:
        if on == (fault in self._faults):
            return
        now = self.panel.now()
        if on and fault is Fault.STORAGE_LOW:
            detail = "; ".join(x for x in (detail, self.collector.storage_advice()) if x)
        if on:
            self._faults.add(fault)
            self.report("fault", fault=fault.value, detail=detail or _FAULT_DETAIL.get(fault, ""))
            self.post(FaultRaised(fault, now))
        else:
            self._faults.discard(fault)
            self.report("fault_cleared", fault=fault.value)
            self.post(FaultCleared(fault, now))

    def _drop_keys(self, why: str) -> None:
        if self._exportable is None:
            return
        self.report("keys_dropped", recording_id=self._exportable.recording_id, reason=why)
        self._exportable.keys.wipe()  # overwrite, not just unreference (THREAT-MODEL.md)
        self._exportable = None
        self.post(ExportWindowClosed(self.panel.now()))

    # -- the machine's events and actions ------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Pressed | Released):
            self.report(
                "press" if isinstance(event, Pressed) else "release",
                party=event.party.value,
                state=self.machine_state,
            )

    def _on_action(self, action: Action) -> StartFailed | None:
        if isinstance(action, Log):
            if action.old != action.new:
                self.notifier.status(f"{action.new}: {action.reason}")
                self.report(
                    "state", state=str(action.new), previous=str(action.old), reason=action.reason
                )
            else:
                self.report("note", state=str(action.new), reason=action.reason)
        elif isinstance(action, Chime):
            self.report("chime", name=str(action.name), state=self.machine_state)
            self._queue_announcement("chime", action.name)
        elif isinstance(action, Say):
            lang = self.config.panel.language
            self.report(
                "say",
                prompt=str(action.prompt),
                text=prompt_text(action.prompt, lang),
                state=self.machine_state,
            )
            self._queue_announcement("say", action.prompt)
        elif isinstance(action, StartRecording):
            return self._start(action)
        elif isinstance(action, StopRecording):
            self.recorder.stop(action.reason.value)
        elif isinstance(action, TimelineEvent):
            if action.kind not in _WRITTEN_ELSEWHERE:
                fields: dict[str, Any] = (
                    {"party": action.party.value.upper()} if action.party else {}
                )
                if action.detail:
                    fields["detail"] = action.detail
                self.recorder.add_event(action.kind.value, **fields)
        elif isinstance(action, MakeCopy):
            self._make_copy()
        elif isinstance(action, Collect):
            stick = self._stick
            self.collector.start(stick.path if stick else None, stick.unmount if stick else None)
        return None

    def _prepare_start(self, action: StartRecording) -> StartFailed | None:
        """Before the indicator goes on: create the recording and write the presses."""
        now = self.panel.now()
        consents = [(p.value, self.clock.wall_ago(now - t), now - t) for p, t in action.consents]
        # The old recording's export window ends when a new recording begins.
        self._drop_keys("a new recording started")
        try:
            self.recorder.prepare(self.state.recipients(), consents,
                                  roles=self.config.panel.roles())
        except Exception as exc:
            return self._start_failed(exc)
        return None

    def _start(self, action: StartRecording) -> StartFailed | None:
        """The indicator is on: open the microphone."""
        try:
            if not self.recorder.prepared:
                failed = self._prepare_start(action)
                if failed is not None:
                    return failed
            self.recorder.begin()
        except Exception as exc:
            return self._start_failed(exc)
        self.report(
            "recording_started", recording_id=self.recorder.recording_id, state=self.machine_state
        )
        return None

    def _start_failed(self, exc: Exception) -> StartFailed:
        """Any failure to start is a fault the panel shows, with an error event."""
        if isinstance(exc, HardwareError):
            fault = Fault.NO_MICROPHONE
        elif isinstance(exc, AkkoordError | OSError):
            fault = Fault.STORAGE_ERROR
        else:
            log.exception("starting a recording failed")
            fault = Fault.STORAGE_ERROR
        detail = str(exc) or type(exc).__name__
        self.failed_starts += 1
        self.report("error", message=f"recording could not start: {detail}",
                    state=self.machine_state)
        if fault not in self._faults:
            self._faults.add(fault)
            self.report("fault", fault=fault.value, detail=detail)
        if fault is Fault.NO_MICROPHONE:
            self._next_mic_probe = time.monotonic() + _MIC_PROBE_S
        return StartFailed(fault, self.panel.now(), detail[:200])

    def _gap(self, gap: Gap) -> None:
        self.report(
            "gap",
            recording_id=self.recorder.recording_id,
            samples=gap.samples,
            estimated=gap.estimated,
            cause=gap.cause.label,
        )

    def _stopped(self, outcome: StopOutcome) -> None:
        """On the pump thread, once the recording is sealed (or left for recovery)."""
        manifest = outcome.result.manifest or {}
        self.report(
            "recording_stopped",
            recording_id=outcome.recording_id,
            reason=outcome.reason,
            status=outcome.result.status,
            duration_seconds=manifest.get("duration_seconds"),
            gaps=len(manifest.get("gaps", [])),
        )
        closed = self.recorder.closed_recording()
        if closed is not None:
            self._exportable = closed
            self._exportable_until = time.monotonic() + self.config.export.window_seconds
        else:
            # Left for recovery (fsync failed): recover now, so the record is closed and
            # signed without waiting for a restart.
            with contextlib.suppress(Exception):
                for r in recover_all(
                    self.state, self.identity, self.clock, self.custody, reason="storage_error"
                ):
                    self.report("recovered", recording_id=r.recording_id, action=r.action)
            self.post(ExportWindowClosed(self.panel.now()))
        reason = StopReason(outcome.reason)
        if reason is StopReason.MICROPHONE_LOST:
            self._set_fault(Fault.NO_MICROPHONE, True, "microphone lost while recording")
            self._next_mic_probe = time.monotonic() + _MIC_PROBE_S
        elif reason is StopReason.STORAGE_ERROR:
            self._set_fault(Fault.STORAGE_ERROR, True, outcome.result.error or "")
        elif reason is StopReason.DISK_FULL:
            self._set_fault(Fault.STORAGE_LOW, True, "disk full")
        if reason not in (StopReason.PARTY_A, StopReason.PARTY_B):
            self.post(RecordingEnded(reason, self.panel.now()))

    # -- copies --------------------------------------------------------------------------------

    def _make_copy(self) -> None:
        rec, stick = self._exportable, self._stick
        if rec is None or stick is None:
            why = "no recording in its export window" if rec is None else "no stick"
            self.report("copy_failed", error=why)
            self.post(CopyFinished(False, self.panel.now(), why))
            return
        self._copy_token += 1
        token = self._copy_token
        self._copy_deadline = time.monotonic() + self.config.export.timeout_seconds
        self.report("copy_started", recording_id=rec.recording_id, path=str(stick.path))

        total = int((rec.result.manifest or {}).get("duration_samples") or 0)
        progress = CopyProgress(
            total,
            lambda fraction: self._copy_progress(token, rec.recording_id, fraction),
            cancelled=lambda: token != self._copy_token,
        )

        def work() -> None:
            ok, detail = False, ""
            try:
                result = export_copy(
                    rec.path,
                    rec.keys,
                    stick.path,
                    identity=self.identity,
                    clock=self.clock,
                    custody=self.custody,
                    progress=progress,
                )
                if stick.unmount is not None:
                    stick.unmount()  # flushes the stick; only then is it safe to remove
                ok, detail = True, str(result.folder)
            except Exception as exc:
                detail = str(exc)
            if token != self._copy_token:
                return  # timed out meanwhile; the machine has moved on
            self._copy_thread = None
            if ok:
                self.report("copy_made", recording_id=rec.recording_id, path=detail)
            else:
                self.report("copy_failed", recording_id=rec.recording_id, error=detail)
            self.post(CopyFinished(ok, self.panel.now(), detail[:200]))

        self._copy_thread = threading.Thread(target=work, name="akkoord-copy", daemon=True)
        self._copy_thread.start()

    def _copy_progress(self, token: int, recording_id: str, fraction: float) -> None:
        if token != self._copy_token:
            return
        self.report("copy_progress", recording_id=recording_id, percent=round(fraction * 100))
        self.panel.show_progress(fraction, self.panel.now())

    # -- sound ---------------------------------------------------------------------------------

    def _queue_announcement(self, kind: str, what: Any) -> None:
        with contextlib.suppress(queue.Full):  # never let sound hold up the loop
            self._announce.put_nowait((kind, what))

    def _announce_loop(self) -> None:
        rate = self.config.audio.sample_rate
        while True:
            batch = [self._announce.get()]
            while True:  # take what is queued: a later prompt supersedes an earlier one
                try:
                    batch.append(self._announce.get_nowait())
                except queue.Empty:
                    break
            if any(kind == "quit" for kind, _ in batch):
                return
            last_say = max((i for i, (kind, _) in enumerate(batch) if kind == "say"), default=-1)
            for i, (kind, what) in enumerate(batch):
                if kind == "say" and i != last_say:
                    continue
                self._play(kind, what, rate)

    def _play(self, kind: str, what: Any, rate: int) -> None:
        try:
            if kind == "chime":
                self.backend.play_pcm(render_pcm(what, rate), rate)
            else:
                self.backend.play_wav(prompt_path(what, self.config.panel.language))
        except Exception as exc:  # sound is best effort; the buzzer and LEDs still work
            log.warning("playing %s %s failed: %s", kind, what, exc)
