"""The manifest as the store writes and reads it: the streaming reader (segments=False) finds
exactly the segment list a full parse finds, in canonical and in hand-spaced files, and the
builder turns frame records into exactly the documented fields."""

from __future__ import annotations

import base64
import json
import tracemalloc

import pytest

from akkoord.errors import FormatError
from akkoord.store.format import MANIFEST_FORMAT, Kind
from akkoord.store.manifest import (
    MANIFEST_FILE,
    FrameRecord,
    SignedManifest,
    build_manifest,
    iter_segments,
    read_manifest,
)
from storekit import RATE, SEG, make_kit, record

MAC = "ab" * 32


@pytest.fixture(scope="module")
def recorded():
    kit = make_kit()
    w, _ = record(kit, segments=4, gap_after=1)
    yield w.path
    kit.cleanup()


def _write(tmp_path, text: str | bytes):
    data = text.encode() if isinstance(text, str) else text
    (tmp_path / MANIFEST_FILE).write_bytes(data)
    return data


def test_the_streaming_read_finds_the_list_the_full_read_finds(recorded):
    full = read_manifest(recorded)
    part = read_manifest(recorded, segments=False)
    assert part.data == full.data and part.signature == full.signature
    a, b = part.segments_span
    assert json.loads(part.data[a:b]) == full.doc["segments"]
    assert part.data[a - 11 : a + 1] == b'"segments":[' and part.data[b - 1 : b] == b"]"
    assert part.doc == {k: v for k, v in full.doc.items() if k != "segments"}
    assert len(full.doc["segments"]) == 4
    assert list(iter_segments(part)) == [tuple(s) for s in full.doc["segments"]]
    assert list(iter_segments(full)) == [tuple(s) for s in full.doc["segments"]]


def test_a_hand_spaced_manifest_reads_the_same(tmp_path):
    seg = f'[ 0 , 1 , 2 , "{MAC}" ] ,\n [1,3,4,"{MAC}"] , [2, 7, 1, "x"]'
    text = (f'{{ "format" : "{MANIFEST_FORMAT}" ,\t"segments" : [ {seg} ] ,'
            f' "zz": [1, {{"a": "é"}}] }}\n')
    data = _write(tmp_path, text)
    signed = read_manifest(tmp_path, segments=False)
    a, b = signed.segments_span
    assert data[a:b] == f"[ {seg} ]".encode()
    assert signed.doc == {"format": MANIFEST_FORMAT, "zz": [1, {"a": "é"}]}
    assert list(iter_segments(signed)) == [(0, 1, 2, MAC), (1, 3, 4, MAC), (2, 7, 1, "x")]
    assert signed.signature is None


@pytest.mark.parametrize("spacing", ["[]", "[ ]", "[\n]"])
def test_an_empty_segment_list(tmp_path, spacing):
    data = _write(tmp_path, f'{{"format":"{MANIFEST_FORMAT}","segments":{spacing},"n":1}}')
    signed = read_manifest(tmp_path, segments=False)
    a, b = signed.segments_span
    assert data[a:b] == spacing.encode()
    assert signed.doc == {"format": MANIFEST_FORMAT, "n": 1}
    assert list(iter_segments(signed)) == []


def test_a_canonical_list_after_its_last_entry_ends_there(tmp_path):
    segs = [[i, i * 10, 10, MAC] for i in range(3)]
    doc = {"format": MANIFEST_FORMAT, "segments": segs, "z": 0}
    data = _write(tmp_path, json.dumps(doc, separators=(",", ":")))
    signed = read_manifest(tmp_path, segments=False)
    a, b = signed.segments_span
    assert data[a:b] == json.dumps(segs, separators=(",", ":")).encode()
    assert list(iter_segments(signed)) == [tuple(s) for s in segs]


@pytest.mark.parametrize("odd", [1, 2, 4])
def test_a_list_that_goes_non_canonical_midway_is_read_whole(tmp_path, odd):
    """Canonical entries are matched in the bytes; from the first that is not (spacing, a
    capital hex digit), the rest is parsed strictly: each entry exactly once, in order."""
    entries = [f'[{i},{i * 10},10,"{MAC}"]' for i in range(6)]
    entries[odd] = f'[{odd}, {odd * 10},10,"{MAC.upper()}"]'
    _write(tmp_path, f'{{"format":"{MANIFEST_FORMAT}","segments":[{",".join(entries)}]}}')
    signed = read_manifest(tmp_path, segments=False)
    assert list(iter_segments(signed)) == [
        (i, i * 10, 10, MAC.upper() if i == odd else MAC) for i in range(6)]


@pytest.mark.parametrize(
    "text",
    [
        '{"format":"%s","segments":[[0,0,1,"%s"] [1]]}',  # a missing comma
        '{"format":"%s","segments":[[0,0,1,"%s"],]}',  # a trailing comma
        '{"format":"%s","segments":[[0,0,1,"%s"]}',  # never closed
        '{"format":"%s","segments":[[0,0,1,"%s"]]} x',  # junk after
        '{"format":"%s" "segments":[[0,0,1,"%s"]]}',  # no comma between keys
        '{"format":"%s","segments" [[0,0,1,"%s"]]}',  # no colon
    ],
)
def test_a_malformed_manifest_is_refused_in_the_words_of_the_full_read(tmp_path, text):
    _write(tmp_path, text % (MANIFEST_FORMAT, MAC))
    with pytest.raises(FormatError) as full:
        read_manifest(tmp_path)
    with pytest.raises(FormatError) as part:
        read_manifest(tmp_path, segments=False)
    assert str(part.value) == str(full.value)
    assert str(full.value).startswith(f"{tmp_path / MANIFEST_FILE}: not valid JSON (")


def test_a_manifest_of_another_format_is_refused(tmp_path):
    _write(tmp_path, '{"format":"akkoord-manifest/1","segments":[]}')
    for segments in (True, False):
        with pytest.raises(FormatError) as err:
            read_manifest(tmp_path, segments=segments)
        assert str(err.value) == (f"{tmp_path / MANIFEST_FILE}: not an {MANIFEST_FORMAT} "
                                  "manifest")


def _header(**extra):
    meta = {
        "recording_id": "11" * 16,
        "device": {"fingerprint": "dd"},
        "audio": {"sample_rate": 1000},
        "recipients": [{"fingerprint": "f1", "kem": "x"}, {"fingerprint": "f2", "kem": "y"}],
        "created": {"utc": "then"},
        **extra,
    }
    return FrameRecord(0, Kind.HEADER, 0, 0, 0, bytes(32), meta, b"\x01" * 32)


def _rec(index, kind, start, samples=0, meta=None, mac=bytes(32)):
    return FrameRecord(index, kind, 0, start, samples, mac, meta, bytes([index]) * 32)


def test_the_manifest_of_a_closed_recording_field_by_field():
    m = build_manifest([
        _header(simulated=True),
        _rec(1, Kind.CHECKPOINT, 0, meta={"event": "checkpoint"}),
        _rec(2, Kind.EVENT, 0, meta={"event": "start"}),
        _rec(3, Kind.AUDIO, 0, 1500, mac=b"\xaa" * 32),
        _rec(4, Kind.GAP, 1500, 250, meta={"event": "gap", "cause": "overflow"}),
        _rec(5, Kind.AUDIO, 1750, 1001, mac=b"\xbb" * 32),
        _rec(6, Kind.CHECKPOINT, 2751, meta={"event": "checkpoint"}),
        _rec(7, Kind.END, 2751, meta={"event": "stop", "time": {"utc": "now"}}),
    ])
    assert m == {
        "format": MANIFEST_FORMAT,
        "recording_id": "11" * 16,
        "status": "complete",
        "simulated": True,
        "device": {"fingerprint": "dd"},
        "audio": {"sample_rate": 1000},
        "recipients": ["f1", "f2"],
        "created": {"utc": "then"},
        "ended": {"utc": "now"},
        "stop": {"event": "stop", "time": {"utc": "now"}},
        "interruption": None,
        "duration_samples": 2751,
        "duration_seconds": 2.751,
        "frame_count": 8,
        "chain_head": "07" * 32,
        "unsigned_tail": None,
        "gaps": [[4, 1500, 250]],
        "timeline": [
            {"frame": 2, "at_sample": 0, "at_seconds": 0.0, "event": "start"},
            {"frame": 4, "at_sample": 1500, "at_seconds": 1.5, "event": "gap",
             "cause": "overflow", "samples": 250},
            {"frame": 7, "at_sample": 2751, "at_seconds": 2.751, "event": "stop",
             "time": {"utc": "now"}},
        ],
        "segments": [[3, 0, 1500, "aa" * 32], [5, 1750, 1001, "bb" * 32]],
    }


def test_a_recovered_recording_discloses_its_unsigned_tail():
    m = build_manifest([
        _header(),
        _rec(1, Kind.CHECKPOINT, 0),
        _rec(2, Kind.AUDIO, 0, 1000),
        _rec(3, Kind.CHECKPOINT, 1000),
        _rec(4, Kind.AUDIO, 1000, 1234),
        _rec(5, Kind.EVENT, 2234, meta={"event": "note"}),
        _rec(6, Kind.RECOVERY, 2234, meta={"event": "recovered", "time": {"utc": "later"}}),
    ])
    assert m["status"] == "interrupted" and m["simulated"] is False
    assert m["stop"] is None
    assert m["interruption"] == {"event": "recovered", "time": {"utc": "later"}}
    assert m["ended"] == {"utc": "later"}
    assert m["unsigned_tail"] == {"after_frame": 3, "frames": 2, "samples": 1234,
                                  "seconds": 1.234}
    assert m["duration_samples"] == 2234 and m["frame_count"] == 7


def test_a_recovered_recording_with_no_checkpoint_counts_its_tail_from_the_start():
    m = build_manifest([
        _header(),
        _rec(1, Kind.AUDIO, 0, 700),
        _rec(2, Kind.RECOVERY, 700, meta={"event": "recovered"}),
    ])
    assert m["unsigned_tail"] == {"after_frame": None, "frames": 1, "samples": 700,
                                  "seconds": 0.7}
    assert m["ended"] is None and m["recipients"] == ["f1", "f2"]


@pytest.mark.parametrize(
    ("records", "why"),
    [
        ([], "a manifest needs the recording's header frame first"),
        ([_rec(0, Kind.AUDIO, 0, 10)], "a manifest needs the recording's header frame first"),
        ([FrameRecord(0, Kind.HEADER, 0, 0, 0, bytes(32), None, bytes(32))],
         "a manifest needs the recording's header frame first"),
        ([_header(), _rec(1, Kind.AUDIO, 0, 10)],
         "a manifest needs a closed recording (END or RECOVERY last)"),
    ],
)
def test_what_is_not_a_closed_recording_has_no_manifest(records, why):
    with pytest.raises(FormatError) as err:
        build_manifest(records)
    assert str(err.value) == why


def test_the_recorded_manifest_counts_what_was_recorded(recorded):
    doc = read_manifest(recorded).doc
    assert doc["duration_samples"] == 4 * SEG + SEG // 2
    assert doc["duration_seconds"] == round((4 * SEG + SEG // 2) / RATE, 3)
    assert [g[1:] for g in doc["gaps"]] == [[2 * SEG, SEG // 2]]


def test_the_segment_list_is_walked_not_built(tmp_path):
    """A twelve-hour manifest holds ~43,000 segments: reading it without its list and walking
    the list costs a few entries of memory, not the list (nor a decode of the whole text),
    also when a value before it has a character cut by the reader's 64 KiB window."""
    n = 20000
    segs = b",".join(b'[%d,%d,4800,"%s"]' % (i, i * 4800, MAC.encode()) for i in range(n))
    note = "x" * (65536 - len('{"a":"') - 1) + "é" * 4000  # 'é' straddles byte 65536
    data = (b'{"a":' + json.dumps(note, ensure_ascii=False).encode()
            + b',"format":"' + MANIFEST_FORMAT.encode() + b'","segments":[' + segs + b"]}")
    _write(tmp_path, data)
    tracemalloc.start()
    try:
        signed = read_manifest(tmp_path, segments=False)
        count = 0
        for s in iter_segments(signed):
            count += 1
            last = s
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert signed.doc == {"a": note, "format": MANIFEST_FORMAT}
    assert count == n and last == (n - 1, (n - 1) * 4800, 4800, MAC)
    # the file's bytes (~2 MB; twice for a moment while read) plus a small working set: a
    # parsed list would add ~6 MB, a decoded text ~2 MB more
    assert peak < 2 * len(data) + 500_000, (peak, len(data))


def test_walking_the_list_yields_before_it_refuses(tmp_path):
    """Entries come one at a time: a canonical head is handed out before a bad tail (which a
    manifest read from disk never has: read_manifest checks the list) is refused."""
    data = (f'{{"segments":[[0,0,1,"{MAC}"],[1,1,1,"{MAC}"],[2,2,1,"{MAC}"],oops]}}').encode()
    a = data.index(b"[[")
    signed = SignedManifest(data, None, {}, (a, len(data) - 1))
    walk = iter_segments(signed)
    assert [next(walk) for _ in range(3)] == [(i, i, 1, MAC) for i in range(3)]
    with pytest.raises(FormatError) as err:
        next(walk)
    assert str(err.value).startswith("manifest segments: not valid JSON (")


@pytest.mark.parametrize("segments", [True, False])
def test_odd_entries_and_spacing_in_the_list_come_through_as_they_are(tmp_path, segments):
    """A malformed list is the verifier's to report entry by entry: the reader neither drops
    nor reshapes what it cannot match (a string stays one value, not its characters)."""
    text = (f'{{"format":"{MANIFEST_FORMAT}","segments":[[0,0,1,"{MAC}"] ,'
            f'[1,1,1,"{MAC}"],"ab",7,[2,2,1,"{MAC}"]]}}')
    _write(tmp_path, text)
    signed = read_manifest(tmp_path, segments=segments)
    assert list(iter_segments(signed)) == [
        (0, 0, 1, MAC), (1, 1, 1, MAC), ("ab",), (7,), (2, 2, 1, MAC)]


def test_a_recording_without_audio_lasts_zero_samples():
    m = build_manifest([_header(), _rec(1, Kind.CHECKPOINT, 0), _rec(2, Kind.END, 0)])
    assert (m["duration_samples"], m["duration_seconds"], m["segments"]) == (0, 0.0, [])


def test_a_gap_at_the_end_counts_to_the_duration():
    m = build_manifest([
        _header(),
        _rec(1, Kind.CHECKPOINT, 0),
        _rec(2, Kind.AUDIO, 0, 1000),
        _rec(3, Kind.GAP, 1000, 500, meta={"event": "gap"}),
        _rec(4, Kind.END, 1500, meta={"event": "stop"}),
    ])
    assert m["duration_samples"] == 1500 and m["gaps"] == [[3, 1000, 500]]


def test_times_are_rounded_to_the_millisecond():
    head = _header()
    head.meta["audio"] = {"sample_rate": 7000}
    m = build_manifest([
        head,
        _rec(1, Kind.CHECKPOINT, 0),
        _rec(2, Kind.AUDIO, 0, 1),
        _rec(3, Kind.EVENT, 1, meta={"event": "note"}),
        _rec(4, Kind.AUDIO, 1, 10),
        _rec(5, Kind.RECOVERY, 11, meta={"event": "recovered"}),
    ])
    assert m["timeline"][0]["at_seconds"] == 0.0  # 1/7000 s
    assert m["duration_seconds"] == 0.002  # 11/7000 s = 0.00157
    assert m["unsigned_tail"]["seconds"] == 0.002


def test_a_header_without_recipients_lists_none():
    head = _header()
    del head.meta["recipients"]
    del head.meta["created"]
    m = build_manifest([head, _rec(1, Kind.END, 0)])
    assert m["recipients"] == [] and m["created"] is None


def test_a_builder_that_refused_its_first_frame_still_refuses_to_finish():
    from akkoord.store.manifest import ManifestBuilder

    b = ManifestBuilder(lambda *a: None)
    with pytest.raises(FormatError):
        b.add(_rec(0, Kind.AUDIO, 0, 10))
    with pytest.raises(FormatError) as err:
        b.finish()
    assert str(err.value) == "a manifest needs the recording's header frame first"


def test_the_signature_file_is_read_strictly_and_bounded(tmp_path):
    from akkoord.store.manifest import SIGNATURE_FILE

    _write(tmp_path, f'{{"format":"{MANIFEST_FORMAT}","segments":[]}}')
    sig = tmp_path / SIGNATURE_FILE
    sig.write_bytes(base64.b64encode(bytes(64)) + b"\n")
    assert read_manifest(tmp_path).signature == bytes(64)
    for bad in (b"AAAA!AAAA\n", b"A" * 4096 + b"\n", b"AAAA" * 1024 + b"\n"):
        sig.write_bytes(bad)  # not strict base64; or more than 4096 bytes
        for segments in (True, False):
            assert read_manifest(tmp_path, segments=segments).signature is None
    sig.write_bytes(b"AAAA" * 1023 + b"\n")
    assert read_manifest(tmp_path).signature == bytes(3069)


def test_an_implausibly_large_manifest_says_so(tmp_path):
    from akkoord.store.manifest import MAX_MANIFEST

    with open(tmp_path / MANIFEST_FILE, "wb") as f:
        f.truncate(MAX_MANIFEST + 1)  # sparse
    with pytest.raises(FormatError) as err:
        read_manifest(tmp_path)
    assert str(err.value) == (f"{tmp_path / MANIFEST_FILE}: implausibly large for a manifest "
                              f"({MAX_MANIFEST + 1} bytes)")


@pytest.mark.parametrize("text", [
    '{"format":"%s"}',  # no segment list at all
    '{"format":"%s","segments":5}',  # not a list
    '{"format":"%s","segments":[],"segments":5}',  # duplicate keys: the last one counts
    '{"format":"%s","segments":5,"segments":[]}',
])
def test_odd_segment_keys_read_as_the_full_read_reads_them(tmp_path, text):
    _write(tmp_path, text % MANIFEST_FORMAT)
    full = read_manifest(tmp_path).doc
    part = read_manifest(tmp_path, segments=False)
    assert part.doc == {k: v for k, v in full.items() if not (
        k == "segments" and isinstance(v, list))}
    if isinstance(full.get("segments"), list):
        assert part.data[slice(*part.segments_span)] == b"[]"
    else:
        assert part.segments_span is None


@pytest.mark.parametrize("text", ["nonsense", "[1]", "", "  "])
def test_what_is_not_an_object_is_refused_in_the_full_reads_words(tmp_path, text):
    _write(tmp_path, text)
    with pytest.raises(FormatError) as full:
        read_manifest(tmp_path)
    with pytest.raises(FormatError) as part:
        read_manifest(tmp_path, segments=False)
    assert str(part.value) == str(full.value)
    assert str(full.value).startswith(f"{tmp_path / MANIFEST_FILE}: ")
