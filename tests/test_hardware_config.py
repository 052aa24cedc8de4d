"""hardware/config.txt and the build notes carry the fixes checked against the vendors' and
Raspberry Pi's documentation (issue 12; sources in hardware/README.md)."""

from __future__ import annotations

from pathlib import Path

HARDWARE = Path(__file__).resolve().parent.parent / "hardware"


def sections() -> dict[str, list[str]]:
    """config.txt's active lines per [filter] section (comments dropped)."""
    out: dict[str, list[str]] = {}
    current = "all"
    for raw in (HARDWARE / "config.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            continue
        out.setdefault(current, []).append(line)
    return out


def test_pi5_console_is_on_the_header() -> None:
    s = sections()
    assert "dtparam=uart0_console" in s["pi5"]
    assert "enable_uart=1" in s["all"]


def test_one_rtc_overlay_per_model_never_two() -> None:
    for model, lines in sections().items():
        rtc = [x for x in lines if x.startswith("dtoverlay=i2c-rtc")]
        assert len(rtc) <= 1, (model, rtc)
    # The X728's DS1307 overlay is offered as an alternative, not switched on beside the DS3231.
    text = (HARDWARE / "config.txt").read_text()
    assert "#   dtoverlay=i2c-rtc,ds1307" in text


def test_pi5_usb_current_for_a_header_powered_pi() -> None:
    assert "usb_max_current_enable=1" in sections()["pi5"]


def test_wiring_names_each_transistor_pinout_and_the_power_fail_levels() -> None:
    wiring = (HARDWARE / "WIRING.md").read_text()
    assert "| 2N2222A" in wiring and "| E | B | C |" in wiring
    assert "| BC337" in wiring and "| C | B | E |" in wiring
    assert "3.3 V logic or an open-collector" in wiring
    assert "PLD jumper fitted" in wiring
    assert "Never power the module from 5 V" in wiring


def test_every_fix_names_its_source() -> None:
    readme = (HARDWARE / "README.md").read_text()
    sources = readme[readme.index("## Sources"):]
    for fact in ("uart0_console", "disable-bt", "mini-UART", "gpiochip", "X728",
                 "usb_max_current_enable", "2N2222A", "DS3231", "ReSpeaker", "noaudio",
                 "Zero 2 W", "drive"):  # fmt: skip
        assert fact in sources, fact
