"""The archive figures of `akkoord bench` run end to end on small sizes (the real 100,000-row
and 290 MB figures are `make bench`'s; no timing is asserted here)."""

from akkoord.archive.bench import archive_figures


def test_archive_figures_run_and_report_ratios(tmp_path):
    out = archive_figures(tmp_path, rows=500, recordings=(2, 3), postgresql=False)
    for key in ("collect_vs_write_read_back", "ingest_vs_plain_copy",
                "fast_collect_vs_write_read_back", "fast_ingest_vs_plain_copy",
                "collect_vs_write_read_back_unchecked", "sqlite_search_p95_ms"):
        assert out[key] > 0, key
    assert out["index_rows"] == 500
    # the report says what the stick was, so a figure is never read for another target
    assert out["collect_stick"] and out["fast_collect_stick"]
    assert isinstance(out["collect_throttled"], bool)


def test_the_collection_limit_really_compares_what_it_reads_back(tmp_path):
    """The limit collection is held to does the check collection does: a stick that returns
    one flipped bit fails it (and only the unchecked variant lets it pass)."""
    import os

    import pytest

    from akkoord.archive.bench import _write_read_back
    from fusekit import fuse_unavailable, mounted

    if fuse_unavailable():
        pytest.skip(fuse_unavailable())
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 << 20))
    with mounted(tmp_path / "backing", tmp_path / "stick", flip=("0", 2_500_000)) as stick:
        with pytest.raises(OSError, match="read back differs"):
            _write_read_back([src], stick / "checked")
        assert _write_read_back([src], stick / "unchecked", check=False) == 3 << 20
