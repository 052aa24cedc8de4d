"""Byte layout of the recording container (docs/FORMAT.md is normative; this follows it).

A container is a sequence of frames. Every frame is::

    header (108 bytes) | meta (meta_len bytes) | body (body_len bytes) | seal (32 bytes)

and ``seal = SHA-256(header | meta | SHA-256(body))``. The header carries the previous
frame's seal, so the seals form a hash chain that can be checked without any key; a copy
holder needs only the small per-frame records, never the ciphertext.

This module is pure: struct layouts, constants and the derivations FORMAT.md defines.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AEAD_TAG_LEN",
    "FRAME_HEADER",
    "FRAME_MAGIC",
    "HEADER_LEN",
    "MAX_BODY_LEN",
    "SEAL_LEN",
    "Flag",
    "FrameHeader",
    "Kind",
    "audio_mac",
    "canonical_json",
    "finish_frame",
    "genesis_hash",
    "nonce_for",
    "seal_of",
]

FORMAT_VERSION = 2
CONTAINER_FORMAT = "akkoord-recording/2"
MANIFEST_FORMAT = "akkoord-manifest/2"

FRAME_MAGIC = b"AKF1"
# magic, kind, flags, meta_len, index, samples, start_sample, body_len, recording_id,
# prev seal, audio mac
FRAME_HEADER = struct.Struct(">4sBBHIIQI16s32s32s")
HEADER_LEN = FRAME_HEADER.size
assert HEADER_LEN == 108
SEAL_LEN = 32
AEAD_TAG_LEN = 16
SIGNATURE_LEN = 64
# A 10 s segment of 48 kHz stereo 24-bit audio is 2.9 MB; anything far beyond is damage.
MAX_BODY_LEN = 16 * 1024 * 1024
ZERO32 = bytes(32)

GENESIS_LABEL = b"akkoord/v1/genesis"
KDF_SEAL_INFO = b"akkoord/v1/seal"
KDF_MAC_INFO = b"akkoord/v1/audio-mac"
HPKE_INFO_PREFIX = b"akkoord/v1/content-key"
MANIFEST_SIG_CONTEXT = b"akkoord/v1/manifest\n"
CUSTODY_SIG_CONTEXT = b"akkoord/v1/custody-head\n"
EXPORT_SIG_CONTEXT = b"akkoord/v1/export\n"


class Kind(enum.IntEnum):
    """Frame kinds. The numbers are part of the format."""

    HEADER = 1  # index 0 only: recording parameters
    AUDIO = 2  # one sealed segment of PCM
    EVENT = 3  # a press, the start, a note: JSON meta, AEAD over the header
    END = 4  # normal close; the only frame with the FINAL flag
    RECOVERY = 5  # written after a power loss, without the content key
    GAP = 6  # audio lost (overflow): `samples` samples of the timeline are missing
    EXPORT = 7  # addendum after close (exports.akr), signed by the device


class Flag(enum.IntFlag):
    FINAL = 0x01


KNOWN_FLAGS = int(Flag.FINAL)


@dataclass(frozen=True, slots=True)
class FrameHeader:
    kind: int
    flags: int
    meta_len: int
    index: int
    samples: int
    start_sample: int
    body_len: int
    recording_id: bytes
    prev: bytes
    audio_mac: bytes

    def pack(self) -> bytes:
        return FRAME_HEADER.pack(
            FRAME_MAGIC,
            self.kind,
            self.flags,
            self.meta_len,
            self.index,
            self.samples,
            self.start_sample,
            self.body_len,
            self.recording_id,
            self.prev,
            self.audio_mac,
        )

    @classmethod
    def unpack(cls, raw: bytes) -> FrameHeader:
        """Parse a header; the caller has checked the length and the magic."""
        (_m, kind, flags, meta_len, index, samples, start, body_len, rid, prev, mac) = (
            FRAME_HEADER.unpack(raw)
        )
        return cls(kind, flags, meta_len, index, samples, start, body_len, rid, prev, mac)

    @property
    def final(self) -> bool:
        return bool(self.flags & Flag.FINAL)

    @property
    def frame_len(self) -> int:
        return HEADER_LEN + self.meta_len + self.body_len + SEAL_LEN


def genesis_hash(recording_id: bytes) -> bytes:
    """The `prev` of frame 0: binds the chain to the recording id."""
    return hashlib.sha256(GENESIS_LABEL + recording_id).digest()


def seal_of(header: bytes, meta: bytes, body_digest: bytes) -> bytes:
    """The chain link of one frame, from its header, meta and SHA-256(body)."""
    h = hashlib.sha256(header)
    h.update(meta)
    h.update(body_digest)
    return h.digest()


def finish_frame(header: bytes, meta: bytes, body: bytes) -> tuple[bytes, bytes]:
    """The whole frame and its seal, from a packed header, meta and body."""
    seal = seal_of(header, meta, hashlib.sha256(body).digest())
    return b"".join((header, meta, body, seal)), seal


def nonce_for(index: int, final: bool) -> bytes:
    """STREAM-style nonce: 88-bit big-endian frame index, then the last-frame flag."""
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def audio_mac(mac_key: bytes, pcm: bytes) -> bytes:
    """Keyed hash of a segment's plaintext PCM (HMAC-SHA-256 under the audio-MAC key)."""
    return hmac.digest(mac_key, pcm, "sha256")


def canonical_json(value: Any) -> bytes:
    """One spelling per value: sorted keys, no spaces, UTF-8. Used for meta and manifests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
