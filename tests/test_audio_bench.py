"""The capture benchmark runs through the real path and reports sane numbers."""

from __future__ import annotations

import pytest

from akkoord.audio.bench import capture_bench


@pytest.mark.alsa
def test_capture_bench_reports_latency_cpu_and_rss() -> None:
    result = capture_bench(runs=3, seconds=0.5)
    assert result["capture_start_runs"] == 3
    block_ms = 1000 * result["frames_per_buffer"] / result["sample_rate"]
    # paced like a microphone: the first block cannot come before one block of audio exists
    assert (
        block_ms <= result["capture_start_latency_ms_p50"] <= result["capture_start_latency_ms_p95"]
    )
    assert result["capture_audio_seconds"] >= 0.5
    assert result["capture_lost_samples"] == 0
    assert 0 < result["capture_cpu_percent_of_core"] < 100
    assert 10 < result["capture_peak_rss_mb"] < 500


@pytest.mark.alsa
def test_peak_rss_is_the_benchmark_process_own_not_its_parents() -> None:
    """Whatever ran before in this pytest process (test_daemon_alsa.py peaks near 1.2 GB),
    the benchmark reports the memory of its own subprocess."""
    ballast = bytearray(300 << 20)
    ballast[::4096] = bytes([1]) * len(range(0, len(ballast), 4096))  # touch every page
    result = capture_bench(runs=1, seconds=0.2)
    del ballast
    assert 10 < result["capture_peak_rss_mb"] < 200
