"""Amounts of money as hosts say them: "99", "９９", "99.9", "一百二十九", "两百", "一千零五十",
"九块九" (9.9), "三十九块九毛九" (39.99), "两百五" (250), "1.2万", "三万" — always as ``Decimal``.

Every function is pure and total: anything it cannot read as one amount gives ``None``, never an
exception. Input may be raw or already normalised (full-width digits are folded either way).

Why not a library (cn2an): docs/prices_and_ai_labels.md ("Spoken prices").
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal, InvalidOperation

DIGITS: dict[str, int] = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "壹": 1,
    "幺": 1,
    "二": 2,
    "贰": 2,
    "貳": 2,
    "两": 2,
    "兩": 2,
    "三": 3,
    "叁": 3,
    "參": 3,
    "四": 4,
    "肆": 4,
    "五": 5,
    "伍": 5,
    "六": 6,
    "陆": 6,
    "陸": 6,
    "七": 7,
    "柒": 7,
    "八": 8,
    "捌": 8,
    "九": 9,
    "玖": 9,
}
SMALL_UNITS: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
BIG_UNITS: dict[str, int] = {"万": 10_000, "萬": 10_000, "亿": 100_000_000, "億": 100_000_000}
POINT = ("点", "點", ".")
YUAN = ("块钱", "塊錢", "块", "塊", "元", "圆", "圓")
JIAO = frozenset("毛角")
FEN = frozenset("分")
#: every character an amount can be made of (a matcher's character class is built from it)
NUMERAL_CHARS = "".join(sorted(set(DIGITS) | set(SMALL_UNITS) | set(BIG_UNITS) | {"点", "點"}))
#: the largest amount accepted (the event schema's Money has 14 digits, 2 of them decimals)
MAX_AMOUNT = Decimal("999999999999.99")
#: longest string ``parse_amount`` looks at; a longer one is not one spoken amount
MAX_AMOUNT_CHARS = 24


def _fold(s: str) -> str:
    """Full-width digits and points to ASCII ("９９．９" → "99.9"), thousands separators dropped."""
    return unicodedata.normalize("NFKC", s).replace(",", "").replace("，", "").strip()


def _ascii_number(s: str) -> Decimal | None:
    """'99', '99.9', '1.2万', '3千', '10万' → Decimal."""
    i = 0
    while i < len(s) and (s[i].isascii() and (s[i].isdigit() or s[i] == ".")):
        i += 1
    head, tail = s[:i], s[i:]
    if not head or head.count(".") > 1 or head.startswith(".") or head.endswith("."):
        return None
    try:
        value = Decimal(head)
    except InvalidOperation:
        return None
    for ch in tail:  # "1.2万", "3千", "5百万"
        unit = SMALL_UNITS.get(ch) or BIG_UNITS.get(ch)
        if unit is None:
            return None
        value *= unit
    return value


def _chinese_integer(s: str) -> int | None:
    """'一百二十九' → 129, '两百五' → 250, '一千零五十' → 1050, '十九' → 19, '九九' → 99, '三万' → 30000."""
    if not s:
        return None
    if all(c in DIGITS for c in s):  # read digit by digit: "九九" = 99, "一九九" = 199
        return int("".join(str(DIGITS[c]) for c in s))
    total = 0  # everything above the current big unit (万/亿)
    section = 0  # the current group below 万
    number: int | None = None  # a digit waiting for its unit
    last_unit = 0  # the unit just applied, for the colloquial "两百五" = 250
    after_zero = False
    prev_digit = False
    for c in s:
        if c in DIGITS:
            d = DIGITS[c]
            if prev_digit and number:  # two digits in a row inside a unit numeral: "一百二三" is not one amount
                return None
            if d == 0:
                after_zero = True
                number = None
                prev_digit = True
                continue
            number = d
            prev_digit = True
        elif c in SMALL_UNITS:
            unit = SMALL_UNITS[c]
            if number is None:
                # "十" may stand without a digit at the start ("十九") or after a zero ("一千零十" = 1010)
                if unit != 10 or ((section or total) and not after_zero):
                    return None
                number = 1
            section += number * unit
            number, last_unit, after_zero, prev_digit = None, unit, False, False
        elif c in BIG_UNITS:
            unit = BIG_UNITS[c]
            section += number or 0
            if section == 0 and total == 0:
                return None
            if unit == 100_000_000:
                total = (total + section) * unit
            else:
                total += section * unit
            section, number, last_unit, after_zero, prev_digit = 0, None, unit, False, False
        else:
            return None
    if number is not None:
        if last_unit and not after_zero:
            number *= last_unit // 10  # "两百五" = 200 + 50, "三万五" = 30000 + 5000, "十五" = 15
        section += number
    return total + section


def parse_number(s: str) -> Decimal | None:
    """A number without a currency unit: ASCII or Chinese, with a decimal point ("九点九") or 万/千."""
    s = _fold(s)
    if not s or len(s) > MAX_AMOUNT_CHARS:
        return None
    if s[0].isascii():
        return _ascii_number(s)
    for p in POINT:
        if p in s:
            whole, _, frac = s.partition(p)
            integer = _chinese_integer(whole)
            if integer is None or not frac or any(c not in DIGITS for c in frac):
                return None
            return Decimal(f"{integer}.{''.join(str(DIGITS[c]) for c in frac)}")
    integer = _chinese_integer(s)
    return None if integer is None else Decimal(integer)


def _digit_value(s: str) -> int | None:
    if len(s) == 1 and s in DIGITS:
        return DIGITS[s]
    if len(s) == 1 and s.isascii() and s.isdigit():
        return int(s)
    return None


def _cents(rest: str) -> Decimal | None:
    """What follows 块/元: '' → 0, '九' → .9, '九九' → .99, '5' → .5, '九毛九' → .99, '五毛' → .5, '三分' → .03."""
    if not rest:
        return Decimal(0)
    jiao = fen = 0
    jiao_part, unit, fen_part = rest, "", ""
    for i, c in enumerate(rest):
        if c in JIAO:
            jiao_part, unit, fen_part = rest[:i], c, rest[i + 1 :]
            break
    if unit:  # "九毛九", "五毛", "九角五分"
        j = _digit_value(jiao_part)
        if j is None:
            return None
        jiao = j
        if fen_part.endswith("分"):
            fen_part = fen_part[:-1]
        if fen_part:
            f = _digit_value(fen_part)
            if f is None:
                return None
            fen = f
        return Decimal(jiao * 10 + fen) / 100
    if rest.endswith("分"):  # "零五分"
        digits = rest[:-1].lstrip("零〇0")
        f = _digit_value(digits)
        return None if f is None else Decimal(f) / 100
    decimals = [_digit_value(c) for c in rest]  # "九" → .9, "九九" → .99 (read digit by digit)
    if len(decimals) > 2 or any(d is None for d in decimals):
        return None
    return Decimal("0." + "".join(str(d) for d in decimals))


def parse_amount(s: str) -> Decimal | None:
    """One amount of money as said or written: '99', '九块九', '一百二十九元', '两块钱', '五毛', '1.2万'."""
    s = _fold(s)
    if not s or len(s) > MAX_AMOUNT_CHARS:
        return None
    value: Decimal | None
    for marker in YUAN:
        if marker in s:
            head, _, rest = s.partition(marker)
            yuan = parse_number(head) if head else None
            cents = _cents(rest)
            if yuan is None or cents is None:
                return None
            value = yuan + cents
            break
    else:
        if s[-1] in JIAO or (s[-1] in FEN and any(c in JIAO for c in s)):  # "五毛", "九毛九分"
            value = _cents(s)
        else:
            value = parse_number(s)
    if value is None or value > MAX_AMOUNT:
        return None
    return value


def parse_discount_rate(s: str) -> Decimal | None:
    """The number before 折 in tenths of the price: '五' → 5, '7.5' → 7.5, '七五' / '75' → 7.5, '八八' → 8.8.

    "七五折" and "八八折" are read digit by digit (75 % and 88 % of the price), as every shop says them.
    """
    s = _fold(s)
    if not s or len(s) > 4:
        return None
    if s.isascii() and s.isdigit() and len(s) == 2:  # "75折" = 7.5; "10折", "50折" are no discount
        value = Decimal(f"{s[0]}.{s[1]}") if s[1] != "0" else None
    elif s[0].isascii():
        value = _ascii_number(s)
    elif any(p in s for p in POINT):
        value = parse_number(s)
    elif all(c in DIGITS for c in s) and len(s) <= 2:
        d = [DIGITS[c] for c in s]
        value = Decimal(d[0]) if len(d) == 1 else Decimal(f"{d[0]}.{d[1]}")
    else:
        return None
    if value is None or not (0 < value < 10):
        return None
    return value
