"""Copy progress: reported in steps, shown on the button lights, and the way a pulled stick
stops the writing thread."""

from __future__ import annotations

import itertools

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from akkoord.consent import BREATHE, OFF, ON, Colour, Leds, StatusLight
from akkoord.export.progress import CopyCancelled, CopyProgress
from akkoord.panel import Panel
from akkoord.panel_config import PanelConfig


def test_progress_is_reported_in_steps_and_ends_at_one():
    seen: list[float] = []
    p = CopyProgress(16000 * 100, seen.append, step=0.05)
    for s in range(0, 16000 * 100 + 1, 16000):
        p(s)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and len(seen) == 21
    assert all(b - a >= 0.05 - 1e-9 for a, b in itertools.pairwise(seen))


def test_a_cancelled_copy_raises_from_its_progress():
    cancelled = {"now": False}
    p = CopyProgress(100, lambda f: None, cancelled=lambda: cancelled["now"])
    p(10)
    cancelled["now"] = True
    with pytest.raises(CopyCancelled):
        p(20)


def test_the_button_lights_fill_like_a_bar_then_the_next_state_takes_over():
    factory = MockFactory(pin_class=MockPWMPin)
    config = PanelConfig(pin_factory="mock")
    try:
        with Panel(config, pin_factory=factory, clock=lambda: 0.0) as panel:
            pins = config.pins
            panel.show(Leds(OFF, OFF, StatusLight(Colour.BLUE, BREATHE)), 0.0)
            levels = []
            for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
                panel.show_progress(fraction, 0.0)
                panel.render(0.0)
                levels.append((factory.pin(pins.led_a).state, factory.pin(pins.led_b).state))
            assert levels == [(0, 0), (0.5, 0), (1, 0), (1, 0.5), (1, 1)]
            panel.show(Leds(ON, OFF, StatusLight(Colour.CYAN, ON)), 1.0)  # copy made
            panel.render(1.0)
            assert factory.pin(pins.led_b).state == 0
    finally:
        factory.reset()
