"""What a host says about prices, read from the normalised transcript: the sale price ("只要99",
"到手价一百二十九", "九块九包邮"), a comparison price ("原价一百九十九"), a discount rate ("打五折",
"七五折", "半价") and a reduction ("立减50", "直降三十").

The cue words come from the rules (``PriceSettings.speech`` in rules/prices.yaml); this module only
applies them. Everything is matched on the normalised text (no punctuation or spaces, traditional →
simplified, full-width → ASCII), and spans are reported in its coordinates so the caller can map them
back to the raw words. Every quantifier in the patterns is bounded, so a 20,000-character transcript
costs linear time.

Deliberately conservative — a misread price is a false alarm against a seller:

- a number followed by a measure word is a quantity, not a price ("只要两件", "只要3天");
- a price for several items ("两件只要99", "只要99两件") or for the n-th item ("第二件只要九块九") is not a
  unit price and is not compared with the tag;
- a number after a coupon or threshold word ("券后", "满99包邮", "减50", "省了") is not the sale price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from detectors.numerals import DIGITS, NUMERAL_CHARS, parse_amount, parse_discount_rate

_D = "".join(sorted(DIGITS))
_NUM = rf"(?:[0-9][0-9.]{{0,11}}[十百千万]{{0,2}}|[{NUMERAL_CHARS}]{{1,12}})"
_CENTS = rf"(?:[毛角][{_D}0-9]?分?)"
AMOUNT = rf"{_NUM}(?:(?:块钱|块|元)(?:[{_D}0-9]{{0,2}}{_CENTS}?))?{_CENTS}?"
_RATE = rf"(?:[1-9][0-9]?(?:\.[0-9])?|[{_D}]{{1,2}}|[{_D}]点[{_D}])"


class SpeechLexicon(BaseModel):
    """Cue words for prices in speech; every list is data (rules/prices.yaml, ``settings.speech``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: words right before a sale price: "只要99", "到手价一百二十九"
    sale_cues: list[str] = Field(default_factory=lambda: ["只要", "只需", "仅需", "仅要", "到手价", "到手", "秒杀价",
                                                          "直播间价", "活动价", "福利价", "现价", "特价", "售价"])
    #: words right after a sale price: "九块九包邮", "99带回家"
    sale_suffixes: list[str] = Field(default_factory=lambda: ["包邮", "到手", "带回家", "拿走", "秒杀"])
    #: short words allowed between a cue and its number: "只要就99" is rare, "到手价是99" is not
    fillers: list[str] = Field(default_factory=lambda: ["就是", "也就", "就", "才", "是", "为", "都", "也"])
    #: words right before a comparison price: "原价一百九十九"
    original_cues: list[str] = Field(default_factory=lambda: ["原价", "划线价", "日常价", "专柜价", "市场价",
                                                              "吊牌价", "零售价", "指导价", "平时卖", "平常卖",
                                                              "以前卖", "之前卖"])
    #: words right before a reduction: "立减50", "直降三十"
    reduction_cues: list[str] = Field(default_factory=lambda: ["立减", "直降", "立省", "减", "优惠", "便宜"])
    #: the price after this word is a threshold or a coupon price, not the sale price: "满99包邮", "券后89"
    not_sale_before: list[str] = Field(default_factory=lambda: ["满", "券后", "用券", "减", "省", "便宜", "优惠",
                                                                "差价", "贵", "返", "红包", "运费", "邮费", "定金",
                                                                "订金", "尾款", "补贴"])
    #: a number followed by one of these is a quantity ("两件", "3天"), not a price
    measure_words: list[str] = Field(default_factory=lambda: [
        "件", "个", "瓶", "盒", "袋", "包", "斤", "克", "支", "片", "罐", "箱", "套", "双", "条", "只", "份", "次",
        "天", "颗", "粒", "毫升", "ml", "kg", "g", "号", "分钟", "秒", "小时", "点", "岁", "年", "月", "人", "%",
        "单", "位", "码", "米", "斤装", "组", "提", "枚", "根", "张", "台"])


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


def _alternation(words: Sequence[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)) if w)


class PriceSpeech:
    """Reads an utterance with one lexicon (built once per ruleset)."""

    def __init__(self, lexicon: SpeechLexicon) -> None:
        self.lexicon = lexicon
        fillers = _alternation(lexicon.fillers)
        opt_filler = f"(?:{fillers})?" if fillers else ""
        self._sale_cue = re.compile(rf"({_alternation(lexicon.sale_cues)}){opt_filler}({AMOUNT})")
        self._sale_suffix = re.compile(rf"({AMOUNT})({_alternation(lexicon.sale_suffixes)})")
        self._original = re.compile(rf"({_alternation(lexicon.original_cues)}){opt_filler}({AMOUNT})")
        self._reduction = re.compile(rf"({_alternation(lexicon.reduction_cues)})了?({AMOUNT})")
        self._rate = re.compile(rf"(?:打)?({_RATE})折|(半价)")
        self._measure = tuple(sorted(lexicon.measure_words, key=len, reverse=True))
        self._not_sale = tuple(lexicon.not_sale_before)

    # -- helpers -------------------------------------------------------------------------------------

    def _starts_with_measure(self, text: str, pos: int) -> bool:
        return any(text.startswith(m, pos) for m in self._measure)

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

    # -- reading -------------------------------------------------------------------------------------

    def read(self, text: str) -> Utterance:
        out = Utterance()
        for m in self._original.finditer(text):
            got = self._amount(text, m.start(2), m.end(2))
            if got is not None:
                out.original.append(Said(got[0], m.start(), got[1], m.group(1)))
        taken = [(s.start, s.end) for s in out.original]
        for m in self._sale_cue.finditer(text):
            if self._bundle_before(text, m.start()) or any(s <= m.start(2) < e for s, e in taken):
                continue
            if any(text.endswith(w, 0, m.start()) for w in self._not_sale):
                continue  # "券后到手价89": a price after a coupon the tag need not show
            got = self._amount(text, m.start(2), m.end(2))
            if got is not None:
                out.sale.append(Said(got[0], m.start(), got[1], m.group(1)))
        taken += [(s.start, s.end) for s in out.sale]
        for m in self._sale_suffix.finditer(text):
            a_start = m.start(1)
            if any(s <= a_start < e for s, e in taken) or self._bundle_before(text, a_start):
                continue
            if any(text.endswith(w, 0, a_start) for w in self._not_sale):
                continue  # "满99包邮": a free-shipping threshold
            got = self._amount(text, a_start, m.end(1))
            if got is not None and got[1] == m.end(1):
                out.sale.append(Said(got[0], a_start, m.end(), m.group(2)))
        out.sale.sort(key=lambda s: s.start)
        for m in self._reduction.finditer(text):
            if "满" in text[max(0, m.start() - 8):m.start()] or self._bundle_before(text, m.start()):
                continue  # "满300减50": a threshold discount, no fixed final price; "第二件减10": not the unit
            got = self._amount(text, m.start(2), m.end(2))
            if got is not None:
                out.reductions.append(Said(got[0], m.start(), got[1], m.group(1)))
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
