"""The spoken-price reader through the price-marking detector (shipped rules): reductions are never the sale
price, and negations, quoted rules, ordinal/temporal numbers and general advice are no price at all.

A reduction said with a comparison price of 299 on the tag (its basis shown) is judged by
``price.discount_arithmetic`` against 299 − reduction; a sale price said beside it by ``price.spoken_mismatch``
against the tag. "No spoken price" is observed through the detector too: a sale price said while nothing is on
air and nothing is shown makes the product pitched, and 70 s later ``price.unmarked``.
"""

from __future__ import annotations

import copy
import json

import pytest

from detectors.normalize import normalize
from detectors.timeline import run
from tests.builders import T0, danmaku, price_tag, say
from tests.conftest import SHARED_DATA

BASIS = {"price_basis": "前7日最低成交价"}


@pytest.fixture(scope="module")
def detector(ruleset):
    return ruleset.configured["price_marking"]


def found(detector, events) -> list[str]:
    return [f.rule_id for f in run(detector, events)]


def talk(detector, text: str, price: str, original: str | None = "299") -> list:
    """Findings of ``text`` said 10 s after a tag of ``price`` (comparison ``original``; a basis shown)."""
    extra = {"original_price": original, **BASIS} if original else BASIS
    return run(
        detector, [price_tag("p1", "羊绒围巾", price, t=0, event_id="tag", **extra), say(text, t=10, event_id="s")]
    )


def pitched(detector, text: str) -> bool:
    """Whether ``text`` said with nothing on air or shown is read as a sale price (the product is pitched)."""
    findings = run(detector, [say(text, t=0), danmaku("?", t=70)])
    return "price.unmarked" in [f.rule_id for f in findings]


# -- the user's report ------------------------------------------------------------------------------------

REPORTED = "直播间直降80，到手只要两百一十九"


def test_a_reduction_before_the_sale_price_that_adds_up_is_quiet(detector):
    assert talk(detector, REPORTED, "219") == []  # 299 − 80 = 219


def test_a_reduction_that_does_not_add_up_against_the_tag_is_reported(detector):
    findings = {f.rule_id: f for f in talk(detector, REPORTED, "249")}
    assert set(findings) == {"price.spoken_mismatch", "price.discount_arithmetic"}
    mismatch = findings["price.spoken_mismatch"]
    assert mismatch.details["spoken_price"] == "219" and [e.raw for e in mismatch.evidence] == ["只要两百一十九"]
    arithmetic = findings["price.discount_arithmetic"]
    assert arithmetic.details["discount"] == "直降80" and arithmetic.details["computed_price"] == "219"
    assert arithmetic.details["asked_price"] == "249" and arithmetic.details["asked_source"] == "tag"
    assert arithmetic.event_ids == ["tag", "s"] and [e.raw for e in arithmetic.evidence] == ["直降80"]


def test_a_sale_price_said_wrong_beside_a_reduction_is_judged_as_said(detector):
    findings = {f.rule_id: f for f in talk(detector, "直播间直降80，到手只要两百四十九", "219")}
    assert set(findings) == {"price.spoken_mismatch", "price.discount_arithmetic"}
    assert findings["price.spoken_mismatch"].details["spoken_price"] == "249"
    arithmetic = findings["price.discount_arithmetic"]
    assert arithmetic.details["asked_price"] == "249" and arithmetic.details["asked_source"] == "transcript"
    assert {e.raw for e in arithmetic.evidence} == {"直降80", "只要两百四十九"}


# -- reductions in every position, every cue, both numeral styles, with and without 元/块 ---------------------

# (said, reduction, sale price said or None); the comparison price is 299
REDUCTIONS = [
    # before the sale price, also when a sale cue or a sale suffix follows the reduction
    ("直降80到手219", "80", "219"),
    ("直降八十，两百一十九到手", "80", "219"),
    ("直降80，219到手", "80", "219"),
    ("立减八十块，到手价两百一十九", "80", "219"),
    ("立减80元到手只要219", "80", "219"),
    ("立省八十元，219到手", "80", "219"),
    ("省了80块，到手219", "80", "219"),
    ("比外面便宜八十块钱，两百一十九拿走", "80", "219"),
    ("便宜50带回家，只要两百四十九", "50", "249"),
    ("优惠了30只要269", "30", "269"),
    ("优惠了三十块，现价两百六十九", "30", "269"),
    ("直接降80，到手价219", "80", "219"),
    ("少80，只要219", "80", "219"),
    # after the sale price
    ("只要219，直降了80", "80", "219"),
    ("到手价两百一十九，立减八十", "80", "219"),
    ("219到手，优惠了80元", "80", "219"),
    ("现在只要两百一十九，帮大家省了八十块", "80", "219"),
    ("两百四十九包邮，比平时便宜了五十块", "50", "249"),
    # alone: no sale price said, the tag's price is the price asked
    ("直降80", "80", None),
    ("直播间立减八十块", "80", None),
    ("便宜50带回家", "50", None),
    ("优惠八十元", "80", None),
    ("帮你省八十", "80", None),
    ("直降八十块钱到手", "80", None),
]


@pytest.mark.parametrize("text, reduction, sale", REDUCTIONS)
def test_a_reduction_that_adds_up_is_quiet(detector, text, reduction, sale):
    assert talk(detector, text, str(299 - int(reduction))) == []


@pytest.mark.parametrize("text, reduction, sale", REDUCTIONS)
def test_a_reduction_is_never_read_as_the_sale_price(detector, text, reduction, sale):
    # a tag 30 above 299 − reduction: the arithmetic fails against the tag; a sale price said is compared with
    # the tag as said, and the reduction is never the price compared
    findings = {f.rule_id: f for f in talk(detector, text, str(299 - int(reduction) + 30))}
    arithmetic = findings.pop("price.discount_arithmetic")
    assert arithmetic.details["computed_price"] == str(299 - int(reduction))
    assert arithmetic.details["discount"].endswith(reduction)
    if sale is None:
        assert findings == {}
    else:
        assert list(findings) == ["price.spoken_mismatch"]
        assert findings["price.spoken_mismatch"].details["spoken_prices"] == [sale]


@pytest.mark.parametrize("text, reduction, sale", [r for r in REDUCTIONS if r[2] is None])
def test_a_reduction_alone_is_no_price_pitched_and_no_mismatch(detector, text, reduction, sale):
    assert not pitched(detector, text)
    assert talk(detector, text, "129", original=None) == []  # no comparison price: nothing to judge


def test_a_spoken_original_price_is_reduced_like_the_tags(detector):
    said = "原价两百九十九，直降八十，到手只要两百一十九"
    assert talk(detector, said, "219", original=None) == []
    findings = {f.rule_id: f for f in talk(detector, said, "249", original=None)}
    assert findings["price.discount_arithmetic"].details["original_price"] == "299"
    assert findings["price.discount_arithmetic"].details["asked_price"] == "249"
    findings = {f.rule_id: f for f in talk(detector, "原价299，直降80，只要249", "249", original=None)}
    assert findings["price.discount_arithmetic"].details["asked_source"] == "transcript"


def test_a_reduction_with_a_price_of_another_product_shown_is_not_judged_against_this_tag(detector):
    # the host talks about the teapot (59 shown) while the scarf's tag is the current one
    events = [
        price_tag("p2", "茶壶", "59", t=0),
        price_tag("p1", "围巾", "279", t=1, original_price="299", **BASIS),
        say("这个壶便宜了二十，只要五十九", t=10),
    ]
    assert found(detector, events) == []


def test_a_threshold_reduction_is_neither_a_reduction_nor_a_sale_price(detector):
    assert talk(detector, "满三百减五十，到手价二百九十九", "299") == []
    assert talk(detector, "满300减50包邮", "299") == []


def test_a_reduction_as_large_as_the_price_is_a_misreading_not_a_claim(detector):
    # no punctuation in the transcript: "80" and "219" run together
    assert talk(detector, "直降80219到手", "219") == []


def test_a_thousands_separator_is_part_of_the_price(detector):
    assert talk(detector, "只要1,299", "1299", original=None) == []
    assert [f.details["spoken_price"] for f in talk(detector, "只要1,299", "999", original=None)] == ["1299"]


def test_a_negated_reduction_is_not_judged(detector):
    assert talk(detector, "不是直降八十，是直降五十", "249") == []  # 299 − 50


# -- hard negatives: no spoken price, no mismatch, no discount -----------------------------------------------

HARD_NEGATIVES = [
    # negation and refusal
    "我不敢说全网最低价",
    "不是只要99哈",
    "不是九块九包邮哦",
    "我没说只要一百二十九",
    "我没有说原价两百九十九",
    # quoting a rule
    "平台规定不能说原价",
    "平台规定不能说原价两百九十九",
    "平台不让说原价199，大家看屏幕",
    # ordinal and temporal numbers
    "第一个链接",
    "开播第一天",
    "最后一单",
    "三号链接",
    "十点下播",
    "十点到手",
    "明天十二点前到手",
    "只要三号链接",
    "只要十点前下单",
    "最后十单",
    "前三名下单",
    # a floor or a question, not a reduction
    "至少两百",
    "多少钱",
    "至少99",
    "至少99包邮",
    # general advice
    "买之前看清楚尺码，理性消费",
    "大家按需购买，不要冲动下单",
    "有问题随时找客服，七天无理由",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_a_hard_negative_is_no_price_pitched(detector, text):
    assert not pitched(detector, text)


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_a_hard_negative_gives_no_finding_against_a_tag(detector, text):
    assert talk(detector, text, "129", original="169") == []


def test_the_positive_controls_are_read(detector):
    # the same observables fire on a real price, so the quiet hard negatives above mean something
    assert pitched(detector, "只要99")
    assert found(detector, [price_tag("p1", "x", "129", t=0), say("只要99", t=10)]) == ["price.spoken_mismatch"]
    assert found(
        detector, [price_tag("p1", "x", "129", t=0, original_price="169", **BASIS), say("直降五十", t=10)]
    ) == ["price.discount_arithmetic"]


@pytest.mark.parametrize(
    "text",
    ["不是只要99哈，是只要一百二十九", "三号链接，十点前下单只要一百二十九", "开播第一天，第一个链接到手价一百二十九"],
)
def test_ordinals_and_negations_beside_a_real_price_leave_only_the_real_price(detector, text):
    assert talk(detector, text, "129", original=None) == []
    [f] = talk(detector, text, "99", original=None)
    assert f.rule_id == "price.spoken_mismatch" and f.details["spoken_prices"] == ["129"]


def test_evidence_maps_back_to_the_raw_words(detector):
    raw = "家人们！直降 80，到手只要 两百一十九！"
    [f] = [f for f in talk(detector, raw, "249") if f.rule_id == "price.spoken_mismatch"]
    [ev] = f.evidence
    assert raw[ev.start : ev.end] == ev.raw == "只要 两百一十九" and f.ts == T0 + 10_000


@pytest.mark.parametrize(
    "text",
    ["平台规定不能说原价两百九十九", "平台不让说原价199，大家看屏幕", "我没有说原价两百九十九", "不是原价一百九十九哈"],
)
def test_a_comparison_price_refused_or_quoted_is_not_said(detector, text):
    # a tag without a basis: a comparison price really said would be price.comparison_without_basis
    assert found(detector, [price_tag("p1", "x", "129", t=0), say(text, t=10)]) == []
    assert found(detector, [price_tag("p1", "x", "129", t=0), say("原价两百九十九", t=10)]) == [
        "price.comparison_without_basis"
    ]


@pytest.mark.parametrize("text", ["可不是只要99嘛", "是不是只要99", "难道不是只要九十九吗"])
def test_an_agreeing_question_is_no_negation(detector, text):
    # "可不是", "是不是" agree or ask for agreement ("isn't it just 99!"): the price is said
    assert found(detector, [price_tag("p1", "x", "129", t=0), say(text, t=10)]) == ["price.spoken_mismatch"]


def test_the_cue_filter_changes_no_reading_of_real_speech(detector):
    """A text with a number but no cue word is not read further (``PriceSpeech._any_cue``): on real host replies and
    ASR the readings are those of the full reading, which the filter only skips."""
    speech = detector._speech
    unfiltered = copy.copy(speech)
    unfiltered._any_cue = None
    texts = [
        value
        for name in ("livechat_douyin_dev.jsonl", "liveamr_violations_train.jsonl")
        for line in (SHARED_DATA / name).read_text(encoding="utf-8").splitlines()
        for value in json.loads(line).values()
        if isinstance(value, str)
    ]
    texts += ["直降80到手价219", "原价299现在只要199", "打八折", "第二件半价", "满300减50", "9块9包邮", "今天3号链接"]
    normalised = [normalize(t) for t in texts]
    assert speech._any_cue is not None
    read = [speech.read(t) for t in normalised]
    assert read == [unfiltered.read(t) for t in normalised]
    assert sum(bool(r) for r in read) > 100  # prices were read: the comparison covers readings, not only silence
