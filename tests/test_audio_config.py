"""[audio] configuration: defaults, valid values, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from akkoord.audio.config import AudioConfig, parse_audio_config
from akkoord.errors import ConfigError

SOURCE = "/etc/akkoord/akkoord.toml"


def test_empty_table_gives_defaults() -> None:
    config = parse_audio_config({}, SOURCE)
    assert config == AudioConfig()
    assert config.sample_rate == 48000
    assert config.output_device is None
    assert config.segment_samples == 48000
    assert config.queue_samples == 10 * 48000


def test_full_table() -> None:
    config = parse_audio_config(
        {
            "input_device": " USB ",
            "output_device": "Jabra",
            "sample_rate": 16000,
            "frames_per_buffer": 800,
            "queue_seconds": 5,
            "segment_seconds": 2.0,
            "pace_realtime": True,
            "stall_seconds": 3,
        },
        SOURCE,
    )
    assert config.input_device == "USB"
    assert config.output_device == "Jabra"
    assert config.segment_samples == 32000
    assert config.block_seconds == 0.05
    assert config.pace_realtime is True
    assert config.stall_seconds == 3.0


def test_empty_output_device_means_no_speaker() -> None:
    assert parse_audio_config({"output_device": ""}, SOURCE).output_device is None


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"sample_rate": 44100}, "sample_rate", "48000 or 16000"),
        ({"sample_rate": "48000"}, "sample_rate", "whole number"),
        ({"sample_rate": True}, "sample_rate", "whole number"),
        ({"frames_per_buffer": 10}, "frames_per_buffer", "64 to 16384"),
        ({"queue_seconds": 0}, "queue_seconds", "out of range"),
        ({"queue_seconds": 0.1, "frames_per_buffer": 4800}, "queue_seconds", "two blocks"),
        ({"queue_seconds": float("nan")}, "queue_seconds", "finite"),
        ({"segment_seconds": 60}, "segment_seconds", "0.1 to 10"),
        ({"segment_seconds": "1s"}, "segment_seconds", "number of seconds"),
        ({"pace_realtime": "yes"}, "pace_realtime", "true or false"),
        ({"stall_seconds": 0.01}, "stall_seconds", "two blocks"),
        ({"input_device": ""}, "input_device", "must name"),
        ({"input_device": 3}, "input_device", "must be text"),
        ({"output_device": ["a"]}, "output_device", "must be text"),
    ],
)
def test_invalid_values_name_file_key_and_problem(
    table: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_audio_config(table, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}: [audio] {key}")
    assert words in message


def test_unknown_key_is_an_error_listing_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) sample_rte.*sample_rate"):
        parse_audio_config({"sample_rte": 48000}, SOURCE)
