"""Streaming container parser that never trusts its input.

`scan()` walks a container and yields, in file order, either a `ParsedFrame` (a frame whose
bytes match its own seal) or a `Damage` (a byte range that is not such a frame). After damage
it resynchronises on the next offset that holds a whole, self-consistent frame, so one flipped
bit costs one frame, not the rest of the file. Memory stays bounded by one frame
(MAX_BODY_LEN) plus a read buffer, whatever the file holds.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from akkoord.store.format import (
    FRAME_MAGIC,
    HEADER_LEN,
    KNOWN_FLAGS,
    MAX_BODY_LEN,
    SEAL_LEN,
    FrameHeader,
    Kind,
)
from akkoord.store.manifest import FrameRecord

__all__ = ["Adaptive", "Damage", "ParsedFrame", "Slot", "parse_meta", "record_of", "scan",
           "scan_ahead", "usable_cpus"]

_KINDS = {int(k) for k in Kind}
_AUDIO = int(Kind.AUDIO)  # a plain int: compared once per frame
_SCAN_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ParsedFrame:
    offset: int
    header: FrameHeader
    header_bytes: bytes
    meta_bytes: bytes
    body_digest: bytes
    seal: bytes

    @property
    def length(self) -> int:
        return self.header.frame_len


@dataclass(frozen=True, slots=True)
class Damage:
    offset: int
    length: int
    reason: str
    at_end: bool  # no whole frame follows: a torn tail, or damage in the last frames


BodyHook = Callable[[ParsedFrame, memoryview], None]


def _plausible(raw: bytes) -> FrameHeader | None:
    if len(raw) < HEADER_LEN or not raw.startswith(FRAME_MAGIC):
        return None
    h = FrameHeader.unpack(raw if len(raw) == HEADER_LEN else raw[:HEADER_LEN])
    if h.kind not in _KINDS or h.flags & ~KNOWN_FLAGS or h.body_len > MAX_BODY_LEN:
        return None
    return h


class _Buffer:
    """One read buffer for a whole scan: frames are read into it (readinto), never into a
    fresh 96 kB object per frame. It grows to the largest frame seen (≤ MAX_BODY_LEN)."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray(1 << 17)

    def view(self, n: int) -> memoryview:
        if len(self.buf) < n:
            self.buf = bytearray(n)
        return memoryview(self.buf)[:n]


def _fd_of(f: BinaryIO) -> int | None:
    """The file descriptor to read frames from with pread: no seek, no buffer of the file
    object's in between (which would copy the first 8 kB of every frame twice). None for a
    file object without one (an in-memory file): its own seek and read then."""
    try:
        return f.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _read_frame_at(
    f: BinaryIO, offset: int, size: int, candidate: bool = False, buf: _Buffer | None = None
) -> tuple[ParsedFrame | None, memoryview | None, str]:
    """A whole frame with a matching seal at `offset` and its body, or (None, None, why
    not) — or, for a frame whose seal does not match, (None, the bytes hashed, why not).

    A resync `candidate` must also be followed by the end of the file or another frame's
    magic — a check costing four bytes of reading, before any hashing."""
    fd = _fd_of(f)
    raw = _read_at(f, fd, offset, HEADER_LEN)
    if len(raw) < HEADER_LEN:
        return None, None, "incomplete frame header"
    h = _plausible(raw)
    if h is None:
        return None, None, "not a frame header"
    meta_len, body_len = h.meta_len, h.body_len
    end = offset + HEADER_LEN + meta_len + body_len + SEAL_LEN
    if end > size:
        return None, None, "incomplete frame"
    if candidate and end < size:
        after = _read_at(f, fd, end, len(FRAME_MAGIC))
        if after != FRAME_MAGIC[: len(after)]:
            return None, None, "not followed by a frame"
    # One read for meta, body and seal, into the scan's buffer; the body is a view of it,
    # valid until the next frame is read (hooks copy what they keep).
    rest_len = meta_len + body_len + SEAL_LEN
    view = (buf or _Buffer()).view(rest_len)
    if fd is None:
        f.seek(offset + HEADER_LEN)
    got = 0
    while got < rest_len:  # a short read (a pipe, a slow device): read on
        n = f.readinto(view[got:]) if fd is None else os.preadv(
            fd, (view[got:],), offset + HEADER_LEN + got)
        if not n:
            return None, None, "incomplete frame"
        got += n
    meta = bytes(view[:meta_len])
    body = view[meta_len : meta_len + body_len]
    digest = hashlib.sha256(body).digest()
    # seal_of's hash in one call: header, meta and the body's digest are small.
    seal = hashlib.sha256(raw + meta + digest).digest()
    if view[meta_len + body_len :] != seal:
        # The bytes hashed in vain come back too: a resync pays for them from its budget.
        return None, view[: meta_len + body_len], "frame bytes do not match the frame's seal"
    return ParsedFrame(offset, h, raw, meta, digest, seal), body, ""


def _next_valid(
    f: BinaryIO, start: int, size: int, budget: list[int], thorough: bool, buf: _Buffer
) -> int | None:
    """Offset of the next whole, self-consistent frame at or after `start`.

    `budget` caps the bytes hashed while resynchronising (the candidates that fail their
    seal included), so a hostile file made of fake headers costs time linear in its size,
    not quadratic: past it, the rest of the file is damage."""
    pos = start
    while pos < size and budget[0] > 0:
        pos = _skip_hole(f, pos)
        if pos >= size:
            return None
        chunk = _read_at(f, _fd_of(f), pos, _SCAN_CHUNK + len(FRAME_MAGIC) - 1)
        if not chunk:
            return None
        i = chunk.find(FRAME_MAGIC)
        while i >= 0 and budget[0] > 0:
            frame, body, _ = _read_frame_at(f, pos + i, size, not thorough, buf)
            if body is not None:
                budget[0] -= len(body)
            if frame is not None:
                return pos + i
            i = chunk.find(FRAME_MAGIC, i + 1)
        pos += _SCAN_CHUNK
    return None


def _read_at(f: BinaryIO, fd: int | None, pos: int, n: int) -> bytes:
    """Up to `n` bytes at `pos`: pread where there is a file descriptor (`fd`, _fd_of's), so
    neither the file object's buffer nor the descriptor's offset (which _skip_hole's lseek
    moves behind the buffer's back) can shift what is read."""
    if fd is None:
        f.seek(pos)
        return f.read(n)
    return os.pread(fd, n, pos)


def _skip_hole(f: BinaryIO, pos: int) -> int:
    """The next offset holding data: a sparse file's holes (zeros no one wrote) cannot hold
    a frame, so a file grown to gigabytes of holes costs nothing to search. The
    descriptor's offset is put back: a buffered file object caches where it believes it is."""
    fd = _fd_of(f)
    if fd is None:
        return pos
    try:
        here = os.lseek(fd, 0, os.SEEK_CUR)
    except OSError:
        return pos  # not seekable by descriptor: read on
    try:
        return os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return 1 << 62  # only a hole up to the end
        return pos  # no SEEK_DATA here: read on
    finally:
        os.lseek(fd, here, os.SEEK_SET)


def scan(
    f: BinaryIO, size: int, on_body: BodyHook | None = None, *, thorough: bool = False
) -> Iterator[ParsedFrame | Damage]:
    """Walk `size` bytes of `f` from the start. `on_body` sees each good frame's body bytes
    (for decryption) without the parser keeping them.

    `thorough` (recovery, on the device's own files) tries every resync candidate with no
    work cap, so no good frame after damage is ever missed and cut away."""
    budget = [1 << 62] if thorough else [4 * size + (64 << 20)]
    return _scan_from(f, size, 0, budget, thorough, _Buffer(), on_body)


def _scan_from(
    f: BinaryIO, size: int, pos: int, budget: list[int], thorough: bool, buf: _Buffer,
    on_body: BodyHook | None,
) -> Iterator[ParsedFrame | Damage]:
    """scan()'s loop from `pos`, with its resync `budget` and read buffer `buf` (scan_ahead
    carries on with it from where its worker handed over)."""
    while pos < size:
        frame, body, why = _read_frame_at(f, pos, size, False, buf)
        if frame is not None and body is not None:
            if on_body is not None:
                on_body(frame, body)
            yield frame
            pos += frame.length
            continue
        nxt = _next_valid(f, pos + 1, size, budget, thorough, buf)
        if nxt is None:
            yield Damage(pos, size - pos, why, at_end=True)
            return
        yield Damage(pos, nxt - pos, why, at_end=False)
        pos = nxt


class Slot:
    """One frame's worth of buffers in flight between scan_ahead's worker and its caller:
    the frame as read, and `out` for what `prework` makes of it (the plaintext)."""

    __slots__ = ("buf", "out")

    def __init__(self) -> None:
        self.buf = _Buffer()
        self.out = bytearray()


Prework = Callable[[ParsedFrame, memoryview, Slot], Any]
AheadHook = Callable[[ParsedFrame, memoryview, Any], None]


class _Failed:
    """What the worker raised, after the items it had read before (they come first)."""

    __slots__ = ("exc", "items")

    def __init__(self, exc: BaseException, items: list[Any]) -> None:
        self.exc, self.items = exc, items


class _Handover:
    """The worker's last word when asked to stop for the one-thread path: where it stopped."""

    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos


# The worker thread is started (and then judged by Adaptive) with two usable CPUs or more.
# With one, two threads can only take turns.
PARALLEL_MIN_CPUS = 2


class Adaptive:
    """scan_ahead's default (`parallel=None`, PARALLEL_MIN_CPUS usable): start with the worker
    thread and measure whether it gets a core of its own. After each stretch of at least
    `window_s` wall seconds it is kept only if the two threads together used `min_cores`
    cores' worth of CPU in that stretch (their own CPU clocks, `time.thread_time`: other
    threads of the process do not count); `misses` stretches in a row that fall short hand
    the rest of the file to the one-thread path, for good. One is not enough: on a quiet
    machine a single 30 ms stretch dips below the line now and then (an interrupt, a
    neighbour's burst; 1.15-1.26 cores' worth between stretches of 1.5-1.7), and stopping
    there threw away the worker for the rest of a file it was paying for. Where the second
    core is really taken every stretch falls short, so a second one costs 30 ms more.

    Why CPU over wall: the split costs 3-20 % more CPU than one thread (hand-overs, two
    caches), so it wins only where the halves really run at once; where the second core is
    taken, the threads wait on each other and CPU/wall falls to one core or less (on the
    shared two-core development machine the worker thread took 0.9-2.7x the wall time).
    The outcome never depends on it: the switch falls between two frames, and what is read
    after it is what the worker would have read (tests/test_perf_adaptive.py).

    A subclass deciding otherwise is the seam for tests; `batch` is scan_ahead's batch."""

    __slots__ = ("batch", "min_cores", "misses", "short", "window_s")

    def __init__(self, min_cores: float = 1.3, window_s: float = 0.03, batch: int = 4,
                 misses: int = 2) -> None:
        self.min_cores, self.window_s, self.batch = min_cores, window_s, batch
        self.misses = misses
        self.short = 0  # stretches in a row that fell short (one policy per scan)

    def keep(self, batches: int, wall_s: float, cpu_s: float) -> bool | None:
        """After `batches` batches, `wall_s` and `cpu_s` seconds into the current stretch:
        None to measure on, True to keep the worker (a new stretch starts), False to stop
        it. `cpu_s` is both threads' CPU."""
        if wall_s < self.window_s:
            return None
        if cpu_s >= self.min_cores * wall_s:
            self.short = 0
            return True
        self.short += 1
        return self.short < self.misses


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def scan_ahead(
    f: BinaryIO, size: int, on_body: AheadHook | None = None,
    prework: Prework | None = None, *, parallel: bool | Adaptive | None = None,
    batch: int = 4,
) -> Iterator[ParsedFrame | Damage]:
    """scan(), with `prework` (per-frame work that needs nothing but the frame: decryption)
    run before `on_body(frame, body, what prework returned)`, in file order, exactly where
    scan() calls its hook.

    `parallel=True` runs the reading, the seal's SHA-256 and `prework` on a worker thread,
    a batch or two of frames ahead, while the caller's thread runs `on_body` and whatever
    it does with the frames. hashlib, the AEAD and file reads release the GIL, so on a
    second core the two halves overlap. The items, their order and every byte are scan()'s:
    the worker runs scan's own steps, and hands frames over in batches of `batch` Slots
    from a fixed pool of two batches, each back once the caller has moved past it (memory:
    2 x `batch` frames, whatever the length; one wake-up per batch, not per frame). An
    exception in the worker is raised here, in order, after the items read before it.
    Closing the iterator (or leaving it by an exception) stops the worker and waits for it,
    so the file is the caller's again when that returns. `False`: the same steps inline,
    through one Slot. `None` (with PARALLEL_MIN_CPUS usable; else False) or an Adaptive:
    the worker, until the policy finds it does not pay; then the worker finishes the batch
    it has, stops where it is, and the rest runs inline from there, with the same resync
    budget: nothing read twice, nothing skipped."""
    policy: Adaptive | None = None
    if parallel is None:
        parallel = Adaptive() if usable_cpus() >= PARALLEL_MIN_CPUS else False
    if isinstance(parallel, Adaptive):
        policy, batch = parallel, parallel.batch
    if not parallel:
        yield from scan(f, size, _slot_hook(Slot(), prework, on_body))
        return
    ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
    free: queue.SimpleQueue[list[Slot] | None] = queue.SimpleQueue()
    for _ in range(2):
        free.put([Slot() for _ in range(max(1, batch))])
    budget = [4 * size + (64 << 20)]
    stop = threading.Event()
    worker = threading.Thread(
        target=_produce, args=(f, size, prework, ready, free, budget, stop),
        name="akkoord-scan", daemon=True,
    )
    worker.start()
    spare: list[Slot] | None = None  # set once the worker is asked to hand over
    batches, mark, worker_cpu = 0, (0.0, 0.0), 0.0
    try:
        while True:
            got = ready.get()
            if isinstance(got, _Handover):
                break
            if isinstance(got, _Failed):
                slots, items = None, got.items
            else:
                slots, items, worker_cpu = got
                if policy is not None and not batches:  # the first stretch starts here
                    mark = (time.perf_counter(), time.thread_time() + worker_cpu)
            for item in items:
                if isinstance(item, Damage):
                    yield item
                    continue
                frame, body, pre = item
                if on_body is not None:
                    on_body(frame, body, pre)
                yield frame
            if isinstance(got, _Failed):
                raise got.exc
            if slots is None:
                return
            if spare is not None:
                continue  # the worker's last batch: it is stopping, its slots stay here
            batches += 1
            verdict = None
            if policy is not None:
                now = (time.perf_counter(), time.thread_time() + worker_cpu)
                verdict = policy.keep(batches, now[0] - mark[0], now[1] - mark[1])
                if verdict:
                    mark = now
            if verdict is False:
                spare = slots
                free.put(None)  # the worker ends the batch it has, then says where it is
            else:
                free.put(slots)
        # Only a hand-over leaves the loop this way (the worker says _Handover only when
        # given None, and only a verdict gives it None before `finally`): `spare` is set.
        assert spare is not None
        worker.join()
        slot = spare[0]
        yield from _scan_from(f, size, got.pos, budget, False, slot.buf,
                              _slot_hook(slot, prework, on_body))
    finally:
        stop.set()
        budget[0] = 0  # a resync in progress gives up at once
        free.put(None)
        worker.join()


def _slot_hook(slot: Slot, prework: Prework | None, on_body: AheadHook | None) -> BodyHook:
    """scan_ahead's hooks as scan()'s: `prework` into `slot`, then `on_body` with its result."""

    def hook(frame: ParsedFrame, body: memoryview) -> None:
        pre = prework(frame, body, slot) if prework is not None else None
        if on_body is not None:
            on_body(frame, body, pre)

    return hook


def _produce(
    f: BinaryIO, size: int, prework: Prework | None, ready: queue.SimpleQueue[Any],
    free: queue.SimpleQueue[list[Slot] | None], budget: list[int], stop: threading.Event,
) -> None:
    """scan()'s loop on scan_ahead's worker thread: batches of (slots, items, this thread's
    CPU seconds) into `ready`, the last with slots None. Given None for slots, it stops
    where it is and says where (_Handover)."""
    items: list[Any] = []
    try:
        pos = 0
        scratch = _Buffer()  # resync candidates: never handed over
        while True:
            slots = free.get()
            if slots is None:
                ready.put(_Handover(pos))
                return
            if stop.is_set():
                return
            items = []
            used = 0
            while pos < size and used < len(slots) and len(items) < 2 * len(slots):
                frame, body, why = _read_frame_at(f, pos, size, False, slots[used].buf)
                if frame is not None and body is not None:
                    pre = prework(frame, body, slots[used]) if prework is not None else None
                    items.append((frame, body, pre))
                    used += 1
                    pos += frame.length
                    continue
                nxt = _next_valid(f, pos + 1, size, budget, False, scratch)
                if stop.is_set():
                    return
                if nxt is None:
                    items.append(Damage(pos, size - pos, why, at_end=True))
                    pos = size
                    break
                items.append(Damage(pos, nxt - pos, why, at_end=False))
                pos = nxt
            if pos >= size:
                ready.put((None, items, time.thread_time()))
                return
            ready.put((slots, items, time.thread_time()))
    except BaseException as exc:  # handed to the caller's thread, raised there
        ready.put(_Failed(exc, items))


def parse_meta(frame: ParsedFrame) -> tuple[dict[str, Any] | None, str | None]:
    """(meta, None) or (None, what is wrong with it). Audio frames carry no meta."""
    if frame.header.kind == _AUDIO:
        return None, None if not frame.meta_bytes else "audio frame carries metadata"
    try:
        meta = json.loads(frame.meta_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "metadata is not valid JSON"
    if not isinstance(meta, dict):
        return None, "metadata is not a JSON object"
    return meta, None


def record_of(frame: ParsedFrame, meta: dict[str, Any] | None) -> FrameRecord:
    h = frame.header
    return FrameRecord(
        h.index, h.kind, h.flags, h.start_sample, h.samples, h.audio_mac, meta, frame.seal
    )
