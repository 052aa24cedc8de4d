"""Choosing devices by name substring (pure) and the quiet start-up helper (in-process)."""

from __future__ import annotations

import os

import pytest

from akkoord.audio.alsa import captured_stderr
from akkoord.audio.devices import DeviceInfo, choose_device
from akkoord.errors import HardwareError

DEVICES = [
    DeviceInfo(0, "bcm2835 Headphones: - (hw:0,0)", 0, 8, 44100.0, "ALSA"),
    DeviceInfo(1, "USB PnP Sound Device: Audio (hw:1,0)", 1, 0, 48000.0, "ALSA"),
    DeviceInfo(2, "Jabra SPEAK 410 USB: Audio (hw:2,0)", 1, 2, 16000.0, "ALSA"),
    DeviceInfo(3, "sysdefault", 128, 128, 44100.0, "ALSA"),
    DeviceInfo(4, "default", 128, 128, 44100.0, "ALSA"),
]


def ok(_device: DeviceInfo) -> str | None:
    return None


def test_first_substring_match_case_insensitive() -> None:
    assert choose_device(DEVICES, "usb", "input", ok, what="microphone").index == 1
    assert choose_device(DEVICES, "JABRA", "input", ok, what="microphone").index == 2


def test_exact_name_wins_over_earlier_substring_match() -> None:
    assert choose_device(DEVICES, "default", "input", ok, what="microphone").index == 4


def test_devices_without_channels_in_that_direction_are_skipped() -> None:
    assert choose_device(DEVICES, "hw:", "input", ok, what="microphone").index == 1
    assert choose_device(DEVICES, "hw:", "output", ok, what="speaker").index == 0


def test_device_refusing_the_format_is_passed_over() -> None:
    def only_48k(device: DeviceInfo) -> str | None:
        return None if device.default_sample_rate == 48000.0 else "refuses 48000 Hz"

    assert choose_device(DEVICES, "Audio", "input", only_48k, what="microphone").index == 1


def test_no_match_lists_the_input_devices_with_details() -> None:
    with pytest.raises(HardwareError) as caught:
        choose_device(DEVICES, "Blue Yeti", "input", ok, what="microphone")
    message = str(caught.value)
    assert "'Blue Yeti'" in message and "[audio] input_device" in message
    assert "[1] 'USB PnP Sound Device: Audio (hw:1,0)': 1 input channel(s), default 48000 Hz" in (
        message
    )
    assert "Headphones" not in message  # an output-only device is not offered as a microphone
    assert isinstance(caught.value, RuntimeError)


def test_format_refusal_says_why_and_suggests_a_plug_device() -> None:
    def refuse(device: DeviceInfo) -> str:
        return "refuses 48000 Hz, 1 channel(s), 16-bit"

    with pytest.raises(
        HardwareError, match=r"(?s)cannot do the required format.*refuses 48000.*plug"
    ):
        choose_device(DEVICES, "Jabra", "input", refuse, what="microphone")


def test_captured_stderr_takes_fd2_output_and_restores_it() -> None:
    with captured_stderr() as text:
        os.write(2, b"ALSA lib pcm.c: noise\n")
    assert text == ["ALSA lib pcm.c: noise\n"]
    # fd 2 is back where it was: writing to it again works and is not captured
    assert os.write(2, b"") == 0
