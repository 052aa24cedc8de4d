"""`akkoord inspect`: every frame's index, kind, file, offset and length, no key needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from akkoord.errors import FormatError
from akkoord.store.format import Kind
from akkoord.store.layout import CONTAINER_FILE, EXPORTS_FILE
from akkoord.store.manifest import read_manifest
from akkoord.store.reader import Damage, parse_meta, scan

__all__ = ["inspect_recording"]


def _frames(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    frames: list[dict[str, Any]] = []
    damage: list[dict[str, Any]] = []
    size = path.stat().st_size
    with open(path, "rb") as f:
        for item in scan(f, size):
            if isinstance(item, Damage):
                damage.append(
                    {
                        "file": path.name,
                        "offset": item.offset,
                        "length": item.length,
                        "reason": item.reason,
                    }
                )
                continue
            h = item.header
            meta, err = parse_meta(item)
            frames.append(
                {
                    "index": h.index,
                    "kind": Kind(h.kind).name,
                    "file": path.name,
                    "offset": item.offset,
                    "length": item.length,
                    "final": h.final,
                    "start_sample": h.start_sample,
                    "samples": h.samples,
                    "recording_id": h.recording_id.hex(),
                    "seal": item.seal.hex(),
                    "meta": meta,
                    **({"meta_error": err} if err else {}),
                }
            )
    return frames, damage, size


def inspect_recording(directory: Path) -> dict[str, Any]:
    directory = Path(directory)
    container = directory / CONTAINER_FILE
    if not container.is_file():
        raise FormatError(f"{directory}: no {CONTAINER_FILE} — not an akkoord recording folder")
    frames, damage, size = _frames(container)
    exports: list[dict[str, Any]] = []
    if (directory / EXPORTS_FILE).is_file():
        ex_frames, ex_damage, _ = _frames(directory / EXPORTS_FILE)
        exports, damage = ex_frames, damage + ex_damage
    signed = read_manifest(directory)
    summary = None
    if signed is not None:
        d = signed.doc
        summary = {
            "status": d.get("status"),
            "recording_id": d.get("recording_id"),
            "frame_count": d.get("frame_count"),
            "chain_head": d.get("chain_head"),
            "duration_samples": d.get("duration_samples"),
            "duration_seconds": d.get("duration_seconds"),
            "simulated": d.get("simulated"),
            "device_fingerprint": (d.get("device") or {}).get("fingerprint"),
            "segments": len(d.get("segments") or []),
            "gaps": len(d.get("gaps") or []),
            "signed": signed.signature is not None,
            "file": "manifest.json",
        }
    header = frames[0]["meta"] if frames and frames[0]["kind"] == "HEADER" else None
    return {
        "path": str(directory),
        "recording_id": (header or {}).get("recording_id") or directory.name,
        "size": size,
        "frames": frames,
        "damage": damage,
        "exports": exports,
        "manifest": summary,
    }
