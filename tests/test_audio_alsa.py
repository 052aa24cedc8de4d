"""The real capture path: PyAudio -> PortAudio -> ALSA, fed from raw files by ALSA's file plugin.

ALSA reads its configuration once per process, so every scenario runs in a subprocess with
HOME pointing at a temporary .asoundrc (akkoord.audio.virtual). The scenarios are functions in
this file, run as ``python tests/test_audio_alsa.py SCENARIO JSON``; each prints one JSON
result. The input files hold a position-identifying signal, so a block that equals the file at
its stated position proves both its samples and its position, and the blocks after a gap prove
the gap's length.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from akkoord.audio.virtual import alsa_env, position_signal, write_asoundrc, write_raw

pytestmark = pytest.mark.alsa

RATE = 48000
FILE_SAMPLES = 10 * RATE  # longer than anything a scenario reads (past its end: stale data)


# --------------------------------------------------------------------------- parent side


@pytest.fixture(scope="module")
def main_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("alsa-main")
    write_raw(home / "mic.raw", position_signal(FILE_SAMPLES))
    write_asoundrc(
        home,
        mics={"filemic": home / "mic.raw"},
        speakers={"filespk": home / "spk.raw"},
        default="filemic",
    )
    return home


def run_child(home: Path, scenario: str, **args: Any) -> tuple[dict[str, Any], str]:
    args.setdefault("home", str(home))
    done = subprocess.run(
        [sys.executable, __file__, scenario, json.dumps(args)],
        env=alsa_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{scenario} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def assert_tiles(items: list[list[Any]]) -> None:
    """Blocks and gaps start where the previous item ended; the End closes the timeline."""
    position = 0
    for kind, start, length, *_ in items[:-1]:
        assert kind in ("B", "G")
        assert start == position, items
        position += length
    assert items[-1][0] == "E"
    assert items[-1][1] == position


def assert_no_library_noise(stderr: str) -> None:
    """Nothing from ALSA, JACK or PortAudio (akkoord's own log lines may appear)."""
    for marker in ("ALSA lib", "jack", "Jack", "Expression '", "PortAudio"):
        assert marker not in stderr, stderr


def blocks(items: list[list[Any]]) -> list[list[Any]]:
    return [i for i in items if i[0] == "B"]


def gaps(items: list[list[Any]]) -> list[list[Any]]:
    return [i for i in items if i[0] == "G"]


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("rate", [48000, 16000])
def test_paced_capture_delivers_exactly_the_file(main_home: Path, rate: int) -> None:
    result, stderr = run_child(main_home, "paced", seconds=0.4, rate=rate)
    items = result["items"]
    assert_tiles(items)
    assert not gaps(items)
    assert all(b[3] is True for b in blocks(items)), "a block differs from the file"
    assert items[0][:2] == ["B", 0]
    delivered = sum(b[2] for b in blocks(items))
    assert delivered >= 0.4 * rate
    assert items[-1][2] == "stopped"
    # paced to real time: 0.4 s of audio took about 0.4 s (unpaced it takes under 1 ms)
    assert result["wall"] >= 0.35
    assert result["health_after"]["state"] == "idle"
    assert_no_library_noise(stderr)


def test_unpaced_capture_blocks_match_file_at_their_positions(main_home: Path) -> None:
    result, stderr = run_child(main_home, "unpaced", samples=3 * RATE)
    items = result["items"]
    assert_tiles(items)
    in_file = [b for b in blocks(items) if b[1] + b[2] <= FILE_SAMPLES]
    assert sum(b[2] for b in in_file) >= RATE  # a real amount was compared
    assert all(b[3] is True for b in in_file)
    # whatever the consumer could not keep is disclosed as an exact, queue-full gap
    for g in gaps(items):
        assert g[3] is False and g[4] == "queue_full"
    assert_no_library_noise(stderr)


def test_full_queue_becomes_exact_gap_and_stream_survives(main_home: Path) -> None:
    result, _ = run_child(main_home, "queue_full")
    items = result["items"]
    assert_tiles(items)
    fpb, capacity_blocks, held = result["fpb"], result["capacity_blocks"], result["held_at"]
    first_gap = gaps(items)[0]
    # the queue held `capacity_blocks`; every later block up to the held callback was dropped
    assert first_gap[1] == capacity_blocks * fpb
    assert first_gap[2] == (held - 1 - capacity_blocks) * fpb
    assert first_gap[3] is False and first_gap[4] == "queue_full"
    # after the consumer caught up, audio flows again, at the right positions
    after = [b for b in blocks(items) if b[1] >= first_gap[1] + first_gap[2]]
    assert len(after) >= 5
    assert all(b[3] is True for b in blocks(items) if b[1] + b[2] <= FILE_SAMPLES)
    assert result["lost_samples"] == sum(g[2] for g in gaps(items))


def test_hung_callback_is_stalled_then_running_again(main_home: Path) -> None:
    result, _ = run_child(main_home, "stall")
    assert result["before"]["state"] == "running"
    assert result["during"]["state"] == "stalled"
    assert result["during"]["since_last_callback"] > result["stall_seconds"]
    assert result["during"]["healthy"] is False
    assert result["after"]["state"] == "running"


def test_stop_of_a_hung_stream_gives_up_with_a_clear_error(main_home: Path) -> None:
    result, _ = run_child(main_home, "hung_stop")
    assert result["error_type"] == "HardwareError"
    assert "hangs" in result["error"] and "Restart akkoord" in result["error"]
    assert result["end"][2] == "lost" and result["end"][3] == "stream hung"
    assert result["closer_finished_after_release"] is True


def test_callback_failure_ends_stream_as_lost(main_home: Path) -> None:
    result, _ = run_child(main_home, "callback_error")
    items = result["items"]
    assert_tiles(items)
    assert items[-1][2] == "lost"
    assert "RuntimeError: injected" in items[-1][3]
    assert result["health"]["state"] == "lost"
    assert all(b[3] is True for b in blocks(items))


def test_device_chosen_by_substring_and_missing_one_listed(main_home: Path) -> None:
    result, _ = run_child(main_home, "devices")
    assert result["by_substring"] == "filemic"  # "FILEm" matches case-insensitively
    assert result["exact"] == "default"
    message = result["missing_error"]
    assert "'nosuchmic'" in message
    assert "'filemic'" in message and "'default'" in message
    assert "input channel" in message and "Hz" in message
    assert result["missing_error_type"] == "HardwareError"


def test_stream_is_open_only_while_recording(main_home: Path) -> None:
    result, _ = run_child(main_home, "open_close")
    assert result["before"] == 0, "the microphone file is open before recording"
    assert result["during"] == 1
    assert result["after"] == 0, "the microphone file is still open after stop"
    assert result["health_after_stop"] == ["idle", None]
    assert result["second_recording_first_block"] == 0


def test_playback_reaches_the_speaker_and_missing_speaker_is_no_op(main_home: Path) -> None:
    result, stderr = run_child(main_home, "playback")
    assert result["played"] is True
    assert result["spk_matches"] is True
    assert result["wav_played"] is True
    assert result["no_speaker"] is False
    assert result["missing_speaker"] is False
    assert "sound not played" in stderr  # the log line for the missing speaker
    assert_no_library_noise(stderr)


def test_startup_noise_is_silenced(main_home: Path) -> None:
    _, quiet = run_child(main_home, "init", quiet=True)
    _, noisy = run_child(main_home, "init", quiet=False)
    assert "ALSA lib" in noisy  # without the helper ALSA does print: this test can fail
    assert quiet == ""


def test_microphone_pulled_mid_recording_is_lost(tmp_path: Path) -> None:
    """The file plugin's write of the captured copy fails (RLIMIT_FSIZE) and PortAudio's ALSA
    backend ends the stream, as it does when a USB microphone is pulled."""
    write_raw(tmp_path / "mic.raw", position_signal(FILE_SAMPLES))
    write_asoundrc(
        tmp_path, mics={"filemic": tmp_path / "mic.raw"}, capture_copy=tmp_path / "copy.raw"
    )
    result, _ = run_child(tmp_path, "pulled", limit_bytes=RATE)
    items = result["items"]
    assert_tiles(items)
    assert items[-1][2] == "lost"
    assert result["health"]["state"] == "lost"
    assert result["health"]["healthy"] is False
    delivered = sum(b[2] for b in blocks(items))
    assert 0 < delivered <= RATE  # some audio came, then the device failed
    assert all(b[3] is True for b in blocks(items))
    assert result["stop_ok"] is True
    # the daemon's probe finds it again, and the next recording works
    assert result["probe_after_loss"] == "filemic"
    assert result["next_recording"] == ["B", 0, 480, True]


def test_microphone_plugged_back_is_found_by_probe(tmp_path: Path) -> None:
    write_asoundrc(tmp_path, mics={"filemic": tmp_path / "mic.raw"})  # file absent: unplugged
    result, _ = run_child(tmp_path, "replug", raw=str(tmp_path / "mic.raw"))
    assert result["start_error_type"] == "HardwareError"
    assert "'filemic'" in result["start_error"] or "no input devices" in result["start_error"]
    assert result["probe_before"] is None
    assert result["probe_after"] == "filemic"
    assert result["first_block_matches"] is True


# --------------------------------------------------------------------------- child side


def _raw(args: dict[str, Any]) -> bytes:
    return (Path(args["home"]) / "mic.raw").read_bytes()


def _describe(items: list[Any], raw: bytes) -> list[list[Any]]:
    from akkoord.audio.model import Block, End, Gap

    out: list[list[Any]] = []
    for item in items:
        if isinstance(item, Block):
            lo, hi = 2 * item.start_sample, 2 * item.end_sample
            matches = item.pcm == raw[lo:hi] if hi <= len(raw) else None
            out.append(["B", item.start_sample, item.samples, matches])
        elif isinstance(item, Gap):
            out.append(["G", item.start_sample, item.samples, item.estimated, item.cause.label])
        elif isinstance(item, End):
            out.append(["E", item.end_sample, item.reason.value, item.detail])
    return out


def _drain(source: Any, deadline: float = 10.0) -> list[Any]:
    from akkoord.audio.model import End

    items = []
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        item = source.read(timeout=0.1)
        if item is None:
            continue
        items.append(item)
        if isinstance(item, End):
            return items
    raise AssertionError("the source never ended")


def _health(source: Any) -> dict[str, Any]:
    h = source.health()
    return {
        "state": h.state.value,
        "since_last_callback": h.since_last_callback,
        "healthy": h.healthy,
        "lost": h.lost_samples,
    }


def _backend(**config: Any) -> Any:
    from akkoord.audio.backend import AudioBackend
    from akkoord.audio.config import AudioConfig

    clock = config.pop("clock", time.monotonic)
    config.setdefault("input_device", "filemic")
    return AudioBackend(AudioConfig(**config), clock=clock)


def child_paced(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.audio.model import Block

    rate = args["rate"]
    backend = _backend(sample_rate=rate, frames_per_buffer=rate // 100, pace_realtime=True)
    backend.start()
    started = time.monotonic()
    capture = backend.open_capture()
    items = []
    got = 0
    while got < args["seconds"] * rate:
        item = capture.read(timeout=2.0)
        assert isinstance(item, Block), item
        items.append(item)
        got += item.samples
    wall = time.monotonic() - started
    capture.stop()
    items += _drain(capture)
    return {"items": _describe(items, _raw(args)), "wall": wall, "health_after": _health(capture)}


def child_unpaced(args: dict[str, Any]) -> dict[str, Any]:
    backend = _backend(frames_per_buffer=480, queue_seconds=5.0)
    capture = backend.open_capture()
    items = []
    position = 0
    while position < args["samples"]:
        item = capture.read(timeout=2.0)
        assert item is not None
        items.append(item)
        position = item.end_sample
    capture.stop()
    items += _drain(capture)
    return {"items": _describe(items, _raw(args))}


def child_queue_full(args: dict[str, Any]) -> dict[str, Any]:
    fpb, capacity_blocks, held_at = 480, 10, 30
    full, resume = threading.Event(), threading.Event()
    calls = 0

    def hook() -> None:
        nonlocal calls
        calls += 1
        if calls == held_at:
            full.set()
            resume.wait(10)

    backend = _backend(frames_per_buffer=fpb, queue_seconds=capacity_blocks * fpb / RATE)
    capture = backend.open_capture(callback_hook=hook)
    assert full.wait(10)
    items = [capture.read(timeout=1.0) for _ in range(capacity_blocks + 1)]  # blocks + the gap
    resume.set()
    for _ in range(20):
        items.append(capture.read(timeout=2.0))
    capture.stop()
    items += _drain(capture)
    return {
        "items": _describe(items, _raw(args)),
        "fpb": fpb,
        "capacity_blocks": capacity_blocks,
        "held_at": held_at,
        "lost_samples": capture.health().lost_samples,
    }


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def child_stall(args: dict[str, Any]) -> dict[str, Any]:
    clock = _FakeClock()
    entered, release, resumed = threading.Event(), threading.Event(), threading.Event()
    calls = 0

    def hook() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            entered.set()
            release.wait(10)
        elif calls > 5:
            resumed.set()

    stall_seconds = 2.0
    backend = _backend(frames_per_buffer=480, stall_seconds=stall_seconds, clock=clock)
    capture = backend.open_capture(callback_hook=hook)
    before = _health(capture)
    assert entered.wait(10)
    clock.now += stall_seconds + 1.0  # the callback has now hung for 3 s
    during = _health(capture)
    release.set()
    assert resumed.wait(10)
    after = _health(capture)
    capture.stop()
    return {"before": before, "during": during, "after": after, "stall_seconds": stall_seconds}


def child_hung_stop(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.audio.model import End
    from akkoord.errors import AkkoordError

    entered, release = threading.Event(), threading.Event()
    calls = 0

    def hook() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            entered.set()
            release.wait(10)

    backend = _backend(frames_per_buffer=480)
    capture = backend.open_capture(callback_hook=hook)
    assert entered.wait(10)
    try:
        capture.stop(timeout=0.2)
    except AkkoordError as exc:
        error, error_type = str(exc), type(exc).__name__
    items = _drain(capture)
    release.set()  # the hung callback returns; PortAudio's stop can now finish
    closer = [t for t in threading.enumerate() if t.name == "akkoord-capture-close"]
    for thread in closer:
        thread.join(10)
    assert isinstance(items[-1], End)
    return {
        "error": error,
        "error_type": error_type,
        "end": _describe(items[-1:], _raw(args))[0],
        "closer_finished_after_release": all(not t.is_alive() for t in closer),
    }


def child_callback_error(args: dict[str, Any]) -> dict[str, Any]:
    calls = 0

    def hook() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("injected")

    backend = _backend(frames_per_buffer=480, pace_realtime=True)
    capture = backend.open_capture(callback_hook=hook)
    items = _drain(capture)
    health = _health(capture)
    capture.stop()
    return {"items": _describe(items, _raw(args)), "health": health}


def child_devices(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.errors import AkkoordError

    by_substring = _backend(input_device="FILEm").start().name
    exact = _backend(input_device="default").start().name
    try:
        _backend(input_device="nosuchmic").start()
    except AkkoordError as exc:
        error, error_type = str(exc), type(exc).__name__
    return {
        "by_substring": by_substring,
        "exact": exact,
        "missing_error": error,
        "missing_error_type": error_type,
    }


def _open_count(path: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                count += 1
        except OSError:
            pass
    return count


def child_open_close(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.audio.model import Block

    raw = Path(args["home"]) / "mic.raw"
    backend = _backend(frames_per_buffer=480, pace_realtime=True)
    backend.start()
    before = _open_count(raw)
    capture = backend.open_capture()
    assert isinstance(capture.read(timeout=2.0), Block)
    during = _open_count(raw)
    capture.stop()
    _drain(capture)
    after = _open_count(raw)
    health = capture.health()
    again = backend.open_capture()
    first = again.read(timeout=2.0)
    again.stop()
    return {
        "before": before,
        "during": during,
        "after": after,
        "health_after_stop": [health.state.value, health.since_last_callback],
        "second_recording_first_block": first.start_sample,
    }


def child_playback(args: dict[str, Any]) -> dict[str, Any]:
    import wave

    from akkoord.audio.resample import samples_to_pcm

    home = Path(args["home"])
    pcm = samples_to_pcm(position_signal(12345))
    backend = _backend(output_device="filespk")
    played = backend.play_pcm(pcm, 48000)
    spk = (home / "spk.raw").read_bytes()
    wav_path = home / "prompt.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(samples_to_pcm(position_signal(2205)))
    wav_played = backend.play_wav(wav_path)
    return {
        "played": played,
        "spk_matches": spk[: len(pcm)] == pcm and not any(spk[len(pcm) :]),
        "wav_played": wav_played,
        "no_speaker": _backend().play_pcm(pcm, 48000),
        "missing_speaker": _backend(output_device="nosuchspeaker").play_pcm(pcm, 48000),
    }


def child_init(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.audio.alsa import open_portaudio

    pa = open_portaudio(quiet=args["quiet"])
    count = pa.get_device_count()
    pa.terminate()
    return {"devices": count}


def child_pulled(args: dict[str, Any]) -> dict[str, Any]:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    backend = _backend(frames_per_buffer=480)
    backend.start()
    limit = args["limit_bytes"]
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    capture = backend.open_capture()
    items = _drain(capture)
    health = _health(capture)
    capture.stop()
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    found = backend.probe_input()
    again = backend.open_capture()
    first = again.read(timeout=2.0)
    again.stop()
    return {
        "items": _describe(items, _raw(args)),
        "health": health,
        "stop_ok": capture.closed,
        "probe_after_loss": found.name if found else None,
        "next_recording": _describe([first], _raw(args))[0],
    }


def child_replug(args: dict[str, Any]) -> dict[str, Any]:
    from akkoord.audio.backend import AudioBackend
    from akkoord.audio.config import AudioConfig
    from akkoord.audio.model import Block
    from akkoord.errors import AkkoordError

    raw = Path(args["raw"])
    backend = AudioBackend(
        AudioConfig(input_device="filemic", frames_per_buffer=480),
        hardware_fingerprint=raw.exists,  # stands in for /proc/asound/cards changing
    )
    try:
        backend.start()
    except AkkoordError as exc:
        error, error_type = str(exc), type(exc).__name__
    probe_before = backend.probe_input()
    write_raw(raw, position_signal(RATE))
    found = backend.probe_input()
    capture = backend.open_capture()
    first = capture.read(timeout=2.0)
    capture.stop()
    assert isinstance(first, Block)
    return {
        "start_error": error,
        "start_error_type": error_type,
        "probe_before": probe_before,
        "probe_after": found.name if found else None,
        "first_block_matches": first.pcm == raw.read_bytes()[: len(first.pcm)],
    }


if __name__ == "__main__":
    scenario = globals()[f"child_{sys.argv[1]}"]
    print(json.dumps(scenario(json.loads(sys.argv[2]))))
