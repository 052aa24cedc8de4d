"""The [panel] configuration: defaults, the shipped file, and every kind of bad value."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.consent import Timing
from akkoord.errors import AkkoordError, ConfigError
from akkoord.panel_config import (
    RESERVED_PINS,
    PanelConfig,
    PanelPins,
    default_config_path,
    load_panel_config,
    parse_panel_config,
)
from akkoord.prompts import Language

SRC = "/etc/akkoord/akkoord.toml"


def fails(table: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_panel_config(table, SRC)
    return str(info.value)


def test_empty_table_gives_defaults() -> None:
    config = parse_panel_config({}, SRC)
    assert config == PanelConfig()
    assert config.timing == Timing(window_s=20.0, hold_limit_s=5.0)
    assert config.language is Language.NL
    assert config.pin_factory == "lgpio"


def test_shipped_file_parses() -> None:
    config = load_panel_config(default_config_path())
    assert config.pins == PanelPins(power_fail=6)
    assert config.timing == Timing()
    assert config.buzzer == "tonal"
    with default_config_path().open("rb") as fh:
        document = tomllib.load(fh)
    assert "panel" in document  # other sections belong to their own parsers


def test_full_table() -> None:
    config = parse_panel_config(
        {
            "pin_factory": "mock",
            "language": "en",
            "window_s": 30,
            "hold_limit_s": 4.5,
            "refractory_s": 0.8,
            "copy_confirm_s": 90,
            "bounce_s": 0,
            "frame_s": 0.02,
            "buzzer": "active",
            "leds_active_high": False,
            "power_fail_active_high": False,
            "pins": {"button_a": 5, "button_b": 6, "power_fail": 26},
        },
        SRC,
    )
    assert config.timing == Timing(30.0, 4.5, 0.8, 90.0)
    assert config.language is Language.EN
    assert config.pins.button_a == 5 and config.pins.power_fail == 26
    assert config.pins.led_a == 22  # unspecified pins keep their defaults
    assert isinstance(config.timing.window_s, float)
    assert not config.leds_active_high and not config.power_fail_active_high


def test_i2c_pin_message_names_file_key_value_and_reason() -> None:
    message = fails({"pins": {"button_a": 2}})
    assert message == f"{SRC}: [panel.pins] button_a = 2: GPIO2 is I2C SDA, used by the DS3231 RTC"


@pytest.mark.parametrize("pin", sorted(RESERVED_PINS))
def test_reserved_pins_are_refused(pin: int) -> None:
    message = fails({"pins": {"led_b": pin}})
    assert f"led_b = {pin}: {RESERVED_PINS[pin]}" in message


def test_reserved_reasons() -> None:
    assert "EEPROM" in RESERVED_PINS[0] and "EEPROM" in RESERVED_PINS[1]
    assert "I2C" in RESERVED_PINS[3] and "UART" in RESERVED_PINS[14]
    assert "serial console" in RESERVED_PINS[15]


@pytest.mark.parametrize("pin", [-1, 28, 40, 1000])
def test_out_of_range(pin: int) -> None:
    assert "BCM numbers run from 0 to 27" in fails({"pins": {"buzzer": pin}})


@pytest.mark.parametrize("value", ["17", 17.0, True, [17], {"bcm": 17}])
def test_pin_types(value: object) -> None:
    assert "must be a BCM GPIO number (integer)" in fails({"pins": {"button_a": value}})


def test_duplicate_pins() -> None:
    message = fails({"pins": {"button_a": 5, "button_b": 5}})
    assert message == f"{SRC}: [panel.pins] button_b = 5: GPIO5 is already used by button_a"


def test_duplicate_with_a_default_pin() -> None:
    message = fails({"pins": {"power_fail": 22}})
    assert "power_fail = 22: GPIO22 is already used by led_a" in message


def test_unknown_keys() -> None:
    assert "[panel] windows_s = 20: unknown key" in fails({"windows_s": 20})
    assert "[panel.pins] button_c = 5: unknown key" in fails({"pins": {"button_c": 5}})


def test_pins_must_be_a_table() -> None:
    assert "[panel.pins]" in fails({"pins": 17})


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("window_s", "20", "must be a number of seconds"),
        ("window_s", True, "must be a number of seconds"),
        ("window_s", 0, "must be > 0"),
        ("window_s", -5, "must be > 0"),
        ("window_s", 601, "<= 600"),
        ("hold_limit_s", 0, "must be > 0"),
        ("refractory_s", -0.1, "must be >= 0"),
        ("copy_confirm_s", 0, "must be > 0"),
        ("bounce_s", 1, "<= 0.5"),
        ("frame_s", 0.001, ">= 0.005"),
        ("language", "de", 'must be "nl" or "en"'),
        ("language", 1, 'must be "nl" or "en"'),
        ("pin_factory", "rpigpio", 'must be "lgpio" or "mock"'),
        ("buzzer", "loud", 'must be "tonal" or "active" or "none"'),
        ("leds_active_high", "yes", "must be true or false"),
        ("power_fail_active_high", 1, "must be true or false"),
    ],
)
def test_bad_values(key: str, value: object, problem: str) -> None:
    message = fails({key: value})
    assert message.startswith(f"{SRC}: [panel] {key} = ")
    assert problem in message


def test_refractory_must_be_shorter_than_window_and_hold() -> None:
    message = fails({"refractory_s": 3, "hold_limit_s": 2})
    assert "refractory_s = 3: must be shorter than window_s and hold_limit_s" in message


def test_buzzer_none() -> None:
    assert parse_panel_config({"buzzer": "none"}, SRC).pins.buzzer is None
    assert 'set, but [panel] buzzer = "none"' in fails({"buzzer": "none", "pins": {"buzzer": 18}})


def test_config_error_is_a_value_error_and_an_akkoord_error() -> None:
    with pytest.raises(ValueError):
        parse_panel_config({"window_s": 0}, SRC)
    with pytest.raises(AkkoordError):
        parse_panel_config({"window_s": 0}, SRC)


def test_load_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[panel\nwindow_s = 3\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_panel_config(bad)
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_panel_config(tmp_path / "missing.toml")
    good = tmp_path / "good.toml"
    good.write_text('[panel]\nlanguage = "en"\n[panel.pins]\nbutton_a = 5\n')
    config = load_panel_config(good)
    assert config.language is Language.EN and config.pins.button_a == 5
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[panel.pins]\nbutton_a = 14\n")
    with pytest.raises(ConfigError, match=r"wrong\.toml: \[panel\.pins\] button_a = 14: .*UART"):
        load_panel_config(wrong)


toml_values = st.one_of(
    st.integers(-5, 40),
    st.floats(-1, 1000, allow_nan=False),
    st.booleans(),
    st.text(alphabet="anlemock", max_size=6),
    st.sampled_from(["nl", "en", "mock", "lgpio", "tonal", "active", "none"]),
)
keys = st.sampled_from(
    ["window_s", "hold_limit_s", "refractory_s", "copy_confirm_s", "bounce_s", "frame_s",
     "language", "pin_factory", "buzzer", "leds_active_high", "power_fail_active_high", "bogus"]
)  # fmt: skip
pin_keys = st.sampled_from(
    ["button_a", "button_b", "led_a", "led_b", "status_red", "status_green", "status_blue",
     "buzzer", "power_fail", "bogus"]
)  # fmt: skip


@settings(max_examples=300)
@given(st.dictionaries(keys, toml_values), st.dictionaries(pin_keys, toml_values))
def test_any_table_parses_or_says_why(top: dict[str, Any], pins: dict[str, Any]) -> None:
    table = {**top, "pins": pins}
    try:
        config = parse_panel_config(table, SRC)
    except ConfigError as exc:
        assert str(exc).startswith(f"{SRC}: [panel")
        return
    used = list(config.pins.assigned().values())
    assert len(used) == len(set(used))
    assert not set(used) & set(RESERVED_PINS)
    assert all(0 <= p <= 27 for p in used)
