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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.errors import FormatError
from akkoord.fsutil import atomic_write
from akkoord.store.format import MANIFEST_FORMAT, MANIFEST_SIG_CONTEXT, Kind, canonical_json
from akkoord.store.keys import DeviceIdentity, DevicePublicKey
from akkoord.store.safeio import read_regular, strict_json

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


def build_manifest(records: Iterable[FrameRecord]) -> dict[str, Any]:
    """Manifest of a closed recording: frame 0 is HEADER, the last frame END or RECOVERY.

    One pass over any iterable, so a verifier can stream a long recording's records."""
    it = iter(records)
    first = next(it, None)
    if first is None or first.kind != Kind.HEADER or first.meta is None:
        raise FormatError("a manifest needs the recording's header frame first")
    head = first.meta
    rate = int(head["audio"]["sample_rate"])
    segments: list[list[Any]] = []
    gaps: list[list[Any]] = []
    timeline: list[dict[str, Any]] = []
    position = 0
    count = 1
    last = first
    checkpoint: FrameRecord | None = None
    after_checkpoint = 0  # frames since the last checkpoint
    for r in it:
        count += 1
        last = r
        if r.kind == Kind.CHECKPOINT:
            # Not on the timeline (one every 10 s); the container keeps them, signed.
            checkpoint, after_checkpoint = r, 0
            continue
        after_checkpoint += 1
        if r.kind == Kind.AUDIO:
            segments.append([r.index, r.start_sample, r.samples, r.audio_mac.hex()])
            position = r.start_sample + r.samples
            continue
        entry: dict[str, Any] = {"frame": r.index, "at_sample": r.start_sample}
        entry["at_seconds"] = round(r.start_sample / rate, 3)
        entry.update(r.meta or {})
        if r.kind == Kind.GAP:
            gaps.append([r.index, r.start_sample, r.samples])
            entry["samples"] = r.samples
            position = r.start_sample + r.samples
        timeline.append(entry)
    if last.kind not in (Kind.END, Kind.RECOVERY):
        raise FormatError("a manifest needs a closed recording (END or RECOVERY last)")
    end_meta = last.meta or {}
    tail = None
    if last.kind == Kind.RECOVERY:
        # Frames recovery found after the device's last signed checkpoint: chained, but
        # never signed by the device while it recorded (FORMAT.md §11.2).
        cp_at = checkpoint.start_sample if checkpoint is not None else 0
        tail = {
            "after_frame": checkpoint.index if checkpoint is not None else None,
            "frames": after_checkpoint - 1,
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
        "frame_count": count,
        "chain_head": last.seal.hex(),
        "unsigned_tail": tail,
        "segments": segments,
        "gaps": gaps,
        "timeline": timeline,
    }


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return canonical_json(manifest) + b"\n"


def sign_manifest(data: bytes, identity: DeviceIdentity) -> bytes:
    return identity.sign(MANIFEST_SIG_CONTEXT + data)


def verify_manifest_signature(data: bytes, signature: bytes, key: DevicePublicKey) -> bool:
    return key.verify(signature, MANIFEST_SIG_CONTEXT + data)


def write_manifest(directory: Path, manifest: dict[str, Any], identity: DeviceIdentity) -> bytes:
    """Signature first, then the manifest: a manifest file on disk always has its signature."""
    data = manifest_bytes(manifest)
    sig = sign_manifest(data, identity)
    atomic_write(Path(directory) / SIGNATURE_FILE, base64.b64encode(sig) + b"\n")
    atomic_write(Path(directory) / MANIFEST_FILE, data)
    return data


@dataclass(frozen=True)
class SignedManifest:
    data: bytes
    signature: bytes | None  # None: no signature file, or not decodable
    doc: dict[str, Any]


def read_manifest(directory: Path) -> SignedManifest | None:
    """None if there is no manifest; FormatError if it is there but not a manifest."""
    path = Path(directory) / MANIFEST_FILE
    try:
        data = read_regular(path, MAX_MANIFEST, "manifest")
    except FileNotFoundError:
        return None
    doc = strict_json(data, str(path))
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
    return SignedManifest(data, sig, doc)
