"""What the CLI's commands share about what the user typed: recording ids, paths, tables.

Every command that takes a recording folder also takes its id, or an unambiguous prefix of
it, in the state folder (`akkoord list` prints them). Every error names what the user gave
and what to do.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from pathlib import Path
from typing import Any

from akkoord.errors import UsageError
from akkoord.localtime import local_cli

__all__ = [
    "check_folder_kind",
    "check_readable",
    "ensure_state_exists",
    "list_rows",
    "page_notes",
    "print_custody_entries",
    "print_list",
    "read_custody_entries",
    "refuse_overwrite",
    "resolve_recording",
]

_HEX = re.compile(r"^[0-9a-f]{4,32}$")


def ensure_state_exists(state: Any) -> None:
    if not state.root.is_dir():
        raise UsageError(
            f"no state folder at {state.root}: give the device's state folder with --state DIR "
            "or AKKOORD_STATE (default /var/lib/akkoord)"
        )


def resolve_recording(text: str, state: Any) -> Path:
    """A path that exists is taken as given; otherwise `text` is a recording id or the
    start of one (4+ hex digits) in the state folder."""
    from akkoord.store.safeio import check_name

    path = check_name(text)  # a NUL byte is named as such, never looked up
    if path.exists():
        return path
    if not _HEX.match(text.lower()):
        raise UsageError(
            f"{text}: no such file or folder, and not a recording id "
            "(`akkoord list` shows the recordings and their ids)"
        )
    if not state.root.is_dir():
        raise UsageError(
            f"{text}: no such file or folder; as a recording id it needs the state folder, "
            f"and there is none at {state.root} (give --state DIR)"
        )
    matches = [rid for rid in state.recording_ids() if rid.startswith(text.lower())]
    if not matches:
        raise UsageError(
            f"{text}: no recording with this id in {state.recordings_dir} "
            "(`akkoord list` shows them)"
        )
    if len(matches) > 1:
        shown = ", ".join(m[:12] + "…" for m in matches[:5])
        raise UsageError(f"{text}: matches {len(matches)} recordings ({shown}); give more digits")
    return state.recordings_dir / matches[0]


def check_readable(path: Path) -> None:
    """Refuse up front, naming the path the user gave, what this user may not read."""
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(
            f"{path}: this user may not read this folder (permission denied); run as a user "
            "who may, or copy the folder somewhere readable"
        )
    if path.is_file() and not os.access(path, os.R_OK):
        raise UsageError(f"{path}: this user may not read this file (permission denied)")


def check_folder_kind(path: Path) -> None:
    """`verify` takes a recording folder or a copy folder; say which files make either."""
    if path.is_dir() and not (path / "recording.akr").exists() \
            and not (path / "copy.json").exists():
        hint = ""
        if any(p.name.endswith(".partial") for p in path.iterdir()):
            hint = " (it holds an unfinished copy: a hidden .partial folder)"
        raise UsageError(
            f"{path}: neither a recording folder (recording.akr) nor a copy (copy.json){hint}; "
            "give a recording id from `akkoord list`, or a copy folder on a stick"
        )


def refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise UsageError(f"{path} already exists; choose another --out, or add --force to "
                         "replace it")


def list_rows(state: Any) -> list[dict[str, Any]]:
    from akkoord.store.exports import read_exports
    from akkoord.store.manifest import read_manifest

    rows = []
    for rid in state.recording_ids():
        directory = state.recording_dir(rid)
        signed = read_manifest(directory, segments=False)  # the list needs only the header fields
        doc = signed.doc if signed else {}
        try:
            copies: int | None = len(read_exports(directory, manifest=signed)) if signed else 0
        except Exception:  # a damaged exports file is for `verify` to report
            copies = None
        rows.append(
            {
                "recording_id": rid,
                "status": doc.get("status", "open"),
                "created": (doc.get("created") or {}).get("utc"),
                "duration_seconds": doc.get("duration_seconds"),
                "simulated": doc.get("simulated"),
                "copies": copies,
            }
        )
    return rows


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = round(float(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def print_list(rows: list[dict[str, Any]], state: Any) -> None:
    if not rows:
        print(f"no recordings in {state.recordings_dir}")
        return
    print(f"{'RECORDING':<32}  {'STARTED (local time)':<23}  {'LENGTH':>8}  "
          f"{'STATUS':<11}  COPIES")
    for r in rows:
        copies = "?" if r["copies"] is None else str(r["copies"])
        print(
            f"{r['recording_id']:<32}  {local_cli(r['created']):<23}  "
            f"{_duration(r['duration_seconds']):>8}  {r['status']:<11}  {copies}"
            + ("  (simulated)" if r["simulated"] else "")
        )
    print(f"{len(rows)} recording(s); an id or its first digits works wherever a recording "
          "folder is asked for")


def read_custody_entries(path: Path) -> list[dict[str, Any]]:
    """The entries as written (for reading; `verify_custody_log` is what checks them).
    Reading stops at the first line that does not parse, as the verifier's does."""
    entries = []
    with open(path, "rb") as f:
        for line in f:
            try:
                entry = json.loads(line)["entry"]
            except (ValueError, KeyError, TypeError):
                break
            if not isinstance(entry, dict):
                break
            entries.append(entry)
    return entries


def _short(value: Any) -> str:
    """Hashes and fingerprints in full are for `--json`; a table shows their start."""
    text = str(value)
    return text[:16] + "…" if len(text) > 24 and re.fullmatch(r"[0-9a-f]+", text) else text


def print_custody_entries(entries: list[dict[str, Any]]) -> None:
    print(f"{'#':>5}  {'TIME (local)':<23}  {'WHAT':<22}  {'RECORDING':<8}  DETAILS")
    for e in entries:
        time = e.get("time") if isinstance(e.get("time"), dict) else {}
        detail = e.get("detail") if isinstance(e.get("detail"), dict) else {}
        details = " ".join(f"{k}={_short(v)}" for k, v in sorted(detail.items())
                           if v is not None and not str(k).endswith("sha256"))
        if time.get("clock") == "unsynchronized":
            details = (details + " (clock not set)").strip()
        print(f"{e.get('seq', '?')!s:>5}  {local_cli(time.get('utc')):<23}  "
              f"{e.get('type', '?')!s:<22}  {str(e.get('recording_id') or '-')[:8]:<8}  "
              f"{details}")


_EMBEDDED = re.compile(rb'<script type="application/json" id="akkoord-copy">(.*?)</script>', re.S)


def page_notes(folder: Path) -> list[str]:
    """Where the copy's own verify.html would check other data than this check did.

    The page on a stick checks the description built into it, not the manifest.json next to
    it; if the two differ (one of them was edited), the page and `akkoord verify` look at
    different data, and both must say so rather than disagree without explanation."""
    try:
        with open(folder / "verify.html", "rb") as f:
            html = f.read(64 << 20)
        manifest = (folder / "manifest.json").read_bytes()
    except OSError:
        return []
    m = _EMBEDDED.search(html)
    if m is None:
        return []
    try:
        data = json.loads(m.group(1))
        embedded = base64.b64decode(data["manifest"], validate=True) if data else None
    except (ValueError, KeyError, TypeError, binascii.Error):
        return ["verify.html in this folder holds unreadable data: do not rely on that page"]
    if embedded is None or embedded == manifest:
        return []
    return ["verify.html in this folder checks the description built into it, and that differs "
            "from manifest.json here: one of the two was edited. This check used manifest.json; "
            "the page would use its own copy and say so"]
