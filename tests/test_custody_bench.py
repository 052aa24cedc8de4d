"""The custody figures of `akkoord bench` run end to end on small sizes (no timing is
asserted here; the 20,000-entry figures are `make bench`'s)."""

from akkoord.clock import FixedClock
from akkoord.store.custody import CustodyLog, verify_custody_log
from akkoord.store.custody_bench import _detail, build_log, custody_figures
from akkoord.store.keys import DeviceIdentity


def test_custody_figures_run_and_report_ratios(tmp_path):
    out = custody_figures(tmp_path, quick=True)
    for key in ("custody_append_small_ms", "custody_append_large_ms",
                "custody_append_large_vs_small", "custody_head_small_ms",
                "custody_head_large_ms", "custody_head_large_vs_small",
                "custody_full_parse_large_ms"):
        assert out[key] > 0, key
    assert out["custody_large_entries"] == 2000
    # the measured appends went on after the built entries: nothing was cut or set aside
    large = (tmp_path / "custody-large.log").read_bytes().splitlines()
    assert len(large) == 2000 + 5 and b'"seq":2004' in large[-1]
    assert not list(tmp_path.glob("*.tail-*"))


def test_the_large_log_is_what_appends_would_have_written(tmp_path):
    """Built in one go, but byte for byte the log the same appends write, and it verifies."""
    ident, clock = DeviceIdentity.generate(), FixedClock()
    build_log(tmp_path / "built.log", 9, ident, clock)
    log = CustodyLog(tmp_path / "appended.log", ident, clock)
    for i in range(9):
        kind, rid, detail = _detail(i)
        log.append(kind, rid, **detail)
    assert (tmp_path / "built.log").read_bytes() == log.path.read_bytes()
    assert verify_custody_log(tmp_path / "built.log", ident.public) == (9, [])
