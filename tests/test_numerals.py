"""Amounts of money as hosts say them → Decimal (detectors/numerals.py), and prices read from speech."""

from decimal import Decimal

import pytest

from detectors.normalize import normalize
from detectors.numerals import parse_amount, parse_discount_rate, parse_number
from detectors.price_speech import PriceSpeech, SpeechLexicon


@pytest.mark.parametrize(
    "said, amount",
    [
        ("99", "99"),
        ("９９", "99"),
        ("99.9", "99.9"),
        ("99.90", "99.90"),
        ("1,299", "1299"),
        ("一百二十九", "129"),
        ("两百", "200"),
        ("一千零五十", "1050"),
        ("一百零八", "108"),
        ("十九", "19"),
        ("二十", "20"),
        ("一千零十", "1010"),
        ("一万零五百", "10500"),
        ("十万", "100000"),
        ("两亿", "200000000"),
        ("两百五", "250"),
        ("一千二", "1200"),
        ("三万五", "35000"),  # the colloquial dropped last unit
        ("九九", "99"),
        ("一九九", "199"),  # read digit by digit
        ("九块九", "9.9"),
        ("九块九九", "9.99"),
        ("三十九块九毛九", "39.99"),
        ("一块五", "1.5"),
        ("十块", "10"),
        ("两块钱", "2"),
        ("九十九元", "99"),
        ("99块9", "99.9"),
        ("五毛", "0.5"),
        ("九毛九分", "0.99"),
        ("五角五分", "0.55"),
        ("九点九", "9.9"),
        ("1.2万", "12000"),
        ("三万", "30000"),
        ("2百", "200"),
        ("兩百塊", "200"),
        ("壹佰贰拾玖", "129"),  # traditional and financial numerals
    ],
)
def test_amounts_as_said(said, amount):
    value = parse_amount(said)
    assert isinstance(value, Decimal) and value == Decimal(amount)


@pytest.mark.parametrize(
    "said", ["", "abc", "百", "一百二三", "一点点", "1.1.1", "块", "九块九毛九九九", "一" * 40, "99" * 20]
)
def test_what_is_not_one_amount_is_none_never_an_error(said):
    assert parse_amount(said) is None


def test_numbers_without_currency():
    assert parse_number("九点九") == Decimal("9.9")
    assert parse_number("三万") == Decimal(30000)
    assert parse_number("九块九") is None  # money belongs to parse_amount


@pytest.mark.parametrize(
    "said, rate",
    [
        ("五", "5"),
        ("5", "5"),
        ("7.5", "7.5"),
        ("七五", "7.5"),
        ("75", "7.5"),
        ("八八", "8.8"),
        ("九五", "9.5"),
        ("七点五", "7.5"),
    ],
)
def test_discount_rates_in_tenths(said, rate):
    assert parse_discount_rate(said) == Decimal(rate)


@pytest.mark.parametrize("said", ["10", "零", "一百", ""])
def test_impossible_discount_rates(said):
    assert parse_discount_rate(said) is None


# -- prices in speech ------------------------------------------------------------------------------

SPEECH = PriceSpeech(SpeechLexicon())


def read(text: str):
    return SPEECH.read(normalize(text).text)


@pytest.mark.parametrize(
    "text, price",
    [
        ("只要99", "99"),
        ("到手价一百二十九", "129"),
        ("九块九包邮", "9.9"),
        ("今天只要三十九块九。", "39.9"),
        ("到手价：¥１２９！", "129"),
        ("只要九十九一件", "99"),
        ("直播间价是两百五", "250"),
    ],
)
def test_sale_prices(text, price):
    assert [s.value for s in read(text).sale] == [Decimal(price)]


@pytest.mark.parametrize(
    "text",
    [
        "两件只要99",
        "第二件只要九块九",
        "只要99两件",  # prices of several items or of the n-th
        "满99包邮",
        "券后到手价89",  # a threshold, a coupon price
        "只要两件",
        "只要3天",
        "只要一点点",
        "已经卖了十万单了",
        "价格就是屏幕上标的一百二十九元",
    ],
)
def test_not_a_unit_sale_price(text):
    assert read(text).sale == []


def test_a_comparison_price_is_not_the_sale_price():
    u = read("原价一百九十九，现在只要九十九")
    assert [s.value for s in u.original] == [Decimal(199)] and [s.value for s in u.sale] == [Decimal(99)]


def test_discounts_and_reductions():
    assert [s.value for s in read("今天打五折").rates] == [Decimal(5)]
    assert [s.value for s in read("全场七五折").rates] == [Decimal("7.5")]
    assert [s.value for s in read("今天半价").rates] == [Decimal(5)]
    assert read("第二件半价").rates == []  # a discount on the second item, not on the unit price
    assert [s.value for s in read("直播间立减五十").reductions] == [Decimal(50)]
    assert read("满300减50").reductions == []  # a threshold discount has no fixed final price
    assert read("减3斤").reductions == []  # a quantity, not money


def test_speech_without_a_number_is_read_as_nothing_and_the_shortcut_changes_no_reading(monkeypatch):
    """``PriceSpeech.read`` answers at once for speech without a number (or "半价"): every pattern it reads
    needs one. Held to the full reading on real Douyin host replies and on this file's examples."""
    import json
    import re

    from detectors import price_speech
    from tests.conftest import SHARED_DATA

    rows = (json.loads(line) for line in (SHARED_DATA / "livechat_douyin_dev.jsonl").open(encoding="utf-8"))
    texts = [r["response"] for r, _ in zip(rows, range(3000), strict=False) if r.get("response")]
    texts += ["只要99", "今天半价", "原价一百九十九，现在只要九十九", "直播间立减五十", "全场七五折", "九块九包邮"]
    said = [normalize(t) for t in texts]
    quick = [SPEECH.read(t) for t in said]
    monkeypatch.setattr(price_speech, "_ANY_NUMBER", re.compile(""))  # every text read in full
    assert quick == [SPEECH.read(t) for t in said]
    assert sum(bool(u) for u in quick) >= 6  # the readings compared are not all empty
    assert not read("原价很贵，现在只要这个价，打折包邮，直降")  # every cue, no number
