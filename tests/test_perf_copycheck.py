"""Issue 11: the copy verifier's read-back streams the manifest's segment list (never a
record per second) and says exactly what the whole-list reading says — on genuine copies,
tampered audio, segments listed out of order, and manifests spelled unusually.

No timings here (those are `akkoord bench`'s); these tests pin behaviour and memory.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest

from akkoord.errors import FormatError
from akkoord.export import copycheck
from akkoord.export.copycheck import verify_copy
from akkoord.store.format import canonical_json
from akkoord.store.manifest import sign_manifest
from copykit import AUDIO, at, clone, flip_sample, record_copy, samples, write_wav
from storekit import make_kit


@pytest.fixture(scope="module")
def kit():
    k = make_kit()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def made(kit):
    return record_copy(kit, 8, seed=21, gap_after=2)  # a 0.25 s gap after second 3


def _signed(made, kit, dst, data: bytes):
    """A clone of the copy whose manifest is `data`, validly signed by the device."""
    folder = clone(made.folder, dst)
    (folder / "manifest.json").write_bytes(data)
    sig = base64.b64encode(sign_manifest(data, kit.identity)) + b"\n"
    (folder / "manifest.sig").write_bytes(sig)
    return folder


def _whole(folder, key, monkeypatch):
    """The same check reading the manifest whole and sorting every item up front (the
    verifier before issue 11's read-back work)."""
    with monkeypatch.context() as m:
        m.setattr(copycheck, "walk_manifest", _refuse)
        m.setattr(copycheck, "_items", lambda parsed, in_order: iter(sorted(
            [copycheck._Item(s[1], s[2], bytes.fromhex(s[3])) for s in parsed.doc["segments"]]
            + [copycheck._Item(g[1], g[2], None) for g in parsed.doc.get("gaps", [])],
            key=lambda i: i.start)))
        return _outcome(folder, key)


def _refuse(data, dec, *, unique_keys):
    raise ValueError("whole")


def _outcome(folder, key):
    try:
        return verify_copy(folder, key).to_json()
    except FormatError as exc:
        return str(exc)


def _manifests(made) -> dict[str, bytes]:
    data = (made.folder / "manifest.json").read_bytes()
    doc = json.loads(data)
    segs = doc["segments"]
    first = segs[0][0]

    def canon(d):
        return canonical_json(d) + b"\n"

    return {
        "as made": data,
        "reversed": canon({**doc, "segments": segs[::-1]}),
        "two swapped": canon({**doc, "segments": [segs[1], segs[0], *segs[2:]]}),
        "one start twice": canon({**doc, "segments": [[99, segs[0][1], 7, segs[0][3]], *segs]}),
        "spaced": data.replace(b'"segments":[', b'"segments": [ ', 1),
        "a float index": data.replace(b'"segments":[[%d,' % first, b'"segments":[[1.5,', 1),
        "non-ASCII first": data.replace(b'"audio":', '"\u00e9":"\u20ac","audio":'.encode(), 1),
        "leading zero": data.replace(b'"segments":[[%d,' % first, b'"segments":[[0%d,' % first),
        "segments twice": data.replace(b'"segments":', b'"segments":[],"segments":', 1),
        "no segments": canon({k: v for k, v in doc.items() if k != "segments"}),
        "segments not a list": canon({**doc, "segments": {"a": 1}}),
        "a nested duplicate": data.replace(b'"audio":{', b'"audio":{"x":1,"x":1,', 1),
    }


def _audio_changes(made) -> dict[str, bytes]:
    d = made.audio
    return {
        "untouched": d,
        "flipped sample": flip_sample(d, samples(5.5)),
        "cut 1 s": d[: at(2)] + d[at(3):],
        "inserted 0.5 s": d[: at(6)] + bytes(at(0.5)) + d[at(6):],
        "reordered": d[: at(4.25)] + d[at(5.25): at(6.25)] + d[at(4.25): at(5.25)]
        + d[at(6.25):],
        "truncated last second": d[: at(7.6)],
        "half a sample more": d + b"\x01",
    }


def test_streamed_read_back_agrees_with_the_whole_list(kit, made, tmp_path, monkeypatch):
    seen = set()
    for mname, data in _manifests(made).items():
        for aname, audio in _audio_changes(made).items():
            folder = _signed(made, kit, tmp_path / f"{len(seen)}", data)
            write_wav(folder / AUDIO, audio)
            for key in (kit.identity.public, None):
                got, want = _outcome(folder, key), _whole(folder, key, monkeypatch)
                assert got == want, (mname, aname)
            seen.add((mname, aname, got if isinstance(got, str) else (
                got["status"], tuple(f["code"] for f in got["findings"]))))
    verdicts = {v for *_, v in seen}
    assert ("unchanged", ()) in verdicts  # the comparison covered passes, findings, refusals
    assert any(isinstance(v, tuple) and "length_changed" in v[1] for v in verdicts)
    assert any(isinstance(v, str) for v in verdicts)


def test_order_of_the_segment_list_does_not_change_the_verdict(kit, made, tmp_path):
    ms = _manifests(made)
    audio = _audio_changes(made)["cut 1 s"]
    outcomes = []
    for name in ("as made", "reversed", "two swapped", "spaced"):
        folder = _signed(made, kit, tmp_path / name.replace(" ", "_"), ms[name])
        write_wav(folder / AUDIO, audio)
        rep = verify_copy(folder, kit.identity.public)
        outcomes.append(([f.to_json() for f in rep.findings], rep.changed_seconds))
    assert outcomes[0][0] and all(o == outcomes[0] for o in outcomes)
    findings, changed = outcomes[0]
    assert [(f["code"], f["second"]) for f in findings] == [
        ("audio_changed", 2), ("length_changed", 2)]  # second 2 is gone, the rest moved up
    assert changed == [[2, 3]]


@pytest.mark.parametrize(("name", "words"), [
    ("segments twice", "duplicate key 'segments'"),
    ("a nested duplicate", "duplicate key 'x'"),
    ("leading zero", "not valid JSON"),
    ("one start twice", "do not tile the recording at sample 7"),
    ("a float index", "segment index must be a whole number"),
    ("segments not a list", "segments and gaps must be lists"),
])
def test_unusual_manifests_are_refused_in_the_usual_words(kit, made, tmp_path, name, words):
    folder = _signed(made, kit, tmp_path / "m", _manifests(made)[name])
    with pytest.raises(FormatError, match=words):
        verify_copy(folder, kit.identity.public)


_RSS = """
import json, sys
from pathlib import Path
from akkoord.export.copycheck import verify_copy
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
rep = verify_copy(Path(sys.argv[1]))
print(json.dumps({"ok": rep.ok, "rss": hwm()}))
"""


def test_read_back_memory_does_not_follow_the_segment_count(kit, tmp_path):
    """Peak RSS of verify_copy in a fresh process, 600 and 12,600 segments: what grows is
    the manifest's bytes (~90 B a segment, which its signature needs whole, and the copy
    the signature check makes of them), not a record per segment (~600 B before)."""
    peaks = {}
    for n in (600, 12600):
        made = record_copy(kit, n, seed=n, seg=16)
        out = subprocess.run([sys.executable, "-c", _RSS, str(made.folder)],
                             check=True, capture_output=True, text=True)
        doc = json.loads(out.stdout)
        assert doc["ok"]
        peaks[n] = doc["rss"]
    growth = (peaks[12600] - peaks[600]) / 12000
    assert growth < 300, f"{growth:.0f} bytes of peak RSS per segment"
