"""The custody log's append and head read only the log's end (issue 11), and give exactly
what a parse of the whole log gives on every log a device can leave behind: a torn last line
cut at any byte, a tail of zero bytes, garbage after the last entry. What cannot be parsed is
still set aside next to the log before it is cut. Where the end looks odd, the whole log is
read as before. An unreadable line in the middle (bit rot or tampering only) is kept, the
entries after it too, and `akkoord custody` still reports it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from akkoord.clock import FixedClock
from akkoord.store import custody as custody_mod
from akkoord.store.custody import (
    MAX_LINE,
    ZERO_HASH,
    CustodyLog,
    CustodyView,
    _parse_lines,
    entry_hash,
    head_message,
    verify_custody_log,
)
from akkoord.store.format import canonical_json
from akkoord.store.keys import DeviceIdentity
from storekit import fast_tmp

IDENTITY = DeviceIdentity.generate()
CLOCK = FixedClock()


def _build(n: int, kind: str = "recording_started") -> bytes:
    """A log of `n` entries written by the device, as bytes."""
    log = CustodyLog(fast_tmp() / "build.log", IDENTITY, CLOCK)
    for i in range(n):
        log.append(kind, f"{i:032x}", header_seal=f"{i:064x}")
    return log.path.read_bytes()


LOG = _build(6)
LINES = LOG.splitlines(keepends=True)
BODY, LAST = b"".join(LINES[:-1]), LINES[-1]


def _old(data: bytes) -> dict:
    """What the whole-log parse (the code before issue 11) gives: next seq and prev, the log
    it leaves, what it sets aside (and where), and the head it reports."""
    lines, stop, why = _parse_lines(data)
    head = None
    if lines:
        last = lines[-1]
        head = (len(lines) - 1, last.hash.hex(), base64.b64encode(last.sig).decode(), last.entry)
    return {
        "next": (len(lines), lines[-1].hash.hex() if lines else ZERO_HASH),
        "kept": data[:stop],
        "aside": {f"case.log.tail-{stop}": data[stop:]} if why is not None else {},
        "head": head,
    }


def _now(data: bytes) -> dict:
    """The same, as CustodyLog does it now: head first (it must not cut), then one append."""
    root = fast_tmp()
    path = root / "case.log"
    path.write_bytes(data)
    log = CustodyLog(path, IDENTITY, CLOCK)
    h = log.head()
    assert path.read_bytes() == data  # reading the head changes nothing
    new = log.append("export", "e" * 32, copy_number=1)
    after = path.read_bytes()
    line = after.splitlines(keepends=True)[-1]
    assert type(new.seq) is int  # 6.0 == 6, but not in the log
    assert json.loads(line)["entry"] == new.entry and after.endswith(b"\n")
    return {
        "next": (new.seq, new.entry["prev"]),
        "kept": after[: len(after) - len(line)],
        "aside": {p.name: p.read_bytes() for p in root.glob("case.log.tail-*")},
        "head": None if h is None else (h.seq, h.hash, h.sig, h.entry),
    }


def _same(data: bytes) -> None:
    assert _now(data) == _old(data)


# -- the crash cases: exactly what the whole-log parse gives -------------------------------


@pytest.mark.parametrize("chunk", [1, 7, 300, custody_mod._TAIL_CHUNK])
def test_a_last_line_torn_at_every_byte(monkeypatch, chunk):
    """Power lost mid-append: the last entry cut after each of its bytes, read back in chunks
    smaller than a byte's worth up to the real size (every chunk boundary a line can cross)."""
    monkeypatch.setattr(custody_mod, "_TAIL_CHUNK", chunk)
    for cut in range(len(LAST) + 1):
        _same(BODY + LAST[:cut])


@pytest.mark.parametrize(
    "tail",
    [
        b"\0",
        b"\0" * 511,
        b"\0" * 4096,
        b"\0" * (custody_mod._TAIL_CHUNK * 3 + 5),  # more zeros than the first read
        b"\0" * 100 + b"\n",  # a zeroed block, then the newline of a later block
        b"\0\n\0\n\0",
    ],
)
def test_a_tail_of_zero_bytes_after_the_last_entry(tail):
    _same(LOG + tail)


@pytest.mark.parametrize("keep", [0, 1, 40, len(LAST) - 1, len(LAST)])
def test_the_last_entry_zeroed_from_some_byte_on(keep):
    """Some file systems lose the data but keep the size: the end of the last entry (and its
    newline, or not) reads as zero bytes."""
    _same(BODY + LAST[:keep] + b"\0" * (len(LAST) - keep))
    _same(BODY + LAST[:keep] + b"\0" * (len(LAST) - keep - 1) + b"\n")


@pytest.mark.parametrize(
    "garbage",
    [
        b"x",
        b"\n",
        b"\n\n\n",
        b"garbage\n",
        b"garbage\nmore garbage",
        b"null\n",
        b"[1, 2]\n",
        b'{"entry": {}, "hash": "00", "sig": ""}\n',  # a hash of the wrong length
        b'{"entry": [], "hash": "' + b"0" * 64 + b'", "sig": ""}\n',  # not an object
        b'{"entry": {}, "hash": "' + b"0" * 64 + b'", "sig": "!!"}\n',  # not base64
        b"\xff\xfe\n",  # not UTF-8
        b"[" * 100_000 + b"\n",  # deeper than the JSON parser goes
        b"y" * (MAX_LINE + 10) + b"\n",  # longer than any line
        b"y" * (MAX_LINE + 10),
        LAST[:50] + b"\n" + LAST[:90],  # two torn appends' worth
    ],
)
def test_garbage_after_the_last_entry(garbage):
    _same(LOG + garbage)


def test_nothing_but_garbage_is_set_aside_whole():
    for data in (b"garbage", b"\0" * 600, b"a\nb\nc\n", LAST[:30]):
        _same(data)


def test_an_empty_or_missing_log():
    _same(b"")
    _same(LOG[: len(LINES[0])])  # one entry
    assert CustodyLog(fast_tmp() / "none.log", IDENTITY, CLOCK).head() is None


@pytest.mark.parametrize("length", [MAX_LINE - 1, MAX_LINE])
def test_a_last_entry_padded_to_the_line_limit(length):
    """The whole-log parse takes a line of at most MAX_LINE - 1 bytes (its newline not
    counted); so must the tail read, even for a line that parses."""
    doc = LAST.rstrip(b"\n")
    padded = doc[:-1] + b" " * (length - len(doc)) + b"}\n"
    assert len(padded) == length + 1 and json.loads(padded)
    _same(BODY + padded)
    _same(BODY + padded + LAST[:20])


def test_a_torn_tail_is_set_aside_byte_for_byte_before_the_cut():
    data = LOG + LAST[:77]
    now = _now(data)
    assert now["aside"] == {f"case.log.tail-{len(LOG)}": LAST[:77]}
    assert now["kept"] == LOG and now["next"][0] == 6


# -- where the end looks odd: the whole log is read, as before ---------------------------


def _edit_last(**change) -> bytes:
    doc = json.loads(LAST)
    doc["entry"].update(change)
    return json.dumps(doc).encode() + b"\n"


@pytest.mark.parametrize(
    "last",
    [
        _edit_last(seq="5"),
        _edit_last(seq=True),
        _edit_last(seq=-1),
        _edit_last(seq=5.0),
        _edit_last(seq=None),
        _edit_last(prev=None),
        _edit_last(seq=99),  # entry changed, hash not: does not match
        _edit_last(type="recording_deleted"),
    ],
    ids=["seq-str", "seq-bool", "seq-negative", "seq-float", "seq-null", "prev-null",
         "seq-changed", "content-changed"],
)
def test_a_last_entry_that_does_not_hold_together_is_read_in_full(last):
    data = BODY + last
    assert _old(data)["next"][0] == 6  # what the full parse counts, not the entry's seq
    _same(data)
    _same(data + b"\0" * 30)


def test_a_replayed_or_out_of_place_last_entry_is_read_in_full():
    """Hash and signature fine, but the entry is not the one after its neighbour: the tail
    cannot say how many entries precede it, so the full parse does."""
    _same(LOG + LINES[2])  # entry 2 again at the end: its seq does not follow entry 5's
    _same(LINES[3])  # entry 3 at the very start of the file
    _same(LINES[1])
    _same(LINES[3] + b"garbage")
    _same(LINES[0] + LINES[0])  # entry 0 again, not at the start
    # same device, another log: does not chain
    other = _build(6, "recording_closed").splitlines(keepends=True)
    _same(BODY + other[5])


def _signed(entry: dict) -> bytes:
    """A line the device key really signed (an insider with the key, or a bug): its hash and
    signature are fine, only its place in the log can be wrong."""
    digest = entry_hash(entry)
    seq = entry["seq"] if type(entry["seq"]) is int and entry["seq"] >= 0 else 0
    sig = IDENTITY.sign(head_message(seq, digest))
    return canonical_json(
        {"entry": entry, "hash": digest.hex(), "sig": base64.b64encode(sig).decode()}) + b"\n"


@pytest.mark.parametrize("seq", [5.0, "5", True, -1, 9, 0])
def test_a_signed_last_entry_with_an_odd_seq_is_read_in_full(seq):
    entry = dict(json.loads(LAST)["entry"], seq=seq)
    _same(BODY + _signed(entry))


def test_the_last_two_entries_renumbered_are_read_in_full():
    """Their seqs follow each other and their prev links hold, but neither hash matches."""
    lines = list(LINES)
    for i, seq in ((4, 14), (5, 15)):
        doc = json.loads(lines[i])
        doc["entry"]["seq"] = seq
        lines[i] = json.dumps(doc).encode() + b"\n"
    _same(b"".join(lines))


def test_a_last_entry_whose_prev_is_not_the_line_before_is_read_in_full():
    """Entries 1 to 3 cut out, and the last entry spliced from another log of this device:
    the seqs still follow each other, only the prev link tells."""
    other = _build(6, "recording_closed").splitlines(keepends=True)
    _same(LINES[0] + LINES[4] + other[5])


def test_the_fallback_is_what_decides_on_an_odd_tail(monkeypatch):
    """The cases above really take the full read: without it the tail would have guessed."""
    calls = []
    full = CustodyLog._full_tail_state

    def spy(self, fd, size):
        calls.append(size)
        return full(self, fd, size)

    monkeypatch.setattr(CustodyLog, "_full_tail_state", spy)
    _same(LOG + LAST[:10])
    assert calls == []  # a torn tail is a plain tail read
    _same(BODY + _edit_last(seq=99))
    assert calls == [len(BODY) + len(_edit_last(seq=99))]


# -- an unreadable line in the middle: kept, the entries after it too, still reported -------


@pytest.mark.parametrize("bad", [1, 4])
def test_an_unreadable_line_in_the_middle_is_kept_and_reported(bad):
    """Only bit rot or tampering makes one. Cutting there would move the genuine entries
    after it out of the log (and out of every collection); instead the log continues after
    its last entry and the full check still names the line."""
    lines = list(LINES)
    lines[bad] = lines[bad].replace(b'{"entry"', b'{"entrx"', 1)
    data = b"".join(lines)
    offset = sum(len(x) for x in lines[:bad])
    root = fast_tmp()
    path = root / "mid.log"
    path.write_bytes(data)
    log = CustodyLog(path, IDENTITY, CLOCK)
    assert log.head().entry == json.loads(LAST)["entry"]
    new = log.append("export", "e" * 32, copy_number=1)
    assert (new.seq, new.entry["prev"]) == (6, json.loads(LAST)["hash"])
    assert path.read_bytes()[: len(data)] == data  # nothing cut
    assert list(root.glob("mid.log.tail-*")) == []
    assert log.head() == new
    count, findings = verify_custody_log(path, IDENTITY.public)
    assert count == bad
    assert findings == [f"{path}: unreadable entry at byte {offset}; "
                        f"{path.stat().st_size - offset} bytes after the last whole entry"]
    # Recovery and the state check still believe only the entries before it (FORMAT §11.2).
    assert len(CustodyView.read(path, IDENTITY.public).entries) == bad


@pytest.mark.parametrize("bad", [LINES[0].replace(b'"sig"', b'"sag"'), b"\n"])
@pytest.mark.parametrize("then", [0, 1])
def test_an_unreadable_first_line_is_kept_like_any_other(bad, then):
    root = fast_tmp()
    path = root / "first.log"
    path.write_bytes(bad + LINES[then])
    new = CustodyLog(path, IDENTITY, CLOCK).append("export", "e" * 32)
    assert (new.seq, new.entry["prev"]) == (then + 1, json.loads(LINES[then])["hash"])
    assert path.read_bytes().startswith(bad + LINES[then])
    assert list(root.glob("first.log.tail-*")) == []


@pytest.mark.parametrize("seq", [-5, True, 2.0, "3"])
def test_after_an_unreadable_line_an_odd_seq_is_still_read_in_full(seq):
    """No line before it to compare with: its own seq must still be a plain count."""
    entry = dict(json.loads(LINES[1])["entry"], seq=seq)
    _same(b"garbage\n" + _signed(entry))


def test_an_unreadable_middle_line_and_a_torn_tail_cut_only_the_tail():
    lines = list(LINES)
    lines[2] = b"\0" * len(lines[2])
    data = b"".join(lines) + LAST[:33]
    root = fast_tmp()
    path = root / "mid.log"
    path.write_bytes(data)
    new = CustodyLog(path, IDENTITY, CLOCK).append("export", "e" * 32)
    assert new.seq == 6
    assert path.read_bytes().startswith(b"".join(lines))
    assert {p.name: p.read_bytes() for p in root.glob("mid.log.tail-*")} == {
        f"mid.log.tail-{len(data) - 33}": LAST[:33]}


def test_akkoord_custody_still_reports_an_unreadable_middle_line(tmp_path, capsys, monkeypatch):
    from akkoord.cli import main
    from storekit import make_kit

    kit = make_kit(tmp_path)
    for i in range(3):
        kit.custody.append("console_auth", command=f"c{i}")
    path = kit.state.custody_path
    lines = path.read_bytes().splitlines(keepends=True)
    offset = sum(len(x) for x in lines[:-2])
    lines[-2] = lines[-2][:20] + b"#" + lines[-2][21:]
    path.write_bytes(b"".join(lines))
    kit.custody.append("console_auth", command="after")
    monkeypatch.setenv("AKKOORD_STATE", str(kit.state.root))
    assert main(["custody", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert any(f"unreadable entry at byte {offset}" in f for f in doc["findings"])
    assert path.read_bytes().count(b'"command":"after"') == 1


# -- several writers ---------------------------------------------------------------------


def test_head_waits_for_an_append_in_progress():
    """An append holds the lock from its read of the tail to its fsync: head() in another
    process (the console's `head`, a recording's start) sees the log before or after it."""
    import fcntl
    import threading

    path = fast_tmp() / "wait.log"
    path.write_bytes(LOG + LAST[:100])  # as if an append were half-way
    got = []
    with open(path, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        reader = threading.Thread(target=lambda: got.append(
            CustodyLog(path, IDENTITY, CLOCK).head()))
        reader.start()
        reader.join(0.2)
        assert reader.is_alive() and got == []
        with open(path, "r+b") as f:  # the append finishes its line
            f.seek(len(LOG))
            f.write(_signed(dict(json.loads(LAST)["entry"], seq=6,
                                 prev=json.loads(LAST)["hash"])))
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
        reader.join(10)
    assert got[0].seq == 6


def test_a_second_instance_sees_the_first_ones_appends():
    path = fast_tmp() / "two.log"
    a, b = CustodyLog(path, IDENTITY, CLOCK), CustodyLog(path, IDENTITY, CLOCK)
    for i in range(5):
        assert a.append("console_auth", command="a").seq == 2 * i
        assert b.head().seq == 2 * i
        assert b.append("console_auth", command="b").seq == 2 * i + 1
        assert a.head().seq == 2 * i + 1
    assert verify_custody_log(path, IDENTITY.public) == (10, [])


WRITER = """
import sys
from pathlib import Path
from akkoord.clock import FixedClock
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import DeviceIdentity
log = CustodyLog(Path(sys.argv[1]), DeviceIdentity.load(Path(sys.argv[2])), FixedClock())
for _ in range(int(sys.argv[3])):
    log.append("console_auth", command=sys.argv[4])
"""


def test_appends_from_several_processes_are_one_chain():
    """Daemon, console and export service append to one log: the lock serialises them, and
    each append reads the tail the others left."""
    root = fast_tmp()
    IDENTITY.save(root / "keys")
    path = root / "shared.log"
    path.write_bytes(LOG)
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(root / "keys"), "25",
                          f"p{i}"])
        for i in range(3)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert verify_custody_log(path, IDENTITY.public) == (6 + 75, [])
    assert list(root.glob("shared.log.tail-*")) == []


def test_a_head_read_while_a_writer_ignoring_the_lock_cuts_the_tail(monkeypatch):
    """head() holds a shared lock, so appends wait; a writer that ignores the lock may still
    cut the file between head()'s size and its reads. The short read is noticed and the log
    read again whole, never misaligned."""
    path = fast_tmp() / "race.log"
    path.write_bytes(LOG + LAST[:200])
    scan = custody_mod._scan_tail

    def cut_meanwhile(r):
        r._grow()  # the torn tail's last 64 bytes are read, then the cut comes
        with open(path, "r+b") as f:
            f.truncate(len(LOG))  # what the other process's append does first
        return scan(r)

    monkeypatch.setattr(custody_mod, "_scan_tail", cut_meanwhile)
    monkeypatch.setattr(custody_mod, "_TAIL_CHUNK", 64)  # the cut falls inside the reads
    head = CustodyLog(path, IDENTITY, CLOCK).head()
    assert (head.seq, head.entry) == (5, json.loads(LAST)["entry"])


def test_an_append_meeting_a_writer_that_ignores_the_lock_reads_the_log_whole(monkeypatch):
    path = fast_tmp() / "race.log"
    path.write_bytes(LOG + LAST[:200])
    scan = custody_mod._scan_tail

    def cut_meanwhile(r):
        r._grow()
        with open(path, "r+b") as f:
            f.truncate(len(LOG))
        return scan(r)

    monkeypatch.setattr(custody_mod, "_scan_tail", cut_meanwhile)
    monkeypatch.setattr(custody_mod, "_TAIL_CHUNK", 64)
    new = CustodyLog(path, IDENTITY, CLOCK).append("export", "e" * 32)
    assert (new.seq, new.entry["prev"]) == (6, json.loads(LAST)["hash"])
    assert verify_custody_log(path, IDENTITY.public) == (7, [])


# -- what is read --------------------------------------------------------------------------


def test_append_and_head_read_the_end_of_the_log_not_the_log(monkeypatch):
    """Counted in bytes, not timed (the time is `akkoord bench`'s custody_*_large_vs_small):
    on a log of 3,000 entries (1.6 MB) an append and a head read the first chunk from the
    end, a torn tail or not; the full check still reads it all."""
    import os

    from akkoord.store.custody_bench import build_log

    path = fast_tmp() / "big.log"
    build_log(path, 3000, IDENTITY, CLOCK)
    size = path.stat().st_size
    read = []
    pread = os.pread

    def counting(fd, n, offset):
        data = pread(fd, n, offset)
        read.append(len(data))
        return data

    monkeypatch.setattr(os, "pread", counting)
    log = CustodyLog(path, IDENTITY, CLOCK)
    assert log.head().seq == 2999
    assert log.append("export", "e" * 32).seq == 3000
    with open(path, "ab") as f:
        f.write(LAST[:100])  # torn
    assert log.head().seq == 3000
    assert log.append("export", "e" * 32).seq == 3001
    assert sum(read) <= 4 * custody_mod._TAIL_CHUNK < size // 20
