"""The normaliser undoes evasions and keeps a map back to the raw text."""

import json
import random
import re
from pathlib import Path

import pytest

from detectors import normalize as normalize_module
from detectors.normalize import (
    alternation,
    mask_digits,
    normalize,
    pinyin_keys,
    pinyin_text,
    words_regex,
)
from detectors.price_speech import AMOUNT
from pipeline.ruleset import load_ruleset
from tests.conftest import SHARED_DATA

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("全网最低价", "全网最低价"),
        ("全网ＮＯ．１", "全网no1"),  # full-width letters and digits, NFKC
        ("減肥療效", "减肥疗效"),  # traditional → simplified
        ("减\u200b肥", "减肥"),  # zero-width space
        ("减\u00ad肥\ufe0f", "减肥"),  # soft hyphen, variation selector
        ("减.肥", "减肥"),  # inserted symbol
        ("减 * 肥 ！", "减肥"),
        ("最最最好", "最好"),  # runs of three or more collapse
        ("好好学习", "好好学习"),  # a pair is language, not evasion
        ("瘦了3.2斤。", "瘦了3.2斤"),  # a decimal point between digits stays
        ("99%的人回购", "99%的人回购"),
        ("销量1000单", "销量1000单"),  # repeated digits are a number, never collapsed
        ("①②③", "123"),  # circled digits
        ("", ""),
    ],
)
def test_normalised_text(raw, expected):
    assert normalize(raw).text == expected


@pytest.mark.parametrize("raw", ["減\u200b肥 療效！", "ＡＢＣ １２３", "最最最好的 ‼ 选择", "a\u0301b"])
def test_every_normalised_character_maps_back_into_the_raw_text(raw):
    n = normalize(raw)
    assert len(n.offsets) == len(n.text)
    assert list(n.offsets) == sorted(n.offsets)
    assert all(0 <= o < len(raw) for o in n.offsets)


def test_a_match_in_the_normalised_text_is_reported_as_the_raw_span():
    raw = "今天 減\u200b肥 特价"
    n = normalize(raw)
    start = n.text.index("减肥")
    s, e = n.raw_span(start, start + 2)
    assert raw[s:e] == "減\u200b肥"
    assert n.raw_slice(start, start + 2) == "減\u200b肥"


def test_homophones_share_pinyin_keys():
    assert pinyin_keys("减fei").text == pinyin_keys("减肥").text == pinyin_keys("见肥").text == "jianfei"


def test_pinyin_keys_map_back_to_characters():
    keys = pinyin_keys("能减肥")
    start = keys.text.index("jianfei")
    assert keys.unit_of[start] == 1 and keys.unit_of[start + len("jianfei") - 1] == 2
    assert start in keys.boundaries


def test_pinyin_keys_of_mixed_text_one_unit_per_character():
    text = "a减fei😀𠀀能"
    keys = pinyin_keys(text)
    assert keys.text == pinyin_text(text) == "ajianfei😀𠀀neng"
    # each pinyin character points back at the character it came from; a unit starts at each boundary
    assert keys.unit_of == (0, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 7, 7, 7)
    assert keys.boundaries == {0, 1, 5, 6, 7, 8, 9, 10, 14}


def test_digits_are_masked_so_templates_with_other_numbers_coincide():
    assert (
        mask_digits(normalize("3颗就瘦了3.2斤").text) == mask_digits(normalize("2颗就瘦了5斤").text) == "#颗就瘦了#斤"
    )


def _flat(words: list[str]) -> str:
    """The alternation as it was written before the trie: every word, the longest first (the reference)."""
    return "|".join(re.escape(w) for w in sorted(set(words), key=lambda w: (-len(w), w)) if w)


@pytest.mark.parametrize(
    "words",
    [
        ["不能", "不能说", "能说", "说", "不敢讲", "不"],  # words inside words, prefixes of each other
        ["ab", "abcd", "abx", "ac", "abyz", "b"],  # a branch whose deeper word fails: the longest one that matches
        ["a.b", "(c)", "d+"],  # characters a regular expression would read: escaped
    ],
)
@pytest.mark.parametrize("after", ["", "c", "(?:d|yz)", "b+", "说?不"])  # more pattern after the words, or none
def test_a_trie_matches_as_the_flat_alternation_longest_first(words, after):
    flat, trie = re.compile(f"(?:{_flat(words)}){after}"), re.compile(f"(?:{alternation(words)}){after}")
    texts = ["我不能说也不能不说", "不敢讲不", "abcdabyzabxacab", "abyabc", "a.b(c)d+dd", "aXb(c", "abcabyzc"]
    for text in texts:
        assert [m.span() for m in trie.finditer(text)] == [m.span() for m in flat.finditer(text)], text
        assert trie.sub("", text) == flat.sub("", text)


def test_a_list_with_a_very_long_word_is_written_flat_and_still_matches():
    words = ["减" * 5_000, "减肥", "减"]
    rx = re.compile(alternation(words))
    assert rx.search("减肥茶").group() == "减肥" and rx.fullmatch("减" * 5_000)


def test_random_word_lists_match_as_tries_as_they_did_flat():
    rng = random.Random(20261201)
    for _ in range(500):
        words = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 8))]
        after = rng.choice(["", "c", "(?:a|bc)", "b+", "a?c", "(?=b)", "$"])
        flat, trie = re.compile(f"(?:{_flat(words)}){after}"), re.compile(f"(?:{alternation(words)}){after}")
        for _ in range(5):
            text = "".join(rng.choice("abc") for _ in range(rng.randint(0, 12)))
            assert [m.span() for m in trie.finditer(text)] == [m.span() for m in flat.finditer(text)], (words, after)


def test_the_rule_files_word_lists_as_tries_match_as_they_did_flat():
    """Every word list the rules turn into a ``words_regex``: the same matches on the claims corpora as the flat
    alternation (longest first) it replaced."""
    ruleset = load_ruleset(check_examples=False)
    ctx = ruleset.configured["false_claims"].settings.context
    floods = ruleset.configured["bot_flood"]
    lists = [
        ctx.refusals,
        ctx.rule_quotes,
        ctx.questions,
        ctx.contrasts,
        ctx.refers_back,
        ctx.in_the_list,
        ctx.product_refs,
        ctx.ordinals,
        [c for r in floods.rules for c in r.cues],
        floods.settings.fillers,
    ]
    texts = [
        normalize(json.loads(line)["text"]).text
        for path in sorted((REPO / "corpus" / "claims").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    found = 0
    for words in lists:
        flat, trie = re.compile(_flat([normalize(w).text for w in words]) or "(?!)"), words_regex(words)
        for text in texts:
            spans = [m.span() for m in trie.finditer(text)]
            assert spans == [m.span() for m in flat.finditer(text)], (words[:3], text)
            found += len(spans)
    assert found >= 100  # the corpora do exercise the lists


def test_the_spoken_price_patterns_match_as_they_did_with_flat_word_lists():
    """Where more pattern follows the words: the spoken-price readings (cue, filler, amount) built both ways."""
    speech = load_ruleset(check_examples=False).configured["price_marking"].settings.speech
    fillers = f"(?:{_flat(speech.fillers)})?"
    trie_fillers = f"(?:{alternation(speech.fillers)})?"
    pairs = [
        (rf"({_flat(cues)}){fillers}({AMOUNT})", rf"({alternation(cues)}){trie_fillers}({AMOUNT})")
        for cues in (speech.sale_cues, speech.original_cues)
    ] + [(rf"({AMOUNT})({_flat(speech.sale_suffixes)})", rf"({AMOUNT})({alternation(speech.sale_suffixes)})")]
    said = [
        f"{cue}{filler}{amount}{suffix}"
        for cue in [*speech.sale_cues, *speech.original_cues, "今天"]
        for filler in ["", *speech.fillers[:3]]
        for amount in ["99", "一百二十九", "3块5"]
        for suffix in ["", *speech.sale_suffixes[:3]]
    ]
    for flat, trie in ((re.compile(a), re.compile(b)) for a, b in pairs):
        for text in said:
            assert [m.groups() for m in trie.finditer(text)] == [m.groups() for m in flat.finditer(text)], text


# -- the compiled normaliser (detectors/_normalize.pyx) against the reference ``_normalize`` -------------------------


def _same_as_the_reference(texts):
    """The texts whose compiled normalisation differs from the reference's (text, offsets or class)."""
    assert normalize_module._compiled is not None, "detectors/_normalize was not built (pip install -e .)"
    differ = []
    for raw in texts:
        expected, got = normalize_module._normalize(raw), normalize_module._compiled.normalize(raw)
        if got != expected or type(got) is not type(expected):
            differ.append(raw)
    return differ


def test_the_compiled_normaliser_agrees_on_every_character():
    """Each code point alone; in the basic plane also three in a row (runs) and between two digits ("." rule)."""
    singles = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000 or cp % 64 == 0]
    bmp = [chr(cp) for cp in range(0x10000)]
    assert _same_as_the_reference(singles) == []
    assert (
        _same_as_the_reference([ch * 3 for ch in bmp] + [f"1{ch}2" for ch in bmp] + [f"{ch}.{ch}" for ch in bmp]) == []
    )


def test_the_compiled_normaliser_agrees_on_random_evasions():
    rng = random.Random(48)
    alphabet = list("abcABC123.%．。，！ 　?？…~～一二三瘦減肥體重臺灣發财们們ⅫⅠ①②²³㎏🔟\u200b\ufe0f\u3164\u1160\ud800")
    alphabet += [chr(rng.randint(0x20, 0x2FFF)) for _ in range(200)]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(50_000)]
    assert _same_as_the_reference(texts) == []


def test_the_compiled_normaliser_agrees_on_real_streams():
    texts = [
        value
        for name in ("livechat_douyin_dev.jsonl", "bilibili_danmaku_2020-12-12.jsonl", "liveamr_violations_train.jsonl")
        for line in (SHARED_DATA / name).read_text(encoding="utf-8").splitlines()
        for value in json.loads(line).values()
        if isinstance(value, str)
    ]
    assert len(texts) > 100_000
    assert _same_as_the_reference(texts) == []


def test_the_compiled_pinyin_text_agrees_with_the_reference():
    """``pinyin_text`` (compiled ``CharJoin``) against ``_pinyin_text``: every code point alone (below and beyond the
    table), and real streams normalised as the claims lexicon reads them."""
    from detectors.normalize import CharJoin, _pinyin_text

    assert isinstance(pinyin_text, CharJoin)
    singles = [chr(cp) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000]
    assert [pinyin_text(ch) for ch in singles] == [_pinyin_text(ch) for ch in singles]
    texts = [
        normalize(value).text
        for name in ("livechat_douyin_dev.jsonl", "liveamr_violations_train.jsonl")
        for line in (SHARED_DATA / name).read_text(encoding="utf-8").splitlines()[:3000]
        for value in json.loads(line).values()
        if isinstance(value, str)
    ]
    assert [pinyin_text(t) for t in texts] == [_pinyin_text(t) for t in texts]


def test_a_char_join_keeps_what_it_was_told_and_refuses_a_value_that_is_not_text():
    from detectors.normalize import CharJoin

    asked: list[str] = []
    join = CharJoin(lambda ch: asked.append(ch) or ch.upper(), limit=2)
    assert join("ab\U0001d400\U0001d401\U0001d402ab") == "AB\U0001d400\U0001d401\U0001d402AB"
    assert asked.count("a") == 1 and asked.count("\U0001d400") == 1  # the dict beyond the table: emptied when full
    assert join("\U0001d400") == "\U0001d400" and asked.count("\U0001d400") == 2
    with pytest.raises(TypeError):
        CharJoin(lambda ch: 1)("x")


def test_a_han_characters_syllable_is_pypinyins_normal_style_of_it():
    """``_syllable`` reads pypinyin's dictionary directly: the same as ``lazy_pinyin`` on every Han character."""
    from pypinyin import Style, lazy_pinyin

    from detectors.normalize import _syllable

    chars = [chr(cp) for cp in [*range(0x3400, 0x4DC0), *range(0x4E00, 0xA000)]]
    assert [_syllable(ch) for ch in chars] == [lazy_pinyin(ch, style=Style.NORMAL)[0] for ch in chars]
    assert _syllable("a") == "a" and _syllable("😀") == "😀"
