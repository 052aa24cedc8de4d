"""Guards of the keyless verifier (store/verify.py), each with a test that fails without it.

The broad tamper properties live in test_store_tamper.py; here each check is pinned by a case
that only that check can catch, so switching it off fails a test deterministically.
"""

from __future__ import annotations

import shutil

import pytest

from akkoord.store.format import HEADER_LEN, Kind, finish_frame
from akkoord.store.layout import CONTAINER_FILE
from akkoord.store.manifest import MANIFEST_FILE
from akkoord.store.verify import verify_recording
from storekit import (
    RATE,
    copy_recording,
    fast_tmp,
    frame_bytes,
    frames_of,
    make_kit,
    record,
    rewrite,
)


@pytest.fixture(scope="module")
def made():
    kit = make_kit()
    w, _ = record(kit, segments=5)
    yield kit, w.path
    kit.cleanup()


@pytest.fixture
def scratch():
    d = fast_tmp()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _resealed_body(made, scratch, *, keep_manifest: bool):
    """One AUDIO frame's body replaced and the frame re-sealed; the frames after it untouched.
    Its own seal is consistent, so only the next frame's `prev` can tell."""
    _, src = made
    d = copy_recording(src, scratch)
    frames = frames_of(d / CONTAINER_FILE)
    parts = frame_bytes(d / CONTAINER_FILE)
    target = next(f for f in frames if f.header.kind == Kind.AUDIO)
    k = target.header.index
    h = target.header
    raw = parts[k]
    body = bytearray(raw[HEADER_LEN + h.meta_len : HEADER_LEN + h.meta_len + h.body_len])
    body[len(body) // 2] ^= 0x55
    parts[k], _ = finish_frame(raw[:HEADER_LEN], raw[HEADER_LEN : HEADER_LEN + h.meta_len],
                               bytes(body))
    rewrite(d, parts)
    if not keep_manifest:
        (d / MANIFEST_FILE).unlink()
    return d, frames[k + 1]


@pytest.mark.parametrize("keep_manifest", [True, False], ids=["with_manifest", "no_manifest"])
def test_resealed_frame_breaks_the_chain_at_the_next_frame(made, scratch, keep_manifest):
    d, after = _resealed_body(made, scratch, keep_manifest=keep_manifest)
    rep = verify_recording(d)  # keyless: no organisation key, no AEAD check
    assert not rep.ok and rep.status == "tampered"
    breaks = [f for f in rep.findings if f.code == "chain_break"]
    assert [f.frame for f in breaks] == [after.header.index], rep.findings
    assert breaks[0].second == pytest.approx(after.header.start_sample / RATE, abs=1e-3)
    assert breaks[0].offset == after.offset
