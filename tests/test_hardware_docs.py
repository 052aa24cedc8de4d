"""hardware/ agrees with the code: pin map vs. shipped configuration, signals vs. tables."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from akkoord.consent import FAULT_PRIORITY, FAULT_SIGNALS, Fault, State
from akkoord.panel_config import RESERVED_PINS, PanelPins, default_config_path
from akkoord.prompts import TEXTS, Language, PromptId
from akkoord.sounds import CHIMES, ChimeName

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = ROOT / "hardware"


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every pipe table in a markdown text, as lists of {header: cell} rows."""
    tables: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines) - 1:
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            header = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells, strict=True)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def pinmap_rows() -> list[dict[str, str]]:
    tables = markdown_tables((HARDWARE / "PINMAP.md").read_text(encoding="utf-8"))
    (table,) = [t for t in tables if t and "Config key" in t[0]]
    return table


def shipped_pins() -> dict[str, int]:
    with default_config_path().open("rb") as fh:
        return tomllib.load(fh)["panel"]["pins"]


def test_pinmap_matches_the_shipped_configuration() -> None:
    documented = {row["Config key"].strip("`"): int(row["BCM"]) for row in pinmap_rows()}
    assert documented == shipped_pins()


def test_shipped_configuration_matches_code_defaults() -> None:
    # The only difference: the optional UPS input, off in code, on in the shipped file.
    assert PanelPins(**shipped_pins()) == PanelPins(power_fail=6)


def test_pinmap_header_pins_are_right() -> None:
    board = MockFactory().board_info  # gpiozero's own 40-pin header data
    for row in pinmap_rows():
        ((_, info),) = list(board.find_pin(f"GPIO{row['BCM']}"))
        assert int(row["Header pin"]) == info.number, row


def test_pinmap_avoids_reserved_pins_and_duplicates() -> None:
    used = [int(row["BCM"]) for row in pinmap_rows()]
    assert len(used) == len(set(used))
    assert not set(used) & set(RESERVED_PINS)
    assert all(0 <= p <= 27 for p in used)


def test_reserved_table_matches_the_code() -> None:
    tables = markdown_tables((HARDWARE / "PINMAP.md").read_text(encoding="utf-8"))
    (reserved,) = [t for t in tables if t and "Why" in t[0]]
    assert {int(r["BCM"]) for r in reserved} == set(RESERVED_PINS)


@pytest.fixture(scope="module")
def signals() -> str:
    return (HARDWARE / "SIGNALS.md").read_text(encoding="utf-8")


def test_signals_names_every_state_chime_and_prompt(signals: str) -> None:
    for name in [*State, *ChimeName, *PromptId]:
        assert f"`{name.value}`" in signals, name


def test_signals_fault_table_matches_fault_patterns(signals: str) -> None:
    (faults,) = [t for t in markdown_tables(signals) if t and "Fault" in t[0]]
    rows = {r["Fault"].strip("`"): r for r in faults}
    assert set(rows) == {f.value for f in Fault}
    for fault, light in FAULT_SIGNALS.items():
        cell = rows[fault.value]["Status light"]
        assert light.colour.name.lower() in cell and f"`{light.pattern.name}`" in cell, fault
    # Listed in display priority order.
    assert [r["Fault"].strip("`") for r in faults] == [f.value for f in FAULT_PRIORITY]


def test_signals_chime_and_prompt_tables_match_the_code(signals: str) -> None:
    tables = markdown_tables(signals)
    (chimes,) = [t for t in tables if t and "Notes" in t[0]]
    for row in chimes:
        notes = CHIMES[ChimeName(row["Chime"].strip("`"))]
        described = ", ".join(
            ("rest" if f is None else f"{f:g} Hz") + f" {d * 1000:g} ms" for f, d in notes
        )
        assert row["Notes"] == described, row
    (prompts,) = [t for t in tables if t and "Nederlands" in t[0]]
    for row in prompts:
        texts = TEXTS[PromptId(row["Prompt"].strip("`"))]
        assert row["Nederlands"] == texts[Language.NL]
        assert row["English"] == texts[Language.EN]


def test_config_txt_has_the_needed_lines() -> None:
    lines = {
        line.strip()
        for line in (HARDWARE / "config.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    for needed in (
        "dtparam=i2c_arm=on",
        "dtoverlay=i2c-rtc,ds3231",
        "enable_uart=1",
        "dtoverlay=dwc2",
        "[pi02]",
        "[pi5]",
    ):
        assert needed in lines, needed
    # The boot-time pin states name the same pins as the map.
    pins = shipped_pins()
    outputs = {pins[k] for k in ("led_a", "led_b", "status_red", "status_green", "status_blue")}
    gpio_out = next(line for line in lines if line.startswith("gpio=") and "op,dl" in line)
    listed = {int(p) for p in gpio_out.removeprefix("gpio=").split("=")[0].split(",")}
    assert outputs <= listed


def test_hardware_folder_is_complete() -> None:
    for name in (
        "README.md",
        "BOM.md",
        "PINMAP.md",
        "WIRING.md",
        "SIGNALS.md",
        "PLACEMENT.md",
        "config.txt",
    ):
        assert (HARDWARE / name).is_file(), name
    bom = (HARDWARE / "BOM.md").read_text(encoding="utf-8")
    for part in ("DS3231", "arcade", "piezo", "speakerphone", "UPS", "nclosure", "Ohm"):
        assert part.lower() in bom.lower(), part
