"""Virtual sound devices through ALSA's ``file`` plugin, for tests, benchmarks and development.

The real capture path (PyAudio -> PortAudio -> ALSA) reads a raw file instead of a microphone.
ALSA reads its configuration once per process, from ``$HOME/.asoundrc``: so write a home with
:func:`write_asoundrc` and run the code under test in a *subprocess* with :func:`alsa_env`.

What the plugin does (alsa-lib 1.2.8, seen here), and what it means for tests:

* Reads are not paced: a whole file comes back as fast as the callback returns. Set
  ``pace_realtime = true`` to behave like a microphone, or read a known number of samples from an
  unpaced stream with a queue large enough to hold them.
* Past the end of ``infile`` the stream keeps going with *stale buffer contents* (not silence):
  make the raw file longer than anything a test or benchmark reads.
* A missing ``infile`` makes the device list with 0 input channels: "microphone unplugged".
  Creating the file and re-initialising PortAudio plugs it back in.
* Capture also *writes* what it captured to ``file``; when that write fails (``/dev/full``, or
  ``RLIMIT_FSIZE`` reached) PortAudio's ALSA backend ends the stream, exactly as it does when a
  USB microphone is pulled: a real "microphone lost".
"""

from __future__ import annotations

import array
import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["alsa_env", "position_signal", "write_asoundrc", "write_raw"]

_SPEAKER = """
pcm.{name} {{
  type file
  slave.pcm "null"
  file "{file}"
  format "raw"
}}
"""

_MIC = """
pcm.{name} {{
  type file
  slave.pcm "null"
  file "{capture_copy}"
  infile "{infile}"
  format "raw"
}}
"""

_DEFAULT = """
pcm.!default {{
  type plug
  slave.pcm "{name}"
}}
"""


def write_asoundrc(
    home: Path,
    *,
    mics: Mapping[str, Path] | None = None,
    speakers: Mapping[str, Path] | None = None,
    default: str | None = None,
    capture_copy: Path | str = "/dev/null",
) -> Path:
    """``home/.asoundrc`` with file-backed microphones (name -> raw S16_LE input file) and
    speakers (name -> file receiving what is played). ``default`` names the ALSA default PCM."""
    parts = [
        _MIC.format(name=name, infile=Path(infile).absolute(), capture_copy=capture_copy)
        for name, infile in (mics or {}).items()
    ]
    parts += [
        _SPEAKER.format(name=name, file=Path(file).absolute())
        for name, file in (speakers or {}).items()
    ]
    if default is not None:
        parts.append(_DEFAULT.format(name=default))
    home.mkdir(parents=True, exist_ok=True)
    path = home / ".asoundrc"
    path.write_text("".join(parts))
    return path


def alsa_env(home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a subprocess that should see ``home/.asoundrc`` (and import akkoord)."""
    env = dict(os.environ if base is None else base)
    env["HOME"] = str(home)
    env["JACK_NO_START_SERVER"] = "1"
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    return env


def position_signal(count: int, start: int = 0) -> array.array[int]:
    """A signal whose value identifies its position (mod 65521): a shifted or dropped sample
    shows up in a comparison, unlike a sine wave's repeating values."""
    return array.array("h", (((i * 40503) % 65521) - 32760 for i in range(start, start + count)))


def write_raw(path: Path, samples: array.array[int]) -> Path:
    """Write samples as raw signed 16-bit little-endian PCM."""
    data = array.array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    path.write_bytes(data.tobytes())
    return path
