"""Issue 11: the streaming verifier, the one-pass decrypt and the manifest read without its
segment list give exactly what the whole-file view gives — on genuine and on tampered input.

No timings here (those are `akkoord bench`'s); these tests pin behaviour.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave

import pytest

import akkoord.store.manifest as manifest_mod
from akkoord.errors import FormatError
from akkoord.store import verify as verify_mod
from akkoord.store.audio_out import decrypt_recording, decrypt_to_wav
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import (
    MANIFEST_FILE,
    SegmentBytes,
    iter_segments,
    manifest_frame,
    read_manifest,
)
from akkoord.store.verify import load_content_keys, verify_recording
from storekit import SEG, copy_recording, fast_tmp, frame_bytes, make_kit, record, rewrite


@pytest.fixture(scope="module")
def kit():
    root = fast_tmp()
    k = make_kit(root)
    yield k
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def base(kit):
    w, _ = record(kit, segments=30, gap_after=4)
    return w.path


def _full_view(directory, org=None, **kw):
    """The same verification with the streaming pass switched off: every frame held."""
    original = verify_mod._Verifier._stream

    def refuse(self, items, container, signed):
        raise verify_mod._NeedFullView
        yield  # pragma: no cover - a generator, like the original

    verify_mod._Verifier._stream = refuse
    try:
        return verify_recording(directory, org, **kw)
    finally:
        verify_mod._Verifier._stream = original


def _same(directory, kit):
    for org in (None, kit.org):
        fast = verify_recording(directory, org).to_json()
        whole = _full_view(directory, org).to_json()
        assert fast == whole
    return fast


def _mutations(frames: list[bytes]) -> dict[str, list[bytes]]:
    n = len(frames)
    other = list(frames)
    return {
        "untouched": frames,
        "cut frame 7": frames[:7] + frames[8:],
        "cut 5-9": frames[:5] + frames[10:],
        "duplicate 6": [*frames[:7], frames[6], *frames[7:]],
        "swap 8/9": [*frames[:8], frames[9], frames[8], *frames[10:]],
        "no END": frames[:-1],
        "no header": frames[1:],
        "last two gone": frames[: n - 2],
        "torn tail": [*frames[:-1], frames[-1][:50]],
        "junk between": [*frames[:10], b"AKF1" + os.urandom(300), *frames[10:]],
        "junk at start": [os.urandom(200), *frames],
        "moved to end": frames[:4] + frames[5:] + [frames[4]],
        "bit flip body": [*other[:12], _flip(frames[12], 200), *other[13:]],
        "bit flip header": [*other[:12], _flip(frames[12], 40), *other[13:]],
    }


def _flip(frame: bytes, at: int) -> bytes:
    b = bytearray(frame)
    b[at % len(b)] ^= 0x10
    return bytes(b)


def test_streaming_and_whole_file_views_agree(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    for name, mutated in _mutations(frames).items():
        d = copy_recording(base, tmp_path / name.replace(" ", "_"))
        rewrite(d, mutated)
        doc = _same(d, kit)
        assert doc["ok"] == (name == "untouched"), (name, doc["findings"])


def test_spliced_recording_and_swapped_manifest_agree(kit, base, tmp_path):
    w2, _ = record(kit, segments=8, gap_after=None)
    frames, foreign = frame_bytes(base / CONTAINER_FILE), frame_bytes(w2.container)
    d = copy_recording(base, tmp_path / "spliced")
    rewrite(d, [*frames[:9], foreign[6], *frames[9:]])
    assert any(f["code"] == "foreign_frame" for f in _same(d, kit)["findings"])
    d = copy_recording(base, tmp_path / "swapped")
    shutil.copy(w2.path / MANIFEST_FILE, d / MANIFEST_FILE)
    assert not _same(d, kit)["ok"]
    # Mostly foreign frames: the vote elects the other recording (the whole-file view).
    d = copy_recording(base, tmp_path / "outvoted")
    rewrite(d, frames[:2] + foreign + frames[2:4])
    assert not _same(d, kit)["ok"]


def test_a_changed_manifest_is_diffed_by_segment(kit, base, tmp_path):
    d = copy_recording(base, tmp_path / "m")
    doc = json.loads((d / MANIFEST_FILE).read_bytes())
    doc["segments"][3][3] = "00" * 32
    (d / MANIFEST_FILE).write_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":"))
                                    .encode() + b"\n")
    rep = _same(d, kit)
    assert any(f["code"] == "manifest_mismatch" and f["frame"] == doc["segments"][3][0]
               for f in rep["findings"])


def test_one_pass_decrypt_writes_what_the_two_pass_path_wrote(kit, base, tmp_path):
    got = decrypt_recording(base, kit.org, tmp_path / "one.wav")
    assert got.written and got.report.ok and not got.problems
    signed = read_manifest(base)
    audio = signed.doc["audio"]
    assert not decrypt_to_wav(base, load_content_keys(base, kit.org), tmp_path / "two.wav",
                              rate=audio["sample_rate"], channels=audio["channels"],
                              width=audio["sample_width"],
                              total_samples=signed.doc["duration_samples"])
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "two.wav").read_bytes()
    with wave.open(str(tmp_path / "one.wav")) as wf:
        assert wf.getnframes() == signed.doc["duration_samples"]


def test_one_pass_decrypt_presents_nothing_unverified(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    d = copy_recording(base, tmp_path / "t")
    rewrite(d, [*frames[:12], _flip(frames[12], 300), *frames[13:]])
    out = tmp_path / "out.wav"
    refused = decrypt_recording(d, kit.org, out)
    assert not refused.written and not refused.report.ok
    assert not out.exists() and not list(tmp_path.glob(".out.wav*"))  # no file, no temp
    forced = decrypt_recording(d, kit.org, out, force=True)
    assert forced.written and not forced.report.ok and out.exists()
    assert forced.report.to_json() == verify_recording(d, kit.org).to_json()


def test_one_pass_decrypt_after_a_fallback_writes_each_frame_once(kit, base, tmp_path):
    frames = frame_bytes(base / CONTAINER_FILE)
    d = copy_recording(base, tmp_path / "s")
    rewrite(d, [*frames[:8], frames[9], frames[8], *frames[10:]])  # out of order: fallback
    done = decrypt_recording(d, kit.org, tmp_path / "x.wav", force=True)
    assert done.written and not done.problems  # reordered, but every frame decrypts once
    ref = decrypt_recording(base, kit.org, tmp_path / "ref.wav")
    assert (tmp_path / "x.wav").read_bytes() == (tmp_path / "ref.wav").read_bytes()
    assert ref.total_samples == done.total_samples


@pytest.mark.parametrize("window", [4, 1 << 16])
def test_manifest_read_without_segments_is_strict_json_without_them(base, monkeypatch, window):
    monkeypatch.setattr(manifest_mod, "_WINDOW", window)
    full, part = read_manifest(base), read_manifest(base, segments=False)
    segs = full.doc.pop("segments")
    assert part.doc == full.doc
    a, b = part.segments_span
    assert json.loads(part.data[a:b]) == segs
    assert [list(s) for s in iter_segments(part)] == segs
    before, after = manifest_frame(full.doc)
    sb = SegmentBytes()
    for s in segs:
        sb(s[0], s[1], s[2], bytes.fromhex(s[3]))
    assert before + sb.closed() + after == full.data


HOSTILE = [
    b'{"a":1,"segments":[[1,2,3,"' + b"a" * 64 + b'"], [4, 5,6,"x"]],"z":"\xc3\xa9\xc3\xa9"}',
    b' { "segments" : 5 , "b":[1,2]} ',
    b'{"x":{"segments":[1]},"segments":[],"\xc3\xa9":12345678901234}',
    b'{"segments":[1,2],"segments":3}',
    b'{"a":1e999}',
    b'{"a":1,}',
    b'{"a":[1,2]',
    b'{"a":99999999999999999999999}',
    b'{"segments":[[1,2,3,"' + b"a" * 64 + b'"],NaN]}',
    b'{"a":"\xff"}',
    b'{"a":1} x',
    b"[" * 100000,
]


@pytest.mark.parametrize("window", [3, 1 << 16])
def test_manifest_walker_refuses_what_strict_json_refuses(window, monkeypatch):
    from akkoord.store.safeio import strict_json

    monkeypatch.setattr(manifest_mod, "_WINDOW", window)
    for data in HOSTILE:
        try:
            want = strict_json(data, "m")
        except FormatError:
            want = FormatError
        try:
            got, _ = manifest_mod._parse_without_segments(data, "m")
        except FormatError:
            got = FormatError
        if isinstance(want, dict):
            want.pop("segments", None)
            assert isinstance(got, dict)
            got.pop("segments", None)
        assert got == want, data[:60]


_RSS = """
import json, sys
from pathlib import Path
from akkoord.store.keys import OrgPrivateKey
from akkoord.store.audio_out import decrypt_recording
from akkoord.store.verify import verify_recording
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
key = OrgPrivateKey.load(Path(sys.argv[2]))
if sys.argv[3] == "verify":
    ok = verify_recording(Path(sys.argv[1]), key).ok
else:
    ok = decrypt_recording(Path(sys.argv[1]), key, Path(sys.argv[4])).report.ok
print(json.dumps({"ok": ok, "rss": hwm()}))
"""


def test_verify_and_decrypt_memory_does_not_follow_the_frame_count(kit, tmp_path):
    """Peak RSS in a fresh process, for 600 and 12,600 frames: what grows is the manifest's
    bytes (~90 B a segment, which its signature needs whole), not a record per frame."""
    keyfile = tmp_path / "org.key"
    keyfile.write_bytes(kit.org.dumps())
    peaks = {}
    for n in (600, 12600):
        w = kit.writer(seg=16, sync=False)
        chunk = os.urandom(32)
        for i in range(n):
            w.add_audio(i.to_bytes(4, "big") + chunk[4:])
        w.close("test")
        for mode in ("verify", "decrypt"):
            out = subprocess.run(
                [sys.executable, "-c", _RSS, str(w.path), str(keyfile), mode,
                 str(tmp_path / f"{n}.wav")],
                check=True, capture_output=True, text=True,
            )
            doc = json.loads(out.stdout)
            assert doc["ok"]
            peaks[n, mode] = doc["rss"]
    for mode in ("verify", "decrypt"):
        growth = (peaks[12600, mode] - peaks[600, mode]) / 12000
        assert growth < 400, f"{mode}: {growth:.0f} bytes of peak RSS per frame"
    assert SEG  # the kit's default segment; this test uses tiny ones for many frames


def test_the_verify_page_written_in_pieces_is_the_page(kit, base):
    from akkoord.export.verifypage import render_verify_page, render_verify_page_chunks

    signed = read_manifest(base)
    copy = {"format": "akkoord-copy/2", "note": "</script><script>alert(1)</script>"}
    head = {"seq": 3, "entry": {"detail": {"manifest": ""}}}
    for data in (signed.data, signed.data * 300, b""):  # one piece, many, none
        whole = render_verify_page(data, signed.signature, copy, kit.identity.public, head)
        pieces = b"".join(render_verify_page_chunks(data, signed.signature, copy,
                                                    kit.identity.public, head))
        assert pieces == whole.encode()


def test_random_damage_reads_the_same_in_both_views(kit, base, tmp_path):
    """Seeded random surgery (bit flips, cuts, inserted junk, dropped/duplicated/moved/foreign
    frames): the streaming pass and the whole-file view never disagree."""
    import random

    rnd = random.Random(11)
    data = (base / CONTAINER_FILE).read_bytes()
    frames = frame_bytes(base / CONTAINER_FILE)
    w2, _ = record(kit, segments=4, gap_after=None)
    other = frame_bytes(w2.container)
    for i in range(40):
        d = copy_recording(base, tmp_path / f"r{i}")
        kind = i % 4
        if kind == 0:
            b = bytearray(data)
            for _ in range(rnd.randint(1, 3)):
                b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
            (d / CONTAINER_FILE).write_bytes(bytes(b))
        elif kind == 1:
            b = bytearray(data)
            at = rnd.randrange(len(b))
            b[at:at] = os.urandom(rnd.randint(1, 200))
            (d / CONTAINER_FILE).write_bytes(bytes(b[: rnd.randrange(at, len(b) + 1)]))
        else:
            fr = list(frames)
            for _ in range(rnd.randint(1, 3)):
                j, k = rnd.randrange(len(fr)), rnd.randrange(len(fr))
                op = rnd.randrange(4)
                if op == 0:
                    fr.pop(j)
                elif op == 1:
                    fr.insert(j, fr[k])
                elif op == 2:
                    fr.insert(j, other[rnd.randrange(len(other))])
                else:
                    fr[j], fr[k] = fr[k], fr[j]
            rewrite(d, fr)
        for org in (None, kit.org):
            try:
                fast = verify_recording(d, org).to_json()
            except FormatError as exc:
                fast = str(exc)
            try:
                whole = _full_view(d, org).to_json()
            except FormatError as exc:
                whole = str(exc)
            assert fast == whole, (i, kind)
