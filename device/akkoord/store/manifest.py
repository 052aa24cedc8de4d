"""The signed manifest: a pure function of the container's frame records.

The device builds it at close from the records it kept in memory; recovery builds it after a
power loss from the records it parsed back; `verify` builds it again and compares bytes. One
function, so the three cannot drift apart. Nothing in it needs the content key: the audio
MACs come from the frame headers, which is what lets a copy made later, or a recording cut
short by a power loss, verify like one closed at the table.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.errors import FormatError
from akkoord.fsutil import atomic_write
from akkoord.store.format import MANIFEST_FORMAT, MANIFEST_SIG_CONTEXT, Kind, canonical_json
from akkoord.store.keys import DeviceIdentity, DevicePublicKey
from akkoord.store.safeio import read_regular, strict_decoder, strict_json

__all__ = [
    "MANIFEST_FILE",
    "SIGNATURE_FILE",
    "FrameRecord",
    "build_manifest",
    "read_manifest",
    "sign_manifest",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
MAX_MANIFEST = 256 * 1024 * 1024
COMPLETE = "complete"
INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """What the manifest needs of one frame: everything but the ciphertext."""

    index: int
    kind: int
    flags: int
    start_sample: int
    samples: int
    audio_mac: bytes
    meta: dict[str, Any] | None
    seal: bytes


class ManifestBuilder:
    """The manifest of a closed recording, built one frame record at a time.

    The segment list — a manifest's bulk, one entry per second of audio — is not kept: each
    entry goes to `on_segment` as it is made (the writer keeps its canonical bytes, a
    verifier compares them with the stored manifest as they come), so holding a builder
    costs the same at minute one and at hour twelve."""

    __slots__ = ("_after_checkpoint", "_checkpoint", "_count", "_gaps", "_head", "_last",
                 "_on_segment", "_position", "_rate", "_timeline")

    def __init__(self, on_segment: Callable[[int, int, int, bytes], None]) -> None:
        self._on_segment = on_segment
        self._head: dict[str, Any] | None = None
        self._rate = 1
        self._position = 0
        self._count = 0
        self._last: FrameRecord | None = None
        self._checkpoint: FrameRecord | None = None
        self._after_checkpoint = 0  # frames since the last checkpoint
        self._gaps: list[list[Any]] = []
        self._timeline: list[dict[str, Any]] = []

    @property
    def count(self) -> int:
        return self._count

    @property
    def last(self) -> FrameRecord | None:
        return self._last

    def add(self, r: FrameRecord) -> None:
        self._count += 1
        self._last = r
        if self._head is None:
            if r.kind != Kind.HEADER or r.meta is None:
                raise FormatError("a manifest needs the recording's header frame first")
            self._head = r.meta
            self._rate = int(r.meta["audio"]["sample_rate"])
            return
        if r.kind == Kind.CHECKPOINT:
            # Not on the timeline (one every 10 s); the container keeps them, signed.
            self._checkpoint, self._after_checkpoint = r, 0
            return
        self._after_checkpoint += 1
        if r.kind == Kind.AUDIO:
            self._on_segment(r.index, r.start_sample, r.samples, r.audio_mac)
            self._position = r.start_sample + r.samples
            return
        entry: dict[str, Any] = {"frame": r.index, "at_sample": r.start_sample}
        entry["at_seconds"] = round(r.start_sample / self._rate, 3)
        entry.update(r.meta or {})
        if r.kind == Kind.GAP:
            self._gaps.append([r.index, r.start_sample, r.samples])
            entry["samples"] = r.samples
            self._position = r.start_sample + r.samples
        self._timeline.append(entry)

    def finish(self) -> dict[str, Any]:
        """Everything but "segments" (which went to `on_segment`)."""
        head, last = self._head, self._last
        if head is None or last is None:
            raise FormatError("a manifest needs the recording's header frame first")
        if last.kind not in (Kind.END, Kind.RECOVERY):
            raise FormatError("a manifest needs a closed recording (END or RECOVERY last)")
        rate, position, checkpoint = self._rate, self._position, self._checkpoint
        end_meta = last.meta or {}
        tail = None
        if last.kind == Kind.RECOVERY:
            # Frames recovery found after the device's last signed checkpoint: chained, but
            # never signed by the device while it recorded (FORMAT.md §11.2).
            cp_at = checkpoint.start_sample if checkpoint is not None else 0
            tail = {
                "after_frame": checkpoint.index if checkpoint is not None else None,
                "frames": self._after_checkpoint - 1,
                "samples": position - cp_at,
                "seconds": round((position - cp_at) / rate, 3),
            }
        return {
            "format": MANIFEST_FORMAT,
            "recording_id": head["recording_id"],
            "status": COMPLETE if last.kind == Kind.END else INTERRUPTED,
            "simulated": bool(head.get("simulated", False)),
            "device": head["device"],
            "audio": head["audio"],
            "recipients": [r["fingerprint"] for r in head.get("recipients", [])],
            "created": head.get("created"),
            "ended": end_meta.get("time"),
            "stop": end_meta if last.kind == Kind.END else None,
            "interruption": end_meta if last.kind == Kind.RECOVERY else None,
            "duration_samples": position,
            "duration_seconds": round(position / rate, 3),
            "frame_count": self._count,
            "chain_head": last.seal.hex(),
            "unsigned_tail": tail,
            "gaps": self._gaps,
            "timeline": self._timeline,
        }


def segment_entry(index: int, start: int, samples: int, mac: bytes) -> bytes:
    """One entry of the segment list, spelled as canonical_json spells it."""
    return b'[%d,%d,%d,"%s"]' % (index, start, samples, mac.hex().encode())


class SegmentBytes:
    """The segment list as canonical JSON bytes, appended to as segments come: ~90 bytes
    a second of audio instead of a Python list of lists (~10 times that)."""

    __slots__ = ("buf", "count")

    def __init__(self) -> None:
        self.buf = bytearray(b"[")
        self.count = 0

    def __call__(self, index: int, start: int, samples: int, mac: bytes) -> None:
        if self.count:
            self.buf += b","
        self.buf += segment_entry(index, start, samples, mac)
        self.count += 1

    def closed(self) -> bytearray:
        return self.buf + b"]"


def manifest_frame(head: dict[str, Any]) -> tuple[bytes, bytes]:
    """The canonical bytes of a manifest around its segment list: (before, after), so that
    `before + segments + after` is `manifest_bytes` of the whole manifest."""
    marker = "\x00segments-" + os.urandom(8).hex()
    data = manifest_bytes({**head, "segments": marker})
    spelled = canonical_json(marker)
    at = data.index(spelled)
    return data[:at], data[at + len(spelled):]


def build_manifest(records: Iterable[FrameRecord]) -> dict[str, Any]:
    """Manifest of a closed recording: frame 0 is HEADER, the last frame END or RECOVERY.

    One pass over any iterable; the segment list is built as a list here (recovery, tests):
    the writer and the verifier use ManifestBuilder directly and never hold it."""
    segments: list[list[Any]] = []
    builder = ManifestBuilder(lambda i, s, n, mac: segments.append([i, s, n, mac.hex()]))
    for r in records:
        builder.add(r)
    return {**builder.finish(), "segments": segments}


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return canonical_json(manifest) + b"\n"


def sign_manifest(data: bytes | bytearray, identity: DeviceIdentity) -> bytes:
    return identity.sign(MANIFEST_SIG_CONTEXT + data)


def verify_manifest_signature(data: bytes, signature: bytes, key: DevicePublicKey) -> bool:
    return key.verify(signature, MANIFEST_SIG_CONTEXT + data)


def write_manifest(directory: Path, manifest: dict[str, Any], identity: DeviceIdentity) -> bytes:
    """Signature first, then the manifest: a manifest file on disk always has its signature."""
    return write_manifest_bytes(directory, manifest_bytes(manifest), identity)


def write_manifest_bytes(
    directory: Path, data: bytes | bytearray, identity: DeviceIdentity
) -> bytes | bytearray:
    sig = sign_manifest(data, identity)
    atomic_write(Path(directory) / SIGNATURE_FILE, base64.b64encode(sig) + b"\n")
    atomic_write(Path(directory) / MANIFEST_FILE, data)
    return data


@dataclass(frozen=True)
class SignedManifest:
    data: bytes
    signature: bytes | None  # None: no signature file, or not decodable
    doc: dict[str, Any]
    # read_manifest(segments=False): byte range of the top-level segment list in `data`
    # (its "[" to after its "]"), which `doc` then leaves out; None if there is none.
    segments_span: tuple[int, int] | None = None


def read_manifest(directory: Path, *, segments: bool = True) -> SignedManifest | None:
    """None if there is no manifest; FormatError if it is there but not a manifest.

    `segments=False` parses everything but the segment list, which is only located (its
    entries are checked as JSON, one at a time, and dropped): memory then holds the
    manifest's bytes — which its signature needs whole — and not a list ten times bigger."""
    path = Path(directory) / MANIFEST_FILE
    try:
        data = read_regular(path, MAX_MANIFEST, "manifest")
    except FileNotFoundError:
        return None
    span = None
    if segments:
        doc = strict_json(data, str(path))
    else:
        doc, span = _parse_without_segments(data, str(path))
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise FormatError(f"{path}: not an {MANIFEST_FORMAT} manifest")
    sig: bytes | None = None
    try:
        sig = base64.b64decode(
            read_regular(Path(directory) / SIGNATURE_FILE, 4096, "signature").strip(),
            validate=True,
        )
    except FileNotFoundError:
        sig = None
    except (binascii.Error, ValueError):  # FormatError is a ValueError too
        sig = None
    return SignedManifest(data, sig, doc, span)


_WS = re.compile(rb"[ \t\n\r]*")
# One segment entry as canonical_json spells it, with JSON's rule for numbers (no leading
# zeros) and at most 18 digits (inside strict_json's range): what the walk takes in one
# match, both strict parsers take too. Anything else is parsed value by value.
_NUM = rb"(0|[1-9][0-9]{0,17})"
_SEGMENT_BYTES = re.compile(rb"\[" + _NUM + rb"," + _NUM + rb"," + _NUM + rb',"([0-9a-f]{64})"\]')
_SEG = _SEGMENT_BYTES.pattern.replace(b"(", b"(?:")  # the same entry, capturing nothing
# Possessive (*+): a plain * keeps a backtracking record per entry, ~300 bytes each, so
# memory would follow the recording's length (13 MB at 12 h); nothing after it needs one.
_SEGMENT_RUN = re.compile(_SEG + rb"(?:," + _SEG + rb")*+")
_WINDOW = 1 << 16


class _Unwalkable(ValueError):
    """The walk does not take this text. Never shown: the caller parses the whole text
    strictly, and that parser says what is wrong, in its own words."""


class JsonBytes:
    """A JSON reader over bytes that decodes only the value it is asked for: the text of
    a manifest is never decoded whole (a 12-hour manifest is megabytes). `dec`: the
    reader's rules (strict_json's for the store, loads_strict's for the copy verifier)."""

    def __init__(self, data: bytes, dec: Any) -> None:
        self.data, self.dec = data, dec

    def ws(self, i: int) -> int:
        return _WS.match(self.data, i).end()  # type: ignore[union-attr]

    def value(self, i: int) -> tuple[Any, int]:
        """The JSON value at byte offset `i`, and the offset after it."""
        size = _WINDOW
        while True:
            chunk = self.data[i : i + size]
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                # A character cut at the window's edge: the value is read on past it below.
                # (A byte that is no UTF-8 stops the value there: it cannot be read whole,
                # or the next step meets that byte and refuses it.)
                text = chunk[: exc.start].decode("utf-8")
            whole = i + size >= len(self.data)
            try:
                value, end = self.dec.raw_decode(text)
            except ValueError:
                if whole:
                    raise
                size *= 4  # the value may go on past the window
                continue
            if end >= len(text) and not whole:
                size *= 4  # a number or literal cut at the window's edge: read on
                continue
            return value, i + len(text[:end].encode("utf-8"))


def walk_manifest(
    data: bytes, dec: Any, *, unique_keys: bool
) -> tuple[dict[str, Any], tuple[int, int] | None]:
    """A manifest's top-level object, key by key under the decoder `dec`'s rules, one value
    decoded at a time (never the whole text); the "segments" array is only located, its
    entries checked one at a time, and left out of the document. Returns the document and
    the byte range of that array (its "[" to after its "]"), None when there is none.

    Raises ValueError (or UnicodeDecodeError, RecursionError) for anything it does not
    take; the caller then parses the whole text strictly, so a refusal always says what
    the strict parser says. `unique_keys`: a repeated key is refused (loads_strict's rule);
    otherwise the last one counts (json's)."""
    r = JsonBytes(data, dec)
    doc: dict[str, Any] = {}
    span: tuple[int, int] | None = None
    seen: set[str] = set()
    i = r.ws(0)
    if data[i : i + 1] != b"{":
        raise _Unwalkable  # not an object
    i = r.ws(i + 1)
    if data[i : i + 1] == b"}":
        i += 1
    else:
        while True:
            if data[i : i + 1] != b'"':
                raise _Unwalkable  # a key that is not a string
            key, i = r.value(i)
            if unique_keys:
                if key in seen:
                    raise _Unwalkable  # a repeated key
                seen.add(key)
            i = r.ws(i)
            if data[i : i + 1] != b":":
                raise _Unwalkable  # no colon after a key
            i = r.ws(i + 1)
            if key == "segments" and data[i : i + 1] == b"[":
                start = i
                i = _skip_array(r, i)
                span = (start, i)
                doc.pop(key, None)
            else:
                doc[key], i = r.value(i)
                if key == "segments":
                    span = None
            i = r.ws(i)
            c = data[i : i + 1]
            i += 1
            if c == b"}":
                break
            if c != b",":
                raise _Unwalkable  # no comma or closing brace
            i = r.ws(i)
    if r.ws(i) != len(data):
        raise _Unwalkable  # more after the object
    return doc, span


def _parse_without_segments(data: bytes, where: str) -> tuple[Any, tuple[int, int] | None]:
    """strict_json of a manifest, its segment list only located (walk_manifest)."""
    try:
        return walk_manifest(data, strict_decoder(), unique_keys=False)
    except (UnicodeDecodeError, RecursionError, ValueError):
        # Refused: let strict_json say why, in the very words it always used. (What the
        # walk refuses strict_json refuses too; were it ever to parse, its segment list
        # would stay in the document, which segments_of reads as well.)
        return strict_json(data, where), None


def _skip_array(r: JsonBytes, i: int) -> int:
    data = r.data
    i = r.ws(i + 1)
    if data[i : i + 1] == b"]":
        return i + 1
    while True:
        m = _SEGMENT_RUN.match(data, i)  # canonical entries, a run of them in one match
        if m is not None:
            i = m.end()
        else:
            _, i = r.value(i)  # any JSON value, checked strictly and dropped
        i = r.ws(i)
        c = data[i : i + 1]
        i += 1
        if c == b"]":
            return i
        if c != b",":
            raise _Unwalkable  # no comma or closing bracket
        i = r.ws(i)


def iter_segments(signed: SignedManifest) -> Iterator[tuple[Any, ...]]:
    """The stored segment list, one entry at a time, from a manifest read with
    `segments=False` (see segments_of)."""
    return segments_of(signed.data, signed.doc, signed.segments_span,
                       lambda text: strict_json(text, "manifest segments"))


def segments_of(
    data: bytes, doc: dict[str, Any], span: tuple[int, int] | None,
    parse: Callable[[bytes], Any],
) -> Iterator[tuple[Any, ...]]:
    """The segment list of a manifest walked by walk_manifest, one entry at a time, each a
    tuple (a value that is not a list: a 1-tuple of it). Canonical entries are matched in
    the bytes at `span`; from the first that is not, `parse` (the walk's strict parser)
    parses the list whole — such a list was already checked value by value by the walk,
    and a manifest like that fails anyway. `span` None: the list, if any, is in `doc`."""
    if span is None:
        segs = doc.get("segments")
        yield from (tuple(s) if isinstance(s, list) else (s,)
                    for s in (segs if isinstance(segs, list) else ()))
        return
    a, b = span
    done, i = 0, a + 1
    if data[i:b] == b"]":
        return
    while True:
        m = _SEGMENT_BYTES.match(data, i)
        if m is None:
            break
        yield int(m[1]), int(m[2]), int(m[3]), m[4].decode()
        done, i = done + 1, m.end()
        if data[i : i + 1] == b"]":  # after an entry, a "]" can only close the list
            return
        if data[i : i + 1] != b",":
            break
        i += 1
    for s in parse(data[a:b])[done:]:
        yield tuple(s) if isinstance(s, list) else (s,)
