"""Start PortAudio without the wall of ALSA and JACK messages it prints while probing devices.

Three measures, all reversible and local to the audio adapter:

* ALSA: ``snd_lib_error_set_handler`` with a no-op C callback, so alsa-lib stops printing
  "ALSA lib pcm.c:... Unknown PCM cards.pcm.rear" for every probe (and later errors). The ctypes
  callback object is kept alive at module level; freeing it would leave ALSA a dangling pointer.
* JACK: ``JACK_NO_START_SERVER=1`` so probing never tries to launch a JACK server.
* Whatever still goes straight to file descriptor 2 during ``PyAudio()`` (libjack's
  "Cannot connect to server socket") is captured in a temporary file instead, and logged at
  DEBUG level; fd 2 is restored afterwards. While that lasts (tens of milliseconds), other
  threads' stderr output is captured too and ends up in the same debug log line.

PortAudio's own "Expression '...' failed" lines on a device error at run time still reach
stderr: libportaudio does not export a way to redirect them, and they are rare and useful.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from akkoord.errors import HardwareError

if TYPE_CHECKING:
    import pyaudio

__all__ = ["PortAudioLock", "captured_stderr", "open_portaudio", "silence_alsa_errors"]

log = logging.getLogger(__name__)

# void (*)(const char *file, int line, const char *function, int err, const char *fmt, ...)
# The variadic tail is ignored; on the Linux ABIs we run on (x86-64, AArch64 LP64) a callee that
# ignores trailing arguments is safe.
_ALSA_ERROR_HANDLER = ctypes.CFUNCTYPE(
    None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p
)


def _ignore_alsa_error(
    _file: bytes | None, _line: int, _function: bytes | None, _err: int, _fmt: bytes | None
) -> None:
    return None


_noop_handler = _ALSA_ERROR_HANDLER(_ignore_alsa_error)
_handler_installed = False
_stderr_lock = threading.Lock()
_MAX_CAPTURED = 64 * 1024


def silence_alsa_errors() -> bool:
    """Install the no-op alsa-lib error handler (once per process). False if libasound is absent."""
    global _handler_installed
    if _handler_installed:
        return True
    name = ctypes.util.find_library("asound") or "libasound.so.2"
    try:
        asound = ctypes.CDLL(name)
        asound.snd_lib_error_set_handler.argtypes = [_ALSA_ERROR_HANDLER]
        asound.snd_lib_error_set_handler.restype = ctypes.c_int
        asound.snd_lib_error_set_handler(_noop_handler)
    except (OSError, AttributeError) as exc:
        log.debug("cannot silence ALSA messages (%s); continuing", exc)
        return False
    _handler_installed = True
    return True


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Send fd 2 to a temporary file for the duration; yields a list that gets the text."""
    captured: list[str] = []
    with _stderr_lock, tempfile.TemporaryFile() as sink:
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (daemonised without one): nothing to protect
            yield captured
            return
        try:
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read(_MAX_CAPTURED).decode("utf-8", "replace"))


def open_portaudio(*, quiet: bool = True) -> pyaudio.PyAudio:
    """``pyaudio.PyAudio()`` (Pa_Initialize + device probing), quietly unless ``quiet=False``."""
    import pyaudio

    if not quiet:
        return pyaudio.PyAudio()
    os.environ.setdefault("JACK_NO_START_SERVER", "1")
    silence_alsa_errors()
    instance: Any = None
    with captured_stderr() as text:
        instance = pyaudio.PyAudio()
    noise = "".join(text).strip()
    if noise:
        log.debug("PortAudio start-up printed (suppressed): %s", noise.replace("\n", " | "))
    return instance


class PortAudioLock:
    """Serialises PortAudio's open, close and (re)initialise calls across threads.

    PortAudio is not thread-safe for those, and the capture, the chime player and the device
    probe run in different threads. Waiting is bounded: a PortAudio call that never returns (a
    hung driver) must not freeze every other thread, so :meth:`hold` raises
    :class:`HardwareError` after ``timeout`` seconds instead.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, what: str) -> Iterator[None]:
        if not self._lock.acquire(timeout=self.timeout):
            raise HardwareError(
                f"audio: cannot {what}: PortAudio has been busy for over {self.timeout:g} s "
                "(an earlier call hangs). Restart akkoord."
            )
        try:
            yield
        finally:
            self._lock.release()
