"""The enforcement ladder: severity and repeats escalate; cool-down, expiry, jumps, shadow, idempotence."""

from pathlib import Path

import pytest
import yaml

from pipeline.policy import EnforcementConfig, Policy, PolicyState
from schemas.findings import Finding, Subject, Window, derived_id
from tests.builders import T0

LADDER = EnforcementConfig.model_validate(
    yaml.safe_load("""
version: 1
ladders:
  room:
    period_s: 3600
    cooldown_s: 60
    points: {low: 1, medium: 2, high: 3, critical: 6}
    jump: {critical: suspend}
    steps:
      - {at: 1, action: warn, duration_s: 0}
      - {at: 4, action: limit_comments, duration_s: 600}
      - {at: 7, action: limit_cart, duration_s: 1200}
      - {at: 10, action: suspend, duration_s: 86400}
  account:
    period_s: 3600
    cooldown_s: 0
    points: {low: 1, medium: 1, high: 1, critical: 1}
    steps:
      - {at: 1, action: mute_account, duration_s: 600}
""")
)


def finding(
    t_s: float, severity: str = "high", *, n: str | None = None, status: str = "live", subject: Subject | None = None
) -> Finding:
    n = n or f"{t_s}-{severity}"
    return Finding(
        finding_id=derived_id("f", n),
        detector="false_claims",
        rule_id="claims.test.rule",
        rule_version=1,
        ruleset_version="test",
        status=status,
        severity=severity,
        legal_basis="《广告法》第十七条",
        room_id="r1",
        platform="test",
        ts=T0 + int(t_s * 1000),
        subject=subject or Subject(kind="room", id="r1"),
        window=Window(start_ts=T0 + int(t_s * 1000), end_ts=T0 + int(t_s * 1000)),
        event_ids=[n],
        score=0.9,
        summary="test",
    )


def run(findings, state=None):
    policy, state = Policy(LADDER, "test"), state or PolicyState()
    return [(a.action if a else None) for a in (policy.decide(f, state) for f in findings)], state


def test_repeated_violations_climb_the_ladder_to_suspension():
    actions, _ = run([finding(t) for t in (0, 100, 200, 300)])
    assert actions == ["warn", "limit_comments", "limit_cart", "suspend"]


def test_points_below_the_next_step_issue_nothing_new():
    actions, _ = run([finding(0, "low"), finding(100, "low"), finding(200, "low"), finding(300, "low")])
    assert actions == ["warn", None, None, "limit_comments"]


def test_within_the_cool_down_strikes_count_but_do_not_escalate():
    actions, _ = run([finding(0), finding(10), finding(20), finding(70)])
    # 3, 6, 9 points: the 2nd and 3rd come within 60 s of the warning; the 4th (12 points) escalates
    assert actions == ["warn", None, None, "suspend"]


def test_critical_jumps_straight_to_suspension_even_in_cool_down():
    actions, _ = run([finding(0, "medium"), finding(5, "critical")])
    assert actions == ["warn", "suspend"]


def test_strikes_expire_after_the_period_and_the_ladder_starts_over():
    actions, state = run([finding(0), finding(100), finding(100 + 3600 + 1)])
    assert actions == ["warn", "limit_comments", "warn"]
    assert len(state.subjects["room:r1"].strikes) == 1


def test_shadow_findings_never_act_and_leave_no_strike():
    policy, state = Policy(LADDER, "test"), PolicyState()
    f = finding(0, status="shadow")
    assert policy.decide(f, state) is None
    assert policy.would_do(f, state) == "warn"
    assert state.subjects == {}


def test_a_shadow_finding_leaves_a_subject_with_strikes_and_actions_exactly_as_it_was():
    policy, state = Policy(LADDER, "test"), PolicyState()
    assert policy.decide(finding(0), state) is not None  # a strike and a warning on record
    before = state.model_dump()
    assert policy.would_do(finding(100, status="shadow"), state) == "limit_comments"
    assert state.model_dump() == before


def test_a_finding_seen_again_gets_the_same_action_and_no_extra_strike():
    policy, state = Policy(LADDER, "test"), PolicyState()
    first = policy.decide(finding(0, n="x"), state)
    again = policy.decide(finding(0, n="x"), state)
    assert first is not None and again is not None and again.action_id == first.action_id
    assert len(state.subjects["room:r1"].strikes) == 1


def test_action_ids_are_deterministic_across_runs():
    def ids():
        policy, state = Policy(LADDER, "test"), PolicyState()
        return [a.action_id for a in (policy.decide(finding(t), state) for t in (0, 100, 200)) if a]

    assert ids() == ids() and len(set(ids())) == 3


def test_an_action_carries_its_reasons_legal_basis_duration_and_appeal_reference():
    _, state = run([finding(0, n="a")])
    policy = Policy(LADDER, "v9")
    action = policy.decide(finding(100, n="b"), state)
    assert action.action == "limit_comments"
    assert action.reasons == [derived_id("f", "a"), derived_id("f", "b")]
    assert action.legal_basis == ["《广告法》第十七条"]
    assert action.duration_s == 600 and action.expires_ts == action.ts + 600_000
    assert action.appeal_ref.startswith("LW-APPEAL-") and action.ruleset_version == "v9"


def test_accounts_have_their_own_ladder():
    actions, state = run([finding(0, subject=Subject(kind="account", id="bot-1")), finding(1)])
    assert actions == ["mute_account", "warn"]
    assert set(state.subjects) == {"account:bot-1", "room:r1"}


def test_policy_state_survives_a_json_round_trip():
    _, state = run([finding(0), finding(100)])
    restored = PolicyState.model_validate_json(state.model_dump_json())
    actions, _ = run([finding(200)], restored)
    assert actions == ["limit_cart"]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("steps: [{at: 4, action: warn, duration_s: 0}, {at: 1, action: suspend, duration_s: 1}]", "increasing"),
        ("steps: [{at: 1, action: warn, duration_s: 0}]\n    jump: {critical: suspend}", "not a step"),
    ],
)
def test_inconsistent_ladders_are_refused(bad, message):
    text = f"""
version: 1
ladders:
  room:
    period_s: 3600
    cooldown_s: 0
    points: {{low: 1, medium: 1, high: 1, critical: 1}}
    {bad}
"""
    with pytest.raises(ValueError, match=message):
        EnforcementConfig.model_validate(yaml.safe_load(text))


def test_the_shipped_ladder_is_valid():
    path = Path(__file__).resolve().parent.parent / "rules" / "enforcement.yaml"
    config = EnforcementConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.ladders["room"].steps[-1].action == "suspend"


def test_the_same_step_gets_the_same_id_whichever_finding_crosses_the_threshold():
    def step_ids(order):
        policy, state = Policy(LADDER, "test"), PolicyState()
        found = [policy.decide(finding(t, n=n), state) for t, n in order]
        return {a.action: a.action_id for a in found if a}

    # "a" then "b" or "b" then "a" at the same times: the warning and the limit are the same actions
    assert step_ids([(0, "a"), (100, "b")]) == step_ids([(0, "b"), (100, "a")])


def test_a_finding_redelivered_after_its_cool_down_answer_gets_that_answer_again():
    policy, state = Policy(LADDER, "test"), PolicyState()
    assert policy.decide(finding(0, n="a"), state).action == "warn"
    assert policy.decide(finding(10, n="b"), state) is None  # in the cool-down
    assert policy.decide(finding(100, n="c"), state).action == "limit_cart"
    assert policy.decide(finding(10, n="b"), state) is None  # re-delivered: still nothing


def test_strikes_and_reasons_stay_bounded_in_an_abusive_room():
    policy, state = Policy(LADDER, "test"), PolicyState()
    for i in range(1000):
        policy.decide(finding(i, n=str(i)), state)
    subject = state.subjects["room:r1"]
    assert len(subject.strikes) <= 200
    assert all(len(a.reasons) <= 50 for a in subject.issued)
    assert len(state.model_dump_json()) < 100_000
