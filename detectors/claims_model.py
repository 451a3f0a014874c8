"""The learned half of the false-claims detector: a linear model that reads host speech clause by clause.

``load_model`` parses ``rules/claims_model.json`` (weights written by ``scripts/train_claims.py``, handed over
as bytes, parsed once per ruleset); ``ClaimModel.read`` gives an utterance's claim type (none, absolute,
efficacy, fabricated_data, guarantee) and score — the smaller of the segment head's and the best unit's
(units of ``window`` clauses) — and ``explain`` the features that decided it, as evidence. Scoring is
hand-written and gives scikit-learn's probabilities (the training script checks it).

Features, reasons and figures: docs/claims.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby, islice, pairwise, repeat, takewhile
from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

try:  # the compiled scoring path (setup.py builds it); without it the same scores come from Python, slower
    from detectors import _claims_kernel
except ImportError:  # pragma: no cover - a build without a C++ compiler
    _claims_kernel = None  # type: ignore[assignment]

from detectors.normalize import CharTable, NormalizedText, _syllable, clause_breaks, is_han
from detectors.prefilter import WordFinder

FORMAT = 3  # 3: + a length bucket; 2: binary tf-idf features; 1: counts scaled by 1/√n
CLAIM_TYPES = ("absolute", "efficacy", "fabricated_data", "guarantee")
NONE = "none"

#: feature prefixes; the normalised text never contains these symbols, so they cannot collide with n-grams
PINYIN, WORD, WORD_CLASS, LENGTH = "^", "@", "~", "="
#: texts are put in length buckets of this many characters (the last bucket holds all longer texts): a
#: three-character "那肯定" is rarely a claim, and without it a short text's few n-grams weigh all the more
LENGTH_BUCKET, LENGTH_BUCKETS = 4, 6


def length_bucket(s: str) -> int:
    return min(len(s) // LENGTH_BUCKET, LENGTH_BUCKETS - 1)


def length_feature(s: str) -> str:
    return f"{LENGTH}{length_bucket(s)}"


_DIGIT = re.compile("[0-9]")


@lru_cache(maxsize=65_536)
def _han_syllable(ch: str) -> str:
    """Tone-less pinyin of a Chinese character, '' for anything else."""
    return _syllable(ch) if is_han(ch) else ""


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    max_n: int = 3
    max_clause: int = 40
    window: int = 2
    #: an unpunctuated run longer than ``max_clause`` (ASR without punctuation) is read in pieces of this many
    #: characters, overlapping by half, each read as an utterance of its own by both heads: in a run there is
    #: no sentence to read the claim in, and the whole text or two 40-character pieces dilute it. 0: the run in
    #: overlapping ``max_clause`` pieces, paired like clauses (models before it). A model with a clause breaker
    #: (``ClauseBreaker``) reads runs in the clauses it restores instead
    run_piece: int = 0


#: the characters around a gap between two characters that the clause breaker reads, as (feature prefix, start,
#: end) relative to the gap in the padded text: the character before and after, the two before and after, the
#: pair across the gap, the three before and after
GAP_FEATURES = (("a", -1, 0), ("b", 0, 1), ("c", -2, 0), ("d", 0, 2), ("e", -1, 1), ("f", -3, 0), ("g", 0, 3))
_GAP_PAD = 3


def _padded(s: str) -> str:
    return "<" * _GAP_PAD + _DIGIT.sub("#", s) + ">" * _GAP_PAD


class BreakerSpec(BaseModel):
    """The clause breaker's part of the model file (``breaks``), as ``scripts/train_claims.py`` writes it."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, frozen=True)  # no "0.5", no NaN, no 4.7 clauses

    intercept: float
    weights: dict[str, float]  # a gap feature (its kind's prefix, then its text) → weight
    threshold: float = Field(gt=0, lt=1)  # a gap is a clause end from this probability
    min_clause: int = Field(ge=1)  # cuts are at least this many characters apart where the clause allows it
    window: int = Field(ge=1)  # restored clauses read alone together
    #: a window of restored clauses read alone makes the verdict only from this score: read alone, the best of a
    #: long run's many windows is high by chance more often (in real ASR of health-product streams)
    alone_min_score: float = Field(ge=0, le=1)

    @field_validator("weights")
    @classmethod
    def _gap_features(cls, weights: dict[str, float]) -> dict[str, float]:
        lengths = {name: hi - lo for name, lo, hi in GAP_FEATURES}
        for f in weights:
            if lengths.get(f[:1]) != len(f) - 1:
                raise ValueError(f"{f!r} is no gap feature")
        return weights


def gap_features(s: str) -> list[list[str]]:
    """The clause breaker's features of each gap of ``s`` (a normalised text): item i-1 for the gap before s[i]."""
    p = _padded(s)
    gaps = range(_GAP_PAD + 1, _GAP_PAD + len(s))
    return [[f"{name}{p[j + a : j + b]}" for name, a, b in GAP_FEATURES] for j in gaps]


class ClauseBreaker:
    """Where the clause ends of an unpunctuated run of speech are likely: a logistic regression over the
    characters around each gap (``GAP_FEATURES``), trained by scripts/train_claims.py on punctuated host speech,
    whose punctuation marks are its labels (a small punctuation restorer). ASR without punctuation hands over
    runs of hundreds of characters; cut into fixed pieces, a claim shares its piece with whatever selling talk
    is next to it and is diluted — cut where a clause likely ends, it is read in its own clauses, as the clause
    head was trained to read."""

    def __init__(self, spec: dict[str, Any]) -> None:
        try:
            self.spec = BreakerSpec.model_validate(spec)
        except ValidationError as e:
            raise ValueError(f"claims model clause breaker: {e}") from None
        self.intercept, self.min_clause, self.window = self.spec.intercept, self.spec.min_clause, self.spec.window
        self.alone_min_score = self.spec.alone_min_score
        self.min_logit = math.log(self.spec.threshold / (1 - self.spec.threshold))
        # per kind of feature, the weight of each text it names (the text around a gap, not a prefixed string)
        self._by_kind: list[dict[str, float]] = [{} for _ in GAP_FEATURES]
        kinds = {name: k for k, (name, _, _) in enumerate(GAP_FEATURES)}
        for f, w in self.spec.weights.items():
            self._by_kind[kinds[f[0]]][f[1:]] = w
        # a compiled kernel older than the breaker (an install not rebuilt) leaves it to Python
        gap_kernel = getattr(_claims_kernel, "GapKernel", None)
        self.kernel: _claims_kernel.GapKernel | None = (
            gap_kernel(
                [(lo, hi) for _, lo, hi in GAP_FEATURES],
                [{_claims_kernel.gram_key(text): w for text, w in weights.items()} for weights in self._by_kind],
                self.intercept,
                _GAP_PAD,
            )
            if gap_kernel is not None
            else None
        )

    def logits(self, s: str) -> list[float]:
        """The log-odds of a clause end at each gap of ``s``: item i-1 for the gap before s[i]. Compiled when
        built; ``logits_in_python`` is the reference the tests hold the kernel to."""
        if self.kernel is not None:
            return self.kernel.logits(s)
        return self.logits_in_python(s)

    def logits_in_python(self, s: str) -> list[float]:
        p, kinds = _padded(s), list(zip(GAP_FEATURES, self._by_kind, strict=True))
        return [
            self.intercept + sum(weights.get(p[j + lo : j + hi], 0.0) for (_, lo, hi), weights in kinds)
            for j in range(_GAP_PAD + 1, _GAP_PAD + len(s))
        ]

    def cuts(self, s: str, max_len: int) -> list[int]:
        """Where ``s`` is cut into clauses, its ends included: every likely clause end, likeliest first, at least
        ``min_clause`` characters from another cut; then a clause still longer than ``max_len`` is cut again at
        its likeliest gaps (``_split``)."""
        z = self.logits(s)
        n, gap, line = len(s), self.min_clause, self.min_logit
        cuts = [0, n]  # sorted
        for i in sorted((i for i in range(gap, n - gap + 1) if z[i - 1] >= line), key=lambda i: -z[i - 1]):
            k = bisect_left(cuts, i)
            if i - cuts[k - 1] >= gap and cuts[k] - i >= gap:
                cuts.insert(k, i)
        out = [0]
        for a, b in pairwise(cuts):
            out.extend(self._split(z, a, b, max_len, gap))
            out.append(b)
        return out

    @staticmethod
    def _split(z: list[float], a: int, b: int, max_len: int, gap: int) -> list[int]:
        """The cuts inside a clause [a, b) longer than ``max_len``: left to right, each at the likeliest gap of the
        next ``max_len`` characters that leaves ``gap`` characters on both sides where the clause allows it. No
        part is left longer than ``max_len``, and none shorter than ``gap`` when ``max_len`` ≥ 2 · ``gap``; it may
        cut more often than the fewest cuts would (a loop, not a recursion: a text may hold 20,000 characters)."""
        out: list[int] = []
        while b - a > max_len:
            lo, hi = a + gap, min(a + max_len, b - gap)
            if lo > hi:
                lo, hi = a + 1, min(a + max_len, b - 1)
            a = max(range(lo, hi + 1), key=lambda i: z[i - 1])
            out.append(a)
        return out


def _windows(clauses: list[tuple[int, int]], w: int) -> list[tuple[int, int]]:
    """The spans of each ``w`` consecutive clauses; fewer clauses than ``w``: all of them, once."""
    last = max(1, len(clauses) - w + 1)
    return [(clauses[k][0], clauses[min(k + w, len(clauses)) - 1][1]) for k in range(last)]


class Featurizer:
    """Text → features, the same at training and at run time (the training script imports this class)."""

    def __init__(self, spec: FeatureSpec, vocabulary: dict[str, str], breaker: ClauseBreaker | None = None) -> None:
        self.spec = spec
        self.vocabulary = vocabulary  # word → class ("" for a word without class)
        #: when set, an unpunctuated run is cut where its clauses likely end and read in windows of them
        self.breaker = breaker
        self._words = WordFinder(vocabulary)
        self._word_list = list(vocabulary)
        self._has_words = bool(vocabulary)

    def units(self, text: NormalizedText) -> list[tuple[int, int]]:
        """Spans (normalised coordinates) of the units of ``text``: ``window`` consecutive clauses, and the
        pieces of its unpunctuated runs (``run_piece``)."""
        units, pieces = self.reading_units(text)
        return units + pieces

    def reading_units(self, text: NormalizedText) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The units of clauses, and the pieces of unpunctuated runs read alone: windows of the clauses the
        ``breaker`` restores in a run, else pieces of ``run_piece`` characters (none when that is 0 either)."""
        n = len(text.text)
        cuts = [0, *clause_breaks(text), n]
        spec = self.spec
        clauses: list[tuple[int, int] | None] = []  # None: a run read in pieces, which no unit spans
        pieces: list[tuple[int, int]] = []
        for s, e in pairwise(cuts):
            if e - s <= spec.max_clause:
                clauses.append((s, e))
            elif self.breaker is not None:
                # read as if punctuated where its clauses likely end (units of clauses, under the whole text's
                # segment score), and in windows of those clauses alone (``ClauseBreaker.alone_min_score``)
                restored = list(pairwise(s + c for c in self.breaker.cuts(text.text[s:e], spec.max_clause)))
                clauses.extend(restored)
                pieces.extend(_windows(restored, self.breaker.window))
            elif spec.run_piece:
                step = spec.run_piece // 2
                pieces.extend((k, min(k + spec.run_piece, e)) for k in range(s, e - step, step))
                clauses.append(None)
            else:  # ASR without punctuation: overlapping pieces, so a claim across a cut is seen whole once
                step = spec.max_clause // 2
                clauses.extend((k, min(k + spec.max_clause, e)) for k in range(s, e - step, step))
        w = spec.window
        if not pieces and len(clauses) <= w:
            return [(0, n)], []
        units: list[tuple[int, int]] = []
        for is_clause, group in groupby(clauses, key=lambda c: c is not None):  # each stretch between runs
            if not is_clause:
                continue
            units.extend(_windows(cast(list[tuple[int, int]], list(group)), w))
        return units, pieces

    def features(self, s: str) -> list[str]:
        """Features of one normalised text; each occurrence listed once per position. (Training uses this;
        scoring finds the known ones with ``KnownFeatures``, tested to give the same set.)"""
        return [f for f, _, _ in self.located(s)]

    def located(self, s: str) -> list[tuple[str, int, int]]:
        """Each feature of ``s`` with its span in ``s``: the n-grams, the pinyin pairs, the vocabulary words and
        their classes, the length bucket."""
        masked = _DIGIT.sub("#", s)
        out = [(masked[i : i + n], i, i + n) for n in range(1, self.spec.max_n + 1) for i in range(len(s) - n + 1)]
        syl = list(map(_han_syllable, s))
        out.extend((f"{PINYIN}{syl[i]}_{syl[i + 1]}", i, i + 2) for i in range(len(s) - 1) if syl[i] and syl[i + 1])
        if self._has_words:
            classes = self._words.values
            for k, start, end in self._words.find(s):
                out.append((WORD + self._word_list[k], start, end))
                if classes[k]:
                    out.append((WORD_CLASS + classes[k], start, end))
        out.append((length_feature(s), 0, len(s)))
        return out


class KnownFeatures:
    """Finds, in C passes, which of the heads' features a text holds — the same set ``Featurizer.features``
    lists, without building a string per n-gram (most are unknown to the model) and without a dictionary
    look-up per n-gram: the hot path of every host utterance.

    Per head, one Aho-Corasick automaton over the digit-masked text followed by its pinyin in capitals,
    "^SYL^SYL^…^" (a non-Chinese character is "|", so a pair is only found between two adjacent Chinese
    characters): the normalised text is lower case and holds no "^", so an n-gram is only found in the text
    and a pinyin pair only in its pinyin. One more automaton finds the vocabulary words, each mapped to the
    rows it stands for in each head (a word also stands for its class). The compiled kernel, when built, does all of
    ``proba``'s finding itself, the words from the n-grams' keys; these automata serve the reference and
    ``located``."""

    def __init__(self, featurizer: Featurizer, heads: Sequence[Head]) -> None:
        self.max_n = featurizer.spec.max_n
        self.heads = tuple(heads)
        self._featurizer = featurizer
        keyed: list[dict[str, int]] = [{} for _ in heads]
        for h, head in enumerate(heads):
            for f, row in head.index.items():
                if f[0] == PINYIN:
                    keyed[h]["^" + f[1:].replace("_", "^").upper() + "^"] = row
                elif f[0] not in (WORD, WORD_CLASS, LENGTH) and len(f) <= self.max_n:
                    keyed[h][f] = row
        self._has_pinyin = any(f[0] == PINYIN for head in heads for f in head.index)
        self.keys = [WordFinder(k) for k in keyed]
        # per head, its length feature's row by bucket (looked up by index, not by a string built per text)
        self.length_rows = [[head.index.get(f"{LENGTH}{b}") for b in range(LENGTH_BUCKETS)] for head in heads]
        words = {}
        for word, cls in featurizer.vocabulary.items():
            rows = tuple(
                tuple(r for r in (head.index.get(WORD + word), head.index.get(WORD_CLASS + cls) if cls else None) if r)
                for head in heads
            )
            if any(rows):
                words[word] = rows
        self.words = WordFinder(words)
        self._word_rows = words
        self.kernels = self._kernels(heads) if _claims_kernel is not None and self.max_n <= 3 else None

    def _kernels(self, heads: Sequence[Head]) -> list[_claims_kernel.HeadKernel]:
        """The compiled heads: each head's n-grams and pinyin pairs by key, one syllable table for all."""
        assert _claims_kernel is not None
        used = {syl for head in heads for f in head.index if f[0] == PINYIN for syl in f[1:].split("_")}
        syllable_ids = {syl: i for i, syl in enumerate(sorted(used))}
        syllables = _claims_kernel.Syllables(syllable_ids, _han_syllable)
        kernels = []
        for h, head in enumerate(heads):
            keyed: dict[int, int] = {}
            for f, row in head.index.items():
                if f[0] == PINYIN:
                    first, second = f[1:].split("_")
                    keyed[_claims_kernel.pair_key(syllable_ids[first], syllable_ids[second])] = row
                elif f[0] not in (WORD, WORD_CLASS, LENGTH) and len(f) <= self.max_n:
                    keyed[_claims_kernel.gram_key(f)] = row
            words = {word: rows[h] for word, rows in self._word_rows.items() if rows[h]}
            kernels.append(
                _claims_kernel.HeadKernel(
                    keyed,
                    head.gathered,
                    head.intercept,
                    syllables,
                    self.max_n,
                    words,
                    self.length_rows[h],
                    LENGTH_BUCKET,
                )
            )
        return kernels

    def proba(self, s: str, head: int) -> list[float]:
        """Class probabilities of ``s`` (a normalised text) by head ``head``: compiled when built, else
        ``find`` + ``Head.proba_of_rows`` (the reference the tests hold the kernel to)."""
        if self.kernels is None:
            return self.heads[head].proba_of_rows(self.find(s, head))
        # the kernel finds every feature itself: the vocabulary words from the n-grams' keys (an Aho-Corasick call per
        # text cost nearly as much as its whole pass: the binding copies the text, maps its bytes to characters and
        # lets go of the GIL), the length bucket; and it holds the lock its scratch marks need
        return self.kernels[head].proba(s)

    def located(self, s: str, head: int) -> list[tuple[int, int, int]]:
        """(row, start, end) of each occurrence of a feature of ``s`` (a normalised text) that ``head`` knows, in
        ``Featurizer.located``'s order: n-grams, pinyin pairs, words and their classes, the length. Compiled when
        built (the n-grams and pairs in C; an explanation built from ``Featurizer.located`` made a string and a
        look-up per n-gram, ≈ 80 for a clause, and cost as much as reading the utterance)."""
        if self.kernels is None:
            index = self.heads[head].index
            return [(row, a, b) for f, a, b in self._featurizer.located(s) if (row := index.get(f))]
        out = self.kernels[head].located(s)
        of_word = self.words.values
        for k, start, end in self.words.find(s):
            out.extend((row, start, end) for row in of_word[k][head])
        row = self.length_rows[head][length_bucket(s)]
        if row:
            out.append((row, 0, len(s)))
        return out

    def find(self, s: str, head: int) -> set[int]:
        """Row ids of ``head`` for the features of ``s`` (a normalised text)."""
        rows: set[int] = set()
        if len(self.keys[head]):
            keyed = _DIGIT.sub("#", s)
            if self._has_pinyin:
                keyed += "^" + "^".join(map(_SYLLABLE_OR_BAR.__getitem__, s)) + "^"
            rows.update(self.keys[head].values_in(keyed))
        if len(self.words):
            for per_head in self.words.values_in(s):
                rows.update(per_head[head])
        row = self.length_rows[head][length_bucket(s)]
        if row:
            rows.add(row)
        return rows


#: a character's pinyin in capitals, or "|" for a character that is not Chinese
_SYLLABLE_OR_BAR = CharTable(lambda ch: _han_syllable(ch).upper() or "|")


class Head:
    """One multinomial logistic regression over binary tf-idf features of unit length: a text's vector holds
    idf(f) / ‖idf of its features‖ for each distinct known feature f. The file stores, per feature, its idf
    and each class's weight × idf, so a score is a sum of rows divided by one norm."""

    def __init__(self, classes: Sequence[str], intercept: Sequence[float], weights: dict[str, Sequence[float]]):
        self.classes = tuple(classes)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.intercept_list = [float(b) for b in intercept]
        # row 0 is all zeros: an unknown feature looks up row 0, so no per-feature test is needed
        self.index = {f: i for i, f in enumerate(weights, start=1)}
        self.names = ["", *weights]  # row → feature (an explanation names them)
        table = np.zeros((len(weights) + 1, len(classes) + 1), dtype=np.float64)
        if weights:
            table[1:] = np.asarray(list(weights.values()), dtype=np.float64)
        if not (np.isfinite(table).all() and np.isfinite(self.intercept).all()):
            # a NaN would score every text NaN and order an explanation's pushes arbitrarily
            raise ValueError("claims model: a head's weights or intercepts are not all finite numbers")
        self.idf_squared = table[:, 0] ** 2
        self.matrix = np.ascontiguousarray(table[:, 1:])
        # each class's weight against 'none', a column per class (an explanation takes one class's rows: faster than
        # indexing the matrix)
        pushes = self.matrix - self.matrix[:, :1]
        self.pushes = [np.ascontiguousarray(pushes[:, k]) for k in range(len(self.classes))]
        # the class weights and idf² side by side: one gather and one sum give a text's scores and its norm
        self.gathered = np.ascontiguousarray(np.hstack((self.matrix, self.idf_squared[:, None])))

    def proba(self, features: list[str]) -> list[float]:
        present = set(map(self.index.get, features, repeat(0, len(features))))
        present.discard(0)
        return self.proba_of_rows(present)

    def proba_of_rows(self, present: set[int]) -> list[float]:
        """Class probabilities of a text holding the features of these rows (0 excluded). One numpy gather and
        sum; the softmax over five classes in plain floats (numpy's per-call cost is larger than the work)."""
        z = self.intercept_list
        if present:
            total = self.gathered.take(np.fromiter(present, dtype=np.intp, count=len(present)), axis=0).sum(axis=0)
            *scores, norm_squared = total.tolist()
            scale = 1.0 / math.sqrt(norm_squared)
            z = [b + w * scale for b, w in zip(z, scores, strict=True)]
        top = max(z)
        e = [math.exp(x - top) for x in z]
        total_e = sum(e)
        return [x / total_e for x in e]

    def contributions(self, located: list[tuple[int, int, int]], cls: int) -> Iterator[tuple[float, str, int, int]]:
        """Each present feature's push towards class ``cls`` against 'none' (class 0), largest first (ties in the
        order given), from the (row, start, end) of its occurrences (``KnownFeatures.located``). Lazily: an
        explanation reads the first dozen of a clause's ≈ 60, and a tuple per feature cost more than the rest."""
        rows = [row for row, _, _ in located]
        present = set(rows)
        # add.reduce is what ndarray.sum runs, without its Python wrapper: the same sum, to the last bit
        norm_squared = float(
            np.add.reduce(self.idf_squared.take(np.fromiter(present, dtype=np.intp, count=len(present))))
        )
        scale = 1 / math.sqrt(norm_squared or 1.0)
        pushes = self.pushes[cls].take(np.fromiter(rows, dtype=np.intp, count=len(rows))) * scale
        weights, names = pushes.tolist(), self.names
        for i in (-pushes).argsort(kind="stable").tolist():
            row, start, end = located[i]
            yield weights[i], names[row], start, end


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the model read in one utterance."""

    claim_type: str  # the most probable claim type (never 'none')
    score: float  # probability of a claim: min(segment head, best unit)
    segment_score: float
    unit_score: float
    unit: tuple[int, int]  # the deciding unit, normalised coordinates


class ClaimModel:
    def __init__(self, spec: dict[str, Any], digest: str) -> None:
        if spec.get("format") != FORMAT:
            raise ValueError(f"claims model format {spec.get('format')!r}, this livewatch reads {FORMAT}")
        self.digest = digest
        self.version = str(spec["version"])
        self.classes = tuple(spec["classes"])
        if self.classes[0] != NONE or set(self.classes[1:]) - set(CLAIM_TYPES):
            raise ValueError(f"claims model classes {self.classes}: 'none' first, then claim types")
        try:
            features = FeatureSpec(**spec["features"])
            if (
                features.max_n < 1
                or features.max_clause < 2
                or features.window < 1
                or not (features.run_piece == 0 or 2 <= features.run_piece <= features.max_clause)
            ):
                raise ValueError(f"claims model features {spec['features']} out of range")
            breaker = ClauseBreaker(spec["breaks"]) if "breaks" in spec else None
            self.featurizer = Featurizer(features, dict(spec["vocabulary"]), breaker)
            self.segment = Head(
                self.classes, spec["heads"]["segment"]["intercept"], spec["heads"]["segment"]["weights"]
            )
            self.clause = Head(self.classes, spec["heads"]["clause"]["intercept"], spec["heads"]["clause"]["weights"])
        except (KeyError, TypeError, AttributeError, IndexError) as e:  # a damaged file: refused at load like a bad
            # rule, not at the first event
            raise ValueError(f"claims model file is not a livewatch claims model: {e!r}") from e
        self.trained_on = spec.get("trained_on", {})
        self.known = KnownFeatures(self.featurizer, (self.segment, self.clause))

    @property
    def label(self) -> str:
        """What findings carry: the model version and the first 12 hex of the file's sha256."""
        return f"{self.version}+{self.digest[:12]}"

    def read(self, text: NormalizedText, at_least: float = 0.0) -> Verdict | None:
        """The verdict on one utterance, or None when its claim score is surely below ``at_least``: the
        segment head reads first, and the score is at most its score, so most chit-chat costs one head.
        The pieces of an unpunctuated run (``FeatureSpec.run_piece``) are read as utterances of their own; with
        them, a verdict below ``at_least`` may also come back (the caller compares its score anyway)."""
        norm = text.text
        seg = self.known.proba(norm, 0)
        segment_score = 1.0 - float(seg[0])
        # a text no longer than a clause holds no run to read in pieces: most chit-chat ends here, on one head
        if segment_score < at_least and (
            len(norm) <= self.featurizer.spec.max_clause
            or not (self.featurizer.spec.run_piece or self.featurizer.breaker)
        ):
            return None
        units, pieces = self.featurizer.reading_units(text)
        if segment_score < at_least and not pieces:
            return None
        verdict: Verdict | None = None
        if units and segment_score >= at_least:  # else their scores, at most the segment's, are below it too
            if units == [(0, len(norm))]:
                best, best_p = units[0], self.known.proba(norm, 1)
            else:
                best, best_p = units[0], None
                for u in units:
                    p = self.known.proba(norm[u[0] : u[1]], 1)
                    if best_p is None or p[0] < best_p[0]:
                        best, best_p = u, p
            assert best_p is not None
            unit_score = 1.0 - float(best_p[0])
            verdict = Verdict(self._type(best_p), min(unit_score, segment_score), segment_score, unit_score, best)
        breaker = self.featurizer.breaker
        alone_min = breaker.alone_min_score if breaker is not None else 0.0
        for piece in pieces:
            said = norm[piece[0] : piece[1]]
            p = self.known.proba(said, 1)
            unit_score = 1.0 - float(p[0])
            if unit_score < max(at_least, alone_min) or (verdict is not None and unit_score <= verdict.score):
                continue  # its score is at most its unit score
            piece_score = 1.0 - float(self.known.proba(said, 0)[0])
            if min(unit_score, piece_score) < alone_min:
                continue
            if verdict is None or min(unit_score, piece_score) > verdict.score:
                verdict = Verdict(self._type(p), min(unit_score, piece_score), piece_score, unit_score, piece)
        return verdict

    def _type(self, proba: list[float]) -> str:
        """The likeliest claim type (never 'none': the score says how likely a claim is at all)."""
        best: str = self.classes[1 + max(range(len(proba) - 1), key=lambda k: proba[k + 1])]
        return best

    def explain(
        self, text: NormalizedText, verdict: Verdict, limit: int = 3
    ) -> tuple[tuple[int, int, str, float], ...]:
        """(start, end, features, weight) of the deciding unit's spans that pushed most towards the verdict's
        claim type, normalised coordinates — what a reviewer reads as the reason."""
        s, e = verdict.unit
        return self._deciding(text.text[s:e], s, self.classes.index(verdict.claim_type), limit)

    def _deciding(self, unit: str, offset: int, cls: int, limit: int) -> tuple[tuple[int, int, str, float], ...]:
        """The unit's character spans whose features pushed most towards ``cls``: overlapping top features
        merged into one span, so a reviewer reads "降血压", not "降血", "血压", "^xue_ya"."""
        contributions = self.clause.contributions(self.known.located(unit, 1), cls)
        # the largest positive pushes; the length bucket is no span of the text
        pushes = list(islice((c for c in takewhile(_pushes, contributions) if c[1][0] != LENGTH), 12))
        merged: list[list[Any]] = []  # [start, end, [features], weight]
        for w, feat, s, e in sorted(pushes, key=lambda t: t[2]):
            if merged and s < merged[-1][1]:
                m = merged[-1]
                m[1], m[3] = max(m[1], e), m[3] + w
                m[2].append(feat)
            else:
                merged.append([s, e, [feat], w])
        merged.sort(key=lambda m: -m[3])
        return tuple((offset + s, offset + e, " ".join(f), round(float(w), 4)) for s, e, f, w in merged[:limit])


def _pushes(contribution: tuple[float, str, int, int]) -> bool:
    return contribution[0] > 0


@lru_cache(maxsize=4)
def load_model(data: bytes) -> ClaimModel:
    """A model from the bytes of its file; parsed once per distinct file (rule self-checks build many
    detectors from one ruleset)."""
    return ClaimModel(json.loads(data), hashlib.sha256(data).hexdigest())
