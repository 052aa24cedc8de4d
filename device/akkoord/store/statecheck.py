"""Checking the state folder against its own custody log (FORMAT.md §11.3).

Someone with write access to the state folder can delete things. What they delete is found
when something that survives still points at it:

- a recording folder the log shows as started but neither deleted, aborted nor quarantined;
- a folder the log never saw start (planted), or whose header is not the one logged;
- a manifest that differs from the chain head the log recorded at close, or is missing
  although the log recorded the close;
- export records (`exports.akr`) fewer than the copies the log recorded, or missing;
- keys.json changed or missing without a logged deletion;
- a dropped log tail: every recording header names the custody head before it started, and
  every export record the custody entry that announced it, so a log cut back to before a
  surviving folder or export record is caught. A tail whose every witness was deleted with
  it is *not* detectable from the folder alone; a head held elsewhere (a copy's
  custody-head.json, the organisation's archive) catches it with `--check-head`.

Work is bounded: each recording costs its header frame, its manifest and its export record,
never a pass over its audio (`akkoord verify FOLDER` does that).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.errors import FormatError
from akkoord.store.custody import CustodyView, head_message
from akkoord.store.exports import read_exports
from akkoord.store.keys import DevicePublicKey
from akkoord.store.layout import CONTAINER_FILE, EXPORTS_FILE, WRAPPED_KEYS_FILE, StateDir
from akkoord.store.manifest import read_manifest
from akkoord.store.reader import ParsedFrame, parse_meta, scan
from akkoord.store.safeio import open_regular, read_regular, strict_json

__all__ = [
    "HeadCheck",
    "StateFinding",
    "StateReport",
    "check_head",
    "check_state",
    "head_in_log",
    "parse_head",
]


@dataclass(frozen=True)
class StateFinding:
    code: str
    message: str
    recording_id: str | None = None

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "recording_id": self.recording_id}


@dataclass
class StateReport:
    entries: int = 0
    recordings: int = 0
    findings: list[StateFinding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, code: str, message: str, rid: str | None = None) -> None:
        self.findings.append(StateFinding(code, message, rid))

    def to_json(self) -> dict[str, Any]:
        return {
            "entries": self.entries,
            "ok": self.ok,
            "findings": [f.message for f in self.findings],
            "codes": [f.to_json() for f in self.findings],
            "recordings": self.recordings,
            "notes": self.notes,
        }


def _header(directory: Path) -> ParsedFrame | None:
    """Frame 0 of a container, or None when it is not a whole frame."""
    with open_regular(directory / CONTAINER_FILE, "container") as f:
        size = os.fstat(f.fileno()).st_size
        for item in scan(f, size):
            return item if isinstance(item, ParsedFrame) else None
    return None


def check_state(state: StateDir, key: DevicePublicKey) -> StateReport:
    rep = StateReport()
    view = CustodyView.read(state.custody_path, key)
    rep.entries = len(view.entries)
    rep.findings.extend(StateFinding("custody_log", f) for f in view.findings)
    n = len(view.entries)
    if not state.custody_path.exists() and state.recording_ids():
        rep.add("custody_log", f"{state.custody_path}: missing, but recordings exist")

    def points_at(seq: Any, digest: Any, what: str, rid: str) -> None:
        """A surviving artefact vouches for log entry `seq`: the log must still hold it."""
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        if seq >= n:
            rep.add("log_tail_dropped",
                    f"{what} names custody entry {seq}, but the log ends at entry {n - 1}: "
                    "its tail was dropped", rid)
        elif digest is not None and view.hashes[seq] != digest:
            rep.add("log_rewritten",
                    f"{what} names custody entry {seq} with another hash: the log was "
                    "rewritten from there", rid)

    present = state.recording_ids()
    rep.recordings = len(present)
    for rid in present:
        _check_recording(state, rid, view, rep, points_at)
    try:
        held = sorted(os.listdir(state.quarantine_dir))
    except FileNotFoundError:
        held = []
    if held:
        rep.notes.append(
            f"{len(held)} folder(s) in {state.quarantine_dir} that recovery refused to close "
            f"or sign, kept whole for a person to look at: {', '.join(held[:10])}"
        )
    for rid, h in sorted(view.recordings.items()):
        if h.started is None or h.gone is not None or rid in present:
            continue
        rep.add("folder_deleted",
                f"recording {rid}: the log shows it started (entry {h.started.get('seq')}) "
                "but its folder is gone and the log does not record its deletion", rid)
    return rep


def _check_recording(
    state: StateDir, rid: str, view: CustodyView, rep: StateReport, points_at: Any
) -> None:
    directory = state.recording_dir(rid)
    h = view.history(rid)
    try:
        header = _header(directory)
    except FileNotFoundError:
        header = None
    except FormatError as exc:
        rep.add("unreadable", f"recording {rid}: {exc}", rid)
        return
    meta = parse_meta(header)[0] if header is not None else None
    if h.started is None:
        rep.add("unknown_recording",
                f"recording {rid}: the custody log never recorded it starting "
                "(planted, or the log lost its tail)", rid)
    elif header is not None and header.seal.hex() != h.header_seal:
        rep.add("container_replaced",
                f"recording {rid}: its header frame is not the one the log recorded at start",
                rid)
    if meta is not None:
        pointer = meta.get("custody")
        if isinstance(pointer, dict):
            points_at(pointer.get("seq"), pointer.get("hash"), f"recording {rid}'s header", rid)
    try:
        signed = read_manifest(directory, segments=False)
    except FormatError as exc:
        rep.add("unreadable", f"recording {rid}: {exc}", rid)
        signed = None
    closed = h.closed
    if signed is not None and closed is not None:
        logged = (closed.get("detail") or {}).get("chain_head")
        if logged != signed.doc.get("chain_head"):
            rep.add("manifest_changed",
                    f"recording {rid}: the manifest's chain head differs from the one the log "
                    f"recorded at close (entry {closed.get('seq')})", rid)
    elif signed is not None and h.started is not None:
        rep.add("close_not_logged",
                f"recording {rid}: closed and signed, but the log has no close entry "
                "(its tail was dropped?)", rid)
    elif signed is None and closed is not None:
        rep.add("manifest_missing",
                f"recording {rid}: the log recorded its close (entry {closed.get('seq')}) "
                "but the signed manifest is gone", rid)
    if meta is not None:
        _check_keys(directory, rid, meta, h.gone, rep)
    _check_exports(directory, rid, h, rep, points_at, signed is not None)


def _check_keys(
    directory: Path, rid: str, meta: dict[str, Any], gone: Any, rep: StateReport
) -> None:
    want = meta.get("wrapped_keys_sha256")
    try:
        got: str | None = hashlib.sha256(
            read_regular(directory / WRAPPED_KEYS_FILE, 1 << 20, "wrapped-keys file")
        ).hexdigest()
    except FileNotFoundError:
        got = None
    except FormatError:
        got = "unreadable"
    if got == want:
        return
    if gone is not None and gone.get("type") == "recording_deleted":
        rep.notes.append(f"recording {rid}: keys shredded by a logged deletion; folder left over")
        return
    what = "missing" if got is None else "changed"
    rep.add("keys_changed",
            f"recording {rid}: content keys changed or missing: can no longer be decrypted "
            f"(keys.json is {what})", rid)


def _check_exports(
    directory: Path, rid: str, h: Any, rep: StateReport, points_at: Any, closed: bool
) -> None:
    failed = {(e.get("detail") or {}).get("copy_number") for e in h.failed_exports}
    logged = [e for e in h.exports if (e.get("detail") or {}).get("copy_number") not in failed]
    path = directory / EXPORTS_FILE
    if not closed:
        return
    try:
        records = read_exports(directory)
    except FormatError as exc:
        rep.add("exports_damaged", f"recording {rid}: {exc}", rid)
        return
    good = [r for r in records if r.problem is None]
    for r in records:
        if r.problem is not None:
            rep.add("exports_damaged", f"recording {rid}: export record {r.index} {r.problem}",
                    rid)
    for r in good:
        m = r.meta or {}
        points_at(m.get("custody_seq"), None, f"recording {rid}'s export record {r.index}", rid)
    if logged and not path.exists():
        rep.add("exports_deleted",
                f"recording {rid}: the log recorded {len(logged)} copies, but {EXPORTS_FILE} "
                "is gone", rid)
    elif len(good) < len(logged):
        numbers = {(r.meta or {}).get("copy_number") for r in good}
        missing = [
            (e.get("detail") or {}).get("copy_number")
            for e in logged
            if (e.get("detail") or {}).get("copy_number") not in numbers
        ]
        rep.add("exports_shortened",
                f"recording {rid}: the log recorded copies {missing} that {EXPORTS_FILE} does "
                "not hold (shortened, or a copy interrupted by a power loss)", rid)


# --- a head held elsewhere ------------------------------------------------------------------


@dataclass
class HeadCheck:
    status: str  # "contained" | "dropped" | "forked" | "not_this_device"
    message: str
    seq: int
    log_entries: int

    @property
    def ok(self) -> bool:
        return self.status == "contained"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "status": self.status,
            "message": self.message,
            "seq": self.seq,
            "log_entries": self.log_entries,
        }


def parse_head(path: Path) -> tuple[int, bytes, bytes]:
    doc = strict_json(read_regular(path, 64 * 1024, "custody head"), str(path))
    if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith(
        "akkoord-custody-head/"
    ):
        raise FormatError(f"{path}: not an akkoord custody head")
    seq = doc.get("seq")
    try:
        digest = bytes.fromhex(doc["hash"])
        sig = base64.b64decode(doc["signature"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise FormatError(f"{path}: custody head lacks a readable hash or signature") from None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 or len(digest) != 32:
        raise FormatError(f"{path}: custody head has no valid seq/hash")
    return seq, digest, sig


def check_head(state: StateDir, key: DevicePublicKey, head_file: Path) -> HeadCheck:
    """Does the device's log still contain the head a copy carries, or where does it fork?"""
    seq, digest, sig = parse_head(head_file)
    view = CustodyView.read(state.custody_path, key)
    signed = key.verify(sig, head_message(seq, digest))
    return head_in_log(view, seq, digest, signed, f"this device ({key.fingerprint[:16]})")


def head_in_log(view: CustodyView, seq: int, digest: bytes, signed: bool, who: str) -> HeadCheck:
    n = len(view.entries)
    if not signed:
        return HeadCheck("not_this_device",
                         f"the head (entry {seq}) is not signed by {who}: it says nothing "
                         "about this log", seq, n)
    if seq < n and view.hashes[seq] == digest.hex():
        return HeadCheck("contained",
                         f"the log still contains entry {seq} as the copy recorded it "
                         f"({n - 1 - seq} entries since)", seq, n)
    if seq >= n:
        return HeadCheck("dropped",
                         f"{who} signed entry {seq}, but the log ends at entry {n - 1}: "
                         f"{seq - n + 1} or more entries were dropped", seq, n)
    # Same seq, other hash. The head alone cannot say how far back the histories part
    # (heads from older copies can narrow it): entry `seq` is the latest possible fork.
    return HeadCheck("forked",
                     f"{who} signed another entry {seq} than the log now holds: the log "
                     f"forks at or before entry {seq}", seq, n)
