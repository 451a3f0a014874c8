"""Cross-room rings (account_rings, state per account) and one account, one action (the account stage)."""

from __future__ import annotations

import pytest
import yaml

from detectors.account_rings import AccountRingState, rings
from detectors.normalize import normalize
from pipeline.engine import Engine
from pipeline.errors import RuleSetError
from pipeline.policy import EnforcementConfig, Policy, PolicyState
from pipeline.ruleset import load_ruleset
from schemas.accounts import AccountRecord
from schemas.findings import Finding, Subject, Window, derived_id
from tests.builders import T0, danmaku

RING_RULE = "ring.cross_room_account"
SCRIPT = ["真给力，{}颗就瘦了{}斤", "姐妹们 真给力{}颗就瘦了{}斤！", "真給力，{}颗就瘦了{}斤[赞]"]


def ring_comments(user: str, rooms: int, start_s: float = 0, gap_s: float = 60, **kw) -> list:
    """``user`` posting variants of one testimonial, one comment in each of ``rooms`` rooms."""
    return [
        danmaku(SCRIPT[r % 3].format(r + 2, r + 3), user=user, room=f"room-{r}", t=start_s + r * gap_s, **kw)
        for r in range(rooms)
    ]


def run(engine: Engine, events) -> tuple[list[Finding], list]:
    findings, actions = [], []
    for e in events:
        out = engine.process(e)
        findings += out.findings
        actions += out.actions
    return findings, actions


def _text(event):
    return normalize(event.text)


def detector_of(ruleset):
    return next(d for d in ruleset.detectors if d.name == "account_rings")


# -- the detector ------------------------------------------------------------------------------------


def test_one_script_in_four_rooms_is_a_finding_about_the_account_at_the_fourth(ruleset):
    detector, state = detector_of(ruleset), AccountRingState()
    found = [(e.room_id, detector.detect(e, _text(e), state)) for e in ring_comments("pro", 6)]
    hits = [(room, f) for room, fs in found for f in fs]
    assert [room for room, _ in hits] == ["room-3"]  # min_rooms 4; then once per report period
    (_, f) = hits[0]
    assert f.rule_id == RING_RULE and f.subject == Subject(kind="account", id="pro")
    assert f.details["rooms"] == ["room-0", "room-1", "room-2", "room-3"]
    assert any(str(link).startswith("script:") for link in f.details["ring_links"])  # type: ignore[union-attr]


def test_three_rooms_greetings_old_rooms_and_a_repeated_comment_are_not_a_ring(ruleset):
    detector = detector_of(ruleset)
    state = AccountRingState()
    assert not [f for e in ring_comments("shopper", 3) for f in detector.detect(e, _text(e), state)]
    state = AccountRingState()
    hellos = [danmaku("主播好呀主播", user="fan", room=f"room-{r}", t=r) for r in range(10)]
    assert not [f for e in hellos for f in detector.detect(e, _text(e), state)] and not state.scripts
    state = AccountRingState()  # four rooms, but one an hour and more apart from the last: the window is 1 h
    slow = ring_comments("slow", 4, gap_s=1300)
    assert not [f for e in slow for f in detector.detect(e, _text(e), state)]
    state = AccountRingState()  # the same comment delivered four times is one room
    again = ring_comments("pro", 1) * 4
    assert not [f for e in again for f in detector.detect(e, _text(e), state)]
    assert list(state.scripts.values())[0].rooms.keys() == {"room-0"}


def test_state_per_account_is_bounded(ruleset):
    detector, state = detector_of(ruleset), AccountRingState()
    for i in range(200):
        e = danmaku(
            f"第{i}款{'甲乙丙丁戊己庚辛'[i % 8]}{'子丑寅卯辰巳午未'[i // 8 % 8]}快下单", user="u", room=f"r{i}", t=i
        )
        detector.detect(e, _text(e), state)
    s = detector.settings
    assert len(state.scripts) <= s.max_scripts and len(state.seen) <= 32
    assert all(len(sc.rooms) <= s.max_rooms for sc in state.scripts.values())


def test_rings_group_accounts_by_shared_links():
    groups = rings({"a": ["script:1", "device:x"], "b": ["script:1"], "c": ["device:x"], "d": ["script:9"], "e": []})
    assert groups == [{"a", "b", "c"}]


# -- the account stage ---------------------------------------------------------------------------------


def test_the_engine_mutes_a_ring_account_once_from_the_account_stage(ruleset):
    findings, actions = run(Engine(ruleset), ring_comments("pro", 10) + ring_comments("other", 2))
    ring = [f for f in findings if f.rule_id == RING_RULE]
    assert [f.subject.id for f in ring] == ["pro"]
    assert [(a.action, a.subject.id, a.reasons) for a in actions] == [("mute_account", "pro", [ring[0].finding_id])]


def test_forwarded_account_records_decide_as_in_process(ruleset):
    """The Kafka worker forwards the account stage's work over live.accounts (as JSON); delivered in the same
    order, it decides exactly what the in-process stage decides."""
    events = ring_comments("pro", 6) + ring_comments("pro2", 5, start_s=5)
    events.sort(key=lambda e: e.ts)
    expected = run(Engine(ruleset), events)
    forwarding = Engine(ruleset, forward_accounts=True)
    findings, actions = [], []
    for e in events:
        out = forwarding.process(e)
        findings += out.findings
        assert not out.actions  # every action here is an account's: decided by the account stage
        for record in out.to_accounts:
            decided = forwarding.process_account(AccountRecord.model_validate_json(record.model_dump_json()))
            findings += decided.findings
            actions += decided.actions
    assert [f.model_dump_json() for f in findings] == [f.model_dump_json() for f in expected[0]]
    assert [a.model_dump_json() for a in actions] == [a.model_dump_json() for a in expected[1]]


def test_only_commercial_viewer_comments_are_forwarded(ruleset):
    engine = Engine(ruleset, forward_accounts=True)
    assert not engine.process(danmaku("主播好", user="fan", room="r1")).to_accounts
    [record] = engine.process(danmaku("真给力，3颗就瘦了3.2斤", user="pro", room="r1")).to_accounts
    assert record.account == "pro" and record.event is not None and record.finding is None


# -- one account, one action -------------------------------------------------------------------------------

LADDERS = EnforcementConfig.model_validate(
    yaml.safe_load("""
version: 1
ladders:
  room: {period_s: 3600, cooldown_s: 0, points: {low: 1, medium: 1, high: 1, critical: 1},
         steps: [{at: 1, action: warn, duration_s: 0}]}
  account:
    period_s: 86400
    cooldown_s: 0
    points: {low: 1, medium: 1, high: 2, critical: 4}
    steps:
      - {at: 1, action: mute_account, duration_s: 3600}
      - {at: 3, action: limit_comments, duration_s: 86400}
""")
)


def account_finding(room: str, t_s: float, user: str = "hired-1") -> Finding:
    ts = T0 + int(t_s * 1000)
    return Finding(
        finding_id=derived_id("f", room, user, t_s),
        detector="bot_flood",
        rule_id="flood.ring_account",
        rule_version=1,
        ruleset_version="test",
        status="live",
        severity="medium",
        legal_basis="《网络直播营销管理办法（试行）》第十八条第四项",
        room_id=room,
        platform="test",
        ts=ts,
        subject=Subject(kind="account", id=user),
        window=Window(start_ts=ts, end_ts=ts),
        event_ids=[f"{room}-{t_s}"],
        score=0.9,
        summary="test",
    )


def test_ladders_per_room_gave_one_action_id_several_records():
    """Before issue #14: each room kept its own ladder of the account, so two rooms whose findings about one
    account came at one event time issued one action id twice, with different rooms and reasons."""
    policy = Policy(LADDERS, "test")
    a = policy.decide(account_finding("room-a", 10), PolicyState())
    b = policy.decide(account_finding("room-b", 10), PolicyState())
    assert a is not None and b is not None and a.action_id == b.action_id and a != b


def test_one_ladder_per_account_one_record_per_action_and_a_later_room_folds_into_the_next_step():
    policy, state = Policy(LADDERS, "test"), PolicyState()
    first = policy.decide(account_finding("room-a", 10), state)
    later = policy.decide(account_finding("room-b", 10), state)  # same time, another room: counted, no record
    assert first is not None and first.action == "mute_account" and later is None
    again = policy.decide(account_finding("room-a", 10), state)  # re-delivered: the same record
    assert again == first
    step2 = policy.decide(account_finding("room-c", 20), state)  # the third strike: the next step
    assert step2 is not None and step2.action == "limit_comments" and step2.action_id != first.action_id
    assert step2.reasons == [
        account_finding(r, t).finding_id for r, t in (("room-a", 10), ("room-b", 10), ("room-c", 20))
    ]


def test_a_misspelt_ring_setting_is_refused_at_load_with_its_line(rules_copy):
    path = rules_copy / "rings.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("  min_rooms: 4", "  min_room: 4"), encoding="utf-8")
    with pytest.raises(RuleSetError) as err:
        load_ruleset(rules_copy)
    [problem] = [str(p) for p in err.value.problems]
    assert "rings.yaml:" in problem and "min_room" in problem
