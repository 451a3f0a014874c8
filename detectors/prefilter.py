"""Which of many regular expressions can match a text, found in one Aho-Corasick pass.

Python's ``re`` tries every alternative of a union at every position: 33 claim patterns cost more than
the rest of the lexicon on host speech that matches none of them. Most patterns cannot match without one
of a few literal strings ("最好|最佳|…" before anything else, "保证", "见效"); ``required_literals`` reads
them from the pattern's parse tree, and ``PatternSet.candidates`` runs only the patterns whose literals
occur in the text — an exact filter, as RE2 and Hyperscan do it (they are no option here: the patterns use
look-behind). A pattern whose literals cannot be read (a wide character class, an optional start) always
runs.

The parse tree is ``re._parser``'s, CPython's own and unchanged in shape since 3.5; if it ever is, a
pattern gets ``None`` (always runs) rather than a wrong filter, and tests/test_prefilter.py checks the
filter against every pattern's matches.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any, Generic, TypeVar

from ahocorasick_rs import AhoCorasick, MatchKind

# CPython's own regular-expression parser (typeshed has no stubs for it: typed as Any)
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

#: a character class wider than this is no useful filter
MAX_CLASS = 16
#: a pattern needing one of more literals than this runs always. The automaton holds them all in one pass, however
#: many: the claims context's refusals (139 words and 30 patterns in one expression) need 394
MAX_LITERALS = 4096
#: literal-only elements in a row join into the strings they match together while these are at most this many (a
#: product grows fast; past it, the shorter parts are filter enough)
MAX_JOINED = 64


V = TypeVar("V")


class WordFinder(Generic[V]):
    """Every occurrence of some words in a text, overlapping ones too, by end position and, at one end, longest
    first; each word has a value (``values``, in the order of the mapping given).

    On ``ahocorasick_rs`` (the Rust ``aho-corasick`` crate), 2.5–3× faster than pyahocorasick, which this
    replaced, on real host speech against the claims model's 2,691 words (1.8 against 5.4 µs a Douyin reply,
    3.1 against 7.9 µs a LiveAMR utterance; ASCII text cost pyahocorasick 0.7 µs a character): its trie looks a
    character up among a node's children one by one, and a Chinese vocabulary's root has thousands. The crate
    reports overlapping matches in this order itself (tests/test_prefilter.py holds it to a brute-force
    reference): no Python step per match is added here. The crate reads UTF-8: a text holding a lone surrogate
    raises ``UnicodeEncodeError`` (decoding refuses such an event, and ``normalize`` drops them). An instance
    cannot be pickled or deep-copied."""

    def __init__(self, words: Mapping[str, V]) -> None:
        self.values: list[V] = list(words.values())
        self._finder = AhoCorasick(list(words), matchkind=MatchKind.Standard) if words else None
        self._value_of = self.values.__getitem__

    def __len__(self) -> int:
        return len(self.values)

    def find(self, text: str) -> list[tuple[int, int, int]]:
        """(the word's index in ``values``, start, end) of each occurrence."""
        return self._finder.find_matches_as_indexes(text, overlapping=True) if self._finder is not None else []

    def values_in(self, text: str) -> list[V]:
        """The word's value of each occurrence, in the same order."""
        return list(map(self._value_of, map(_WORD, self.find(text))))


_WORD = itemgetter(0)  # of a match: (word, start, end)


def _class_chars(items: list[tuple[Any, Any]]) -> set[str] | None:
    chars: set[str] = set()
    for op, arg in items:
        if op is _c.LITERAL:
            chars.add(chr(arg))
        elif op is _c.RANGE and arg[1] - arg[0] < MAX_CLASS:
            chars.update(chr(c) for c in range(arg[0], arg[1] + 1))
        else:  # a negated class, a category (\d), a wide range
            return None
    return chars if len(chars) <= MAX_CLASS else None


def _finite(op: Any, arg: Any) -> set[str] | None:
    """Every string one element can match, when they are few and it reads literals only (a character, a small
    class, a group or branch of such, an optional one); None otherwise."""
    if op is _c.LITERAL:
        return {chr(arg)}
    if op is _c.IN:
        return _class_chars(arg)
    if op is _c.SUBPATTERN:
        return None if arg[1] & re.IGNORECASE else _finite_sequence(arg[-1])
    if op is _c.BRANCH:
        union: set[str] = set()
        for alternative in arg[1]:
            found = _finite_sequence(alternative)
            if found is None:
                return None
            union |= found
        return union if len(union) <= MAX_LITERALS else None
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)) and arg[:2] in ((0, 1), (1, 1)):
        found = _finite_sequence(arg[2])
        return None if found is None else found | {""} if arg[0] == 0 else found
    return None


def _finite_sequence(items: list[tuple[Any, Any]]) -> set[str] | None:
    strings = {""}
    for op, arg in items:
        found = _finite(op, arg)
        if found is None:
            return None
        strings = {a + b for a in strings for b in found}
        if len(strings) > MAX_JOINED:
            return None
    return strings


def _minimal(strings: set[str]) -> set[str]:
    """The strings none of the others is part of: a text holding "瘦了" holds "瘦" (a large set is kept whole:
    the check is quadratic, and the set is as exact a filter)."""
    if len(strings) > 256:
        return strings
    return {s for s in strings if not any(o != s and o in s for o in strings)}


def _strings(items: list[tuple[Any, Any]]) -> set[str] | None:
    """Strings that every match of the sequence ``items`` contains one of (None: not known). Consecutive
    elements that read literals only join into the strings they can match together — a run of characters, a word
    list written as a trie ("不(?:敢(?:讲|说)|能说)" → 不敢讲, 不敢说, 不能说); of the sequence's required parts the one
    whose shortest string is longest wins (a rarer filter), then the one with fewer strings."""
    best: set[str] | None = None
    stretch = {""}  # what the current run of literal-only elements can match

    def consider(cand: set[str] | None) -> None:
        nonlocal best
        if cand and all(cand) and len(cand) <= MAX_LITERALS:  # a part that may match "" requires nothing
            cand = _minimal(cand)
            if best is None or (min(map(len, cand)), -len(cand)) > (min(map(len, best)), -len(best)):
                best = cand

    for op, arg in items:
        found = _finite(op, arg)
        if found is not None:
            joined = {a + b for a in stretch for b in found} if len(stretch) * len(found) <= MAX_JOINED else None
            if joined is not None:
                stretch = joined
                continue
            consider(stretch)
            stretch = found
            continue
        consider(stretch)
        stretch = {""}
        if op is _c.SUBPATTERN:
            if not arg[1] & re.IGNORECASE:  # (?i:…): literals of either case
                consider(_strings(arg[-1]))
        elif op is _c.BRANCH:
            union: set[str] = set()
            for alternative in arg[1]:
                sub = _strings(alternative)
                if sub is None:
                    break
                union |= sub
            else:
                consider(union)
        elif op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            low, _high, sub_items = arg
            if low >= 1:
                consider(_strings(sub_items))
        # anything else (assertions, anchors, categories, ANY) requires no literal
    consider(stretch)
    return best


# Remembered: reading a pattern's tree is most of building a detector, and a ruleset load builds each claims rule's
# patterns twice (the detector, and the rule alone to check its examples); a reload after a one-rule edit
# rebuilds every detector from patterns it has read before.
@lru_cache(maxsize=16_384)
def required_literals(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """Literal strings one of which every match of ``pattern`` (compiled with ``flags``) contains, or None when
    they are not known."""
    try:
        tree = _parser.parse(pattern, flags)
    except Exception:  # noqa: BLE001 - a pattern the filter cannot read simply always runs
        return None
    if tree.state.flags & re.IGNORECASE:
        return None
    try:
        found = _strings(list(tree))
    except (TypeError, ValueError, IndexError, AttributeError):
        return None
    return frozenset(found) if found else None


class PatternSet:
    """Compiled patterns, and which of them may match a text."""

    def __init__(self, patterns: Sequence[str | re.Pattern[str]]) -> None:
        self.patterns = [re.compile(p) for p in patterns]  # a compiled pattern is taken as it is
        self._ids = [id(p) for p in self.patterns]
        literals = [required_literals(p.pattern, p.flags) for p in self.patterns]
        self._always = [k for k, found in enumerate(literals) if found is None]
        by_literal: dict[str, set[int]] = {}
        for k, found in enumerate(literals):
            for literal in found or ():
                by_literal.setdefault(literal, set()).add(k)
        self._literals = WordFinder({literal: frozenset(ks) for literal, ks in by_literal.items()})

    def candidates(self, text: str) -> list[int]:
        """Indices of the patterns that may match ``text``, ascending (all that can, maybe a few that do not)."""
        return sorted(self._found(text))

    def may_match(self, text: str) -> set[int]:
        """``id`` of each pattern that may match ``text``: one not among them surely does not (nor anywhere in it).
        Ids, not the patterns: a pattern's hash is taken over its whole compiled program, every time."""
        ids = self._ids
        return {ids[k] for k in self._found(text)}

    def _found(self, text: str) -> set[int]:
        found: set[int] = set(self._always)
        for ks in self._literals.values_in(text):
            found |= ks
        return found
