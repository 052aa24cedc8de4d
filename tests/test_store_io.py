"""Reading files nobody vouches for (store/safeio.py) and the state folder's layout
(store/layout.py), to the word: each refusal names the file and the reason, strict JSON
draws its lines exactly at 64-bit integers and finite numbers, and secret base64 is decoded
exactly as RFC 4648 says."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from akkoord.errors import FormatError, KeyMaterialError, UsageError
from akkoord.store.layout import DEFAULT_STATE, StateDir, state_from_env
from akkoord.store.safeio import (
    MAX_INT,
    b64decode_secret,
    check_name,
    open_regular,
    read_regular,
    strict_decoder,
    strict_json,
)


def test_a_nul_in_a_name_is_refused_before_any_system_call():
    with pytest.raises(FormatError) as err:
        check_name("a\0b")
    assert str(err.value) == "'a\\x00b': a file name cannot contain a NUL byte"
    assert check_name("a/b") == Path("a/b")
    with pytest.raises(FormatError):
        open_regular("x\0y")


def test_what_is_not_a_regular_file_is_named_by_kind(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        for name, kind in (("fifo", "FIFO"), ("dir", "folder")):
            with pytest.raises(FormatError) as err:
                open_regular(tmp_path / name, "manifest")
            assert str(err.value) == f"{tmp_path / name}: not a regular file (a {kind}); " \
                "refusing it"
        with pytest.raises(FormatError) as err:
            open_regular("/dev/null")
        assert str(err.value) == "/dev/null: not a regular file (a character device); " \
            "refusing it"
        with pytest.raises(FormatError) as err:
            open_regular(tmp_path / "link", "manifest")
        assert str(err.value) == (f"{tmp_path / 'link'}: cannot open the manifest: "
                                  "Too many levels of symbolic links")
        with pytest.raises(FormatError) as err:
            open_regular(tmp_path / "sock", "container")
        assert str(err.value) == (f"{tmp_path / 'sock'}: cannot open the container: "
                                  "No such device or address")
    finally:
        sock.close()
    with pytest.raises(FileNotFoundError):
        open_regular(tmp_path / "none")


def test_an_open_regular_file_blocks_normally_and_is_closed_on_exec(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    with open_regular(tmp_path / "f") as f:
        assert os.get_blocking(f.fileno()) and not os.get_inheritable(f.fileno())
        assert f.read() == b"abc"


def test_a_file_larger_than_its_limit_says_what_it_is(tmp_path):
    p = tmp_path / "m"
    p.write_bytes(b"x" * 11)
    assert read_regular(p, 11) == b"x" * 11
    with pytest.raises(FormatError) as err:
        read_regular(p, 10, "manifest")
    assert str(err.value) == f"{p}: implausibly large for a manifest (11 bytes)"
    with pytest.raises(FormatError) as err:
        read_regular(p, 10)
    assert str(err.value) == f"{p}: implausibly large for a file (11 bytes)"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (str(MAX_INT), MAX_INT),
        (str(-MAX_INT - 1), -MAX_INT - 1),
        ("-9999999999999999999", None),  # 19 digits, beyond 64 bits
        ("9223372036854775808", None),
        ("12345678901234567890", None),  # 20 digits: refused before int()
        ("1.5e3", 1500.0),
        ("1e308", 1e308),
        ("1e309", None),
        ("-1e309", None),
        ("0." + "0" * 37 + "1", 1e-38),  # 40 characters
        ("0." + "0" * 38 + "1", None),  # 41 characters
    ],
)
def test_numbers_are_read_up_to_their_limits(text, value):
    if value is None:
        with pytest.raises(FormatError) as err:
            strict_json(text, "f")
        assert "out of range" in str(err.value) and str(err.value).startswith("f: not valid JSON")
        with pytest.raises(ValueError):
            strict_decoder().decode(text)
    else:
        assert strict_json(text, "f") == value
        assert strict_decoder().decode(text) == value


def test_refusals_say_what_is_wrong():
    cases = {
        "NaN": "f: not valid JSON (NaN is not a number JSON allows)",
        "[Infinity]": "f: not valid JSON (Infinity is not a number JSON allows)",
        "123456789012345678901234567890": "f: not valid JSON (integer 12345678901234567890"
                                          "1234… is out of range)",
        "9223372036854775808": "f: not valid JSON (integer 9223372036854775808 is out of "
                               "range)",
        "1e999": "f: not valid JSON (number 1e999 is out of range)",
        "0." + "0" * 50: "f: not valid JSON (number 0.0000000000000000000000… is out of "
                         "range)",
    }
    for text, why in cases.items():
        with pytest.raises(FormatError) as err:
            strict_json(text, "f")
        assert str(err.value) == why
    with pytest.raises(FormatError) as err:
        strict_json(b"\xff", "f")
    assert str(err.value) == "f: not valid JSON (UnicodeDecodeError)"
    with pytest.raises(FormatError) as err:
        strict_json("[" * 100_000 + "]" * 100_000, "f")
    assert str(err.value) == "f: not valid JSON (RecursionError)"
    with pytest.raises(FormatError) as err:
        strict_json("{", "f")
    assert str(err.value).startswith("f: not valid JSON (Expecting property name")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 31, 32, 33, 64])
def test_secret_base64_decodes_like_the_standard(n):
    raw = bytes((i * 37 + 11) % 256 for i in range(n))
    text = base64.b64encode(raw).decode()
    out = b64decode_secret(text, "k")
    assert isinstance(out, bytearray) and out == raw


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (5, "not valid base64"),
        ("abc", "not valid base64"),  # not a multiple of 4
        ("A" * 1028, "not valid base64"),  # too long for a key
        ("a===", "not valid base64"),  # three padding characters
        ("ab!d", "not valid base64"),
        ("ab=d", "not valid base64"),  # padding inside
        ("AB==", "not valid base64 (non-zero padding bits)"),
        ("AAB=", "not valid base64 (non-zero padding bits)"),
    ],
)
def test_secret_base64_refusals(text, why):
    with pytest.raises(FormatError) as err:
        b64decode_secret(text, "k")
    assert str(err.value) == f"k: {why}"


def test_secret_base64_at_its_length_limit():
    text = base64.b64encode(bytes(768)).decode()
    assert len(text) == 1024 and b64decode_secret(text, "k") == bytes(768)
    assert b64decode_secret("AA==", "k") == b"\x00"
    assert b64decode_secret("AAA=", "k") == b"\x00\x00"


def test_state_folder_layout(tmp_path, monkeypatch):
    s = StateDir(tmp_path / "state")
    assert (s.keys_dir, s.recipients_dir, s.recordings_dir, s.quarantine_dir) == (
        s.root / "keys", s.root / "keys" / "recipients", s.root / "recordings",
        s.root / "quarantine")
    assert (s.custody_path, s.lock_path) == (s.root / "custody.log", s.root / "akkoord.lock")
    assert (s.certificate_path, s.trust_dir) == (s.root / "keys" / "device.cert.json",
                                                 s.root / "keys" / "trust")
    assert s.recording_ids() == [] and s.recipients() == []
    assert s.device_public_key() is None and s.device_certificate() is None
    with pytest.raises(KeyMaterialError) as err:
        s.identity()
    assert str(err.value) == (f"no device identity in {s.keys_dir}: run `akkoord keys init` "
                              "first")
    old = os.umask(0o022)
    try:
        s.ensure()
    finally:
        os.umask(old)
    for d in (s.root, s.recordings_dir, s.quarantine_dir):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for name in ("b" * 32, "a" * 32, "A" * 32, "a" * 31, "x" * 32, "a" * 33):
        (s.recordings_dir / name).mkdir()
    assert s.recording_ids() == ["a" * 32, "b" * 32]
    assert s.recording_dir("a" * 32) == s.recordings_dir / ("a" * 32)
    for bad in ("A" * 32, "../" + "a" * 29, "a" * 31):
        with pytest.raises(UsageError) as err:
            s.recording_dir(bad)
        assert str(err.value) == f"{bad!r} is not a recording id (32 hex digits)"
    s.keys_dir.mkdir()
    s.certificate_path.write_text("[1]")
    assert s.device_certificate() is None
    s.certificate_path.write_text('{"a": 1}')
    assert s.device_certificate() == {"a": 1}
    s.certificate_path.write_text("{")
    assert s.device_certificate() is None

    monkeypatch.delenv("AKKOORD_STATE", raising=False)
    assert state_from_env() == DEFAULT_STATE
    assert state_from_env("/x") == Path("/x")
    monkeypatch.setenv("AKKOORD_STATE", str(tmp_path))
    assert state_from_env() == tmp_path
    assert state_from_env("/x") == Path("/x")


def test_recipients_are_read_in_name_order(tmp_path):
    from akkoord.store.keys import generate_org_key

    s = StateDir(tmp_path)
    s.recipients_dir.mkdir(parents=True)
    keys = [generate_org_key("x25519") for _ in range(2)]
    for name, k in zip(("b.pub", "a.pub"), keys, strict=True):
        (s.recipients_dir / name).write_bytes(k.public.dumps())
    (s.recipients_dir / "notes.txt").write_text("not a key")
    assert [k.fingerprint for k in s.recipients()] == [keys[1].fingerprint,
                                                        keys[0].fingerprint]
    assert json.loads((s.recipients_dir / "a.pub").read_text())["kem"] == "x25519"


def test_inspect_lists_every_frame_and_the_damage_where_it_is(tmp_path):
    from akkoord.store.exports import append_export
    from akkoord.store.inspect import inspect_recording
    from akkoord.store.manifest import read_manifest
    from storekit import frames_of, make_kit, record

    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=2, gap_after=0)
    append_export(w.path, kit.identity, kit.clock, copy_number=1, stick_id_sha256=None)
    container = w.path / "recording.akr"
    with open(container, "ab") as f:
        f.write(b"tail!")
    doc = inspect_recording(w.path)
    frames = frames_of(container)
    manifest = read_manifest(w.path).doc
    assert doc["path"] == str(w.path) and doc["recording_id"] == w.id
    assert doc["size"] == container.stat().st_size
    assert [f["index"] for f in doc["frames"]] == [f.header.index for f in frames]
    first = doc["frames"][0]
    assert first == {
        "index": 0, "kind": "HEADER", "file": "recording.akr", "offset": 0,
        "length": frames[0].length, "final": False, "start_sample": 0, "samples": 0,
        "recording_id": w.id, "seal": frames[0].seal.hex(), "meta": first["meta"]}
    assert first["meta"]["recording_id"] == w.id
    end = doc["frames"][-1]
    assert (end["kind"], end["final"]) == ("END", True)
    gap = next(f for f in doc["frames"] if f["kind"] == "GAP")
    assert (gap["start_sample"], gap["samples"]) == (800, 400)
    (damage,) = doc["damage"]
    assert damage["file"] == "recording.akr" and damage["offset"] == frames[-1].offset + \
        frames[-1].length and damage["length"] == 5 and damage["reason"]
    (export,) = doc["exports"]
    assert (export["kind"], export["file"], export["offset"]) == ("EXPORT", "exports.akr", 0)
    assert doc["manifest"] == {
        "status": "complete", "recording_id": w.id, "frame_count": manifest["frame_count"],
        "chain_head": manifest["chain_head"], "duration_samples": 2000,
        "duration_seconds": manifest["duration_seconds"], "simulated": False,
        "device_fingerprint": kit.identity.fingerprint, "segments": 2, "gaps": 1,
        "signed": True, "file": "manifest.json"}


def test_inspect_an_open_recording_and_a_folder_that_is_none(tmp_path):
    from akkoord.store.inspect import inspect_recording
    from storekit import make_kit

    kit = make_kit(tmp_path)
    w = kit.writer()
    w._close_fd()
    (w.path / "exports.akr").write_bytes(b"junk")
    doc = inspect_recording(w.path)
    assert doc["manifest"] is None and doc["exports"] == []
    assert [(d["file"], d["offset"], d["length"]) for d in doc["damage"]] == [
        ("exports.akr", 0, 4)]
    with pytest.raises(FormatError) as err:
        inspect_recording(tmp_path)
    assert str(err.value) == f"{tmp_path}: no recording.akr — not an akkoord recording folder"
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "recording.akr").write_bytes(b"")
    assert inspect_recording(tmp_path / "x")["recording_id"] == "x"


def test_a_block_device_is_named_as_one(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: mknod of a block device node")
    node = tmp_path / "disk"
    os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    with pytest.raises(FormatError) as err:
        read_regular(node, 100, "container")
    assert str(err.value) == f"{node}: not a regular file (a block device); refusing it"


def test_a_file_that_grows_while_read_is_read_whole_up_to_the_limit():
    """/proc files say size 0 and then hold text: the reader reads on past what fstat said."""
    whole = Path("/proc/version").read_bytes()
    assert len(whole) > 20
    assert read_regular("/proc/version", 4096) == whole
    with pytest.raises(FormatError) as err:
        read_regular("/proc/version", 10, "manifest")
    assert str(err.value) == "/proc/version: implausibly large for a manifest (grew while read)"


def test_integer_limits_in_words():
    for text, why in {
        "12345678901234567890": "integer 12345678901234567890… is out of range",
        "-9223372036854775809": "integer -9223372036854775809 is out of range",
    }.items():
        with pytest.raises(FormatError) as err:
            strict_json(text, "f")
        assert str(err.value) == f"f: not valid JSON ({why})"


def test_read_regular_names_what_it_could_not_open(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(FormatError) as err:
        read_regular(tmp_path / "link", 10, "manifest")
    assert str(err.value) == (f"{tmp_path / 'link'}: cannot open the manifest: "
                              "Too many levels of symbolic links")


def test_inspect_reads_past_damage_and_takes_the_id_from_the_header(tmp_path):
    import shutil

    from akkoord.store.format import FrameHeader, Kind, finish_frame
    from akkoord.store.inspect import inspect_recording
    from storekit import frames_of, make_kit, record

    kit = make_kit(tmp_path)
    w, _ = record(kit, segments=3)
    frames = frames_of(w.path / "recording.akr")
    data = bytearray((w.path / "recording.akr").read_bytes())
    data[frames[4].offset + 100] ^= 1  # frame 4 damaged, the frames after it whole
    moved = tmp_path / "renamed"
    shutil.copytree(w.path, moved)
    (moved / "recording.akr").write_bytes(bytes(data))
    doc = inspect_recording(moved)
    assert doc["recording_id"] == w.id  # from the header, not the folder's name
    assert [f["index"] for f in doc["frames"]] == [
        f.header.index for f in frames if f.header.index != 4]
    assert [d["offset"] for d in doc["damage"]] == [frames[4].offset]
    assert doc["exports"] == [] and "meta_error" not in doc["frames"][0]
    meta = b"{not json"
    header = FrameHeader(kind=int(Kind.EXPORT), flags=0, meta_len=len(meta), index=0,
                         samples=0, start_sample=0, body_len=0, recording_id=w.recording_id,
                         prev=bytes(32), audio_mac=bytes(32)).pack()
    (moved / "exports.akr").write_bytes(finish_frame(header, meta, b"")[0])
    (export,) = inspect_recording(moved)["exports"]
    assert export["meta"] is None and export["meta_error"]


def test_open_regular_calls_it_a_file_unless_told(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(FormatError) as err:
        open_regular(tmp_path / "link")
    assert str(err.value) == (f"{tmp_path / 'link'}: cannot open the file: "
                              "Too many levels of symbolic links")


def test_a_state_folder_is_made_with_its_parents(tmp_path):
    s = StateDir(tmp_path / "var" / "lib" / "akkoord")
    s.ensure()
    assert s.recordings_dir.is_dir() and s.quarantine_dir.is_dir()
