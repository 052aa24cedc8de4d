"""`akkoord decrypt`'s WAV to the byte, and its problems and refusals to the word: the
header's every field, where each frame's samples land, what becomes silence, the words for
a frame that does not decrypt, does not match its MAC, lies beyond the end or comes from
another recording; which manifest fields it takes; and that a failure leaves no file."""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord.errors import FormatError, StorageError
from akkoord.store import audio_out
from akkoord.store.audio_out import (
    WAV_HEADER_LEN,
    decrypt_recording,
    decrypt_to_wav,
    wav_header,
)
from akkoord.store.format import (
    HEADER_LEN,
    SEAL_LEN,
    FrameHeader,
    Kind,
    audio_mac,
    finish_frame,
    nonce_for,
)
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import MANIFEST_FILE
from akkoord.store.verify import load_content_keys
from storekit import RATE, SEG, frame_bytes, make_kit, record, rewrite


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    kit = make_kit(tmp_path_factory.mktemp("audio"))
    w, audio = record(kit, 4, gap_after=1)
    return kit, w.path, audio


def _copy(src, tmp_path, name=None):
    dst = tmp_path / "recs" / (name or src.name)
    shutil.copytree(src, dst)
    return dst


def _expected(audio):
    """The recording's timeline by hand: segment 0, segment 1, the gap's silence, the rest."""
    data = audio[0] + audio[1] + bytes(SEG // 2 * 2) + b"".join(audio[2:])
    return wav_bytes(len(data), RATE, 1, 2) + data


def wav_bytes(n, rate, channels, width):
    return (b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<I", 16)
            + struct.pack("<HHIIHH", 1, channels, rate, rate * channels * width,
                          channels * width, 8 * width) + b"data" + struct.pack("<I", n))


def test_the_wav_header_field_by_field():
    assert WAV_HEADER_LEN == 44
    assert wav_header(1600, 16000, 1, 2) == bytes.fromhex(
        "52494646" "64060000" "57415645" "666d7420" "10000000" "0100" "0100" "803e0000"
        "007d0000" "0200" "1000" "64617461" "40060000")
    assert wav_header(0, 48000, 2, 2) == wav_bytes(0, 48000, 2, 2)
    assert wav_header(9, 44100, 2, 3) == wav_bytes(9, 44100, 2, 3)


def test_the_wav_header_s_4_gb_limit():
    most = 0xFFFFFFFF - 36
    assert wav_header(most, 16000, 1, 2)[4:8] == b"\xff\xff\xff\xff"
    with pytest.raises(FormatError) as e:
        wav_header(most + 1, 16000, 1, 2)
    assert str(e.value) == "4294967260 bytes of audio do not fit in one WAV file (4 GB limit)"


def _only(folder, name):
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no temporary left


def test_decrypt_writes_the_timeline_with_the_gap_as_silence(made, tmp_path):
    kit, src, audio = made
    for parallel in (False, True):
        out = tmp_path / f"out{parallel}" / "opname.wav"
        out.parent.mkdir()
        res = decrypt_recording(src, kit.org, out, parallel=parallel)
        assert res.written and res.report.ok and res.problems == []
        assert res.total_samples == 5 * SEG - SEG // 2
        assert out.read_bytes() == _expected(audio)
        assert os.stat(out).st_mode & 0o777 == 0o600
        _only(out.parent, "opname.wav")


def test_decrypt_to_wav_writes_the_same_file(made, tmp_path):
    kit, src, audio = made
    out = tmp_path / "two.wav"
    assert decrypt_to_wav(src, load_content_keys(src, kit.org), out, rate=RATE, channels=1,
                          width=2, total_samples=5 * SEG - SEG // 2) == []
    assert out.read_bytes() == _expected(audio)
    assert os.stat(out).st_mode & 0o777 == 0o600
    _only(tmp_path, "two.wav")


def test_a_failing_recording_is_not_written_without_force(made, tmp_path):
    kit, src, _ = made
    d = _copy(src, tmp_path)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, parts[:-1])  # the END frame cut off
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.wav"
    res = decrypt_recording(d, kit.org, out)
    assert not res.written and not res.report.ok
    assert res.total_samples == 5 * SEG - SEG // 2
    assert list((tmp_path / "out").iterdir()) == []


# --- frames re-made with the content keys: each problem the decrypter names -------------

def _audio_frames(d):
    parts = frame_bytes(d / CONTAINER_FILE)
    return parts, [i for i, p in enumerate(parts) if p[4] == Kind.AUDIO]


def _remake(keys, raw, *, pcm=None, start=None, mac=None, tag_ok=True):
    """An audio frame with a valid seal: new PCM / position / MAC, sealed with the key."""
    h = FrameHeader.unpack(raw[:HEADER_LEN])
    aead = ChaCha20Poly1305(keys.seal_key)
    meta = raw[HEADER_LEN : HEADER_LEN + h.meta_len]
    if pcm is None:
        body = raw[HEADER_LEN + h.meta_len : -SEAL_LEN]
        pcm = aead.decrypt(nonce_for(h.index, h.final), body, raw[:HEADER_LEN] + meta)
    nh = FrameHeader(h.kind, h.flags, h.meta_len, h.index, h.samples,
                     h.start_sample if start is None else start, len(pcm) + 16,
                     h.recording_id, h.prev,
                     audio_mac(keys.mac_key, pcm) if mac is None else mac).pack()
    body = aead.encrypt(nonce_for(h.index, h.final), pcm, nh + meta)
    if not tag_ok:
        body = bytes([body[0] ^ 1]) + body[1:]
    return finish_frame(nh, meta, body)[0], h


def _forced(kit, d, tmp_path, name="f.wav", *, ok=False):
    out = tmp_path / name
    res = decrypt_recording(d, kit.org, out, force=True)
    assert res.written and res.report.ok == ok
    return res, out.read_bytes()


def test_a_frame_that_does_not_decrypt_is_left_silent_and_named(made, tmp_path):
    kit, src, audio = made
    d = _copy(src, tmp_path)
    keys = load_content_keys(d, kit.org)
    parts, audio_at = _audio_frames(d)
    k = audio_at[2]
    parts[k], h = _remake(keys, parts[k], tag_ok=False)
    rewrite(d, parts)
    res, wav = _forced(kit, d, tmp_path)
    assert res.problems == [f"frame {h.index}: does not decrypt, left silent"]
    want = bytearray(_expected(audio))
    at = WAV_HEADER_LEN + 2 * h.start_sample
    want[at : at + 2 * SEG] = bytes(2 * SEG)
    assert wav == bytes(want)
    got = decrypt_to_wav(d, keys, tmp_path / "b.wav", rate=RATE, channels=1, width=2,
                         total_samples=res.total_samples)
    assert got == res.problems and (tmp_path / "b.wav").read_bytes() == wav


def test_audio_that_does_not_match_its_mac_is_written_and_named(made, tmp_path):
    kit, src, audio = made
    d = _copy(src, tmp_path)
    keys = load_content_keys(d, kit.org)
    parts, audio_at = _audio_frames(d)
    k = audio_at[0]
    other = bytes(range(256)) * (2 * SEG // 256) + bytes(2 * SEG % 256)
    parts[k], h = _remake(keys, parts[k], pcm=other, mac=bytes(32))
    rewrite(d, parts)
    res, wav = _forced(kit, d, tmp_path)
    assert res.problems == [f"frame {h.index}: audio does not match its MAC"]
    assert wav == _expected([other, *audio[1:]])
    got = decrypt_to_wav(d, keys, tmp_path / "b.wav", rate=RATE, channels=1, width=2,
                         total_samples=res.total_samples)
    assert got == res.problems and (tmp_path / "b.wav").read_bytes() == wav


@pytest.mark.parametrize("past", [0, 1])
def test_a_frame_beyond_the_end_is_skipped_and_named(made, tmp_path, past):
    """The last frame placed to end `past` samples after the recording's end: at the end
    exactly it is written, one sample beyond it is skipped."""
    kit, src, audio = made
    d = _copy(src, tmp_path)
    keys = load_content_keys(d, kit.org)
    parts, audio_at = _audio_frames(d)
    total = 5 * SEG - SEG // 2
    k = audio_at[-1]
    parts[k], h = _remake(keys, parts[k], start=total - SEG + past)
    rewrite(d, parts)
    res, wav = _forced(kit, d, tmp_path, ok=not past)  # re-made in place: the same bytes
    assert res.total_samples == total
    if past:
        assert res.problems == [f"frame {h.index}: lies beyond the recording's end, skipped"]
        assert wav == _expected([*audio[:-1], bytes(2 * SEG)])
    else:
        assert res.problems == []
        assert wav == _expected(audio)
    got = decrypt_to_wav(d, keys, tmp_path / "b.wav", rate=RATE, channels=1, width=2,
                         total_samples=total)
    assert got == res.problems and (tmp_path / "b.wav").read_bytes() == wav


def test_a_frame_from_another_recording_is_skipped_and_named(made, tmp_path):
    kit, src, _ = made
    w2, _ = record(kit, 4, seed=7)
    d = _copy(src, tmp_path)
    keys = load_content_keys(d, kit.org)
    parts, audio_at = _audio_frames(d)
    theirs, their_audio = _audio_frames(w2.path)
    k = audio_at[1]
    parts[k] = theirs[their_audio[1]]
    rewrite(d, parts)
    offset = sum(len(p) for p in parts[:k])
    res, wav = _forced(kit, d, tmp_path)
    assert f"frame at byte {offset}: from another recording, skipped" in res.problems
    assert wav[WAV_HEADER_LEN + 2 * SEG : WAV_HEADER_LEN + 4 * SEG] == bytes(2 * SEG)
    got = decrypt_to_wav(d, keys, tmp_path / "b.wav", rate=RATE, channels=1, width=2,
                         total_samples=res.total_samples)
    assert got == [f"frame at byte {offset}: from another recording, skipped"]
    assert (tmp_path / "b.wav").read_bytes()[WAV_HEADER_LEN + 2 * SEG :][: 2 * SEG] == bytes(
        2 * SEG)


def test_a_problem_before_a_fallback_is_named_once(made, tmp_path):
    """An out-of-order recording makes the verifier read again (the sink is reset): the
    problems of the first reading are not kept twice."""
    kit, src, audio = made
    d = _copy(src, tmp_path)
    keys = load_content_keys(d, kit.org)
    parts, audio_at = _audio_frames(d)
    k = audio_at[0]
    parts[k], h = _remake(keys, parts[k], tag_ok=False)
    j = audio_at[2]
    parts[j], parts[j + 1] = parts[j + 1], parts[j]
    rewrite(d, parts)
    res, wav = _forced(kit, d, tmp_path)
    assert res.problems == [f"frame {h.index}: does not decrypt, left silent"]
    assert wav == _expected([bytes(2 * SEG), *audio[1:]])


# --- what decrypt takes from the manifest -----------------------------------------------

def _edit_manifest(d, change):
    path = d / MANIFEST_FILE
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_the_manifest_s_rate_goes_into_the_header(made, tmp_path):
    kit, src, audio = made
    d = _copy(src, tmp_path)
    _edit_manifest(d, lambda doc: doc["audio"].update(sample_rate=8000))
    _, wav = _forced(kit, d, tmp_path)
    assert wav[:WAV_HEADER_LEN] == wav_bytes(len(wav) - WAV_HEADER_LEN, 8000, 1, 2)
    assert wav[WAV_HEADER_LEN:] == _expected(audio)[WAV_HEADER_LEN:]


@pytest.mark.parametrize("audio_doc", [
    {"sample_rate": RATE, "channels": 1, "sample_width": 3},
    {"sample_rate": RATE, "channels": 3, "sample_width": 2},
])
def test_audio_that_is_not_16_bit_mono_or_stereo_is_refused_by_name(made, tmp_path, audio_doc):
    kit, src, _ = made
    d = _copy(src, tmp_path)
    _edit_manifest(d, lambda doc: doc.update(audio=audio_doc))
    (tmp_path / "o").mkdir()
    out = tmp_path / "o" / "x.wav"
    assert not decrypt_recording(d, kit.org, out).written  # refused for failing first
    with pytest.raises(FormatError) as e:
        decrypt_recording(d, kit.org, out, force=True)
    assert str(e.value) == f"{d}: the manifest's audio is not 16-bit mono or stereo PCM"
    assert list((tmp_path / "o").iterdir()) == []


@pytest.mark.parametrize("audio_doc", [
    "mono", {"sample_rate": "snel", "channels": 1, "sample_width": 2},
    {"sample_rate": RATE, "channels": 1, "sample_width": 2, "x": 1},
])
def test_unusable_audio_parameters_fall_back_to_48_khz_from_the_frames(made, tmp_path,
                                                                       audio_doc):
    """Parameters that cannot be read: 48 kHz mono 16-bit, the length from the frames."""
    kit, src, audio = made
    d = _copy(src, tmp_path)
    _edit_manifest(d, lambda doc: doc.update(audio=audio_doc))
    out = tmp_path / "x.wav"
    if isinstance(audio_doc, str):
        with pytest.raises(FormatError):
            decrypt_recording(d, kit.org, out, force=True)
        return
    res = decrypt_recording(d, kit.org, out, force=True)
    data = _expected(audio)[WAV_HEADER_LEN:]
    rate = RATE if "x" in audio_doc else 48000
    assert out.read_bytes() == wav_bytes(len(data), rate, 1, 2) + data
    assert res.total_samples == 5 * SEG - SEG // 2


def test_without_a_manifest_the_length_comes_from_the_frames(made, tmp_path):
    kit, src, audio = made
    d = _copy(src, tmp_path)
    (d / MANIFEST_FILE).unlink()
    out = tmp_path / "x.wav"
    res = decrypt_recording(d, kit.org, out, force=True)
    assert res.written and not res.report.ok
    assert res.total_samples == 5 * SEG - SEG // 2
    data = _expected(audio)[WAV_HEADER_LEN:]
    assert out.read_bytes() == wav_bytes(len(data), 48000, 1, 2) + data


def test_a_directory_not_named_by_its_id_does_not_skip_frames(made, tmp_path):
    kit, src, audio = made
    for name in ("opname", "g" * 32):
        d = _copy(src, tmp_path, name)
        out = tmp_path / f"{name}.wav"
        res = decrypt_recording(d, kit.org, out, force=True)
        assert res.problems == []
        assert out.read_bytes() == _expected(audio)
        keys = load_content_keys(d, kit.org)
        assert decrypt_to_wav(d, keys, tmp_path / "b.wav", rate=RATE, channels=1, width=2,
                              total_samples=res.total_samples) == []


# --- failures name the file asked for, and leave nothing ---------------------------------

def test_an_output_folder_that_does_not_exist_is_named(made, tmp_path):
    kit, src, _ = made
    out = tmp_path / "nergens" / "x.wav"
    for call in (lambda: decrypt_recording(src, kit.org, out),
                 lambda: decrypt_to_wav(src, load_content_keys(src, kit.org), out, rate=RATE,
                                        channels=1, width=2, total_samples=10)):
        with pytest.raises(StorageError) as e:
            call()
        assert e.value.errno == errno.ENOENT
        assert str(e.value) == f"cannot write {out}: No such file or directory"


@pytest.mark.parametrize("which", ["recording", "to_wav"])
@pytest.mark.parametrize("err, words, code", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device",
     errno.ENOSPC),
    (OSError("no errno"), "no errno", errno.EIO),
])
def test_a_failed_sync_names_the_output_and_leaves_nothing(made, tmp_path, monkeypatch,
                                                           which, err, words, code):
    kit, src, _ = made

    def fail(fd, where):
        raise err

    monkeypatch.setattr(audio_out, "fsync_fd", fail)
    out = tmp_path / "x.wav"
    with pytest.raises(StorageError) as e:
        if which == "recording":
            decrypt_recording(src, kit.org, out)
        else:
            decrypt_to_wav(src, load_content_keys(src, kit.org), out, rate=RATE, channels=1,
                           width=2, total_samples=10)
    assert e.value.errno == code
    assert str(e.value) == f"writing {out} failed: {words}"
    assert list(tmp_path.iterdir()) == []


def test_an_error_that_is_not_an_os_error_passes_unchanged(made, tmp_path, monkeypatch):
    kit, src, _ = made

    def boom(fd, where):
        raise FormatError("kapot")

    monkeypatch.setattr(audio_out, "fsync_fd", boom)
    with pytest.raises(FormatError, match=r"^kapot$"):
        decrypt_recording(src, kit.org, tmp_path / "x.wav")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("which", ["recording", "to_wav"])
def test_a_failed_fsync_names_the_output_in_fsync_s_words(made, tmp_path, monkeypatch, which):
    kit, src, _ = made

    def eio(fd):
        raise OSError(errno.EIO, "Input/output error")

    keys = load_content_keys(src, kit.org)
    monkeypatch.setattr(os, "fsync", eio)
    out = tmp_path / "x.wav"
    with pytest.raises(StorageError) as e:
        if which == "recording":
            decrypt_recording(src, kit.org, out)
        else:
            decrypt_to_wav(src, keys, out, rate=RATE, channels=1, width=2, total_samples=10)
    assert str(e.value) == f"fsync failed for {out}: Input/output error"
    assert list(tmp_path.iterdir()) == []


def test_a_link_planted_at_the_temporary_s_name_is_not_followed(made, tmp_path):
    kit, src, _ = made
    out = tmp_path / "x.wav"
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / f".x.wav.{os.getpid()}.partial").symlink_to(target)
    with pytest.raises(StorageError) as e:
        decrypt_recording(src, kit.org, out)
    assert str(e.value) == f"cannot write {out}: Too many levels of symbolic links"
    assert target.read_bytes() == b"keep" and not out.exists()


def test_a_refusal_reports_its_problems_and_writes_nothing(made, tmp_path):
    kit, src, _ = made
    d = _copy(src, tmp_path)
    keys = load_content_keys(d, kit.org)
    parts, audio_at = _audio_frames(d)
    parts[audio_at[0]], h = _remake(keys, parts[audio_at[0]], tag_ok=False)
    rewrite(d, parts)
    (tmp_path / "o").mkdir()
    res = decrypt_recording(d, kit.org, tmp_path / "o" / "x.wav")
    assert res.written is False and not res.report.ok
    assert res.problems == [f"frame {h.index}: does not decrypt, left silent"]
    assert list((tmp_path / "o").iterdir()) == []


def test_a_recording_from_an_unexpected_device_is_not_written(made, tmp_path):
    kit, src, _ = made
    stranger = make_kit(tmp_path / "s")
    out = tmp_path / "x.wav"
    res = decrypt_recording(src, kit.org, out, trusted_key=stranger.identity.public)
    assert res.written is False and [f.code for f in res.report.findings] == ["wrong_device"]
    assert not out.exists()
    assert decrypt_recording(src, kit.org, out, trusted_key=kit.identity.public).written


def test_missing_audio_fields_take_their_defaults_and_the_manifest_s_length(made, tmp_path):
    """Fields absent from the manifest: 48 kHz, mono, 16-bit — and the length is still the
    manifest's (here longer than the frames: silence follows)."""
    kit, src, audio = made
    d = _copy(src, tmp_path)
    total = 5 * SEG - SEG // 2
    _edit_manifest(d, lambda doc: doc.update(audio={}, duration_samples=total + 100))
    out = tmp_path / "x.wav"
    res = decrypt_recording(d, kit.org, out, force=True)
    assert res.total_samples == total + 100
    data = _expected(audio)[WAV_HEADER_LEN:] + bytes(200)
    assert out.read_bytes() == wav_bytes(len(data), 48000, 1, 2) + data


def test_a_stereo_recording_decrypts_to_a_stereo_wav(tmp_path):
    from akkoord.store.writer import AudioParams, RecordingWriter

    kit = make_kit(tmp_path / "k")
    w = RecordingWriter.create(kit.state, kit.identity, [kit.org.public],
                               AudioParams(sample_rate=RATE, channels=2, segment_samples=SEG),
                               kit.clock, custody=kit.custody)
    w.add_event("start")
    chunks = [bytes([i + 1]) * (4 * SEG) for i in range(3)]
    for c in chunks:
        w.add_audio(c)
    w.close("party_a", party="A")
    out = tmp_path / "s.wav"
    res = decrypt_recording(w.path, kit.org, out)
    assert res.written and res.report.ok and res.total_samples == 3 * SEG
    assert out.read_bytes() == wav_bytes(12 * SEG, RATE, 2, 2) + b"".join(chunks)


def test_without_a_manifest_or_audio_the_wav_is_empty(tmp_path):
    kit = make_kit(tmp_path / "k")
    w = kit.writer()
    w.add_event("start")
    w.close("party_a", party="A")
    (w.path / MANIFEST_FILE).unlink()
    out = tmp_path / "e.wav"
    res = decrypt_recording(w.path, kit.org, out, force=True)
    assert res.total_samples == 0 and out.read_bytes() == wav_bytes(0, 48000, 1, 2)


def test_without_a_manifest_a_cut_recording_ends_with_its_last_audio(made, tmp_path):
    """No END, no manifest: the length is where the last audio frame ends."""
    kit, src, audio = made
    d = _copy(src, tmp_path)
    parts = frame_bytes(d / CONTAINER_FILE)
    rewrite(d, parts[:-2])  # the last checkpoint and END gone
    (d / MANIFEST_FILE).unlink()
    out = tmp_path / "c.wav"
    res = decrypt_recording(d, kit.org, out, force=True)
    assert res.total_samples == 5 * SEG - SEG // 2
    data = _expected(audio)[WAV_HEADER_LEN:]
    assert out.read_bytes() == wav_bytes(len(data), 48000, 1, 2) + data


def test_decrypt_to_wav_leaves_a_damaged_frame_silent(made, tmp_path):
    kit, src, audio = made
    d = _copy(src, tmp_path)
    parts, audio_at = _audio_frames(d)
    bad = bytearray(parts[audio_at[1]])
    bad[200] ^= 1
    parts[audio_at[1]] = bytes(bad)
    rewrite(d, parts)
    out = tmp_path / "d.wav"
    assert decrypt_to_wav(d, load_content_keys(d, kit.org), out, rate=RATE, channels=1,
                          width=2, total_samples=5 * SEG - SEG // 2) == []
    assert out.read_bytes() == _expected([audio[0], bytes(2 * SEG), *audio[2:]])
