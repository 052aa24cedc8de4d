"""Find the configured microphone and speaker among PortAudio's devices, by name substring.

ALSA card numbers move between boots (the USB microphone is card 1 one day and card 2 the
next), so configuration names a *part of the device name* ("USB", "Jabra"). The choice itself is
pure (:func:`choose_device` over :class:`DeviceInfo` values); the PyAudio calls are in
:func:`list_devices` and :func:`find_input_device` / :func:`find_output_device`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from akkoord.errors import HardwareError

if TYPE_CHECKING:
    import pyaudio

__all__ = [
    "DeviceInfo",
    "choose_device",
    "describe_devices",
    "find_input_device",
    "find_output_device",
    "list_devices",
    "output_format",
]

Direction = Literal["input", "output"]


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float
    host_api: str = ""

    def channels(self, direction: Direction) -> int:
        return self.max_input_channels if direction == "input" else self.max_output_channels


def describe_devices(devices: Sequence[DeviceInfo], direction: Direction) -> str:
    """One line per device of that direction: name, index, max channels, default rate."""
    usable = [d for d in devices if d.channels(direction) > 0]
    if not usable:
        return f"  (no {direction} devices at all)"
    return "\n".join(
        f"  [{d.index}] {d.name!r}: {d.channels(direction)} {direction} channel(s), "
        f"default {d.default_sample_rate:g} Hz" + (f", {d.host_api}" if d.host_api else "")
        for d in usable
    )


def choose_device(
    devices: Sequence[DeviceInfo],
    wanted: str,
    direction: Direction,
    supports: Callable[[DeviceInfo], str | None],
    *,
    what: str,
) -> DeviceInfo:
    """The device whose name contains ``wanted`` (case-insensitive) and supports the format.

    An exact name match is preferred; otherwise the first match in PortAudio's order.
    ``supports(device)`` returns None when the format works, else the reason it does not.
    Raises :class:`HardwareError` naming the problem and listing the devices there are.
    """
    needle = wanted.casefold()
    usable = [d for d in devices if d.channels(direction) > 0]
    matches = [d for d in usable if needle in d.name.casefold()]
    matches.sort(key=lambda d: d.name.casefold() != needle)  # exact match first; sort is stable
    refusals: list[str] = []
    for device in matches:
        reason = supports(device)
        if reason is None:
            return device
        refusals.append(f"  [{device.index}] {device.name!r}: {reason}")
    listing = describe_devices(devices, direction)
    if not matches:
        raise HardwareError(
            f"{what}: no {direction} device has {wanted!r} in its name. "
            f"Connect the device, or set [audio] {direction}_device to part of one of these "
            f"names:\n{listing}"
        )
    raise HardwareError(
        f"{what}: the {direction} device(s) matching {wanted!r} cannot do the required format:\n"
        + "\n".join(refusals)
        + "\nUse a device that can (an ALSA 'plug' device such as 'default' converts formats); "
        f"{direction} devices here:\n{listing}"
    )


def list_devices(pa: pyaudio.PyAudio) -> list[DeviceInfo]:
    """Every device PortAudio found at its last initialisation."""
    host_apis: dict[int, str] = {}
    for i in range(pa.get_host_api_count()):
        info = pa.get_host_api_info_by_index(i)
        host_apis[int(info["index"])] = str(info["name"])
    devices = []
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        devices.append(
            DeviceInfo(
                index=int(info["index"]),
                name=str(info["name"]),
                max_input_channels=int(info["maxInputChannels"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_sample_rate=float(info["defaultSampleRate"]),
                host_api=host_apis.get(int(info["hostApi"]), ""),
            )
        )
    return devices


def _format_check(
    pa: pyaudio.PyAudio, direction: Direction, rate: int, channels: int
) -> Callable[[DeviceInfo], str | None]:
    import pyaudio

    def supports(device: DeviceInfo) -> str | None:
        if device.channels(direction) < channels:
            return f"has {device.channels(direction)} {direction} channel(s), {channels} needed"
        kwargs: dict[str, int] = {
            f"{direction}_device": device.index,
            f"{direction}_channels": channels,
            f"{direction}_format": pyaudio.paInt16,
        }
        try:
            pa.is_format_supported(rate, **kwargs)
        except ValueError as exc:
            detail = exc.args[0] if exc.args else exc
            return f"refuses {rate} Hz, {channels} channel(s), 16-bit ({detail})"
        return None

    return supports


def find_input_device(pa: pyaudio.PyAudio, wanted: str, rate: int) -> DeviceInfo:
    """The microphone: mono 16-bit at ``rate``, or :class:`HardwareError` listing inputs."""
    return choose_device(
        list_devices(pa), wanted, "input", _format_check(pa, "input", rate, 1), what="microphone"
    )


def find_output_device(pa: pyaudio.PyAudio, wanted: str) -> DeviceInfo:
    """The speaker (any output device matching ``wanted``); the format is chosen when playing."""

    def has_output(device: DeviceInfo) -> str | None:
        return None if device.max_output_channels > 0 else "has no output channels"

    return choose_device(list_devices(pa), wanted, "output", has_output, what="speaker")


def output_format(pa: pyaudio.PyAudio, device: DeviceInfo, rate: int) -> tuple[int, int] | None:
    """(rate, channels) to open ``device`` with for 16-bit audio at ``rate``; None if none works.

    Prefers the audio's own rate (no resampling), mono before stereo; then common rates and the
    device's default rate, for which the caller resamples.
    """
    rates = dict.fromkeys([rate, 48000, 44100, 16000, round(device.default_sample_rate)])
    for candidate in rates:
        for channels in (1, 2):
            if _format_check(pa, "output", candidate, channels)(device) is None:
                return candidate, channels
    return None
