"""The ``[panel]`` section of akkoord.toml: pins, timing, language, pin factory.

``parse_panel_config(table, source)`` turns the parsed TOML table into a frozen
:class:`PanelConfig`, or raises :class:`~akkoord.errors.ConfigError` naming the file, the key,
the value and the problem, e.g.::

    /etc/akkoord/akkoord.toml: [panel.pins] button_a = 2: GPIO2 is I2C SDA, used by the DS3231 RTC

Defaults here equal the shipped ``assets/akkoord.toml`` and ``hardware/PINMAP.md`` (tested).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from akkoord.consent import Timing
from akkoord.errors import ConfigError
from akkoord.prompts import Language

__all__ = [
    "BUZZER_KINDS",
    "PIN_FACTORIES",
    "RESERVED_PINS",
    "PanelConfig",
    "PanelPins",
    "default_config_path",
    "load_panel_config",
    "parse_panel_config",
]

#: BCM pins the panel must never claim, and why (the reason is the error message).
RESERVED_PINS: dict[int, str] = {
    0: "GPIO0 is ID_SD, reserved for the HAT ID EEPROM",
    1: "GPIO1 is ID_SC, reserved for the HAT ID EEPROM",
    2: "GPIO2 is I2C SDA, used by the DS3231 RTC",
    3: "GPIO3 is I2C SCL, used by the DS3231 RTC",
    14: "GPIO14 is UART TXD, used by the serial console",
    15: "GPIO15 is UART RXD, used by the serial console",
}
_BCM_MAX = 27  # the 40-pin header exposes BCM 0..27

PIN_FACTORIES = ("lgpio", "mock")
BUZZER_KINDS = ("tonal", "active", "none")


@dataclass(frozen=True)
class PanelPins:
    """BCM numbers. ``buzzer`` is None when there is no buzzer, ``power_fail`` when no UPS."""

    button_a: int = 17
    button_b: int = 27
    led_a: int = 22
    led_b: int = 23
    status_red: int = 24
    status_green: int = 25
    status_blue: int = 19
    buzzer: int | None = 18
    power_fail: int | None = None

    def assigned(self) -> dict[str, int]:
        """Key -> BCM number for every pin in use."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}


@dataclass(frozen=True)
class PanelConfig:
    pins: PanelPins = field(default_factory=PanelPins)
    timing: Timing = field(default_factory=Timing)
    #: Debounce filter for the buttons; a real press lasts far longer than 20 ms.
    bounce_s: float = 0.02
    #: Render period for LED patterns and chimes (25 Hz is smooth for a 3 s pulse).
    frame_s: float = 0.04
    language: Language = Language.NL
    pin_factory: str = "lgpio"
    buzzer: str = "tonal"
    #: True when a GPIO high lights the LED (transistor drivers, see hardware/WIRING.md).
    leds_active_high: bool = True
    #: True when the UPS drives its power-fail line high on mains loss (Geekworm X728 PLD).
    power_fail_active_high: bool = True
    #: Who sits at each button, as the panel labels, the copy's texts and the page name them
    #: (Dutch, and English for README.txt). Recorded in every recording's start event.
    role_a: str = "ouder / gezin"
    role_b: str = "professional"
    role_a_en: str = "parent / family"
    role_b_en: str = "professional"

    def roles(self) -> dict[str, dict[str, str]]:
        """{"A": {"nl", "en"}, "B": {...}}: the form the start event records."""
        return {"A": {"nl": self.role_a, "en": self.role_a_en},
                "B": {"nl": self.role_b, "en": self.role_b_en}}


# key -> (lower bound, upper bound, lower bound inclusive?)
_SECONDS: dict[str, tuple[float, float, bool]] = {
    "window_s": (0.0, 600.0, False),
    "hold_limit_s": (0.0, 60.0, False),
    "refractory_s": (0.0, 5.0, True),
    "copy_confirm_s": (0.0, 600.0, False),
    "bounce_s": (0.0, 0.5, True),
    "frame_s": (0.005, 0.25, True),
}
_STRINGS: dict[str, tuple[str, ...]] = {
    "language": tuple(lang.value for lang in Language),
    "pin_factory": PIN_FACTORIES,
    "buzzer": BUZZER_KINDS,
}
_BOOLS = ("leds_active_high", "power_fail_active_high")
_ROLES = ("role_a", "role_b", "role_a_en", "role_b_en")
_ROLE_MAX = 40  # fits a panel label and a line of LEESMIJ
_TOP_KEYS = frozenset({*_SECONDS, *_STRINGS, *_BOOLS, *_ROLES, "pins"})
_PIN_KEYS = tuple(f.name for f in fields(PanelPins))


def _fail(source: str, where: str, key: str, value: object, problem: str) -> ConfigError:
    shown = _toml_repr(value)
    return ConfigError(f"{source}: [{where}] {key} = {shown}: {problem}")


def _toml_repr(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _seconds(table: Mapping[str, Any], key: str, default: float, source: str) -> float:
    if key not in table:
        return default
    value = table[key]
    # bool is an int in Python; `window_s = true` is a mistake, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(source, "panel", key, value, "must be a number of seconds")
    low, high, inclusive = _SECONDS[key]
    if not ((value >= low if inclusive else value > low) and value <= high):
        bound = ">=" if inclusive else ">"
        raise _fail(source, "panel", key, value, f"must be {bound} {low:g} and <= {high:g}")
    return float(value)


def _pins(table: object, source: str) -> PanelPins:
    if table is None:
        return PanelPins()
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [panel] pins must be a table ([panel.pins])")
    for key in table:
        if key not in _PIN_KEYS:
            known = ", ".join(_PIN_KEYS)
            raise _fail(source, "panel.pins", key, table[key], f"unknown key (known: {known})")
    values: dict[str, int | None] = {}
    owner: dict[int, str] = {}
    for key in _PIN_KEYS:
        if key not in table:
            continue
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, "panel.pins", key, value, "must be a BCM GPIO number (integer)")
        if not 0 <= value <= _BCM_MAX:
            raise _fail(source, "panel.pins", key, value, f"BCM numbers run from 0 to {_BCM_MAX}")
        if value in RESERVED_PINS:
            raise _fail(source, "panel.pins", key, value, RESERVED_PINS[value])
        values[key] = value
    pins = PanelPins(**values)  # type: ignore[arg-type]
    # Duplicates are checked on the merged result, so a pin clashing with a default is caught.
    for key, value in pins.assigned().items():
        if value in owner:
            raise _fail(
                source, "panel.pins", key, value, f"GPIO{value} is already used by {owner[value]}"
            )
        owner[value] = key
    return pins


def parse_panel_config(table: Mapping[str, Any], source: str) -> PanelConfig:
    """Validate a parsed ``[panel]`` table (missing keys take defaults)."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [panel] must be a table")
    for key in table:
        if key not in _TOP_KEYS:
            known = ", ".join(sorted(_TOP_KEYS))
            raise _fail(source, "panel", key, table[key], f"unknown key (known: {known})")
    defaults = PanelConfig()
    timing_keys = ("window_s", "hold_limit_s", "refractory_s", "copy_confirm_s")
    default_seconds = {
        **{key: getattr(defaults.timing, key) for key in timing_keys},
        "bounce_s": defaults.bounce_s,
        "frame_s": defaults.frame_s,
    }
    seconds = {key: _seconds(table, key, default_seconds[key], source) for key in _SECONDS}
    strings: dict[str, str] = {}
    for key, allowed in _STRINGS.items():
        value = table.get(key, str(getattr(defaults, key)))
        if not isinstance(value, str) or value not in allowed:
            choices = " or ".join(f'"{a}"' for a in allowed)
            raise _fail(source, "panel", key, value, f"must be {choices}")
        strings[key] = value
    bools: dict[str, bool] = {}
    for key in _BOOLS:
        value = table.get(key, getattr(defaults, key))
        if not isinstance(value, bool):
            raise _fail(source, "panel", key, value, "must be true or false")
        bools[key] = value

    roles: dict[str, str] = {}
    for key in _ROLES:
        value = table.get(key, getattr(defaults, key))
        if (not isinstance(value, str) or not value.strip() or len(value) > _ROLE_MAX
                or not value.isprintable()):
            raise _fail(source, "panel", key, value,
                        f"must be a short name (1 to {_ROLE_MAX} characters), like "
                        '"ouder / gezin" or "professional"')
        roles[key] = value.strip()

    pins_table = table.get("pins")
    pins = _pins(pins_table, source)
    explicit_buzzer = isinstance(pins_table, Mapping) and "buzzer" in pins_table
    if strings["buzzer"] == "none":
        if explicit_buzzer:
            raise _fail(
                source, "panel.pins", "buzzer", pins.buzzer, 'set, but [panel] buzzer = "none"'
            )
        pins = replace(pins, buzzer=None)

    if not seconds["refractory_s"] < min(seconds["window_s"], seconds["hold_limit_s"]):
        raise _fail(
            source,
            "panel",
            "refractory_s",
            table["refractory_s"] if "refractory_s" in table else seconds["refractory_s"],
            "must be shorter than window_s and hold_limit_s",
        )
    return PanelConfig(
        pins=pins,
        timing=Timing(**{k: seconds[k] for k in timing_keys}),
        bounce_s=seconds["bounce_s"],
        frame_s=seconds["frame_s"],
        language=Language(strings["language"]),
        pin_factory=strings["pin_factory"],
        buzzer=strings["buzzer"],
        leds_active_high=bools["leds_active_high"],
        power_fail_active_high=bools["power_fail_active_high"],
        **roles,
    )


def default_config_path() -> Path:
    """The configuration shipped with the package (a template for /etc/akkoord/akkoord.toml)."""
    return Path(__file__).resolve().parent / "assets" / "akkoord.toml"


def load_panel_config(path: Path) -> PanelConfig:
    """Read a TOML file and parse its ``[panel]`` section."""
    try:
        with path.open("rb") as fh:
            document = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_panel_config(document.get("panel", {}), str(path))
