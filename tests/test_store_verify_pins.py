"""The verifier's report to the word and the place: for each kind of damage, each finding's
code, message, frame, second and byte offset; the manifest, signature, device, keys and
export findings; the notes and statuses; and the per-frame rules of FORMAT.md §4, each
isolated by a frame forged with the device's own key (so only that rule can speak).

The older tests check that damage is *found*; these check *where* and *in what words*, so a
verifier that finds the right thing but names the wrong frame, second or byte fails."""

from __future__ import annotations

import dataclasses
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
    audio_mac,
    checkpoint_message,
    finish_frame,
    genesis_hash,
    nonce_for,
)
from akkoord.store.layout import CONTAINER_FILE, EXPORTS_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import MANIFEST_FILE, SIGNATURE_FILE
from akkoord.store.verify import load_content_keys, verify_recording
from storekit import RATE, SEG, fast_tmp, frame_bytes, frames_of, make_kit, record, rewrite

NOT_ANCHORED = ("device key not anchored: compare the fingerprint with the one the "
                "organisation publishes")


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


def _copy(src, scratch):
    dst = scratch / str(len(list(scratch.iterdir()))) / src.name
    shutil.copytree(src, dst)
    return dst


def _table(d):
    """index -> (offset, length, start_sample, samples, kind) of the genuine frames."""
    return {f.header.index: (f.offset, f.length, f.header.start_sample, f.header.samples,
                             f.header.kind) for f in frames_of(d / CONTAINER_FILE)}


def _sec(sample):
    return round(sample / RATE, 3)


def _where(frame=None, sample=None, offset=None):
    parts = []
    if frame is not None:
        parts.append(f"frame {frame}")
    if sample is not None:
        parts.append(f"second {_sec(sample):g}")
    if offset is not None:
        parts.append(f"byte {offset}")
    return f" [{', '.join(parts)}]" if parts else ""


def F(code, message, frame=None, sample=None, offset=None):
    """A finding as the report's JSON gives it."""
    return {"code": code, "message": message + _where(frame, sample, offset), "frame": frame,
            "second": None if sample is None else _sec(sample), "offset": offset}


def _check(d, kit, want, *, org=True, parallel=None, **kw):
    """The report's findings are exactly `want`, in order, in both scanning modes; the
    status follows them."""
    reports = [verify_recording(d, kit.org if org else None, parallel=p, **kw)
               for p in ((False, True) if parallel is None else (parallel,))]
    for rep in reports:
        assert [f.to_json() for f in rep.findings] == want
        assert rep.ok == (not want)
        if want:
            assert rep.status == "tampered"
    return reports[0]


# --- the genuine recording ----------------------------------------------------------------

def test_a_genuine_recording_reports_every_field(made):
    kit, src, _ = made
    doc = json.loads((src / MANIFEST_FILE).read_text())
    for org in (True, False):
        rep = _check(src, kit, [], org=org)
        j = rep.to_json()
        assert j == {
            "path": str(src), "kind": "recording", "ok": True, "status": "complete",
            "recording_id": src.name, "simulated": False, "frames": 13,
            "duration_seconds": doc["duration_seconds"],
            "device": {"fingerprint": kit.identity.fingerprint, "trusted": None},
            "checked": {"structure": True, "chain": True, "signature": True, "audio": org},
            "findings": [], "notes": [NOT_ANCHORED], "timeline": doc["timeline"],
            "exports": [], "unsigned_tail": None,
        }
        assert doc["duration_seconds"] == (5 * SEG + SEG // 2) / RATE


def test_the_trusted_device_is_named_trusted_and_another_is_refused_by_fingerprint(made):
    kit, src, _ = made
    rep = _check(src, kit, [], trusted_key=kit.identity.public)
    assert rep.device_trusted is True and rep.notes == []
    stranger = make_kit()
    try:
        fp, theirs = kit.identity.fingerprint, stranger.identity.fingerprint
        rep = _check(src, kit, [F("wrong_device", f"signed by device {fp[:16]}, not by the "
                                  f"expected device {theirs[:16]}")],
                     trusted_key=stranger.identity.public)
        assert rep.device_trusted is False and rep.notes == []
    finally:
        stranger.cleanup()


# --- damage of each kind, located ---------------------------------------------------------

def test_a_cut_out_frame_and_a_cut_out_run(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, parts[:6] + parts[7:])
    _check(d, kit, [F("missing_frame", "frame 6 missing (cut out)", 6, t[6][2])])
    rewrite(d, parts[:6] + parts[8:])
    _check(d, kit, [F("missing_frame", "frame 6–7 missing (cut out)", 6, t[6][2])])
    rewrite(d, parts[:5] + parts[9:])
    _check(d, kit, [F("missing_frame", "frame 5–8 missing (cut out)", 5, t[5][2])])


def test_a_frame_twice_out_of_order_or_conflicting(made, scratch):
    kit, src, other = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, parts[:7] + parts[6:])
    _check(d, kit, [F("duplicate_frame", "frame 6 appears twice", 6, t[6][2], t[7][0])])
    rewrite(d, [*parts[:6], parts[7], parts[6], *parts[8:]])
    _check(d, kit, [F("reordered_frame", "frame 6 is out of order (found after frame 7)", 6,
                      t[6][2], t[6][0] + t[7][1])])
    # another recording's frame 6 given this recording's id: the same index, other bytes
    mine = FrameHeader.unpack(parts[6][:HEADER_LEN])
    raw = frame_bytes(other / CONTAINER_FILE)[6]
    h = dataclasses.replace(FrameHeader.unpack(raw[:HEADER_LEN]),
                            recording_id=mine.recording_id)
    twin, _ = finish_frame(h.pack(), raw[HEADER_LEN : HEADER_LEN + h.meta_len],
                           raw[HEADER_LEN + h.meta_len : -SEAL_LEN])
    rewrite(d, [*parts[:7], twin, *parts[7:]])
    _check(d, kit, [F("conflicting_frame", "two different frames claim index 6", 6,
                      t[6][2], t[7][0])])


def test_a_damaged_frame_a_torn_tail_and_a_missing_end(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    bad = bytearray(parts[6])
    bad[200] ^= 1
    rewrite(d, [*parts[:6], bytes(bad), *parts[7:]])
    _check(d, kit, [F("damaged", f"{t[6][1]} damaged bytes (frame bytes do not match the "
                      "frame's seal)", 6, t[6][2], t[6][0])])
    rewrite(d, [*parts[:-1], parts[-1][:-5]])
    _check(d, kit, [F("truncated", f"last {t[12][1] - 5} bytes are not a whole frame "
                      "(incomplete frame): the recording is cut off or damaged here", 12,
                      t[12][2], t[12][0])])
    rewrite(d, parts[:-1])
    _check(d, kit, [F("truncated", "the recording ends after frame 11 without a final frame",
                      12, t[12][2])])
    end = t[12][0] + t[12][1]
    rewrite(d, [*parts, b"xxxx"])
    _check(d, kit, [F("truncated", "last 4 bytes are not a whole frame (incomplete frame "
                      "header): the recording is cut off or damaged here", 13, t[12][2], end)])
    rewrite(d, [*parts, b"x" * 200])
    _check(d, kit, [F("damaged", "last 200 bytes are not a whole frame (not a frame header): "
                      "the recording is cut off or damaged here", 13, t[12][2], end)])
    rewrite(d, [b"\x00" * 50, *parts])
    _check(d, kit, [F("damaged", "50 damaged bytes (not a frame header)", 0, 0, 0)])


def test_damage_in_the_first_frames_and_damage_over_a_cut(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    # damage, then two frames gone: the damage explains one index, the cut the other
    bad = bytearray(parts[6])
    bad[300] ^= 4
    rewrite(d, [*parts[:6], bytes(bad), *parts[9:]])
    _check(d, kit, [F("damaged", f"{t[6][1]} damaged bytes (frame bytes do not match the "
                      "frame's seal)", 6, t[6][2], t[6][0])])
    rewrite(d, [*parts[:5], bytes(bad), *parts[9:]])
    _check(d, kit, [F("damaged", f"{t[6][1]} damaged bytes (frame bytes do not match the "
                      "frame's seal)", 5, t[5][2], t[5][0])])
    rewrite(d, [*parts[:6], bytes(bad), *parts[6:7], *parts[8:]])  # damage, 6 again, 7 cut
    rep = verify_recording(d, kit.org)
    assert [f.code for f in rep.findings] == ["damaged", "missing_frame"]
    assert rep.findings[1].to_json() == F("missing_frame", "frame 7 missing (cut out)", 7,
                                          t[7][2])


def test_frames_from_another_recording_are_named_with_its_id(made, scratch):
    kit, src, other = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    theirs = frame_bytes(other / CONTAINER_FILE)
    msg = f"frame from another recording ({other.name}) spliced in after frame 5"
    rewrite(d, [*parts[:6], theirs[6], *parts[6:]])
    _check(d, kit, [F("foreign_frame", msg, 6, t[6][2], t[6][0])])
    rewrite(d, [*parts[:6], theirs[6], *parts[7:]])
    _check(d, kit, [F("foreign_frame", msg, 6, t[6][2], t[6][0]),
                    F("missing_frame", "frame 6 missing (cut out)", 6, t[6][2])])
    rewrite(d, [theirs[0], *parts])
    _check(d, kit, [F("foreign_frame", f"frame from another recording ({other.name}) "
                      "spliced in after frame -1", 0, 0, 0)])
    # two of theirs and one of ours out of order: the whole-file view, still named
    rewrite(d, [*parts[:6], theirs[6], theirs[7], parts[7], parts[6], *parts[8:]])
    rep = verify_recording(d, kit.org)
    assert [f.code for f in rep.findings] == ["foreign_frame", "foreign_frame",
                                              "reordered_frame"]
    assert rep.recording_id == src.name


def test_a_resealed_frame_breaks_the_chain_and_fails_its_tag(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    h = FrameHeader.unpack(parts[6][:HEADER_LEN])
    body = bytearray(parts[6][HEADER_LEN:-SEAL_LEN])
    body[10] ^= 1
    parts[6], _ = finish_frame(parts[6][:HEADER_LEN], b"", bytes(body))
    rewrite(d, parts)
    chain = F("chain_break", "frame does not chain to the frame before it", 7, t[7][2],
              t[7][0])
    _check(d, kit, [chain], org=False)
    rep = _check(d, kit, [chain, F("bad_tag", "the frame does not decrypt (authentication "
                                   "tag invalid)", 6, t[6][2], t[6][0])])
    assert rep.checked_audio and h.index == 6


def test_audio_that_does_not_match_its_mac(made, scratch):
    """A frame re-encrypted with the content key, its MAC left: found only with the key."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    keys = load_content_keys(d, kit.org)
    parts = frame_bytes(d / CONTAINER_FILE)
    hb = parts[6][:HEADER_LEN]
    aead = ChaCha20Poly1305(keys.seal_key)
    body = aead.encrypt(nonce_for(6, False), bytes(2 * SEG), hb)
    parts[6], _ = finish_frame(hb, b"", body)
    rewrite(d, parts)
    chain = F("chain_break", "frame does not chain to the frame before it", 7, t[7][2],
              t[7][0])
    _check(d, kit, [chain, F("audio_mismatch", "the audio does not match its MAC", 6, t[6][2],
                             t[6][0])])
    assert audio_mac(keys.mac_key, bytes(2 * SEG)) != FrameHeader.unpack(hb).audio_mac


# --- the manifest, its signature, the keys, the exports -----------------------------------

def test_manifest_and_signature_findings(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    (d / SIGNATURE_FILE).unlink()
    _check(d, kit, [F("missing_signature", "manifest.sig is missing or unreadable")])
    shutil.copy(src / SIGNATURE_FILE, d / SIGNATURE_FILE)
    sig = (d / SIGNATURE_FILE).read_bytes()
    (d / SIGNATURE_FILE).write_bytes(sig[:5] + (b"A" if sig[5:6] != b"A" else b"B") + sig[6:])
    _check(d, kit, [F("bad_signature", "the manifest's signature does not verify")])
    (d / MANIFEST_FILE).unlink()
    rep = _check(d, kit, [F("missing_signature", "no signed manifest: the recording was never "
                            "closed, or its manifest was removed", 12)])
    assert rep.duration_seconds is None and rep.timeline == []
    assert rep.device_fingerprint == kit.identity.fingerprint  # from the header


def _edit(d, change):
    doc = json.loads((d / MANIFEST_FILE).read_text())
    change(doc)
    (d / MANIFEST_FILE).write_text(json.dumps(doc))


def test_a_changed_manifest_is_named_by_field_and_by_segment(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    bad_sig = F("bad_signature", "the manifest's signature does not verify")
    _edit(d, lambda doc: doc.update(duration_seconds=1, stop={"reason": "party_a"}))
    rep = _check(d, kit, [bad_sig, F("manifest_mismatch", "the signed manifest differs from "
                                     "the container in: duration_seconds, stop")])
    assert rep.duration_seconds == 1

    def seg(doc):
        doc["segments"][1][3] = "00" * 32
        doc["segments"][3][3] = "11" * 32
    shutil.copy(src / MANIFEST_FILE, d / MANIFEST_FILE)
    _edit(d, seg)
    _check(d, kit, [bad_sig,
                    F("manifest_mismatch", "segment differs from the signed manifest", 6,
                      t[6][2]),
                    F("manifest_mismatch", "segment differs from the signed manifest", 9,
                      t[9][2])])
    shutil.copy(src / MANIFEST_FILE, d / MANIFEST_FILE)
    _edit(d, lambda doc: doc["segments"].pop())
    rep = _check(d, kit, [bad_sig, F("manifest_mismatch", "segment differs from the signed "
                                     "manifest", 10, t[10][2])])
    shutil.copy(src / MANIFEST_FILE, d / MANIFEST_FILE)
    # the same values in another spelling: the bytes differ, no field does
    (d / MANIFEST_FILE).write_text(json.dumps(json.loads((src / MANIFEST_FILE).read_text()),
                                              indent=1))
    _check(d, kit, [bad_sig, F("manifest_mismatch", "the signed manifest differs from the "
                               "container")])


def test_a_manifest_for_another_recording_or_device(made, scratch):
    kit, src, other = made
    d = _copy(src, scratch)
    bad_sig = F("bad_signature", "the manifest's signature does not verify")
    _edit(d, lambda doc: doc.update(recording_id=other.name))
    _check(d, kit, [bad_sig,
                    F("manifest_mismatch", f"the manifest is for recording {other.name}, "
                      f"not {src.name}"),
                    F("manifest_mismatch", "the signed manifest differs from the container "
                      "in: recording_id")])
    shutil.copy(src / MANIFEST_FILE, d / MANIFEST_FILE)
    stranger = make_kit()
    try:
        _edit(d, lambda doc: doc.update(device=stranger.identity.public.to_json()))
        rep = _check(d, kit, [bad_sig,
                              F("manifest_mismatch", "the manifest's device key differs from "
                                "the recording's header"),
                              F("manifest_mismatch", "the signed manifest differs from the "
                                "container in: device")])
        assert rep.device_fingerprint == stranger.identity.fingerprint
    finally:
        stranger.cleanup()
    _edit(d, lambda doc: doc.pop("device"))
    _check(d, kit, [F("bad_signature", "the manifest names no usable device key")])


def test_keys_json_missing_changed_or_deleted_with_record(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    (d / WRAPPED_KEYS_FILE).unlink()
    want = [F("keys_changed", "content keys changed or missing: can no longer be decrypted "
              "(keys.json is missing)")]
    _check(d, kit, want, org=False)
    rep = _check(d, kit, [], org=False, keys_deleted=True)
    assert rep.notes == [NOT_ANCHORED, "keys.json missing: the custody log records this "
                         "recording's deletion"]
    (d / WRAPPED_KEYS_FILE).write_bytes((src / WRAPPED_KEYS_FILE).read_bytes() + b" ")
    _check(d, kit, [F("keys_changed", "content keys changed or missing: can no longer be "
                      "decrypted (keys.json is changed)")], org=False)
    rep = _check(d, kit, [], org=False, keys_deleted=True)
    assert rep.notes[1] == "keys.json changed: the custody log records this recording's deletion"
    (d / WRAPPED_KEYS_FILE).unlink()
    (d / WRAPPED_KEYS_FILE).mkdir()
    _check(d, kit, [F("keys_changed", "content keys changed or missing: can no longer be "
                      "decrypted (keys.json is changed)")], org=False)


def test_an_unreadable_exports_file_is_a_finding(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    (d / EXPORTS_FILE).write_bytes(b"AKF1" + bytes(200))
    _check(d, kit, [F("export_record", "export record damaged: not a frame header", 13,
                      None, 0)])


def test_folders_that_are_no_recording_are_refused_by_name(made, scratch):
    _kit, src, _ = made
    with pytest.raises(FormatError) as e:
        verify_recording(scratch / "nothing")
    assert str(e.value) == f"{scratch / 'nothing'}: not a folder"
    (scratch / "empty").mkdir()
    with pytest.raises(FormatError) as e:
        verify_recording(scratch / "empty")
    assert str(e.value) == (f"{scratch / 'empty'}: no {CONTAINER_FILE} here — not an akkoord "
                            "recording folder")
    d = _copy(src, scratch)
    (d / CONTAINER_FILE).write_bytes(b"")
    for parallel in (False, True):
        with pytest.raises(FormatError) as e:
            verify_recording(d, parallel=parallel)
        assert str(e.value) == f"{d / CONTAINER_FILE}: empty — the recording never started"


# --- per-frame rules, each isolated by forging with the device's key ------------------------

def _parts(d):
    out = []
    for raw in frame_bytes(d / CONTAINER_FILE):
        h = FrameHeader.unpack(raw[:HEADER_LEN])
        out.append([h, raw[HEADER_LEN : HEADER_LEN + h.meta_len],
                    raw[HEADER_LEN + h.meta_len : -SEAL_LEN]])
    return out


def _forge(kit, d, parts, *, drop_manifest=True):
    """Re-chain every frame from the genesis and re-sign every checkpoint with the device
    key: the chain and the checkpoints are whole, so only the rule a change breaks speaks.
    (Keyless verification: the AEAD binds the old headers.)"""
    rid = bytes.fromhex(d.name)
    prev = genesis_hash(rid)
    out = []
    for h, meta, body in parts:
        h = dataclasses.replace(h, prev=prev, meta_len=len(meta), body_len=len(body))
        hb = h.pack()
        if h.kind == Kind.CHECKPOINT and len(body) == 64:
            body = kit.identity.sign(checkpoint_message(hb, meta))
        raw, prev = finish_frame(hb, meta, body)
        out.append(raw)
    rewrite(d, out)
    if drop_manifest:
        (d / MANIFEST_FILE).unlink()


NO_MANIFEST = ("missing_signature", "no signed manifest: the recording was never closed, "
               "or its manifest was removed")


def _rule(kit, d, want, last=12):
    _check(d, kit, [*want, F(*NO_MANIFEST, last)], org=False)


def test_forging_nothing_leaves_nothing_to_find(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    _forge(kit, d, _parts(d))
    _rule(kit, d, [])


def _one(made, scratch, index, **change):
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    h, meta, body = parts[index]
    parts[index] = [dataclasses.replace(h, **{k: v for k, v in change.items()
                                              if k not in ("meta", "body")}),
                    change.get("meta", meta), change.get("body", body)]
    _forge(kit, d, parts)
    return kit, d, _table(src)


def test_rule_metadata_must_be_a_json_object(made, scratch):
    kit, d, t = _one(made, scratch, 3, meta=b"[1]")
    off = t[3][0]
    _rule(kit, d, [F("bad_frame", "metadata is not a JSON object", 3, 0, off)])


def test_rule_the_header_comes_first_and_only_first(made, scratch):
    _kit, d, t = _one(made, scratch, 3, kind=int(Kind.HEADER))
    rep = verify_recording(d)
    assert F("bad_frame", "the header frame must come first, and only first", 3, 0,
             t[3][0]) in [f.to_json() for f in rep.findings]


def test_rule_export_frames_do_not_belong_in_the_container(made, scratch):
    _kit, d, t = _one(made, scratch, 3, kind=int(Kind.EXPORT))
    rep = verify_recording(d)
    assert F("bad_frame", "export frames belong in exports.akr, not the container", 3, 0,
             t[3][0]) in [f.to_json() for f in rep.findings]


def test_rule_only_the_end_frame_carries_the_final_flag(made, scratch):
    kit, d, t = _one(made, scratch, 3, flags=1)
    _rule(kit, d, [F("bad_frame", "only the END frame carries the final flag", 3, 0,
                     t[3][0])])
    kit, d, t = _one(made, scratch, 12, flags=0)
    _rule(kit, d, [F("bad_frame", "only the END frame carries the final flag", 12, t[12][2],
                     t[12][0])])


def test_rule_the_timeline_has_no_holes(made, scratch):
    _kit, d, t = _one(made, scratch, 8, start_sample=2001)
    # frame 8 starts one sample late, and so does everything that follows it
    rep = verify_recording(d)
    got = [f.to_json() for f in rep.findings]
    assert got[0] == F("timeline", "starts at sample 2001, expected 2000", 8, 2000, t[8][0])
    assert got[1] == F("timeline", "starts at sample 2800, expected 2801", 9, 2801, t[9][0])


def test_rule_audio_length_and_sample_count(made, scratch):
    _, d, t = _one(made, scratch, 6, samples=0)
    rep = verify_recording(d)
    assert F("bad_frame", "audio length does not match its sample count", 6, t[6][2],
             t[6][0]) in [f.to_json() for f in rep.findings]
    _kit, d, t = _one(made, scratch, 6, body=bytes(2 * SEG + 17))
    rep = verify_recording(d)
    assert next(f.to_json() for f in rep.findings) == F(
        "bad_frame", "audio length does not match its sample count", 6, t[6][2], t[6][0])


def test_rule_a_gap_is_never_empty(made, scratch):
    _kit, d, t = _one(made, scratch, 7, samples=0)
    rep = verify_recording(d)
    assert next(f.to_json() for f in rep.findings) == F(
        "bad_frame", "a gap of zero samples", 7, t[7][2], t[7][0])


def test_rule_a_non_audio_frame_carries_no_audio_fields(made, scratch):
    for change in ({"samples": 5}, {"audio_mac": b"\x01" * 32}):
        _kit, d, t = _one(made, scratch, 3, **change)
        rep = verify_recording(d)
        assert next(f.to_json() for f in rep.findings) == F(
            "bad_frame", "a non-audio frame carries audio fields", 3, 0, t[3][0])
        shutil.rmtree(d)


def test_rule_event_bodies_are_one_tag(made, scratch):
    kit, d, t = _one(made, scratch, 3, body=bytes(17))
    _rule(kit, d, [F("bad_frame", "event frame body is not one AEAD tag", 3, 0, t[3][0])])


def test_rule_a_checkpoint_body_is_one_signature(made, scratch):
    kit, d, t = _one(made, scratch, 11, body=bytes(63))
    _rule(kit, d, [F("bad_frame", "a checkpoint's body is not one signature", 11, t[11][2],
                     t[11][0])])


def test_rule_a_checkpoint_signature_must_verify(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = _parts(d)
    _forge(kit, d, parts)
    raw = frame_bytes(d / CONTAINER_FILE)
    h = FrameHeader.unpack(raw[11][:HEADER_LEN])
    body = bytearray(raw[11][HEADER_LEN + h.meta_len : -SEAL_LEN])
    body[0] ^= 1
    raw[11], seal = finish_frame(raw[11][:HEADER_LEN], raw[11][HEADER_LEN : HEADER_LEN
                                                                + h.meta_len], bytes(body))
    end = FrameHeader.unpack(raw[12][:HEADER_LEN])
    eh = dataclasses.replace(end, prev=seal).pack()
    raw[12], _ = finish_frame(eh, raw[12][HEADER_LEN : HEADER_LEN + end.meta_len],
                              raw[12][HEADER_LEN + end.meta_len : -SEAL_LEN])
    rewrite(d, raw)
    _rule(kit, d, [F("bad_checkpoint", "the checkpoint's signature does not verify", 11,
                     t[11][2], t[11][0])])


def test_rule_checkpoints_at_the_start_and_before_the_end(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = _parts(d)
    # drop the start checkpoint and the one before END, renumbering the rest
    kept = [p for i, p in enumerate(parts) if i not in (1, 11)]
    for i, p in enumerate(kept):
        p[0] = dataclasses.replace(p[0], index=i)
    _forge(kit, d, kept)
    rep = verify_recording(d)
    got = [f.to_json() for f in rep.findings]
    second = t[2][0] - t[1][1]
    assert got[0] == F("checkpoint", "frame 1 is not the signed start checkpoint", 1, 0,
                       second)
    assert F("checkpoint", "the END frame does not follow a signed checkpoint", 10, t[12][2],
             t[12][0] - t[1][1] - t[11][1]) in got


def _interrupted(scratch, segments: int, checkpoint_last: bool = False):
    """A recording that lost power after `segments` segments, closed by recovery."""
    from akkoord.store.recovery import STORAGE_ERROR, recover_all

    kit = make_kit(scratch / "k")
    w = kit.writer()
    w.add_event("start")
    for i in range(segments):
        w.add_audio(bytes([i]) * (2 * SEG))
    if checkpoint_last:
        w.checkpoint()
    w._close_fd()
    kit.clock.advance(60)
    recover_all(kit.state, kit.identity, kit.clock, kit.custody, STORAGE_ERROR)
    return verify_recording(w.path, kit.org)


def test_interrupted_recording_notes_and_unsigned_tail(scratch):
    rep = _interrupted(scratch, 4)
    assert rep.ok and rep.status == "interrupted"
    assert rep.unsigned_tail == {"after_frame": 1, "frames": 5, "samples": 4 * SEG,
                                 "seconds": 4 * SEG / RATE}
    assert rep.notes == [
        NOT_ANCHORED,
        "interrupted: the device lost power or stopped while recording; the recording was "
        "closed afterwards with a signed note",
        f"unsigned tail: the last {4 * SEG / RATE:g} s (5 frames, after frame 1) were "
        "recovered after the device's last signed checkpoint; they chain on, but the device "
        "never signed them",
    ]


def test_interrupted_right_after_a_checkpoint_has_no_unsigned_tail(scratch):
    """Power lost just after a signed checkpoint: everything before RECOVERY is signed, so
    the recording is interrupted, with no unsigned tail and no note of one."""
    rep = _interrupted(scratch, 3, checkpoint_last=True)
    assert rep.ok and rep.status == "interrupted"
    assert rep.unsigned_tail is None
    assert rep.notes == [
        NOT_ANCHORED,
        "interrupted: the device lost power or stopped while recording; the recording was "
        "closed afterwards with a signed note",
    ]


def test_a_simulated_recording_says_so(scratch):
    kit = make_kit(scratch / "k")
    w = kit.writer(simulated=True)
    w.add_event("start")
    w.add_audio(bytes(2 * SEG))
    w.close("party_a", party="A")
    rep = verify_recording(w.path)
    assert rep.ok and rep.simulated is True
    assert rep.notes == [NOT_ANCHORED, "simulated: made by the simulator, not at a real meeting"]


def test_a_field_added_or_removed_is_named_and_only_20_segments_are(scratch):
    kit = make_kit(scratch / "k")
    w, _ = record(kit, 22)
    t = _table(w.path)
    d = _copy(w.path, scratch)
    bad_sig = F("bad_signature", "the manifest's signature does not verify")
    _edit(d, lambda doc: (doc.pop("stop"), doc.update(extra=1)))
    _check(d, kit, [bad_sig, F("manifest_mismatch", "the signed manifest differs from the "
                               "container in: extra, stop")])
    shutil.copy(w.path / MANIFEST_FILE, d / MANIFEST_FILE)

    def every_mac(doc):
        for s in doc["segments"]:
            s[3] = "00" * 32
    _edit(d, every_mac)
    audio = [i for i in sorted(t) if t[i][4] == Kind.AUDIO]
    assert len(audio) == 22
    _check(d, kit, [bad_sig, *(F("manifest_mismatch", "segment differs from the signed "
                                 "manifest", i, t[i][2]) for i in audio[:20])])


def test_wrapped_keys_that_are_gone_or_unreadable_are_refused_by_path(made, scratch):
    from akkoord.errors import KeyMaterialError

    kit, src, _ = made
    d = _copy(src, scratch)
    path = d / WRAPPED_KEYS_FILE
    path.unlink()
    for call in (lambda: load_content_keys(d, kit.org), lambda: verify_recording(d, kit.org)):
        with pytest.raises(KeyMaterialError) as e:
            call()
        assert str(e.value) == (f"{path}: missing — the wrapped keys were destroyed (deleted "
                                "recording?)")
    good = json.loads((src / WRAPPED_KEYS_FILE).read_text())
    for doc in ("{", {**good, "recording_id": "abcd"}, {**good, "recipients": {}},
                {k: v for k, v in good.items() if k != "recipients"}, [1],
                {**good, "recording_id": "zz" * 16}):
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        with pytest.raises(KeyMaterialError) as e:
            load_content_keys(d, kit.org)
        assert str(e.value) == f"{path}: not a valid wrapped-keys file"
    path.write_text(json.dumps(good))
    assert load_content_keys(d, kit.org) == load_content_keys(src, kit.org)


def _header_meta(made, scratch, change):
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = _parts(d)
    meta = json.loads(parts[0][1])
    change(meta)
    parts[0][1] = json.dumps(meta).encode()
    _forge(kit, d, parts)
    return kit, d


@pytest.mark.parametrize("change", [
    lambda m: m.pop("audio"), lambda m: m["audio"].update(sample_rate=0),
    lambda m: m["audio"].update(sample_rate=10**6 + 1), lambda m: m["audio"].update(channels=33),
    lambda m: m["audio"].update(sample_width="twee"), lambda m: m.pop("device"),
    lambda m: m["device"].update(public_key="AAAA"),
])
def test_a_header_with_unreadable_parameters_is_a_finding_and_48_khz_is_assumed(
        made, scratch, change):
    _kit, d = _header_meta(made, scratch, change)
    rep = verify_recording(d)
    got = [f.to_json() for f in rep.findings]
    assert got[0] == F("bad_frame", "the header frame's parameters are unreadable", 0, 0)
    assert got[-1] == F(*NO_MANIFEST, 12)
    # the frames' seconds are now counted at 48 kHz: the END frame's finding says so
    (d / CONTAINER_FILE).write_bytes((d / CONTAINER_FILE).read_bytes()[:-10])
    rep = verify_recording(d)
    cut = next(f for f in rep.findings if f.code == "truncated")
    assert cut.second == round((5 * SEG + SEG // 2) / 48000, 3)


def test_a_header_of_another_format_is_refused(made, scratch):
    _, d = _header_meta(made, scratch, lambda m: m.update(format="akkoord-recording/1"))
    with pytest.raises(FormatError) as e:
        verify_recording(d)
    assert str(e.value) == f"{d}: unsupported container format 'akkoord-recording/1'"
    _kit, d = _header_meta(made, scratch, lambda m: m.pop("format"))
    with pytest.raises(FormatError) as e:
        verify_recording(d)
    assert str(e.value) == f"{d}: unsupported container format None"


def test_the_unsigned_tail_s_rate_falls_back_to_48_khz(scratch):
    """The rate the unsigned tail's seconds are counted at: the header's, else 48 kHz."""
    from akkoord.store.reader import parse_meta
    from akkoord.store.verify import _rate_of, _Seen

    kit = make_kit(scratch / "k")
    w, _ = record(kit, 2)
    first = frames_of(w.container)[0]
    meta, _ = parse_meta(first)
    assert _rate_of(_Seen(first, meta, None)) == RATE
    for bad in (None, {}, {"audio": {}}, {"audio": {"sample_rate": "x"}},
                {"audio": {"sample_rate": 0}}, {"audio": None}):
        assert _rate_of(_Seen(first, bad, None)) == 48000


def test_which_missing_indices_damage_explains():
    """_Damaged: index ranges lost to damage, merged; `lost` names the rest of a gap."""
    from akkoord.store.verify import _Damaged

    d = _Damaged()
    for lo, hi in ((8, 9), (3, 5), (4, 6), (12, 14), (14, 15)):
        d.add(lo, hi)
    d.normalise()
    assert (d.lo, d.hi) == ([3, 8, 12], [6, 9, 15])
    assert d.lost(0, 20) == (0, 19, 20 - 3 - 1 - 3)
    assert d.lost(0, 3) == (0, 2, 3)
    assert d.lost(3, 6) is None and d.lost(12, 15) is None and d.lost(9, 9) is None
    assert d.lost(2, 4) == (2, 2, 1)
    assert d.lost(5, 8) == (6, 7, 2)
    assert d.lost(4, 13) == (6, 11, 5)
    assert d.lost(9, 12) == (9, 11, 3)
    assert d.lost(15, 17) == (15, 16, 2)
    empty = _Damaged()
    empty.normalise()
    assert empty.lost(2, 5) == (2, 4, 3)


def test_in_the_whole_file_view_a_tie_goes_to_the_manifest(made, scratch):
    """As many foreign frames as ours, theirs first, ours out of order (the whole-file view):
    the recording is the one its manifest names."""
    _, src, other = made
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    theirs = frame_bytes(other / CONTAINER_FILE)
    rewrite(d, [*theirs[6:12], *parts[:4], parts[5], parts[4]])
    rep = verify_recording(d)
    assert rep.recording_id == src.name
    assert [f.code for f in rep.findings][:6] == ["foreign_frame"] * 6


def test_in_the_whole_file_view_damage_explains_the_frames_up_to_the_next_good_one(
        made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    six, seven = bytearray(parts[6]), bytearray(parts[7])
    six[300] ^= 1
    seven[100] ^= 1
    # frames 6 and 7 damaged (one range), 9 and 10 swapped: the whole-file view
    rewrite(d, [*parts[:6], bytes(six), bytes(seven), parts[8], parts[10], parts[9],
                *parts[11:]])
    _check(d, kit, [
        F("damaged", f"{t[6][1] + t[7][1]} damaged bytes (frame bytes do not match the "
          "frame's seal)", 6, t[6][2], t[6][0]),
        F("reordered_frame", "frame 9 is out of order (found after frame 10)", 9, t[9][2],
          t[9][0] + t[10][1]),
    ])


def test_keys_for_another_organisation_or_too_large_are_refused_by_path(made, scratch):
    from akkoord.errors import KeyMaterialError
    from akkoord.store.keys import generate_org_key

    kit, src, _ = made
    d = _copy(src, scratch)
    path = d / WRAPPED_KEYS_FILE
    other = generate_org_key("x25519")
    with pytest.raises(KeyMaterialError) as e:
        load_content_keys(d, other)
    assert str(e.value) == (f"{path}: this recording is not wrapped to key "
                            f"{other.public.fingerprint[:16]} (it is wrapped to: "
                            f"{kit.org.public.fingerprint[:16]})")
    text = path.read_bytes()
    path.write_bytes(text + b" " * ((1 << 20) - len(text)))  # 1 MiB: still read
    assert load_content_keys(d, kit.org) == load_content_keys(src, kit.org)
    path.write_bytes(text + b" " * ((1 << 20) - len(text) + 1))
    with pytest.raises(KeyMaterialError) as e:
        load_content_keys(d, kit.org)
    assert str(e.value) == f"{path}: not a valid wrapped-keys file"


class _Sink:
    """A FrameSink that counts: a genuine recording is verified in one pass, each frame
    handed over once, never reset."""

    def __init__(self):
        self.frames, self.resets = [], 0

    def frame(self, frame, pcm, error):
        self.frames.append((frame.offset, None if pcm is None else bytes(pcm), error))

    def reset(self):
        self.resets += 1
        self.frames.clear()


def test_a_genuine_recording_is_verified_in_one_pass(made):
    kit, src, _ = made
    t = _table(src)
    for parallel in (False, True):
        sink = _Sink()
        rep = verify_recording(src, kit.org, sink=sink, parallel=parallel)
        assert rep.ok and sink.resets == 0
        assert [o for o, _, _ in sink.frames] == [t[i][0] for i in sorted(t)]
        assert [e for _, _, e in sink.frames] == [None] * len(t)
        assert [len(p) if p is not None else None for _, p, _ in sink.frames] == [
            2 * t[i][3] if t[i][4] == Kind.AUDIO else None for i in sorted(t)]


def test_an_out_of_order_recording_is_read_again_from_a_reset(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, [*parts[:6], parts[7], parts[6], *parts[8:]])
    sink = _Sink()
    verify_recording(d, kit.org, sink=sink)
    assert sink.resets == 1 and len(sink.frames) == len(parts)


def test_export_records_are_listed_and_a_stranger_s_is_a_finding(made, scratch):
    from akkoord.store.exports import append_export
    from akkoord.store.keys import DeviceIdentity

    kit, src, _ = made
    d = _copy(src, scratch)
    meta = append_export(d, kit.identity, kit.clock, copy_number=1, stick_id_sha256=None)
    rep = _check(d, kit, [])
    assert rep.exports == [{"frame": 13, **meta}]
    d = _copy(src, scratch)
    append_export(d, DeviceIdentity.generate(), kit.clock, copy_number=1, stick_id_sha256=None)
    for trusted in (None, kit.identity.public):
        rep = _check(d, kit, [F("export_record", "export record signature does not verify",
                                13, None, 0)], trusted_key=trusted)
        assert [e["frame"] for e in rep.exports] == [13]


def test_an_exports_file_that_is_no_file_is_a_finding_in_its_words(made, scratch):
    kit, src, _ = made
    d = _copy(src, scratch)
    (d / EXPORTS_FILE).mkdir()
    _check(d, kit, [F("export_record", f"{d / EXPORTS_FILE}: not a regular file (a folder); "
                      "refusing it")])


@pytest.mark.parametrize("name, manifest, rid", [
    ("opname", True, "manifest"), (None, False, "folder"), ("opname", False, None)])
def test_with_no_frame_at_all_the_id_is_the_manifest_s_else_the_folder_s(
        made, scratch, name, manifest, rid):
    _kit, src, _ = made
    d = scratch / (name or src.name)
    shutil.copytree(src, d)
    (d / CONTAINER_FILE).write_bytes(b"x" * 300)
    if not manifest:
        (d / MANIFEST_FILE).unlink()
    rep = verify_recording(d)
    assert rep.recording_id == (src.name if rid else None)
    assert next(f.code for f in rep.findings) == "damaged"


def test_a_manifest_without_a_segment_list_is_compared_in_full(made, scratch):
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    _edit(d, lambda doc: doc.pop("segments"))
    audio = [i for i in sorted(t) if t[i][4] == Kind.AUDIO]
    _check(d, kit, [F("bad_signature", "the manifest's signature does not verify"),
                    *(F("manifest_mismatch", "segment differs from the signed manifest", i,
                        t[i][2]) for i in audio)])


def test_without_its_header_frame_nothing_is_read_from_another_frame_s_meta(made, scratch):
    """Frame 0 cut out: the device key and keys.json are not compared with the meta of
    whatever frame came first."""
    kit, src, _ = made
    t = _table(src)
    d = _copy(src, scratch)
    rewrite(d, frame_bytes(d / CONTAINER_FILE)[1:])
    _check(d, kit, [
        F("missing_frame", "frame 0 missing (cut out)", 0, 0),
        F("bad_frame", "the header frame must come first, and only first", 1, 0, 0),
        F("checkpoint", "frame 2, the second frame read, is not the signed start checkpoint",
          2, 0, t[2][0] - t[1][0]),
    ], org=False)


def test_a_timeline_that_is_not_a_list_is_reported_empty(made, scratch):
    _, src, _ = made
    d = _copy(src, scratch)
    _edit(d, lambda doc: doc.update(timeline="gisteren"))
    rep = verify_recording(d)
    assert rep.timeline == [] and not rep.ok
