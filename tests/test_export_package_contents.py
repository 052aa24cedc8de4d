"""What `write_copy` puts on a stick, byte for byte, and how it refuses and cleans up.

test_export_package.py covers the copy's life (published atomically, logged, never following
what is on the stick, a stick that lies on read); this module pins the copy's contents file
by file, the name of its folder, the errors that say what went wrong and where, and the
stick's state after each failure. The failing stick is the package's own write seam
(`package._write`) and, for a C library without RENAME_NOREPLACE, a libc without it.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from akkoord.errors import FormatError, StorageError
from akkoord.export import package as package_mod
from akkoord.export.copycheck import COPY_FORMAT, verify_copy
from akkoord.export.package import CopyTarget, folder_name, write_copy
from akkoord.export.texts import notice_en, notice_nl
from akkoord.export.verifypage import render_verify_page
from akkoord.store.audio_out import wav_header
from akkoord.store.format import canonical_json
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    manifest_bytes,
    read_manifest,
    sign_manifest,
)
from storekit import RATE, SEG, frame_bytes, frames_of, make_kit, pcm, record, rewrite

FILES = ["opname.wav", "manifest.json", "manifest.sig", "copy.json", "device.pub",
         "custody-head.json", "LEESMIJ.txt", "README.txt", "verify.html"]


@pytest.fixture
def kit(tmp_path):
    return make_kit(tmp_path / "k")


@pytest.fixture
def stick(tmp_path):
    s = tmp_path / "stick"
    s.mkdir()
    return s


@pytest.fixture(autouse=True)
def _umask():
    old = os.umask(0)  # the modes seen are the ones the package asks for
    yield
    os.umask(old)


def _copy(kit: Any, w: Any, stick: Path, *, head: bool = True, **kw: Any) -> Any:
    custody_head = (kit.custody.append("export", w.id, copy_number=kw.get("copy_number", 1))
                    .to_json() if head else None)
    kit.clock.advance(2)  # the copy's time is its custody entry's, not the clock's
    kw.setdefault("copy_number", 1)
    kw.setdefault("made_by", "device")
    return write_copy(w.path, w.keys, stick, clock=kit.clock, device_key=kit.identity.public,
                      custody_head=custody_head, **kw), custody_head


def _wav(audio: list[bytes], gap_at: int, gap: int) -> bytes:
    data = b"".join(audio[:gap_at + 1]) + bytes(gap * 2) + b"".join(audio[gap_at + 1:])
    return wav_header(len(data), RATE, 1, 2) + data


def test_a_copy_holds_exactly_these_files(kit, stick):
    w, audio = record(kit, segments=4, gap_after=1)
    progress: list[int] = []
    result, head = _copy(kit, w, stick, progress=progress.append, copy_number=2,
                         made_by="device")
    manifest = json.loads((w.path / MANIFEST_FILE).read_bytes())
    name = f"akkoord-20270115-0800-{w.id[:8]}-kopie2"
    assert result.name == name and result.folder == stick / name
    assert os.listdir(stick) == [name]  # the .partial folder was renamed, nothing else left
    folder = result.folder
    assert sorted(os.listdir(folder)) == sorted(FILES)
    assert {f: os.stat(folder / f).st_mode & 0o777 for f in FILES} == dict.fromkeys(FILES, 0o644)
    assert os.stat(folder).st_mode & 0o777 == 0o755
    signed = read_manifest(w.path, segments=False)
    assert signed is not None and signed.signature is not None
    copy = {
        "format": COPY_FORMAT,
        "recording_id": w.id,
        "copy_number": 2,
        "made": head["entry"]["time"],
        "made_by": "device",
        "audio_file": "opname.wav",
        "audio_mac_key": base64.b64encode(w.keys.mac_key).decode(),
        "device": {"fingerprint": kit.identity.fingerprint,
                   "public_key": base64.b64encode(kit.identity.public.raw).decode()},
    }
    expected = {
        "opname.wav": _wav(audio, 1, SEG // 2),
        "manifest.json": (w.path / MANIFEST_FILE).read_bytes(),
        "manifest.sig": base64.b64encode(signed.signature) + b"\n",
        "copy.json": canonical_json(copy) + b"\n",
        "device.pub": json.dumps(kit.identity.public.to_json(), indent=1).encode() + b"\n",
        "custody-head.json": canonical_json(head) + b"\n",
        "LEESMIJ.txt": notice_nl(manifest, copy, FILES).encode(),
        "README.txt": notice_en(manifest, copy, FILES).encode(),
        "verify.html": render_verify_page(signed.data, signed.signature, copy,
                                          kit.identity.public, head).encode(),
    }
    for f, data in expected.items():
        assert (folder / f).read_bytes() == data, f
    assert result.copy == copy
    assert result.bytes_written == sum(len(d) for d in expected.values())
    # After each frame of audio or gap, the samples written so far.
    assert progress == [SEG, 2 * SEG, 2 * SEG + SEG // 2, 3 * SEG + SEG // 2, 4 * SEG + SEG // 2]
    assert verify_copy(folder, kit.identity.public).ok


def test_an_organisation_copy_has_no_custody_head_and_the_time_of_the_clock(kit, stick):
    w, _ = record(kit, segments=2)
    kit.clock.advance(3600)
    result, _ = _copy(kit, w, stick, head=False, made_by="organisation")
    files = [f for f in FILES if f != "custody-head.json"]
    assert sorted(os.listdir(result.folder)) == sorted(files)
    assert result.copy["made"] == kit.clock.wall().to_json()
    assert result.copy["made_by"] == "organisation"
    manifest = json.loads((w.path / MANIFEST_FILE).read_bytes())
    assert (result.folder / "LEESMIJ.txt").read_text() == notice_nl(manifest, result.copy, files)
    assert (result.folder / "README.txt").read_text() == notice_en(manifest, result.copy, files)


def test_short_writes_are_finished(kit, stick, monkeypatch):
    """A stick's driver may take fewer bytes than offered: the rest is written after."""
    w, audio = record(kit, segments=3)
    real = os.write
    monkeypatch.setattr(package_mod, "_write", lambda fd, data: real(fd, data[:777]))
    result, _ = _copy(kit, w, stick)
    data = b"".join(audio)
    assert (result.folder / "opname.wav").read_bytes() == wav_header(len(data), RATE, 1, 2) + data
    assert verify_copy(result.folder, kit.identity.public).ok
    assert result.bytes_written == sum(p.stat().st_size for p in result.folder.iterdir())


# -- the folder's name -------------------------------------------------------------------------


@pytest.mark.parametrize(("created", "stamp"), [
    ({"utc": "2027-01-15T08:04:59.123Z"}, "20270115-0804"),
    ({"utc": "2027-01-15T08"}, "onbekend"),  # too short to name a minute
    ({"utc": "2027-01-15T08:04:59.123Z", "clock": "rtc"}, "20270115-0804"),
    ({"utc": "2027-01-15T08:0459"}, "20270115-0804"),  # only YYYY-MM-DDTHH:MM counts
    ({}, "onbekend"),
    (None, "onbekend"),
])
def test_the_folder_is_named_after_the_start_minute(created, stamp):
    manifest = {"recording_id": "0123456789abcdef" * 2, "created": created}
    assert folder_name(manifest, 3) == f"akkoord-{stamp}-01234567-kopie3"
    del manifest["created"]
    assert folder_name(manifest, 1) == "akkoord-onbekend-01234567-kopie1"


def test_fresh_names_skip_every_existing_entry(stick):
    (stick / "x").mkdir()
    (stick / "x-2").write_text("")
    os.symlink("/nonexistent", stick / "x-3")  # a dangling link is taken too
    target = CopyTarget(stick)
    try:
        assert target.fresh_name("x") == "x-4"
        assert target.fresh_name("y") == "y"
        for n in range(4, 1000):
            (stick / f"x-{n}").write_text("")
        with pytest.raises(StorageError) as got:
            target.fresh_name("x")
        assert got.value.errno == errno.EEXIST
        assert str(got.value) == f"{stick}: no free name for x"
    finally:
        target.close()


@pytest.mark.parametrize("what", ["missing", "file", "link"])
def test_a_target_that_is_not_a_folder_is_refused(stick, tmp_path, what):
    where = tmp_path / "target"
    if what == "file":
        where.write_text("")
    elif what == "link":
        os.symlink(stick, where)  # never followed
    code = {"missing": errno.ENOENT, "file": errno.ENOTDIR, "link": errno.ENOTDIR}[what]
    with pytest.raises(StorageError) as got:
        CopyTarget(where)
    assert got.value.errno == code
    assert str(got.value) == f"cannot open the copy target {where}: {os.strerror(code)}"


# -- refusals before anything is written -------------------------------------------------------


def test_a_recording_without_a_signed_manifest_is_not_copied(kit, stick):
    w, _ = record(kit, segments=2, close=False)
    with pytest.raises(FormatError) as got:
        _copy(kit, w, stick)
    assert str(got.value) == f"{w.path}: not closed and signed; nothing to copy"
    w2, _ = record(kit, segments=2, seed=1)
    (w2.path / SIGNATURE_FILE).unlink()
    with pytest.raises(FormatError) as got:
        _copy(kit, w2, stick)
    assert str(got.value) == f"{w2.path}: not closed and signed; nothing to copy"
    assert os.listdir(stick) == []


def test_a_recording_of_another_device_is_not_copied(kit, stick):
    w, _ = record(kit, segments=2)
    other = DeviceIdentity.generate()
    with pytest.raises(FormatError) as got:
        write_copy(w.path, w.keys, stick, copy_number=1, made_by="device", clock=kit.clock,
                   device_key=other.public, custody_head=None)
    assert str(got.value) == f"{w.path}: signed by another device than the one exporting"
    assert os.listdir(stick) == []


# -- audio that does not match: refused, and the stick left clean ------------------------------


def _resign(kit: Any, w: Any, change: Any) -> None:
    doc = json.loads((w.path / MANIFEST_FILE).read_bytes())
    change(doc)
    data = manifest_bytes(doc)
    (w.path / MANIFEST_FILE).write_bytes(data)
    (w.path / SIGNATURE_FILE).write_bytes(base64.b64encode(sign_manifest(data, kit.identity)))


def _refused(kit: Any, w: Any, stick: Path, keys: Any = None) -> str:
    with pytest.raises(FormatError) as got:
        write_copy(w.path, keys or w.keys, stick, copy_number=1, made_by="device",
                   clock=kit.clock, device_key=kit.identity.public, custody_head=None)
    assert os.listdir(stick) == []  # the .partial folder and its files are gone
    return str(got.value)


def _audio_frames(w: Any) -> list[Any]:
    return [f for f in frames_of(w.path / CONTAINER_FILE) if f.header.kind == 2]


def test_audio_that_does_not_decrypt_is_refused(kit, stick):
    w, _ = record(kit, segments=3)
    other = record(kit, segments=1, seed=5)[0].keys
    first = _audio_frames(w)[0].header.index
    assert _refused(kit, w, stick, other) == (
        f"{w.path / CONTAINER_FILE}: frame {first} does not decrypt")


def test_audio_the_manifest_does_not_list_is_refused(kit, stick):
    w, _ = record(kit, segments=3)
    second = _audio_frames(w)[1].header.index

    def drop_second(doc: dict) -> None:
        doc["segments"][1][3] = "00" * 32

    _resign(kit, w, drop_second)
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: frame {second} does not match the manifest")


def test_a_damaged_container_is_refused_at_its_byte(kit, stick):
    w, _ = record(kit, segments=3)
    third = _audio_frames(w)[2]
    data = bytearray((w.path / CONTAINER_FILE).read_bytes())
    data[third.offset + third.length - 5] ^= 1
    (w.path / CONTAINER_FILE).write_bytes(bytes(data))
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: damaged at byte {third.offset}; verify it")


def test_a_missing_gap_frame_puts_the_next_audio_out_of_place(kit, stick):
    w, _ = record(kit, segments=3, gap_after=0)
    frames = frames_of(w.path / CONTAINER_FILE)
    raw = frame_bytes(w.path / CONTAINER_FILE)
    gap = next(i for i, f in enumerate(frames) if f.header.kind == 6)
    rewrite(w.path, raw[:gap] + raw[gap + 1:])
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: frame {frames[gap + 1].header.index} is out of place")


def test_audio_missing_at_the_end_is_refused(kit, stick):
    w, _ = record(kit, segments=3)
    frames = frames_of(w.path / CONTAINER_FILE)
    raw = frame_bytes(w.path / CONTAINER_FILE)
    last = max(i for i, f in enumerate(frames) if f.header.kind == 2)
    rewrite(w.path, raw[:last] + raw[last + 1:])
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: holds {2 * SEG} samples, the manifest {3 * SEG}")


def test_a_manifest_longer_than_its_audio_is_refused(kit, stick):
    w, _ = record(kit, segments=2)

    def longer(doc: dict) -> None:
        doc["duration_samples"] += 1

    _resign(kit, w, longer)
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: holds {2 * SEG} samples, the manifest {2 * SEG + 1}")


def test_a_manifest_listing_more_segments_than_the_audio_is_refused(kit, stick):
    w, _ = record(kit, segments=2)

    def extra(doc: dict) -> None:
        doc["segments"].append([99, 2 * SEG, SEG, "00" * 32])

    _resign(kit, w, extra)
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: holds {2 * SEG} samples, the manifest {2 * SEG}")


# -- the stick failing -------------------------------------------------------------------------


def test_a_write_error_is_reported_with_the_stick_and_the_partial_removed(
        kit, stick, monkeypatch):
    w, _ = record(kit, segments=2)
    real = os.write

    def failing(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/device.pub"):  # after four files
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, data)

    monkeypatch.setattr(package_mod, "_write", failing)
    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick)
    assert got.value.errno == errno.EIO
    assert str(got.value) == f"writing the copy to {stick} failed: Input/output error"
    assert os.listdir(stick) == []


def test_an_os_error_without_a_number_is_an_io_error(kit, stick, monkeypatch):
    w, _ = record(kit, segments=2)

    def failing(fd: int, data: Any) -> int:
        raise OSError("the stick went away")

    monkeypatch.setattr(package_mod, "_write", failing)
    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick)
    assert got.value.errno == errno.EIO
    assert str(got.value) == f"writing the copy to {stick} failed: the stick went away"
    assert os.listdir(stick) == []


def test_a_copy_that_reads_back_wrong_is_not_published(kit, stick, monkeypatch):
    """The stick stores something else than it was given (a bit in the first and third
    second of audio)."""
    w, _ = record(kit, segments=3)
    real = os.write
    segments = iter(range(3))

    def lying(fd: int, data: Any) -> int:
        data = bytes(data)
        if len(data) == SEG * 2 and next(segments, None) in (0, 2):
            data = data[:999] + bytes([data[999] ^ 1]) + data[1000:]
        return real(fd, data)

    monkeypatch.setattr(package_mod, "_write", lying)
    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick)
    assert got.value.errno == errno.EIO
    assert str(got.value) == (f"the copy on {stick} does not read back correctly: "
                              "the audio differs from the recording from second 0 to 0.05; "
                              "the audio differs from the recording from second 0.1 to 0.15")
    assert os.listdir(stick) == []


def test_a_name_taken_while_the_copy_was_written_is_never_replaced(kit, stick):
    w, _ = record(kit, segments=2)
    name = folder_name(json.loads((w.path / MANIFEST_FILE).read_bytes()), 1)

    def squat(position: int) -> None:  # someone else writes the same name meanwhile
        if not (stick / name).exists():
            (stick / name).mkdir()
            (stick / name / "theirs").write_text("keep me")

    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick, progress=squat)
    assert got.value.errno == errno.EEXIST
    assert os.listdir(stick) == [name]
    assert (stick / name / "theirs").read_text() == "keep me"


# -- publishing where the C library has no RENAME_NOREPLACE ------------------------------------


def _libc(monkeypatch: pytest.MonkeyPatch, renameat2: Any) -> None:
    lib = SimpleNamespace() if renameat2 is None else SimpleNamespace(renameat2=renameat2)
    monkeypatch.setattr(package_mod, "ctypes", SimpleNamespace(
        CDLL=lambda *a, **kw: lib, get_errno=ctypes.get_errno))


def _refusing(code: int) -> Any:
    def renameat2(*args: Any) -> int:
        ctypes.set_errno(code)
        return -1
    return renameat2


@pytest.mark.parametrize("renameat2", [None, _refusing(errno.EINVAL), _refusing(errno.ENOSYS)],
                         ids=["no-renameat2", "EINVAL", "ENOSYS"])
def test_without_rename_noreplace_the_copy_is_published_by_check_then_rename(
        kit, stick, monkeypatch, renameat2):
    w, _ = record(kit, segments=2)
    _libc(monkeypatch, renameat2)
    result, _ = _copy(kit, w, stick)
    assert os.listdir(stick) == [result.name]
    assert verify_copy(result.folder, kit.identity.public).ok
    name = result.name

    def squat(position: int) -> None:
        if not (stick / f"{name}-2").exists():
            (stick / f"{name}-2").write_text("keep me")

    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick, progress=squat)
    assert got.value.errno == errno.EEXIST
    assert str(got.value) == f"writing the copy to {stick} failed: target exists"
    assert sorted(os.listdir(stick)) == [name, f"{name}-2"]
    assert (stick / f"{name}-2").read_text() == "keep me"


def test_a_rename_refused_for_another_reason_is_that_error(kit, stick, monkeypatch):
    w, _ = record(kit, segments=2)
    _libc(monkeypatch, _refusing(errno.EPERM))
    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick)
    assert got.value.errno == errno.EPERM
    assert str(got.value) == (
        f"writing the copy to {stick} failed: {os.strerror(errno.EPERM)}")
    assert os.listdir(stick) == []


def test_the_copy_is_published_with_rename_noreplace_where_libc_has_it(kit, stick, monkeypatch):
    """The atomic no-replace rename, with the stick's own directory on both sides."""
    w, _ = record(kit, segments=2)
    real = ctypes.CDLL(None, use_errno=True).renameat2
    calls: list[tuple[Any, ...]] = []

    def renameat2(*args: Any) -> int:
        r = real(*args)
        calls.append((os.readlink(f"/proc/self/fd/{args[0]}"), args[1],
                      os.readlink(f"/proc/self/fd/{args[2]}"), *args[3:], r))
        return r

    _libc(monkeypatch, renameat2)
    seen: list[str] = []
    result, _ = _copy(kit, w, stick, progress=lambda n: seen.extend(os.listdir(stick)))
    (partial,) = set(seen)
    assert re.fullmatch(rf"\.{re.escape(result.name)}\.[0-9a-f]{{8}}\.partial", partial)
    ((olddir, old, newdir, new, flags, r),) = calls
    assert (old, new, flags, r) == (partial.encode(), result.name.encode(), 1, 0)
    assert olddir == newdir == str(stick)


def test_the_fallback_rename_never_replaces_a_link(kit, stick, monkeypatch):
    w, _ = record(kit, segments=2)
    _libc(monkeypatch, None)
    name = folder_name(json.loads((w.path / MANIFEST_FILE).read_bytes()), 1)

    def plant(position: int) -> None:  # a dangling link appears under the final name
        if not os.path.lexists(stick / name):
            os.symlink("/nonexistent", stick / name)

    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick, progress=plant)
    assert got.value.errno == errno.EEXIST
    assert os.listdir(stick) == [name] and os.readlink(stick / name) == "/nonexistent"


def _partial(stick: Path) -> Path:
    (p,) = [p for p in stick.iterdir() if p.name.endswith(".partial")]
    return p


def test_a_link_planted_in_the_copy_folder_is_never_written_through(
        kit, stick, tmp_path, monkeypatch):
    """Whatever appears in the .partial folder while the copy is written is not ours: a
    file is created only where nothing is (O_EXCL), never through a link (O_NOFOLLOW)."""
    w, _ = record(kit, segments=2)
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")

    def plant(position: int) -> None:
        link = _partial(stick) / MANIFEST_FILE
        if not os.path.lexists(link):
            os.symlink(victim, link)

    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick, progress=plant)
    assert got.value.errno == errno.EEXIST
    assert victim.read_bytes() == b"precious"


def test_a_copy_folder_swapped_for_a_link_is_not_cleaned_up_through_it(
        kit, stick, tmp_path, monkeypatch):
    w, _ = record(kit, segments=2)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("mine")
    moved: list[Path] = []

    def swap(position: int) -> None:  # the folder is renamed away, a link put in its place
        if not moved:
            p = _partial(stick)
            moved.append(p.rename(tmp_path / "elsewhere"))
            os.symlink(victim, p)

    with pytest.raises(FormatError):  # what reads back is not the copy that was written
        _copy(kit, w, stick, progress=swap)
    assert os.listdir(victim) == ["keep"]


def test_cleanup_removes_every_file_of_ours_and_reports_the_first_error(
        kit, stick, monkeypatch):
    w, _ = record(kit, segments=2)
    real = os.write

    def plant(position: int) -> None:  # a folder we did not make, inside ours
        sub = _partial(stick) / "aaaa-not-ours"
        if not sub.exists():
            sub.mkdir()

    def failing(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/README.txt"):
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, data)

    monkeypatch.setattr(package_mod, "_write", failing)
    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick, progress=plant)
    assert str(got.value) == f"writing the copy to {stick} failed: Input/output error"
    assert os.listdir(_partial(stick)) == ["aaaa-not-ours"]  # only what was not ours is left


def test_long_segments_are_copied_exactly(kit, stick):
    """Segments larger than the first decrypt buffer (128 KiB): 2 s at 48 kHz."""
    w = kit.writer(rate=48000, seg=96000)
    w.add_event("start")
    audio = [pcm(i, 96000) for i in range(2)]
    for a in audio:
        w.add_audio(a)
    w.close("party_a")
    result, _ = _copy(kit, w, stick)
    data = b"".join(audio)
    assert (result.folder / "opname.wav").read_bytes() == (
        wav_header(len(data), 48000, 1, 2) + data)


def test_audio_beyond_the_manifest_is_refused(kit, stick):
    w, _ = record(kit, segments=3)
    third = _audio_frames(w)[2].header.index

    def fewer(doc: dict) -> None:
        doc["segments"].pop()

    _resign(kit, w, fewer)
    assert _refused(kit, w, stick) == (
        f"{w.path / CONTAINER_FILE}: frame {third} does not match the manifest")


def test_a_stick_that_reads_back_another_devices_genuine_copy_gets_no_copy(
        kit, stick, tmp_path, monkeypatch):
    """The stick keeps a genuine, valid copy made by another device and serves it instead of
    what it was given: only the device key the read-back expects catches it."""
    other = make_kit(tmp_path / "other")
    ow, _ = record(other, segments=2)
    theirs = write_copy(ow.path, ow.keys, tmp_path, copy_number=1, made_by="device",
                        clock=other.clock, device_key=other.identity.public,
                        custody_head=other.custody.append("export", ow.id, copy_number=1)
                        .to_json()).folder
    w, _ = record(kit, segments=2)
    real = os.write
    started: set[str] = set()

    def substitute(fd: int, data: Any) -> int:
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name not in started:
            started.add(name)
            real(fd, (theirs / name).read_bytes())
        return len(data)

    monkeypatch.setattr(package_mod, "_write", substitute)
    with pytest.raises(StorageError) as got:
        _copy(kit, w, stick)
    assert str(got.value).startswith(f"the copy on {stick} does not read back correctly: "
                                     f"signed by device {other.identity.fingerprint[:16]}")
    assert os.listdir(stick) == []
