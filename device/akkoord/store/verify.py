"""Verify a recording folder: structure, chain, signature and — with the organisation key —
every frame's AEAD tag and every segment's audio MAC.

Every finding says what and where: the frame index, the second of audio, the byte offset.
Statuses: ``complete`` and ``interrupted`` (a power loss, disclosed and signed) pass;
anything with findings is ``tampered``. An unreadable folder raises FormatError instead.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from akkoord.errors import FormatError, KeyMaterialError
from akkoord.store.exports import read_exports
from akkoord.store.format import (
    AEAD_TAG_LEN,
    CONTAINER_FORMAT,
    SIGNATURE_LEN,
    ZERO32,
    Flag,
    Kind,
    audio_mac,
    checkpoint_due,
    checkpoint_message,
    genesis_hash,
    nonce_for,
)
from akkoord.store.keys import ContentKeys, DevicePublicKey, OrgPrivateKey, unwrap_content_key
from akkoord.store.layout import CONTAINER_FILE, WRAPPED_KEYS_FILE
from akkoord.store.manifest import (
    ManifestBuilder,
    SegmentBytes,
    manifest_frame,
    read_manifest,
    segment_entry,
    verify_manifest_signature,
)
from akkoord.store.reader import (
    Adaptive,
    Damage,
    ParsedFrame,
    Slot,
    parse_meta,
    record_of,
    scan_ahead,
)
from akkoord.store.safeio import check_name, open_regular, read_regular, strict_json
from akkoord.store.sigcheck import signature_checker

__all__ = ["Finding", "FrameSink", "Report", "load_content_keys", "verify_recording"]


@dataclass(frozen=True)
class Finding:
    code: str
    message: str
    frame: int | None = None
    second: float | None = None
    offset: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "frame": self.frame,
            "second": self.second,
            "offset": self.offset,
        }


@dataclass
class Report:
    path: str
    recording_id: str | None = None
    status: str = "tampered"
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frames: int = 0
    duration_seconds: float | None = None
    simulated: bool | None = None
    device_fingerprint: str | None = None
    device_trusted: bool | None = None
    checked_audio: bool = False
    timeline: list[dict[str, Any]] = field(default_factory=list)
    exports: list[dict[str, Any]] = field(default_factory=list)
    unsigned_tail: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": "recording",
            "ok": self.ok,
            "status": self.status,
            "recording_id": self.recording_id,
            "simulated": self.simulated,
            "frames": self.frames,
            "duration_seconds": self.duration_seconds,
            "device": {"fingerprint": self.device_fingerprint, "trusted": self.device_trusted},
            "checked": {
                "structure": True,
                "chain": True,
                "signature": True,
                "audio": self.checked_audio,
            },
            "findings": [f.to_json() for f in self.findings],
            "notes": self.notes,
            "timeline": self.timeline,
            "exports": self.exports,
            "unsigned_tail": self.unsigned_tail,
        }


class _Seen:
    """A good frame, without its body: the parsed header and the seal, nothing more, so a
    verifier holds a multi-hour recording's frame list in a few megabytes."""

    __slots__ = ("crypto_error", "header", "meta", "meta_error", "offset", "seal", "signed_bytes")

    def __init__(self, frame: ParsedFrame, meta: dict[str, Any] | None,
                 meta_error: str | None, crypto_error: str | None = None) -> None:
        self.offset = frame.offset
        self.header = frame.header
        self.seal = frame.seal
        self.meta = meta
        self.meta_error = meta_error
        self.crypto_error = crypto_error
        # CHECKPOINT frames only: (signed message, signature), checked once the key is known
        self.signed_bytes: tuple[bytes, bytes] | None = None


def load_content_keys(directory: Path, key: OrgPrivateKey) -> ContentKeys:
    path = Path(directory) / WRAPPED_KEYS_FILE
    try:
        doc = strict_json(read_regular(path, 1 << 20, "wrapped-keys file"), str(path))
        rid = bytes.fromhex(doc["recording_id"])
        wrapped = doc["recipients"]
        if len(rid) != 16 or not isinstance(wrapped, list):
            raise ValueError
    except FileNotFoundError:
        raise KeyMaterialError(
            f"{path}: missing — the wrapped keys were destroyed (deleted recording?)"
        ) from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, FormatError):
        raise KeyMaterialError(f"{path}: not a valid wrapped-keys file") from None
    ck = unwrap_content_key(wrapped, rid, key, str(path))
    return ContentKeys.derive(ck, rid)


# Findings that locate a change; with any of them, a manifest mismatch adds nothing.
_STRUCTURAL = frozenset({
    "damaged", "truncated", "missing_frame", "duplicate_frame", "conflicting_frame",
    "reordered_frame", "foreign_frame", "chain_break", "bad_frame", "timeline",
})


def _manifest_rid(signed: Any) -> bytes | None:
    if signed is None:
        return None
    try:
        rid = bytes.fromhex(str(signed.doc.get("recording_id")))
    except ValueError:
        return None
    return rid if len(rid) == 16 else None


class _NeedFullView(Exception):
    """The streaming pass met something only a view of every frame can place: frames out of
    order or twice, a recording id the frames outvote, a manifest that differs (its diff
    names segments). The verifier then starts again holding every frame's header — the
    memory a tampered file costs; a genuine one never gets here."""


# Findings are kept by phase, so the streaming pass (which meets them interleaved) reports
# them in the order the whole-file analysis always did.
_HEADER, _FOREIGN, _DAMAGE, _ORDER, _RULES, _MANIFEST, _KEYS, _CRYPTO, _EXPORTS = range(9)
_FINAL = int(Flag.FINAL)  # a plain int: IntFlag arithmetic is slow, and this runs per frame
# The kinds as plain ints, as headers carry them: an IntEnum member costs a class-attribute
# lookup per use, and these compare once or more per frame.
_K_AUDIO = int(Kind.AUDIO)
_K_CHECKPOINT = int(Kind.CHECKPOINT)
_K_END = int(Kind.END)
_K_EXPORT = int(Kind.EXPORT)
_K_GAP = int(Kind.GAP)
_K_HEADER = int(Kind.HEADER)
_K_RECOVERY = int(Kind.RECOVERY)


class FrameSink:
    """Receives every good frame of a verification as it is read (decrypt writes the WAV
    from it: one pass). `pcm` is the decrypted audio of an AUDIO frame, a view valid only
    during the call; `error` is "bad_tag" or "audio_mac" when it failed."""

    def frame(self, frame: ParsedFrame, pcm: memoryview | None, error: str | None) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """The verifier starts its pass again: forget everything received."""
        raise NotImplementedError


class _SegmentCompare:
    """The rebuilt segment list against the stored manifest's bytes, entry by entry as the
    frames come: nothing of either list is held."""

    __slots__ = ("data", "end", "n", "ok", "pos")

    def __init__(self, data: bytes, span: tuple[int, int] | None) -> None:
        self.data = data
        self.ok = span is not None
        self.pos, self.end = (span[0] + 1, span[1]) if span is not None else (0, 0)
        self.n = 0

    def __call__(self, index: int, start: int, samples: int, mac: bytes) -> None:
        if not self.ok:
            return
        entry = segment_entry(index, start, samples, mac)
        if self.n:
            entry = b"," + entry
        self.n += 1
        if self.data.startswith(entry, self.pos):
            self.pos += len(entry)
        else:
            self.ok = False

    def matches(self, before: bytes, after: bytes, span: tuple[int, int]) -> bool:
        """Stored bytes == before + [entries] + after, exactly."""
        d, (a, b) = self.data, span
        return (
            self.ok
            and self.pos == b - 1
            and len(before) == a
            and d.startswith(before)
            and len(d) - b == len(after)
            and d.endswith(after)
        )


class _Damaged:
    """Frame index ranges lost to damage, disjoint and sorted: which missing indices the
    damage explains, without a set of every index (a hostile index jump is 2^32 wide)."""

    def __init__(self) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []

    def add(self, lo: int, hi: int) -> None:
        self.lo.append(lo)
        self.hi.append(hi)

    def normalise(self) -> None:
        pairs = sorted(zip(self.lo, self.hi, strict=True))
        lo: list[int] = []
        hi: list[int] = []
        for a, b in pairs:
            if lo and a <= hi[-1]:
                hi[-1] = max(hi[-1], b)
            else:
                lo.append(a)
                hi.append(b)
        self.lo, self.hi = lo, hi

    def lost(self, a: int, b: int) -> tuple[int, int, int] | None:
        """(first, last, how many) of the indices in [a, b) no damage covers; None if none."""
        first = last = None
        count = 0
        pos = a
        j = bisect.bisect_right(self.hi, a)
        while pos < b:
            lo = self.lo[j] if j < len(self.lo) else b
            hi = self.hi[j] if j < len(self.hi) else b
            if lo > pos:
                end = min(lo, b)
                first = pos if first is None else first
                last = end - 1
                count += end - pos
            pos = max(pos, hi)
            j += 1
        return None if first is None or last is None else (first, last, count)


class _Verifier:
    def __init__(
        self,
        directory: Path,
        org_key: OrgPrivateKey | None,
        trusted_key: DevicePublicKey | None,
        keys_deleted: bool = False,
        sink: FrameSink | None = None,
        parallel: bool | Adaptive | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.parallel = parallel  # scan_ahead's: None = adaptive where 2+ CPUs are usable
        self.keys_deleted = keys_deleted
        self.org_key = org_key
        self.trusted_key = trusted_key
        self.sink = sink
        self.keys: ContentKeys | None = None
        self.aead: ChaCha20Poly1305 | None = None
        self._fresh()

    def _fresh(self) -> None:
        self.report = Report(str(self.dir))
        self._phases: list[list[Finding]] = [[] for _ in range(_EXPORTS + 1)]
        self._phase = _HEADER
        self.rate = 48000
        self.frame_bytes = 2
        self._manifest_key: DevicePublicKey | None = None
        self._checkpoint_check: Callable[[bytes, bytes], bool] | None = None
        self._pending_crypto: dict[int, str | None] = {}
        self._checkpoint_sigs: dict[int, tuple[bytes, bytes]] = {}
        self._damaged = _Damaged()
        self._damage_at_end = False
        self._rid: bytes | None = None

    # -- helpers -------------------------------------------------------------------------

    def add(
        self,
        code: str,
        message: str,
        frame: int | None = None,
        sample: int | None = None,
        offset: int | None = None,
    ) -> None:
        second = round(sample / self.rate, 3) if sample is not None else None
        where = []
        if frame is not None:
            where.append(f"frame {frame}")
        if second is not None:
            where.append(f"second {second:g}")
        if offset is not None:
            where.append(f"byte {offset}")
        text = f"{message} [{', '.join(where)}]" if where else message
        self._phases[self._phase].append(Finding(code, text, frame, second, offset))

    def _findings(self) -> list[Finding]:
        return [f for phase in self._phases for f in phase]

    def _decrypt(self, frame: ParsedFrame, body: memoryview, slot: Slot) -> Any:
        """On scan_ahead's worker thread, frames ahead of the rules: the AEAD, which needs
        nothing but the key and the frame itself. (error, plaintext in the slot), or None
        for a frame that is not decrypted (no key; a checkpoint, recovery or export frame)."""
        h = frame.header
        if self.aead is None or h.kind in (_K_CHECKPOINT, _K_RECOVERY, _K_EXPORT):
            return None
        n = len(body) - AEAD_TAG_LEN
        if n < 0:
            return "bad_tag", None
        if len(slot.out) < n:
            slot.out = bytearray(n)
        pcm = memoryview(slot.out)[:n]
        try:
            self.aead.decrypt_into(nonce_for(h.index, bool(h.flags & _FINAL)), body,
                                   frame.header_bytes + frame.meta_bytes, pcm)
        except InvalidTag:
            return "bad_tag", None
        return None, pcm

    def _check_body(self, frame: ParsedFrame, body: memoryview, decrypted: Any) -> None:
        """The audio MAC and the sink, in file order, while the body is in hand (streaming:
        bodies are not kept); `decrypted` is what _decrypt made of it on the worker."""
        h = frame.header
        if h.kind == _K_CHECKPOINT:
            self._checkpoint_sigs[frame.offset] = (
                checkpoint_message(frame.header_bytes, frame.meta_bytes),
                bytes(body),
            )
            if self.sink is not None:
                self.sink.frame(frame, None, None)
            return
        if decrypted is None:
            if self.sink is not None:
                self.sink.frame(frame, None, None)
            return
        error, pcm = decrypted
        if error is None and h.kind == _K_AUDIO:
            assert self.keys is not None
            if audio_mac(self.keys.mac_key, pcm) != h.audio_mac:
                error = "audio_mac"
        self._pending_crypto[frame.offset] = error
        if self.sink is not None:
            self.sink.frame(frame, pcm if h.kind == _K_AUDIO else None, error)

    # -- main ----------------------------------------------------------------------------

    def run(self) -> Report:
        container = self.dir / CONTAINER_FILE
        if not self.dir.is_dir():
            raise FormatError(f"{self.dir}: not a folder")
        try:
            f = open_regular(container, "container")
        except FileNotFoundError:
            raise FormatError(
                f"{self.dir}: no {CONTAINER_FILE} here — not an akkoord recording folder"
            ) from None
        with f:
            try:
                self._scan(f, container, streaming=True)
            except _NeedFullView:
                self._fresh()
                if self.sink is not None:
                    self.sink.reset()
                self._scan(f, container, streaming=False)
        self.report.findings = self._findings()
        self._verdict()
        return self.report

    def _scan(self, f: Any, container: Path, *, streaming: bool) -> None:
        size = os.fstat(f.fileno()).st_size
        # The segment list, a manifest's bulk, is located but not built (see _manifest).
        signed = read_manifest(self.dir, segments=False)
        if signed is not None:
            signed.doc.pop("segments", None)
        if self.org_key is not None and self.keys is None:
            self.keys = load_content_keys(self.dir, self.org_key)
            self.aead = ChaCha20Poly1305(self.keys.seal_key)
        self.report.checked_audio = self.keys is not None
        f.seek(0)
        # Reading, hashing and decrypting run frames ahead on a worker (scan_ahead); the
        # MAC, the sink and every rule stay here, in file order. Closed before returning,
        # so a second pass (_NeedFullView) finds the file to itself.
        items = scan_ahead(f, size, self._check_body, self._decrypt, parallel=self.parallel)
        with contextlib.closing(items):
            self._scan_items(items, container, signed, streaming)

    def _scan_items(self, items: Iterator[ParsedFrame | Damage], container: Path,
                    signed: Any, streaming: bool) -> None:
        if streaming:
            self._rules_pass(self._stream(items, container, signed), signed, streaming=True)
            return
        seen: list[_Seen] = []
        damage: list[tuple[int, Damage]] = []  # (number of good frames before it, damage)
        for item in items:
            if isinstance(item, Damage):
                damage.append((len(seen), item))
                continue
            meta, err = parse_meta(item)
            s = _Seen(item, meta, err, self._pending_crypto.pop(item.offset, None))
            s.signed_bytes = self._checkpoint_sigs.pop(item.offset, None)
            seen.append(s)
        if not seen and not damage:
            raise FormatError(f"{container}: empty — the recording never started")
        canonical = self._analyse(seen, damage, signed)
        self._rules_pass(iter(canonical), signed, streaming=False)

    def _elect(self, votes: Counter[bytes], signed: Any) -> bytes:
        """The recording's id is the one most frames carry (a spliced-in frame, even a
        header, cannot outvote the recording it was spliced into); ties go to the manifest."""
        signed_rid = _manifest_rid(signed)
        if votes:
            top = max(votes.values())
            leaders = [r for r, n in votes.items() if n == top]
            return signed_rid if signed_rid in leaders else leaders[0]
        if signed_rid is not None:
            return signed_rid
        try:
            return bytes.fromhex(self.dir.name)
        except ValueError:
            return b""

    def _take_header(self, s: _Seen | None) -> None:
        if s is None:
            return
        rep = self.report
        hm = s.meta or {}
        if hm.get("format") != CONTAINER_FORMAT:
            raise FormatError(f"{self.dir}: unsupported container format {hm.get('format')!r}")
        self._phase = _HEADER
        try:
            audio = hm["audio"]
            self.rate = int(audio["sample_rate"])
            self.frame_bytes = int(audio["channels"]) * int(audio["sample_width"])
            if not 1 <= self.rate <= 10**6 or not 1 <= self.frame_bytes <= 64:
                raise ValueError
            rep.simulated = bool(hm.get("simulated"))
            rep.device_fingerprint = str(hm["device"]["fingerprint"])
            self._checkpoint_check = signature_checker(
                DevicePublicKey.from_json(hm["device"], "header device")
            )
        except (KeyError, TypeError, ValueError, KeyMaterialError):
            self.rate, self.frame_bytes = 48000, 2
            self.add("bad_frame", "the header frame's parameters are unreadable", 0, 0)

    @staticmethod
    def _is_header(s: _Seen, rid: bytes) -> bool:
        h = s.header
        return h.kind == _K_HEADER and h.index == 0 and s.meta is not None and (
            h.recording_id == rid
        )

    def _foreign(self, s: _Seen, last_ours: _Seen | None) -> None:
        self._phase = _FOREIGN
        prev_i = last_ours.header.index if last_ours is not None else -1
        self.add(
            "foreign_frame",
            f"frame from another recording ({s.header.recording_id.hex()}) "
            f"spliced in after frame {prev_i}",
            prev_i + 1,
            self._pos_after(last_ours),
            s.offset,
        )

    def _damage(self, d: Damage, prev_good: _Seen | None, next_good: _Seen | None) -> None:
        """A damaged byte range, located by the good frames of ours around it."""
        self._phase = _DAMAGE
        idx = prev_good.header.index + 1 if prev_good is not None else 0
        hi = next_good.header.index if next_good is not None else idx + 1
        self._damaged.add(idx, max(hi, idx + 1))
        if d.at_end:
            self._damage_at_end = True
            self.add(
                "truncated" if d.reason.startswith("incomplete") else "damaged",
                f"last {d.length} bytes are not a whole frame ({d.reason}): "
                "the recording is cut off or damaged here",
                idx,
                self._pos_after(prev_good),
                d.offset,
            )
        else:
            self.add(
                "damaged",
                f"{d.length} damaged bytes ({d.reason})",
                idx,
                self._pos_after(prev_good),
                d.offset,
            )

    def _stream(self, items: Iterator[ParsedFrame | Damage], container: Path,
                signed: Any) -> Iterator[_Seen]:
        """Frames of ours in canonical order as they are read, holding none of them: the
        recording id is the manifest's (else the first frame's), and every check that needs
        to see all frames at once turns out trivial while frames come in order; when one
        does not, _NeedFullView."""
        votes: Counter[bytes] = Counter()
        self._rid = _manifest_rid(signed)
        last_ours: _Seen | None = None
        pending: list[tuple[Damage, _Seen | None]] = []
        highest = -1
        any_frame = False
        for item in items:
            if isinstance(item, Damage):
                pending.append((item, last_ours))
                continue
            any_frame = True
            meta, err = parse_meta(item)
            s = _Seen(item, meta, err, self._pending_crypto.pop(item.offset, None))
            s.signed_bytes = self._checkpoint_sigs.pop(item.offset, None)
            rid = item.header.recording_id
            votes[rid] += 1
            if self._rid is None:
                self._rid = rid
            if rid != self._rid:
                self._foreign(s, last_ours)
                continue
            for d, prev in pending:
                self._damage(d, prev, s)
            pending.clear()
            if item.header.index <= highest:
                raise _NeedFullView  # twice, or out of order
            if last_ours is None and self._is_header(s, rid):
                self._take_header(s)
            highest = item.header.index
            last_ours = s
            yield s
        for d, prev in pending:
            self._damage(d, prev, None)
        if not any_frame and not pending:
            raise FormatError(f"{container}: empty — the recording never started")
        rid = self._elect(votes, signed)
        if self._rid is not None and rid != self._rid:
            raise _NeedFullView
        self._rid = rid
        self.report.recording_id = rid.hex() if rid else None

    def _analyse(
        self, seen: list[_Seen], damage: list[tuple[int, Damage]], signed: Any
    ) -> list[_Seen]:
        """The whole-file view: every frame's header in memory (tampered files only)."""
        rid = self._elect(Counter(s.header.recording_id for s in seen), signed)
        self._rid = rid
        self._take_header(next((s for s in seen if self._is_header(s, rid)), None))
        self.report.recording_id = rid.hex() if rid else None

        # Frames from elsewhere are set aside first; their index says nothing about ours.
        ours: list[_Seen] = []
        for s in seen:
            if s.header.recording_id != rid:
                self._foreign(s, ours[-1] if ours else None)
            else:
                ours.append(s)

        # Damaged byte ranges, located by the good frames around them.
        for before, d in damage:
            prev_good = next(
                (s for s in reversed(seen[:before]) if s.header.recording_id == rid), None
            )
            next_good = next((s for s in seen[before:] if s.header.recording_id == rid), None)
            self._damage(d, prev_good, next_good)
        self._damaged.normalise()
        self._phase = _ORDER
        return self._order_and_duplicates(ours)

    def _rules_pass(self, frames: Iterator[_Seen], signed: Any, *, streaming: bool) -> None:
        """Chain, per-frame rules, checkpoints and the rebuilt manifest, one frame at a time
        in canonical order, with one frame of look-ahead (is this the last?)."""
        rep = self.report
        if signed is not None and streaming:
            segments: Any = _SegmentCompare(signed.data, signed.segments_span)
        else:
            segments = SegmentBytes()
        builder: ManifestBuilder | None = ManifestBuilder(segments)
        prev_seal = b""
        expected = position = checkpoint_at = n = 0
        first: _Seen | None = None
        prev: _Seen | None = None
        cp_n, cp_s = 0, None  # the last checkpoint (frame 0 if none): the unsigned tail's start
        cur = next(frames, None)
        while cur is not None:
            nxt = next(frames, None)
            self._phase = _RULES
            h = cur.header
            if first is None:
                first, cp_s = cur, cur
                prev_seal = genesis_hash(self._rid or b"")
            if h.index != expected:
                lost = self._damaged.lost(expected, h.index)
                if lost:
                    a, b, count = lost
                    span = f"{a}" if count == 1 else f"{a}–{b}"
                    self.add("missing_frame", f"frame {span} missing (cut out)", a, position)
                # What the missing frames held is unknown: resume the timeline here.
                position = h.start_sample
            elif h.prev != prev_seal:
                self.add(
                    "chain_break",
                    "frame does not chain to the frame before it",
                    h.index,
                    h.start_sample,
                    cur.offset,
                )
            self._rules(cur, n, nxt is None, position)
            self._checkpoint_rules(cur, n, prev, checkpoint_at)
            if h.kind == _K_CHECKPOINT:
                checkpoint_at = h.start_sample
                cp_n, cp_s = n, cur
            position = h.start_sample + (h.samples if h.kind in (_K_AUDIO, _K_GAP) else 0)
            prev_seal = cur.seal
            expected = h.index + 1
            self._crypto(cur)
            if builder is not None:
                try:
                    builder.add(record_of(cur, cur.meta))  # type: ignore[arg-type]
                except Exception:
                    builder = None
            n += 1
            prev, cur = cur, nxt
        self._phase = _RULES
        if prev is not None and prev.header.kind not in (_K_END, _K_RECOVERY):
            last_h = prev.header
            if not self._damage_at_end:
                self.add(
                    "truncated",
                    f"the recording ends after frame {last_h.index} without a final frame",
                    last_h.index + 1,
                    position,
                )
        rep.frames = n
        self._phase = _MANIFEST
        self._manifest(first, prev, signed, builder, segments, streaming)
        self._phase = _KEYS
        self._wrapped_keys(first)
        if signed is not None:
            self._phase = _EXPORTS
            self._exports()
        self._last, self._tail = prev, None
        if prev is not None and prev.header.kind == _K_RECOVERY and first is not None:
            assert cp_s is not None
            end = prev.header.start_sample
            start = cp_s.header.start_sample
            self._tail = {
                "after_frame": cp_s.header.index,
                "frames": max(0, n - cp_n - 2),
                "samples": end - start,
                "seconds": round((end - start) / _rate_of(first), 3),
            }

    def _verdict(self) -> None:
        rep = self.report
        last = getattr(self, "_last", None)
        if rep.findings:
            rep.status = "tampered"
        elif last is not None and last.header.kind == _K_RECOVERY:
            rep.status = "interrupted"
            rep.notes.append(
                "interrupted: the device lost power or stopped while recording; "
                "the recording was closed afterwards with a signed note"
            )
            tail = self._tail
            if tail and tail["frames"]:
                rep.unsigned_tail = tail
                rep.notes.append(
                    f"unsigned tail: the last {tail['seconds']:g} s ({tail['frames']} frames, "
                    f"after frame {tail['after_frame']}) were recovered after the device's last "
                    "signed checkpoint; they chain on, but the device never signed them"
                )
        else:
            rep.status = "complete"
        if rep.simulated:
            rep.notes.append("simulated: made by the simulator, not at a real meeting")

    @staticmethod
    def _pos_after(frame: _Seen | None) -> int | None:
        if frame is None:
            return 0
        h = frame.header
        return h.start_sample + (h.samples if h.kind in (_K_AUDIO, _K_GAP) else 0)

    def _order_and_duplicates(self, ours: list[_Seen]) -> list[_Seen]:
        by_index: dict[int, _Seen] = {}
        highest = -1
        for s in ours:
            h = s.header
            first = by_index.get(h.index)
            if first is not None:
                if first.seal == s.seal:
                    self.add(
                        "duplicate_frame",
                        f"frame {h.index} appears twice",
                        h.index,
                        h.start_sample,
                        s.offset,
                    )
                else:
                    self.add(
                        "conflicting_frame",
                        f"two different frames claim index {h.index}",
                        h.index,
                        h.start_sample,
                        s.offset,
                    )
                continue
            if h.index < highest:
                self.add(
                    "reordered_frame",
                    f"frame {h.index} is out of order (found after frame {highest})",
                    h.index,
                    h.start_sample,
                    s.offset,
                )
            highest = max(highest, h.index)
            by_index[h.index] = s
        return [by_index[i] for i in sorted(by_index)]

    def _checkpoint_rules(
        self, s: _Seen, n: int, prev: _Seen | None, checkpoint_at: int
    ) -> None:
        """FORMAT.md §11.1: frame 1 and the frame before END are signed checkpoints, one is
        never more than 10 s of timeline away, and each one's signature is the device's."""
        h, off = s.header, s.offset
        if n == 1 and h.kind != _K_CHECKPOINT:
            # n counts frames as read: with frame 0 cut out, the second one read is not frame 1
            self.add("checkpoint", "frame 1 is not the signed start checkpoint" if h.index == 1
                     else f"frame {h.index}, the second frame read, is not the signed start "
                     "checkpoint", h.index, h.start_sample, off)
        if h.kind == _K_END and (prev is None or prev.header.kind != _K_CHECKPOINT):
            self.add("checkpoint", "the END frame does not follow a signed checkpoint",
                     h.index, h.start_sample, off)
        if h.kind in (_K_AUDIO, _K_GAP) and checkpoint_due(
            h.start_sample, checkpoint_at, self.rate
        ):
            self.add("checkpoint", "no signed checkpoint in the 10 s of audio before this frame",
                     h.index, h.start_sample, off)
        if h.kind != _K_CHECKPOINT:
            return
        check = self._checkpoint_check
        if h.body_len != SIGNATURE_LEN or s.signed_bytes is None:
            self.add("bad_frame", "a checkpoint's body is not one signature",
                     h.index, h.start_sample, off)
        elif check is not None and not check(s.signed_bytes[1], s.signed_bytes[0]):
            self.add("bad_checkpoint", "the checkpoint's signature does not verify",
                     h.index, h.start_sample, off)

    def _rules(self, s: _Seen, n: int, last: bool, position: int) -> None:
        """Per-frame rules of FORMAT.md §4, each located."""
        h, off = s.header, s.offset
        k = h.kind
        if s.meta_error:
            self.add("bad_frame", s.meta_error, h.index, h.start_sample, off)
        if (n == 0) != (k == _K_HEADER):
            self.add(
                "bad_frame",
                "the header frame must come first, and only first",
                h.index,
                h.start_sample,
                off,
            )
        if k == _K_EXPORT:
            self.add(
                "bad_frame",
                "export frames belong in exports.akr, not the container",
                h.index,
                h.start_sample,
                off,
            )
        if k in (_K_END, _K_RECOVERY) and not last:
            self.add(
                "bad_frame",
                "frames follow the recording's final frame",
                h.index,
                h.start_sample,
                off,
            )
        if (k == _K_END) != bool(h.flags & _FINAL):
            self.add(
                "bad_frame",
                "only the END frame carries the final flag",
                h.index,
                h.start_sample,
                off,
            )
        if h.start_sample != position:
            self.add(
                "timeline",
                f"starts at sample {h.start_sample}, expected {position}",
                h.index,
                position,
                off,
            )
        if k == _K_AUDIO:
            if h.samples == 0 or h.body_len != h.samples * self.frame_bytes + AEAD_TAG_LEN:
                self.add(
                    "bad_frame",
                    "audio length does not match its sample count",
                    h.index,
                    h.start_sample,
                    off,
                )
        elif k == _K_GAP:
            if h.samples == 0:
                self.add("bad_frame", "a gap of zero samples", h.index, h.start_sample, off)
        elif h.samples != 0 or h.audio_mac != ZERO32:
            self.add(
                "bad_frame", "a non-audio frame carries audio fields", h.index, h.start_sample, off
            )
        if k == _K_RECOVERY and h.body_len:
            self.add("bad_frame", "a recovery frame has a body", h.index, h.start_sample, off)
        if k not in (_K_RECOVERY, _K_AUDIO, _K_CHECKPOINT) and h.body_len != AEAD_TAG_LEN:
            self.add(
                "bad_frame", "event frame body is not one AEAD tag", h.index, h.start_sample, off
            )

    def _manifest(
        self,
        first: _Seen | None,
        last: _Seen | None,
        signed: Any,
        builder: ManifestBuilder | None,
        segments: Any,
        streaming: bool,
    ) -> None:
        rep = self.report
        if signed is None:
            self.add(
                "missing_signature",
                "no signed manifest: the recording was never closed, or its manifest was removed",
                last.header.index if last is not None else None,
            )
            return
        doc = signed.doc
        try:
            key = DevicePublicKey.from_json(doc.get("device") or {}, "manifest device")
        except Exception:
            self.add("bad_signature", "the manifest names no usable device key")
            return
        rep.device_fingerprint = key.fingerprint
        self._manifest_key = key
        if signed.signature is None:
            self.add("missing_signature", "manifest.sig is missing or unreadable")
        elif not verify_manifest_signature(signed.data, signed.signature, key):
            self.add("bad_signature", "the manifest's signature does not verify")
        if self.trusted_key is not None:
            rep.device_trusted = self.trusted_key.raw == key.raw
            if not rep.device_trusted:
                self.add(
                    "wrong_device",
                    f"signed by device {key.fingerprint[:16]}, not by the expected "
                    f"device {self.trusted_key.fingerprint[:16]}",
                )
        else:
            rep.notes.append(
                "device key not anchored: compare the fingerprint with the one "
                "the organisation publishes"
            )
        header = first if first is not None and first.header.kind == _K_HEADER else None
        if header is not None and header.meta is not None:
            hdev = (header.meta.get("device") or {}).get("public_key")
            if hdev != (doc.get("device") or {}).get("public_key"):
                self.add(
                    "manifest_mismatch",
                    "the manifest's device key differs from the recording's header",
                )
        rep.timeline = doc.get("timeline") if isinstance(doc.get("timeline"), list) else []
        rep.duration_seconds = doc.get("duration_seconds")
        if doc.get("recording_id") != rep.recording_id:
            self.add(
                "manifest_mismatch",
                f"the manifest is for recording {doc.get('recording_id')}, not {rep.recording_id}",
            )
        if any(f.code in _STRUCTURAL for f in self._findings()):
            return  # located findings above already say what the manifest would
        if builder is None:
            return  # structure findings above already explain why
        try:
            before, after = manifest_frame(builder.finish())
        except Exception:
            return
        if streaming:
            span = signed.segments_span
            if span is not None and segments.matches(before, after, span):
                return
            raise _NeedFullView  # the diff below names segments: it needs both lists
        rebuilt = before + segments.closed() + after
        if rebuilt != signed.data:
            self._manifest_diff(json.loads(rebuilt), json.loads(signed.data))

    def _manifest_diff(self, rebuilt: dict[str, Any], doc: dict[str, Any]) -> None:
        segs = {tuple(s[:3]): s[3] for s in doc.get("segments") or [] if isinstance(s, list)}
        differ = []
        for s in rebuilt["segments"]:
            if segs.get(tuple(s[:3])) != s[3]:
                differ.append(s)
        for s in differ[:20]:
            self.add("manifest_mismatch", "segment differs from the signed manifest", s[0], s[1])
        keys = sorted(
            k for k in set(rebuilt) | set(doc) if k != "segments" and rebuilt.get(k) != doc.get(k)
        )
        if keys:
            self.add(
                "manifest_mismatch",
                f"the signed manifest differs from the container in: {', '.join(keys)}",
            )
        elif not differ:
            self.add("manifest_mismatch", "the signed manifest differs from the container")

    def _exports(self) -> None:
        try:
            records = read_exports(self.dir, self.trusted_key or self._manifest_key)
        except FormatError as exc:
            self.add("export_record", str(exc))
            return
        for r in records:
            self.report.exports.append({"frame": r.index, **(r.meta or {})})
            if r.problem:
                self.add("export_record", f"export record {r.problem}", r.index, None, r.offset)

    def _wrapped_keys(self, first: _Seen | None) -> None:
        """keys.json against the header's commitment, without any key (FORMAT.md §11.4)."""
        header = first if first is not None and first.header.kind == _K_HEADER else None
        if header is None or header.meta is None:
            return
        want = header.meta.get("wrapped_keys_sha256")
        path = self.dir / WRAPPED_KEYS_FILE
        try:
            if hashlib.sha256(read_regular(path, 1 << 20, "wrapped-keys file")).hexdigest() \
                    == want:
                return
            what = "changed"
        except FileNotFoundError:
            what = "missing"
        except FormatError:  # not a regular file, or too large: nothing to compare
            what = "changed"
        if self.keys_deleted:
            self.report.notes.append(
                f"keys.json {what}: the custody log records this recording's deletion"
            )
            return
        self.add("keys_changed", f"content keys changed or missing: can no longer be "
                 f"decrypted (keys.json is {what})")

    def _crypto(self, s: _Seen) -> None:
        if self.aead is None:
            return
        h = s.header
        self._phase = _CRYPTO
        if s.crypto_error == "bad_tag":
            self.add(
                "bad_tag",
                "the frame does not decrypt (authentication tag invalid)",
                h.index,
                h.start_sample,
                s.offset,
            )
        elif s.crypto_error == "audio_mac":
            self.add(
                "audio_mismatch",
                "the audio does not match its MAC",
                h.index,
                h.start_sample,
                s.offset,
            )


def _rate_of(header: _Seen) -> int:
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return int((header.meta or {})["audio"]["sample_rate"]) or 48000
    return 48000


def verify_recording(
    directory: Path,
    org_key: OrgPrivateKey | None = None,
    trusted_key: DevicePublicKey | None = None,
    *,
    keys_deleted: bool = False,
    sink: FrameSink | None = None,
    parallel: bool | Adaptive | None = None,
) -> Report:
    """`keys_deleted`: the custody log records the recording's deletion, so a missing
    keys.json is the shredding, not a finding. `sink` receives every good frame, decrypted,
    as it is read (decrypt: one pass). `parallel`: read, hash and decrypt on a worker
    thread ahead of the rest (reader.scan_ahead; None: where two CPUs are usable, for as
    long as it measurably pays, or a reader.Adaptive policy) — the same report either way."""
    return _Verifier(check_name(directory), org_key, trusted_key, keys_deleted, sink,
                     parallel).run()
