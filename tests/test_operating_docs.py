"""docs/OPERATING.md's fault card agrees with the code: every fault, its pattern, the order."""

from __future__ import annotations

import re
from pathlib import Path

from akkoord.consent import FAULT_PRIORITY, FAULT_SIGNALS, Fault
from test_hardware_docs import markdown_tables

OPERATING = Path(__file__).resolve().parent.parent / "docs" / "OPERATING.md"


def _card() -> list[dict[str, str]]:
    text = OPERATING.read_text(encoding="utf-8")
    card = text[text.index("## Fault card"):]
    (table,) = [t for t in markdown_tables(card) if t and "What you see" in t[0]]
    return table


def test_fault_card_names_every_fault_with_its_pattern() -> None:
    rows = _card()
    for fault, light in FAULT_SIGNALS.items():
        (row,) = [r for r in rows if f"`{fault.value}`" in r["What it means"]]
        seen = row["What you see"]
        assert light.colour.name.lower() in seen, fault
        m = re.fullmatch(r"code_(\d)", light.pattern.name)
        if m:
            n = int(m[1])
            assert f"{n} flash" in seen, (fault, seen)
        else:
            assert "fast" in seen, (fault, seen)
    assert {f.value for f in Fault} <= {
        v for r in rows for v in re.findall(r"`(\w+)`", r["What it means"])
    }


def test_fault_card_states_the_display_priority() -> None:
    text = OPERATING.read_text(encoding="utf-8")
    order = [int(m[1]) for f in FAULT_PRIORITY
             if (m := re.fullmatch(r"code_(\d)", FAULT_SIGNALS[f].pattern.name))]  # fmt: skip
    assert f"(order: {', '.join(map(str, order))} flashes" in " ".join(text.split())
