"""Numbers, durations and parties as a person says them, in Dutch and in English.

"bij 1:12 in de opname", "0,3 seconde", "partij B (professional)": the notice on a copy reads
like a letter, not like a log. Positions are given as a player shows them (m:ss, or h:mm:ss),
so a parent can find the moment.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clock_position", "duration_en", "duration_nl", "party_en", "party_nl", "roles_of",
           "seconds_en", "seconds_nl"]


def clock_position(seconds: float) -> str:
    """As a media player shows it: "1:12", "1:02:03"."""
    s = max(0, int(seconds))
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _number(x: float, comma: bool) -> str:
    text = (f"{x:.2f}" if x < 1 else f"{x:.1f}").rstrip("0").rstrip(".")
    return text.replace(".", ",") if comma else text


def seconds_nl(x: float) -> str:
    """"1 seconde", "0,3 seconde", "12 seconden", "2 minuten en 5 seconden"."""
    if x >= 60:
        return duration_nl(x)
    n = _number(x, comma=True)
    return f"{n} seconde" if x <= 1 else f"{n} seconden"


def seconds_en(x: float) -> str:
    if x >= 60:
        return duration_en(x)
    n = _number(x, comma=False)
    return f"{n} second" if n == "1" else f"{n} seconds"


def _parts(x: float) -> tuple[int, int, int]:
    s = round(x)
    return s // 3600, s % 3600 // 60, s % 60


def duration_nl(x: float) -> str:
    """"1 uur, 5 minuten en 3 seconden"; under a minute as `seconds_nl`."""
    h, m, s = _parts(x)
    if not h and not m:
        return seconds_nl(x)
    parts = ([f"{h} uur"] if h else []) + ([f"{m} {'minuut' if m == 1 else 'minuten'}"]
                                           if m else [])
    parts += [f"{s} {'seconde' if s == 1 else 'seconden'}"] if s else []
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " en " + parts[-1]


def duration_en(x: float) -> str:
    h, m, s = _parts(x)
    if not h and not m:
        return seconds_en(x)
    parts = ([f"{h} hour{'s' if h != 1 else ''}"] if h else [])
    parts += [f"{m} minute{'s' if m != 1 else ''}"] if m else []
    parts += [f"{s} second{'s' if s != 1 else ''}"] if s else []
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def roles_of(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The roles the start event recorded ({} for a recording made without them)."""
    for entry in manifest.get("timeline") or []:
        if isinstance(entry, dict) and entry.get("event") == "start":
            roles = entry.get("roles")
            if isinstance(roles, dict):
                return {k: v for k, v in roles.items() if isinstance(v, dict)}
    return {}


def party_nl(manifest: dict[str, Any], party: str) -> str:
    """"partij A (ouder / gezin)", or "partij A" without a recorded role."""
    role = roles_of(manifest).get(party.upper(), {}).get("nl")
    return f"partij {party.upper()} ({role})" if role else f"partij {party.upper()}"


def party_en(manifest: dict[str, Any], party: str) -> str:
    role = roles_of(manifest).get(party.upper(), {}).get("en")
    return f"party {party.upper()} ({role})" if role else f"party {party.upper()}"
