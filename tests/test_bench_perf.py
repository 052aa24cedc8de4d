"""The bench's issue-11 parts run and say what they measured (never how fast: that is the
bench's own output, not a test's)."""

from __future__ import annotations

import shutil

import pytest

from akkoord import bench_perf
from akkoord.store.keys import DeviceIdentity, generate_org_key


@pytest.fixture
def keys():
    return DeviceIdentity.generate(), generate_org_key("x25519")


@pytest.mark.skipif(shutil.which("age") is None, reason="age is not installed")
def test_peer_figures_compare_equal_work(tmp_path, keys):
    ident, org = keys
    doc = bench_perf.peer_figures(tmp_path, 3, ident, org, repeat=1)  # raises if audio differs
    assert doc["peer"].startswith("age ")
    for k in ("seal_vs_age", "verify_key_vs_age_d", "decrypt_vs_age_d", "decrypt_vs_verify_key",
              "format_floor_vs_age_d", "verify_key_vs_format_floor", "write_file_cpu_s",
              "seal_vs_format_floor_and_write", "decrypt_vs_verify_key_and_write"):
        assert doc[k] > 0
    assert list(tmp_path.iterdir()) == []  # cleans up after itself


def test_peer_figures_say_when_age_is_absent(tmp_path, keys, monkeypatch):
    monkeypatch.setattr(bench_perf.shutil, "which", lambda name: None)
    doc = bench_perf.peer_figures(tmp_path, 3, *keys)
    assert doc == {"peer": doc["peer"]} and "not installed" in doc["peer"]


def test_export_limit_falls_back_to_a_plain_target_and_says_so(tmp_path, keys, monkeypatch):
    ident, org = keys

    def refuse(root, size, made):
        raise RuntimeError("loop devices are not allowed here")

    monkeypatch.setattr(bench_perf, "_setup_throttle", refuse)
    rec = bench_perf.write_recording(tmp_path / "state", 4, bytes(96000), ident, org)
    doc = bench_perf.export_limit_figures(tmp_path, rec, ident, org, repeat=1)
    assert doc["export_throttled"] is False
    assert "plain folder" in doc["export_target"] and "loop devices" in doc["export_target"]
    assert doc["export_vs_write_readback"] > 0 and doc["export_vs_plain_copy"] > 0


def test_busy_load_ends_its_processes():
    with bench_perf.busy_load(1) as n:
        assert n == 1


def test_pipeline_figures_measure_both_paths_and_the_floors(tmp_path, keys):
    ident, org = keys
    doc = bench_perf.pipeline_figures(tmp_path, 3, ident, org, repeat=1)
    floors = ("format_floor_sequential_cpu_s", "format_floor_parallel_s",
              "format_floor_two_threads_s")
    seq, par, two = (doc[k] for k in floors)
    assert 0 <= par <= two <= seq  # the longest pass, the worker's split, all three in a row
    for k in ("verify_pipeline_vs_sequential_wall", "verify_pipeline_vs_sequential_cpu",
              "verify_pipeline_vs_format_floor_parallel_wall", "parallel_capacity",
              "verify_sequential_vs_format_floor_and_read"):
        assert doc[k] > 0
    assert isinstance(doc["verify_uses_worker_thread"], bool) and doc["usable_cpus"] >= 1
    assert list(tmp_path.iterdir()) == []  # cleans up after itself
