"""Each bench figure against its target: met or not met, never left for the reader to work out.

Targets are written as `"<op> <number> (note)"` in `run_bench`'s `targets`; a figure missing
from the run (no ALSA, --quick skipping it) is `not measured`.

`format_bound` names figures that are reported but judged through another figure, with why:
a ratio whose two sides do different work that no implementation can skip (decrypt writes the
WAV that verify does not; the format hashes the bytes twice more than `age`). Each says which
judged figure stands for it, so the judgement is never silently dropped
(docs/DECISIONS.md, "The bench judges like for like").
"""

from __future__ import annotations

import operator
import re
from typing import Any

__all__ = ["judge", "print_judged"]

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_TARGET = re.compile(r"^\s*(>=|<=|>|<)\s*([0-9.]+)")
_JUDGED_AS = re.compile(r"judged as ([a-z0-9_]+(?:(?:,| and) [a-z0-9_]+)*)")


def judge(result: dict[str, Any]) -> dict[str, str]:
    """{figure: "met" | "not met" | "not measured"} for every figure with a target, and
    {figure: "format-bound"} for every figure `format_bound` explains."""
    verdicts = {}
    for name, target in (result.get("targets") or {}).items():
        m = _TARGET.match(str(target))
        value = result.get(name)
        if m is None or not isinstance(value, int | float):
            verdicts[name] = "not measured"
            continue
        ok = _OPS[m.group(1)](float(value), float(m.group(2)))
        verdicts[name] = "met" if ok else "not met"
    for name in result.get("format_bound") or {}:
        verdicts.setdefault(name, "format-bound")
    return verdicts


def judged_as(reason: str) -> list[str]:
    """The judged figures a `format_bound` reason names ("... judged as a, b and c")."""
    m = _JUDGED_AS.search(reason)
    return re.split(r", | and ", m.group(1)) if m else []


def print_judged(result: dict[str, Any]) -> None:
    verdicts = judge(result)
    targets = result.get("targets") or {}
    bound = result.get("format_bound") or {}
    print(f"{'FIGURE':<32} {'RESULT':>10}  {'TARGET':<28} VERDICT")
    for name in targets:
        value = result.get(name, "-")
        print(f"{name:<32} {value!s:>10}  {targets[name]!s:<28} {verdicts[name].upper()}")
    if bound:
        print("\nReported, judged through the figure named (two sides doing different work):")
        for name, why in bound.items():
            print(f"{name:<32} {result.get(name, '-')!s:>10}  {why}")
    print()
    for k in sorted(result):
        if k not in verdicts and k not in ("targets", "format_bound"):
            print(f"{k:<32} {result[k]}")
    missed = [n for n in targets if verdicts[n] == "not met"]
    print(f"\n{len(targets) - len(missed)} of {len(targets)} targets met"
          + (f"; not met: {', '.join(missed)}" if missed else ""))
