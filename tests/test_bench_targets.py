"""The bench's judgement: every target judged, every format-bound figure explained through a
judged one (never silently dropped), and the summary printed as lines."""

from __future__ import annotations

from akkoord.bench import FORMAT_BOUND, TARGETS
from akkoord.bench_targets import judge, judged_as, print_judged


def test_a_format_bound_figure_names_judged_figures_and_is_not_itself_a_target():
    assert FORMAT_BOUND and not set(FORMAT_BOUND) & set(TARGETS)
    for name, why in FORMAT_BOUND.items():
        instead = judged_as(why)
        assert instead, name
        assert all(j in TARGETS for j in instead), (name, instead)
        assert why.startswith("was "), name  # the old target stays in the words


def test_judged_as_reads_one_two_or_three_names():
    assert judged_as("x; judged as a_b") == ["a_b"]
    assert judged_as("x; judged as a and b_2") == ["a", "b_2"]
    assert judged_as("x; judged as a, b and c") == ["a", "b", "c"]
    assert judged_as("nothing named") == []


def test_format_bound_figures_get_their_own_verdict():
    result = {"targets": {"a": "<= 1.15"}, "format_bound": {"b": "was <= 1.15; judged as a"},
              "a": 1.2, "b": 1.3}
    assert judge(result) == {"a": "not met", "b": "format-bound"}
    result["format_bound"]["a"] = "judged as a"  # a target's verdict is never overridden
    assert judge(result)["a"] == "not met"


def test_the_summary_prints_the_bound_figures_and_ends_on_a_line_of_its_own(capsys):
    result = {"targets": {"a": "<= 1.15", "c": ">= 2"},
              "format_bound": {"b": "was <= 1.15: writes; judged as a"},
              "a": 1.1, "b": 1.3, "c": 1, "other": 5}
    print_judged(result)
    out = capsys.readouterr().out
    assert "\\n" not in out
    lines = out.splitlines()
    assert lines[-1] == "1 of 2 targets met; not met: c"
    assert any(line.startswith("b ") and "judged as a" in line for line in lines)
    assert any(line.startswith("other ") for line in lines)
    assert not any(line.startswith(("targets", "format_bound")) for line in lines)
