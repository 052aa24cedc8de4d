"""More of the verifier's report pinned to the word and the place (with
tests/test_store_verify_pins.py, whose helpers these use): the header's parameter bounds
and the 48 kHz / 16-bit fallback, the 10-second checkpoint rule at its exact edge, frames
after the final frame, a recovery frame with a body, a one-sample segment, an event frame
too short for its tag, the sink with and without the key, which recording a streaming pass
takes to be its own (one pass, no reset), the wrapped-keys file's size limit, and a
manifest whose id or device key is unusable. Each was a surviving mutant of store/verify.py
(docs/TESTING.md, "Mutation testing")."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord.errors import FormatError
from akkoord.store.format import (
    HEADER_LEN,
    SEAL_LEN,
    FrameHeader,
    Kind,
    finish_frame,
    nonce_for,
)
from akkoord.store.layout import CONTAINER_FILE, WRAPPED_KEYS_FILE
from akkoord.store.verify import load_content_keys, verify_recording
from storekit import RATE, SEG, fast_tmp, frame_bytes, make_kit, record, rewrite
from test_store_verify_pins import (
    NO_MANIFEST,
    F,
    _check,
    _copy,
    _edit,
    _forge,
    _parts,
    _rule,
    _Sink,
    _table,
)

UNREADABLE = ("bad_frame", "the header frame's parameters are unreadable", 0, 0)
NO_CHECKPOINT = "no signed checkpoint in the 10 s of audio before this frame"


@pytest.fixture(scope="module")
def made():
    kit = make_kit()
    w, _ = record(kit, 5, gap_after=1)
    other, _ = record(kit, 5, seed=3)
    yield kit, w.path, other.path
    kit.cleanup()


@pytest.fixture
def scratch():
    d = fast_tmp()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _header(parts, change):
    meta = json.loads(parts[0][1])
    change(meta)
    parts[0][1] = json.dumps(meta).encode()


def _seconds(sample, rate):
    return round(sample / rate, 3)


def _at(code, message, frame, sample, offset, rate):
    """F(), with the second counted at `rate` rather than the kit's."""
    f = F(code, message, frame, None, offset)
    where = f"frame {frame}, second {_seconds(sample, rate):g}, byte {offset}"
    return {**f, "message": f"{message} [{where}]", "second": _seconds(sample, rate)}


# --- the header's parameters ----------------------------------------------------------------

@pytest.mark.parametrize("audio, ok", [
    ({"sample_rate": 1}, True), ({"sample_rate": 10**6}, True),
    ({"channels": 1, "sample_width": 1}, True), ({"channels": 32, "sample_width": 2}, True),
    ({"channels": 65, "sample_width": 1}, False), ({"sample_rate": 10**6 + 1}, False),
])
def test_the_header_s_rate_and_frame_size_bounds_are_inclusive(made, scratch, audio, ok):
    """1 ≤ rate ≤ 10^6 and 1 ≤ channels × width ≤ 64 are taken as they are; past either
    bound the header is unreadable and 48 kHz, 2 bytes a frame are assumed."""
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    _header(parts, lambda m: m["audio"].update(audio))
    _forge(kit, d, parts)
    got = [f.to_json() for f in verify_recording(d).findings]
    assert (F(*UNREADABLE) not in got) is ok
    if not ok:  # the fallback's 2 bytes a frame: every audio frame still has its length
        assert got == [F(*UNREADABLE), F(*NO_MANIFEST, 12)]


@pytest.mark.parametrize("change", [
    lambda m: m.pop("audio"), lambda m: m["audio"].update(sample_rate=0),
    lambda m: m["audio"].update(channels=33), lambda m: m.pop("device"),
])
def test_an_unreadable_header_is_one_finding_and_nothing_more(made, scratch, change):
    """The fallback is 16-bit mono's 2 bytes a frame: the audio frames, 2 bytes a sample,
    raise nothing more."""
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    _header(parts, change)
    _forge(kit, d, parts)
    _check(d, kit, [F(*UNREADABLE), F(*NO_MANIFEST, 12)], org=False)


def _long_gap(kit, d, parts, rate, short=0, first=0):
    """The gap (frame 7) made so long that frame 8 starts `short` samples before 10 s of
    `rate` after the checkpoint at sample 0; every later frame moved on with it. Returns
    the forged file's table."""
    gap = parts[7][0]
    shift = 10 * rate - short - gap.start_sample - gap.samples
    parts[7][0] = dataclasses.replace(gap, samples=gap.samples + shift)
    for p in parts[8:]:
        p[0] = dataclasses.replace(p[0], start_sample=p[0].start_sample + shift)
    _forge(kit, d, parts[first:])
    t = _table(d)
    assert t[8][2] == 10 * rate - short and t[1][2] == 0 and t[1][4] == Kind.CHECKPOINT
    return t


def _ten_seconds_findings(t, rate, frames=(8, 9, 10)):
    return [_at("checkpoint", NO_CHECKPOINT, i, t[i][2], t[i][0], rate) for i in frames]


def test_a_frame_exactly_10_s_after_the_last_checkpoint_is_one_too_far(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    t = _long_gap(kit, d, _parts(d), RATE)
    _rule(kit, d, _ten_seconds_findings(t, RATE))
    # one sample earlier, frame 8 is still in time; 9 and 10 are not
    d = _copy(src, scratch)
    t = _long_gap(kit, d, _parts(d), RATE, short=1)
    _rule(kit, d, _ten_seconds_findings(t, RATE, (9, 10)))


def test_with_an_unreadable_header_the_10_s_are_counted_at_48_khz(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    _header(parts, lambda m: m["audio"].update(sample_rate="x"))
    t = _long_gap(kit, d, parts, 48000)
    _rule(kit, d, [F(*UNREADABLE), *_ten_seconds_findings(t, 48000)])


def test_without_a_header_frame_the_10_s_are_counted_at_48_khz(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    t = _long_gap(kit, d, parts, 48000, first=1)
    assert 0 not in t
    _rule(kit, d, [
        F("missing_frame", "frame 0 missing (cut out)", 0, 0),
        F("bad_frame", "the header frame must come first, and only first", 1, 0, 0),
        F("checkpoint", "frame 2, the second frame read, is not the signed start checkpoint",
          2, 0, t[2][0]),
        *_ten_seconds_findings(t, 48000),
    ])


def test_a_header_frame_whose_meta_is_no_object_is_not_taken_as_the_header(made, scratch):
    """Frame 0 is a HEADER, but its meta is not a JSON object: nothing is read from it (no
    format refused, no rate taken), and it is one finding."""
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    parts[0][1] = b"[1]"
    _forge(kit, d, parts)
    _rule(kit, d, [F("bad_frame", "metadata is not a JSON object", 0, 0, 0)])
    rep = verify_recording(d)
    assert rep.device_fingerprint is None and rep.simulated is None


def test_in_the_whole_file_view_a_frame_s_unreadable_meta_is_still_a_finding(made, scratch):
    """Frame 3's meta is no JSON object, and frames 9 and 10 are swapped (the whole-file
    view): the meta finding is made there too, after the order finding."""
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    parts[3][1] = b"[1]"
    _forge(kit, d, parts)
    t = _table(d)
    raw = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, [*raw[:9], raw[10], raw[9], *raw[11:]])
    _rule(kit, d, [
        F("reordered_frame", "frame 9 is out of order (found after frame 10)", 9, t[9][2],
          t[9][0] + t[10][1]),
        F("bad_frame", "metadata is not a JSON object", 3, 0, t[3][0]),
    ])


# --- per-frame rules --------------------------------------------------------------------------

def test_frames_after_the_final_frame_are_a_finding_at_the_final_frame(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = _parts(d)
    extra = [dataclasses.replace(parts[4][0], index=13, start_sample=t[12][2]),
             parts[4][1], parts[4][2]]
    _forge(kit, d, [*parts, extra])
    _rule(kit, d, [
        F("bad_frame", "frames follow the recording's final frame", 12, t[12][2], t[12][0]),
        F("truncated", "the recording ends after frame 13 without a final frame", 14,
          t[12][2]),
    ], last=13)


def test_a_non_audio_frame_s_samples_do_not_move_the_timeline(made, scratch):
    """An event frame that claims 5 samples is one finding; the frame after it is still
    expected where the timeline was, not 5 samples on."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = _parts(d)
    parts[3][0] = dataclasses.replace(parts[3][0], samples=5)
    _forge(kit, d, parts)
    _rule(kit, d, [F("bad_frame", "a non-audio frame carries audio fields", 3, 0, t[3][0])])


def test_a_segment_of_one_sample_is_a_whole_segment(scratch):
    kit = make_kit(scratch / "k")
    w = kit.writer()
    w.add_event("start")
    w.add_audio(b"\x01\x02")
    w.add_audio(bytes(2 * SEG))
    w.close("party_a", party="A")
    rep = _check(w.path, kit, [])
    assert rep.status == "complete"
    sink = _Sink()
    verify_recording(w.path, kit.org, sink=sink)
    assert [p for _, p, _ in sink.frames if p is not None] == [b"\x01\x02", bytes(2 * SEG)]


def _interrupted(scratch, tail=(2 * SEG,) * 4):
    from akkoord.store.recovery import STORAGE_ERROR, recover_all

    kit = make_kit(scratch / "k")
    w = kit.writer()
    w.add_event("start")
    for i, n in enumerate(tail):
        w.add_audio(bytes([i]) * n)
    w._close_fd()
    kit.clock.advance(60)
    recover_all(kit.state, kit.identity, kit.clock, kit.custody, STORAGE_ERROR)
    return kit, w.path


def test_a_recovery_frame_with_a_body_is_a_finding(scratch):
    kit, d = _interrupted(scratch)
    t = _table(d)
    last = max(t)
    assert t[last][4] == Kind.RECOVERY
    parts = _parts(d)
    parts[last][2] = bytes(3)
    _forge(kit, d, parts)
    _rule(kit, d, [F("bad_frame", "a recovery frame has a body", last, t[last][2],
                     t[last][0])], last=last)


def test_the_unsigned_tail_s_seconds_are_rounded_to_the_millisecond(scratch):
    _kit, d = _interrupted(scratch, (2 * SEG + 2, 2 * SEG))
    rep = verify_recording(d)
    samples = 2 * SEG + 1
    assert rep.status == "interrupted"
    assert rep.unsigned_tail == {"after_frame": 1, "frames": 3, "samples": samples,
                                 "seconds": round(samples / RATE, 3)}
    assert round(samples / RATE, 3) != round(samples / RATE, 4)
    assert rep.notes[-1].startswith(f"unsigned tail: the last {round(samples / RATE, 3):g} s")


# --- the key, the sink ------------------------------------------------------------------------

def test_an_event_frame_too_short_for_its_tag_fails_its_tag_too(made, scratch):
    """The END frame's body cut to 15 bytes (the last frame, so nothing after it needs
    re-chaining): it breaks the one-tag rule and, with the key, does not decrypt; the sink
    is told so."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    raw = frame_bytes(d / CONTAINER_FILE)
    h = FrameHeader.unpack(raw[12][:HEADER_LEN])
    meta = raw[12][HEADER_LEN : HEADER_LEN + h.meta_len]
    hb = dataclasses.replace(h, body_len=15).pack()
    raw[12], _ = finish_frame(hb, meta, raw[12][HEADER_LEN + h.meta_len : -SEAL_LEN][:15])
    rewrite(d, raw)
    tag = F("bad_frame", "event frame body is not one AEAD tag", 12, t[12][2], t[12][0])
    _check(d, kit, [tag], org=False)
    _check(d, kit, [tag, F("bad_tag", "the frame does not decrypt (authentication tag "
                           "invalid)", 12, t[12][2], t[12][0])])
    sink = _Sink()
    verify_recording(d, kit.org, sink=sink)
    assert sink.frames[-1] == (t[12][0], None, "bad_tag")
    assert [e for _, _, e in sink.frames[:-1]] == [None] * 12


def test_without_the_key_the_sink_gets_every_frame_undecrypted(made):
    _kit, src, _ = made
    t = _table(src)
    for parallel in (False, True):
        sink = _Sink()
        rep = verify_recording(src, sink=sink, parallel=parallel)
        assert rep.ok and sink.resets == 0
        assert sink.frames == [(t[i][0], None, None) for i in sorted(t)]


def test_the_sink_is_told_which_frame_failed_its_mac(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    keys = load_content_keys(d, kit.org)
    parts = frame_bytes(d / CONTAINER_FILE)
    hb = parts[6][:HEADER_LEN]
    body = ChaCha20Poly1305(keys.seal_key).encrypt(nonce_for(6, False), bytes(2 * SEG), hb)
    parts[6], _ = finish_frame(hb, b"", body)
    rewrite(d, parts)
    sink = _Sink()
    verify_recording(d, kit.org, sink=sink)
    assert [(o, e) for o, _, e in sink.frames if e] == [(t[6][0], "audio_mac")]
    assert dict((o, p) for o, p, _ in sink.frames)[t[6][0]] == bytes(2 * SEG)


# --- which recording is ours, in one pass -----------------------------------------------------

def test_a_foreign_frame_first_is_set_aside_in_one_pass(made, scratch):
    """The streaming pass takes the manifest's id as the recording's from the start: a
    foreign frame before ours is set aside without starting again."""
    kit, src, other = made
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, [frame_bytes(other / CONTAINER_FILE)[0], *parts])
    sink = _Sink()
    rep = verify_recording(d, kit.org, sink=sink)
    assert sink.resets == 0 and [f.code for f in rep.findings] == ["foreign_frame"]
    assert rep.recording_id == src.name


def test_a_tie_in_the_streaming_pass_goes_to_the_manifest_in_one_pass(made, scratch):
    kit, src, other = made
    t = _table(src)
    d = _copy(src, scratch)
    theirs = frame_bytes(other / CONTAINER_FILE)
    ours = frame_bytes(d / CONTAINER_FILE)[:len(theirs)]
    assert len(ours) == 12
    rewrite(d, [*theirs, *ours])
    sink = _Sink()
    rep = verify_recording(d, kit.org, sink=sink)
    assert sink.resets == 0 and rep.recording_id == src.name
    assert [f.code for f in rep.findings] == ["foreign_frame"] * 12 + ["truncated"]
    assert rep.findings[-1].frame == 12 and t[12][4] == Kind.END


def test_a_manifest_id_that_is_not_16_bytes_names_nothing(made, scratch):
    _kit, src, _ = made
    d = _copy(src, scratch)
    _edit(d, lambda doc: doc.update(recording_id="abcd"))
    (d / CONTAINER_FILE).write_bytes(b"x" * 300)
    rep = verify_recording(d)
    assert rep.recording_id == src.name  # the folder's, not "abcd"


# --- files beside the container ---------------------------------------------------------------

def test_a_container_that_is_a_symbolic_link_is_refused_by_name(made, scratch):
    _kit, src, _ = made
    d = _copy(src, scratch)
    target = d.parent / "elsewhere.akr"
    (d / CONTAINER_FILE).rename(target)
    (d / CONTAINER_FILE).symlink_to(target)
    with pytest.raises(FormatError) as e:
        verify_recording(d)
    assert str(e.value) == (f"{d / CONTAINER_FILE}: cannot open the container: Too many "
                            "levels of symbolic links")


def test_keys_json_over_1_mib_is_changed_even_when_the_header_commits_to_it(made, scratch):
    """The header is forged to commit to a keys.json of 1 MiB + 1 byte: it is not read (the
    limit), so it is "changed"; at exactly 1 MiB it is read and matches."""
    kit, src, _ = made
    for size, want in (((1 << 20) + 1, "changed"), (1 << 20, None)):
        d = _copy(src, scratch)
        data = (d / WRAPPED_KEYS_FILE).read_bytes()
        data += b" " * (size - len(data))
        (d / WRAPPED_KEYS_FILE).write_bytes(data)
        parts = _parts(d)
        _header(parts, lambda m, data=data: m.update(
            wrapped_keys_sha256=hashlib.sha256(data).hexdigest()))
        _forge(kit, d, parts)
        keys = [F("keys_changed", "content keys changed or missing: can no longer be "
                  f"decrypted (keys.json is {want})")] if want else []
        _check(d, kit, [F(*NO_MANIFEST, 12), *keys], org=False)


def test_exports_with_an_unusable_manifest_key_are_read_unchecked(made, scratch):
    """The manifest names no usable device key and none is trusted: the export records are
    still listed (their signatures cannot be checked against anything)."""
    from akkoord.store.exports import append_export

    kit, src, _ = made
    d = _copy(src, scratch)
    meta = append_export(d, kit.identity, kit.clock, copy_number=1, stick_id_sha256=None)
    _edit(d, lambda doc: doc.pop("device"))
    rep = _check(d, kit, [F("bad_signature", "the manifest names no usable device key")])
    assert rep.exports == [{"frame": 13, **meta}]
    assert rep.notes == []  # nothing to compare a fingerprint with


def test_a_manifest_that_differs_is_compared_again_in_the_whole_file_view(made, scratch):
    """The streaming pass compares the segment list entry by entry without building it; a
    difference is named segment by segment only by the whole-file view, so the pass starts
    again (the sink is reset once) — and a genuine manifest costs no second pass."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)

    def one_mac(doc):
        doc["segments"][0][3] = "00" * 32
    _edit(d, one_mac)
    sink = _Sink()
    rep = verify_recording(d, kit.org, sink=sink)
    assert sink.resets == 1 and len(sink.frames) == len(t)
    first_audio = min(i for i in t if t[i][4] == Kind.AUDIO)
    assert [f.to_json() for f in rep.findings] == [
        F("bad_signature", "the manifest's signature does not verify"),
        F("manifest_mismatch", "segment differs from the signed manifest", first_audio,
          t[first_audio][2]),
    ]


def _at_rate(kit, d, rate, change=None):
    """The header forged to `rate` (and frame `change`s made), re-chained: at 1 kHz a
    single sample is a millisecond, so a position one sample off shows in the second."""
    parts = _parts(d)
    _header(parts, lambda m: m["audio"].update(sample_rate=rate))
    for i, fields in (change or {}).items():
        parts[i][0] = dataclasses.replace(parts[i][0], **fields)
    _forge(kit, d, parts)
    return _table(d), frame_bytes(d / CONTAINER_FILE)


def _spoil(raw, i):
    bad = bytearray(raw[i])
    bad[HEADER_LEN + 2] ^= 1
    return [*raw[:i], bytes(bad), *raw[i + 1:]]


def test_damage_after_an_event_frame_is_placed_where_the_event_left_the_timeline(
        made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    t, raw = _at_rate(kit, d, 1000)
    rewrite(d, _spoil(raw, 4))
    dmg = [_at("damaged", f"{t[4][1]} damaged bytes (frame bytes do not match the frame's "
               "seal)", 4, 0, t[4][0], 1000)]
    _rule(kit, d, dmg)
    # an event frame that claims samples: a finding, and the damage after it is still at 0
    d = _copy(src, scratch)
    t, raw = _at_rate(kit, d, 1000, {3: {"samples": 5}})
    rewrite(d, _spoil(raw, 4))
    _rule(kit, d, [*dmg, _at("bad_frame", "a non-audio frame carries audio fields", 3, 0,
                             t[3][0], 1000)])


def test_in_the_whole_file_view_damage_before_every_frame_is_at_second_0(made, scratch):
    """50 bytes of junk before frame 0 and two frames swapped (the whole-file view, which
    reads the header's rate before it places damage): the junk is at sample 0."""
    kit, src, _ = made
    d = _copy(src, scratch)
    t, raw = _at_rate(kit, d, 1000)
    rewrite(d, [b"\x00" * 50, *raw[:9], raw[10], raw[9], *raw[11:]])
    _rule(kit, d, [
        F("damaged", "50 damaged bytes (not a frame header)", 0, 0, 0),
        _at("reordered_frame", "frame 9 is out of order (found after frame 10)", 9, t[9][2],
            50 + t[9][0] + t[10][1], 1000),
    ])


def test_in_the_whole_file_view_junk_at_the_end_explains_one_index_after_its_frame(
        made, scratch):
    """Frames 0–5, 9–12, then 6 and junk: the junk after frame 6 explains index 7 (one
    frame's worth), not 8 — frame 8 is missing."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    order = [*range(6), *range(9, 13), 6]
    rewrite(d, [*(parts[i] for i in order), b"x" * 200])
    size = sum(t[i][1] for i in order)
    _check(d, kit, [
        F("damaged", "last 200 bytes are not a whole frame (not a frame header): the "
          "recording is cut off or damaged here", 7, t[7][2], size),
        F("reordered_frame", "frame 6 is out of order (found after frame 12)", 6, t[6][2],
          size - t[6][1]),
        F("missing_frame", "frame 8 missing (cut out)", 8, t[7][2]),
    ])


def test_in_the_whole_file_view_junk_before_an_earlier_frame_explains_the_next_index(
        made, scratch):
    """Frames 0–5, 7, junk, 6, 9–12: the junk after frame 7 explains index 8, though the
    frame after it in the file is 6."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, [*parts[:6], parts[7], b"x" * 200, parts[6], *parts[9:]])
    at = t[6][0] + t[7][1]
    _check(d, kit, [
        F("damaged", "200 damaged bytes (not a frame header)", 8, t[8][2], at),
        F("reordered_frame", "frame 6 is out of order (found after frame 7)", 6, t[6][2],
          at + 200),
    ])
