"""Chimes as data and their PCM rendering."""

from __future__ import annotations

import array
import itertools
import math

import pytest

from akkoord.sounds import CHIMES, MAX_HZ, MIN_HZ, ChimeName, chime_duration, render_pcm


def test_every_chime_defined_distinct_and_in_buzzer_range() -> None:
    assert set(CHIMES) == set(ChimeName)
    assert len(set(CHIMES.values())) == len(CHIMES)
    for name, notes in CHIMES.items():
        assert notes and notes[0][0] is not None, name  # starts with a sound, not a gap
        assert 0.1 <= chime_duration(name) <= 1.5, name
        for frequency, duration in notes:
            assert duration > 0
            assert frequency is None or MIN_HZ <= frequency <= MAX_HZ


def test_fault_is_the_lowest_chime() -> None:
    def lowest(name: ChimeName) -> float:
        return min(f for f, _ in CHIMES[name] if f is not None)

    assert all(lowest(ChimeName.FAULT) <= lowest(n) for n in ChimeName)


@pytest.mark.parametrize("rate", [16_000, 48_000])
def test_render_length_and_level(rate: int) -> None:
    pcm = render_pcm(ChimeName.RECORDING_START, sample_rate=rate, volume=0.5)
    samples = array.array("h", pcm)
    assert len(pcm) == 2 * len(samples)
    assert len(samples) == pytest.approx(chime_duration(ChimeName.RECORDING_START) * rate, abs=5)
    assert 0.45 * 32767 <= max(samples) <= 0.5 * 32767 + 1
    assert samples[0] == 0  # faded in: no click


def test_rests_render_as_silence() -> None:
    pcm = array.array("h", render_pcm([(None, 0.1)], sample_rate=8000))
    assert len(pcm) == 800 and not any(pcm)


def test_render_frequency() -> None:
    rate = 16_000
    samples = array.array("h", render_pcm([(1000.0, 0.5)], sample_rate=rate))
    crossings = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    assert crossings == pytest.approx(500, abs=2)
    assert math.isclose(max(samples), 0.5 * 32767, rel_tol=0.01)


def test_render_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        render_pcm(ChimeName.CONSENT, sample_rate=0)
    with pytest.raises(ValueError):
        render_pcm(ChimeName.CONSENT, volume=1.5)
    with pytest.raises(ValueError):
        render_pcm([(440.0, -1.0)])
