"""PCM helpers: channel conversion and the streaming linear resampler."""

from __future__ import annotations

import array
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.audio.resample import (
    LinearResampler,
    downmix_to_mono,
    pcm_to_samples,
    resample,
    samples_to_pcm,
    to_channels,
)

samples16 = st.lists(st.integers(-32768, 32767), max_size=400)
rates = st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000])


@settings(max_examples=150, deadline=None)
@given(values=samples16, src=rates, dst=rates, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_streaming_equals_one_shot_and_length_is_right(
    values: list[int], src: int, dst: int, cuts: list[int]
) -> None:
    signal = array.array("h", values)
    whole = resample(signal, src, dst)
    streamed = array.array("h")
    resampler = LinearResampler(src, dst)
    edges = sorted({0, len(signal), *(c for c in cuts if c <= len(signal))})
    for lo, hi in itertools.pairwise(edges):
        streamed += resampler.process(signal[lo:hi])
    assert streamed == whole
    if signal:
        # output k sits at source position k*src/dst, up to the last input sample
        assert len(whole) == (len(signal) - 1) * dst // src + 1
        assert whole[0] == signal[0]
        assert min(signal) <= min(whole) and max(whole) <= max(signal)


def test_same_rate_is_identity() -> None:
    signal = array.array("h", [1, -2, 3])
    assert resample(signal, 16000, 16000) == signal


def test_doubling_interpolates_midpoints() -> None:
    assert list(resample(array.array("h", [0, 100, 0]), 8000, 16000)) == [0, 50, 100, 50, 0]


def test_channels_round_trip() -> None:
    mono = samples_to_pcm(array.array("h", [5, -7, 32767, -32768]))
    stereo = to_channels(mono, 2)
    assert list(pcm_to_samples(stereo)) == [5, 5, -7, -7, 32767, 32767, -32768, -32768]
    assert downmix_to_mono(stereo, 2) == mono
