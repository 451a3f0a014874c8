"""AI-label detector with the shipped rules (rules/ai_label.yaml): given a timed sequence of events →
exactly these findings. Grace 10 s, allowed gap 30 s, re-reports every 600 s."""

from __future__ import annotations

import pytest

from detectors.ai_label import AiLabelDetector, AiLabelState
from detectors.timeline import run
from tests.builders import T0, chat, danmaku, meta, say

GENERATED = '{"AIGC":{"Label":"1","ContentProducer":"vendor-x","ContentID":"c-42"}}'


@pytest.fixture(scope="module")
def detector(ruleset) -> AiLabelDetector:
    return ruleset.configured["ai_label"]  # type: ignore[return-value]


def found(detector, events, state=None) -> list[tuple[str, float]]:
    return [(f.rule_id, (f.ts - T0) / 1000) for f in run(detector, events, state)]


# -- ai_label.missing_at_start --------------------------------------------------------------------------


def test_an_ai_host_without_a_label_is_reported_on_the_first_event_after_the_grace(detector):
    events = [
        meta(t=0, host_kind="ai", event_id="m0"),
        danmaku("哇", t=5),
        danmaku("真人吗", t=10),
        danmaku("好像是AI", t=12),
    ]
    [f] = run(detector, events)
    assert (f.rule_id, f.ts) == ("ai_label.missing_at_start", T0 + 12_000)  # at 10 s exactly: not yet
    assert f.severity == "high" and "《人工智能生成合成内容标识办法》" in f.legal_basis
    assert f.details["triggers"] == ["host_kind"] and f.details["seconds"] == 12
    assert f.window.start_ts == T0 and f.evidence[0].field == "host_kind" and f.evidence[0].raw == "ai"
    assert f.event_ids[0] == "m0"


def test_a_label_shown_within_the_grace_period_is_no_finding(detector):
    events = [
        meta(t=0, host_kind="ai"),
        meta(t=8, host_kind="ai", ai_label_visible=True),
        danmaku("?", t=60),
        say("欢迎", t=900),
    ]
    assert found(detector, events) == []


def test_a_label_shown_at_the_start_is_no_finding(detector):
    assert found(detector, [meta(t=0, host_kind="mixed", ai_label_visible=True), danmaku("?", t=900)]) == []


def test_a_label_arriving_late_still_counts_the_delay(detector):
    events = [meta(t=0, host_kind="ai"), meta(t=15, host_kind="ai", ai_label_visible=True), danmaku("?", t=900)]
    assert found(detector, events) == [("ai_label.missing_at_start", 15)]


def test_an_unlabelled_stream_is_re_reported_every_ten_minutes(detector):
    events = [meta(t=0, host_kind="ai")] + [danmaku("?", t=t) for t in range(20, 1300, 20)]
    assert found(detector, events) == [
        ("ai_label.missing_at_start", 20),
        ("ai_label.missing_at_start", 620),
        ("ai_label.missing_at_start", 1220),
    ]


@pytest.mark.parametrize(
    "fields, trigger",
    [
        ({"aigc_score": 0.93}, "aigc_score"),
        ({"aigc_score": 0.8}, "aigc_score"),  # at the threshold
        ({"implicit_label": GENERATED}, "implicit_label"),
        ({"implicit_label": "AI-generated"}, "implicit_label"),
        ({"host_kind": "mixed"}, "host_kind"),
    ],
)
def test_every_way_a_stream_is_marked_ai(detector, fields, trigger):
    findings = run(detector, [meta(t=0, **fields), danmaku("?", t=11)])
    assert [(f.rule_id, f.details["triggers"]) for f in findings] == [("ai_label.missing_at_start", [trigger])]


@pytest.mark.parametrize("fields", [{"aigc_score": 0.79}, {"implicit_label": "human-made"}, {"host_kind": "human"}])
def test_not_ai(detector, fields):
    assert found(detector, [meta(t=0, **fields), danmaku("?", t=100)]) == []


def test_the_host_saying_so(detector):
    raw = "大家好，我是本店的AI数字人主播小美！"
    findings = run(detector, [meta(t=0), say(raw, t=5, event_id="s1"), say("今天上新", t=20)])
    [f] = findings
    assert f.rule_id == "ai_label.missing_at_start" and f.details["triggers"] == ["self_disclosed"]
    [ev] = f.evidence
    assert ev.event_id == "s1" and ev.raw == raw[ev.start : ev.end] == "AI数字人"
    assert f.window.start_ts == T0 + 5_000


def test_host_chat_counts_viewer_chat_does_not(detector):
    assert found(detector, [chat("这是AI主播吧", t=0), danmaku("?", t=30)]) == []
    assert found(detector, [chat("本直播间为虚拟主播", role="operator", t=0), danmaku("?", t=30)]) == [
        ("ai_label.missing_at_start", 30)
    ]


@pytest.mark.parametrize("text", ["我不是数字人，是真人主播", "支持数字人民币付款", "我们并非虚拟主播"])
def test_denials_and_digital_money_are_not_a_disclosure(detector, text):
    assert found(detector, [meta(t=0), say(text, t=1), danmaku("?", t=100)]) == []


def test_a_disclosure_holds_until_the_stream_ends(detector):
    events = [
        say("我是AI主播", t=0),
        meta(t=3, ai_label_visible=True),
        meta(t=50),
        danmaku("?", t=100),
        meta(t=110, status="ended"),
        meta(t=120),
        danmaku("?", t=300),
    ]
    assert found(detector, events) == [("ai_label.label_gap", 100)]


# -- ai_label.label_gap --------------------------------------------------------------------------------


def test_a_label_gone_longer_than_the_allowed_gap(detector):
    events = [
        meta(t=0, host_kind="ai", ai_label_visible=True),
        meta(t=100, host_kind="ai", event_id="off"),
        danmaku("?", t=130),
        danmaku("?", t=131),
    ]
    [f] = run(detector, events)
    assert (f.rule_id, f.ts) == ("ai_label.label_gap", T0 + 131_000)
    assert f.severity == "medium" and "第三十七条" in f.legal_basis
    assert f.window.start_ts == T0 + 100_000 and "off" in f.event_ids
    assert f.details["seconds"] == 31 and f.details["allowed_s"] == 30


def test_a_short_gap_is_no_finding(detector):
    events = [
        meta(t=0, host_kind="ai", ai_label_visible=True),
        meta(t=100, host_kind="ai"),
        meta(t=120, host_kind="ai", ai_label_visible=True),
        danmaku("?", t=900),
    ]
    assert found(detector, events) == []


def test_one_finding_per_gap_and_a_new_gap_is_a_new_finding(detector):
    events = [
        meta(t=0, host_kind="ai", ai_label_visible=True),
        meta(t=100, host_kind="ai"),
        *[danmaku("?", t=t) for t in range(110, 300, 10)],
        meta(t=300, host_kind="ai", ai_label_visible=True),
        meta(t=400, host_kind="ai"),
        danmaku("?", t=450),
    ]
    findings = run(detector, events)
    assert [(f.rule_id, (f.ts - T0) / 1000) for f in findings] == [
        ("ai_label.label_gap", 140),
        ("ai_label.label_gap", 450),
    ]
    assert findings[0].finding_id != findings[1].finding_id


def test_handing_over_to_a_human_host_ends_the_ai_episode(detector):
    events = [meta(t=0, host_kind="ai", ai_label_visible=True), meta(t=100, host_kind="human"), danmaku("?", t=900)]
    assert found(detector, events) == []


def test_an_ai_segment_flagged_by_the_classifier_and_a_later_one(detector):
    events = [
        meta(t=0, aigc_score=0.1),
        meta(t=100, aigc_score=0.95),
        meta(t=105, aigc_score=0.95, ai_label_visible=True),
        meta(t=200, aigc_score=0.2),
        meta(t=300, aigc_score=0.9),
        danmaku("?", t=320),
    ]
    findings = run(detector, events)
    assert [(f.rule_id, (f.ts - T0) / 1000) for f in findings] == [("ai_label.missing_at_start", 320)]
    assert findings[0].window.start_ts == T0 + 300_000


def test_state_survives_a_restart_mid_gap(detector):
    state = AiLabelState()
    run(detector, [meta(t=0, host_kind="ai", ai_label_visible=True), meta(t=100, host_kind="ai")], state)
    restored = AiLabelState.model_validate_json(state.model_dump_json())
    tail = [danmaku("?", t=131)]
    assert found(detector, tail, restored) == [("ai_label.label_gap", 131)]
    assert run(detector, tail, AiLabelState.model_validate_json(state.model_dump_json())) == run(detector, tail, state)


def test_state_changes_only_when_something_happens(detector):
    # a clock tick that fires nothing leaves the durable state as it was (no changelog write per comment)
    state = AiLabelState()
    run(detector, [meta(t=0, host_kind="ai", ai_label_visible=True)], state)
    before = state.model_dump_json()
    run(detector, [danmaku("?", t=t) for t in range(1, 100)], state)
    assert state.model_dump_json() == before


def test_a_re_delivered_event_is_not_applied_twice(detector):
    # "label off" read again after "label back on" must not open a gap that never was
    off = meta(t=100, host_kind="ai", event_id="off")
    state = AiLabelState()
    run(
        detector,
        [meta(t=0, host_kind="ai", ai_label_visible=True), off, meta(t=115, host_kind="ai", ai_label_visible=True)],
        state,
    )
    assert found(detector, [off, danmaku("?", t=200), danmaku("?", t=900)], state) == []
