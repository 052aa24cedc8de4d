"""Capture benchmark for ``akkoord bench``: the real PyAudio -> PortAudio -> ALSA path.

:func:`capture_bench` sets up a throw-away HOME with a file-backed ALSA microphone
(:mod:`akkoord.audio.virtual`) and measures in a subprocess (ALSA reads its configuration once
per process):

* start latency: from "open the microphone" (``AudioBackend.open_capture``) to the first block
  in the reader's hands, over repeated runs with one PortAudio instance kept alive, as in the
  daemon. The virtual device is paced to real time, so the first block arrives one buffer
  (``frames_per_buffer / rate``) after the stream starts, as it would from a real microphone;
* CPU time per second of audio captured at 48 kHz, the reader cutting 1 s segments (process CPU
  time of all threads, ``time.process_time``), and the same as a percentage of one core;
* peak RSS of that process (its own: VmHWM, not the parent's carried over by exec).

Sealing and storage are not included: the daemon's own benchmark adds those.
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["capture_bench"]

_MIC = "benchmic"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def capture_bench(
    *,
    runs: int = 20,
    seconds: float = 3.0,
    sample_rate: int = 48000,
    frames_per_buffer: int = 2400,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Run the capture benchmark in a subprocess; returns a JSON-ready dict (see module doc)."""
    from akkoord.audio.virtual import alsa_env, position_signal, write_asoundrc, write_raw

    with tempfile.TemporaryDirectory(prefix="akkoord-bench-") as tmp:
        home = Path(tmp)
        raw = write_raw(home / "mic.raw", position_signal(int((seconds + 2) * sample_rate)))
        write_asoundrc(home, mics={_MIC: raw})
        args = {
            "runs": runs,
            "seconds": seconds,
            "sample_rate": sample_rate,
            "frames_per_buffer": frames_per_buffer,
        }
        done = subprocess.run(
            [sys.executable, "-m", "akkoord.audio.bench", json.dumps(args)],
            env=alsa_env(home),
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(
            f"capture benchmark subprocess failed (exit {done.returncode}): {done.stderr[-2000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _own_peak_rss_kb() -> int:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across
    exec, so a child of a large process (a test run) would report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # no /proc: best effort


def _child(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.audio.backend import AudioBackend
    from akkoord.audio.config import AudioConfig
    from akkoord.audio.model import Block, End
    from akkoord.audio.segmenter import Segmenter

    rate = int(args["sample_rate"])
    config = AudioConfig(
        input_device=_MIC,
        sample_rate=rate,
        frames_per_buffer=int(args["frames_per_buffer"]),
        pace_realtime=True,
    )
    backend = AudioBackend(config)
    started = time.perf_counter()
    backend.start()
    init_ms = 1000 * (time.perf_counter() - started)

    latencies = []
    for _ in range(int(args["runs"])):
        requested = time.perf_counter()
        capture = backend.open_capture()
        first = capture.read(timeout=5.0)
        latencies.append(1000 * (time.perf_counter() - requested))
        if not isinstance(first, Block):
            raise RuntimeError(f"no first block from the virtual microphone, got {first!r}")
        capture.stop()
        while not isinstance(capture.read(timeout=5.0), End):
            pass

    # Steady state: measured from the first block on (opening costs are in the latency above).
    wanted = int(float(args["seconds"]) * rate)
    segmenter = Segmenter(config.segment_samples)
    capture = backend.open_capture()
    first = capture.read(timeout=5.0)
    if not isinstance(first, Block):
        raise RuntimeError(f"capture benchmark: expected audio, got {first!r}")
    segmenter.push(first)
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    samples = 0
    segments = 0
    while samples < wanted:
        item = capture.read(timeout=5.0)
        if not isinstance(item, Block):
            raise RuntimeError(f"capture benchmark: expected audio, got {item!r}")
        samples += item.samples
        segments += len(segmenter.push(item))
    cpu = time.process_time() - cpu_before
    wall = time.perf_counter() - wall_before
    capture.stop()
    segments += len(segmenter.flush())
    lost = capture.health().lost_samples
    backend.close()
    audio_seconds = samples / rate
    rss_kb = _own_peak_rss_kb()
    return {
        "capture_path": "PyAudio -> PortAudio -> ALSA file plugin (paced to real time)",
        "sample_rate": rate,
        "frames_per_buffer": config.frames_per_buffer,
        "portaudio_init_ms": round(init_ms, 1),
        "capture_start_runs": len(latencies),
        "capture_start_latency_ms_p50": round(_percentile(latencies, 50), 2),
        "capture_start_latency_ms_p95": round(_percentile(latencies, 95), 2),
        "capture_start_latency_ms_max": round(max(latencies), 2),
        "capture_audio_seconds": round(audio_seconds, 3),
        "capture_wall_seconds": round(wall, 3),
        "capture_segments": segments,
        "capture_lost_samples": lost,
        "capture_cpu_ms_per_audio_second": round(1000 * cpu / audio_seconds, 3),
        "capture_cpu_percent_of_core": round(100 * cpu / audio_seconds, 3),
        "capture_peak_rss_mb": round(rss_kb / 1024, 1),
    }


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
