"""The device configuration file (TOML): one loader, one dataclass per section.

Each section has its own parser next to the code it configures ([panel] in panel_config,
[audio] in audio.config); this module adds [store] and [export] and refuses unknown sections,
so a typo never silently becomes a default. Every error names the file, the key and the
problem.
"""

from __future__ import annotations

import datetime
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from akkoord.audio.config import AudioConfig, parse_audio_config
from akkoord.console.config import ConsoleConfig, parse_console_config
from akkoord.errors import ConfigError
from akkoord.panel_config import PanelConfig, default_config_path, parse_panel_config

__all__ = [
    "DEFAULT_PATH",
    "Config",
    "ExportConfig",
    "StoreConfig",
    "TrustConfig",
    "load_config",
    "parse_config",
]

DEFAULT_PATH = Path("/etc/akkoord/akkoord.toml")


@dataclass(frozen=True)
class StoreConfig:
    #: A recording does not start with less free space than this many minutes of audio.
    min_free_minutes: float = 30.0
    #: A running recording stops (reason "disk full") before free space drops below this.
    stop_free_minutes: float = 2.0
    #: Wall times before this date mean the clock was never set (fault CLOCK_UNSET).
    clock_floor: str = "2026-01-01"


@dataclass(frozen=True)
class ExportConfig:
    #: How long after a stop the content key stays in memory so copies can be made.
    window_seconds: float = 900.0
    #: A copy that takes longer than this is abandoned (a dying stick must not hang us).
    timeout_seconds: float = 300.0
    #: Where sticks are mounted (private, 0700).
    mount_root: str = "/run/akkoord/sticks"


@dataclass(frozen=True)
class TrustConfig:
    #: Organisation signing public keys (org-signing.pub) a verdict may be anchored to.
    org_signing_keys: tuple[str, ...] = ()
    #: The organisations' signed revocation lists.
    revocation_lists: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    source: str
    panel: PanelConfig = field(default_factory=PanelConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)


def _number(
    table: Mapping[str, Any], key: str, default: float, lo: float, hi: float, where: str
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} {key} = {value!r}: expected a number")
    if not lo <= value <= hi:
        raise ConfigError(f"{where} {key} = {value!r}: must be between {lo:g} and {hi:g}")
    return float(value)


def _only(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where} unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )


def _table(doc: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return value


def _store(table: Mapping[str, Any], source: str) -> StoreConfig:
    where = f"{source}: [store]"
    _only(table, {"min_free_minutes", "stop_free_minutes", "clock_floor"}, where)
    floor = table.get("clock_floor", StoreConfig.clock_floor)
    if isinstance(floor, datetime.date) and not isinstance(floor, datetime.datetime):
        floor = floor.isoformat()  # TOML's bare date: clock_floor = 2026-01-01
    try:
        if not isinstance(floor, str) or len(floor) != 10:
            raise ValueError
        datetime.date.fromisoformat(floor)
    except ValueError:
        raise ConfigError(
            f'{where} clock_floor = {floor!r}: not a date; expected YYYY-MM-DD, like "2026-01-01"'
        ) from None
    cfg = StoreConfig(
        _number(table, "min_free_minutes", StoreConfig.min_free_minutes, 0, 10_000, where),
        _number(table, "stop_free_minutes", StoreConfig.stop_free_minutes, 0, 1_000, where),
        floor,
    )
    if cfg.stop_free_minutes > cfg.min_free_minutes:
        raise ConfigError(f"{where} stop_free_minutes must not exceed min_free_minutes")
    return cfg


def _export(table: Mapping[str, Any], source: str) -> ExportConfig:
    where = f"{source}: [export]"
    _only(table, {"window_seconds", "timeout_seconds", "mount_root"}, where)
    root = table.get("mount_root", ExportConfig.mount_root)
    if not isinstance(root, str) or not root.startswith("/"):
        raise ConfigError(f"{where} mount_root = {root!r}: expected an absolute path")
    return ExportConfig(
        _number(table, "window_seconds", ExportConfig.window_seconds, 0, 86_400, where),
        _number(table, "timeout_seconds", ExportConfig.timeout_seconds, 5, 3_600, where),
        root,
    )


def _trust(table: Mapping[str, Any], source: str) -> TrustConfig:
    where = f"{source}: [trust]"
    _only(table, {"org_signing_keys", "revocation_lists"}, where)
    out = []
    for key in ("org_signing_keys", "revocation_lists"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{where} {key} = {value!r}: expected a list of file paths")
        out.append(tuple(value))
    return TrustConfig(*out)


def parse_config(doc: Mapping[str, Any], source: str) -> Config:
    _only(doc, {"panel", "audio", "store", "export", "console", "trust"}, f"{source}:")
    return Config(
        source=source,
        panel=parse_panel_config(_table(doc, "panel", source), source),
        audio=parse_audio_config(_table(doc, "audio", source), source),
        store=_store(_table(doc, "store", source), source),
        export=_export(_table(doc, "export", source), source),
        console=parse_console_config(_table(doc, "console", source), source),
        trust=_trust(_table(doc, "trust", source), source),
    )


def load_config(path: Path | None) -> Config:
    """`path` given: it must exist. Not given: /etc/akkoord/akkoord.toml, else the shipped
    defaults (assets/akkoord.toml)."""
    if path is None:
        path = DEFAULT_PATH if DEFAULT_PATH.exists() else default_config_path()
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(doc, str(path))
