"""One source for who sits at which button: the configuration. The panel labels
(hardware/PLACEMENT.md), the demo, the shipped configuration and every recording agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from akkoord.errors import ConfigError
from akkoord.panel_config import PanelConfig, default_config_path, parse_panel_config
from akkoord.store.verify import verify_recording
from simkit import DEMO_WAV, provision, run_script, write_config

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = PanelConfig()


def test_shipped_configuration_names_the_default_roles():
    panel = tomllib.loads(default_config_path().read_text())["panel"]
    for key in ("role_a", "role_b", "role_a_en", "role_b_en"):
        assert panel[key] == getattr(DEFAULTS, key), key


def test_placement_labels_match_the_configuration():
    text = (ROOT / "hardware" / "PLACEMENT.md").read_text()
    rows = {m.group(1): m.group(2) for m in
            re.finditer(r"^\s*\| ([AB]) \| akkoord \| (.+?) · [AB] \|", text, re.M)}
    assert rows == {"A": DEFAULTS.role_a, "B": DEFAULTS.role_b}
    assert f'party A: "{DEFAULTS.role_a}"' in text and f'party B: "{DEFAULTS.role_b}"' in text


def test_the_demo_seats_people_as_the_labels_do():
    demo = (ROOT / "scripts" / "demo.py").read_text()
    a_line = next(line for line in demo.splitlines() if re.match(r"^a\s+#", line))
    b_line = next(line for line in demo.splitlines() if re.match(r"^b\s+#", line))
    assert "ouder" in a_line and "partij A" in a_line
    assert "professional" in b_line


@pytest.mark.parametrize("value", ["", "   ", "x" * 41, 3, "twee\nregels"])
def test_a_role_must_be_a_short_name(value):
    with pytest.raises(ConfigError, match=r"\[panel\] role_b"):
        parse_panel_config({"role_b": value}, "t.toml")


def test_every_recording_carries_the_roles_of_its_buttons(tmp_path):
    state, _ = provision(tmp_path)
    cfg = write_config(tmp_path / "c.toml", '[audio]\nsample_rate = 16000\n[panel]\n'
                       'role_a = "jongere"\nrole_a_en = "young person"\n')
    rc, events, err = run_script(state, "a\nb\nsleep 1.2\nb\nquit\n", "--config", str(cfg),
                                 "--audio-file", str(DEMO_WAV))
    assert rc == 0, err
    (started,) = [e for e in events if e["event"] == "recording_started"]
    rep = verify_recording(state.recording_dir(started["recording_id"]))
    (start,) = [e for e in rep.timeline if e["event"] == "start"]
    assert start["roles"] == {"A": {"nl": "jongere", "en": "young person"},
                              "B": {"nl": "professional", "en": "professional"}}
