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
    # The default path (adaptive) and the worker thread, verify and decrypt, in the same run.
    for op in ("verify", "decrypt"):
        for k in ("adaptive_wall_s", "adaptive_cpu_s", "worker_wall_s", "worker_cpu_s",
                  "one_thread_wall_s", "adaptive_vs_one_thread_wall",
                  "adaptive_vs_one_thread_cpu", "worker_vs_one_thread_wall",
                  "worker_vs_one_thread_cpu", "adaptive_vs_age_d", "adaptive_vs_age_d_wall",
                  "worker_vs_age_d", "worker_vs_age_d_wall", "adaptive_vs_format_floor",
                  "adaptive_vs_format_floor_parallel_wall",
                  "adaptive_vs_format_floor_two_threads_wall"):
            assert doc[f"{op}_{k}"] > 0, (op, k)
        assert len(doc[f"{op}_adaptive_decisions"]) == 1  # one per run (repeat=1)
    assert doc["decrypt_adaptive_vs_format_floor_and_write"] > 0
    # Like for like (bench.TARGETS judges these in place of the format-bound ratios).
    for k in ("peer_read_file_cpu_s", "verify_key_vs_format_floor_and_read",
              "decrypt_adaptive_vs_verify_adaptive_wall", "decrypt_adaptive_vs_verify_adaptive_cpu",
              "peer_age_decrypt_null_cpu_s", "verify_key_vs_age_d_null",
              "verify_key_vs_age_d_null_wall", "format_extra_passes_cpu_s",
              "seal_vs_age_and_format_passes", "verify_key_vs_age_d_null_and_format_passes",
              "decrypt_vs_age_d_and_format_passes"):
        assert doc[k] > 0, k
    from akkoord.bench import FORMAT_BOUND, TARGETS
    from akkoord.bench_targets import judged_as

    # Every peer and floor figure the bench judges or explains is one this section makes.
    named = {k for k in (*TARGETS, *FORMAT_BOUND) if {"age", "floor"} & set(k.split("_"))
             or k.startswith(("decrypt_", "verify_key"))}
    named |= {j for why in FORMAT_BOUND.values() for j in judged_as(why)}
    pipeline = {"verify_pipeline_vs_format_floor_parallel_wall"}
    assert not {k for k in named - pipeline if k not in doc}
    import re

    # ...and so is every figure a format-bound reason points to (the bounds, the passes).
    cited = {w for why in FORMAT_BOUND.values()
             for w in re.findall(r"\b[a-z0-9]+(?:_[a-z0-9]+){2,}\b", why)}
    assert {w for w in cited - set(TARGETS) if w not in doc} <= {"format_floor_two_threads_s"}
    assert "seal_vs_age_format_bound" in cited
    from akkoord.store.reader import usable_cpus

    assert doc["default_path"].startswith("adaptive") == (usable_cpus() >= 2)
    assert list(tmp_path.iterdir()) == []  # cleans up after itself


def test_the_default_path_s_verdicts_in_words():
    say = bench_perf._decisions
    assert say([], 4) == "worker thread throughout (too short to judge)"
    assert say([(10, 1.52, True), (20, 1.48, True)], 4) == (
        "worker thread throughout (cores' worth per stretch: 1.52, 1.48)")
    assert say([(10, 1.5, True), (38, 0.98, False)], 4) == (
        "one thread from frame ~156 on (cores' worth per stretch: 1.50, 0.98)")


def test_the_bench_s_policy_is_the_default_s(monkeypatch):
    from akkoord.store import reader

    fresh, what = bench_perf._default_path()
    policy = fresh()
    assert isinstance(policy, reader.Adaptive) and what.startswith("adaptive")
    default = reader.Adaptive()
    assert (policy.min_cores, policy.window_s, policy.batch) == (
        default.min_cores, default.window_s, default.batch)
    assert policy.keep(3, 0.1, 0.1) is True and policy.keep(4, 0.1, 0.1) is False
    assert policy.log == [(3, 1.0, True), (4, 1.0, False)]
    assert policy.misses == default.misses
    monkeypatch.setattr(reader, "usable_cpus", lambda: 1)
    fresh, what = bench_perf._default_path()
    assert fresh() is False and what == "one thread (one usable CPU)"


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
