"""Issue 11: the adaptive default of reader.scan_ahead (`parallel=None`, or a reader.Adaptive
policy): it starts with the worker thread and, where that does not pay, hands the rest of the
file to the one-thread path. Wherever the switch falls, everything is what either forced path
gives — items, bodies, prework, reports, findings, WAV bytes, error words — nothing is read
twice or skipped, and the worker never outlives the call.

The policy is the seam: a subclass decides "does not pay" after a chosen batch (or "pays"
always), so every switch point is reached deterministically, with no clock in the test. No
timings here: the bench measures what the switch is worth.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading

import pytest

from akkoord.store import reader as reader_mod
from akkoord.store import verify as verify_mod
from akkoord.store.audio_out import decrypt_recording
from akkoord.store.format import HEADER_LEN, SEAL_LEN, FrameHeader
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import Adaptive, Damage, ParsedFrame, scan, scan_ahead
from akkoord.store.verify import verify_recording
from storekit import copy_recording, fast_tmp, frame_bytes, make_kit, record, rewrite
from test_perf_pipeline import _flip, _resealed, _tampered
from test_store_resync import GAP, STEP, _budget, _fake


class SwitchAt(Adaptive):
    """Says 'does not pay' once `at` batches are done; before that, measures on."""

    __slots__ = ("asked", "at")

    def __init__(self, at: int, batch: int = 1) -> None:
        super().__init__(batch=batch)
        self.at, self.asked = at, []

    def keep(self, batches, wall_s, cpu_s):
        self.asked.append((batches, wall_s, cpu_s))
        return None if batches < self.at else False


class Pays(Adaptive):
    __slots__ = ()

    def keep(self, batches, wall_s, cpu_s):
        return True


@pytest.fixture(scope="module")
def kit():
    root = fast_tmp()
    k = make_kit(root)
    yield k
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def base(kit):
    w, _ = record(kit, segments=10, gap_after=3)
    return w.path


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "akkoord-scan"]


def _walk_all(path, size, parallel):
    """Items, (body, prework) pairs in on_body order, and the thread each prework ran on."""
    seen, where = [], []

    def pre(fr, body, slot):
        where.append(threading.current_thread().name)
        return fr.offset, id(slot)

    with open(path, "rb") as f:
        items = list(scan_ahead(f, size, lambda fr, body, p: seen.append((bytes(body), p[0])),
                                pre, parallel=parallel))
    return items, seen, where


def _junk_file(base, tmp_path):
    """Damage before, inside and at the end, so resyncs fall on both sides of the switch;
    and a whole frame with junk on both sides, which only a thorough scan would take."""
    frames = frame_bytes(base / CONTAINER_FILE)
    assert len(frames) > 14
    d = copy_recording(base, tmp_path / "j")
    rewrite(d, [os.urandom(100), *frames[:4], b"AKF1" + os.urandom(500), *frames[4:9],
                _flip(frames[9], 300), *frames[10:12], b"ZZZZ", frames[12], b"QQQQ",
                *frames[13:-1], frames[-1][:40]])
    return d / CONTAINER_FILE


@pytest.mark.parametrize("batch", [1, 3])
def test_the_switch_at_every_position_gives_scan_s_items(base, tmp_path, batch):
    path = _junk_file(base, tmp_path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        want = list(scan(f, size))
    good = [i for i in want if isinstance(i, ParsedFrame)]
    assert any(isinstance(i, Damage) for i in want)
    forced = {p: _walk_all(path, size, p)[:2] for p in (False, True)}
    assert forced[False] == forced[True]
    assert [p for _, p in forced[False][1]] == [g.offset for g in good]
    on_worker = set()
    for at in range(1, len(want) + 2):
        policy = SwitchAt(at, batch)
        items, seen, where = _walk_all(path, size, policy)
        assert items == want, at
        assert (items, seen) == forced[False], at  # each frame once, in order, same bytes
        assert not _threads()
        n = where.count("akkoord-scan")
        assert where == ["akkoord-scan"] * n + ["MainThread"] * (len(where) - n)
        on_worker.add(n)
    # The switch really fell everywhere: from only the first batches on the worker ...
    assert min(on_worker) <= 2 * batch and max(on_worker) == len(good)
    assert len(on_worker) >= len(good) // batch - 1  # ... through every position between


def test_a_clean_file_switches_exactly_after_the_batch_the_worker_has(base):
    """Asked to stop after the caller's batch `at`, the worker finishes the one batch it
    holds (at + 1) and no more: a switch point that does not depend on timing."""
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    total = len(frame_bytes(path))
    for batch in (1, 2, 4):
        for at in range(1, total // batch):
            _, _, where = _walk_all(path, size, SwitchAt(at, batch))
            assert where.count("akkoord-scan") == min(total, (at + 1) * batch), (batch, at)


def test_the_buffer_pool_stays_the_worker_s_after_the_switch(base):
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    for batch in (1, 4):
        slots: set[int] = set()
        with open(path, "rb") as f:
            for _ in scan_ahead(f, size, None, lambda fr, body, slot, s=slots: s.add(id(slot)),
                                parallel=SwitchAt(2, batch)):
                pass
        assert len(slots) <= 2 * batch  # the one-thread rest reuses a slot of the pool


def test_the_default_policy_decides_by_cpu_against_wall():
    p = Adaptive(min_cores=1.3, window_s=0.03, misses=1)
    assert p.keep(5, 0.02, 0.04) is None  # stretch too short to judge
    assert p.keep(5, 0.05, 0.07) is True  # 1.4 cores' worth
    assert p.keep(5, 0.05, 0.06) is False  # 1.2: the second core is not really there
    p = Adaptive(min_cores=1.3, window_s=0.03, misses=1)
    assert p.keep(5, 0.05, 0.065) is True  # the threshold itself keeps it
    default = Adaptive()  # the thresholds docs/DECISIONS.md gives
    assert (default.min_cores, default.window_s, default.batch, default.misses) == (
        1.3, 0.03, 4, 2)


def test_one_stretch_that_falls_short_is_not_enough_two_in_a_row_are():
    p = Adaptive()
    assert p.keep(5, 0.05, 0.06) is True  # a dip: measured on
    assert p.keep(6, 0.02, 0.01) is None  # (too short to judge: neither counts)
    assert p.keep(7, 0.05, 0.08) is True  # paid again: the dip is forgotten
    assert p.keep(8, 0.05, 0.06) is True
    assert p.keep(9, 0.05, 0.06) is False  # twice in a row: the core is not there
    p = Adaptive(misses=3)
    assert [p.keep(b, 0.05, 0.05) for b in range(3)] == [True, True, False]


def test_pays_and_does_not_pay_deterministically(base):
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    total = len(frame_bytes(path))
    _, _, where = _walk_all(path, size, Adaptive(min_cores=0.0, window_s=0.0, batch=2))
    assert set(where) == {"akkoord-scan"} and len(where) == total
    _, _, where = _walk_all(path, size, Pays(batch=2))
    assert set(where) == {"akkoord-scan"}
    _, _, where = _walk_all(path, size, Adaptive(min_cores=1e9, window_s=0.0, batch=2,
                                                 misses=1))
    assert where.count("akkoord-scan") == 4 and len(where) == total  # judged after batch 1
    _, _, where = _walk_all(path, size, Adaptive(min_cores=1e9, window_s=0.0, batch=2))
    assert where.count("akkoord-scan") == 6 and len(where) == total  # after batches 1 and 2


def test_the_policy_sees_every_batch_and_both_threads_cpu(base):
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    policy = SwitchAt(10**6)
    _walk_all(path, size, policy)
    assert [b for b, _, _ in policy.asked] == list(range(1, len(policy.asked) + 1))
    assert policy.asked and all(w >= 0 and c >= 0 for _, w, c in policy.asked)
    assert [w for _, w, _ in policy.asked] == sorted(w for _, w, _ in policy.asked)
    assert [c for _, _, c in policy.asked] == sorted(c for _, _, c in policy.asked)
    # seconds of this walk, not of the clocks' epochs; two threads, at most two cores' worth
    # (the slack is for the clocks' granularity)
    assert all(w < 600 and c <= 2 * w + 0.5 for _, w, c in policy.asked)


def test_the_default_with_two_cpus_is_adaptive_and_with_one_inline(base, monkeypatch):
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    made = []
    real = reader_mod.Adaptive.__init__

    def spy(self, *a, **kw):
        made.append(self)
        real(self, *a, **kw)

    monkeypatch.setattr(reader_mod.Adaptive, "__init__", spy)
    for cpus in (1, 2, 4):
        monkeypatch.setattr(reader_mod, "usable_cpus", lambda n=cpus: n)
        made.clear()
        _, _, where = _walk_all(path, size, None)
        assert len(made) == (cpus >= 2)
        assert (where[0] == "akkoord-scan") == (cpus >= 2)


def _outcome(d, org, parallel, out):
    rep = verify_recording(d, org, parallel=parallel).to_json()
    res = decrypt_recording(d, org, out, force=True, parallel=parallel)
    wav = out.read_bytes() if out.exists() else None
    return rep, res.report.to_json(), res.problems, res.written, res.total_samples, wav


def test_reports_and_wavs_at_every_switch_point_on_tampered_recordings(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    w2, _ = record(kit, segments=8, gap_after=None, seed=3)
    cases = _tampered(frames, frame_bytes(w2.container))
    cases["resealed near the end"] = _resealed(frames, len(frames) - 2)
    for name, mutated in cases.items():
        d = copy_recording(base, tmp_path / name.replace(" ", "_"))
        rewrite(d, mutated)
        want = _outcome(d, kit.org, False, tmp_path / "one.wav")
        assert _outcome(d, kit.org, True, tmp_path / "two.wav") == want, name
        keyless = verify_recording(d, None, parallel=False).to_json()
        for at in range(1, len(mutated) + 2):
            got = _outcome(d, kit.org, SwitchAt(at), tmp_path / "ad.wav")
            assert got == want, (name, at)
            if at % 3 == 1:
                assert verify_recording(d, None, parallel=SwitchAt(at)).to_json() == keyless
        assert not _threads()


def test_without_force_nothing_unverified_is_left_at_any_switch(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    d = copy_recording(base, tmp_path / "t")
    rewrite(d, [*frames[:9], _flip(frames[9], 300), *frames[10:]])
    for at in range(1, len(frames) + 1):
        out = tmp_path / "out.wav"
        res = decrypt_recording(d, kit.org, out, parallel=SwitchAt(at))
        assert not res.written and not res.report.ok
        assert not out.exists() and not list(tmp_path.glob(".out.wav*"))


def test_a_read_error_is_raised_in_its_words_wherever_the_switch_falls(kit, base, tmp_path,
                                                                          monkeypatch):
    """A stick pulled at frame 7: the same error after the same frames, whether frame 7 is
    read by the worker or after the switch; the worker is gone and no WAV is left."""
    with open(base / CONTAINER_FILE, "rb") as f:
        offsets = [fr.offset for fr in scan(f, (base / CONTAINER_FILE).stat().st_size)]
    real = reader_mod._read_frame_at

    def failing(f, offset, size, candidate=False, buf=None):
        if offset == offsets[7]:
            raise OSError(errno.EIO, "Input/output error (the stick went away)")
        return real(f, offset, size, candidate, buf)

    monkeypatch.setattr(reader_mod, "_read_frame_at", failing)
    seen = []
    real_check = verify_mod._Verifier._check_body
    monkeypatch.setattr(verify_mod._Verifier, "_check_body",
                        lambda self, fr, body, pre: (seen.append(fr.header.index),
                                                     real_check(self, fr, body, pre)))
    with pytest.raises(OSError, match="the stick went away"):
        verify_recording(base, kit.org, parallel=False)
    want = list(seen)
    for at in range(1, 10):
        seen.clear()
        with pytest.raises(OSError, match="the stick went away"):
            verify_recording(base, kit.org, parallel=SwitchAt(at))
        assert seen == want, at
        out = tmp_path / "x.wav"
        with pytest.raises(OSError, match="the stick went away"):
            decrypt_recording(base, kit.org, out, parallel=SwitchAt(at))
        assert not out.exists() and not list(tmp_path.glob(".x.wav*"))
        assert not _threads()


def test_a_prework_error_comes_in_order_wherever_the_switch_falls(kit, base, monkeypatch):
    def broken(self, frame, body, slot):
        if frame.header.index == 6:
            raise ValueError("decryption broke at frame 6")
        return None

    monkeypatch.setattr(verify_mod._Verifier, "_decrypt", broken)
    seen = []
    monkeypatch.setattr(verify_mod._Verifier, "_check_body",
                        lambda self, frame, body, pre: seen.append(frame.header.index))
    for at in range(1, 9):
        seen.clear()
        with pytest.raises(ValueError, match="decryption broke at frame 6"):
            verify_recording(base, kit.org, parallel=SwitchAt(at))
        assert seen == [0, 1, 2, 3, 4, 5], at
        assert not _threads()


def test_a_file_that_shrank_ends_as_scan_ends_it(base, tmp_path):
    """Its size taken, then cut (a truncation, a stick pulled): what is missing is an
    incomplete frame at the end, read the same on both sides of the switch."""
    data = (base / CONTAINER_FILE).read_bytes()
    path = tmp_path / "c.akr"
    for cut in (len(data) // 3, len(data) - 10):
        path.write_bytes(data[:cut])
        with open(path, "rb") as f:
            want = list(scan(f, len(data)))
        assert isinstance(want[-1], Damage) and want[-1].at_end
        for at in range(1, len(want) + 2):
            assert _walk_all(path, len(data), SwitchAt(at))[0] == want, (cut, at)


@pytest.mark.parametrize("where", ["before the switch", "while the worker finishes",
                                   "after the switch"])
def test_an_interrupt_in_the_caller_stops_everything(base, where):
    """KeyboardInterrupt (Ctrl-C) raised by the caller's work at any stage of a hand-over:
    it propagates, the worker is joined, the file is the caller's again."""
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    at_frame = {"before the switch": 1, "while the worker finishes": 4,
                "after the switch": 8}[where]
    count = [0]

    def hook(fr, body, pre):
        count[0] += 1
        if count[0] == at_frame:
            raise KeyboardInterrupt

    with open(path, "rb") as f:
        with pytest.raises(KeyboardInterrupt):
            list(scan_ahead(f, size, hook, parallel=SwitchAt(3, batch=1)))
        assert not _threads()
        f.seek(0)
        assert len(list(scan(f, size))) > at_frame


def test_leaving_early_around_the_switch_frees_the_file(base):
    path = base / CONTAINER_FILE
    size = path.stat().st_size
    with open(path, "rb") as f:
        whole = list(scan(f, size))
    for taken in range(1, len(whole)):
        with open(path, "rb") as f:
            items = scan_ahead(f, size, parallel=SwitchAt(2, batch=2))
            first = [next(items) for _ in range(taken)]
            items.close()
            assert not _threads()
        assert first == whole[:taken]


def test_the_resync_budget_is_one_across_the_switch(kit, tmp_path):
    """Two stretches of fake frame headers (tests/test_store_resync.py's hostile file), the
    first searched by the worker, the second after the switch: together they spend the
    budget to the byte, so the genuine frame after the second is found with one byte to
    spare and not without it — on one thread, on the worker, and across the switch (a
    fresh budget after the switch would find it)."""
    w, _ = record(kit, 3)
    frames = frame_bytes(w.path / CONTAINER_FILE)
    body1 = FrameHeader.unpack(frames[1][:HEADER_LEN]).body_len  # what the first search finds

    def gap(spend: int) -> bytes:
        out, body, left = bytearray(b"\x55" * GAP), GAP - 200, spend
        while left > 0:
            take = min(body, left)
            o = GAP - SEAL_LEN - take - HEADER_LEN
            out[o : o + HEADER_LEN] = _fake(take)
            left -= take
            body -= STEP
        return bytes(out)

    # Each frame a search finds is followed by a frame (else it is no resync candidate).
    mid, rest = frames[1] + frames[2], b"".join(frames[3:])
    size = len(frames[0]) + GAP + len(mid) + GAP + len(rest)
    first = (_budget(size) - body1) // 2
    path = tmp_path / "c.akr"
    for spare in (1, 0):
        second = _budget(size) - body1 - first - spare
        path.write_bytes(frames[0] + gap(first) + mid + gap(second) + rest)
        assert path.stat().st_size == size
        with open(path, "rb") as f:
            want = list(scan(f, size))
        found = sum(isinstance(i, ParsedFrame) for i in want)
        assert found == (len(frames) if spare else 3), spare
        # batches of one: [frame 0] [damage, frame 1] [frame 2] [damage, frame 3] ...
        for parallel in (False, True, SwitchAt(1), SwitchAt(2), SwitchAt(5)):
            with open(path, "rb") as f:
                assert list(scan_ahead(f, size, parallel=parallel)) == want, (spare, parallel)

