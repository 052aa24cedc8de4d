"""The WAV stand-in microphone, with injected time (no real waiting)."""

from __future__ import annotations

import array
import threading
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from akkoord.audio.config import AudioConfig
from akkoord.audio.model import Block, End, EndReason, SourceState
from akkoord.audio.resample import pcm_to_samples, samples_to_pcm
from akkoord.audio.virtual import position_signal
from akkoord.audio.wavsource import WavBackend, WavSource
from akkoord.errors import HardwareError, UsageError

RATE = 16000
N = 160  # 10 ms blocks


class FakeTime:
    """clock() and wait(): wait advances the clock (as if that much time had passed)."""

    def __init__(self) -> None:
        self.now = 500.0
        self.waited: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        self.now += seconds
        return False


def write_wav(path: Path, samples: array.array[int], rate: int = RATE, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples_to_pcm(samples))
    return path


def source(path: Path, fake: FakeTime) -> WavSource:
    config = AudioConfig(sample_rate=RATE, frames_per_buffer=N)
    return WavSource(path, config, clock=fake.clock, wait=fake.wait)


def test_delivers_the_files_samples_paced_at_real_time(tmp_path: Path) -> None:
    signal = position_signal(10 * N)
    fake = FakeTime()
    src = source(write_wav(tmp_path / "a.wav", signal), fake)
    start = fake.now
    got = bytearray()
    for k in range(10):
        block = src.read()
        assert isinstance(block, Block)
        assert block.start_sample == k * N
        # handed out exactly when its last sample would have been spoken
        assert fake.now == pytest.approx(start + (k + 1) * N / RATE)
        got += block.pcm
    assert bytes(got) == samples_to_pcm(signal)
    assert src.health().state is SourceState.RUNNING


def test_silence_after_the_end_of_the_file(tmp_path: Path) -> None:
    fake = FakeTime()
    src = source(write_wav(tmp_path / "a.wav", position_signal(N + 10)), fake)
    _first, second, third = src.read(), src.read(), src.read()
    assert isinstance(second, Block) and isinstance(third, Block)
    assert second.pcm[20:] == bytes(2 * (N - 10))
    assert third.pcm == bytes(2 * N)


def test_read_timeout_returns_none_before_the_block_is_due(tmp_path: Path) -> None:
    fake = FakeTime()
    src = source(write_wav(tmp_path / "a.wav", position_signal(4 * N)), fake)
    assert src.read(timeout=0.001) is None
    assert fake.waited == [0.001]
    assert isinstance(src.read(timeout=1.0), Block)


def test_stop_delivers_what_was_due_then_end(tmp_path: Path) -> None:
    signal = position_signal(10 * N)
    fake = FakeTime()
    src = source(write_wav(tmp_path / "a.wav", signal), fake)
    src.read()
    fake.now += 1.5 * N / RATE  # the consumer is late by 1.5 blocks, then stop is pressed
    src.stop()
    rest: list[Any] = []
    while not isinstance(item := src.read(), End):
        rest.append(item)
    assert [(b.start_sample, b.samples) for b in rest] == [(N, N), (2 * N, N // 2)]
    assert item == End(2 * N + N // 2, EndReason.STOPPED)
    assert src.read() == item
    assert rest[-1].pcm == samples_to_pcm(signal[2 * N : 2 * N + N // 2])
    assert src.health().state is SourceState.IDLE


def test_stop_from_another_thread_wakes_a_waiting_read(tmp_path: Path) -> None:
    # real time: the first block (16384 frames at 16 kHz) is due only after 1.024 s
    config = AudioConfig(sample_rate=RATE, frames_per_buffer=16384)
    src = WavSource(write_wav(tmp_path / "a.wav", position_signal(N)), config)
    results: list[object] = []
    started = time.monotonic()
    reader = threading.Thread(target=lambda: results.append(src.read()))
    reader.start()
    src.stop()
    reader.join(10)
    assert time.monotonic() - started < 1.0  # did not sit out the block
    (item,) = results
    assert isinstance(item, Block | End)
    if isinstance(item, Block):  # what was due by the stop, then the end
        assert item.samples < 16384
        assert isinstance(src.read(), End)


def test_stereo_is_mixed_and_other_rates_converted(tmp_path: Path) -> None:
    stereo = array.array("h")
    for i in range(2 * N):
        stereo += array.array("h", [1000 + i, 3000 + i])
    fake = FakeTime()
    src = source(write_wav(tmp_path / "s.wav", stereo, channels=2), fake)
    block = src.read()
    assert isinstance(block, Block)
    assert list(pcm_to_samples(block.pcm))[:3] == [2000, 2001, 2002]

    fake = FakeTime()
    src = source(write_wav(tmp_path / "r.wav", array.array("h", [0, 100] * N), rate=8000), fake)
    block = src.read()
    assert isinstance(block, Block) and block.samples == N  # 8 kHz became 16 kHz
    assert list(pcm_to_samples(block.pcm))[:4] == [0, 50, 100, 50]


def test_unsupported_files_are_refused_with_a_way_out(tmp_path: Path) -> None:
    path = tmp_path / "8bit.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(RATE)
        wav.writeframes(bytes(100))
    config = AudioConfig(sample_rate=RATE)
    with pytest.raises(UsageError, match=r"8-bit.*sox"):
        WavSource(path, config)
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(UsageError, match="not a readable PCM WAV"):
        WavSource(tmp_path / "junk.wav", config)
    with pytest.raises(UsageError, match="not found"):
        WavSource(tmp_path / "missing.wav", config)


def test_backend_unplug_loses_the_capture_and_plug_brings_it_back(tmp_path: Path) -> None:
    fake = FakeTime()
    config = AudioConfig(sample_rate=RATE, frames_per_buffer=N)
    backend = WavBackend(
        write_wav(tmp_path / "a.wav", position_signal(10 * N)),
        config,
        clock=fake.clock,
        wait=fake.wait,
    )
    assert "a.wav" in backend.start().name
    capture = backend.open_capture()
    assert isinstance(capture.read(), Block)
    fake.now += N / RATE  # one more block is due when the cable is pulled
    backend.unplug()
    assert capture.health().state is SourceState.LOST
    assert not capture.health().healthy
    block, end = capture.read(), capture.read()
    assert isinstance(block, Block) and block.start_sample == N
    assert isinstance(end, End) and end.reason is EndReason.LOST and end.end_sample == 2 * N
    capture.stop()
    assert capture.health().state is SourceState.IDLE
    assert backend.probe_input() is None
    with pytest.raises(HardwareError, match="unplugged"):
        backend.open_capture()
    backend.plug()
    assert backend.probe_input() is not None
    again = backend.open_capture()
    first = again.read()
    assert isinstance(first, Block) and first.start_sample == 0  # the file from its start
    assert backend.play_pcm(b"\0\0", RATE) is False  # no speaker in simulation: a no-op
