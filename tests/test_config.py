"""The configuration file: the shipped one loads; every mistake names the key and problem."""

from __future__ import annotations

import pytest

from akkoord.config import load_config
from akkoord.errors import ConfigError
from akkoord.panel_config import default_config_path


def _load(tmp_path, text):
    p = tmp_path / "akkoord.toml"
    p.write_text(text)
    return load_config(p)


def test_shipped_configuration_loads_with_its_documented_values():
    c = load_config(default_config_path())
    assert c.audio.sample_rate == 48000 and c.audio.input_device == "USB"
    assert c.store.min_free_minutes == 30 and c.export.window_seconds == 900
    assert c.panel.timing.window_s == 20


def test_empty_file_takes_defaults(tmp_path):
    c = _load(tmp_path, "")
    assert c.store.stop_free_minutes == 2 and c.export.mount_root == "/run/akkoord/sticks"


@pytest.mark.parametrize("text, words", [
    ("[stroe]\n", ["unknown key 'stroe'"]),
    ("[store]\nmin_free_minute = 3\n", ["[store]", "min_free_minute"]),
    ("[store]\nmin_free_minutes = \"lots\"\n", ["min_free_minutes", "expected a number"]),
    ("[store]\nmin_free_minutes = 1\nstop_free_minutes = 5\n", ["stop_free_minutes"]),
    ("[store]\nclock_floor = 2026\n", ["clock_floor"]),
    ("[export]\nwindow_seconds = -1\n", ["window_seconds", "between"]),
    ("[export]\nmount_root = \"sticks\"\n", ["mount_root", "absolute"]),
    ("[audio]\nsample_rate = 44100\n", ["sample_rate"]),
    ("[panel.pins]\nbutton_a = 2\n", ["button_a", "I2C"]),
    ("store = 3\n", ["[store] must be a table"]),
    ("[store\n", ["not valid TOML"]),
])
def test_mistakes_name_the_file_key_and_problem(tmp_path, text, words):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    assert str(tmp_path / "akkoord.toml") in message
    for w in words:
        assert w in message, message


def test_an_explicit_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml")
