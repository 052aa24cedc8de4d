"""Issue 11: verify and decrypt with the reading, hashing and decryption on a worker thread
(reader.scan_ahead, `parallel=True`) give exactly what the one-thread path gives — reports,
findings and their locations, the WAV — on genuine and tampered recordings; a worker that
fails raises its own error in the caller; the worker never outlives the call; one CPU is
enough; memory does not follow the length.

No timings here (the bench compares the two paths); these tests pin behaviour.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from akkoord.store import reader as reader_mod
from akkoord.store import verify as verify_mod
from akkoord.store.audio_out import decrypt_recording
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.reader import scan, scan_ahead
from akkoord.store.verify import verify_recording
from storekit import copy_recording, fast_tmp, frame_bytes, make_kit, record, rewrite


@pytest.fixture(scope="module")
def kit():
    root = fast_tmp()
    k = make_kit(root)
    yield k
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def base(kit):
    w, _ = record(kit, segments=24, gap_after=5)
    return w.path


def _flip(frame: bytes, at: int) -> bytes:
    b = bytearray(frame)
    b[at % len(b)] ^= 0x04
    return bytes(b)


def _resealed(frames: list[bytes], k: int) -> list[bytes]:
    """Frame k's body changed and every seal after it recomputed (write access, no key):
    the chain holds, the AEAD tags do not."""
    from akkoord.store.format import HEADER_LEN, FrameHeader, finish_frame

    out, prev = frames[:k], FrameHeader.unpack(frames[k][:HEADER_LEN]).prev
    for i, fb in enumerate(frames[k:], start=k):
        h = FrameHeader.unpack(fb[:HEADER_LEN])
        meta = fb[HEADER_LEN : HEADER_LEN + h.meta_len]
        body = bytearray(fb[HEADER_LEN + h.meta_len : HEADER_LEN + h.meta_len + h.body_len])
        if i == k:
            body[0] ^= 0xFF
        hb = FrameHeader(h.kind, h.flags, h.meta_len, h.index, h.samples, h.start_sample,
                         h.body_len, h.recording_id, prev, h.audio_mac).pack()
        frame, prev = finish_frame(hb, meta, bytes(body))
        out.append(frame)
    return out


def _tampered(frames: list[bytes], foreign: list[bytes]) -> dict[str, list[bytes]]:
    return {
        "resealed": _resealed(frames, 9),
        "untouched": frames,
        "flipped body byte": [*frames[:9], _flip(frames[9], 300), *frames[10:]],
        "flipped header byte": [*frames[:9], _flip(frames[9], 60), *frames[10:]],
        "cut frame": frames[:7] + frames[8:],
        "cut run": frames[:5] + frames[11:],
        "reordered": [*frames[:8], frames[10], frames[9], frames[8], *frames[11:]],
        "duplicated": [*frames[:12], frames[11], *frames[12:]],
        "truncated last frame": [*frames[:-1], frames[-1][: len(frames[-1]) // 2]],
        "last frames gone": frames[:-3],
        "junk between": [*frames[:6], b"AKF1" + bytes(90) + os.urandom(200), *frames[6:]],
        "foreign frame": [*frames[:10], foreign[4], *frames[10:]],
        "no header": frames[1:],
    }


def _outcome(d, org, parallel, out=None):
    rep = verify_recording(d, org, parallel=parallel).to_json()
    if out is None:
        return rep
    res = decrypt_recording(d, org, out, force=True, parallel=parallel)
    wav = out.read_bytes() if out.exists() else None
    return rep, res.report.to_json(), res.problems, res.written, res.total_samples, wav


def test_worker_thread_and_one_thread_agree_on_tampered_recordings(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    w2, _ = record(kit, segments=8, gap_after=None)
    codes = set()
    for name, mutated in _tampered(frames, frame_bytes(w2.container)).items():
        d = copy_recording(base, tmp_path / name.replace(" ", "_"))
        rewrite(d, mutated)
        for org in (None, kit.org):
            one = _outcome(d, org, False, tmp_path / "one.wav" if org else None)
            two = _outcome(d, org, True, tmp_path / "two.wav" if org else None)
            assert one == two, name
            again = _outcome(d, org, True, tmp_path / "three.wav" if org else None)
            assert again == two, name  # deterministic
            rep = one[0] if org else one
            codes |= {f["code"] for f in rep["findings"]}
            assert rep["ok"] == (name == "untouched"), (name, rep["findings"])
    # The cases reached every kind of finding they were built for.
    assert {"damaged", "truncated", "missing_frame", "reordered_frame", "duplicate_frame",
            "foreign_frame", "bad_tag", "bad_checkpoint"} <= codes


def test_without_force_nothing_unverified_is_left_either_way(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    d = copy_recording(base, tmp_path / "t")
    rewrite(d, [*frames[:9], _flip(frames[9], 300), *frames[10:]])
    for parallel in (False, True):
        out = tmp_path / f"out-{parallel}.wav"
        res = decrypt_recording(d, kit.org, out, parallel=parallel)
        assert not res.written and not res.report.ok
        assert not out.exists() and not list(tmp_path.glob(f".out-{parallel}.wav*"))


def _scan_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "akkoord-scan"]


def test_a_read_error_in_the_worker_is_raised_with_its_message(kit, base, tmp_path,
                                                                monkeypatch):
    real = reader_mod._read_frame_at
    calls = [0]

    def failing(f, offset, size, candidate=False, buf=None):
        calls[0] += 1
        if calls[0] == 7:
            raise OSError(errno.EIO, "Input/output error (the stick went away)")
        return real(f, offset, size, candidate, buf)

    monkeypatch.setattr(reader_mod, "_read_frame_at", failing)
    with pytest.raises(OSError, match="the stick went away"):
        verify_recording(base, kit.org, parallel=True)
    assert not _scan_threads()
    calls[0] = 0
    out = tmp_path / "x.wav"
    with pytest.raises(OSError, match="the stick went away"):
        decrypt_recording(base, kit.org, out, parallel=True)
    assert not out.exists() and not list(tmp_path.glob(".x.wav*"))
    assert not _scan_threads()


def test_an_error_in_the_worker_s_decryption_is_raised_in_the_caller(kit, base, monkeypatch):
    def broken(self, frame, body, slot):
        if frame.header.index == 6:
            raise ValueError("decryption broke at frame 6")
        return None

    monkeypatch.setattr(verify_mod._Verifier, "_decrypt", broken)
    seen = []
    monkeypatch.setattr(verify_mod._Verifier, "_check_body",
                        lambda self, frame, body, pre: seen.append(frame.header.index))
    with pytest.raises(ValueError, match="decryption broke at frame 6"):
        verify_recording(base, kit.org, parallel=True)
    assert seen == [0, 1, 2, 3, 4, 5]  # the frames read before it came first, in order
    assert not _scan_threads()


def test_leaving_early_stops_the_worker_and_frees_the_file(base):
    container = base / CONTAINER_FILE
    size = container.stat().st_size
    with open(container, "rb") as f:
        items = scan_ahead(f, size, parallel=True, batch=2)
        first = [next(items) for _ in range(3)]
        items.close()
        assert not _scan_threads()
        f.seek(0)
        whole = list(scan(f, size))  # the file is ours again, at any position
    assert [i.offset for i in first] == [i.offset for i in whole[:3]]


@pytest.mark.parametrize("batch", [1, 3, 64])
def test_scan_ahead_yields_what_scan_yields(kit, base, tmp_path, batch):
    frames = frame_bytes(base / CONTAINER_FILE)
    d = copy_recording(base, tmp_path / "j")
    rewrite(d, [os.urandom(100), *frames[:6], b"AKF1" + os.urandom(500), *frames[6:-1],
                frames[-1][:40]])
    container = d / CONTAINER_FILE
    size = container.stat().st_size
    bodies_one, bodies_two = [], []
    with open(container, "rb") as f:
        one = list(scan(f, size, lambda fr, body: bodies_one.append(bytes(body))))
    for parallel in (False, True):
        bodies_two.clear()
        with open(container, "rb") as f:
            two = list(scan_ahead(f, size, lambda fr, body, pre: bodies_two.append(
                (bytes(body), pre)), lambda fr, body, slot: fr.offset, parallel=parallel,
                batch=batch))
        assert two == one
        assert [b for b, _ in bodies_two] == bodies_one
        assert [p for _, p in bodies_two] == [i.offset for i in one if hasattr(i, "seal")]


_CHILD = """
import json, os, sys
from pathlib import Path
from akkoord.store.keys import OrgPrivateKey
from akkoord.store.audio_out import decrypt_recording
from akkoord.store.verify import verify_recording
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
if sys.argv[4] == "one-cpu":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
key = OrgPrivateKey.load(Path(sys.argv[2]))
rec = Path(sys.argv[1])
rep = verify_recording(rec, key, parallel=True).to_json()
dec = decrypt_recording(rec, key, Path(sys.argv[3]), parallel=True)
print(json.dumps({"report": rep, "written": dec.written, "rss": hwm(),
                  "cpus": len(os.sched_getaffinity(0))}))
"""


def _child(rec, keyfile, out, mode):
    done = subprocess.run([sys.executable, "-c", _CHILD, str(rec), str(keyfile), str(out), mode],
                          check=True, capture_output=True, text=True, timeout=300)
    return json.loads(done.stdout)


def test_the_worker_thread_on_one_cpu_gives_the_same_report(kit, base, tmp_path):
    keyfile = tmp_path / "org.key"
    keyfile.write_bytes(kit.org.dumps())
    frames = frame_bytes(base / CONTAINER_FILE)
    d = copy_recording(base, tmp_path / "r")
    rewrite(d, [*frames[:8], frames[9], frames[8], *frames[10:]])
    for rec in (base, d):
        doc = _child(rec, keyfile, tmp_path / "one.wav", "one-cpu")
        assert doc["cpus"] == 1
        assert doc["report"] == verify_recording(rec, kit.org, parallel=False).to_json()
        assert doc["written"] == doc["report"]["ok"]


def test_worker_thread_memory_does_not_follow_the_frame_count(kit, tmp_path):
    """Peak RSS in a fresh process, 600 and 12,600 frames, verify and decrypt through the
    worker: its pool is a fixed number of frames, whatever the length."""
    keyfile = tmp_path / "org.key"
    keyfile.write_bytes(kit.org.dumps())
    peaks = {}
    for n in (600, 12600):
        w = kit.writer(seg=16, sync=False)
        chunk = os.urandom(32)
        for i in range(n):
            w.add_audio(i.to_bytes(4, "big") + chunk[4:])
        w.close("test")
        doc = _child(w.path, keyfile, tmp_path / f"{n}.wav", "all")
        assert doc["report"]["ok"] and doc["written"]
        peaks[n] = doc["rss"]
    growth = (peaks[12600] - peaks[600]) / 12000
    assert growth < 400, f"{growth:.0f} bytes of peak RSS per frame"


def test_a_failing_write_in_the_caller_stops_the_worker(kit, base, tmp_path, monkeypatch):
    """The disk fills while decrypt writes (the caller's side): the error names the file
    asked for, the temporary is gone, and so is the worker."""
    from akkoord.errors import StorageError
    from akkoord.store import audio_out

    calls = [0]
    real = os.pwrite

    def full(fd, data, offset):
        calls[0] += 1
        if calls[0] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(audio_out.os, "pwrite", full)
    out = tmp_path / "full.wav"
    with pytest.raises(StorageError, match=r"full\.wav"):
        decrypt_recording(base, kit.org, out, parallel=True)
    assert not out.exists() and not list(tmp_path.glob(".full.wav*"))
    assert not _scan_threads()
