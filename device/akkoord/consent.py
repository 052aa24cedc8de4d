"""The consent state machine: pure data in, pure data out.

``step(machine, event) -> (machine, actions)``. No I/O and no clock calls: every event carries
its time ``t`` (monotonic seconds, from the adapter's clock). Adapters turn GPIO edges and
daemon notices into events and carry out the actions (LEDs, buzzer, speech, recorder, copy).

States (``State``) and the allowed changes between them (``ALLOWED``)::

              fresh press, no fault               other party's fresh press
  +-------+ ------------------------> +---------+ ------------------------> +-----------+
  | READY |                           | WAITING |                           | RECORDING |
  +-------+ <------------------------ +---------+                           +-----------+
   ^  ^  ^   window expired, button     ^     |                                   |
   |  |  |   held, fault                |     | the same three, when a      press after the
   |  |  |                 fresh press, |     | copy is available           refractory interval,
   |  |  |                 no fault     |     v                             or RecordingEnded
   |  |  |  ExportWindowClosed       +---------+                                 |
   |  |  +-------------------------- | STOPPED | <-------------------------------+
   |  |                              +---------+ <-----------------------------+
   |  |        stick offered (idle,    |     ^  stick removed,                 |
   |  |        after refractory)       v     |  offer timed out                | CopyFinished
   |  |  ExportWindowClosed     +--------------+   both pressed   +---------+  |
   |  +------------------------ | COPY_CONFIRM | ---------------> | COPYING | -+
   |                            +--------------+                  +---------+
   |    CopyFinished, export window already closed                     |
   +-------------------------------------------------------------------+

Collection (the organisation's stick, issue 9) hangs off READY only: no recording and no copy
window, so a collection can never be mistaken for, or interleave with, a party's copy::

          collection stick offered           one press (either button)
  +-------+ ---------------------> +-----------------+ -------------------> +------------+
  | READY |                        | COLLECT_CONFIRM |                      | COLLECTING |
  +-------+ <--------------------- +-----------------+                      +------------+
     ^       stick removed, offer timed out                                       |
     +----------------------------------------------------------------------------+
                          CollectionFinished (ok or failed)
RECORDING -> READY (not drawn): ``StartFailed``, the daemon could not begin the recording;
nothing was written or announced, and the fault it raised is now shown.

"Idle" is READY or STOPPED: STOPPED exactly when the daemon still holds a recording in its
export window (``copy_available``), so the idle state a flow returns to is derived, never stored
twice.

Rules the table encodes (see ``hardware/SIGNALS.md`` for what people see and hear):

* Consent is a fresh press edge: a ``Pressed`` of a button we know to be up. A button held at
  boot is stuck until released and never consents. A button held ``hold_limit_s`` or longer
  becomes stuck (a fault) until released: like any fault it blocks starting and cancels a
  pending consent; in COPY_CONFIRM it withdraws only the holder's press. The same party
  pressing twice is still one party.
* Faults (an overlay set, not a state) block starting: a press gives the fault tone and prompt
  and nothing else; a fault raised while WAITING cancels the pending consent. They clear with
  ``FaultCleared`` (stuck buttons: on release).
* Refractory interval (``refractory_s``, default 0.6 s) after every start and stop: presses in
  it are not acted on. Contact bounce that slips past the debounce filter, or a nervous double
  press by the second party, would otherwise stop the recording it just started; the other
  party's simultaneous stop press would otherwise open a new consent flow. 0.6 s is longer
  than a double press (typically < 0.5 s) yet short enough that a deliberate stop is only a
  second press away - withdrawal stays effortless. A press ignored during a recording still
  becomes a timeline event, so nobody can later say "I pressed stop" without the record showing
  it.
* The recording indicator (status LED red, solid - used for nothing else) is switched on by a
  ``Leds`` action placed *before* ``StartRecording`` in the same step, and switched off by a
  ``Leds`` action placed *after* ``StopRecording``; the daemon seals the last audio while it
  handles ``StopRecording``. ``capture_allowed`` is true only in RECORDING, where the indicator
  is always on. A daemon-initiated stop (``RecordingEnded``) arrives after the daemon sealed.
* A USB stick inserted while WAITING or RECORDING is remembered (``Stick.PENDING``) and offered
  once the device is idle and out of the refractory interval, so a copy can follow a recording
  without pulling and reinserting the stick, and a stop press can never count as a copy press.
  One stick at a time; inserting again while an offer or copy runs is not acted on.
* A *collection stick* (``CollectionStickInserted``: the daemon has verified its signed token
  before posting it) is remembered as ``Stick.COLLECT_PENDING`` and offered only in READY, out
  of the refractory interval. One press of either button confirms (it moves only ciphertext the
  organisation already holds the keys to, so it needs no two-party consent); faults do not
  block it, since "storage low" is exactly when collection is needed. While COLLECTING, presses
  are not acted on and ``CollectionProgress`` moves the progress shown on the button lights;
  ``CollectionFinished`` returns to READY with the stick shown done or failed, as after a copy.

Timers (window, hold limit, copy offer) are checked on *every* event before it is handled, so
the outcome does not depend on how often ``Tick`` arrives: a press at ``since + window_s`` is
too late even if no tick came in between. Time never runs backwards inside the machine: an
event stamped earlier than the last one is handled at the last one's time.

Timeline events: every press that counts, window expiry, withdrawals, start, stop and reason,
ignored presses during a recording and copy outcomes. The daemon appends those that occur while
a recording is open to that recording; consents before the start travel in
``StartRecording.consents`` so they become the recording's first frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum, StrEnum

from akkoord.prompts import PromptId
from akkoord.sounds import ChimeName

__all__ = [
    "ALLOWED",
    "BLINK",
    "BREATHE",
    "DIM",
    "EVENT_TYPES",
    "FAST_BLINK",
    "FAULT_PRIORITY",
    "FAULT_SIGNALS",
    "IDLE",
    "INDICATOR",
    "NO_REACTION",
    "OFF",
    "ON",
    "SLOW_PULSE",
    "STUCK_FAULTS",
    "TRANSITIONS",
    "Action",
    "Button",
    "Chime",
    "Collect",
    "CollectionFinished",
    "CollectionProgress",
    "CollectionStickInserted",
    "Colour",
    "CopyFinished",
    "Event",
    "ExportWindowClosed",
    "Fault",
    "FaultCleared",
    "FaultRaised",
    "Leds",
    "Log",
    "Machine",
    "MakeCopy",
    "Party",
    "Pattern",
    "Pressed",
    "RecordingEnded",
    "Released",
    "Say",
    "StartFailed",
    "StartRecording",
    "State",
    "StatusLight",
    "Stick",
    "StickInserted",
    "StickRemoved",
    "StopReason",
    "StopRecording",
    "Tick",
    "TimelineEvent",
    "TimelineKind",
    "Timing",
    "blink_code",
    "capture_allowed",
    "indicator_on",
    "leds_for",
    "start",
    "step",
]


# --------------------------------------------------------------------------- vocabulary


class State(StrEnum):
    READY = "ready"
    WAITING = "waiting"
    RECORDING = "recording"
    STOPPED = "stopped"
    COPY_CONFIRM = "copy_confirm"
    COPYING = "copying"
    COLLECT_CONFIRM = "collect_confirm"
    COLLECTING = "collecting"


IDLE = frozenset({State.READY, State.STOPPED})


class Party(StrEnum):
    A = "a"
    B = "b"

    @property
    def other(self) -> Party:
        return Party.B if self is Party.A else Party.A


class Fault(StrEnum):
    NO_MICROPHONE = "no_microphone"
    STORAGE_LOW = "storage_low"
    CLOCK_UNSET = "clock_unset"
    NO_KEYS = "no_keys"
    STORAGE_ERROR = "storage_error"
    POWER_LOST = "power_lost"
    STUCK_BUTTON_A = "stuck_button_a"
    STUCK_BUTTON_B = "stuck_button_b"


_STUCK: dict[Party, Fault] = {Party.A: Fault.STUCK_BUTTON_A, Party.B: Fault.STUCK_BUTTON_B}
#: Raised and cleared by the machine itself from button levels, never by FaultRaised.
STUCK_FAULTS = frozenset(_STUCK.values())


class StopReason(StrEnum):
    """Why a recording stopped; the same names the store writes into its stop frame."""

    PARTY_A = "party_a"
    PARTY_B = "party_b"
    SHUTDOWN = "shutdown"
    DISK_FULL = "disk_full"
    MICROPHONE_LOST = "microphone_lost"
    STORAGE_ERROR = "storage_error"


_PARTY_STOP: dict[Party, StopReason] = {Party.A: StopReason.PARTY_A, Party.B: StopReason.PARTY_B}


class Stick(StrEnum):
    """What the machine knows about the (single) USB stick."""

    ABSENT = "absent"
    PENDING = "pending"  # inserted, not yet offered (device was busy)
    SPENT = "spent"  # offered, declined or nothing to copy: reinsert for another try
    DONE = "done"  # copy written, flushed and unmounted: safe to remove
    FAILED = "failed"  # copy failed: shown until removed
    COLLECT_PENDING = "collect_pending"  # a collection stick, not yet offered (not READY)


class TimelineKind(StrEnum):
    CONSENT = "consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    WINDOW_EXPIRED = "window_expired"
    START = "start"
    STOP = "stop"
    IGNORED_PRESS = "ignored_press"
    COPY_PRESS = "copy_press"
    COPY_REQUESTED = "copy_requested"
    COPY_DONE = "copy_done"
    COPY_FAILED = "copy_failed"


# --------------------------------------------------------------------------- light patterns


@dataclass(frozen=True)
class Pattern:
    """A repeating brightness waveform: ``steps`` of (level 0..1, seconds).

    With ``smooth`` the level glides (cosine) from each step's level to the next one's over the
    step's duration; otherwise it holds. Evaluated by :meth:`level`, so rendering is a pure
    function of time that tests can check without threads.
    """

    name: str
    steps: tuple[tuple[float, float], ...]
    smooth: bool = False

    def __post_init__(self) -> None:
        if not self.steps or any(d <= 0 or not 0 <= lv <= 1 for lv, d in self.steps):
            raise ValueError(f"pattern {self.name!r}: steps need levels 0..1, durations > 0")

    @property
    def period(self) -> float:
        return sum(d for _, d in self.steps)

    def level(self, elapsed: float) -> float:
        """Brightness ``elapsed`` seconds after the pattern started."""
        x = max(0.0, elapsed) % self.period
        for i, (lv, d) in enumerate(self.steps):
            if x < d:
                if not self.smooth:
                    return lv
                nxt = self.steps[(i + 1) % len(self.steps)][0]
                return lv + (nxt - lv) * (1 - math.cos(math.pi * x / d)) / 2
            x -= d
        return self.steps[-1][0]  # float rounding at the very end of the period


OFF = Pattern("off", ((0.0, 1.0),))
ON = Pattern("on", ((1.0, 1.0),))
DIM = Pattern("dim", ((0.15, 1.0),))
BLINK = Pattern("blink", ((1.0, 0.5), (0.0, 0.5)))
FAST_BLINK = Pattern("fast_blink", ((1.0, 0.1), (0.0, 0.1)))
# Recording: a slow "breathing" pulse that never goes fully dark, so the buttons read as
# "live" rather than "off" at every instant.
SLOW_PULSE = Pattern("slow_pulse", ((0.1, 1.5), (1.0, 1.5)), smooth=True)
BREATHE = Pattern("breathe", ((0.2, 0.75), (1.0, 0.75)), smooth=True)


def blink_code(count: int) -> Pattern:
    """``count`` short flashes, then a pause: a fault a technician can count."""
    flashes = ((1.0, 0.2), (0.0, 0.3)) * count
    return Pattern(f"code_{count}", (*flashes[:-1], (0.0, 1.5)))


class Colour(Enum):
    RED = (1.0, 0.0, 0.0)
    GREEN = (0.0, 1.0, 0.0)
    BLUE = (0.0, 0.0, 1.0)
    AMBER = (1.0, 0.3, 0.0)
    CYAN = (0.0, 1.0, 1.0)


@dataclass(frozen=True)
class StatusLight:
    colour: Colour
    pattern: Pattern

    def rgb(self, elapsed: float) -> tuple[float, float, float]:
        lv = self.pattern.level(elapsed)
        r, g, b = self.colour.value
        return (r * lv, g * lv, b * lv)


#: The recording indicator. Solid red means "audio is being captured" and nothing else.
INDICATOR = StatusLight(Colour.RED, ON)

#: Per fault, what the status light shows when idle (data: SIGNALS.md documents it).
FAULT_SIGNALS: dict[Fault, StatusLight] = {
    Fault.NO_MICROPHONE: StatusLight(Colour.RED, blink_code(1)),
    Fault.STORAGE_LOW: StatusLight(Colour.RED, blink_code(2)),
    Fault.CLOCK_UNSET: StatusLight(Colour.RED, blink_code(3)),
    Fault.NO_KEYS: StatusLight(Colour.RED, blink_code(4)),
    Fault.STORAGE_ERROR: StatusLight(Colour.RED, blink_code(5)),
    Fault.POWER_LOST: StatusLight(Colour.RED, blink_code(6)),
    # The stuck button itself flickers too, which says which one.
    Fault.STUCK_BUTTON_A: StatusLight(Colour.RED, FAST_BLINK),
    Fault.STUCK_BUTTON_B: StatusLight(Colour.RED, FAST_BLINK),
}

#: With several faults the status light shows the first present: what to fix first.
FAULT_PRIORITY: tuple[Fault, ...] = (
    Fault.STORAGE_ERROR,
    Fault.NO_KEYS,
    Fault.POWER_LOST,
    Fault.NO_MICROPHONE,
    Fault.STORAGE_LOW,
    Fault.CLOCK_UNSET,
    Fault.STUCK_BUTTON_A,
    Fault.STUCK_BUTTON_B,
)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Pressed:
    party: Party
    t: float


@dataclass(frozen=True, slots=True)
class Released:
    party: Party
    t: float


@dataclass(frozen=True, slots=True)
class Tick:
    t: float


@dataclass(frozen=True, slots=True)
class FaultRaised:
    fault: Fault
    t: float

    def __post_init__(self) -> None:
        if self.fault in STUCK_FAULTS:
            raise ValueError(f"{self.fault} is derived from button levels, not raised")


@dataclass(frozen=True, slots=True)
class FaultCleared:
    fault: Fault
    t: float

    def __post_init__(self) -> None:
        if self.fault in STUCK_FAULTS:
            raise ValueError(f"{self.fault} clears when the button is released")


@dataclass(frozen=True, slots=True)
class RecordingEnded:
    """The daemon stopped and sealed the recording itself (shutdown, disk full, ...)."""

    reason: StopReason
    t: float

    def __post_init__(self) -> None:
        if self.reason in _PARTY_STOP.values():
            raise ValueError("a party's stop is a Pressed event, not RecordingEnded")


@dataclass(frozen=True, slots=True)
class StartFailed:
    """The daemon could not begin the recording StartRecording asked for (nothing is being
    written): back to idle with the fault, never announced as started."""

    fault: Fault
    t: float
    detail: str = ""

    def __post_init__(self) -> None:
        if self.fault in STUCK_FAULTS:
            raise ValueError(f"{self.fault} is derived from button levels, not raised")


@dataclass(frozen=True, slots=True)
class StickInserted:
    t: float


@dataclass(frozen=True, slots=True)
class StickRemoved:
    t: float


@dataclass(frozen=True, slots=True)
class CopyFinished:
    """The daemon finished a copy: written, read back, verified, flushed, unmounted (or not)."""

    ok: bool
    t: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CollectionStickInserted:
    """A stick carrying a collection token the daemon verified (signed, valid, for us)."""

    t: float


@dataclass(frozen=True, slots=True)
class CollectionProgress:
    """Recordings written and checked so far, of ``total``."""

    done: int
    total: int
    t: float


@dataclass(frozen=True, slots=True)
class CollectionFinished:
    """The collection package is written, read back and checked (or not), and unmounted."""

    ok: bool
    t: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ExportWindowClosed:
    """No recording is exportable any more (content keys dropped)."""

    t: float


Event = (
    Pressed
    | Released
    | Tick
    | FaultRaised
    | FaultCleared
    | RecordingEnded
    | StartFailed
    | StickInserted
    | StickRemoved
    | CopyFinished
    | ExportWindowClosed
    | CollectionStickInserted
    | CollectionProgress
    | CollectionFinished
)

EVENT_TYPES: tuple[type, ...] = (
    Pressed,
    Released,
    Tick,
    FaultRaised,
    FaultCleared,
    RecordingEnded,
    StartFailed,
    StickInserted,
    StickRemoved,
    CopyFinished,
    ExportWindowClosed,
    CollectionStickInserted,
    CollectionProgress,
    CollectionFinished,
)


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Leds:
    button_a: Pattern
    button_b: Pattern
    status: StatusLight


@dataclass(frozen=True, slots=True)
class Chime:
    name: ChimeName


@dataclass(frozen=True, slots=True)
class Say:
    prompt: PromptId


@dataclass(frozen=True, slots=True)
class StartRecording:
    """Open capture now; ``consents`` are the two parties' presses, in order."""

    consents: tuple[tuple[Party, float], ...]
    t: float


@dataclass(frozen=True, slots=True)
class StopRecording:
    """Stop capture and seal the last audio before returning (the indicator goes off next)."""

    reason: StopReason
    t: float


@dataclass(frozen=True, slots=True)
class MakeCopy:
    """Both parties confirmed: write one copy to the stick; answer with CopyFinished."""

    t: float


@dataclass(frozen=True, slots=True)
class Collect:
    """Confirmed: write the collection package; answer with CollectionFinished."""

    t: float


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    kind: TimelineKind
    party: Party | None
    t: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Log:
    """A state change, ``old -> new (reason)``; ``old == new`` for faults, presses, stick."""

    old: State
    new: State
    reason: str

    def __str__(self) -> str:
        return f"{self.old} -> {self.new} ({self.reason})"


Action = (
    Leds | Chime | Say | StartRecording | StopRecording | MakeCopy | Collect | TimelineEvent | Log
)


# --------------------------------------------------------------------------- machine state


@dataclass(frozen=True)
class Timing:
    window_s: float = 20.0
    hold_limit_s: float = 5.0
    refractory_s: float = 0.6
    copy_confirm_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("window_s", "hold_limit_s", "copy_confirm_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.refractory_s < min(self.window_s, self.hold_limit_s):
            raise ValueError(
                f"refractory_s must be >= 0 and shorter than window_s and hold_limit_s, "
                f"got {self.refractory_s}"
            )


@dataclass(frozen=True)
class Button:
    down: bool = False
    since: float = 0.0
    stuck: bool = False


@dataclass(frozen=True)
class Machine:
    """Everything the machine knows. Build one with :func:`start`."""

    timing: Timing
    state: State = State.READY
    since: float = 0.0  # when ``state`` was entered
    now: float = 0.0  # latest event time seen
    presses: tuple[tuple[Party, float], ...] = ()  # pending consents or copy confirmations
    a: Button = Button()
    b: Button = Button()
    faults: frozenset[Fault] = frozenset()
    refractory_until: float = -math.inf
    copy_available: bool = False
    stick: Stick = Stick.ABSENT
    progress: float = 0.0  # COLLECTING: share of the package written and checked, 0..1

    def button(self, party: Party) -> Button:
        return self.a if party is Party.A else self.b

    def pressed(self, party: Party) -> bool:
        return any(p is party for p, _ in self.presses)

    @property
    def idle_state(self) -> State:
        return State.STOPPED if self.copy_available else State.READY


def capture_allowed(machine: Machine | State) -> bool:
    """True only where audio may be captured; the indicator is on in exactly these states."""
    state = machine.state if isinstance(machine, Machine) else machine
    return state is State.RECORDING


def indicator_on(leds: Leds) -> bool:
    return leds.status == INDICATOR


def leds_for(m: Machine) -> Leds:
    """What the LEDs show in a machine state (a pure function: no hidden display state)."""
    if m.state is State.RECORDING:
        return Leds(SLOW_PULSE, SLOW_PULSE, INDICATOR)

    def button(party: Party, waiting: Pattern) -> Pattern:
        if m.button(party).stuck:
            return FAST_BLINK
        if m.pressed(party):
            return ON
        return waiting

    if m.state is State.WAITING:
        return Leds(button(Party.A, BLINK), button(Party.B, BLINK), StatusLight(Colour.GREEN, ON))
    if m.state is State.COPY_CONFIRM:
        return Leds(button(Party.A, BLINK), button(Party.B, BLINK), StatusLight(Colour.BLUE, BLINK))
    if m.state is State.COPYING:
        return Leds(OFF, OFF, StatusLight(Colour.BLUE, BREATHE))
    if m.state is State.COLLECT_CONFIRM:
        return Leds(BLINK, BLINK, StatusLight(Colour.CYAN, BLINK))
    if m.state is State.COLLECTING:
        # Progress on the buttons: A lights at half way, B when the last recording is checked.
        half, whole = m.progress >= 0.5, m.progress >= 1.0
        status = StatusLight(Colour.CYAN, BREATHE)
        return Leds(ON if half else BLINK, ON if whole else BLINK, status)
    # idle
    shown = next((f for f in FAULT_PRIORITY if f in m.faults), None)
    if shown is not None:
        status = FAULT_SIGNALS[shown]
    elif m.stick is Stick.DONE:
        status = StatusLight(Colour.CYAN, ON)  # copy made: safe to remove the stick
    elif m.stick is Stick.FAILED:
        status = StatusLight(Colour.AMBER, BLINK)
    elif m.state is State.STOPPED:
        status = StatusLight(Colour.BLUE, ON)
    else:
        status = StatusLight(Colour.GREEN, DIM)
    return Leds(button(Party.A, OFF), button(Party.B, OFF), status)


# --------------------------------------------------------------------------- transitions

#: Every allowed change of ``State``; anything else is a bug and raises.
ALLOWED: frozenset[tuple[State, State]] = frozenset(
    {
        (State.READY, State.WAITING),
        (State.STOPPED, State.WAITING),
        (State.WAITING, State.READY),
        (State.WAITING, State.STOPPED),
        (State.WAITING, State.RECORDING),
        (State.RECORDING, State.STOPPED),
        (State.RECORDING, State.READY),  # StartFailed: nothing was recorded
        (State.STOPPED, State.READY),
        (State.STOPPED, State.COPY_CONFIRM),
        (State.COPY_CONFIRM, State.COPYING),
        (State.COPY_CONFIRM, State.STOPPED),
        (State.COPY_CONFIRM, State.READY),
        (State.COPYING, State.STOPPED),
        (State.COPYING, State.READY),
        (State.READY, State.COLLECT_CONFIRM),
        (State.COLLECT_CONFIRM, State.COLLECTING),
        (State.COLLECT_CONFIRM, State.READY),
        (State.COLLECTING, State.READY),
    }
)


class _Step:
    """Accumulates one step: the evolving machine and the ordered actions."""

    def __init__(self, m: Machine, shown: Leds | None) -> None:
        self.m = m
        self.out: list[Action] = []
        self.shown = shown
        self.fresh = False  # set for Pressed: was the button up before this edge?

    def emit(self, *actions: Action) -> None:
        self.out.extend(actions)

    def goto(self, new: State, reason: str, **changes: object) -> None:
        old = self.m.state
        if (old, new) not in ALLOWED:
            raise AssertionError(f"consent machine bug: {old} -> {new} is not allowed ({reason})")
        self.out.append(Log(old, new, reason))
        self.m = replace(self.m, state=new, since=self.m.now, **changes)  # type: ignore[arg-type]

    def note(self, reason: str, **changes: object) -> None:
        """A change that keeps the state (faults, presses, stick): logged as old == new."""
        self.out.append(Log(self.m.state, self.m.state, reason))
        self.m = replace(self.m, **changes)  # type: ignore[arg-type]

    def set(self, **changes: object) -> None:
        """Bookkeeping not worth a log line (button levels)."""
        self.m = replace(self.m, **changes)  # type: ignore[arg-type]

    def show_leds(self) -> None:
        leds = leds_for(self.m)
        if leds != self.shown:
            self.out.append(leds)
            self.shown = leds


def _set_button(ctx: _Step, party: Party, button: Button) -> None:
    ctx.set(**{party.value: button})


def _fault_sound(ctx: _Step) -> None:
    ctx.emit(Chime(ChimeName.FAULT))


# -- timers, checked before every event ------------------------------------------------


def _check_holds(ctx: _Step) -> None:
    for party in Party:
        m = ctx.m
        btn = m.button(party)
        if not btn.down or btn.stuck or m.now - btn.since < m.timing.hold_limit_s:
            continue
        fault = _STUCK[party]
        ctx.note(
            f"fault raised: {fault} (held {m.timing.hold_limit_s:g} s)",
            faults=m.faults | {fault},
        )
        _set_button(ctx, party, replace(btn, stuck=True))
        _fault_sound(ctx)
        if ctx.m.state is State.WAITING:
            # Like any fault, a stuck button cancels the pending consent - whoever holds it.
            for pending, _ in ctx.m.presses:
                why = "button held" if pending is party else f"fault {fault}"
                ctx.emit(TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, pending, m.now, why))
            reason = f"consent cancelled: button {party} held"
            ctx.goto(ctx.m.idle_state, reason, presses=())
        elif ctx.m.pressed(party):  # COPY_CONFIRM: only the holder's own press goes
            remaining = tuple(p for p in ctx.m.presses if p[0] is not party)
            ctx.emit(TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, party, m.now, "button held"))
            ctx.note(f"press of party {party} withdrawn: button held", presses=remaining)


def _check_timers(ctx: _Step) -> None:
    _check_holds(ctx)
    m = ctx.m
    if m.state is State.WAITING and m.now >= m.since + m.timing.window_s:
        party = m.presses[0][0] if m.presses else None
        ctx.emit(TimelineEvent(TimelineKind.WINDOW_EXPIRED, party, m.now))
        ctx.goto(m.idle_state, "window expired", presses=())
        ctx.emit(Chime(ChimeName.WINDOW_EXPIRED), Say(PromptId.WINDOW_EXPIRED))
    elif m.state is State.COPY_CONFIRM and m.now >= m.since + m.timing.copy_confirm_s:
        ctx.goto(State.STOPPED, "copy offer timed out", presses=())
        ctx.emit(Chime(ChimeName.WINDOW_EXPIRED))
    elif m.state is State.COLLECT_CONFIRM and m.now >= m.since + m.timing.copy_confirm_s:
        ctx.goto(State.READY, "collection offer timed out", stick=Stick.SPENT)
        ctx.emit(Chime(ChimeName.WINDOW_EXPIRED))


def _track_levels(ctx: _Step, event: Event) -> None:
    """Button levels, whatever the state: consent needs an edge, release clears stuck."""
    if isinstance(event, Pressed):
        btn = ctx.m.button(event.party)
        ctx.fresh = not btn.down
        if ctx.fresh:  # a repeated Pressed without a release must not restart the hold timer
            _set_button(ctx, event.party, Button(down=True, since=ctx.m.now, stuck=btn.stuck))
    elif isinstance(event, Released):
        btn = ctx.m.button(event.party)
        _set_button(ctx, event.party, Button())
        if btn.stuck:
            fault = _STUCK[event.party]
            ctx.note(f"fault cleared: {fault} (released)", faults=ctx.m.faults - {fault})


# -- handlers: (ctx, event) -> None, chosen by (state, event type) ----------------------


def _fault_prompt(m: Machine) -> PromptId:
    """What a blocked press hears: "collect recordings" when a full store is what blocks
    (retention never deletes what the organisation has not receipted), else the general
    fault prompt that points at the light."""
    shown = next((f for f in FAULT_PRIORITY if f in m.faults), None)
    return PromptId.COLLECT_RECORDINGS if shown is Fault.STORAGE_LOW else PromptId.FAULT


def _press_idle(ctx: _Step, ev: Pressed) -> None:
    m = ctx.m
    if not ctx.fresh or m.now < m.refractory_until:
        return
    if m.faults:
        ctx.emit(Chime(ChimeName.FAULT), Say(_fault_prompt(m)))
        return
    ctx.emit(TimelineEvent(TimelineKind.CONSENT, ev.party, m.now))
    ctx.goto(State.WAITING, f"party {ev.party} pressed", presses=((ev.party, m.now),))
    ctx.emit(Chime(ChimeName.CONSENT), Say(PromptId.WAITING_FOR_OTHER))


def _press_waiting(ctx: _Step, ev: Pressed) -> None:
    m = ctx.m
    if not ctx.fresh or m.pressed(ev.party):
        return  # a held button, or the same party again: still one party
    if m.faults:  # unreachable today (faults cancel WAITING); kept as a guard
        ctx.emit(Chime(ChimeName.FAULT), Say(PromptId.FAULT))
        return
    consents = (*m.presses, (ev.party, m.now))
    ctx.emit(TimelineEvent(TimelineKind.CONSENT, ev.party, m.now))
    ctx.goto(
        State.RECORDING,
        f"party {ev.party} pressed: both parties consented",
        presses=(),
        refractory_until=m.now + m.timing.refractory_s,
    )
    ctx.show_leds()  # the indicator goes on BEFORE capture may start
    ctx.emit(
        StartRecording(consents, m.now),
        TimelineEvent(TimelineKind.START, None, m.now),
        Chime(ChimeName.RECORDING_START),
        Say(PromptId.RECORDING_STARTED),
    )


def _press_recording(ctx: _Step, ev: Pressed) -> None:
    m = ctx.m
    if m.now < m.refractory_until:
        ctx.emit(
            TimelineEvent(
                TimelineKind.IGNORED_PRESS,
                ev.party,
                m.now,
                f"within {m.timing.refractory_s:g} s of the start (bounce guard)",
            )
        )
        return
    # Any press edge stops, fresh or not: stopping is always the safe side.
    reason = _PARTY_STOP[ev.party]
    ctx.emit(
        TimelineEvent(TimelineKind.STOP, ev.party, m.now, reason.value),
        StopRecording(reason, m.now),
    )
    ctx.goto(
        State.STOPPED,
        f"party {ev.party} pressed: stop",
        copy_available=True,
        refractory_until=m.now + m.timing.refractory_s,
    )
    ctx.emit(Chime(ChimeName.RECORDING_STOP), Say(PromptId.RECORDING_STOPPED))


def _press_copy_confirm(ctx: _Step, ev: Pressed) -> None:
    m = ctx.m
    if not ctx.fresh or m.now < m.refractory_until or m.pressed(ev.party):
        return
    presses = (*m.presses, (ev.party, m.now))
    ctx.emit(TimelineEvent(TimelineKind.COPY_PRESS, ev.party, m.now), Chime(ChimeName.CONSENT))
    if len(presses) < 2:
        ctx.note(f"copy confirmed by party {ev.party}", presses=presses)
        return
    ctx.goto(State.COPYING, "both parties confirmed the copy", presses=())
    ctx.emit(MakeCopy(m.now), TimelineEvent(TimelineKind.COPY_REQUESTED, None, m.now))


def _recording_ended(ctx: _Step, ev: RecordingEnded) -> None:
    m = ctx.m
    ctx.emit(TimelineEvent(TimelineKind.STOP, None, m.now, ev.reason.value))
    ctx.goto(
        State.STOPPED,
        f"recording ended: {ev.reason}",
        copy_available=True,
        refractory_until=m.now + m.timing.refractory_s,
    )
    ctx.emit(Chime(ChimeName.RECORDING_STOP), Say(PromptId.RECORDING_STOPPED))


def _start_failed(ctx: _Step, ev: StartFailed) -> None:
    # Nothing was written: no stop, no copy of it to offer; the old export window ended
    # with the start (the daemon dropped its keys).
    m = ctx.m
    detail = f": {ev.detail}" if ev.detail else ""
    ctx.goto(
        State.READY,
        f"recording could not start ({ev.fault}){detail}",
        faults=m.faults | {ev.fault},
        copy_available=False,
        refractory_until=m.now + m.timing.refractory_s,
    )
    ctx.emit(Chime(ChimeName.FAULT), Say(PromptId.FAULT))


def _fault_raised(ctx: _Step, ev: FaultRaised) -> None:
    if ev.fault in ctx.m.faults:
        return
    ctx.note(f"fault raised: {ev.fault}", faults=ctx.m.faults | {ev.fault})
    _fault_sound(ctx)


def _fault_raised_waiting(ctx: _Step, ev: FaultRaised) -> None:
    if ev.fault in ctx.m.faults:
        return
    _fault_raised(ctx, ev)
    m = ctx.m
    for party, _ in m.presses:
        ctx.emit(TimelineEvent(TimelineKind.CONSENT_WITHDRAWN, party, m.now, f"fault {ev.fault}"))
    ctx.goto(m.idle_state, f"fault {ev.fault}: consent cancelled", presses=())


def _fault_cleared(ctx: _Step, ev: FaultCleared) -> None:
    if ev.fault in ctx.m.faults:
        ctx.note(f"fault cleared: {ev.fault}", faults=ctx.m.faults - {ev.fault})


def _offer_stick(ctx: _Step) -> None:
    """Offer a pending stick once idle and out of the refractory interval."""
    m = ctx.m
    if m.stick is Stick.COLLECT_PENDING and m.state is State.READY and m.now >= m.refractory_until:
        ctx.goto(State.COLLECT_CONFIRM, "collection stick: collection offered", stick=Stick.SPENT)
        ctx.emit(Chime(ChimeName.COPY_CONFIRM), Say(PromptId.COLLECT_CONFIRM))
        return
    if m.state not in IDLE or m.stick is not Stick.PENDING or m.now < m.refractory_until:
        return
    if m.state is State.STOPPED:
        ctx.goto(State.COPY_CONFIRM, "stick inserted: copy offered", stick=Stick.SPENT, presses=())
        ctx.emit(Chime(ChimeName.COPY_CONFIRM), Say(PromptId.COPY_CONFIRM))
    else:
        ctx.note("stick inserted: no recording to copy", stick=Stick.SPENT)
        ctx.emit(Chime(ChimeName.NO_RECORDING), Say(PromptId.NO_RECORDING))


def _tick_idle(ctx: _Step, ev: Tick) -> None:
    _offer_stick(ctx)


def _stick_inserted(ctx: _Step, ev: StickInserted) -> None:
    if ctx.m.stick is not Stick.PENDING:
        busy = "" if ctx.m.state in IDLE else " (remembered until idle)"
        ctx.note(f"stick inserted{busy}", stick=Stick.PENDING)
    _offer_stick(ctx)


def _stick_removed(ctx: _Step, ev: StickRemoved) -> None:
    if ctx.m.stick is not Stick.ABSENT:
        ctx.note("stick removed", stick=Stick.ABSENT)


def _collection_stick(ctx: _Step, ev: CollectionStickInserted) -> None:
    if ctx.m.stick is not Stick.COLLECT_PENDING:
        busy = "" if ctx.m.state is State.READY else " (remembered until idle)"
        ctx.note(f"collection stick inserted{busy}", stick=Stick.COLLECT_PENDING)
    _offer_stick(ctx)


def _press_collect_confirm(ctx: _Step, ev: Pressed) -> None:
    m = ctx.m
    if not ctx.fresh or m.now < m.refractory_until:
        return
    ctx.goto(State.COLLECTING, f"collection confirmed by party {ev.party}", progress=0.0)
    ctx.emit(Collect(m.now), Chime(ChimeName.CONSENT))


def _collection_progress(ctx: _Step, ev: CollectionProgress) -> None:
    share = min(1.0, max(0.0, ev.done / ev.total)) if ev.total > 0 else 1.0
    ctx.set(progress=share)


def _collection_finished(ctx: _Step, ev: CollectionFinished) -> None:
    m = ctx.m
    outcome = Stick.DONE if ev.ok else Stick.FAILED
    stick = outcome if m.stick is not Stick.ABSENT else Stick.ABSENT
    detail = f": {ev.detail}" if ev.detail else ""
    ctx.goto(State.READY, f"collection {'done' if ev.ok else 'failed'}{detail}", stick=stick,
             progress=0.0)
    if ev.ok:
        ctx.emit(Chime(ChimeName.COPY_DONE), Say(PromptId.COLLECT_DONE))
    else:
        ctx.emit(Chime(ChimeName.COPY_FAILED), Say(PromptId.COLLECT_FAILED))


def _stick_removed_collect_confirm(ctx: _Step, ev: StickRemoved) -> None:
    ctx.goto(State.READY, "stick removed: collection offer withdrawn", stick=Stick.ABSENT)


def _stick_removed_confirm(ctx: _Step, ev: StickRemoved) -> None:
    ctx.goto(State.STOPPED, "stick removed: copy offer withdrawn", stick=Stick.ABSENT, presses=())


def _copy_finished(ctx: _Step, ev: CopyFinished) -> None:
    m = ctx.m
    outcome = Stick.DONE if ev.ok else Stick.FAILED
    stick = outcome if m.stick is not Stick.ABSENT else Stick.ABSENT
    detail = f": {ev.detail}" if ev.detail else ""
    ctx.goto(m.idle_state, f"copy {'made' if ev.ok else 'failed'}{detail}", stick=stick)
    if ev.ok:
        ctx.emit(
            TimelineEvent(TimelineKind.COPY_DONE, None, m.now, ev.detail),
            Chime(ChimeName.COPY_DONE),
            Say(PromptId.COPY_MADE),
        )
    else:
        ctx.emit(
            TimelineEvent(TimelineKind.COPY_FAILED, None, m.now, ev.detail),
            Chime(ChimeName.COPY_FAILED),
            Say(PromptId.COPY_FAILED),
        )


def _export_closed_idle(ctx: _Step, ev: ExportWindowClosed) -> None:
    ctx.goto(State.READY, "export window closed", copy_available=False)


def _export_closed_confirm(ctx: _Step, ev: ExportWindowClosed) -> None:
    ctx.goto(
        State.READY, "export window closed: copy offer withdrawn", copy_available=False, presses=()
    )


def _export_closed_busy(ctx: _Step, ev: ExportWindowClosed) -> None:
    if ctx.m.copy_available:
        ctx.note("export window closed", copy_available=False)


Handler = Callable[[_Step, Event], None]

_S = State
#: The transition table: (state, event type) -> handler. Button levels and timers are handled
#: before it for every event (see module docstring); pairs in NO_REACTION need nothing more.
TRANSITIONS: dict[tuple[State, type], Handler] = {  # type: ignore[dict-item]
    (_S.READY, Pressed): _press_idle,
    (_S.STOPPED, Pressed): _press_idle,
    (_S.WAITING, Pressed): _press_waiting,
    (_S.RECORDING, Pressed): _press_recording,
    (_S.COPY_CONFIRM, Pressed): _press_copy_confirm,
    (_S.READY, Tick): _tick_idle,
    (_S.STOPPED, Tick): _tick_idle,
    (_S.RECORDING, RecordingEnded): _recording_ended,
    (_S.RECORDING, StartFailed): _start_failed,
    **{(s, FaultRaised): _fault_raised for s in State if s is not _S.WAITING},
    (_S.WAITING, FaultRaised): _fault_raised_waiting,
    **{(s, FaultCleared): _fault_cleared for s in State},
    (_S.READY, StickInserted): _stick_inserted,
    (_S.STOPPED, StickInserted): _stick_inserted,
    (_S.WAITING, StickInserted): _stick_inserted,
    (_S.RECORDING, StickInserted): _stick_inserted,
    **{(s, StickRemoved): _stick_removed for s in State
       if s not in (_S.COPY_CONFIRM, _S.COLLECT_CONFIRM)},
    (_S.COPY_CONFIRM, StickRemoved): _stick_removed_confirm,
    (_S.COLLECT_CONFIRM, StickRemoved): _stick_removed_collect_confirm,
    **{(s, CollectionStickInserted): _collection_stick
       for s in (_S.READY, _S.STOPPED, _S.WAITING, _S.RECORDING)},
    (_S.COLLECT_CONFIRM, Pressed): _press_collect_confirm,
    (_S.COLLECTING, CollectionProgress): _collection_progress,
    (_S.COLLECTING, CollectionFinished): _collection_finished,
    (_S.COPYING, CopyFinished): _copy_finished,
    (_S.STOPPED, ExportWindowClosed): _export_closed_idle,
    (_S.COPY_CONFIRM, ExportWindowClosed): _export_closed_confirm,
    (_S.READY, ExportWindowClosed): _export_closed_busy,
    (_S.WAITING, ExportWindowClosed): _export_closed_busy,
    (_S.RECORDING, ExportWindowClosed): _export_closed_busy,
    (_S.COPYING, ExportWindowClosed): _export_closed_busy,
}

#: Pairs with no state-specific reaction, listed so the table is visibly complete.
NO_REACTION: frozenset[tuple[State, type]] = frozenset(
    {(s, Released) for s in State}  # levels only: handled before the table
    | {(s, Tick) for s in (_S.WAITING, _S.RECORDING, _S.COPY_CONFIRM, _S.COPYING)}  # timers
    | {(_S.COPYING, Pressed)}  # a copy is being written; nothing to decide
    | {(s, RecordingEnded) for s in State if s is not _S.RECORDING}  # nothing to end
    | {(s, StartFailed) for s in State if s is not _S.RECORDING}  # nothing was started
    | {(_S.COPY_CONFIRM, StickInserted), (_S.COPYING, StickInserted)}  # one stick at a time
    | {(s, CopyFinished) for s in State if s is not _S.COPYING}  # stale answer
    | {(s, Tick) for s in (_S.COLLECT_CONFIRM, _S.COLLECTING)}  # timers
    | {(_S.COLLECTING, Pressed)}  # the package is being written; nothing to decide
    | {(s, ExportWindowClosed) for s in (_S.COLLECT_CONFIRM, _S.COLLECTING)}  # READY: none open
    | {(s, StickInserted) for s in (_S.COLLECT_CONFIRM, _S.COLLECTING)}  # one stick at a time
    | {(s, CollectionStickInserted)
       for s in (_S.COPY_CONFIRM, _S.COPYING, _S.COLLECT_CONFIRM, _S.COLLECTING)}
    | {(s, CollectionProgress) for s in State if s is not _S.COLLECTING}  # stale
    | {(s, CollectionFinished) for s in State if s is not _S.COLLECTING}  # stale
)


# --------------------------------------------------------------------------- entry points


def start(
    timing: Timing,
    t: float,
    *,
    a_down: bool = False,
    b_down: bool = False,
    faults: Iterable[Fault] = (),
) -> tuple[Machine, list[Action]]:
    """The machine at boot. A button already down is stuck until released: never consent."""
    ctx = _Step(Machine(timing=timing, since=t, now=t), shown=None)
    ctx.out.append(Log(State.READY, State.READY, "boot"))
    for party, down in ((Party.A, a_down), (Party.B, b_down)):
        if down:
            fault = _STUCK[party]
            _set_button(ctx, party, Button(down=True, since=t, stuck=True))
            ctx.note(f"fault raised: {fault} (held at boot)", faults=ctx.m.faults | {fault})
    for fault in faults:
        if fault in STUCK_FAULTS:
            raise ValueError(f"{fault} is derived from button levels, not raised")
        if fault not in ctx.m.faults:
            ctx.note(f"fault raised: {fault}", faults=ctx.m.faults | {fault})
    if ctx.m.faults:
        _fault_sound(ctx)
    ctx.show_leds()
    return ctx.m, ctx.out


def step(machine: Machine, event: Event) -> tuple[Machine, list[Action]]:
    """Handle one event. Returns the new machine and the actions, in the order to perform."""
    m = replace(machine, now=max(event.t, machine.now))
    ctx = _Step(m, shown=leds_for(machine))
    _check_timers(ctx)
    _track_levels(ctx, event)
    handler = TRANSITIONS.get((ctx.m.state, type(event)))
    if handler is not None:
        handler(ctx, event)
    ctx.show_leds()
    return ctx.m, ctx.out
