"""The regular-expression prefilter: which literals a pattern cannot match without, and that running only
the candidates finds every match the patterns find."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from detectors.normalize import normalize
from detectors.prefilter import PatternSet, WordFinder, required_literals
from pipeline.ruleset import load_ruleset

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "pattern, literals",
    [
        ("最好(?:用|吃|喝|穿)的", {"最好用的", "最好吃的", "最好喝的", "最好穿的"}),  # literal-only parts join
        (
            "保证(?:你)?(?:能|会)?(?:瘦|白)",
            {"保证" + a + b + c for a in ("", "你") for b in ("", "能", "会") for c in "瘦白"},
        ),
        (
            "不(?:敢(?:讲|说)|能(?:说)?)",
            {"不敢讲", "不敢说", "不能"},
        ),  # a word list as a trie: its words ("不能说" holds "不能")
        ("[a-h][a-h][a-h]", {x + y for x in "abcdefgh" for y in "abcdefgh"}),  # joined up to MAX_JOINED strings
        ("(?:效果|质量).{0,3}(?:最好|最佳|最强)", {"效果", "质量"}),  # equally long: fewer strings
        ("瘦(?:了|掉)?[0-9]+斤", {"瘦"}),  # a tie: the first
        ("(?<![0-9])[一二三]+天见效", {"天见效"}),  # a look-behind requires nothing
        ("[一二三四五六七八九十两几]+(?:天|周)", {"天", "周"}),  # a class of 12 characters is wider
    ],
)
def test_required_literals_are_read_from_the_pattern(pattern, literals):
    assert required_literals(pattern) == literals


@pytest.mark.parametrize(
    "pattern",
    [
        ".{0,8}",  # nothing is required
        "(?:最好)?的?",  # only optional parts
        "(?i)abc",  # either case: a literal filter would miss "ABC"
        "(?:最好|.*)",  # an alternative that requires nothing
        "[^退]+",  # a negated class
    ],
)
def test_a_pattern_whose_literals_are_unknown_always_runs(pattern):
    assert required_literals(pattern) is None
    assert PatternSet([pattern]).candidates("任何文字") == [0]


def test_candidates_are_ascending_and_only_those_that_may_match():
    patterns = PatternSet(["保证(?:有效|见效)", "全网最低", "(?<![0-9])[0-9]+天见效"])
    assert patterns.candidates("我保证三天见效") == [2]  # "保证" alone is not "保证有效" nor "保证见效"
    assert patterns.candidates("保证有效，三天见效") == [0, 2]
    assert patterns.candidates("今天天气不错") == []


def _texts() -> list[str]:
    texts = []
    for path in sorted((REPO / "corpus" / "claims").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    labelled = REPO / "scripts" / "claims_labelled.jsonl"
    texts += [json.loads(line)["text"] for line in labelled.read_text(encoding="utf-8").splitlines() if line.strip()]
    return texts


def test_the_claims_patterns_prefiltered_find_every_match_they_find_unfiltered():
    claims = load_ruleset(check_examples=False).configured["false_claims"]
    patterns = [p for rule in claims.rules for p in rule.patterns]
    assert len(patterns) >= 20
    prefiltered = PatternSet(patterns)
    compiled = [re.compile(p) for p in patterns]
    matched = 0
    for text in _texts():
        norm = normalize(text).text
        can = set(prefiltered.candidates(norm))
        for k, rx in enumerate(compiled):
            if rx.search(norm):
                matched += 1
                assert k in can, (patterns[k], text)
    assert matched >= 200  # the corpus does exercise the patterns


def test_compiled_patterns_are_taken_with_their_flags():
    # a flag given at compile time, not inline, still decides: either case needs no literal filter, and a
    # verbose pattern's literals are read without its spaces
    assert PatternSet([re.compile("abc", re.IGNORECASE)]).candidates("xyz") == [0]
    verbose = PatternSet([re.compile("保 证 | 最 好", re.VERBOSE)])
    assert verbose.candidates("保证有效") == [0] and verbose.candidates("保 证") == []
    assert required_literals("保 证 | 最 好", re.VERBOSE) == {"保证", "最好"}


def test_a_long_list_of_words_is_one_filter():
    words = [f"不敢说{i:03d}" for i in range(600)]  # more words than a filter held before (64)
    patterns = PatternSet(["|".join(words)])
    assert patterns.candidates("今天天气不错") == []
    assert patterns.candidates("我不敢说599") == [0]


def test_the_claims_context_cues_that_match_a_clause_are_among_those_that_may_match_its_text():
    """The claims detector runs a context cue on a clause only when ``may_match`` of the whole utterance names it:
    every cue that matches a clause of the corpora must be named (exact filter), and most must not be."""
    detector = load_ruleset(check_examples=False).configured["false_claims"]
    cues = detector._cues
    matched = named = total = 0
    for text in _texts():
        norm = normalize(text).text
        may = cues.may_match(norm)
        named += len(may)
        total += len(cues.patterns)
        clauses = [c for c in re.split("[，。！？,.!?]", text) if c] + [text]
        for clause in (normalize(c).text for c in clauses):
            for rx in cues.patterns:
                if rx.search(clause):
                    matched += 1
                    assert id(rx) in may and id(rx) in cues.may_match(clause), (rx.pattern[:40], clause)
    assert matched >= 100  # the corpora do exercise the cues
    assert named < total / 3  # and the filter leaves most of them out


def _every_occurrence(words: dict[str, int], text: str) -> list[tuple[int, int, int]]:
    """(word, start, end) of each word at each place it stands, by end and longest first: the reference."""
    return [
        (words[text[start:end]], start, end)
        for end in range(1, len(text) + 1)
        for start in range(end)
        if text[start:end] in words
    ]


def test_the_word_finder_finds_every_occurrence_overlapping_ones_too():
    listed = ["减肥", "肥", "减肥茶", "茶", "a", "aa", "\U0001f525火", "火"]
    words = {w: k for k, w in enumerate(listed)}
    finder = WordFinder({w: w.upper() for w in listed})
    assert len(finder) == 8 and len(WordFinder({})) == 0 and WordFinder({}).find("减肥") == []
    for text in ["减肥茶", "喝减肥茶减肥", "aaa", "\U0001f525火火爆", "", "无关的话"]:
        expected = _every_occurrence(words, text)
        assert finder.find(text) == expected, text
        assert finder.values_in(text) == [listed[k].upper() for k, _, _ in expected]


def test_the_word_finder_agrees_with_the_reference_on_the_claims_model_vocabulary():
    vocabulary = load_ruleset(check_examples=False).configured["false_claims"].model.featurizer.vocabulary
    words = {w: k for k, w in enumerate(vocabulary)}
    finder = WordFinder(words)
    found = 0
    for text in _texts()[:400]:
        norm = normalize(text).text
        expected = _every_occurrence(words, norm)
        assert finder.find(norm) == expected, text
        found += len(expected)
    assert found >= 1000  # the texts do hold the words
