"""Verify a copy (FORMAT.md §9): the signed manifest, the organisation's certificate for the
device key (§10), the custody head, then the WAV against the manifest, second by second.

`verify.html` implements the same steps in the browser; both pass tests/vectors/.

Hostile input (a copy is whatever its holder hands us) fails fast and bounded: files are
opened without following links or blocking on a FIFO, sizes are capped before reading, JSON
refuses `1e999`, NaN and duplicate keys, every number is range-checked; nothing of the audio is
read when the signature fails, and never more than twice the signed duration.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import heapq
import hmac
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from akkoord.errors import FormatError, KeyMaterialError
from akkoord.export.wavfile import CANONICAL_HEADER_LEN, check_canonical_wav
from akkoord.store.custody import entry_hash, head_message
from akkoord.store.format import MANIFEST_FORMAT
from akkoord.store.keys import DevicePublicKey, wipe
from akkoord.store.manifest import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    segments_of,
    verify_manifest_signature,
    walk_manifest,
)
from akkoord.store.safeio import b64decode_secret
from akkoord.store.verify import Finding
from akkoord.trust import (
    Chain,
    OrgSigningPublicKey,
    TrustError,
    check_device,
    loads_strict,
    strict_decoder,
)

__all__ = ["COPY_FILE", "CopyReport", "compare_audio", "verify_copy"]

COPY_FILE = "copy.json"
COPY_FORMAT = "akkoord-copy/2"
CUSTODY_HEAD_FILE = "custody-head.json"
CUSTODY_HEAD_FORMAT = "akkoord-custody-head/2"
AUDIO_FILE = "opname.wav"
MAX_MANIFEST = 32 << 20  # a day of 1-second segments is ~9 MB
MAX_SAMPLES = 1 << 40
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_LEN = {"ed25519": 32, "ecdsa-p256": 65}


@dataclass
class CopyReport:
    path: str
    status: str = "changed"  # unchanged | changed | not_signed | wrong_device | unfinished
    recording_id: str | None = None
    copy_number: int | None = None
    made_by: str | None = None
    made: str | None = None
    claims_signed: bool = False  # copy number / maker / time are in a signed custody entry
    simulated: bool | None = None
    recording_status: str | None = None
    duration_seconds: float | None = None
    device_fingerprint: str | None = None
    device_trusted: bool | None = None
    chain: Chain | None = None
    findings: list[Finding] = field(default_factory=list)
    changed_seconds: list[list[float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def anchored(self) -> bool:
        return self.ok and self.chain is not None and self.chain.anchored

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": "copy",
            "ok": self.ok,
            "status": self.status,
            "anchored": self.anchored,
            "organisation": self.chain.organisation if self.chain else None,
            "trust": self.chain.to_json() if self.chain else None,
            "recording_id": self.recording_id,
            "copy_number": self.copy_number,
            "made_by": self.made_by,
            "made": self.made,
            "claims_signed": self.claims_signed,
            "simulated": self.simulated,
            "recording_status": self.recording_status,
            "duration_seconds": self.duration_seconds,
            "device": {"fingerprint": self.device_fingerprint, "trusted": self.device_trusted},
            "findings": [f.to_json() for f in self.findings],
            "changed_seconds": self.changed_seconds,
            "notes": self.notes,
            "timeline": self.timeline,
        }


def _open_regular(path: Path) -> BinaryIO:
    """Open for reading: never through a link, never blocking on a FIFO or device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise FormatError(f"{path}: missing — not a complete akkoord copy") from None
    except ValueError:
        raise FormatError(f"{path!r}: a file name with a NUL byte") from None
    except OSError as exc:
        raise FormatError(f"{path}: cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FormatError(f"{path}: not a regular file")
    return os.fdopen(fd, "rb")


def _read(path: Path, limit: int) -> bytes:
    with _open_regular(path) as f:
        try:
            # fstat's size (+1 to see growth), not `limit + 1`: read(n) allocates n up front.
            size = min(os.fstat(f.fileno()).st_size, limit)
            data = f.read(size + 1)
            if len(data) > size:
                data += f.read(limit + 1 - len(data))
        except OSError as exc:
            raise FormatError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise FormatError(f"{path}: implausibly large")
    return data


def _json(path: Path, data: bytes) -> dict[str, Any]:
    try:
        doc = loads_strict(data, str(path), limit=len(data))
    except TrustError as exc:
        raise FormatError(str(exc)) from None
    if not isinstance(doc, dict):
        raise FormatError(f"{path}: not a JSON object")
    return doc


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{what} must be a whole number from {lo} to {hi}, not {v!r}"[:160])
    return v


@dataclass(frozen=True)
class _Manifest:
    """A manifest parsed but for its segment list (one entry per second of audio, its
    bulk), which stays in `data` at `span` and is read one entry at a time: the read-back
    of a 12-hour copy then holds the manifest's bytes, which its signature needs anyway,
    not a list of lists ten times their size."""

    data: bytes
    doc: dict[str, Any]
    span: tuple[int, int] | None  # None: the list, if any, is in `doc` (parsed whole)

    def has_segment_list(self) -> bool:
        return self.span is not None or isinstance(self.doc.get("segments"), list)

    def segments(self) -> Iterator[tuple[Any, ...]]:
        return segments_of(self.data, self.doc, self.span, lambda text: loads_strict(
            text, "manifest segments", limit=len(text)))


def _parse_manifest(path: Path, data: bytes) -> _Manifest:
    """loads_strict's verdict on a manifest, without building its segment list
    (walk_manifest under loads_strict's rules). What the walk does not take is parsed
    whole, so a refusal says what loads_strict always said."""
    try:
        doc, span = walk_manifest(data, strict_decoder(), unique_keys=True)
    except (ValueError, RecursionError):  # TrustError, UnicodeDecodeError are ValueErrors
        return _Manifest(data, _json(path, data), None)
    return _Manifest(data, doc, span)


def _checked_manifest(m: _Manifest) -> bool:
    """Every value the audio comparison uses, range-checked (ValueError says which), the
    segment list streamed twice rather than held. True when the segments come in order,
    as the device writes them (then the comparison streams them too)."""
    doc = m.doc
    a = doc.get("audio")
    if not isinstance(a, dict):
        raise ValueError("audio is not an object")
    _int(a.get("sample_rate"), "audio.sample_rate", 1, 384_000)
    _int(a.get("channels"), "audio.channels", 1, 8)
    _int(a.get("sample_width"), "audio.sample_width", 2, 2)
    total = _int(doc.get("duration_samples"), "duration_samples", 0, MAX_SAMPLES)
    gaps = doc.get("gaps", [])
    if not m.has_segment_list() or not isinstance(gaps, list):
        raise ValueError("segments and gaps must be lists")
    in_order, last = True, (0, 0)
    for s in m.segments():
        if len(s) != 4 or not isinstance(s[3], str):
            raise ValueError("a segment is not [index, start, samples, mac]")
        if not _HEX64.match(s[3]):
            raise ValueError("a segment's mac is not 64 hex digits")
        item = (_int(s[1], "segment start", 0, MAX_SAMPLES),
                _int(s[2], "segment samples", 1, MAX_SAMPLES))
        _int(s[0], "segment index", 0, 1 << 32)
        in_order, last = in_order and item >= last, item
    spans = []
    for g in gaps:
        if not isinstance(g, list) or len(g) != 3:
            raise ValueError("a gap is not [index, start, samples]")
        spans.append((_int(g[1], "gap start", 0, MAX_SAMPLES),
                      _int(g[2], "gap samples", 1, MAX_SAMPLES)))
        _int(g[0], "gap index", 0, 1 << 32)
    pairs = ((s[1], s[2]) for s in m.segments())
    pos = 0
    for start, n in heapq.merge(pairs, sorted(spans)) if in_order else sorted([*pairs, *spans]):
        if start != pos:
            raise ValueError(f"segments and gaps do not tile the recording at sample {pos}")
        pos += n
    if pos != total:
        raise ValueError("segments and gaps do not add up to duration_samples")
    return in_order


def _named_key(doc: dict[str, Any]) -> DevicePublicKey:
    """The key the manifest names, shape-checked only: a weak key (small order, off the
    curve) is not an unreadable copy but a signature that proves nothing (a finding)."""
    alg = doc.get("algorithm")
    if alg not in _KEY_LEN:
        raise ValueError(f"unknown device key algorithm {alg!r}"[:80])
    text = doc.get("public_key")
    raw = base64.b64decode(text if isinstance(text, str) else "?", validate=True)
    if len(raw) != _KEY_LEN[alg]:
        raise ValueError(f"an {alg} public key has {_KEY_LEN[alg]} bytes, not {len(raw)}")
    return DevicePublicKey(raw, alg)


def _epoch(t: Any) -> int | None:
    """Seconds of a FORMAT.md §1 time ("YYYY-MM-DDTHH:MM:SS.mmmZ"), None if unreadable."""
    utc = t.get("utc") if isinstance(t, dict) else None
    if not isinstance(utc, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", utc):
        return None
    try:
        return calendar.timegm(time.strptime(utc[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Item:
    start: int
    samples: int
    mac: bytes | None  # None: a gap, which must be silence


def _items(m: _Manifest, in_order: bool) -> Iterator[_Item]:
    """Segments and gaps by start (they tile: no two share one), one at a time when the
    segments come in order."""
    segs = (_Item(s[1], s[2], bytes.fromhex(s[3])) for s in m.segments())
    gaps = sorted((_Item(g[1], g[2], None) for g in m.doc.get("gaps", [])),
                  key=lambda i: i.start)
    if in_order:
        return heapq.merge(segs, gaps, key=lambda i: i.start)
    return iter(sorted([*segs, *gaps], key=lambda i: i.start))


def compare_audio(
    manifest: dict[str, Any], mac_key: bytes, f: BinaryIO, data_offset: int, data_len: int
) -> tuple[list[tuple[int, int]], list[Finding]]:
    """Changed sample ranges (recording timeline) and findings for one copy's samples."""
    items = [_Item(int(s[1]), int(s[2]), bytes.fromhex(s[3])) for s in manifest["segments"]]
    items += [_Item(int(g[1]), int(g[2]), None) for g in manifest.get("gaps", [])]
    items.sort(key=lambda i: i.start)
    return _compare(items, manifest, mac_key, f, data_offset, data_len)


def _compare(
    items: Iterable[_Item], manifest: dict[str, Any], mac_key: bytes, f: BinaryIO,
    data_offset: int, data_len: int,
) -> tuple[list[tuple[int, int]], list[Finding]]:
    """compare_audio over items in order of start, each looked at once and dropped: what
    is kept is the changed ranges and the first moved item, not a state per second."""
    audio = manifest["audio"]
    rate = int(audio["sample_rate"])
    fb = int(audio["channels"]) * int(audio["sample_width"])
    total = int(manifest["duration_samples"])
    have = data_len // fb

    buf = bytearray(1 << 17)  # every segment is read into this one buffer (readinto)

    def matches(item: _Item, at: int) -> bool:
        nonlocal buf
        if at < 0 or at + item.samples > have:
            return False
        n = item.samples * fb
        if len(buf) < n:
            buf = bytearray(n)
        f.seek(data_offset + at * fb)
        chunk = memoryview(buf)[: f.readinto(memoryview(buf)[:n]) or 0]
        if item.mac is None:
            return chunk == bytes(len(chunk))
        return hmac.compare_digest(hmac.digest(mac_key, chunk, "sha256"), item.mac)

    delta = have - total
    ranges: list[tuple[int, int]] = []
    count = changed = 0
    moved: _Item | None = None  # the first item found `delta` samples away
    ok_before: _Item | None = None  # the last item in place before it
    for it in items:
        count += 1
        if matches(it, it.start):
            if moved is None:
                ok_before = it
        elif delta and matches(it, it.start + delta):
            moved = moved or it
        else:
            changed += 1
            if ranges and ranges[-1][1] >= it.start:
                ranges[-1] = (ranges[-1][0], it.start + it.samples)
            else:
                ranges.append((it.start, it.start + it.samples))
    findings: list[Finding] = []
    for a, b in ranges:
        findings.append(
            Finding(
                "audio_changed",
                f"the audio differs from the recording from second {a / rate:g} to {b / rate:g}",
                None,
                round(a / rate, 3),
            )
        )
    if count and changed == count:
        findings.append(
            Finding(
                "wrong_recording",
                "none of the audio matches this recording: another recording, or wholly replaced",
            )
        )
    if data_len % fb:
        findings.append(Finding("length_changed", "the audio ends in the middle of a sample"))
    if delta:
        seconds = abs(delta) / rate
        what = "shorter" if delta < 0 else "longer"
        if moved is not None:
            at = ok_before.start + ok_before.samples if ok_before else 0
            verb = "cut out" if delta < 0 else "inserted"
            msg = (
                f"the audio is {seconds:g} s {what} than recorded: {seconds:g} s {verb} "
                f"at second {at / rate:g}"
            )
            end = moved.start if delta < 0 else at
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


def _entry_hash(entry: dict[str, Any]) -> bytes | None:
    try:
        return entry_hash(entry)
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
        return None  # not canonical JSON (a lone surrogate, say): matches no hash


def _org_head_signed(
    head: dict[str, Any], seq: int, digest: bytes, sig: bytes,
    trust: Sequence[OrgSigningPublicKey],
) -> bool | None:
    """An organisation's copy-log head (FORMAT.md §11.5): True/False under a trusted
    organisation key, None when no trusted key is the one it names."""
    from akkoord.store.orglog import ORG_LOG_CONTEXT

    signer = head.get("signer") if isinstance(head.get("signer"), dict) else {}
    for org in trust:
        if org.fingerprint == signer.get("fingerprint"):
            return org.key.verify(sig, head_message(seq, digest, ORG_LOG_CONTEXT))
    return None


def _check_custody_head(
    rep: CopyReport, folder: Path, key: DevicePublicKey, manifest: dict[str, Any],
    copy: dict[str, Any], trust: Sequence[OrgSigningPublicKey] = (),
) -> None:
    """FORMAT.md §9 step 3: the head the copy carries is the device's signed custody entry for
    this very export; copy number, maker and time are shown as fact only when it is."""
    path = folder / CUSTODY_HEAD_FILE
    if not path.exists() and not path.is_symlink():
        if copy.get("made_by") == "device":
            rep.findings.append(Finding(
                "custody_head", "a copy made by the device carries its custody head; "
                "this one has none (copy number and time are not signed)"))
        else:
            rep.notes.append("copy number, maker and time are not signed (no custody head)")
        return
    head = _json(path, _read(path, 1 << 20))
    if head.get("format") != CUSTODY_HEAD_FORMAT:
        raise FormatError(f"{path}: not an {CUSTODY_HEAD_FORMAT} file")
    entry, problem = head.get("entry"), None
    try:
        seq = _int(head.get("seq"), "seq", 0, (1 << 53) - 1)
        if not _HEX64.match(str(head.get("hash"))):
            raise ValueError("hash")
        digest = bytes.fromhex(str(head.get("hash")))
        sig = base64.b64decode(str(head.get("signature")), validate=True)
    except (ValueError, binascii.Error):
        problem = "malformed"
    if problem is None and not isinstance(entry, dict):
        problem = "it holds no custody entry"
    elif problem is None and _entry_hash(entry) != digest:
        problem = "its entry does not match its hash"
    elif problem is None and head.get("log") == "organisation":
        signed = entry.get("seq") == seq and _org_head_signed(head, seq, digest, sig, trust)
        if signed is None:
            rep.notes.append("copy number, maker and time are signed by the organisation's copy "
                             "log; not checked without its signing key (--trust)")
            return
        if not signed:
            problem = "not signed by the organisation's copy log it names"
    elif problem is None and (entry.get("seq") != seq or not key.verify(
            sig, head_message(seq, digest))):
        problem = "not signed by the device that signed the manifest"
    # Signed by the device or the organisation alike, the entry must be this very copy's:
    # a signature vouches for the entry, not for whatever copy.json says beside it.
    if problem is None:
        detail = entry.get("detail") if isinstance(entry.get("detail"), dict) else {}
        if entry.get("type") != "export" or entry.get("recording_id") != manifest.get(
            "recording_id"
        ):
            problem = "it is not the record of an export of this recording"
        elif detail.get("copy_number") != copy.get("copy_number"):
            problem = (f"it records copy {detail.get('copy_number')!r}, copy.json claims "
                       f"copy {copy.get('copy_number')!r}")
        elif copy.get("made_by") != (
            "organisation" if head.get("log") == "organisation" else "device"
        ) or entry.get("time") != copy.get("made"):
            problem = "copy.json's maker or time differ from the signed record"
    if problem is not None:
        rep.findings.append(Finding("custody_head", f"{CUSTODY_HEAD_FILE}: {problem}"))
        return
    rep.claims_signed = True


def verify_copy(
    path: Path,
    trusted_key: DevicePublicKey | None = None,
    trust: Sequence[OrgSigningPublicKey] = (),
    revocations: Sequence[Any] = (),
    *,
    reading_back: bool = False,
) -> CopyReport:
    """`path` is a copy folder or the WAV inside it. `trusted_key`: the device to expect
    (the device's own read-back); `trust`: organisation signing keys the verdict may be
    anchored to (`--trust`); `revocations`: the organisation's revocation lists.
    `reading_back`: the writer checks its own `.partial` folder before publishing it (nobody
    else may pass it)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise FormatError(f"{path}: no such copy") from None
    except ValueError:
        raise FormatError(f"{path!r}: a path with a NUL byte") from None
    if stat.S_ISDIR(st.st_mode):
        folder = path
    elif stat.S_ISREG(st.st_mode):
        folder = path.parent
    else:
        raise FormatError(f"{path}: not a copy folder or a regular file")
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
    manifest_bytes = _read(folder / MANIFEST_FILE, MAX_MANIFEST)
    parsed = _parse_manifest(folder / MANIFEST_FILE, manifest_bytes)
    manifest = parsed.doc
    copy = _json(folder / COPY_FILE, _read(folder / COPY_FILE, 1 << 20))
    if copy.get("format") != COPY_FORMAT:
        raise FormatError(f"{folder / COPY_FILE}: not an {COPY_FORMAT} file")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{folder / MANIFEST_FILE}: not an {MANIFEST_FORMAT} manifest")
    try:
        if not isinstance(manifest.get("device"), dict):
            raise TypeError("device is not an object")
        key = _named_key(manifest["device"])
        # Into a buffer wiped below: the device reads its own copies back (issue 8 §5).
        mac_key = b64decode_secret(copy["audio_mac_key"], f"{folder / COPY_FILE}: audio_mac_key")
        in_order = _checked_manifest(parsed)
        rate = manifest["audio"]["sample_rate"]
        rep.recording_id = str(manifest["recording_id"])
        rep.duration_seconds = manifest["duration_seconds"]
        rep.recording_status = manifest["status"]
    except (KeyError, TypeError, ValueError, binascii.Error, KeyMaterialError) as exc:
        raise FormatError(f"{folder}: manifest or copy.json incomplete ({exc})") from None
    cn = copy.get("copy_number")
    rep.copy_number = cn if isinstance(cn, int) and not isinstance(cn, bool) else None
    rep.made_by = copy.get("made_by") if isinstance(copy.get("made_by"), str) else None
    rep.made = (copy.get("made") or {}).get("utc") if isinstance(copy.get("made"), dict) else None
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
        # Bounded work: nothing the manifest says is worth reading the audio for.
        rep.notes.append("the audio was not checked: the manifest's signature failed")
        return rep
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
    rep.chain = check_device(
        manifest["device"].get("certificate"), key.algorithm, key.raw, trust, revocations,
        _epoch(manifest.get("created")),
    )
    if rep.chain.finding:
        rep.findings.append(Finding("certificate", rep.chain.message))
        rep.status = "wrong_device"
    elif not rep.chain.anchored:
        c = rep.chain
        claim = (f"; the copy claims to be from {c.claimed_organisation!r} (signing key "
                 f"{c.claimed_fingerprint[:32]}): compare that fingerprint with the one the "
                 "organisation publishes" if c.claimed_fingerprint else
                 "; compare the device fingerprint with the one the organisation publishes")
        rep.notes.append(f"not anchored ({c.message}): cannot tell who made this{claim}")
    rep.notes += rep.chain.notes
    if copy.get("recording_id") != manifest.get("recording_id"):
        rep.findings.append(
            Finding("wrong_recording", "copy.json and the manifest name different recordings")
        )
    _check_custody_head(rep, folder, key, manifest, copy, trust)
    name = copy.get("audio_file") or AUDIO_FILE
    if not isinstance(name, str) or "/" in name or "\0" in name or name in (".", ".."):
        raise FormatError(f"{folder / COPY_FILE}: audio_file must be a plain file name")
    wav_path = folder / name
    with _open_regular(wav_path) as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(CANONICAL_HEADER_LEN)
        after = b""
        if len(head) == CANONICAL_HEADER_LEN:
            f.seek(CANONICAL_HEADER_LEN + int.from_bytes(head[40:44], "little"))
            after = f.read(8)
        info = check_canonical_wav(head, size, after)
        audio = manifest["audio"]
        if info.problem is not None:
            _code, msg = info.problem
            rep.findings.append(Finding("wav_not_canonical", f"{wav_path.name}: {msg}"))
        elif (info.rate, info.channels) != (audio["sample_rate"], audio["channels"]):
            rep.findings.append(
                Finding(
                    "audio_format",
                    f"the WAV is {info.rate} Hz / {info.channels} channel(s), the "
                    f"recording {audio['sample_rate']} Hz / {audio['channels']}",
                )
            )
        else:
            try:
                ranges, findings = _compare(
                    _items(parsed, in_order), manifest, mac_key, f, info.data_offset,
                    info.data_len,
                )
            finally:
                wipe(mac_key)
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
        tail = manifest.get("unsigned_tail")
        if isinstance(tail, dict) and tail.get("frames"):  # FORMAT.md §11.2
            rep.notes.append(
                f"unsigned tail: the last {tail.get('seconds')} s were recovered after the "
                "device's last signed checkpoint; the device never signed them while recording"
            )
    if rep.simulated:
        rep.notes.append("simulated: made by the simulator, not at a real meeting")
    return rep
