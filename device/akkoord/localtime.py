"""Times as people read them: local time in the Netherlands, with the zone named.

Machine-readable files (manifests, custody log, copy.json, JSON output) keep UTC; only what a
person reads (the CLI's tables, LEESMIJ/README, the page) is shown in local time.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["TIMEZONE", "local_cli", "local_en", "local_nl", "parse_utc", "zone"]

TIMEZONE = "Europe/Amsterdam"

_MONTHS_NL = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
              "september", "oktober", "november", "december")
_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")


def zone() -> tzinfo:
    """Europe/Amsterdam; UTC where the system has no time zone data (then named UTC)."""
    try:
        return ZoneInfo(TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def parse_utc(text: object) -> datetime | None:
    """A manifest's RFC 3339 UTC time ("2026-11-29T14:22:24.342Z"), or None."""
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _local(text: object) -> datetime | None:
    t = parse_utc(text)
    return t.astimezone(zone()) if t is not None else None


def local_cli(text: object) -> str:
    """"2026-11-29 15:22:24 CET" (or "-")."""
    t = _local(text)
    return f"{t:%Y-%m-%d %H:%M:%S} {t.tzname()}" if t is not None else "-"


def local_nl(text: object) -> str:
    """"29 november 2026, 15.22 uur (Nederlandse tijd, CET)"."""
    t = _local(text)
    if t is None:
        return "onbekend"
    where = "Nederlandse tijd, " if t.tzname() != "UTC" else ""
    return (f"{t.day} {_MONTHS_NL[t.month - 1]} {t.year}, {t:%H.%M} uur "
            f"({where}{t.tzname()})")


def local_en(text: object) -> str:
    """"29 November 2026, 15:22 (Netherlands time, CET)"."""
    t = _local(text)
    if t is None:
        return "unknown"
    where = "Netherlands time, " if t.tzname() != "UTC" else ""
    return f"{t.day} {_MONTHS_EN[t.month - 1]} {t.year}, {t:%H:%M} ({where}{t.tzname()})"
