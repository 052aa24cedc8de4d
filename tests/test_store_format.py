"""The container format's constants as known answers (docs/FORMAT.md), not only as a round
trip: a writer and a verifier that share one wrong function agree with each other, so these
tests hold the code to bytes made earlier and to the spelling the format document gives."""

from __future__ import annotations

import pytest

from akkoord.store.audio_out import decrypt_recording
from akkoord.store.format import (
    CHECKPOINT_SECONDS,
    canonical_json,
    checkpoint_due,
    nonce_for,
)
from akkoord.store.keys import OrgPrivateKey
from storekit import fast_tmp
from test_vectors import CASES, VECTORS


@pytest.mark.parametrize("case", CASES)
def test_the_committed_recordings_decrypt_to_the_committed_copies(case):
    """tests/vectors/ holds recordings made by an earlier build and the WAV on their copy:
    today's code decrypts them to exactly that WAV (nonces, key derivation, AEAD, positions)."""
    out = fast_tmp() / "opname.wav"
    result = decrypt_recording(VECTORS / case / "recording", OrgPrivateKey.load(
        VECTORS / "org.key"), out)
    assert result.written and result.report.ok, result.problems
    assert out.read_bytes() == (VECTORS / case / "copy" / "opname.wav").read_bytes()


def test_the_nonce_is_the_big_endian_index_then_the_final_flag():
    assert nonce_for(0, False) == bytes(12)
    assert nonce_for(1, False) == bytes(10) + b"\x01\x00"
    assert nonce_for(0x0102, True) == bytes(9) + b"\x01\x02\x01"
    assert nonce_for(2**88 - 1, True) == b"\xff" * 11 + b"\x01"


def test_a_checkpoint_is_due_at_exactly_ten_seconds_of_audio():
    rate = 16000
    due = CHECKPOINT_SECONDS * rate
    assert CHECKPOINT_SECONDS == 10
    assert not checkpoint_due(500 + due - 1, 500, rate)
    assert checkpoint_due(500 + due, 500, rate)
    assert checkpoint_due(500 + due + 1, 500, rate)


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()
