"""What the copy verifier says, word for word: findings, notes, and the refusals of a copy it
cannot read.

A copy's holder reads these (in `akkoord verify`'s output and in an expert's report), so they
are a contract of their own: a finding says what changed and where, a refusal names the file
and what is wrong with it. test_copycheck.py and test_copy_attacks.py pin the verdicts (codes,
statuses, located seconds); this module pins the words.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from akkoord.errors import FormatError
from akkoord.export.copycheck import COPY_FORMAT, CUSTODY_HEAD_FORMAT, verify_copy
from akkoord.store.format import MANIFEST_FORMAT, canonical_json
from akkoord.store.keys import DeviceIdentity
from akkoord.store.manifest import manifest_bytes, sign_manifest
from copykit import AUDIO, at, clone, flip_sample, pcm, record_copy, samples, write_wav
from storekit import make_kit

MANIFEST, COPY, HEAD, SIG = "manifest.json", "copy.json", "custody-head.json", "manifest.sig"


@pytest.fixture(scope="module")
def kit():
    k = make_kit()
    yield k
    k.cleanup()


@pytest.fixture(scope="module")
def made(kit):
    return record_copy(kit, 5, seed=21)  # five 1 s segments, made by the device


@pytest.fixture
def copy_of(made, tmp_path):
    def make(name: str = "copy") -> Path:
        return clone(made.folder, tmp_path / name)
    return make


def _doc(folder: Path, name: str) -> dict[str, Any]:
    return json.loads((folder / name).read_bytes())


def _put(folder: Path, name: str, doc: Any) -> None:
    (folder / name).write_bytes(canonical_json(doc) + b"\n")


def _edit_manifest(folder: Path, kit: Any, change: Any, *, sign: bool = True) -> None:
    """Change the manifest and (as a thief with the device key could) sign it again."""
    doc = _doc(folder, MANIFEST)
    change(doc)
    data = manifest_bytes(doc)
    (folder / MANIFEST).write_bytes(data)
    if sign:
        (folder / SIG).write_bytes(base64.b64encode(sign_manifest(data, kit.identity)) + b"\n")


def _refusal(folder: Path, trusted: Any = None) -> str:
    with pytest.raises(FormatError) as got:
        verify_copy(folder, trusted)
    return str(got.value)


def _said(rep: Any) -> list[tuple[str, str]]:
    return [(f.code, f.message) for f in rep.findings]


# -- refusals: the copy cannot be read ---------------------------------------------------------


def test_a_path_that_is_not_a_copy(tmp_path):
    assert _refusal(tmp_path / "nope") == f"{tmp_path / 'nope'}: no such copy"
    nul = tmp_path / "a\0b"
    assert _refusal(nul) == f"{nul!r}: a path with a NUL byte"
    os.mkfifo(tmp_path / "fifo")
    assert _refusal(tmp_path / "fifo") == (
        f"{tmp_path / 'fifo'}: not a copy folder or a regular file")


@pytest.mark.parametrize("name", [MANIFEST, COPY])
def test_a_missing_file_is_named(copy_of, name):
    folder = copy_of()
    (folder / name).unlink()
    assert _refusal(folder) == f"{folder / name}: missing — not a complete akkoord copy"


def test_a_file_that_is_not_a_regular_file_is_named(copy_of):
    folder = copy_of()
    (folder / MANIFEST).unlink()
    (folder / MANIFEST).mkdir()
    assert _refusal(folder) == f"{folder / MANIFEST}: not a regular file"
    folder = copy_of("linked")
    (folder / COPY).unlink()
    os.symlink("/etc/hostname", folder / COPY)
    assert _refusal(folder) == (
        f"{folder / COPY}: cannot open (Too many levels of symbolic links)")


def test_an_implausibly_large_or_not_json_file_is_named(copy_of):
    folder = copy_of()
    (folder / COPY).write_bytes(b" " * (1 << 20) + b"{}")
    assert _refusal(folder) == f"{folder / COPY}: implausibly large"
    (folder / COPY).write_bytes(b"[1, 2]")
    assert _refusal(folder) == f"{folder / COPY}: not a JSON object"


def test_files_of_another_kind_are_named(copy_of, kit):
    folder = copy_of()
    copy = _doc(folder, COPY)
    _put(folder, COPY, {**copy, "format": "akkoord-copy/1"})
    assert _refusal(folder) == f"{folder / COPY}: not an {COPY_FORMAT} file"
    folder = copy_of("old-manifest")
    _edit_manifest(folder, kit, lambda d: d.update(format="akkoord-manifest/1"))
    assert _refusal(folder) == f"{folder / MANIFEST}: not an {MANIFEST_FORMAT} manifest"
    folder = copy_of("old-head")
    _put(folder, HEAD, {**_doc(folder, HEAD), "format": "akkoord-custody-head/1"})
    assert _refusal(folder) == f"{folder / HEAD}: not an {CUSTODY_HEAD_FORMAT} file"


def _drop(key: str) -> Any:
    return lambda d: d.pop(key)


def _segment(i: int, pos: int, value: Any) -> Any:
    def change(d: dict) -> None:
        d["segments"][i][pos] = value
    return change


def _gap(value: Any) -> Any:
    return lambda d: d.update(gaps=[value])


MALFORMED = {
    # name: (change to the manifest, what the refusal says in its parentheses)
    "device_not_object": (lambda d: d.update(device="a"), "device is not an object"),
    "unknown_algorithm": (lambda d: d["device"].update(algorithm="rsa"),
                          "unknown device key algorithm 'rsa'"),
    "long_algorithm": (lambda d: d["device"].update(algorithm="x" * 100),
                       ("unknown device key algorithm '" + "x" * 100)[:80]),
    "key_not_base64": (lambda d: d["device"].update(
        public_key=base64.b64encode(bytes(range(32))).decode()[:10] + "!"
        + base64.b64encode(bytes(range(32))).decode()[10:]), "Only base64 data is allowed"),
    "key_not_text": (lambda d: d["device"].update(public_key=5), "Only base64 data is allowed"),
    "short_key": (lambda d: d["device"].update(public_key=base64.b64encode(bytes(31)).decode()),
                  "an ed25519 public key has 32 bytes, not 31"),
    "audio_not_object": (lambda d: d.update(audio=[]), "audio is not an object"),
    "rate_zero": (lambda d: d["audio"].update(sample_rate=0),
                  "audio.sample_rate must be a whole number from 1 to 384000, not 0"),
    "rate_true": (lambda d: d["audio"].update(sample_rate=True),
                  "audio.sample_rate must be a whole number from 1 to 384000, not True"),
    "rate_huge": (lambda d: d["audio"].update(sample_rate=384_001),
                  "audio.sample_rate must be a whole number from 1 to 384000, not 384001"),
    "rate_long": (lambda d: d["audio"].update(sample_rate="x" * 300),
                  ("audio.sample_rate must be a whole number from 1 to 384000, not '"
                   + "x" * 300)[:160]),
    "channels_9": (lambda d: d["audio"].update(channels=9),
                   "audio.channels must be a whole number from 1 to 8, not 9"),
    "width_3": (lambda d: d["audio"].update(sample_width=3),
                "audio.sample_width must be a whole number from 2 to 2, not 3"),
    "duration_negative": (lambda d: d.update(duration_samples=-1),
                          "duration_samples must be a whole number from 0 to 1099511627776, "
                          "not -1"),
    "segments_missing": (_drop("segments"), "segments and gaps must be lists"),
    "gaps_not_list": (lambda d: d.update(gaps={}), "segments and gaps must be lists"),
    "segment_short": (lambda d: d["segments"][0].pop(), "a segment is not [index, start, "
                      "samples, mac]"),
    "segment_mac_number": (_segment(0, 3, 7), "a segment is not [index, start, samples, mac]"),
    "segment_mac_upper": (_segment(0, 3, "A" * 64), "a segment's mac is not 64 hex digits"),
    "segment_start": (_segment(1, 1, -1),
                      "segment start must be a whole number from 0 to 1099511627776, not -1"),
    "segment_samples": (_segment(1, 2, 0),
                        "segment samples must be a whole number from 1 to 1099511627776, not 0"),
    "segment_index": (_segment(1, 0, 1 << 33),
                      "segment index must be a whole number from 0 to 4294967296, "
                      "not 8589934592"),
    "gap_short": (_gap([1, 2]), "a gap is not [index, start, samples]"),
    "gap_start": (_gap([9, -5, 3]),
                  "gap start must be a whole number from 0 to 1099511627776, not -5"),
    "gap_samples": (_gap([9, 80000, 0]),
                    "gap samples must be a whole number from 1 to 1099511627776, not 0"),
    "gap_index": (_gap([-9, 80000, 3]),
                  "gap index must be a whole number from 0 to 4294967296, not -9"),
    "hole": (_segment(2, 1, 32001),
             "segments and gaps do not tile the recording at sample 32000"),
    "too_short": (lambda d: d.update(duration_samples=d["duration_samples"] + 1),
                  "segments and gaps do not add up to duration_samples"),
    "extra_gap": (_gap([9, 80000, 3]), "segments and gaps do not add up to duration_samples"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_manifest_is_refused_saying_which_value(copy_of, kit, name):
    change, words = MALFORMED[name]
    folder = copy_of()
    _edit_manifest(folder, kit, change)
    assert _refusal(folder) == f"{folder}: manifest or copy.json incomplete ({words})"


def test_a_copy_without_its_mac_key_is_refused(copy_of):
    folder = copy_of()
    copy = _doc(folder, COPY)
    del copy["audio_mac_key"]
    _put(folder, COPY, copy)
    assert _refusal(folder) == f"{folder}: manifest or copy.json incomplete ('audio_mac_key')"


@pytest.mark.parametrize("name", ["a/b.wav", "op\0name.wav", ".", ".."])
def test_an_audio_file_that_is_not_a_plain_name_is_refused(copy_of, name):
    folder = copy_of()
    _put(folder, COPY, {**_doc(folder, COPY), "audio_file": name})
    assert _refusal(folder) == f"{folder / COPY}: audio_file must be a plain file name"


# -- findings and notes: the copy was read ------------------------------------------------------


def test_an_honest_copy_says_what_it_could_not_check(kit, made):
    rep = verify_copy(made.folder, kit.identity.public)
    assert rep.findings == [] and rep.status == "unchanged" and rep.claims_signed
    chain = rep.chain
    assert chain is not None and not chain.anchored and chain.claimed_fingerprint
    assert rep.notes == [
        f"not anchored ({chain.message}): cannot tell who made this; the copy claims to be "
        f"from {chain.claimed_organisation!r} (signing key {chain.claimed_fingerprint[:32]}): "
        "compare that fingerprint with the one the organisation publishes",
        *chain.notes,
    ]
    assert (rep.copy_number, rep.made_by, rep.made) == (1, "device", _doc(
        made.folder, COPY)["made"]["utc"])
    assert rep.recording_id == made.writer.id and rep.simulated is False
    assert rep.timeline == _doc(made.folder, MANIFEST)["timeline"]
    assert rep.to_json()["status"] == "unchanged" and rep.to_json()["ok"] is True


def test_a_copy_without_a_certificate_asks_for_the_fingerprint(copy_of, kit):
    folder = copy_of()
    _edit_manifest(folder, kit, lambda d: d["device"].pop("certificate"))
    rep = verify_copy(folder, kit.identity.public)
    chain = rep.chain
    assert rep.ok and chain is not None and chain.claimed_fingerprint is None
    assert rep.notes[0] == (f"not anchored ({chain.message}): cannot tell who made this; "
                            "compare the device fingerprint with the one the organisation "
                            "publishes")


def test_a_bad_signature_is_said_and_the_audio_left_alone(copy_of):
    folder = copy_of()
    (folder / SIG).write_bytes(base64.b64encode(bytes(64)) + b"\n")
    write_wav(folder / AUDIO, b"")  # never read
    rep = verify_copy(folder)
    assert _said(rep) == [("bad_signature", "the manifest is not signed by the device it names")]
    assert rep.status == "not_signed"
    assert rep.notes == ["the audio was not checked: the manifest's signature failed"]
    (folder / SIG).write_bytes(b"not base64!")
    assert verify_copy(folder).status == "not_signed"


def test_another_device_is_named_by_both_fingerprints(kit, made):
    stranger = DeviceIdentity.generate()
    rep = verify_copy(made.folder, stranger.public)
    assert _said(rep) == [("wrong_device", f"signed by device {kit.identity.fingerprint[:16]}, "
                           f"not by the expected device {stranger.fingerprint[:16]}")]
    assert rep.status == "wrong_device" and rep.device_trusted is False


def test_copy_json_naming_another_recording(copy_of):
    folder = copy_of()
    _put(folder, COPY, {**_doc(folder, COPY), "recording_id": "00" * 16})
    rep = verify_copy(folder)
    assert _said(rep) == [("wrong_recording",
                           "copy.json and the manifest name different recordings")]
    assert rep.status == "changed"


def test_a_device_copy_without_its_custody_head(copy_of):
    folder = copy_of()
    (folder / HEAD).unlink()
    rep = verify_copy(folder)
    assert _said(rep) == [("custody_head", "a copy made by the device carries its custody head; "
                           "this one has none (copy number and time are not signed)")]
    assert not rep.claims_signed


def test_an_organisation_copy_without_a_custody_head_is_a_note(copy_of):
    folder = copy_of()
    (folder / HEAD).unlink()
    _put(folder, COPY, {**_doc(folder, COPY), "made_by": "organisation"})
    rep = verify_copy(folder)
    assert rep.ok and not rep.claims_signed
    assert "copy number, maker and time are not signed (no custody head)" in rep.notes


def _head(folder: Path, change: Any) -> None:
    head = _doc(folder, HEAD)
    change(head)
    _put(folder, HEAD, head)


def _resign_head(kit: Any, head: dict) -> None:
    from akkoord.store.custody import entry_hash, head_message
    digest = entry_hash(head["entry"])
    head["hash"] = digest.hex()
    head["signature"] = base64.b64encode(
        kit.identity.sign(head_message(head["seq"], digest))).decode()


HEADS = {
    # name: (change to custody-head.json given the kit, problem)
    "seq_not_number": (lambda kit, h: h.update(seq="1"), "malformed"),
    "hash_not_hex": (lambda kit, h: h.update(hash="zz" * 32), "malformed"),
    "signature_not_base64": (lambda kit, h: h.update(signature="!"), "malformed"),
    "no_entry": (lambda kit, h: h.update(entry=None), "it holds no custody entry"),
    "entry_changed": (lambda kit, h: h["entry"]["detail"].update(copy_number=7),
                      "its entry does not match its hash"),
    "other_seq": (lambda kit, h: (h.update(seq=h["seq"] + 1), _resign_head(kit, h)),
                  "not signed by the device that signed the manifest"),
    "not_signed": (lambda kit, h: h.update(signature=base64.b64encode(bytes(64)).decode()),
                   "not signed by the device that signed the manifest"),
    "not_an_export": (lambda kit, h: (h["entry"].update(type="recording_started"),
                                      _resign_head(kit, h)),
                      "it is not the record of an export of this recording"),
    "other_recording": (lambda kit, h: (h["entry"].update(recording_id="00" * 16),
                                        _resign_head(kit, h)),
                        "it is not the record of an export of this recording"),
    "other_copy_number": (lambda kit, h: (h["entry"]["detail"].update(copy_number=2),
                                          _resign_head(kit, h)),
                          "it records copy 2, copy.json claims copy 1"),
    "other_time": (lambda kit, h: (h["entry"].update(time={"utc": "2030-01-01T00:00:00.000Z",
                                                           "clock": "ntp"}),
                                   _resign_head(kit, h)),
                   "copy.json's maker or time differ from the signed record"),
}


@pytest.mark.parametrize("name", list(HEADS))
def test_a_custody_head_that_does_not_vouch_for_the_copy_says_why(copy_of, kit, name):
    change, problem = HEADS[name]
    folder = copy_of()
    _head(folder, lambda h: change(kit, h))
    rep = verify_copy(folder)
    assert _said(rep) == [("custody_head", f"custody-head.json: {problem}")]
    assert not rep.claims_signed and rep.status == "changed"


def test_a_custody_head_resigned_unchanged_vouches(copy_of, kit):
    """The control for the cases above: re-signing alone changes nothing."""
    folder = copy_of()
    _head(folder, lambda h: _resign_head(kit, h))
    rep = verify_copy(folder)
    assert rep.ok and rep.claims_signed


def test_a_maker_other_than_the_device_contradicts_a_device_head(copy_of):
    folder = copy_of()
    _put(folder, COPY, {**_doc(folder, COPY), "made_by": "organisation"})
    rep = verify_copy(folder)
    assert _said(rep) == [("custody_head", "custody-head.json: copy.json's maker or time differ "
                           "from the signed record")]


def test_a_wav_in_another_format_is_named(copy_of, made):
    folder = copy_of()
    write_wav(folder / AUDIO, made.audio, rate=8000)
    rep = verify_copy(folder)
    assert _said(rep) == [("audio_format",
                           "the WAV is 8000 Hz / 1 channel(s), the recording 16000 Hz / 1")]
    (folder / AUDIO).write_bytes(b"RIFF")
    (code, message), = _said(verify_copy(folder))
    assert code == "wav_not_canonical" and message.startswith("opname.wav: ")


AUDIO_WORDS = {
    # name: (change, [(code, message, second)], changed seconds)
    "one_sample": (lambda d: flip_sample(d, samples(2.5)),
                   [("audio_changed", "the audio differs from the recording from second 2 to 3",
                     2)], [[2, 3]]),
    "cut_1s": (lambda d: d[:at(2)] + d[at(3):],
               [("audio_changed", "the audio differs from the recording from second 2 to 3", 2),
                ("length_changed", "the audio is 1 s shorter than recorded: 1 s cut out at "
                 "second 2", 2)], [[2, 3]]),
    "inserted_half_s": (lambda d: d[:at(3)] + pcm(3, samples(0.5)) + d[at(3):],
                        [("length_changed", "the audio is 0.5 s longer than recorded: 0.5 s "
                          "inserted at second 3", 3)], [[3, 3.5]]),
    "appended": (lambda d: d + pcm(4, samples(0.25)),
                 [("length_changed", "the audio is 0.25 s longer than recorded", None)], []),
    "end_cut": (lambda d: d[:at(4.5)],
                [("audio_changed", "the audio differs from the recording from second 4 to 5", 4),
                 ("length_changed", "the audio is 0.5 s shorter than recorded", None)],
                [[4, 5]]),
    "half_sample": (lambda d: d + b"\x01",
                    [("length_changed", "the audio ends in the middle of a sample", None)], []),
    "replaced": (lambda d: pcm(9, len(d) // 2),
                 [("audio_changed", "the audio differs from the recording from second 0 to 5", 0),
                  ("wrong_recording", "none of the audio matches this recording: another "
                   "recording, or wholly replaced", None)], [[0, 5]]),
    "two_places": (lambda d: flip_sample(flip_sample(d, samples(0.5)), samples(4.5)),
                   [("audio_changed", "the audio differs from the recording from second 0 to 1",
                     0),
                    ("audio_changed", "the audio differs from the recording from second 4 to 5",
                     4)], [[0, 1], [4, 5]]),
}


@pytest.mark.parametrize("name", list(AUDIO_WORDS))
def test_changed_audio_is_said_in_seconds(copy_of, made, name):
    change, said, seconds = AUDIO_WORDS[name]
    folder = copy_of()
    write_wav(folder / AUDIO, change(made.audio))
    rep = verify_copy(folder)
    assert [(f.code, f.message, f.second) for f in rep.findings] == said
    assert rep.changed_seconds == seconds and rep.status == "changed"


def test_an_unfinished_copy_says_ask_for_a_new_one(made, tmp_path):
    folder = clone(made.folder, tmp_path / f".{made.folder.name}.0123abcd.partial")
    rep = verify_copy(folder)
    assert _said(rep) == [("unfinished_copy", "an unfinished copy: it was interrupted before it "
                           "was checked and completed; ask for a new copy")]
    assert rep.status == "unfinished"
    assert verify_copy(folder, reading_back=True).ok  # the device's own read-back


def test_interrupted_and_simulated_recordings_are_disclosed(kit, tmp_path):
    interrupted = record_copy(kit, 2, seed=22, interrupted=True)
    rep = verify_copy(interrupted.folder, kit.identity.public)
    assert rep.ok and rep.recording_status == "interrupted"
    assert "the recording was interrupted (power loss); this is disclosed in it" in rep.notes
    assert _doc(interrupted.folder, MANIFEST)["unsigned_tail"]["frames"] == 5
    assert ("unsigned tail: the last 2.0 s were recovered after the device's last signed "
            "checkpoint; the device never signed them while recording") in rep.notes
    simulated = record_copy(kit, 1, seed=23, simulated=True)
    rep = verify_copy(simulated.folder, kit.identity.public)
    assert rep.ok and rep.simulated is True
    assert rep.notes[-1] == "simulated: made by the simulator, not at a real meeting"


# -- the audio comparison's edges ----------------------------------------------------------------


def test_a_cut_at_the_very_start_is_located_there(copy_of, made):
    folder = copy_of()
    write_wav(folder / AUDIO, made.audio[at(1):])
    rep = verify_copy(folder)
    assert [(f.code, f.message, f.second) for f in rep.findings] == [
        ("audio_changed", "the audio differs from the recording from second 0 to 1", 0),
        ("length_changed", "the audio is 1 s shorter than recorded: 1 s cut out at second 0", 0),
    ]
    assert rep.changed_seconds == [[0, 1]]


def test_a_copy_cut_short_inside_a_closing_gap(kit, tmp_path):
    """The last 0.25 s are a disclosed gap; the copy stops half-way into it. The silence
    that is there does not stand for the silence that is missing."""
    ends_in_gap = record_copy(kit, 2, seed=24, gap_after=1)
    folder = clone(ends_in_gap.folder, tmp_path / "short")
    write_wav(folder / AUDIO, ends_in_gap.audio[:at(2.125)])
    rep = verify_copy(folder)
    assert [(f.code, f.message, f.second) for f in rep.findings] == [
        ("audio_changed", "the audio differs from the recording from second 2 to 2.25", 2),
        ("length_changed", "the audio is 0.125 s shorter than recorded", None),
    ]


def test_seconds_are_given_to_the_millisecond(kit, tmp_path):
    short = record_copy(kit, 3, seed=25, seg=1000)  # 62.5 ms segments
    folder = clone(short.folder, tmp_path / "ms")
    write_wav(folder / AUDIO, flip_sample(short.audio, 1500))
    rep = verify_copy(folder)
    assert [(f.code, f.message, f.second) for f in rep.findings] == [
        ("audio_changed", "the audio differs from the recording from second 0.0625 to 0.125",
         0.062)]
    assert rep.changed_seconds == [[0.062, 0.125]]
    write_wav(folder / AUDIO, flip_sample(short.audio, 500))
    assert verify_copy(folder).changed_seconds == [[0, 0.062]]


def test_an_empty_recording_is_an_unchanged_copy(kit):
    empty = record_copy(kit, 0, seed=26)
    rep = verify_copy(empty.folder, kit.identity.public)
    assert rep.ok and rep.status == "unchanged" and rep.duration_seconds == 0


def test_two_gaps_and_a_manifest_without_a_gap_list(kit, copy_of, tmp_path):
    from akkoord.export.package import write_copy
    w = kit.writer(rate=16000, seg=16000)
    w.add_event("start")
    for i in range(3):
        w.add_audio(pcm(30 + i, 16000))
        w.add_gap(4000, "overflow")
    w.close("party_a")
    stick = tmp_path / "stick"
    stick.mkdir()
    folder = write_copy(w.path, w.keys, stick, copy_number=1, made_by="device",
                        clock=kit.clock, device_key=kit.identity.public,
                        custody_head=kit.custody.append("export", w.id, copy_number=1)
                        .to_json()).folder
    assert len(_doc(folder, MANIFEST)["gaps"]) == 3
    assert verify_copy(folder, kit.identity.public).ok
    # A recording without gaps may leave the list out: nothing is missing then.
    plain = copy_of("no-gap-list")
    _edit_manifest(plain, kit, lambda d: (d["gaps"] == [] and d.pop("gaps")))
    assert "gaps" not in _doc(plain, MANIFEST)
    assert verify_copy(plain, kit.identity.public).ok


def test_long_segments_are_compared_whole(kit, tmp_path):
    """Segments larger than the comparison's first buffer (128 KiB): 2 s at 48 kHz."""
    from akkoord.export.package import write_copy
    w = kit.writer(rate=48000, seg=96000)
    w.add_event("start")
    audio = [pcm(40 + i, 96000) for i in range(2)]
    for a in audio:
        w.add_audio(a)
    w.close("party_a")
    stick = tmp_path / "stick"
    stick.mkdir()
    folder = write_copy(w.path, w.keys, stick, copy_number=1, made_by="device",
                        clock=kit.clock, device_key=kit.identity.public,
                        custody_head=kit.custody.append("export", w.id, copy_number=1)
                        .to_json()).folder
    assert verify_copy(folder, kit.identity.public).ok
    write_wav(folder / AUDIO, flip_sample(b"".join(audio), 100_000), rate=48000)
    assert verify_copy(folder).changed_seconds == [[2, 4]]


def test_an_organisation_log_head_naming_no_signer_is_not_checked(copy_of):
    from storekit import SIGNING
    folder = copy_of()
    _head(folder, lambda h: (h.update(log="organisation"), h.pop("signer", None)))
    rep = verify_copy(folder, None, [SIGNING.public])
    assert rep.ok and not rep.claims_signed
    assert ("copy number, maker and time are signed by the organisation's copy log; not "
            "checked without its signing key (--trust)") in rep.notes


def test_compare_audio_says_what_verify_copy_says(copy_of, made, kit):
    """compare_audio, the public form of the comparison, on a whole manifest."""
    from akkoord.export.copycheck import compare_audio
    from akkoord.export.wavfile import read_wav_info
    for name in ("cut_1s", "inserted_half_s", "two_places", "replaced", "half_sample"):
        folder = copy_of(name)
        write_wav(folder / AUDIO, AUDIO_WORDS[name][0](made.audio))
        rep = verify_copy(folder)
        manifest = _doc(folder, MANIFEST)
        key = base64.b64decode(_doc(folder, COPY)["audio_mac_key"])
        with open(folder / AUDIO, "rb") as f:
            info = read_wav_info(f, (folder / AUDIO).stat().st_size, str(folder / AUDIO))
            ranges, findings = compare_audio(manifest, key, f, info.data_offset, info.data_len)
        assert findings == rep.findings, name
        assert [[a / 16000, b / 16000] for a, b in ranges] == rep.changed_seconds, name


def test_a_custody_head_that_cannot_be_read_is_named(copy_of):
    folder = copy_of()
    (folder / HEAD).write_bytes(b"[]")
    assert _refusal(folder) == f"{folder / HEAD}: not a JSON object"
    (folder / HEAD).write_bytes(b" " * (1 << 20) + b"{}")
    assert _refusal(folder) == f"{folder / HEAD}: implausibly large"
    (folder / HEAD).write_bytes(b" " * ((1 << 20) - 2) + b"{}")  # at the limit: read
    assert _refusal(folder) == f"{folder / HEAD}: not an {CUSTODY_HEAD_FORMAT} file"


@pytest.mark.parametrize("created", ["yesterday", {"utc": 5}, {"utc": "2027-13-45T99:00:00Z"}])
def test_an_unreadable_start_time_leaves_the_certificate_unchecked_in_time(copy_of, kit,
                                                                           created):
    folder = copy_of()
    _edit_manifest(folder, kit, lambda d: d.update(created=created))
    rep = verify_copy(folder, kit.identity.public)
    assert rep.chain is not None and rep.status in ("unchanged", "changed", "wrong_device")


def test_the_custody_heads_sequence_number_is_a_safe_integer(copy_of, kit):
    folder = copy_of()
    _head(folder, lambda h: h.update(seq=(1 << 53) - 1))  # the largest: read, then checked
    assert _said(verify_copy(folder)) == [
        ("custody_head", "custody-head.json: not signed by the device that signed the manifest")]
    _head(folder, lambda h: h.update(seq=1 << 53))
    assert _said(verify_copy(folder)) == [("custody_head", "custody-head.json: malformed")]


def test_a_custody_entry_whose_detail_is_not_an_object(copy_of, kit):
    folder = copy_of()
    _head(folder, lambda h: (h["entry"].update(detail=[1]), _resign_head(kit, h)))
    assert _said(verify_copy(folder)) == [
        ("custody_head", "custody-head.json: it records copy None, copy.json claims copy 1")]


# -- copies the organisation made from its archive ---------------------------------------------


@pytest.fixture(scope="module")
def org_copy(kit, tmp_path_factory):
    """A copy made with `akkoord export --org-signing-key`: its head is the organisation's."""
    from akkoord.cli import main
    from akkoord.trust import OrgSigningKey, write_org_signing_pair
    from storekit import record
    where = tmp_path_factory.mktemp("org")
    w, _ = record(kit, seed=27)
    (where / "org.key").write_bytes(kit.org.dumps())
    signing = OrgSigningKey.generate("Jeugdzorg Voorbeeld")
    priv, _pub = write_org_signing_pair(signing, where)
    to = where / "copies"
    to.mkdir()
    assert main(["export", str(w.path), "--key", str(where / "org.key"), "--to", str(to),
                 "--org-signing-key", str(priv)]) == 0
    (folder,) = [p.parent for p in to.glob("*/copy.json")]
    return folder, signing.public


def test_an_organisation_copy_is_vouched_for_by_its_log(org_copy, tmp_path):
    folder, org = org_copy
    rep = verify_copy(folder, None, [org])
    assert rep.ok and rep.claims_signed and rep.made_by == "organisation"
    rep = verify_copy(folder)  # without the organisation's signing key
    assert rep.ok and not rep.claims_signed
    assert ("copy number, maker and time are signed by the organisation's copy log; not "
            "checked without its signing key (--trust)") in rep.notes


def test_an_organisation_head_with_a_bad_signature_is_a_finding(org_copy, tmp_path):
    folder, org = org_copy
    forged = clone(folder, tmp_path / "forged")
    _head(forged, lambda h: h.update(signature=base64.b64encode(bytes(64)).decode()))
    rep = verify_copy(forged, None, [org])
    assert _said(rep) == [("custody_head", "custody-head.json: not signed by the "
                           "organisation's copy log it names")]
    assert not rep.claims_signed


def test_an_organisation_copy_with_an_edited_copy_json_is_not_vouched_for(org_copy, tmp_path):
    folder, org = org_copy
    edited = clone(folder, tmp_path / "edited")
    _put(edited, COPY, {**_doc(edited, COPY), "copy_number": 99})
    rep = verify_copy(edited, None, [org])
    assert not rep.claims_signed
    assert _said(rep) == [("custody_head", "custody-head.json: it records copy 1, copy.json "
                           "claims copy 99")]


@pytest.mark.parametrize("edit", [{"made_by": "device"}, {"made": "2020-01-01T00:00:00Z"}])
def test_an_organisation_copy_with_an_edited_maker_or_time_is_not_vouched_for(
        org_copy, tmp_path, edit):
    folder, org = org_copy
    edited = clone(folder, tmp_path / "edited")
    _put(edited, COPY, {**_doc(edited, COPY), **edit})
    rep = verify_copy(edited, None, [org])
    assert not rep.claims_signed
    assert _said(rep) == [("custody_head", "custody-head.json: copy.json's maker or time "
                           "differ from the signed record")]


def test_an_unchanged_organisation_copy_has_its_claims_signed(org_copy):
    folder, org = org_copy
    rep = verify_copy(folder, None, [org])
    assert rep.claims_signed and not rep.findings


def test_a_single_inserted_sample_is_an_insertion(copy_of, made):
    folder = copy_of()
    write_wav(folder / AUDIO, made.audio[:at(2)] + b"\x07\x00" + made.audio[at(2):])
    rep = verify_copy(folder)
    assert [(f.code, f.message, f.second) for f in rep.findings] == [
        ("length_changed", "the audio is 6.25e-05 s longer than recorded: 6.25e-05 s inserted "
         "at second 2", 2)]


def test_where_a_cut_is_said_to_the_millisecond(kit, tmp_path):
    short = record_copy(kit, 3, seed=28, seg=1000)  # 62.5 ms segments
    folder = clone(short.folder, tmp_path / "ms-cut")
    write_wav(folder / AUDIO, short.audio[:2000] + short.audio[4000:])
    rep = verify_copy(folder)
    (cut,) = [f for f in rep.findings if f.code == "length_changed"]
    assert (cut.message, cut.second) == ("the audio is 0.0625 s shorter than recorded: 0.0625 s "
                                         "cut out at second 0.0625", 0.062)


def test_an_insertion_next_to_a_change_is_one_changed_span(copy_of, made):
    folder = copy_of()
    changed = flip_sample(made.audio, samples(3.5))
    write_wav(folder / AUDIO, changed[:at(2)] + pcm(5, samples(1)) + changed[at(2):])
    rep = verify_copy(folder)
    assert rep.changed_seconds == [[2, 4]]


def test_a_mac_key_that_is_not_base64_is_named(copy_of):
    folder = copy_of()
    _put(folder, COPY, {**_doc(folder, COPY), "audio_mac_key": "!!"})
    assert _refusal(folder) == (f"{folder}: manifest or copy.json incomplete "
                                f"({folder / COPY}: audio_mac_key: not valid base64)")


def test_claims_of_the_wrong_type_are_not_reported(copy_of, kit):
    folder = copy_of()
    _put(folder, COPY, {**_doc(folder, COPY), "copy_number": True, "made_by": 5, "made": "x"})
    rep = verify_copy(folder)
    assert rep.path == str(folder)
    assert (rep.copy_number, rep.made_by, rep.made) == (None, None, None)
    _put(folder, COPY, {**_doc(folder, COPY), "copy_number": "1"})
    assert verify_copy(folder).copy_number is None
    _edit_manifest(folder, kit, lambda d: d.update(timeline={"event": "start"}))
    assert verify_copy(folder).timeline == []


def test_a_signature_file_with_junk_or_too_long_is_no_signature(copy_of):
    folder = copy_of()
    sig = (folder / SIG).read_bytes().strip()
    (folder / SIG).write_bytes(sig[:8] + b"!" + sig[8:] + b"\n")  # junk is not skipped
    assert verify_copy(folder).status == "not_signed"
    (folder / SIG).write_bytes(sig + b"\n" * (4096 - len(sig)))  # 4096 bytes: read
    assert verify_copy(folder).ok
    (folder / SIG).write_bytes(sig + b"\n" * (4097 - len(sig)))  # one more: not read
    assert verify_copy(folder).status == "not_signed"


def test_compare_audio_with_gaps(kit, tmp_path):
    from akkoord.export.copycheck import compare_audio
    from akkoord.export.wavfile import read_wav_info
    gapped = record_copy(kit, 3, seed=29, gap_after=0)  # 0.25 s gap at second 1
    for name, change in [("gap-filled", lambda d: d[:at(1)] + pcm(6, samples(0.25))
                          + d[at(1.25):]), ("unchanged", lambda d: d)]:
        folder = clone(gapped.folder, tmp_path / name)
        write_wav(folder / AUDIO, change(gapped.audio))
        rep = verify_copy(folder)
        manifest = _doc(folder, MANIFEST)
        key = base64.b64decode(_doc(folder, COPY)["audio_mac_key"])
        with open(folder / AUDIO, "rb") as f:
            info = read_wav_info(f, (folder / AUDIO).stat().st_size, str(folder / AUDIO))
            ranges, findings = compare_audio(manifest, key, f, info.data_offset, info.data_len)
        assert findings == rep.findings, name
        assert [[a / 16000, b / 16000] for a, b in ranges] == rep.changed_seconds, name
    assert rep.ok and ranges == []
    assert findings == [] and rep.changed_seconds == []


def test_compare_audio_without_a_gap_list(made):
    from akkoord.export.copycheck import compare_audio
    from akkoord.export.wavfile import read_wav_info
    manifest = _doc(made.folder, MANIFEST)
    assert manifest.pop("gaps") == []
    key = base64.b64decode(_doc(made.folder, COPY)["audio_mac_key"])
    with open(made.wav, "rb") as f:
        info = read_wav_info(f, made.wav.stat().st_size, str(made.wav))
        assert compare_audio(manifest, key, f, info.data_offset, info.data_len) == ([], [])


def test_an_interrupted_recording_without_an_unsigned_tail(kit, tmp_path):
    interrupted = record_copy(kit, 2, seed=31, interrupted=True)
    folder = clone(interrupted.folder, tmp_path / "no-tail")
    _edit_manifest(folder, kit, lambda d: d.pop("unsigned_tail"))
    rep = verify_copy(folder)
    assert "the recording was interrupted (power loss); this is disclosed in it" in rep.notes
    assert not [n for n in rep.notes if n.startswith("unsigned tail")]
