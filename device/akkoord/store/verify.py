"""Verify a recording folder: structure, chain, signature and — with the organisation key —
every frame's AEAD tag and every segment's audio MAC.

Every finding says what and where: the frame index, the second of audio, the byte offset.
Statuses: ``complete`` and ``interrupted`` (a power loss, disclosed and signed) pass;
anything with findings is ``tampered``. An unreadable folder raises FormatError instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterator
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
    FrameRecord,
    build_manifest,
    manifest_bytes,
    read_manifest,
    verify_manifest_signature,
)
from akkoord.store.reader import Damage, ParsedFrame, parse_meta, record_of, scan
from akkoord.store.safeio import check_name, open_regular, read_regular, strict_json

__all__ = ["Finding", "Report", "load_content_keys", "verify_recording"]


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

    __slots__ = ("crypto_error", "header", "meta", "meta_error", "offset", "order", "seal",
                 "signed_bytes")

    def __init__(self, order: int, frame: ParsedFrame, meta: dict[str, Any] | None,
                 meta_error: str | None, crypto_error: str | None = None) -> None:
        self.order = order
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


class _Verifier:
    def __init__(
        self,
        directory: Path,
        org_key: OrgPrivateKey | None,
        trusted_key: DevicePublicKey | None,
        keys_deleted: bool = False,
    ) -> None:
        self.dir = Path(directory)
        self.keys_deleted = keys_deleted
        self.org_key = org_key
        self.trusted_key = trusted_key
        self.report = Report(str(directory))
        self.keys: ContentKeys | None = None
        self.aead: ChaCha20Poly1305 | None = None
        self.rate = 48000
        self.frame_bytes = 2
        self._manifest_key: DevicePublicKey | None = None
        self._header_key: DevicePublicKey | None = None

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
        self.report.findings.append(Finding(code, text, frame, second, offset))

    def _check_body(self, frame: ParsedFrame, body: memoryview) -> None:
        """AEAD + audio MAC, while the body is in hand (streaming: bodies are not kept)."""
        h = frame.header
        if h.kind == Kind.CHECKPOINT:
            self._checkpoint_sigs[frame.offset] = (
                checkpoint_message(frame.header_bytes, frame.meta_bytes),
                bytes(body),
            )
            return
        if self.aead is None or h.kind in (Kind.RECOVERY, Kind.EXPORT):
            return
        error = None
        try:
            pcm = self.aead.decrypt(
                nonce_for(h.index, h.final), body, frame.header_bytes + frame.meta_bytes
            )
        except InvalidTag:
            error = "bad_tag"
        else:
            if h.kind == Kind.AUDIO:
                assert self.keys is not None
                if audio_mac(self.keys.mac_key, pcm) != h.audio_mac:
                    error = "audio_mac"
        self._pending_crypto[frame.offset] = error

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
            self._scan(f, container)
        return self.report

    def _scan(self, f: Any, container: Path) -> None:
        size = os.fstat(f.fileno()).st_size
        signed = read_manifest(self.dir)
        if signed is not None:
            # The segment list is a manifest's bulk; the rebuilt manifest is compared as
            # bytes, and a diff re-reads it. Memory stays near one copy of the manifest.
            signed.doc.pop("segments", None)
        if self.org_key is not None:
            self.keys = load_content_keys(self.dir, self.org_key)
            self.aead = ChaCha20Poly1305(self.keys.seal_key)
            self.report.checked_audio = True
        self._pending_crypto: dict[int, str | None] = {}
        self._checkpoint_sigs: dict[int, tuple[bytes, bytes]] = {}
        seen: list[_Seen] = []
        damage: list[tuple[int, Damage]] = []  # (number of good frames before it, damage)
        for item in scan(f, size, self._check_body):
            if isinstance(item, Damage):
                damage.append((len(seen), item))
                continue
            meta, err = parse_meta(item)
            s = _Seen(len(seen), item, meta, err, self._pending_crypto.pop(item.offset, None))
            s.signed_bytes = self._checkpoint_sigs.pop(item.offset, None)
            seen.append(s)
        if not seen and not damage:
            raise FormatError(f"{container}: empty — the recording never started")
        self._analyse(seen, damage, signed, size)

    def _analyse(
        self, seen: list[_Seen], damage: list[tuple[int, Damage]], signed: Any, size: int
    ) -> None:
        rep = self.report
        # The recording's id is the one most frames carry (a spliced-in frame, even a
        # header, cannot outvote the recording it was spliced into); ties go to the manifest.
        votes = Counter(s.header.recording_id for s in seen)
        signed_rid = _manifest_rid(signed)
        if votes:
            top = max(votes.values())
            leaders = [r for r, n in votes.items() if n == top]
            rid = signed_rid if signed_rid in leaders else leaders[0]
        elif signed_rid is not None:
            rid = signed_rid
        else:
            try:
                rid = bytes.fromhex(self.dir.name)
            except ValueError:
                rid = b""
        header = next(
            (
                s
                for s in seen
                if s.header.kind == Kind.HEADER
                and s.header.index == 0
                and s.meta is not None
                and s.header.recording_id == rid
            ),
            None,
        )
        if header is not None:
            hm = header.meta or {}
            if hm.get("format") != CONTAINER_FORMAT:
                raise FormatError(f"{self.dir}: unsupported container format {hm.get('format')!r}")
            try:
                audio = hm["audio"]
                self.rate = int(audio["sample_rate"])
                self.frame_bytes = int(audio["channels"]) * int(audio["sample_width"])
                if not 1 <= self.rate <= 10**6 or not 1 <= self.frame_bytes <= 64:
                    raise ValueError
                rep.simulated = bool(hm.get("simulated"))
                rep.device_fingerprint = str(hm["device"]["fingerprint"])
                self._header_key = DevicePublicKey.from_json(hm["device"], "header device")
            except (KeyError, TypeError, ValueError, KeyMaterialError):
                self.rate, self.frame_bytes = 48000, 2
                self.add("bad_frame", "the header frame's parameters are unreadable", 0, 0)
        rep.recording_id = rid.hex() if rid else None

        # Frames from elsewhere are set aside first; their index says nothing about ours.
        ours: list[_Seen] = []
        for s in seen:
            if s.header.recording_id != rid:
                prev_i = ours[-1].header.index if ours else -1
                self.add(
                    "foreign_frame",
                    f"frame from another recording ({s.header.recording_id.hex()}) "
                    f"spliced in after frame {prev_i}",
                    prev_i + 1,
                    self._pos_after(ours),
                    s.offset,
                )
            else:
                ours.append(s)

        # Damaged byte ranges, located by the good frames around them.
        damaged_slots: set[int] = set()
        for before, d in damage:
            prev_good = [s for s in seen[:before] if s.header.recording_id == rid]
            next_good = [s for s in seen[before:] if s.header.recording_id == rid]
            idx = prev_good[-1].header.index + 1 if prev_good else 0
            hi = next_good[0].header.index if next_good else idx + 1
            damaged_slots.update(range(idx, max(hi, idx + 1)))
            if d.at_end:
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

        canonical = self._order_and_duplicates(ours)
        self._chain_and_rules(canonical, rid, damage, damaged_slots)
        rep.frames = len(canonical)
        self._manifest(canonical, signed)
        self._wrapped_keys(canonical)
        self._crypto(canonical)
        if signed is not None:
            self._exports()
        if rep.findings:
            rep.status = "tampered"
        elif canonical and canonical[-1].header.kind == Kind.RECOVERY:
            rep.status = "interrupted"
            rep.notes.append(
                "interrupted: the device lost power or stopped while recording; "
                "the recording was closed afterwards with a signed note"
            )
            tail = unsigned_tail(canonical)
            if tail["frames"]:
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

    def _pos_after(self, frames: list[_Seen]) -> int | None:
        if not frames:
            return 0
        h = frames[-1].header
        return h.start_sample + (h.samples if h.kind in (Kind.AUDIO, Kind.GAP) else 0)

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

    def _chain_and_rules(
        self,
        frames: list[_Seen],
        rid: bytes,
        damage: list[tuple[int, Damage]],
        damaged_slots: set[int],
    ) -> None:
        prev_seal = genesis_hash(rid)
        expected = 0
        position = 0
        checkpoint_at = 0
        for n, s in enumerate(frames):
            h = s.header
            if h.index != expected:
                lost = [i for i in range(expected, h.index) if i not in damaged_slots]
                if lost:
                    span = f"{lost[0]}" if len(lost) == 1 else f"{lost[0]}–{lost[-1]}"
                    self.add("missing_frame", f"frame {span} missing (cut out)", lost[0], position)
                # What the missing frames held is unknown: resume the timeline here.
                position = h.start_sample
            elif h.prev != prev_seal:
                self.add(
                    "chain_break",
                    "frame does not chain to the frame before it",
                    h.index,
                    h.start_sample,
                    s.offset,
                )
            last = n == len(frames) - 1
            self._rules(s, n, last, position)
            self._checkpoint_rules(s, n, frames, checkpoint_at)
            if h.kind == Kind.CHECKPOINT:
                checkpoint_at = h.start_sample
            position = h.start_sample + (h.samples if h.kind in (Kind.AUDIO, Kind.GAP) else 0)
            prev_seal = s.seal
            expected = h.index + 1
        if frames and frames[-1].header.kind not in (Kind.END, Kind.RECOVERY):
            last_h = frames[-1].header
            if not any(d.at_end for _, d in damage):
                self.add(
                    "truncated",
                    f"the recording ends after frame {last_h.index} without a final frame",
                    last_h.index + 1,
                    position,
                )

    def _checkpoint_rules(self, s: _Seen, n: int, frames: list[_Seen], checkpoint_at: int) -> None:
        """FORMAT.md §11.1: frame 1 and the frame before END are signed checkpoints, one is
        never more than 10 s of timeline away, and each one's signature is the device's."""
        h, off = s.header, s.offset
        if n == 1 and h.kind != Kind.CHECKPOINT:
            self.add("checkpoint", "frame 1 is not the signed start checkpoint",
                     h.index, h.start_sample, off)
        if h.kind == Kind.END and (n == 0 or frames[n - 1].header.kind != Kind.CHECKPOINT):
            self.add("checkpoint", "the END frame does not follow a signed checkpoint",
                     h.index, h.start_sample, off)
        if h.kind in (Kind.AUDIO, Kind.GAP) and checkpoint_due(
            h.start_sample, checkpoint_at, self.rate
        ):
            self.add("checkpoint", "no signed checkpoint in the 10 s of audio before this frame",
                     h.index, h.start_sample, off)
        if h.kind != Kind.CHECKPOINT:
            return
        key = self._header_key
        if h.body_len != SIGNATURE_LEN or s.signed_bytes is None:
            self.add("bad_frame", "a checkpoint's body is not one signature",
                     h.index, h.start_sample, off)
        elif key is not None and not key.verify(s.signed_bytes[1], s.signed_bytes[0]):
            self.add("bad_checkpoint", "the checkpoint's signature does not verify",
                     h.index, h.start_sample, off)

    def _rules(self, s: _Seen, n: int, last: bool, position: int) -> None:
        """Per-frame rules of FORMAT.md §4, each located."""
        h, off = s.header, s.offset
        k = h.kind
        if s.meta_error:
            self.add("bad_frame", s.meta_error, h.index, h.start_sample, off)
        if (n == 0) != (k == Kind.HEADER):
            self.add(
                "bad_frame",
                "the header frame must come first, and only first",
                h.index,
                h.start_sample,
                off,
            )
        if k == Kind.EXPORT:
            self.add(
                "bad_frame",
                "export frames belong in exports.akr, not the container",
                h.index,
                h.start_sample,
                off,
            )
        if k in (Kind.END, Kind.RECOVERY) and not last:
            self.add(
                "bad_frame",
                "frames follow the recording's final frame",
                h.index,
                h.start_sample,
                off,
            )
        if (k == Kind.END) != bool(h.flags & Flag.FINAL):
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
        if k == Kind.AUDIO:
            if h.samples == 0 or h.body_len != h.samples * self.frame_bytes + AEAD_TAG_LEN:
                self.add(
                    "bad_frame",
                    "audio length does not match its sample count",
                    h.index,
                    h.start_sample,
                    off,
                )
        elif k == Kind.GAP:
            if h.samples == 0:
                self.add("bad_frame", "a gap of zero samples", h.index, h.start_sample, off)
        elif h.samples != 0 or h.audio_mac != ZERO32:
            self.add(
                "bad_frame", "a non-audio frame carries audio fields", h.index, h.start_sample, off
            )
        if k == Kind.RECOVERY and h.body_len:
            self.add("bad_frame", "a recovery frame has a body", h.index, h.start_sample, off)
        if k not in (Kind.RECOVERY, Kind.AUDIO, Kind.CHECKPOINT) and h.body_len != AEAD_TAG_LEN:
            self.add(
                "bad_frame", "event frame body is not one AEAD tag", h.index, h.start_sample, off
            )

    def _records(self, frames: list[_Seen]) -> Iterator[FrameRecord]:
        return (record_of(s, s.meta) for s in frames)  # type: ignore[arg-type]

    def _manifest(self, frames: list[_Seen], signed: Any) -> None:
        rep = self.report
        if signed is None:
            last = frames[-1].header if frames else None
            self.add(
                "missing_signature",
                "no signed manifest: the recording was never closed, or its manifest was removed",
                last.index if last else None,
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
        header = frames[0] if frames and frames[0].header.kind == Kind.HEADER else None
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
        if any(f.code in _STRUCTURAL for f in rep.findings):
            return  # located findings above already say what the manifest would
        try:
            rebuilt = manifest_bytes(build_manifest(self._records(frames)))
        except Exception:
            return  # structure findings above already explain why
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

    def _wrapped_keys(self, frames: list[_Seen]) -> None:
        """keys.json against the header's commitment, without any key (FORMAT.md §11.4)."""
        header = frames[0] if frames and frames[0].header.kind == Kind.HEADER else None
        if header is None or header.meta is None:
            return
        want = header.meta.get("wrapped_keys_sha256")
        path = self.dir / WRAPPED_KEYS_FILE
        try:
            got = hashlib.sha256(read_regular(path, 1 << 20, "wrapped-keys file")).hexdigest()
        except FileNotFoundError:
            got = None
        except FormatError as exc:
            got = str(exc)
        if got == want:
            return
        what = "missing" if got is None else "changed"
        if self.keys_deleted:
            self.report.notes.append(
                f"keys.json {what}: the custody log records this recording's deletion"
            )
            return
        self.add("keys_changed", f"content keys changed or missing: can no longer be "
                 f"decrypted (keys.json is {what})")

    def _crypto(self, frames: list[_Seen]) -> None:
        if self.aead is None:
            return
        for s in frames:
            h = s.header
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


def unsigned_tail(frames: list[_Seen]) -> dict[str, Any]:
    """Frames between the last CHECKPOINT and the final RECOVERY frame (FORMAT.md §11.2)."""
    rate = 48000
    head = frames[0].meta if frames and frames[0].meta else {}
    with contextlib.suppress(KeyError, TypeError, ValueError):
        rate = int(head["audio"]["sample_rate"]) or rate
    last_cp = max((i for i, s in enumerate(frames) if s.header.kind == Kind.CHECKPOINT), default=0)
    tail = frames[last_cp + 1 : -1]
    start = frames[last_cp].header.start_sample if frames else 0
    end = frames[-1].header.start_sample if frames else 0
    return {
        "after_frame": frames[last_cp].header.index if frames else None,
        "frames": len(tail),
        "samples": end - start,
        "seconds": round((end - start) / rate, 3),
    }


def verify_recording(
    directory: Path,
    org_key: OrgPrivateKey | None = None,
    trusted_key: DevicePublicKey | None = None,
    *,
    keys_deleted: bool = False,
) -> Report:
    """`keys_deleted`: the custody log records the recording's deletion, so a missing
    keys.json is the shredding, not a finding."""
    return _Verifier(check_name(directory), org_key, trusted_key, keys_deleted).run()
