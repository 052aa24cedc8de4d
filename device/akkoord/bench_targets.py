"""Each bench figure against its target: met or not met, never left for the reader to work out.

Targets are written as `"<op> <number> (note)"` in `run_bench`'s `targets`; a figure missing
from the run (no ALSA, --quick skipping it) is `not measured`.
"""

from __future__ import annotations

import operator
import re
from typing import Any

__all__ = ["judge", "print_judged"]

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_TARGET = re.compile(r"^\s*(>=|<=|>|<)\s*([0-9.]+)")


def judge(result: dict[str, Any]) -> dict[str, str]:
    """{figure: "met" | "not met" | "not measured"} for every figure with a target."""
    verdicts = {}
    for name, target in (result.get("targets") or {}).items():
        m = _TARGET.match(str(target))
        value = result.get(name)
        if m is None or not isinstance(value, int | float):
            verdicts[name] = "not measured"
            continue
        ok = _OPS[m.group(1)](float(value), float(m.group(2)))
        verdicts[name] = "met" if ok else "not met"
    return verdicts


def print_judged(result: dict[str, Any]) -> None:
    verdicts = judge(result)
    targets = result.get("targets") or {}
    print(f"{'FIGURE':<32} {'RESULT':>10}  {'TARGET':<28} VERDICT")
    for name, verdict in verdicts.items():
        value = result.get(name, "-")
        print(f"{name:<32} {value!s:>10}  {targets[name]!s:<28} {verdict.upper()}")
    print()
    for k in sorted(result):
        if k not in verdicts and k != "targets":
            print(f"{k:<32} {result[k]}")
    missed = [n for n, v in verdicts.items() if v == "not met"]
    print(f"\\n{len(verdicts) - len(missed)} of {len(verdicts)} targets met"
          + (f"; not met: {', '.join(missed)}" if missed else ""))
