"""Reading a manifest without its segment list holds nothing per segment: the list is
skipped, canonical entries a run at a time, with memory that does not follow its length."""

from __future__ import annotations

import os
import tracemalloc

from akkoord.store.manifest import JsonBytes, _skip_array, segment_entry
from akkoord.store.safeio import strict_decoder


def _segments(n: int) -> bytes:
    mac = os.urandom(32)
    return b"[" + b",".join(segment_entry(i, i * 48000, 48000, mac) for i in range(n)) + b"]"


def test_a_twelve_hour_segment_list_is_skipped_in_constant_memory():
    data = _segments(12 * 3600)
    reader = JsonBytes(data, strict_decoder())
    tracemalloc.start()
    try:
        end = _skip_array(reader, 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert end == len(data)
    assert peak < 256 * 1024  # a backtracking record per entry would be ~13 MB


def test_non_canonical_entries_between_runs_are_still_checked_and_skipped():
    runs = _segments(3)[1:-1]
    data = b"[" + runs + b' , {"a": [1, 2]} ,' + runs + b"]"
    assert _skip_array(JsonBytes(data, strict_decoder()), 0) == len(data)
    for bad in (b"[" + runs + b",]", b"[" + runs + runs + b"]", b"[" + runs + b",,1]"):
        try:
            _skip_array(JsonBytes(bad, strict_decoder()), 0)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad[:40]!r}")
