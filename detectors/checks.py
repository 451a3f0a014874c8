"""The contract every detector keeps, as checks anyone writing a detector can run:

    from detectors.checks import check_detector
    check_detector(MyDetector(settings, rules, RuleContext("dev")))

State survives serialisation; the same input and state give the same output; ``may_change`` says yes
whenever the state changes; odd-but-valid events and
20,000-character texts raise nothing and make no huge finding; every finding names one of the detector's
rules and cites its law; each rule's inline examples hold. ``talk`` is input that must make the detector
report something (the default is a selling room with a claim, a price, an AI host and a hired flood).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from decimal import Decimal
from itertools import count
from typing import Any

from pydantic import BaseModel

from detectors.base import AnyDetector, falls_due
from detectors.timeline import run
from schemas.events import (
    EVENT_KINDS,
    BaseEvent,
    ChatEvent,
    DanmakuEvent,
    OrderEvent,
    PriceTagEvent,
    ProductOnAir,
    StreamMetaEvent,
    TranscriptEvent,
    is_viewer_comment,
)
from schemas.rules import Rule

T0 = 1_769_947_200_000  # 2026-02-01 20:00 +08:00
#: the largest finding a detector may publish (Kafka's default message limit is 1 MB)
MAX_FINDING_BYTES = 64 * 1024


def _events() -> Callable[..., dict[str, Any]]:
    ids = count(1)
    return lambda t=0.0: {
        "event_id": f"c{next(ids)}",
        "room_id": "check",
        "platform": "check",
        "ts": T0 + int(t * 1000),
    }


def _odd_events() -> list[BaseEvent]:
    e = _events()

    def say(text: str) -> TranscriptEvent:
        return TranscriptEvent(**e(), text=text, start_ms=0, end_ms=0)

    return [
        say(""),
        say("   "),
        say("\u200b\u200b\u200b"),
        say("全网最低" * 2000),
        say("🤣🤣🤣 ㊗️ 𝕓𝕖𝕤𝕥"),
        ChatEvent(**e(), user_id="h", text="", role="host"),
        ChatEvent(**e(), user_id="h", text="第一" * 500, role="operator"),
        DanmakuEvent(**e(), user_id="x", text="減\u00ad肥"),
        PriceTagEvent(**e(), product_id="p", title="", price=Decimal("0")),
        PriceTagEvent(**e(), product_id="p", title="全网最低价 国家级", price=Decimal("99999999.99"), category="drug"),
        StreamMetaEvent(**e(), products=[ProductOnAir(product_id="p", category="cosmetics")]),
        OrderEvent(**e(), product_id="p", price=Decimal("0.01"), qty=10_000),
    ]


def selling_talk() -> list[BaseEvent]:
    """A selling room that breaks a rule of every built-in detector."""
    e = _events()
    return [
        # an AI host without its label, a comparison price without a basis
        StreamMetaEvent(**e(0), products=[ProductOnAir(product_id="tea-1", category="food")], host_kind="ai"),
        PriceTagEvent(
            **e(1),
            product_id="tea-1",
            title="养生茶 全网最低",
            price=Decimal("59"),
            category="food",
            original_price=Decimal("99"),
        ),
        TranscriptEvent(**e(2), text="这是全网最低价", start_ms=0, end_ms=0),
        TranscriptEvent(**e(3), text="喝了能降血压，根治失眠", start_ms=0, end_ms=0),
        ChatEvent(**e(4), user_id="host", text="国家级品质", role="host"),
        TranscriptEvent(**e(5), text="已经卖了十万单了", start_ms=0, end_ms=0),
        TranscriptEvent(**e(5.5), text="今天到手价只要四十九", start_ms=0, end_ms=0),
        ChatEvent(**e(6), user_id="u1", text="好喝"),
        # a hired ring posting one testimonial
        *[
            DanmakuEvent(**e(7 + i), user_id=f"bot{i}", text=f"真给力，{i % 3 + 1}颗就瘦了{i % 5 + 2}斤")
            for i in range(12)
        ],
        # a professional account posting that testimonial in four rooms (account_rings: state per account)
        *[
            DanmakuEvent(**{**e(20 + i), "room_id": f"check-{i}"}, user_id="pro", text=f"亲测{i + 2}颗就瘦了{i + 3}斤")
            for i in range(4)
        ],
    ]


#: texts that make backtracking patterns or per-match rescans take minutes, or findings megabytes
LONG_TEXTS = [
    "1" * 19_990,
    "已售" + "1" * 19_990,
    "最佳" * 9_000,
    "已售10万单" * 2_000,
    "1.1" * 6_600,
    "百分之" * 6_600,
    "第一个链接" * 4_000,
    "减" + "\u200b" * 19_000 + "肥",
]


def check_declaration(detector: AnyDetector) -> None:
    cls = type(detector)
    assert cls.name, "a detector has a name (rule files refer to it)"
    assert cls.kinds and cls.kinds <= set(EVENT_KINDS), f"kinds {sorted(cls.kinds)} are not all event kinds"
    assert issubclass(cls.rule_model, Rule), "the rule model extends schemas.rules.Rule"
    assert issubclass(cls.settings_model, BaseModel) and issubclass(cls.state_model, BaseModel)
    assert cls.durable_state or detector.history_ms > 0, (
        "state that is not durable says how much input rebuilds it (history_ms)"
    )


def check_odd_events(detector: AnyDetector) -> None:
    state = detector.new_state()
    run(detector, _odd_events(), state)
    assert isinstance(state, detector.state_model)


def check_deterministic(detector: AnyDetector, talk: Sequence[BaseEvent]) -> None:
    s1, s2 = detector.new_state(), detector.new_state()
    assert run(detector, list(talk), s1) == run(detector, list(talk), s2), "same input and state, other findings"
    assert s1 == s2, "same input and state, other state"


def check_state_round_trip(detector: AnyDetector, talk: Sequence[BaseEvent]) -> None:
    state = detector.new_state()
    run(detector, list(talk[:3]), state)
    restored = detector.state_model.model_validate_json(state.model_dump_json())
    rest = list(talk[3:])
    assert run(detector, rest, copy.deepcopy(state)) == run(detector, rest, restored), (
        "the state read back from JSON decides otherwise than the state itself"
    )


def check_findings_cite_rules(detector: AnyDetector, talk: Sequence[BaseEvent]) -> None:
    findings = run(detector, [*talk, *_odd_events()], detector.new_state())
    assert findings, "the talk should make this detector report something"
    rules = {r.id: r for r in detector.all_rules}
    for f in findings:
        rule = rules.get(f.rule_id)
        assert rule is not None, f"finding of unknown rule {f.rule_id}"
        assert f.rule_version == rule.version and f.legal_basis == rule.legal_basis, f.rule_id
        assert f.ruleset_version == detector.context.ruleset_version and f.detector == detector.name
        assert f.event_ids and all(e.event_id in f.event_ids for e in f.evidence), (
            f"{f.rule_id}: evidence from an event the finding does not list"
        )


def check_may_change(detector: AnyDetector, talk: Sequence[BaseEvent]) -> None:
    """``may_change`` says yes before every event whose ``detect`` changes the state — a worker skips
    serialising a room after an event it says no for, so a wrong no loses a change after a restart — and a detector
    that a viewer's comment is only the clock of does nothing at one at which no report falls due. Over the
    talk, odd events, and viewers' comments long after them: an AI host whose label is shown, then hidden, and a
    product on air without a price, so that reports fall due at those comments."""
    end = (max(event.ts for event in talk) - T0) / 1000 if talk else 0

    def e(t: float) -> dict[str, Any]:  # ids the talk does not use
        return {**_events()(end + t), "event_id": f"later-{t}"}

    on_air = [ProductOnAir(product_id="unpriced")]
    later: list[BaseEvent] = [
        StreamMetaEvent(**e(0), products=on_air, host_kind="ai", ai_label_visible=True),
        StreamMetaEvent(**e(1), products=on_air, host_kind="ai", ai_label_visible=False),
        *(ChatEvent(**e(dt), user_id="u2", text="好喝吗") for dt in (12, 30, 61, 301, 1_801, 7_201, 86_401)),
    ]
    odd = [event.model_copy(update={"event_id": f"odd-{i}"}) for i, event in enumerate(_odd_events())]
    state = detector.new_state()
    for event in [*talk, *odd, *later]:
        if event.kind not in detector.kinds:
            continue
        before = state.model_dump_json()
        said = detector.may_change(event, state)
        # a comment that is only the clock of this detector and at which nothing falls due is not routed to it
        skipped = (
            detector.viewer_comments_as_clock and is_viewer_comment(event) and not falls_due(event, state.next_due)
        )
        found = run(detector, [event], state)
        assert said or state.model_dump_json() == before, (
            f"{event.kind} {event.event_id}: detect changed the state, but may_change said it would not"
        )
        assert not skipped or (not found and state.model_dump_json() == before), (
            f"{event.kind} {event.event_id}: a viewer's comment at which nothing falls due (the engine does not "
            "route it here: viewer_comments_as_clock) led to a finding or changed the state"
        )


def check_long_texts(detector: AnyDetector) -> None:
    state = detector.new_state()
    e = _events()
    for i, text in enumerate(LONG_TEXTS):
        events: list[BaseEvent] = [
            TranscriptEvent(**e(i), text=text, start_ms=0, end_ms=0),
            ChatEvent(**e(i), user_id="h", text=text, role="host"),
        ]
        for f in run(detector, events, state):
            assert len(f.model_dump_json()) < MAX_FINDING_BYTES, f"{f.rule_id}: a finding over 64 KiB"


def check_rule_examples(detector: AnyDetector) -> None:
    for rule in detector.rules:
        problems = detector.check_examples(rule)
        assert not problems, f"{rule.id}: {problems}"


def check_detector(detector: AnyDetector, talk: Sequence[BaseEvent] | None = None) -> None:
    """Run every check; an ``AssertionError`` says which one failed and why."""
    talk = selling_talk() if talk is None else talk
    for check in (check_declaration, check_odd_events, check_long_texts, check_rule_examples):
        check(detector)
    for check_with_talk in (check_deterministic, check_state_round_trip, check_findings_cite_rules, check_may_change):
        check_with_talk(detector, talk)
