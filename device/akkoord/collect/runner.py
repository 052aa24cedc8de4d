"""The daemon's side of collection: classify a stick, run a collection on a thread, advise.

Kept out of daemon.py (a composition root): the daemon asks `is_collection_stick` when a stick
is mounted, starts `start` on the machine's ``Collect`` action, and appends `storage_advice`
to the storage-low fault. Progress and the outcome come back as consent-machine events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from akkoord.clock import Clock
from akkoord.collect.receipts import pending_count, run_retention, trusted_signing_keys
from akkoord.collect.service import collection_token, run_collection
from akkoord.collect.statements import StatementError
from akkoord.consent import CollectionFinished, CollectionProgress, Event
from akkoord.errors import AkkoordError
from akkoord.store.custody import CustodyLog
from akkoord.store.keys import DeviceIdentity
from akkoord.store.layout import StateDir

__all__ = ["RETENTION_FILE", "Collector", "retention_days"]

log = logging.getLogger(__name__)

#: A collection that finishes no recording for this long is given up (a hung stick): the
#: device must not stay unable to record. Generous: one 8-hour recording is ~2.8 GB.
STALL_SECONDS = 900.0

#: The retention period as the serial console sets it (`retention set DAYS`): {"days": N}.
RETENTION_FILE = "retention.json"


def retention_days(state: StateDir) -> int | None:
    try:
        days = json.loads((state.root / RETENTION_FILE).read_bytes())["days"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no period set: nothing is ever shredded automatically
    return days if isinstance(days, int) and days > 0 else None


class Collector:
    def __init__(self, state: StateDir, identity: DeviceIdentity, custody: CustodyLog,
                 clock: Clock, report: Callable[..., None], post: Callable[[Event], None],
                 now: Callable[[], float], stall_seconds: float = STALL_SECONDS) -> None:
        self.state, self.identity, self.custody, self.clock = state, identity, custody, clock
        self.report, self.post, self.now = report, post, now
        self.thread: threading.Thread | None = None
        self.stall_seconds = stall_seconds
        self._deadline = 0.0
        self._generation = 0  # a timed-out collection's late answer is ignored

    def _wall(self) -> float:
        return float(self.clock.wall_epoch())  # type: ignore[attr-defined]

    def is_collection_stick(self, path: Path) -> bool:
        """True for a verified token; a bad token is reported and the stick is a party's."""
        try:
            token = collection_token(self.state, self.identity, path, self._wall())
        except (StatementError, AkkoordError) as exc:
            self.report("collection_token_refused", path=str(path), reason=str(exc))
            return False
        if token is not None:
            self.report("collection_stick", path=str(path), token_serial=token.get("serial"))
        return token is not None

    def storage_advice(self) -> str:
        try:
            waiting = pending_count(self.state, trusted_signing_keys(self.state),
                                    self.identity.fingerprint, self._wall())
        except (OSError, AkkoordError):
            return ""
        return f"collect recordings ({waiting} not yet receipted)" if waiting else ""

    def start(self, stick: Path | None, unmount: Callable[[], None] | None) -> None:
        if stick is None:
            self.post(CollectionFinished(False, self.now(), "no stick"))
            return

        self._generation += 1
        generation = self._generation
        self._deadline = time.monotonic() + self.stall_seconds

        def progress(done: int, total: int, _rid: str) -> None:
            self._deadline = time.monotonic() + self.stall_seconds
            if generation == self._generation:
                self.post(CollectionProgress(done, total, self.now()))

        def work() -> None:
            ok, detail, fields = False, "", {}
            try:
                outcome = run_collection(self.state, self.identity, self.custody, stick,
                                         self._wall(), progress)
                fields = outcome.to_json()
                days = retention_days(self.state)
                if days is not None:
                    fields["shredded"] = run_retention(
                        self.state, self.custody, trusted_signing_keys(self.state),
                        self.identity.fingerprint, self._wall(), days)
                if unmount is not None:
                    unmount()  # flushes the stick; only then is it safe to remove
                ok = outcome.result.ok
                r = outcome.result
                detail = (f"{len(r.collected)} collected, {len(r.already)} already on the "
                          f"stick, {len(r.failed)} failed")
            except Exception as exc:  # a pulled stick, a bad token after all: report, keep all
                detail = str(exc)
            if generation != self._generation:
                return  # given up as stalled; the machine has moved on
            self.thread = None
            self.report("collection_done" if ok else "collection_failed", detail=detail,
                        **_short(fields))
            self.post(CollectionFinished(ok, self.now(), detail[:200]))

        self.thread = threading.Thread(target=work, name="akkoord-collect", daemon=True)
        self.thread.start()

    def check(self, now: float) -> None:
        """From the daemon's loop: give up a collection that made no progress for too long."""
        if self.thread is None or now <= self._deadline:
            return
        self._generation += 1
        self.thread = None
        detail = f"no progress for {self.stall_seconds:g} s (a hung stick?)"
        self.report("collection_failed", detail=detail)
        self.post(CollectionFinished(False, self.now(), detail))


def _short(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k in (
        "collected", "already_on_stick", "failed", "receipts", "receipt_problems", "shredded")}
