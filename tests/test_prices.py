"""Price-marking detector with the shipped rules (rules/prices.yaml): given a timed sequence of events →
exactly these findings. Times are seconds from T0 (tests/builders.py); ``day=`` reaches back whole days."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from detectors.prices import UNIDENTIFIED, PriceMarkingDetector, PriceState
from detectors.timeline import run
from tests.builders import T0, chat, danmaku, meta, on_air, order, price_tag, say

DAY = 86_400


@pytest.fixture(scope="module")
def detector(ruleset) -> PriceMarkingDetector:
    return ruleset.configured["price_marking"]  # type: ignore[return-value]


def at(t: float) -> int:
    return T0 + int(t * 1000)


def found(detector, events, state=None) -> list[tuple[str, float]]:
    """(rule id, seconds from T0) of every finding, in order."""
    return [(f.rule_id, (f.ts - T0) / 1000) for f in run(detector, events, state)]


# -- price.unmarked --------------------------------------------------------------------------------


def test_a_product_on_air_without_a_tag_is_reported_on_the_first_event_after_the_grace(detector):
    events = [
        on_air("p1", t=0),
        danmaku("好看", t=30),
        danmaku("多少钱", t=60),
        danmaku("链接呢", t=61),
        danmaku("？", t=90),
    ]
    assert found(detector, events) == [("price.unmarked", 61)]  # at exactly 60 s the grace has not run out


def test_the_unmarked_finding_says_what_and_how_long(detector):
    events = [on_air("p1", t=0, title="羊绒围巾", event_id="m1"), say("看看这个颜色", t=75, event_id="s1")]
    [f] = run(detector, events)
    assert f.severity == "medium" and f.legal_basis.startswith("《中华人民共和国价格法》第十三条")
    assert f.window.start_ts == at(0) and f.window.end_ts == at(75)
    assert f.event_ids == ["m1", "s1"] and f.evidence[0].event_id == "m1"
    assert f.details["product_id"] == "p1" and f.details["missing_s"] == 75 and f.details["cause"] == "on_air"
    assert "75 s without a visible price" in f.summary


def test_one_finding_per_episode_re_reported_every_ten_minutes(detector):
    events = [on_air("p1", t=0)] + [danmaku("?", t=t) for t in range(30, 1300, 30)]
    assert found(detector, events) == [("price.unmarked", 90), ("price.unmarked", 690), ("price.unmarked", 1290)]
    ids = [f.finding_id for f in run(detector, events)]
    assert len(set(ids)) == 3


def test_a_tag_within_the_grace_period_is_no_finding(detector):
    events = [on_air("p1", t=0), price_tag("p1", "围巾", "99", t=45), say("看看这个颜色", t=200)]
    assert found(detector, events) == []


def test_a_hidden_tag_opens_an_episode_and_a_visible_one_closes_it(detector):
    events = [
        on_air("p1", t=0),
        price_tag("p1", "围巾", "99", t=5),
        price_tag("p1", "围巾", "99", t=20, visible=False),
        danmaku("?", t=79),
        danmaku("?", t=81),
        price_tag("p1", "围巾", "99", t=100),
        danmaku("?", t=900),
    ]
    findings = run(detector, events)
    assert [(f.rule_id, (f.ts - T0) / 1000) for f in findings] == [("price.unmarked", 81)]
    assert findings[0].details["cause"] == "tag_hidden"


def test_a_product_leaving_the_air_or_the_stream_ending_closes_the_episode(detector):
    assert (
        found(
            detector, [on_air("p1", t=0), on_air("p2", t=30), price_tag("p2", "茶", "59", t=35), say("大家看看", t=200)]
        )
        == []
    )
    assert found(detector, [on_air("p1", t=0), meta(t=50, status="ended"), danmaku("?", t=300)]) == []


def test_a_price_pitched_while_nothing_is_on_air_or_shown(detector):
    findings = run(detector, [say("这个只要九块九包邮", t=0), say("还有最后十单", t=70)])
    assert [f.rule_id for f in findings] == ["price.unmarked"]
    assert findings[0].details["product_id"] == UNIDENTIFIED and findings[0].details["cause"] == "pitched"


def test_a_deadline_survives_a_restart(detector):
    state = PriceState()
    run(detector, [on_air("p1", t=0)], state)
    restored = PriceState.model_validate_json(state.model_dump_json())
    assert found(detector, [danmaku("?", t=61)], restored) == [("price.unmarked", 61)]


# -- price.spoken_mismatch ---------------------------------------------------------------------------


def test_a_spoken_price_below_the_tag(detector):
    raw = "家人们，今天到手价只要八十九！"
    findings = run(detector, [price_tag("p1", "围巾", "99", t=0, event_id="tag"), say(raw, t=10, event_id="s")])
    [f] = findings
    assert f.rule_id == "price.spoken_mismatch" and f.severity == "high"
    assert f.details["tag_price"] == "99" and f.details["spoken_price"] == "89"
    assert f.details["direction"] == "below_tag" and f.event_ids == ["tag", "s"]
    [ev] = f.evidence
    assert ev.raw == raw[ev.start : ev.end] == "只要八十九" and ev.normalized == "只要八十九"


@pytest.mark.parametrize("spoken, tag", [("九块九包邮", "19.90"), ("只要99", "89"), ("到手价一百二十九", "99")])
def test_spoken_prices_that_differ_from_the_tag(detector, spoken, tag):
    assert found(detector, [price_tag("p1", "x", tag, t=0), say(spoken, t=5)]) == [("price.spoken_mismatch", 5)]


@pytest.mark.parametrize(
    "spoken, tag",
    [
        ("到手价一百二十九", "129.00"),
        ("九块九包邮", "9.90"),
        ("只要99.9", "99.90"),
        ("今天只要三十九块九", "39.9"),
        ("券后到手价八十九", "99"),
        ("满99包邮", "59"),
        ("两件只要一百五十九", "99"),
        ("只要两件", "99"),
        ("直播间直降80，到手只要两百一十九", "219"),
        ("便宜50带回家", "249"),  # a reduction is not the sale price
        ("不是只要99哈", "129"),
        ("三号链接十点下播", "129"),  # a negation, ordinal and temporal numbers
    ],
)
def test_spoken_prices_that_agree_or_are_not_the_unit_price(detector, spoken, tag):
    assert found(detector, [price_tag("p1", "x", tag, t=0), say(spoken, t=5)]) == []


def test_a_price_of_another_product_shown_in_the_room_is_no_mismatch(detector):
    events = [price_tag("p1", "茶", "59", t=0), price_tag("p2", "壶", "129", t=1), say("这个壶只要五十九", t=5)]
    assert found(detector, events) == []


def test_host_chat_counts_viewer_chat_does_not(detector):
    events = [
        price_tag("p1", "茶", "59", t=0),
        chat("只要49！", role="viewer", t=5),
        chat("只要49！", role="host", t=6),
    ]
    assert found(detector, events) == [("price.spoken_mismatch", 6)]


def test_the_same_wrong_price_repeated_is_one_finding_per_ten_minutes(detector):
    events = [price_tag("p1", "茶", "59", t=0)] + [say("只要四十九", t=t) for t in (10, 60, 300, 620)]
    assert found(detector, events) == [("price.spoken_mismatch", 10), ("price.spoken_mismatch", 620)]


# -- price.comparison_without_basis -------------------------------------------------------------------


def test_an_original_price_without_its_basis(detector):
    [f] = run(detector, [price_tag("p1", "围巾", "99", t=0, original_price="199")])
    assert f.rule_id == "price.comparison_without_basis" and f.details["source"] == "tag"
    assert f.evidence[0].field == "original_price" and f.evidence[0].raw == "199"


def test_a_basis_shown_is_no_finding(detector):
    events = [
        price_tag("p1", "围巾", "99", t=0, original_price="199", price_basis="前7日最低成交价"),
        say("原价一百九十九，今天只要九十九", t=10),
    ]
    assert found(detector, events) == []


def test_an_original_price_said_while_the_tag_gives_no_basis(detector):
    events = [price_tag("p1", "围巾", "99", t=0), say("原价一百九十九，今天只要九十九", t=10)]
    findings = run(detector, events)
    assert [f.rule_id for f in findings] == ["price.comparison_without_basis"]
    assert findings[0].details["source"] == "transcript" and findings[0].evidence[0].raw == "原价一百九十九"


def test_a_re_sent_tag_is_not_reported_again(detector):
    events = [price_tag("p1", "围巾", "99", t=t, original_price="199") for t in (0, 30, 60)]
    assert found(detector, events) == [("price.comparison_without_basis", 0)]


# -- price.fictitious_original --------------------------------------------------------------------------

BASIS = {"price_basis": "前7日最低成交价"}


def test_an_original_price_above_every_price_charged_in_seven_days(detector):
    events = [
        order("p1", "129", t=-5 * DAY),
        order("p1", "99", t=-2 * DAY),
        price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS),
    ]
    [f] = run(detector, events)
    assert f.rule_id == "price.fictitious_original" and f.severity == "high"
    assert f.details["reference"] == "orders" and f.details["highest_charged"] == "129"
    assert f.details["lowest_charged"] == "99" and f.details["days_with_prices"] == 2
    assert f.window.start_ts == at(-7 * DAY) and f.window.end_ts == at(0)
    assert "虚构原价" in f.summary and f.score == 0.95


def test_an_original_price_really_charged_within_seven_days_is_no_finding(detector):
    events = [
        order("p1", "199", t=-6 * DAY),
        order("p1", "129", t=-1 * DAY),
        price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS),
    ]
    assert found(detector, events) == []


def test_a_price_charged_more_than_seven_days_ago_no_longer_counts(detector):
    events = [
        order("p1", "199", t=-9 * DAY),
        order("p1", "99", t=-1 * DAY),
        price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS),
    ]
    assert found(detector, events) == [("price.fictitious_original", 0)]


def test_with_no_order_in_the_window_the_last_price_charged_is_the_reference(detector):
    events = [order("p1", "159", t=-20 * DAY), price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS)]
    [f] = run(detector, events)
    assert f.details["reference"] == "last_order" and f.details["highest_charged"] == "159"
    assert (
        found(
            detector,
            [order("p1", "199", t=-20 * DAY), price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS)],
        )
        == []
    )


def test_without_orders_the_prices_shown_on_earlier_days_are_the_reference(detector):
    events = [
        price_tag("p1", "围巾", "129", t=-3 * DAY),
        price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS),
    ]
    [f] = run(detector, events)
    assert f.details["reference"] == "shown" and f.score == 0.7
    # prices shown only today, with the comparison, prove nothing either way
    assert (
        found(
            detector,
            [price_tag("p1", "围巾", "99", t=-60), price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS)],
        )
        == []
    )


def test_no_history_no_judgement(detector):
    assert found(detector, [price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS)]) == []


def test_a_suggested_retail_price_marked_as_such_is_exempt(detector):
    events = [
        order("p1", "99", t=-DAY),
        price_tag("p1", "围巾", "99", t=0, original_price="199", price_basis="厂商建议零售价"),
    ]
    assert found(detector, events) == []


def test_a_fictitious_original_price_said_by_the_host(detector):
    events = [
        order("p1", "89", t=-DAY),
        price_tag("p1", "围巾", "79", t=0, original_price="89", **BASIS),
        say("原价两百九十九的，今天只要七十九", t=10),
    ]
    findings = run(detector, events)
    assert [f.rule_id for f in findings] == ["price.fictitious_original"]
    assert findings[0].details["original_price"] == "299" and findings[0].details["source"] == "transcript"


def test_price_history_survives_a_restart(detector):
    state = PriceState()
    run(detector, [order("p1", "129", t=-5 * DAY), order("p1", "99", t=-2 * DAY)], state)
    blob = state.model_dump_json()
    assert '"129"' in blob and "129.0" not in blob  # money as Decimal strings, never floats
    restored = PriceState.model_validate_json(blob)
    tag = price_tag("p1", "围巾", "99", t=0, original_price="199", **BASIS)
    assert found(detector, [tag], restored) == [("price.fictitious_original", 0)]


# -- price.discount_arithmetic -------------------------------------------------------------------------


def test_a_spoken_discount_that_does_not_add_up(detector):
    events = [
        price_tag("p1", "围巾", "129", t=0, original_price="199", **BASIS),
        say("原价一百九十九，今天打五折，只要一百二十九", t=10),
    ]
    [f] = run(detector, events)
    assert f.rule_id == "price.discount_arithmetic"
    assert f.details["computed_price"] == "99.50" and f.details["asked_price"] == "129"
    assert {e.raw for e in f.evidence} == {"原价一百九十九", "只要一百二十九", "打五折"}


def test_a_discount_on_the_tag_itself(detector):
    [f] = run(detector, [price_tag("p1", "限时5折 羊绒围巾", "129", t=0, original_price="199", **BASIS)])
    assert f.rule_id == "price.discount_arithmetic" and f.evidence[0].field == "title"
    assert f.evidence[0].raw == "5折"


def test_a_reduction_that_does_not_add_up(detector):
    events = [price_tag("p1", "围巾", "169", t=0, original_price="199", **BASIS), say("直播间立减五十", t=10)]
    assert found(detector, events) == [("price.discount_arithmetic", 10)]


def test_a_reduction_followed_by_the_sale_price_is_judged_against_the_tag(detector):
    # a user's report: "直降80，到手只要两百一十九" read 80 as the sale price — a false mismatch when the tag
    # showed 219 (299 − 80), and no arithmetic finding when it showed 249
    said = "直播间直降80，到手只要两百一十九"
    assert found(detector, [price_tag("p1", "围巾", "219", t=0, original_price="299", **BASIS), say(said, t=10)]) == []
    findings = run(detector, [price_tag("p1", "围巾", "249", t=0, original_price="299", **BASIS), say(said, t=10)])
    assert sorted(f.rule_id for f in findings) == ["price.discount_arithmetic", "price.spoken_mismatch"]
    [f] = [f for f in findings if f.rule_id == "price.discount_arithmetic"]
    assert f.details["computed_price"] == "219" and f.details["asked_price"] == "249"


@pytest.mark.parametrize(
    "spoken, price",
    [
        ("今天七五折", "149"),  # 149.25 → 149: in the buyer's favour
        ("今天打五折", "99.50"),
        ("立减一百", "99"),
        ("满三百减五十", "199"),
        ("第二件半价", "199"),
    ],
)
def test_discounts_that_add_up_or_cannot_be_judged(detector, spoken, price):
    events = [price_tag("p1", "围巾", price, t=0, original_price="199", **BASIS), say(spoken, t=10)]
    assert [r for r, _ in found(detector, events) if r == "price.discount_arithmetic"] == []


# -- the whole room, determinism, bounds -------------------------------------------------------------------


def test_a_room_replayed_gives_the_same_findings_with_the_same_ids(detector):
    events = [
        order("p1", "99", t=-DAY),
        on_air("p1", t=0),
        on_air("p2", t=1),
        price_tag("p1", "围巾", "99", t=5, original_price="199", **BASIS),
        say("今天只要八十九", t=20),
        danmaku("?", t=70),
    ]
    a, b = run(detector, events), run(detector, events)
    assert a == b
    assert [f.rule_id for f in a] == ["price.fictitious_original", "price.spoken_mismatch", "price.unmarked"]
    assert a[-1].details["product_id"] == "p2"


def test_products_per_room_are_capped_keeping_those_on_air(ruleset):
    base = ruleset.configured["price_marking"]
    small = PriceMarkingDetector(base.settings.model_copy(update={"max_products": 3}), base.rules, base.context)
    state = PriceState()
    run(
        small,
        [on_air("live", t=0), price_tag("live", "x", "1", t=0)] + [order(f"p{i}", "9", t=i) for i in range(10)],
        state,
    )
    assert len(state.products) == 3 and "live" in state.products


def test_history_keeps_one_min_max_per_day_for_eight_days(detector):
    state = PriceState()
    run(detector, [order("p1", str(30 + d), t=d * DAY + h * 3600) for d in range(-20, 1) for h in (0, 5)], state)
    days = state.products["p1"].days
    assert len(days) <= 9 and all(isinstance(d.order_min, Decimal) for d in days.values())


def test_finding_json_carries_money_as_text(detector):
    [f] = run(detector, [price_tag("p1", "围巾", "99", t=0, original_price="199")])
    data = json.loads(f.model_dump_json())
    assert data["details"]["original_price"] == "199"


def test_a_re_delivered_event_is_not_applied_twice(detector):
    # a Kafka worker restarted after the state was flushed reads the events after its committed offset
    # again: an old tag coming back must not replace the newer one
    old_tag = price_tag("p1", "围巾", "159", t=0, event_id="tag-159")
    events = [
        on_air("p1", t=0),
        old_tag,
        price_tag("p1", "围巾", "99", t=10, event_id="tag-99"),
        say("今天只要九十九", t=20, event_id="s1"),
    ]
    state = PriceState()
    assert run(detector, events, state) == []
    assert run(detector, [old_tag, say("今天只要九十九", t=20, event_id="s1"), say("就九十九", t=30)], state) == []
    assert state.products["p1"].tag.price == Decimal("99")


def test_price_cards_end_with_the_stream(detector):
    events = [
        on_air("p1", t=0),
        price_tag("p1", "围巾", "99", t=1),
        meta(t=100, status="ended"),
        on_air("p1", t=200),
        danmaku("?", t=300),
    ]
    assert found(detector, events) == [("price.unmarked", 300)]


def test_a_flood_of_spoken_prices_makes_a_small_finding(detector):
    [f] = run(detector, [price_tag("p1", "围巾", "99", t=0), say("只要9元，" * 4000, t=1)])
    assert len(f.evidence) == 20 and len(f.model_dump_json()) < 16 * 1024
