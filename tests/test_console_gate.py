"""The authentication gate as data: nonces single-use and expiring, failures locked out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from akkoord.console import gate as g


def _run(gate, *events):
    out = []
    for e in events:
        gate, actions = g.step(gate, e)
        out.append(actions)
    return gate, out


ADMIN = {"name": "Tess", "fingerprint": "ab" * 32, "serial": "cd" * 16}


def test_challenge_then_good_proof_is_allowed_and_audited():
    _gate, (issue, check, allow) = _run(
        g.Gate(), g.Asked(0, "n1"), g.Presented(1, "n1", "delete"),
        g.Checked(1, "delete", ADMIN))
    assert issue == [g.Issue("n1", g.NONCE_TTL_S)]
    assert check == [g.CheckProof("n1")]
    assert allow == [g.Audit("console_auth", {"command": "delete", "admin": ADMIN}),
                     g.Allow(ADMIN)]


def test_a_nonce_is_spent_by_its_first_use_even_a_failed_one():
    _gate, (_, check, failed, replay) = _run(
        g.Gate(), g.Asked(0, "n1"), g.Presented(1, "n1", "delete"),
        g.Checked(1, "delete", None, "bad signature"), g.Presented(2, "n1", "delete"))
    assert check == [g.CheckProof("n1")]
    assert failed[0].kind == "console_auth_failed" and failed[0].detail["reason"] == "bad signature"
    assert replay[0] == g.Audit("console_auth_failed", {
        "command": "delete", "reason": "unknown, spent or expired nonce"})
    assert isinstance(replay[1], g.Refuse)


def test_nonces_expire_and_only_a_few_are_live():
    gate, (*_, late) = _run(g.Gate(), g.Asked(0, "n1"), g.Presented(g.NONCE_TTL_S, "n1", "x"))
    assert isinstance(late[-1], g.Refuse)
    asks = [g.Asked(i, f"n{i}") for i in range(10)]
    gate, _ = _run(g.Gate(), *asks)
    assert [n for n, _ in gate.nonces] == [f"n{i}" for i in range(10 - g.MAX_OUTSTANDING, 10)]
    gate, (old,) = _run(gate, g.Presented(10, "n0", "x"))
    assert isinstance(old[-1], g.Refuse)


def test_five_failures_lock_the_gate_and_a_flood_costs_no_audit():
    gate = g.Gate()
    audits = 0
    for i in range(g.MAX_FAILURES):
        gate, actions = g.step(gate, g.Presented(float(i), f"bogus{i}", "time set"))
        audits += sum(isinstance(a, g.Audit) for a in actions)
    assert audits == g.MAX_FAILURES
    assert actions[0].detail["locked_seconds"] == g.LOCK_S
    assert gate.locked(10.0)
    for t in range(10, 200):
        gate, actions = g.step(gate, g.Asked(float(t), "n"))
        assert actions == [g.Refuse(actions[0].reason, retry_after=actions[0].retry_after)]
        gate, actions = g.step(gate, g.Presented(float(t), "n", "time set"))
        assert len(actions) == 1 and isinstance(actions[0], g.Refuse)
    gate, actions = g.step(gate, g.Asked(g.MAX_FAILURES - 1 + g.LOCK_S, "n9"))
    assert actions == [g.Issue("n9", g.NONCE_TTL_S)]


def test_failures_age_out_and_success_launders_nothing():
    gate = g.Gate()
    for i in range(g.MAX_FAILURES - 1):
        gate, _ = g.step(gate, g.Presented(float(i), "x", "c"))
    gate, _ = _run(gate, g.Asked(5, "ok"), g.Presented(5, "ok", "c"), g.Checked(5, "c", ADMIN))
    gate, actions = g.step(gate, g.Presented(6, "y", "c"))
    assert actions[0].detail.get("locked_seconds") == g.LOCK_S  # the fifth within 300 s
    gate = g.Gate()
    for i in range(g.MAX_FAILURES - 1):
        gate, _ = g.step(gate, g.Presented(float(i), "x", "c"))
    gate, actions = g.step(gate, g.Presented(g.FAILURE_WINDOW_S + 10, "y", "c"))
    assert "locked_seconds" not in actions[0].detail


def test_time_never_runs_backwards():
    gate, _ = _run(g.Gate(), g.Asked(100, "n1"))
    gate, (actions,) = _run(gate, g.Presented(-1e9, "n1", "c"))
    assert actions == [g.CheckProof("n1")]
    assert gate.last_t == 100


_events = st.lists(
    st.tuples(st.sampled_from(["ask", "present", "good", "bad"]),
              st.floats(min_value=0, max_value=120), st.integers(0, 6)),
    max_size=80)


@settings(max_examples=300, deadline=None)
@given(_events)
def test_properties_over_any_sequence(script):
    """Whatever a host does: each nonce authorises at most once; a proof is only checked for
    a nonce issued within its lifetime; failure audits never exceed the rate limit."""
    gate, t = g.Gate(), 0.0
    issued: dict[str, float] = {}
    used: set[str] = set()
    pending: str | None = None
    failures: list[float] = []
    for kind, dt, k in script:
        t += dt
        nonce = f"n{k}"
        if kind == "ask":
            gate, actions = g.step(gate, g.Asked(t, nonce))
            if any(isinstance(a, g.Issue) for a in actions):
                issued[nonce] = t
                used.discard(nonce)
        elif kind == "present":
            gate, actions = g.step(gate, g.Presented(t, nonce, "c"))
            if any(isinstance(a, g.CheckProof) for a in actions):
                assert nonce in issued and t - issued[nonce] < g.NONCE_TTL_S
                assert nonce not in used
                used.add(nonce)
                pending = nonce
        elif pending is not None:
            admin = {"name": "x"} if kind == "good" else None
            gate, actions = g.step(gate, g.Checked(t, "c", admin, "bad"))
            pending = None
        else:
            continue
        failures += [t for a in actions
                     if isinstance(a, g.Audit) and a.kind == "console_auth_failed"]
        window = [f for f in failures if t - f < g.FAILURE_WINDOW_S]
        assert len(window) <= g.MAX_FAILURES
