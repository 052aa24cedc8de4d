"""The archive index: one SQL schema, two backends (SQLite inside the archive, PostgreSQL for
an archive several people or sites share). Queries are written once with ``?`` placeholders.

Concurrency: every write is a single INSERT … ON CONFLICT or a short transaction, so two
ingests of overlapping packages at once each insert a recording at most once; allocation of
copy numbers relies on the primary key, retried on conflict.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from akkoord.errors import UsageError

__all__ = ["COLUMNS", "Index", "SearchFilter", "open_index"]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS recordings (
        recording_id TEXT PRIMARY KEY,
        device_fingerprint TEXT NOT NULL,
        device_label TEXT NOT NULL,
        created TEXT,
        ended TEXT,
        duration_seconds REAL NOT NULL,
        status TEXT NOT NULL,
        chain_head TEXT NOT NULL,
        objects TEXT NOT NULL,
        ingested TEXT NOT NULL,
        copies INTEGER NOT NULL DEFAULT 0,
        deleted TEXT,
        delete_reason TEXT)""",
    "CREATE INDEX IF NOT EXISTS recordings_created ON recordings (created)",
    "CREATE INDEX IF NOT EXISTS recordings_label ON recordings (device_label, created)",
    "CREATE INDEX IF NOT EXISTS recordings_status ON recordings (status, created)",
    """CREATE TABLE IF NOT EXISTS copies (
        recording_id TEXT NOT NULL,
        copy_number INTEGER NOT NULL,
        made TEXT NOT NULL,
        made_for TEXT,
        PRIMARY KEY (recording_id, copy_number))""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        path TEXT PRIMARY KEY,
        recording_id TEXT,
        reason TEXT NOT NULL,
        time TEXT NOT NULL)""",
]

COLUMNS = ("recording_id", "device_fingerprint", "device_label", "created", "ended",
           "duration_seconds", "status", "chain_head", "objects", "ingested", "copies",
           "deleted", "delete_reason")


@dataclass(frozen=True)
class SearchFilter:
    since: str | None = None  # created >= (UTC text, prefix compare)
    until: str | None = None  # created <
    device: str | None = None  # device label (exact) or fingerprint prefix
    min_duration: float | None = None
    max_duration: float | None = None
    status: str | None = None
    min_copies: int | None = None
    text: str | None = None  # recording id prefix
    limit: int = 50
    offset: int = 0


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _prefix_range(prefix: str) -> tuple[str, str]:
    """[prefix, next) for a lowercase hex prefix. Digits sort before letters and letters in
    order in every collation, so this is right in SQLite and in PostgreSQL's locales."""
    last = prefix[-1]
    bump = "a" if last == "9" else "g" if last == "f" else chr(ord(last) + 1)
    return prefix, prefix[:-1] + bump


class Index:
    def __init__(self, conn: Any, dialect: str, where: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.where = where

    def _sql(self, q: str) -> str:
        return q.replace("?", "%s") if self.dialect == "postgresql" else q

    def execute(self, q: str, params: Sequence[Any] = ()) -> Any:
        cur = self.conn.cursor()
        cur.execute(self._sql(q), tuple(params))
        return cur

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():  # psycopg, autocommit outside it
            yield

    def is_conflict(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.IntegrityError):
            return True
        return type(exc).__name__ in ("UniqueViolation", "IntegrityError")

    def migrate(self) -> None:
        with self.transaction():
            for stmt in SCHEMA:
                self.execute(stmt)

    def close(self) -> None:
        self.conn.close()

    # -- recordings ------------------------------------------------------------------------

    def add_recording(self, row: dict[str, Any]) -> bool:
        """True if this call inserted it; False if it was already there (idempotent)."""
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        with self.transaction():
            cur = self.execute(
                f"INSERT INTO recordings ({cols}) VALUES ({marks}) "
                "ON CONFLICT (recording_id) DO NOTHING",
                [row.get(c) for c in COLUMNS],
            )
            return bool(cur.rowcount)

    def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Bulk insert in one transaction (re-indexing, and the 100,000-row bench)."""
        cols = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        q = self._sql(f"INSERT INTO recordings ({cols}) VALUES ({marks}) "
                      "ON CONFLICT (recording_id) DO NOTHING")
        with self.transaction():
            cur = self.conn.cursor()
            cur.executemany(q, [tuple(r.get(c) for c in COLUMNS) for r in rows])

    def get(self, recording_id: str) -> dict[str, Any] | None:
        cur = self.execute(f"SELECT {', '.join(COLUMNS)} FROM recordings WHERE recording_id = ?",
                           [recording_id])
        r = cur.fetchone()
        return dict(zip(COLUMNS, r, strict=True)) if r else None

    def search(self, f: SearchFilter) -> list[dict[str, Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if f.since:
            conds.append("created >= ?")
            params.append(f.since)
        if f.until:
            conds.append("created < ?")
            params.append(f.until)
        if f.device and _is_hex(f.device) and len(f.device) >= 8:  # a fingerprint prefix
            conds.append("device_fingerprint >= ? AND device_fingerprint < ?")
            params += [*_prefix_range(f.device.lower())]
        elif f.device:  # a label: (device_label, created) serves the ORDER BY as well
            conds.append("device_label = ?")
            params.append(f.device)
        if f.min_duration is not None:
            conds.append("duration_seconds >= ?")
            params.append(f.min_duration)
        if f.max_duration is not None:
            conds.append("duration_seconds <= ?")
            params.append(f.max_duration)
        if f.status:
            conds.append("status = ?")
            params.append(f.status)
        if f.min_copies is not None:
            conds.append("copies >= ?")
            params.append(f.min_copies)
        if f.text and _is_hex(f.text):  # a range, so the primary key serves it
            conds.append("recording_id >= ? AND recording_id < ?")
            params += [*_prefix_range(f.text.lower())]
        elif f.text:
            conds.append("1 = 0")  # ids are hex: nothing else can match
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        cur = self.execute(
            f"SELECT {', '.join(COLUMNS)} FROM recordings{where} "
            "ORDER BY created DESC, recording_id LIMIT ? OFFSET ?",
            [*params, f.limit, f.offset],
        )
        return [dict(zip(COLUMNS, r, strict=True)) for r in cur.fetchall()]

    def count(self) -> int:
        return int(self.execute("SELECT COUNT(*) FROM recordings").fetchone()[0])

    def all_ids(self) -> list[str]:
        return [r[0] for r in self.execute("SELECT recording_id FROM recordings ORDER BY 1")]

    def mark_deleted(self, recording_id: str, when: str, reason: str) -> None:
        with self.transaction():
            self.execute("UPDATE recordings SET status = 'deleted', deleted = ?, "
                         "delete_reason = ? WHERE recording_id = ?", [when, reason, recording_id])

    # -- copies ----------------------------------------------------------------------------

    def reserve_copy(self, recording_id: str, first: int, made: str, made_for: str | None) -> int:
        """The next free copy number (never below `first`), reserved for good."""
        while True:
            row = self.execute("SELECT MAX(copy_number) FROM copies WHERE recording_id = ?",
                               [recording_id]).fetchone()
            n = max(first, (row[0] or 0) + 1)
            try:
                with self.transaction():
                    self.execute("INSERT INTO copies (recording_id, copy_number, made, made_for) "
                                 "VALUES (?, ?, ?, ?)", [recording_id, n, made, made_for])
                    self.execute("UPDATE recordings SET copies = copies + 1 "
                                 "WHERE recording_id = ?", [recording_id])
                return n
            except Exception as exc:
                if not self.is_conflict(exc):
                    raise

    def record_copy(self, recording_id: str, number: int, made: str,
                    made_for: str | None) -> bool:
        """Reserve exactly `number` (a copy the organisation's log already holds, replayed
        after a restore); False if it was reserved before."""
        with self.transaction():
            cur = self.execute("INSERT INTO copies (recording_id, copy_number, made, made_for) "
                               "VALUES (?, ?, ?, ?) ON CONFLICT (recording_id, copy_number) "
                               "DO NOTHING", [recording_id, number, made, made_for])
            if not cur.rowcount:
                return False
            self.execute("UPDATE recordings SET copies = copies + 1 WHERE recording_id = ?",
                         [recording_id])
            return True

    def copies_of(self, recording_id: str) -> list[dict[str, Any]]:
        cur = self.execute("SELECT copy_number, made, made_for FROM copies "
                           "WHERE recording_id = ? ORDER BY copy_number", [recording_id])
        return [{"copy_number": a, "made": b, "made_for": c} for a, b, c in cur.fetchall()]

    # -- quarantine ------------------------------------------------------------------------

    def add_quarantine(self, path: str, recording_id: str | None, reason: str, when: str) -> None:
        with self.transaction():
            self.execute("INSERT INTO quarantine (path, recording_id, reason, time) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT (path) DO NOTHING",
                         [path, recording_id, reason, when])

    def quarantined(self) -> list[dict[str, Any]]:
        cur = self.execute("SELECT path, recording_id, reason, time FROM quarantine ORDER BY time")
        return [dict(zip(("path", "recording_id", "reason", "time"), r, strict=True))
                for r in cur.fetchall()]


def open_index(archive: Path, db: str | None) -> Index:
    """SQLite in the archive folder, or the PostgreSQL database `db` names."""
    if db and db.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise UsageError("a PostgreSQL index needs psycopg: pip install 'akkoord[postgresql]'"
                             ) from None
        try:
            conn = psycopg.connect(db, autocommit=True)
        except psycopg.Error as exc:
            raise UsageError(f"cannot connect to the archive database: {exc}") from None
        idx = Index(conn, "postgresql", "PostgreSQL")
    elif db:
        raise UsageError(f"--db {db!r}: expected postgresql://… (or nothing, for SQLite)")
    else:
        path = Path(archive) / "index.sqlite"
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        idx = _SqliteIndex(conn, "sqlite", str(path))
    return idx


class _SqliteIndex(Index):
    """Autocommit connection; transactions are explicit BEGIN IMMEDIATE … COMMIT."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
