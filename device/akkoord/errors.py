"""One exception root; each subclass also inherits the builtin it resembles.

Every message says what happened, where, and (when it helps) what to do.
The CLI maps the classes to exit codes.
"""

from __future__ import annotations

__all__ = [
    "AkkoordError",
    "ConfigError",
    "FormatError",
    "HardwareError",
    "KeyMaterialError",
    "NoRecipientError",
    "StorageError",
    "UsageError",
]


class AkkoordError(Exception):
    """Root of every error akkoord raises on purpose."""


class UsageError(AkkoordError, ValueError):
    """The command line or a request was not well-formed."""


class ConfigError(AkkoordError, ValueError):
    """A configuration value is missing or invalid; the message names the key."""


class FormatError(AkkoordError, ValueError):
    """Input is not a readable akkoord file (wrong type, version, or unparseable)."""


class KeyMaterialError(AkkoordError):
    """A key is missing, malformed, of the wrong kind, or does not fit."""


class NoRecipientError(KeyMaterialError):
    """No organisation key is configured, so a recording would be unreadable or unprotected."""


class StorageError(AkkoordError, OSError):
    """Writing or syncing stored data failed; the file concerned is not trusted afterwards."""

    def __str__(self) -> str:
        # The message, without OSError's "[Errno 5] " prefix: it is read by people.
        return self.strerror if self.strerror else super().__str__()


class HardwareError(AkkoordError, RuntimeError):
    """A device (microphone, GPIO pin, stick) is missing or misbehaves."""
