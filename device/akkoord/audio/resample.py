"""Small, pure PCM helpers: 16-bit mono/stereo conversion and a linear resampler.

Linear interpolation is enough for chimes, spoken prompts and a simulated microphone; it is
not meant for studio work. Positions are kept as exact integers (units of 1/dst_rate source
samples), so long streams do not drift.
"""

from __future__ import annotations

import array
import sys

__all__ = [
    "LinearResampler",
    "downmix_to_mono",
    "pcm_to_samples",
    "resample",
    "samples_to_pcm",
    "to_channels",
]

_BIG_ENDIAN = sys.byteorder == "big"


def pcm_to_samples(pcm: bytes) -> array.array[int]:
    """Signed 16-bit little-endian bytes -> array('h')."""
    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if _BIG_ENDIAN:
        samples.byteswap()
    return samples


def samples_to_pcm(samples: array.array[int]) -> bytes:
    if _BIG_ENDIAN:
        samples = array.array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def downmix_to_mono(pcm: bytes, channels: int) -> bytes:
    """Average interleaved channels into one (rounding toward negative infinity)."""
    if channels == 1:
        return pcm
    samples = pcm_to_samples(pcm)
    frames = len(samples) // channels
    mono = array.array(
        "h", (sum(samples[i * channels : (i + 1) * channels]) // channels for i in range(frames))
    )
    return samples_to_pcm(mono)


def to_channels(pcm: bytes, channels: int) -> bytes:
    """Mono PCM -> the same signal on every one of ``channels`` interleaved channels."""
    if channels == 1:
        return pcm
    mono = pcm_to_samples(pcm)
    out = array.array("h", bytes(len(mono) * channels * 2))
    for c in range(channels):
        out[c::channels] = mono
    return samples_to_pcm(out)


class LinearResampler:
    """Streaming linear-interpolation resampler for 16-bit mono samples.

    Output sample k lies at source position ``k * src_rate / dst_rate``. Feed chunks with
    :meth:`process`; at most the last source sample's worth of output is held back until the
    next chunk (and dropped at the end of the stream).
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, not {src_rate} -> {dst_rate}")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        self._t = 0  # next output position, in 1/dst_rate source samples, relative to _carry
        self._carry: int | None = None

    def process(self, samples: array.array[int]) -> array.array[int]:
        if not samples:
            return array.array("h")
        if self.src_rate == self.dst_rate:
            return array.array("h", samples)
        work = samples if self._carry is None else array.array("h", [self._carry]) + samples
        src, dst = self.src_rate, self.dst_rate
        last = len(work) - 1
        out = array.array("h")
        t = self._t
        i = t // dst
        while i < last:
            frac = t - i * dst
            a = work[i]
            out.append(a + ((work[i + 1] - a) * frac) // dst)
            t += src
            i = t // dst
        if i == last and t == i * dst:  # lands exactly on the last sample: no need to wait
            out.append(work[last])
            t += src
        self._carry = work[last]
        self._t = t - last * dst
        return out


def resample(samples: array.array[int], src_rate: int, dst_rate: int) -> array.array[int]:
    """One-shot :class:`LinearResampler` over a whole signal."""
    return LinearResampler(src_rate, dst_rate).process(samples)
