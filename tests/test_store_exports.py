"""A recording's own record of its copies (exports.akr, FORMAT.md §6): each frame chains on
from the manifest's head, is signed, and each kind of damage is named at its frame."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from akkoord.errors import FormatError
from akkoord.store.exports import ExportRecord, append_export, read_exports
from akkoord.store.format import (
    EXPORT_SIG_CONTEXT,
    HEADER_LEN,
    SIGNATURE_LEN,
    FrameHeader,
    Kind,
    finish_frame,
)
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import EXPORTS_FILE
from akkoord.store.manifest import MANIFEST_FILE, read_manifest
from storekit import frames_of, make_kit, record


@pytest.fixture
def rec(tmp_path):
    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=2)
    return kit, w.path


def _append(kit, path, n=1, **kw):
    return append_export(path, kit.identity, kit.clock, copy_number=n,
                         stick_id_sha256=kw.pop("stick", None), **kw)


def test_export_frames_chain_on_from_the_manifest(rec):
    kit, path = rec
    doc = read_manifest(path).doc
    old = os.umask(0o022)
    try:
        m1 = _append(kit, path, 1, stick="ab" * 32)
    finally:
        os.umask(old)
    kit.clock.advance(5)
    m2 = _append(kit, path, 2, made_by="organisation", custody_seq=17)
    assert m1 == {"event": "export", "copy_number": 1, "made_by": "device",
                  "stick_id_sha256": "ab" * 32, "time": m1["time"]}
    assert m2 == {"event": "export", "copy_number": 2, "made_by": "organisation",
                  "stick_id_sha256": None, "time": m2["time"], "custody_seq": 17}
    assert m1["time"] != m2["time"]
    file = path / EXPORTS_FILE
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    f1, f2 = frames_of(file)
    for f, index, prev in ((f1, doc["frame_count"], bytes.fromhex(doc["chain_head"])),
                           (f2, doc["frame_count"] + 1, f1.seal)):
        h = f.header
        assert (h.kind, h.flags, h.index, h.samples) == (Kind.EXPORT, 0, index, 0)
        assert h.start_sample == doc["duration_samples"]
        assert h.recording_id.hex() == doc["recording_id"] and h.prev == prev
        assert h.audio_mac == bytes(32)
    got = read_exports(path, kit.identity.public)
    assert got == [
        ExportRecord(doc["frame_count"], 0, m1, None, f1.seal),
        ExportRecord(doc["frame_count"] + 1, f2.offset, m2, None, f2.seal),
    ]
    assert read_exports(path) == got  # no key: chained, signature not checked


def test_no_record_yet_is_no_copies(rec):
    kit, path = rec
    assert read_exports(path, kit.identity.public) == []


def test_another_devices_signature_is_named(rec):
    kit, path = rec
    _append(kit, path)
    other = DeviceIdentity.generate()
    (r,) = read_exports(path, other.public)
    assert r.problem == "signature does not verify"
    (r,) = read_exports(path, kit.identity.public)
    assert r.problem is None


def test_a_frame_signed_for_another_use_is_refused(rec):
    """The signature covers the export label: the same bytes signed without it fail."""
    kit, path = rec
    _append(kit, path)
    (f,) = frames_of(path / EXPORTS_FILE)
    at = HEADER_LEN + len(f.meta_bytes)
    body = (path / EXPORTS_FILE).read_bytes()[at : at + SIGNATURE_LEN]
    signed = f.header_bytes + f.meta_bytes
    assert kit.identity.public.verify(body, EXPORT_SIG_CONTEXT + signed)
    assert not kit.identity.public.verify(body, signed)


def test_a_record_from_another_recording_is_named(rec, tmp_path):
    kit, path = rec
    w2, _ = record(kit, segments=1)
    _append(kit, w2.path)
    shutil.copy(w2.path / EXPORTS_FILE, path / EXPORTS_FILE)
    (r,) = read_exports(path, kit.identity.public)
    assert r.problem == "belongs to another recording"
    with pytest.raises(FormatError) as err:
        _append(kit, path, 2)
    assert str(err.value) == (
        f"{path / EXPORTS_FILE}: export record {r.index}: belongs to another recording; "
        "not appending to a damaged record")


def test_a_dropped_copy_breaks_the_chain_at_the_next(rec):
    kit, path = rec
    for n in (1, 2, 3):
        _append(kit, path, n)
    file = path / EXPORTS_FILE
    _, f2, f3 = frames_of(file)
    data = file.read_bytes()
    file.write_bytes(data[: f2.offset] + data[f3.offset:])  # copy 2 removed
    first = read_manifest(path).doc["frame_count"]
    r1, r3 = read_exports(path, kit.identity.public)
    assert r1.problem is None
    assert (r3.index, r3.offset) == (first + 2, f2.offset)
    assert r3.problem == f"does not chain on (index {first + 2}, expected {first + 1})"


def test_a_reordered_record_breaks_the_chain(rec):
    kit, path = rec
    for n in (1, 2):
        _append(kit, path, n)
    file = path / EXPORTS_FILE
    _, f2 = frames_of(file)
    data = file.read_bytes()
    file.write_bytes(data[f2.offset:] + data[: f2.offset])
    first = read_manifest(path).doc["frame_count"]
    a, b = read_exports(path, kit.identity.public)
    assert a.problem == f"does not chain on (index {first + 1}, expected {first})"
    # the second is frame `first` after frame `first + 1`: its index is wrong again
    assert b.problem == f"does not chain on (index {first}, expected {first + 2})"


def test_a_frame_with_the_right_index_but_another_prev_is_refused(rec):
    """Re-sealed from another device's record of the same recording: index fits, prev not."""
    kit, path = rec
    _append(kit, path)
    file = path / EXPORTS_FILE
    (f,) = frames_of(file)
    h = f.header
    forged = FrameHeader(kind=h.kind, flags=h.flags, meta_len=h.meta_len, index=h.index,
                         samples=h.samples, start_sample=h.start_sample, body_len=h.body_len,
                         recording_id=h.recording_id, prev=bytes(32), audio_mac=h.audio_mac)
    head = forged.pack()
    sig = kit.identity.sign(EXPORT_SIG_CONTEXT + head + f.meta_bytes)
    file.write_bytes(finish_frame(head, f.meta_bytes, sig)[0])
    (r,) = read_exports(path, kit.identity.public)
    assert r.problem == f"does not chain on (index {h.index}, expected {h.index})"


def test_a_frame_of_another_kind_is_named(rec):
    kit, path = rec
    (container_frame,) = [f for f in frames_of(path / "recording.akr") if f.header.kind ==
                          Kind.END]
    data = (path / "recording.akr").read_bytes()
    (path / EXPORTS_FILE).write_bytes(
        data[container_frame.offset: container_frame.offset + container_frame.length])
    (r,) = read_exports(path, kit.identity.public)
    assert r.problem == f"kind {int(Kind.END)} is not an export frame"


def test_damaged_bytes_are_named_where_they_are(rec):
    kit, path = rec
    _append(kit, path)
    file = path / EXPORTS_FILE
    size = file.stat().st_size
    with open(file, "ab") as f:
        f.write(b"junk after the copies")
    first = read_manifest(path).doc["frame_count"]
    good, bad = read_exports(path, kit.identity.public)
    assert good.problem is None
    assert (bad.index, bad.offset, bad.meta) == (first + 1, size, None)
    assert bad.problem.startswith("damaged: ")
    with pytest.raises(FormatError, match=f"export record {first + 1}: damaged: "):
        _append(kit, path, 2)
    assert file.stat().st_size == size + 21  # nothing appended


def test_copies_are_of_closed_recordings_only(rec):
    kit, path = rec
    (path / MANIFEST_FILE).unlink()
    with pytest.raises(FormatError) as err:
        _append(kit, path)
    assert str(err.value) == (f"{path}: no manifest — copies are made of closed recordings "
                              "only")
    assert not (path / EXPORTS_FILE).exists()


@pytest.mark.parametrize("drop", ["recording_id", "chain_head", "frame_count",
                                  "duration_samples"])
def test_a_manifest_without_the_chain_start_is_refused(rec, drop):
    kit, path = rec
    doc = json.loads((path / MANIFEST_FILE).read_bytes())
    del doc[drop]
    (path / MANIFEST_FILE).write_text(json.dumps(doc))
    with pytest.raises(FormatError) as err:
        _append(kit, path)
    assert str(err.value) == f"{path}: manifest lacks recording_id/chain_head"


def test_no_append_after_a_frame_this_device_did_not_sign(rec):
    kit, path = rec
    other = DeviceIdentity.generate()
    append_export(path, other, kit.clock, copy_number=1, stick_id_sha256=None)
    size = (path / EXPORTS_FILE).stat().st_size
    first = read_manifest(path).doc["frame_count"]
    with pytest.raises(FormatError) as err:
        _append(kit, path, 2)
    assert str(err.value) == (
        f"{path / EXPORTS_FILE}: export record {first}: signature does not verify; "
        "not appending to a damaged record")
    assert (path / EXPORTS_FILE).stat().st_size == size


def test_a_symlinked_record_is_refused_by_name(rec, tmp_path):
    kit, path = rec
    (tmp_path / "elsewhere").write_bytes(b"")
    (path / EXPORTS_FILE).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FormatError) as err:
        read_exports(path, kit.identity.public)
    assert str(err.value) == (f"{path / EXPORTS_FILE}: cannot open the export record: "
                              "Too many levels of symbolic links")


def test_frames_after_damage_are_still_listed(rec):
    kit, path = rec
    for n in (1, 2):
        _append(kit, path, n)
    file = path / EXPORTS_FILE
    f1, f2 = frames_of(file)
    data = bytearray(file.read_bytes())
    data[f1.offset + HEADER_LEN + 3] ^= 1  # inside copy 1's meta
    file.write_bytes(bytes(data))
    first = read_manifest(path).doc["frame_count"]
    damaged, after = read_exports(path, kit.identity.public)
    assert damaged.meta is None and damaged.problem.startswith("damaged: ")
    assert (after.index, after.offset) == (first + 1, f2.offset)
    assert after.problem == f"does not chain on (index {first + 1}, expected {first})"


def test_an_export_frame_without_a_signature_body_is_refused(rec):
    kit, path = rec
    doc = read_manifest(path).doc
    meta = json.dumps({"event": "export", "copy_number": 1}).encode()
    header = FrameHeader(kind=int(Kind.EXPORT), flags=0, meta_len=len(meta),
                         index=doc["frame_count"], samples=0,
                         start_sample=doc["duration_samples"], body_len=10,
                         recording_id=bytes.fromhex(doc["recording_id"]),
                         prev=bytes.fromhex(doc["chain_head"]), audio_mac=bytes(32)).pack()
    (path / EXPORTS_FILE).write_bytes(finish_frame(header, meta, bytes(10))[0])
    (r,) = read_exports(path, kit.identity.public)
    assert r.problem == "signature does not verify"
    (r,) = read_exports(path)
    assert r.problem is None  # chained: without a key only the chain is checked
