"""Evasion-robust text normalisation that keeps a map back to the raw text.

``normalize`` drops invisible characters, applies NFKC and lower case, drops inserted symbols, punctuation
and spaces (keeping "." between digits and "%"), converts traditional to simplified Chinese and collapses
runs of three or more of one character. ``NormalizedText.offsets[i]`` is the index in ``raw`` of the
character that produced ``text[i]``; ``clause_breaks`` says where dropped clause ends stood;
``pinyin_keys`` gives tone-less pinyin for homophone evasions ("减fei", "见肥").

The steps and their reasons: docs/rules.md ("What a detector is handed").
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate, chain, compress, repeat
from typing import Annotated, Any

import opencc
from pydantic import AfterValidator
from pypinyin import Style, lazy_pinyin
from pypinyin.pinyin_dict import pinyin_dict

_INVISIBLE = (
    frozenset(
        "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u200b\u200c\u200d\u200e"
        "\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069"
        "\u206a\u206b\u206c\u206d\u206e\u206f\u3164\ufeff\uffa0"
    )
    | frozenset(chr(c) for c in range(0xFE00, 0xFE10))
    | frozenset(chr(c) for c in range(0xE0100, 0xE01F0))
)

_KEEP_SYMBOLS = frozenset("%.")
#: symbols that stand for a number NFKC leaves alone: the keycap ten emoji ("月销🔟万+")
_NUMBER_SYMBOLS = {"\U0001f51f": "10"}
#: punctuation that ends a clause; the normaliser drops it, ``clause_breaks`` finds where it stood
#: ... and so does a pause: ASR and hosts' captions put a space between phrases (Chinese puts none between words);
#: only between runs of two Chinese characters or more, so that a word split to dodge a filter ("最 好 看") stays whole
_CLAUSE_END_RX = re.compile(
    "[，。！？；：、,.!?;:…～~\n]|(?<=[\u3400-\u4dbf\u4e00-\u9fff]{2})[ \t\u3000]+(?=[\u3400-\u4dbf\u4e00-\u9fff]{2})"
)
_MIN_RUN_TO_COLLAPSE = 3
_RUN = re.compile(r"(\D)\1\1")

_t2s = opencc.OpenCC("t2s")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    raw: str
    text: str
    offsets: tuple[int, ...]

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Raw [start, end) covering normalised text[start:end]."""
        if start >= end:
            raise ValueError("empty span")
        return self.offsets[start], self.offsets[end - 1] + 1

    def raw_slice(self, start: int, end: int) -> str:
        s, e = self.raw_span(start, end)
        return self.raw[s:e]


@lru_cache(maxsize=65_536)
def _fold(ch: str) -> str:
    """NFKC + lower case of one character, '' if it is invisible or an inserted symbol."""
    if ch in _INVISIBLE:
        return ""
    if ch in _NUMBER_SYMBOLS:
        return _NUMBER_SYMBOLS[ch]
    folded = unicodedata.normalize("NFKC", ch).lower()
    kept = []
    for c in folded:
        if c in _KEEP_SYMBOLS or c.isalnum():
            kept.append(c)
        # everything else (punctuation, symbols, spaces, controls, marks) is dropped
    return "".join(kept)


#: texts up to this long are remembered: chat repeats itself (chants, floods, "哈哈哈"), a long transcript rarely
CACHED_CHARS = 64


def normalize(raw: str) -> NormalizedText:
    """``raw`` normalised, with the map back to its characters (pure: a repeated text is looked up)."""
    return _normalize_short(raw) if len(raw) <= CACHED_CHARS else _normalize_new(raw)


@lru_cache(maxsize=32_768)
def _normalize_short(raw: str) -> NormalizedText:
    return _normalize_new(raw)


def forget_normalized() -> None:
    """Empty the cache of short texts (a benchmark that reads the same texts twice must pay twice)."""
    _normalize_short.cache_clear()


def _normalize(raw: str) -> NormalizedText:
    if raw.isalnum() and raw == raw.lower() and unicodedata.is_normalized("NFKC", raw):
        # Fast path, most chat: letters and digits only, nothing to fold or drop.
        chars, offsets = list(raw), list(range(len(raw)))
    else:
        chars, offsets = _fold_and_drop(raw)

    joined = "".join(chars)
    simplified = _t2s.convert(joined)
    if len(simplified) == len(joined):
        chars = list(simplified)
    else:  # a phrase conversion changed the length: convert per character to keep the offsets
        chars = [_t2s.convert(c)[:1] or c for c in chars]
        simplified = "".join(chars)
    if not _RUN.search(simplified):
        return NormalizedText(raw=raw, text=simplified, offsets=tuple(offsets))
    return _collapse_runs(raw, chars, offsets)


try:  # the compiled normaliser (setup.py builds it); without it the same results from the Python above, slower
    from detectors._normalize import Normalizer
except ImportError:  # pragma: no cover - a build without a C++ compiler
    _compiled: Normalizer | None = None
else:
    _compiled = Normalizer(_fold, _t2s.convert, NormalizedText)

#: a text not looked up: compiled when built, else ``_normalize`` (the reference the tests hold it to); bound once,
#: not chosen per call by a function of its own
_normalize_new: Callable[[str], NormalizedText] = _compiled.normalize if _compiled is not None else _normalize


class CharTable(dict[str, str]):
    """A function of one character as a dict filled on first use: ``map(table.__getitem__, text)`` runs at C
    speed, where a cached function costs a Python call per character. Emptied when full, like a cache:
    hostile input may hold any of a million characters."""

    def __init__(self, function: Callable[[str], str], limit: int = 65_536) -> None:
        super().__init__()
        self.function, self.limit = function, limit

    def __missing__(self, ch: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        self[ch] = value = self.function(ch)
        return value


_FOLDED = CharTable(_fold)


def _fold_and_drop(raw: str) -> tuple[list[str], list[int]]:
    folded = list(map(_FOLDED.__getitem__, raw))
    chars = list("".join(folded))
    offsets = list(compress(range(len(raw)), folded))
    if len(offsets) != len(chars):  # a character folded into several ("㎏" → "kg"): each keeps its origin
        offsets = [i for i, f in enumerate(folded) for _ in f]
    if "." not in chars:
        return chars, offsets
    # "." only survives between two digits ("3.2"), elsewhere it is an inserted symbol.
    keep = [
        c != "." or (0 < k < len(chars) - 1 and chars[k - 1].isdigit() and chars[k + 1].isdigit())
        for k, c in enumerate(chars)
    ]
    return [c for c, k in zip(chars, keep, strict=True) if k], [o for o, k in zip(offsets, keep, strict=True) if k]


def _collapse_runs(raw: str, chars: list[str], offsets: list[int]) -> NormalizedText:
    out_chars: list[str] = []
    out_offsets: list[int] = []
    n = len(chars)
    k = 0
    while k < n:
        c = chars[k]
        run_end = k + 1
        while run_end < n and chars[run_end] == c:
            run_end += 1
        if run_end - k >= _MIN_RUN_TO_COLLAPSE and not c.isdigit():
            out_chars.append(c)
            out_offsets.append(offsets[k])
        else:
            out_chars.extend(chars[k:run_end])
            out_offsets.extend(offsets[k:run_end])
        k = run_end
    return NormalizedText(raw=raw, text="".join(out_chars), offsets=tuple(out_offsets))


#: a list holding a longer word is written flat (rule words are a few characters; Python's recursion limit is 1,000)
LONGEST_TRIE_WORD = 200


def alternation(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words`` literally, the longest first ('' for none), written as a
    trie: "不(?:敢(?:讲|说)|能说)". Python's ``re`` tries a flat alternation's words one by one at every position; a
    trie costs one branch per character (the claims context's refusal words on LiveAMR clauses: 39 → 29 µs an
    utterance). The same matches as the flat list sorted longest first, also with more pattern after it: the words
    that can match at a position are prefixes of one another, on one path of the trie, and both try them longest
    first (tests/test_normalize.py compares the two). Case-sensitive, as every caller compiles it: under IGNORECASE
    words differing in case could match on different paths."""
    unique = {w for w in words if w}
    if any(len(w) > LONGEST_TRIE_WORD for w in unique):  # the trie is written recursively, a level a character
        return "|".join(re.escape(w) for w in sorted(unique, key=lambda w: (-len(w), w)))
    trie: dict[str, dict[str, Any]] = {}
    for word in unique:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def written(node: dict[str, dict[str, Any]]) -> str:
        branches = [re.escape(ch) + written(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        if "" not in node:
            return branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{'|'.join(branches)})?"  # greedy: the longer words first, then the one ending here

    return written(trie)


def words_regex(words: Iterable[str]) -> re.Pattern[str]:
    """One search for any of ``words`` (normalised) in a normalised text, the longest at the leftmost position;
    never matches when there are none."""
    return re.compile(alternation(normalize(w).text for w in words) or "(?!)")


def _survives(term: str) -> str:
    if not normalize(term).text:
        raise ValueError(f"term {term!r} is empty after normalisation (it would match everywhere or nowhere)")
    return term


#: a word of a rule file matched on normalised text: refused at load when normalisation leaves nothing of it
Term = Annotated[str, AfterValidator(_survives)]


def is_han(ch: str) -> bool:
    """A CJK unified ideograph (basic block or extension A)."""
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


#: a syllable's tone marks taken off, ü written v: pypinyin's NORMAL style of one character's first reading
_TONELESS = str.maketrans(
    {
        **dict.fromkeys("āáǎà", "a"),
        **dict.fromkeys("ēéěè", "e"),
        **dict.fromkeys("īíǐì", "i"),
        **dict.fromkeys("ōóǒò", "o"),
        **dict.fromkeys("ūúǔù", "u"),
        **dict.fromkeys("üǖǘǚǜ", "v"),
        **dict.fromkeys("ńňǹ", "n"),
        "ḿ": "m",
    }
)


@lru_cache(maxsize=65_536)
def _syllable(ch: str) -> str:
    """A Han character's tone-less syllable — ``lazy_pinyin(ch, style=Style.NORMAL)[0]``, read from pypinyin's
    dictionary directly (its first reading, ``_TONELESS``): ≈ 0.7 against 7 µs a character, paid for each character
    the first time it is seen, and real streams keep showing new ones (tests/test_normalize.py holds the two equal on
    every Han character). Any other character is its own unit."""
    if is_han(ch):
        readings = pinyin_dict.get(ord(ch))
        return readings.split(",", 1)[0].translate(_TONELESS) if readings else lazy_pinyin(ch, style=Style.NORMAL)[0]
    return ch


@dataclass(frozen=True, slots=True)
class PinyinKeys:
    """Tone-less pinyin of a normalised text: one unit per character (a syllable, or the character)."""

    text: str
    unit_of: tuple[int, ...]  # unit_of[j] = index in the normalised text of pinyin char j
    boundaries: frozenset[int]  # pinyin positions where a unit starts (plus the end)


#: a character's syllable (or the character) at C speed: ``pinyin_keys`` runs on most host speech
_SYLLABLES = CharTable(_syllable)


def _pinyin_text(text: str) -> str:
    """``pinyin_keys(text).text`` without the positions: the reference of the compiled ``CharJoin``."""
    return "".join(map(_SYLLABLES.__getitem__, text))


try:  # compiled with the normaliser (setup.py builds it)
    from detectors._normalize import CharJoin
except ImportError:  # pragma: no cover - a build without a C++ compiler
    pinyin_text: Callable[[str], str] = _pinyin_text
else:
    pinyin_text = CharJoin(_syllable)


def pinyin_keys(text: str) -> PinyinKeys:
    # built-in iterators only (map, accumulate, chain, repeat): no Python step per character
    syllables = list(map(_SYLLABLES.__getitem__, text))
    lengths = list(map(len, syllables))
    return PinyinKeys(
        text="".join(syllables),
        unit_of=tuple(chain.from_iterable(map(repeat, range(len(text)), lengths))),
        boundaries=frozenset(accumulate(lengths, initial=0)),
    )


#: what ``str.isdigit`` calls a digit: \\d and the superscript, circled and other digits it also accepts
_DIGITS = (
    r"\d\u00b2\u00b3\u00b9\u1369-\u1371\u19da\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c"
    r"\u2488-\u2490\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792"
    r"\U00010a40-\U00010a43\U00010e60-\U00010e68\U00011052-\U0001105a\U0001f100-\U0001f10a"
)
#: a number: a digit, then digits and decimal points
_NUMBER_RUN = re.compile(f"[{_DIGITS}][{_DIGITS}.]*")


def mask_digits(text: str, mask: str = "#") -> str:
    """Replace each run of digits (with a decimal point) by one mask: '3颗瘦了3.2斤' → '#颗瘦了#斤'."""
    return _NUMBER_RUN.sub(mask, text)


def clause_breaks(text: NormalizedText) -> list[int]:
    """Positions i in ``text.text`` where the normaliser dropped a clause end between characters i-1 and i.

    An ASCII comma between digits with three digits after it is a thousands separator ("1,299"); a
    Chinese comma is a clause break even between digits ("直降80，219到手").
    """
    out: list[int] = []
    norm, raw, offsets = text.text, text.raw, text.offsets
    for m in _CLAUSE_END_RX.finditer(raw):
        i = bisect_right(offsets, m.start())  # the first normalised character after the punctuation
        if offsets[i - 1 : i] == (m.start(),):
            continue  # kept, not dropped: the point of "3.2"
        if i == 0 or i >= len(norm) or (out and out[-1] == i):
            continue
        if m.group() == "," and norm[i - 1].isdigit():
            after = raw[offsets[i] : offsets[i] + 4]
            if after[:3].isdigit() and not after[3:].isdigit() and raw[offsets[i - 1] + 1 : offsets[i]] == ",":
                continue  # "1,299", "1,299,000"
        out.append(i)
    return out
