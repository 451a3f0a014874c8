"""What a host says about prices, read from the normalised transcript: the sale price ("只要99",
"到手价一百二十九", "九块九包邮"), a comparison price ("原价一百九十九"), a discount rate ("打五折",
"七五折", "半价") and a reduction ("立减50", "直降三十").

The cue words come from the rules (``PriceSettings.speech`` in rules/prices.yaml). Spans are in the
normalised text's coordinates; every quantifier is bounded (linear time on 20,000 characters). Conservative:
quantities, multi-item and n-th-item prices, coupon and threshold prices, reductions and negated cues are
never read as the sale price.

The reading rules, with examples: docs/prices_and_ai_labels.md ("Spoken prices").
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain

from pydantic import BaseModel, ConfigDict, Field

from detectors.normalize import NormalizedText, alternation, clause_breaks
from detectors.numerals import DIGITS, NUMERAL_CHARS, parse_amount, parse_discount_rate

_D = "".join(sorted(DIGITS))
_NUM = rf"(?:[0-9][0-9.]{{0,11}}[十百千万]{{0,2}}|[{NUMERAL_CHARS}]{{1,12}})"
_CENTS = rf"(?:[毛角][{_D}0-9]?分?)"
AMOUNT = rf"{_NUM}(?:(?:块钱|块|元)(?:[{_D}0-9]{{0,2}}{_CENTS}?))?{_CENTS}?"
_RATE = rf"(?:[1-9][0-9]?(?:\.[0-9])?|[{_D}]{{1,2}}|[{_D}]点[{_D}])"
#: what every reading below needs: a number (AMOUNT, _RATE) or "半价". Three host utterances in four hold none,
#: and are then read with one search instead of five patterns and the clause breaks
_ANY_NUMBER = re.compile(rf"[0-9{NUMERAL_CHARS}]|半价")
#: raw characters that end a clause; when the normaliser drops one, no amount spans it


class SpeechLexicon(BaseModel):
    """Cue words for prices in speech; every list is data (rules/prices.yaml, ``settings.speech``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: words right before a sale price: "只要99", "到手价一百二十九"
    sale_cues: list[str] = Field(
        default_factory=lambda: [
            "只要",
            "只需",
            "仅需",
            "仅要",
            "到手价",
            "到手",
            "秒杀价",
            "直播间价",
            "活动价",
            "福利价",
            "现价",
            "特价",
            "售价",
        ]
    )
    #: words right after a sale price: "九块九包邮", "99带回家"
    sale_suffixes: list[str] = Field(default_factory=lambda: ["包邮", "到手", "带回家", "拿走", "秒杀"])
    #: short words allowed between a cue and its number: "只要就99" is rare, "到手价是99" is not
    fillers: list[str] = Field(default_factory=lambda: ["就是", "也就", "就", "才", "是", "为", "都", "也"])
    #: words right before a comparison price: "原价一百九十九"
    original_cues: list[str] = Field(
        default_factory=lambda: [
            "原价",
            "划线价",
            "日常价",
            "专柜价",
            "市场价",
            "吊牌价",
            "零售价",
            "指导价",
            "平时卖",
            "平常卖",
            "以前卖",
            "之前卖",
        ]
    )
    #: words right before a reduction: "立减50", "直降三十", "便宜了五十"; the number is never the sale price
    reduction_cues: list[str] = Field(
        default_factory=lambda: ["立减", "直降", "直接降", "降价", "立省", "省", "减", "优惠", "便宜", "少"]
    )
    #: words that end in a reduction cue but are no reduction: "至少99" is a floor, "多少" a question
    not_reductions: list[str] = Field(default_factory=lambda: ["至少", "最少", "多少", "不少", "缺少"])
    #: a cue right after one of these is denied or refused, not said: "不是只要99", "不能说原价199"
    negations: list[str] = Field(
        default_factory=lambda: [
            "不是",
            "不是说",
            "并不是",
            "并非",
            "没有",
            "没有说",
            "没说",
            "不敢说",
            "不能说",
            "不让说",
            "不准说",
        ]
    )
    #: ... unless the negation is part of one of these, which agree or ask for agreement: "可不是只要99嘛"
    not_negations: list[str] = Field(default_factory=lambda: ["可不是", "是不是", "难道不是"])
    #: the price after this word is a threshold or a coupon price, not the sale price: "满99包邮", "券后89"
    not_sale_before: list[str] = Field(
        default_factory=lambda: [
            "满",
            "至少",
            "最少",
            "券后",
            "用券",
            "减",
            "省",
            "便宜",
            "优惠",
            "差价",
            "贵",
            "返",
            "红包",
            "运费",
            "邮费",
            "定金",
            "订金",
            "尾款",
            "补贴",
        ]
    )
    #: a number followed by one of these is a quantity ("两件", "3天"), not a price
    measure_words: list[str] = Field(
        default_factory=lambda: [
            "件",
            "个",
            "瓶",
            "盒",
            "袋",
            "包",
            "斤",
            "克",
            "支",
            "片",
            "罐",
            "箱",
            "套",
            "双",
            "条",
            "只",
            "份",
            "次",
            "天",
            "颗",
            "粒",
            "毫升",
            "ml",
            "kg",
            "g",
            "号",
            "分钟",
            "秒",
            "小时",
            "点",
            "岁",
            "年",
            "月",
            "人",
            "%",
            "单",
            "位",
            "码",
            "米",
            "斤装",
            "组",
            "提",
            "枚",
            "根",
            "张",
            "台",
        ]
    )


@dataclass(frozen=True, slots=True)
class Said:
    """One value in the utterance, with its span in the normalised text and the cue that introduced it."""

    value: Decimal
    start: int
    end: int
    cue: str


@dataclass
class Utterance:
    sale: list[Said] = field(default_factory=list)
    original: list[Said] = field(default_factory=list)
    rates: list[Said] = field(default_factory=list)  # value: tenths ("五折" → 5)
    reductions: list[Said] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.sale or self.original or self.rates or self.reductions)

    @property
    def discount_terms(self) -> list[Said]:
        return self.rates + self.reductions


class _EndsWith:
    """Whether text[:pos] ends with one of the words: one regex on a short tail, not a scan per word."""

    def __init__(self, words: Sequence[str]) -> None:
        self._longest = max((len(w) for w in words), default=0)
        self._re = re.compile(f"(?:{alternation(words)})\\Z") if self._longest else None

    def __call__(self, text: str, pos: int) -> bool:
        return self._re is not None and self._re.search(text, max(0, pos - self._longest), pos) is not None


class PriceSpeech:
    """Reads an utterance with one lexicon (built once per ruleset)."""

    def __init__(self, lexicon: SpeechLexicon) -> None:
        self.lexicon = lexicon
        fillers = alternation(lexicon.fillers)
        opt_filler = f"(?:{fillers})?" if fillers else ""
        self._sale_cue = re.compile(rf"({alternation(lexicon.sale_cues)}){opt_filler}({AMOUNT})")
        self._sale_suffix = re.compile(rf"({AMOUNT})({alternation(lexicon.sale_suffixes)})")
        self._original = re.compile(rf"({alternation(lexicon.original_cues)}){opt_filler}({AMOUNT})")
        self._reduction = re.compile(rf"({alternation(lexicon.reduction_cues)})了?({AMOUNT})")
        self._rate = re.compile(rf"(?:打)?({_RATE})折|(半价)")
        self._measure = tuple(sorted(lexicon.measure_words, key=len, reverse=True))
        self._not_sale = _EndsWith(lexicon.not_sale_before)
        self._sale_word = re.compile(alternation(lexicon.sale_cues + lexicon.sale_suffixes) or "(?!)")
        self._measure_word = re.compile(alternation(lexicon.measure_words) or "(?!)")
        self._not_reductions = _EndsWith(lexicon.not_reductions)
        self._negations = _EndsWith(lexicon.negations)
        self._not_negations = _EndsWith(lexicon.not_negations)
        # Every reading below starts from a cue word, or from "折" / "半价" for a rate: a text that holds a number but
        # none of them (most host speech: "一个", "第二", "3号链接") is then read with one more search instead of five
        # patterns and the clause breaks. An empty cue list matches anywhere in its pattern, so it disables this.
        cue_lists = (lexicon.sale_cues, lexicon.sale_suffixes, lexicon.original_cues, lexicon.reduction_cues)
        cues = [*chain.from_iterable(cue_lists), "折", "半价"]
        self._any_cue = re.compile(alternation(cues)) if all(cue_lists) else None

    # -- helpers -------------------------------------------------------------------------------------

    def _starts_with_measure(self, text: str, pos: int) -> bool:
        if self._sale_word.match(text, pos):
            return False  # "便宜30只要199", "249包邮": 只 and 包 begin a sale word, they count nothing
        return self._measure_word.match(text, pos) is not None

    def _count_then_measure(self, text: str, pos: int) -> int | None:
        """If text[pos:] is "<number><measure word>" ("两件", "3瓶"), the number; else None."""
        j = pos
        while j < len(text) and j - pos < 4 and (text[j] in DIGITS or text[j].isdigit()):
            j += 1
        if j == pos or not self._starts_with_measure(text, j):
            return None
        n = parse_amount(text[pos:j])
        return int(n) if n is not None and n == n.to_integral_value() else None

    def _bundle_before(self, text: str, pos: int) -> bool:
        """A count and a measure word right before ``pos`` ("两件只要", "第二件只要")."""
        for m in self._measure:
            if text.endswith(m, 0, pos):
                j = pos - len(m)
                k = j
                while k > 0 and j - k < 4 and (text[k - 1] in DIGITS or text[k - 1].isdigit()):
                    k -= 1
                if k < j:
                    return True
        return False

    def _amount(self, text: str, start: int, end: int) -> tuple[Decimal, int] | None:
        """The amount text[start:end] and where it really ends, or None if it is a quantity or a bundle."""
        raw = text[start:end]
        value = parse_amount(raw)
        if value is None and len(raw) > 1 and raw[-1] in DIGITS and self._starts_with_measure(text, end):
            end -= 1  # "九十九一件": 99, then "一件"
            value = parse_amount(text[start:end])
        if value is None or value <= 0:
            return None
        has_unit = any(u in text[start:end] for u in ("块", "元", "毛", "角"))
        if not has_unit and self._starts_with_measure(text, end):
            return None  # "只要两件": a quantity
        count = self._count_then_measure(text, end)
        if count is not None and count != 1:
            return None  # "只要99两件": a price for several items
        return value, end

    def _negated(self, text: str, pos: int) -> bool:
        return self._negations(text, pos) and not self._not_negations(text, pos)

    # -- reading -------------------------------------------------------------------------------------

    def read(self, text: str | NormalizedText) -> Utterance:
        """The prices in ``text``; given the ``NormalizedText``, amounts stop at the clause breaks it dropped."""
        plain = text.text if isinstance(text, NormalizedText) else text
        if _ANY_NUMBER.search(plain) is None or (self._any_cue is not None and self._any_cue.search(plain) is None):
            return Utterance()
        if isinstance(text, NormalizedText):
            breaks = clause_breaks(text)
            text = text.text
        else:
            breaks = []

        def cut(start: int, end: int) -> int:
            """An amount starting at ``start`` ends at the first clause break after it."""
            i = bisect_right(breaks, start)
            return breaks[i] if i < len(breaks) and breaks[i] < end else end

        def after_last_break(start: int, end: int) -> int:
            i = bisect_left(breaks, end) - 1
            return breaks[i] if i >= 0 and breaks[i] > start else start

        out = Utterance()
        # reductions first: their numbers are taken, so "直降80到手" cannot read 80 as the price to pay
        taken = bytearray(len(text))  # 1 where a number already read stands (a lookup per match, not a scan)

        def take(start: int, end: int) -> None:
            taken[start:end] = b"\x01" * (end - start)

        for m in self._reduction.finditer(text):
            if self._not_reductions(text, m.end(1)):
                continue  # "至少99", "多少"
            end = cut(m.start(2), m.end(2))
            take(m.start(2), end)
            if "满" in text[max(0, m.start() - 8) : m.start()] or self._bundle_before(text, m.start()):
                continue  # "满300减50": a threshold discount, no fixed final price; "第二件减10": not the unit
            if self._negated(text, m.start()):
                continue  # "不是直降80"
            got = self._amount(text, m.start(2), end)
            if got is not None:
                out.reductions.append(Said(got[0], m.start(), got[1], m.group(1)))
        for m in self._original.finditer(text):
            if self._negated(text, m.start()):
                continue  # "不能说原价199": quoting what may not be said
            got = self._amount(text, m.start(2), cut(m.start(2), m.end(2)))
            if got is not None:
                out.original.append(Said(got[0], m.start(), got[1], m.group(1)))
        for s in out.original:
            take(s.start, s.end)
        for m in self._sale_cue.finditer(text):
            if self._bundle_before(text, m.start()) or taken[m.start(2)]:
                continue
            if self._not_sale(text, m.start()):
                continue  # "券后到手价89": a price after a coupon the tag need not show
            if self._negated(text, m.start()):
                continue  # "不是只要99"
            got = self._amount(text, m.start(2), cut(m.start(2), m.end(2)))
            if got is not None:
                out.sale.append(Said(got[0], m.start(), got[1], m.group(1)))
        for s in out.sale:
            take(s.start, s.end)
        for m in self._sale_suffix.finditer(text):
            # "直降80，219到手": the amount before the suffix starts after the last clause break in it
            a_start = after_last_break(m.start(1), m.end(1))
            if taken[a_start] or self._bundle_before(text, a_start):
                continue
            if self._not_sale(text, a_start):
                continue  # "满99包邮": a free-shipping threshold
            if self._negated(text, a_start):
                continue  # "不是九块九包邮"
            got = self._amount(text, a_start, m.end(1))
            if got is not None and got[1] == m.end(1):
                out.sale.append(Said(got[0], a_start, m.end(), m.group(2)))
        out.sale.sort(key=lambda s: s.start)
        for m in self._rate.finditer(text):
            if self._bundle_before(text, m.start()):
                continue  # "第二件半价", "两件八折": a discount on another quantity than the unit
            if m.group(2):
                out.rates.append(Said(Decimal(5), m.start(), m.end(), "半价"))
                continue
            rate = parse_discount_rate(m.group(1))
            if rate is not None:
                out.rates.append(Said(rate, m.start(), m.end(), "折"))
        return out
