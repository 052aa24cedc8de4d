"""Verify a copy (FORMAT.md §9): the signed manifest, then the WAV against it, second by second.

`verify.html` implements the same steps in the browser; both pass tests/vectors/.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from akkoord.errors import FormatError, KeyMaterialError
from akkoord.export.wavfile import read_wav_info
from akkoord.store.format import MANIFEST_FORMAT
from akkoord.store.keys import DevicePublicKey
from akkoord.store.manifest import MANIFEST_FILE, SIGNATURE_FILE, verify_manifest_signature
from akkoord.store.verify import Finding

__all__ = ["COPY_FILE", "CopyReport", "compare_audio", "verify_copy"]

COPY_FILE = "copy.json"
COPY_FORMAT = "akkoord-copy/1"
AUDIO_FILE = "opname.wav"


@dataclass
class CopyReport:
    path: str
    status: str = "changed"  # unchanged | changed | not_signed | wrong_device | unfinished
    recording_id: str | None = None
    copy_number: int | None = None
    made_by: str | None = None
    simulated: bool | None = None
    recording_status: str | None = None
    duration_seconds: float | None = None
    device_fingerprint: str | None = None
    device_trusted: bool | None = None
    findings: list[Finding] = field(default_factory=list)
    changed_seconds: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": "copy",
            "ok": self.ok,
            "status": self.status,
            "recording_id": self.recording_id,
            "copy_number": self.copy_number,
            "made_by": self.made_by,
            "simulated": self.simulated,
            "recording_status": self.recording_status,
            "duration_seconds": self.duration_seconds,
            "device": {"fingerprint": self.device_fingerprint, "trusted": self.device_trusted},
            "findings": [f.to_json() for f in self.findings],
            "changed_seconds": self.changed_seconds,
            "notes": self.notes,
            "timeline": self.timeline,
        }


def _read(path: Path, limit: int) -> bytes:
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise FormatError(f"{path}: missing — not a complete akkoord copy") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise FormatError(f"{path}: implausibly large")
    return data


def _json(path: Path, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError(f"{path}: not valid JSON") from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: not a JSON object")
    return doc


@dataclass(frozen=True)
class _Item:
    start: int
    samples: int
    mac: bytes | None  # None: a gap, which must be silence


def compare_audio(
    manifest: dict[str, Any], mac_key: bytes, f: BinaryIO, data_offset: int, data_len: int
) -> tuple[list[tuple[int, int]], list[Finding]]:
    """Changed sample ranges (recording timeline) and findings for one copy's samples."""
    audio = manifest["audio"]
    rate = int(audio["sample_rate"])
    fb = int(audio["channels"]) * int(audio["sample_width"])
    total = int(manifest["duration_samples"])
    items = [_Item(int(s[1]), int(s[2]), bytes.fromhex(s[3])) for s in manifest["segments"]]
    items += [_Item(int(g[1]), int(g[2]), None) for g in manifest.get("gaps", [])]
    items.sort(key=lambda i: i.start)
    have = data_len // fb

    def matches(item: _Item, at: int) -> bool:
        if at < 0 or at + item.samples > have:
            return False
        f.seek(data_offset + at * fb)
        chunk = f.read(item.samples * fb)
        if item.mac is None:
            return chunk == bytes(len(chunk))
        return hmac.compare_digest(hmac.digest(mac_key, chunk, "sha256"), item.mac)

    delta = have - total
    state = []  # per item: "ok" | "moved" | "changed"
    for it in items:
        if matches(it, it.start):
            state.append("ok")
        elif delta and matches(it, it.start + delta):
            state.append("moved")
        else:
            state.append("changed")
    findings: list[Finding] = []
    ranges: list[tuple[int, int]] = []
    for it, st in zip(items, state, strict=True):
        if st != "changed":
            continue
        if ranges and ranges[-1][1] >= it.start:
            ranges[-1] = (ranges[-1][0], it.start + it.samples)
        else:
            ranges.append((it.start, it.start + it.samples))
    for a, b in ranges:
        findings.append(
            Finding(
                "audio_changed",
                f"the audio differs from the recording from second {a / rate:g} to {b / rate:g}",
                None,
                round(a / rate, 3),
            )
        )
    if items and all(s == "changed" for s in state):
        findings.append(
            Finding(
                "wrong_recording",
                "none of the audio matches this recording: another recording, or wholly replaced",
            )
        )
    if data_len % fb:
        findings.append(Finding("length_changed", "the audio ends in the middle of a sample"))
    if delta:
        moved = [it for it, st in zip(items, state, strict=True) if st == "moved"]
        seconds = abs(delta) / rate
        what = "shorter" if delta < 0 else "longer"
        if moved:
            before = [
                it
                for it, st in zip(items, state, strict=True)
                if st == "ok" and it.start < moved[0].start
            ]
            at = before[-1].start + before[-1].samples if before else 0
            verb = "cut out" if delta < 0 else "inserted"
            msg = (
                f"the audio is {seconds:g} s {what} than recorded: {seconds:g} s {verb} "
                f"at second {at / rate:g}"
            )
            end = moved[0].start if delta < 0 else at
            ranges.append((at, max(end, at + (abs(delta) if delta > 0 else 0))))
            findings.append(Finding("length_changed", msg, None, round(at / rate, 3)))
        else:
            findings.append(
                Finding("length_changed", f"the audio is {seconds:g} s {what} than recorded")
            )
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged, findings


def verify_copy(
    path: Path, trusted_key: DevicePublicKey | None = None, *, reading_back: bool = False
) -> CopyReport:
    """`path` is a copy folder or the WAV inside it. `reading_back`: the writer checks its
    own `.partial` folder before publishing it (nobody else may pass it)."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise FormatError(f"{path}: no such copy")
    rep = CopyReport(str(folder))
    # `<name>.<random>.partial` is where a copy is written before it is checked and renamed:
    # one left behind was interrupted (stick pulled, power lost), whatever its files say.
    unfinished = folder.name.endswith(".partial") and not reading_back
    if unfinished:
        rep.findings.append(Finding(
            "unfinished_copy",
            "an unfinished copy: it was interrupted before it was checked and completed; "
            "ask for a new copy",
        ))
    manifest_bytes = _read(folder / MANIFEST_FILE, 256 << 20)
    manifest = _json(folder / MANIFEST_FILE, manifest_bytes)
    copy = _json(folder / COPY_FILE, _read(folder / COPY_FILE, 1 << 20))
    if copy.get("format") != COPY_FORMAT:
        raise FormatError(f"{folder / COPY_FILE}: not an {COPY_FORMAT} file")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{folder / MANIFEST_FILE}: not an {MANIFEST_FORMAT} manifest")
    try:
        if not isinstance(manifest.get("device"), dict):
            raise TypeError("device is not an object")
        key = DevicePublicKey.from_json(manifest["device"], f"{folder / MANIFEST_FILE}: device")
        mac_key = base64.b64decode(copy["audio_mac_key"], validate=True)
        rate = int(manifest["audio"]["sample_rate"])
        if not 1 <= rate <= 10**6 or int(manifest["audio"]["channels"]) not in (1, 2):
            raise ValueError("implausible audio parameters")
        rep.recording_id = str(manifest["recording_id"])
        rep.duration_seconds = manifest["duration_seconds"]
        rep.recording_status = manifest["status"]
    except (KeyError, TypeError, ValueError, binascii.Error, KeyMaterialError) as exc:
        raise FormatError(f"{folder}: manifest or copy.json incomplete ({exc})") from None
    rep.copy_number = copy.get("copy_number")
    rep.made_by = copy.get("made_by")
    rep.simulated = bool(manifest.get("simulated"))
    rep.device_fingerprint = key.fingerprint
    rep.timeline = manifest.get("timeline") if isinstance(manifest.get("timeline"), list) else []

    try:
        sig = base64.b64decode(_read(folder / SIGNATURE_FILE, 4096).strip(), validate=True)
    except (FormatError, binascii.Error):
        sig = b""
    signed = verify_manifest_signature(manifest_bytes, sig, key)
    if not signed:
        rep.findings.append(
            Finding("bad_signature", "the manifest is not signed by the device it names")
        )
        rep.status = "not_signed"
    if trusted_key is not None:
        rep.device_trusted = trusted_key.raw == key.raw
        if not rep.device_trusted:
            rep.findings.append(
                Finding(
                    "wrong_device",
                    f"signed by device {key.fingerprint[:16]}, not by the expected "
                    f"device {trusted_key.fingerprint[:16]}",
                )
            )
            rep.status = "wrong_device"
    else:
        rep.notes.append(
            "device key not anchored: compare the fingerprint with the one the "
            "organisation publishes"
        )
    if copy.get("recording_id") != manifest.get("recording_id"):
        rep.findings.append(
            Finding("wrong_recording", "copy.json and the manifest name different recordings")
        )
    name = str(copy.get("audio_file") or AUDIO_FILE)
    if "/" in name or name in (".", ".."):
        raise FormatError(f"{folder / COPY_FILE}: audio_file must be a plain file name")
    wav_path = folder / name
    try:
        # Never follow a link planted on a stick.
        f = os.fdopen(os.open(wav_path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
    except FileNotFoundError:
        raise FormatError(f"{wav_path}: missing — the copy has no audio") from None
    except OSError as exc:
        raise FormatError(f"{wav_path}: cannot open ({exc.strerror})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        info = read_wav_info(f, size, str(wav_path))
        audio = manifest["audio"]
        if (info.rate, info.channels) != (int(audio["sample_rate"]), int(audio["channels"])):
            rep.findings.append(
                Finding(
                    "audio_format",
                    f"the WAV is {info.rate} Hz / {info.channels} channel(s), the "
                    f"recording {audio['sample_rate']} Hz / {audio['channels']}",
                )
            )
        else:
            try:
                ranges, findings = compare_audio(
                    manifest, mac_key, f, info.data_offset, info.data_len
                )
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise FormatError(f"{folder / MANIFEST_FILE}: malformed segment list") from exc
            rep.findings += findings
            rep.changed_seconds = [[round(a / rate, 3), round(b / rate, 3)] for a, b in ranges]
    if unfinished:
        rep.status = "unfinished"
    elif rep.findings and rep.status not in ("not_signed", "wrong_device"):
        rep.status = "changed"
    elif not rep.findings:
        rep.status = "unchanged"
    if rep.recording_status == "interrupted":
        rep.notes.append("the recording was interrupted (power loss); this is disclosed in it")
    if rep.simulated:
        rep.notes.append("simulated: made by the simulator, not at a real meeting")
    return rep
