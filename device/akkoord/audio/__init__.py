"""Audio: microphone capture, the WAV simulator, the segmenter, and chimes/prompts playback.

Importing this package loads no audio library; PyAudio is imported where a device is opened.

The daemon's view::

    config = parse_audio_config(toml.get("audio", {}), path)
    backend = AudioBackend(config)         # or WavBackend(wav_path, config) for --simulate
    backend.start()                        # PortAudio up, microphone found (or HardwareError)
    source = backend.open_capture()        # only after both presses
    segmenter = Segmenter(config.segment_samples)
    while not isinstance(item := source.read(timeout=0.5), End):   # writer thread
        if item is not None:
            for out in segmenter.push(item): seal(out)    # Segment or Gap, in timeline order
    for out in segmenter.flush(): seal(out)
    if item.reason is EndReason.LOST: ...  # stop reason "microphone lost"
    source.health()                        # daemon loop: RUNNING / STALLED / LOST for the watchdog
    source.stop()                          # at stop; the writer then drains and sees End
    backend.probe_input()                  # poll while the "no microphone" fault shows

Decisions, in one place:

* Timeline: every item sits on the stream's sample clock (sample 0 = first captured sample).
  Blocks and disclosed gaps tile it; ``End.end_sample`` is the recording's length in samples.
  Segments are cut at multiples of ``segment_samples`` of that clock and before every gap.
* Gaps: a full queue drops whole blocks and says exactly how many samples (``estimated`` False);
  a driver overflow (``paInputOverflow``) is sized from ``input_buffer_adc_time`` or the
  monotonic clock (``estimated`` True, at least 1 sample).
* Pacing: ALSA's ``file`` plugin (tests, ``akkoord bench``) delivers as fast as it is read.
  ``[audio] pace_realtime = true`` makes the callback hold each block until its real time, so a
  virtual microphone behaves like a real one and a recording holds exactly the samples the file
  delivered, with no queue-full gaps. Real microphones leave it off. The WAV simulator is always
  paced (time injected for tests).
* Health: LOST = PortAudio ended the stream by itself (device pulled, driver error, callback
  failure); STALLED = stream active but no callback for ``stall_seconds`` (withhold the
  watchdog; ``stop`` then gives up after 2 s with a HardwareError).
"""

from akkoord.audio.backend import AudioBackend, sound_hardware_fingerprint
from akkoord.audio.bench import capture_bench
from akkoord.audio.capture import CaptureStream, estimate_overflow_samples
from akkoord.audio.config import SAMPLE_RATES, AudioConfig, parse_audio_config
from akkoord.audio.devices import DeviceInfo, choose_device, describe_devices
from akkoord.audio.model import (
    SAMPLE_WIDTH,
    AudioSource,
    Block,
    CaptureBackend,
    End,
    EndReason,
    Gap,
    GapCause,
    Item,
    Segment,
    SoundPlayer,
    SourceHealth,
    SourceState,
)
from akkoord.audio.segmenter import Segmenter
from akkoord.audio.wavsource import WavBackend, WavSource, check_wav

__all__ = [
    "SAMPLE_RATES",
    "SAMPLE_WIDTH",
    "AudioBackend",
    "AudioConfig",
    "AudioSource",
    "Block",
    "CaptureBackend",
    "CaptureStream",
    "DeviceInfo",
    "End",
    "EndReason",
    "Gap",
    "GapCause",
    "Item",
    "Segment",
    "Segmenter",
    "SoundPlayer",
    "SourceHealth",
    "SourceState",
    "WavBackend",
    "WavSource",
    "capture_bench",
    "check_wav",
    "choose_device",
    "describe_devices",
    "estimate_overflow_samples",
    "parse_audio_config",
    "sound_hardware_fingerprint",
]
