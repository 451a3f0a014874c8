"""False-claims detector (虚假宣传): absolute terms, efficacy/disease claims, fabricated data, guarantees.

Reads what the seller says — host transcript, host/operator chat and product titles — never viewer chat.
Two readers, combined per claim type: the lexicon (terms by Aho-Corasick, optionally on pinyin; patterns;
exception phrases) and the model (detectors/claims_model.py), whose rules report ``review`` from
``min_score`` and ``live`` from ``live_score``. Where both fire for one type there is one finding, the
lexicon's, and ``details.fired`` names both. Context (``settings.context``: notices, quoted rules, questions,
advice, refusals) decides before either reports.

Reasons, training and figures: docs/claims.md.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import ClassVar, Literal

import jieba
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.base import Detector, RuleContext, text_evidence
from detectors.claims_model import ClaimModel, Verdict, load_model
from detectors.normalize import (
    NormalizedText,
    Term,
    alternation,
    clause_breaks,
    is_han,
    normalize,
    pinyin_keys,
    pinyin_text,
    words_regex,
)
from detectors.prefilter import PatternSet, WordFinder
from schemas.events import (
    BaseEvent,
    ChatEvent,
    DanmakuEvent,
    PriceTagEvent,
    ProductCategory,
    StreamMetaEvent,
    TranscriptEvent,
    is_viewer_comment,
)
from schemas.findings import Evidence, EvidenceHow, Finding, FindingStatus
from schemas.rules import RegexPattern, Rule

_LETTER = re.compile("[a-z]")
_DIGIT_OF_NUMERAL = str.maketrans("零一二三四五六七八九", "0123456789")
SpeechSource = Literal["transcript", "host_chat", "title"]
ClaimType = Literal["absolute", "efficacy", "fabricated_data", "guarantee"]

#: terms this long match Chinese homophones even in a ``homophones: letters`` rule
LONG_HOMOPHONE = 3
#: context that only says no absolute claim is made ("第一次" is an ordinal, "我们家几款里最便宜" a comparison in
#: the seller's own range; neither says anything of efficacy)
ABSOLUTE_ONLY = frozenset({"own_range", "ordinal", "other_topic"})
#: how far (characters of normalised text) a context cue reaches within one clause
CONTEXT_REACH = 24
#: a clause this short after a clause that claims nothing is an item of the same list ("排毒、清肠、刮油")
LIST_ITEM = 4
#: a rebuttal this near the start of its clause ("那不是我们说的") denies the clause before it — unless the next
#: clause opens so, saying whose words they were ("不是我们说的，是平台统计的")
REBUTTAL_LEAD = 2
ATTRIBUTED = ("是", "而是")
#: a clause this short that ends with a question mark echoes a viewer's question ("减肥？", "保证瘦？")
ECHO_CHARS = 6
_QUESTION_MARK = re.compile("[?？]")
#: a clause that claims nothing and ends so introduces what follows ("规定里写了，…"), which claims nothing either
#: when it reads as a rule (``RULE_WORDS``: "广告法规定，保健食品不得…"; not "广告法说了，这款全网最低价")
INTRODUCES = ("说了", "写了", "写着", "规定", "说的是", "的规则是")
RULE_WORDS = re.compile("不得|不能|不许|不准|不可以|不允许|禁止|严禁|只能|必须|应当|不应")

#: evidence spans kept per finding (a 20,000-character rant would otherwise make a megabyte alert)
MAX_EVIDENCE = 20

CLAIM_TYPE_LABEL: dict[str, str] = {
    "absolute": "绝对化用语",
    "efficacy": "功效/疾病宣称",
    "fabricated_data": "虚构数据",
    "guarantee": "保证性承诺",
}

jieba.setLogLevel(60)


def _word_bounds(text: str) -> frozenset[int]:
    """Where jieba puts word boundaries in ``text``. A Chinese homophone of a term counts only as whole words:
    real ASR is full of other words that sound like a term across a word's edge ("就是地价" ~ 史低价,
    "全球机场" ~ 全球级), while a morph stands as words of its own ("降雪糖" = 降雪 + 糖)."""
    return frozenset(b for _, start, end in jieba.tokenize(text) for b in (start, end))


class ClaimExample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    category: ProductCategory | None = None
    source: SpeechSource = "transcript"


def _as_example(value: object) -> object:
    return {"text": value} if isinstance(value, str) else value


class ClaimExamples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    match: list[ClaimExample] = Field(default_factory=list)
    no_match: list[ClaimExample] = Field(default_factory=list)

    @field_validator("match", "no_match", mode="before")
    @classmethod
    def _strings_are_examples(cls, v: object) -> object:
        return [_as_example(x) for x in v] if isinstance(v, list) else v


class ModelThresholds(BaseModel):
    """For a rule read by the model: when its claim type is reported, and when it is acted on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the model's claim score from which a finding is raised
    min_score: float = Field(ge=0, le=1)
    #: from this score up the finding is ``live`` (acted on); between min_score and this, ``review``
    live_score: float = Field(ge=0, le=1)
    #: the min_score of long speech (settings.long_speech_chars and longer), if higher: its score is its best
    #: clause's, and the best of many clauses is high by chance more often than the one clause of a sentence
    long_min_score: float | None = Field(default=None, ge=0, le=1)
    #: the min_score while no product has been shown in the room, if higher: with nothing on sale the speech is
    #: mostly chit-chat, and only the lexicon's explicit claims and the model's surest readings are reported
    no_product_min_score: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> ModelThresholds:
        if self.live_score < self.min_score:
            raise ValueError(f"live_score {self.live_score} is below min_score {self.min_score}")
        if self.long_min_score is not None and not self.min_score <= self.long_min_score <= self.live_score:
            raise ValueError(f"long_min_score {self.long_min_score} is not between min_score and live_score")
        if self.no_product_min_score is not None and not self.min_score <= self.no_product_min_score <= self.live_score:
            raise ValueError(
                f"no_product_min_score {self.no_product_min_score} is not between min_score and live_score"
            )
        return self

    def min_for(self, chars: int, long_speech_chars: int, on_air: bool = True) -> float:
        """The score from which a text of ``chars`` normalised characters is reported (``on_air``: a product
        has been shown in the room)."""
        if not on_air and self.no_product_min_score is not None:
            return max(self.no_product_min_score, self.min_for(chars, long_speech_chars))
        if self.long_min_score is not None and chars >= long_speech_chars:
            return self.long_min_score
        return self.min_score


class ClaimRule(Rule):
    claim_type: ClaimType
    terms: list[Term] = Field(default_factory=list)
    patterns: list[RegexPattern] = Field(default_factory=list)
    exceptions: list[Term] = Field(default_factory=list)
    #: the rule applies only while a product of one of these categories is pitched (None = any)
    categories: list[ProductCategory] | None = None
    #: ... and never while one of these is pitched (e.g. a registered drug may state its indication)
    exempt_categories: list[ProductCategory] = Field(default_factory=list)
    #: also match the terms' homophones ("减fei", "见肥"); ``letters`` only where a syllable is spelt in pinyin
    #: letters ("全wang zui di价") — for terms whose Chinese homophones are everyday words ("最有" ~ 最优)
    homophones: bool | Literal["letters"] = False
    sources: list[SpeechSource] = ["transcript", "host_chat", "title"]  # pydantic copies a mutable default
    #: set for a rule read by the claims model instead of terms and patterns
    model: ModelThresholds | None = None
    examples: ClaimExamples = Field(default_factory=ClaimExamples)

    @model_validator(mode="after")
    def _one_reader(self) -> ClaimRule:
        if self.model is not None and (self.terms or self.patterns or self.homophones):
            raise ValueError("a model rule has no terms, patterns or homophones (the model reads the text)")
        if self.model is None and not (self.terms or self.patterns):
            raise ValueError("a lexicon rule needs terms or patterns (or `model:` for the claims model)")
        return self


class ClaimContext(BaseModel):
    """Where words that look like a claim make none. Matched on the normalised text of one clause (the
    text between two punctuation marks the normaliser dropped), a cue reaching ``CONTEXT_REACH`` characters."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: a clause matching one of these is a legally required notice or disclaimer
    notices: list[RegexPattern] = Field(default_factory=list)
    #: a clause holding one of these quotes or explains a rule rather than making a claim
    rule_quotes: list[Term] = Field(default_factory=list)
    #: a clause holding one of these asks (or repeats a viewer's question) rather than claims
    questions: list[Term] = Field(default_factory=list)
    #: a clause holding one of these is refused, not claimed ("我不敢说全网最低", "最低价我不敢讲") — up to a
    #: contrast word after it, if any ("我不敢说最低但它就是最低")
    refusals: list[Term] = Field(default_factory=list)
    #: ... or one of these patterns: a negator before a verb of claiming, however far apart the words are
    #: ("我没法跟你保证", "从来不给大家承诺"), a denial of what the product is for ("它不是用来治…的")
    refusal_patterns: list[RegexPattern] = Field(default_factory=list)
    contrasts: list[Term] = Field(default_factory=list)
    #: ... unless the refusal is only rhetorical ("不是我吹", "别的不说" are not refusals)
    not_refusals: list[Term] = Field(default_factory=list)
    #: a clause holding one of these denies what was said just before it ("有人说喝了能瘦，这是误会", "那不是我们说的",
    #: "…，不是的"): the clause up to it, and the clause before when it opens its clause — not what follows it
    #: ("家人们误会了，这个真能治失眠" claims), nor when the next clause says whose words they are ("不是我们说的，是…")
    rebuttals: list[RegexPattern] = Field(default_factory=list)
    #: a refusal or quoted rule holding one of these covers the clause before it too ("别的直播间说吃了瘦二十斤，
    #: 我们不这么说", "立竿见影、一用就灵这类词规定不让用")
    refers_back: list[Term] = Field(default_factory=list)
    #: ... unless it denies the judgement ("全网最低，这不是虚假宣传")
    judgement_denied: list[RegexPattern] = Field(default_factory=list)
    #: a clause after a quoted rule or a refusal holding one of these names a member of what it listed
    #: ("广告法列了一串不能用的词，最佳就在里面")
    in_the_list: list[Term] = Field(default_factory=list)
    #: a clause matching one of these reports what a competitor claims of its own goods
    hearsay: list[RegexPattern] = Field(default_factory=list)
    #: a clause matching one of these and holding none of ``product_refs`` is general advice
    advice: list[RegexPattern] = Field(default_factory=list)
    #: words that tie a clause to the product being sold ("这款", "咱家", "吃了")
    product_refs: list[Term] = Field(default_factory=list)
    #: ordinal and temporal uses of 最/第一 ("第一次", "开播第一天", "最后一单"): no absolute claim in them
    ordinals: list[Term] = Field(default_factory=list)
    #: a clause matching one of these compares within the seller's own range ("我们家几款里这个最便宜"): no
    #: absolute claim (the 2023 SAMR guideline on absolute terms)
    own_range: list[RegexPattern] = Field(default_factory=list)
    #: a clause ending so sets the seller's own range, for itself and the clause after it ("在我们家这几款里，这个最…")
    own_range_scopes: list[RegexPattern] = Field(default_factory=list)
    #: a clause matching one of these and holding none of ``product_refs`` calls something other than the
    #: product best — a city, the weather, a song, the host's mother's cooking: no absolute claim about goods
    other_topics: list[RegexPattern] = Field(default_factory=list)
    #: a clause matching one of these states what a label or registration says — a fabric's composition
    #: ("棉百分之九十五"), a health food's approved function ("批准的保健功能是…") — which is no claim of the seller
    label_facts: list[RegexPattern] = Field(default_factory=list)


class ClaimsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the trained claims model, a file of the ruleset directory (scripts/train_claims.py writes it)
    model_file: str = "claims_model.json"
    context: ClaimContext = Field(default_factory=ClaimContext)

    #: category assumed while no product has been shown in the room yet
    default_category: ProductCategory = "general"
    score_exact: float = Field(default=0.95, ge=0, le=1)
    score_pattern: float = Field(default=0.85, ge=0, le=1)
    score_homophone: float = Field(default=0.7, ge=0, le=1)
    #: a text this long (normalised characters) is long speech for the model rules' ``long_min_score``
    long_speech_chars: int = Field(default=200, ge=1)
    #: titles are re-sent with every price update; remember this many already-reported titles per room
    max_titles_remembered: int = Field(default=500, ge=1)
    #: ids of the latest events that raised findings, per room: one delivered again raises nothing again
    max_reported_ids: int = Field(default=64, ge=1)


class ClaimsState(BaseModel):
    current_product_id: str | None = None
    current_category: ProductCategory | None = None
    reported_titles: list[str] = Field(default_factory=list)  # "product_id|title", oldest first
    reported_ids: list[str] = Field(default_factory=list)  # events that raised findings, oldest first


def _outermost(evidence: list[Evidence]) -> list[Evidence]:
    """Drop spans inside another span of the same rule ("根治" within "根治糖尿病"), in text order."""
    spans = sorted(evidence, key=lambda e: (e.start, -e.end))
    kept: list[Evidence] = []
    for e in spans:
        if kept and kept[-1].start <= e.start and e.end <= kept[-1].end:
            continue
        kept.append(e)
    return kept


def _listed(text: NormalizedText, pos: int) -> bool:
    """Whether the clause starting at normalised ``pos`` follows the one before it after a "、" (a list)."""
    return "、" in text.raw[text.offsets[pos - 1] + 1 : text.offsets[pos]]


def _found(rx: re.Pattern[str], clause: str, may: set[int], pos: int = 0) -> re.Match[str] | None:
    """``rx.search(clause, pos)``, not run when ``may`` (``id`` of each cue that may match the text the clause is
    part of: ``PatternSet.may_match``) says it cannot match."""
    return rx.search(clause, pos) if id(rx) in may else None


class _Cues(tuple[re.Pattern[str], ...]):
    """A group of context cues (compiled) and their ids, by which ``PatternSet.may_match`` names the cues that may
    match a text: a group none of whose cues may is passed over with one set operation, not a step per cue — the
    groups are asked of every clause of an utterance with a claim (22 on real ASR)."""

    ids: frozenset[int]

    def __new__(cls, patterns: Iterable[str]) -> _Cues:
        cues = super().__new__(cls, (re.compile(p) for p in patterns))
        cues.ids = frozenset(map(id, cues))
        return cues

    def __reduce__(self) -> tuple[type[_Cues], tuple[list[str]]]:
        return type(self), ([rx.pattern for rx in self],)  # rebuilt: the ids are those of the new patterns


def _any(rxs: _Cues, clause: str, may: set[int]) -> bool:
    """Whether one of ``rxs`` is found in ``clause``, those ``may`` rules out not run (as for ``_found``)."""
    return not rxs.ids.isdisjoint(may) and any(rx.search(clause) for rx in rxs if id(rx) in may)


class FalseClaimsDetector(Detector[ClaimRule, ClaimsSettings, ClaimsState]):
    name: ClassVar[str] = "false_claims"
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "danmaku", "transcript", "price_tag", "stream_meta"})
    reads_viewer_comments: ClassVar[bool] = False  # the host's and operators' comments only

    def __init__(self, settings: ClaimsSettings, rules: Sequence[ClaimRule], context: RuleContext) -> None:
        super().__init__(settings, rules, context)
        # (rule, term) whose homophones count only when spelt in letters: a ``letters`` rule's short terms; its
        # terms of LONG_HOMOPHONE characters or more also match Chinese homophones that keep one of their
        # characters ("降雪糖" for 降血糖) — at that length an everyday word rarely sounds the same
        self._letters_only: set[tuple[int, str]] = set()
        term_rules: dict[str, list[tuple[int, str]]] = {}
        pinyin_rules: dict[str, list[tuple[int, str]]] = {}
        for idx, rule in enumerate(self.rules):
            if rule.model is not None:
                continue
            for term in rule.terms:
                key = normalize(term).text
                term_rules.setdefault(key, []).append((idx, term))
                # the normaliser keeps numerals as written; a term's "一" also matches a spoken "1" ("第1品牌")
                if (digits := key.translate(_DIGIT_OF_NUMERAL)) != key:
                    term_rules.setdefault(digits, []).append((idx, term))
                if rule.homophones and len(key) >= 2:
                    pinyin_rules.setdefault(pinyin_keys(key).text, []).append((idx, term))
                    if rule.homophones == "letters" and len(key) < LONG_HOMOPHONE:
                        self._letters_only.add((idx, term))
        self._terms = WordFinder(term_rules)
        self._pinyin = WordFinder(
            {
                key: (entries, frozenset("".join(normalize(term).text for _, term in entries)))
                for key, entries in pinyin_rules.items()
            }
        )
        self._has_terms = bool(term_rules)
        self._has_pinyin = bool(pinyin_rules)
        # A homophone evasion either spells a syllable in letters ("减fei") or keeps a character of the term
        # ("见肥"): a text with neither cannot hold one, and most host speech is skipped at C speed.
        term_chars = sorted(
            {
                c
                for entries in pinyin_rules.values()
                for idx, t in entries
                if (idx, t) not in self._letters_only  # a letters-only homophone needs a letter anyway
                for c in normalize(t).text
            }
        )
        self._may_be_homophone = re.compile("[a-z" + re.escape("".join(term_chars)) + "]")
        if self._has_pinyin:
            jieba.initialize()  # its dictionary is loaded now, not at the first homophone on air
        # every rule's patterns in one set, in rule order: only those whose literals occur in a text run on it
        # (most host speech holds none, and 30 scans cost more than the rest of the lexicon)
        self._pattern_rule = [idx for idx, rule in enumerate(self.rules) for _ in rule.patterns]
        self._patterns = PatternSet([p for rule in self.rules for p in rule.patterns])
        self._exceptions = [[normalize(x).text for x in rule.exceptions] for rule in self.rules]
        self._longest_exception = [max((len(x) for x in xs), default=0) for xs in self._exceptions]
        # every rule's exception phrases in one automaton, each to the rules it excepts for: one pass per text
        # finds them for all rules (a phrase at a time, per rule, cost 100 substring searches a claim, 12 % of one)
        excepting: dict[str, list[int]] = {}
        for idx, phrases in enumerate(self._exceptions):
            for phrase in dict.fromkeys(phrases):
                if phrase:  # an empty phrase covers no match (nor did it when searched for)
                    excepting.setdefault(phrase, []).append(idx)
        self._exception_finder = WordFinder(excepting)
        self._lexicon_rules_by_type: dict[str, list[int]] = {}
        for idx, rule in enumerate(self.rules):
            if rule.model is None and rule.exceptions:
                self._lexicon_rules_by_type.setdefault(rule.claim_type, []).append(idx)
        #: rule indices of the model rules, in file order: the first that applies to the category decides
        self._model_rules = [idx for idx, rule in enumerate(self.rules) if rule.model is not None]
        self.model: ClaimModel | None = None
        self._applicable: dict[tuple[str, str, bool], tuple[list[ClaimRule], float]] = {}
        if self._model_rules or settings.model_file in context.resources:
            data = context.resources.get(settings.model_file)
            if data is None:
                raise ValueError(
                    f"claims model {settings.model_file!r} is not in the rules directory; "
                    "train it with `python scripts/train_claims.py` or set settings.model_file"
                )
            self.model = load_model(data)
        ctx = settings.context
        self._notices = _Cues(ctx.notices)
        self._advice = _Cues(ctx.advice)
        self._hearsay = _Cues(ctx.hearsay)
        self._quotes = words_regex(ctx.rule_quotes)
        self._questions = words_regex(ctx.questions)
        self._refusals = re.compile(
            "|".join(filter(None, (alternation(normalize(w).text for w in ctx.refusals), *ctx.refusal_patterns)))
            or "(?!)"
        )
        self._not_refusals = [normalize(w).text for w in ctx.not_refusals]  # overlaps are checked one by one
        self._contrast = words_regex(ctx.contrasts)
        self._refers_back = words_regex(ctx.refers_back)
        self._rebuttals = re.compile("|".join(f"(?:{p})" for p in ctx.rebuttals) or "(?!)")
        self._judgement_denied = _Cues(ctx.judgement_denied)
        self._in_the_list = words_regex(ctx.in_the_list)
        self._product_refs = words_regex(ctx.product_refs)
        self._ordinals = words_regex(ctx.ordinals)
        self._own_range = _Cues(ctx.own_range)
        self._own_range_scope = re.compile("|".join(f"(?:{p})$" for p in ctx.own_range_scopes) or "(?!)")
        self._label_facts = _Cues(ctx.label_facts)
        self._other_topics = _Cues(ctx.other_topics)
        #: what a long clause is not cut inside (``_reaches``)
        self._cue_patterns = [
            *self._notices,
            *self._label_facts,
            self._quotes,
            self._questions,
            *self._hearsay,
            *self._advice,
            self._refusals,
            self._contrast,
            self._refers_back,
            self._rebuttals,
            *self._judgement_denied,
            *self._own_range,
            *self._other_topics,
        ]
        # Every context cue behind one filter: an utterance holds none of most of them, and one Aho-Corasick pass
        # over it says which may match — only those run on its clauses (exact: prefilter.py). Run one by one on
        # each clause, the cues were a quarter to a third of the detector's time on real ASR (LiveAMR: 22 clauses an
        # utterance). The filter knows the cues by id: the attributes above are not to be reassigned after this.
        self._cues = PatternSet(
            [*self._cue_patterns, self._product_refs, self._own_range_scope, self._in_the_list, self._ordinals]
        )

    # -- routing -------------------------------------------------------------------------------

    def detect(self, event: BaseEvent, text: NormalizedText | None, state: ClaimsState) -> list[Finding]:
        if is_viewer_comment(event):
            return []  # not routed here by the engine (reads_viewer_comments); a direct caller may pass one
        # ``type(event) is``: an event model's isinstance goes through ABCMeta, ≈ 0.07 µs for each class that misses
        if type(event) is StreamMetaEvent:
            if event.products and state.current_product_id not in {p.product_id for p in event.products}:
                state.current_product_id = event.products[0].product_id
                state.current_category = event.products[0].category
            return []
        if type(event) is PriceTagEvent:
            state.current_product_id = event.product_id
            state.current_category = event.category
            seen = f"{event.product_id}|{event.title}"
            if seen in state.reported_titles or text is None:
                return []
            findings = self._scan(event, text, "title", "title", event.category)
            if findings:
                state.reported_titles.append(seen)
                del state.reported_titles[: -self.settings.max_titles_remembered]
            return findings
        if type(event) is TranscriptEvent:
            source: SpeechSource = "transcript"
        elif isinstance(event, (ChatEvent, DanmakuEvent)) and event.role in ("host", "operator"):
            source = "host_chat"
        else:
            return []
        if text is None or event.event_id in state.reported_ids:
            return []  # nothing to read, or delivered again: its findings are out already
        category = state.current_category or self.settings.default_category
        on_air = state.current_category is not None
        findings = self._scan(event, text, source, "text", category, on_air)
        if findings:
            state.reported_ids.append(event.event_id)
            del state.reported_ids[: -self.settings.max_reported_ids]
        return findings

    def may_change(self, event: BaseEvent, state: ClaimsState) -> bool:
        return not is_viewer_comment(event)  # what viewers say is not this detector's to read

    # -- matching ------------------------------------------------------------------------------

    def _applies(self, rule: ClaimRule, source: SpeechSource, category: str) -> bool:
        if source not in rule.sources or category in rule.exempt_categories:
            return False
        return rule.categories is None or category in rule.categories

    def _exception_spans(self, text: str) -> dict[int, list[tuple[int, int]]]:
        """Where each rule's exception phrases stand in ``text`` (rule index → spans sorted by start; a rule with
        none found is absent)."""
        spans: dict[int, list[tuple[int, int]]] = {}
        rules_of = self._exception_finder.values
        for k, start, end in self._exception_finder.find(text):
            for idx in rules_of[k]:
                spans.setdefault(idx, []).append((start, end))
        for found in spans.values():
            found.sort()
        return spans

    def _excepted(self, idx: int, spans: list[tuple[int, int]], start: int, end: int) -> bool:
        """Whether an exception phrase covers [start, end): only phrases starting at most the longest
        phrase's length before ``end`` can (a bisect, so a long text with many matches stays linear)."""
        i = bisect_left(spans, (end - self._longest_exception[idx],))
        for s, e in spans[i:]:
            if s > start:
                return False
            if end <= e:
                return True
        return False

    def _matches(self, text: NormalizedText) -> list[tuple[int, int, int, str, EvidenceHow]]:
        """(rule index, start, end, term, how) over the normalised text, exceptions not yet applied."""
        found: list[tuple[int, int, int, str, EvidenceHow]] = []
        norm = text.text
        if self._has_terms:
            term_entries = self._terms.values
            for k, start, end in self._terms.find(norm):
                how: EvidenceHow = "exact" if text.raw_slice(start, end) == norm[start:end] else "normalized"
                for idx, term in term_entries[k]:
                    found.append((idx, start, end, term, how))
        if self._has_pinyin and self._may_be_homophone.search(norm):
            # the syllables alone first: most texts hold no term's pinyin, and the positions are then not needed
            matches = self._pinyin.find(pinyin_text(norm))
            keys = pinyin_keys(norm) if matches else None
            exact_spans = {(f[0], f[1], f[2]) for f in found}
            words: frozenset[int] | None = None  # jieba's word boundaries, found only for a Chinese homophone
            for k, p_start, p_end in matches:
                assert keys is not None
                entries, chars = self._pinyin.values[k]
                if p_start not in keys.boundaries or p_end not in keys.boundaries:
                    continue  # a match across syllables ("xi an" for "xian") is not a homophone
                start, end = keys.unit_of[p_start], keys.unit_of[p_end - 1] + 1
                if all((idx, start, end) in exact_spans for idx, _ in entries):
                    continue  # the term itself, found already: its sound adds nothing (and needs no jieba)
                span = norm[start:end]
                if all(is_han(c) for c in span):
                    if not chars.intersection(span):
                        continue  # an everyday word that only sounds alike ("一件非常" ~ 减肥), not an evasion
                    if words is None:
                        words = _word_bounds(norm)
                    if start not in words or end not in words:
                        continue  # it cuts a word in two: other words that sound alike ("保证收到" ~ 保证瘦)
                spelt = _LETTER.search(span) is not None
                for idx, term in entries:
                    if not spelt and (idx, term) in self._letters_only:
                        continue
                    if (idx, start, end) not in exact_spans:
                        found.append((idx, start, end, term, "homophone"))
        for k in self._patterns.candidates(norm):
            rx = self._patterns.patterns[k]
            for m in rx.finditer(norm):
                if m.end() > m.start():
                    found.append((self._pattern_rule[k], m.start(), m.end(), rx.pattern, "pattern"))
        return found

    def _contexts(self, text: NormalizedText) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
        """Spans (normalised coordinates) in which nothing is claimed, and why: for lexicon matches, and for the
        model's deciding spans.

        A cue reaches no further than CONTEXT_REACH characters: unpunctuated ASR runs on for hundreds, and a
        "能不能" at its start says nothing of a claim at its end. Where a run is that long, where its clauses end
        is a guess, so for a lexicon match it is read both ways — in stretches of CONTEXT_REACH and in the
        clauses the model's breaker restores ("…不说它能治口腔|溃疡…" cut in one, "你们说的全网最低|我不敢说" in
        the other) — and what either reading finds claims nothing. The model's deciding spans are weighed in the
        fixed stretches only: it reads restored clauses itself, and on LiveAMR's real unpunctuated ASR (shipped
        model, in sample) the restored reading took 11 true findings away for 4 false ones (its advice and
        refusal cues swallow deciding spans scattered over a run)."""
        norm = text.text
        may = self._cues.may_match(norm)  # the cues that may match anywhere in it; the others in none of its clauses
        cuts = [0, *clause_breaks(text), len(norm)]
        ordinals = (
            [(m.start(), m.end(), "ordinal") for m in self._ordinals.finditer(norm)]
            if id(self._ordinals) in may
            else []
        )
        fixed_spans = [span for s, e in pairwise(cuts) for span in self._reaches(norm, s, e, False, may)]
        fixed = sorted(self._context_of(text, fixed_spans, may) + ordinals)
        restored_spans = [span for s, e in pairwise(cuts) for span in self._reaches(norm, s, e, True, may)]
        if restored_spans == fixed_spans:
            return fixed, fixed
        return sorted(set(fixed).union(self._context_of(text, restored_spans, may, restored=True))), fixed

    def _context_of(
        self, text: NormalizedText, spans: list[tuple[int, int]], may: set[int], restored: bool = False
    ) -> list[tuple[int, int, str]]:
        """``_contexts`` in one reading of the text's clauses (``spans``; ``restored``: the breaker's), ordinals
        aside (``may``: as for ``_found``)."""
        norm = text.text
        out: list[tuple[int, int, str]] = []
        carried: str | None = None  # a reason that goes on over a list ("不能说排毒、清肠、刮油") or after "写了，"
        asked = set(self._question_ends(text))
        for k, (s, e) in enumerate(spans):
            clause = norm[s:e]
            # a few words asked back ("减肥？", "保证瘦？") repeat a viewer's question; they claim nothing
            echo = "question" if e in asked and e - s <= ECHO_CHARS else None
            reason = self._clause_reason(clause, may) or carried or echo
            carried, to_end = None, False
            if reason is not None:
                out.append((s, e, reason))
                to_end = True
            else:
                # a clause the breaker restored may hold what was said before the refusal ("…这款枕头能治好失眠快递
                # 我不敢保证…"): there it covers what follows it; what it refers back to, the fixed reading has
                refused = self._refused(clause, may, forward=restored)
                if refused is not None:
                    out.append((s + refused[0], s + refused[1], "refusal"))
                    reason, to_end = "refusal", refused[1] == len(clause)
            scope = self._own_range_scope
            if (
                _any(self._own_range, clause, may)
                or (id(scope) in may and scope.search(clause))
                or (k > 0 and id(scope) in may and scope.search(norm[spans[k - 1][0] : spans[k - 1][1]]))
            ):
                out.append((s, e, "own_range"))
            if _any(self._other_topics, clause, may) and not _found(self._product_refs, clause, may):
                out.append((s, e, "other_topic"))
            rebuttal = _found(self._rebuttals, clause, may)
            if rebuttal is not None and not (k + 1 < len(spans) and norm.startswith(ATTRIBUTED, spans[k + 1][0])):
                out.append((s, s + rebuttal.end(), "refusal"))
                if k > 0 and rebuttal.start() <= REBUTTAL_LEAD:
                    out.append((spans[k - 1][0], spans[k - 1][1], "refusal"))
            if to_end and reason in ("refusal", "rule_quote") and k + 1 < len(spans):
                following = norm[spans[k + 1][0] : spans[k + 1][1]]
                if (
                    len(following) <= LIST_ITEM
                    or (clause.endswith(INTRODUCES) and RULE_WORDS.search(following))
                    or _found(self._in_the_list, following, may)
                ) and not (id(self._contrast) in may and self._contrast.match(following)):
                    carried = reason
            if (
                k > 0
                and reason in ("refusal", "rule_quote")
                and _found(self._refers_back, clause, may)
                and not _any(self._judgement_denied, clause, may)
            ):
                out.append((spans[k - 1][0], spans[k - 1][1], "refusal"))
                # ... and the items of a list before it, joined by "、" ("国家级、世界级、最高级，广告法原文就是这么
                # 列的"): each item, and each two neighbours (a match may run over two: "国家级世界级")
                j = k - 1
                while j > 0 and max(b - a for a, b in spans[j - 1 : j + 1]) <= LIST_ITEM and _listed(text, spans[j][0]):
                    out.append((spans[j - 1][0], spans[j][1], "refusal"))
                    out.append((spans[j - 1][0], spans[j - 1][1], "refusal"))
                    j -= 1
        return out

    def _reaches(
        self, norm: str, start: int, end: int, restored: bool, may: set[int] | None = None
    ) -> Iterator[tuple[int, int]]:
        """One clause cut into stretches of at most about CONTEXT_REACH characters: with ``restored``, at the
        clause ends the model's clause breaker restores in it (a cue then reads to the end of the clause it was
        said in, "…我们不说它能治口腔溃疡|嘴巴破了…"), else (or without a breaker) every CONTEXT_REACH
        characters. No cut splits a cue: one that falls inside a cue ("…肌肉别指|望它治颈椎") moves to the cue's
        start, so that the cue reads with what follows it — to its end when the cue starts the stretch or ends the
        clause ("…我也没数过别乱|传")."""
        if end - start <= CONTEXT_REACH:
            yield start, end
            return
        clause = norm[start:end]
        may = self._cues.may_match(clause) if may is None else may
        cues = sorted(
            {m.span() for rx in self._cue_patterns if id(rx) in may for m in rx.finditer(clause) if m.end() > m.start()}
        )
        breaker = self.model.featurizer.breaker if self.model is not None and restored else None
        ends = breaker.cuts(clause, CONTEXT_REACH) if breaker is not None else []
        k = 0
        while k < len(clause):
            # each restored clause alone: a cue covers the clause it was said in, not the ones before it
            i = bisect_right(ends, k)
            cut = ends[i] if i < len(ends) else min(k + CONTEXT_REACH, len(clause))
            for a, b in cues:
                if a < cut < b:
                    # a cue that ends the clause ("…别乱传") refers back: it stays with what it follows
                    cut = a if a > k and b < len(clause) else b
                    break
            yield start + k, start + cut
            k = cut

    @staticmethod
    def _question_ends(text: NormalizedText) -> Iterator[int]:
        """Normalised positions where a clause ended with a question mark."""
        for m in _QUESTION_MARK.finditer(text.raw):
            yield bisect_left(text.offsets, m.start())

    @staticmethod
    def _outside(text: NormalizedText, context: list[tuple[int, int, str]], claim_type: str) -> NormalizedText:
        """The text without the spans in which nothing of ``claim_type`` is claimed. Its clause ends are kept,
        and a span taken out ends a clause: read again, it is read in the clauses it was said in."""
        norm = text.text
        kept, pos = [], 0
        for s, e, reason in context:
            if reason in ABSOLUTE_ONLY and claim_type != "absolute":
                continue
            if s > pos:
                kept.append((pos, s))
            pos = max(pos, e)
        if pos < len(norm):
            kept.append((pos, len(norm)))
        breaks = set(clause_breaks(text)).union(s for s, _ in kept[1:])
        raw: list[str] = []  # the kept characters, a comma before each clause they start
        offsets: list[int] = []
        for i in (i for s, e in kept for i in range(s, e)):
            if i in breaks and raw:
                raw.append("，")
            offsets.append(len(raw))
            raw.append(norm[i])
        return NormalizedText(raw="".join(raw), text="".join(norm[s:e] for s, e in kept), offsets=tuple(offsets))

    @staticmethod
    def _why(context: list[tuple[int, int, str]], start: int, end: int, claim_type: str) -> str | None:
        """Why [start, end) claims nothing, from ``_context``'s spans (sorted by start), or None."""
        i = bisect_left(context, (start - CONTEXT_REACH,))
        for s, e, reason in context[i:]:
            if s > start:
                break
            if end <= e and (reason not in ABSOLUTE_ONLY or claim_type == "absolute"):
                return reason
        return None

    def _clause_reason(self, clause: str, may: set[int]) -> str | None:
        """Why a whole clause claims nothing, if it does not (``may``: as for ``_found``)."""
        if _any(self._notices, clause, may):
            return "notice"
        if _any(self._label_facts, clause, may):
            return "label_fact"
        if _found(self._quotes, clause, may):
            return "rule_quote"
        if _found(self._questions, clause, may):
            return "question"
        if _any(self._hearsay, clause, may):
            return "hearsay"
        if _any(self._advice, clause, may) and not _found(self._product_refs, clause, may):
            return "advice"
        return None

    def _refused(self, clause: str, may: set[int], forward: bool = False) -> tuple[int, int] | None:
        """The part of a clause a refusal covers: the clause ("最低价我不敢讲", "我不敢说全网最低"), or only up
        to a contrast that follows the refusal ("我不敢说全网最低但它就是全网最低" — ASR without a comma); with
        ``forward``, only from the refusal on (``may``: as for ``_found``)."""
        if id(self._refusals) not in may:
            return None
        for m in self._refusals.finditer(clause):
            if self._rhetorical(clause, m.start(), m.end()):
                continue
            contrast = _found(self._contrast, clause, may, m.end())
            return m.start() if forward else 0, contrast.start() if contrast else len(clause)
        return None

    def _rhetorical(self, clause: str, start: int, end: int) -> bool:
        """Whether the refusal at [start, end) is part of a phrase that is not one ("不是我吹")."""
        for w in self._not_refusals:
            pos = clause.find(w, max(0, start - len(w) + 1))
            if pos != -1 and pos < end and pos + len(w) > start:
                return True
        return False

    def _scan(
        self,
        event: BaseEvent,
        text: NormalizedText,
        source: SpeechSource,
        field: str,
        category: str,
        on_air: bool = True,
    ) -> list[Finding]:
        by_rule: dict[int, list[Evidence]] = {}
        best_score: dict[int, float] = {}
        matched: dict[int, int] = {}
        exception_spans: dict[int, list[tuple[int, int]]] | None = None  # found once per text, when needed
        contexts: tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]] | None = None  # once, when needed
        suppressed: dict[str, int] = {}
        for idx, start, end, term, how in self._matches(text):
            rule = self.rules[idx]
            if not self._applies(rule, source, category):
                continue
            if exception_spans is None:
                exception_spans = self._exception_spans(text.text)
            if idx in exception_spans and self._excepted(idx, exception_spans[idx], start, end):
                continue
            if contexts is None:
                contexts = self._contexts(text)
            why = self._why(contexts[0], start, end, rule.claim_type)
            if why is not None:
                suppressed[why] = suppressed.get(why, 0) + 1
                continue
            matched[idx] = matched.get(idx, 0) + 1
            if matched[idx] > MAX_EVIDENCE:
                continue  # a finding stays small enough to publish; the count is kept in its details
            by_rule.setdefault(idx, []).append(text_evidence(event, text, start, end, term=term, how=how, field=field))
            score = {"homophone": self.settings.score_homophone, "pattern": self.settings.score_pattern}.get(
                how, self.settings.score_exact
            )
            best_score[idx] = max(best_score.get(idx, 0.0), score)

        verdict, model_rule = self._read_model(text, source, category, on_air)
        spans: tuple[tuple[int, int, str, float], ...] = ()
        context: list[tuple[int, int, str]] = []
        if verdict is not None:
            assert self.model is not None
            spans = self.model.explain(text, verdict)
            if contexts is None:
                contexts = self._contexts(text)
            context = contexts[1]  # the fixed reading (``_contexts``)
            # the lexicon rules' exception phrases of the verdict's type ("最佳赏味期", "第一个链接") hold no
            # claim of that type for the model either
            if exception_spans is None:
                exception_spans = self._exception_spans(text.text)
            excepted = [
                (a, b, "exception")
                for i in self._lexicon_rules_by_type.get(verdict.claim_type, ())
                for a, b in exception_spans.get(i, ())
            ]
            if excepted:
                context = sorted(context + excepted)
        if verdict is not None and spans and context:
            # the deciding spans inside a notice, a quote, advice or a refusal carry no claim; the verdict
            # stands on the others, or falls when none is left
            kept = []
            for span in spans:
                why = self._why(context, span[0], span[1], verdict.claim_type)
                if why is None:
                    kept.append(span)
                else:
                    suppressed[why] = suppressed.get(why, 0) + 1
            if len(kept) < len(spans):
                # what is left once the context is taken out must still read as a claim of that type on its own
                assert model_rule is not None and model_rule.model is not None and self.model is not None
                rest = self._outside(text, context, verdict.claim_type)
                again = (
                    self.model.read(
                        rest, at_least=model_rule.model.min_for(len(text.text), self.settings.long_speech_chars, on_air)
                    )
                    if rest.text
                    else None
                )
                if (
                    not kept
                    or again is None
                    or again.claim_type != verdict.claim_type  # what is left claims something else, if anything
                    or again.score < model_rule.model.min_for(len(text.text), self.settings.long_speech_chars, on_air)
                ):
                    verdict = None
            spans = tuple(kept)
        agreed = verdict.claim_type if verdict is not None else None
        reading = self._reading(text, verdict, spans) if verdict is not None else None
        findings = [
            self._finding(
                event,
                self.rules[idx],
                _outermost(ev),
                best_score[idx],
                source,
                category,
                matched[idx],
                fired=["lexicon", "model"] if self.rules[idx].claim_type == agreed else ["lexicon"],
                reading=reading,
                suppressed=suppressed,
            )
            for idx, ev in sorted(by_rule.items())
        ]
        if verdict is not None and not any(self.rules[idx].claim_type == verdict.claim_type for idx in by_rule):
            assert model_rule is not None and model_rule.model is not None
            evidence = [
                text_evidence(event, text, s, e, term=feats, how="model", field=field) for s, e, feats, _ in spans
            ]
            if not evidence:
                evidence = [text_evidence(event, text, *verdict.unit, term="unit", how="model", field=field)]
            status: FindingStatus = "live" if verdict.score >= model_rule.model.live_score else "review"
            findings.append(
                self._finding(
                    event,
                    model_rule,
                    evidence,
                    verdict.score,
                    source,
                    category,
                    len(evidence),
                    fired=["model"],
                    reading=reading,
                    suppressed=suppressed,
                    status=status,
                )
            )
        return findings

    def _read_model(
        self, text: NormalizedText, source: SpeechSource, category: str, on_air: bool = True
    ) -> tuple[Verdict | None, ClaimRule | None]:
        """The model's verdict and the model rule that reports it, when the verdict reaches that rule's
        ``min_score``. Of the model rules for the verdict's claim type, the first that applies to the
        category and source decides (a rule for health food may be stricter than the rule for the rest)."""
        if self.model is None or not text.text:
            return None, None
        key = (source, category, on_air)
        if key not in self._applicable:  # a few (source, category, on air) keys: worked out once each
            rules = [self.rules[i] for i in self._model_rules if self._applies(self.rules[i], source, category)]
            # the lowest line any text is reported from: a short one's (long speech only ever raises it)
            short = self.settings.long_speech_chars - 1
            lowest = min((r.model.min_for(short, self.settings.long_speech_chars, on_air) for r in rules), default=1.0)  # type: ignore[union-attr]
            self._applicable[key] = (rules, lowest)
        applicable, at_least = self._applicable[key]
        if not applicable:
            return None, None
        verdict = self.model.read(text, at_least=at_least)
        if verdict is None:
            return None, None
        rule = next((r for r in applicable if r.claim_type == verdict.claim_type), None)
        if rule is None or verdict.score < rule.model.min_for(len(text.text), self.settings.long_speech_chars, on_air):  # type: ignore[union-attr]
            return None, None
        return verdict, rule

    @staticmethod
    def _reading(
        text: NormalizedText, verdict: Verdict, spans: tuple[tuple[int, int, str, float], ...]
    ) -> dict[str, object]:
        """What a reviewer needs of the model's verdict: its scores, the unit it read, what decided it."""
        return {
            "claim_type": verdict.claim_type,
            "score": round(verdict.score, 4),
            "segment_score": round(verdict.segment_score, 4),
            "unit_score": round(verdict.unit_score, 4),
            "unit": text.raw_slice(*verdict.unit) if verdict.unit[1] > verdict.unit[0] else "",
            "deciding": [{"text": text.raw_slice(s, e), "features": f, "weight": w} for s, e, f, w in spans],
        }

    def _finding(
        self,
        event: BaseEvent,
        rule: ClaimRule,
        evidence: list[Evidence],
        score: float,
        source: SpeechSource,
        category: str,
        matches: int,
        *,
        fired: list[str],
        reading: dict[str, object] | None,
        suppressed: dict[str, int],
        status: FindingStatus = "live",
    ) -> Finding:
        quoted = "、".join(dict.fromkeys(f"「{e.raw}」" for e in evidence))
        details: dict[str, object] = {
            "claim_type": rule.claim_type,
            "source": source,
            "category": category,
            "matches": matches,
            "fired": fired,
        }
        if self.model is not None:
            details["model"] = self.model.label
        if reading is not None:
            details["model_reading"] = reading
        if suppressed:
            details["context_suppressed"] = dict(sorted(suppressed.items()))
        model_score = reading.get("score") if reading is not None and "model" in fired else None
        by = " + ".join(fired) + (f" {model_score:.2f}" if isinstance(model_score, float) else "")
        return self.finding(
            rule,
            event,
            ident=(event.event_id,),
            score=round(score, 4),
            evidence=evidence,
            details=details,
            summary=f"{CLAIM_TYPE_LABEL[rule.claim_type]} {quoted} in {source} ({by}) — {rule.legal_basis}",
            status=status,
        )

    # -- rule self-checks ----------------------------------------------------------------------

    def check_examples(self, rule: ClaimRule) -> list[str]:
        solo = self.solo(rule)
        problems = []
        for expected, examples in ((True, rule.examples.match), (False, rule.examples.no_match)):
            for ex in examples:
                fired = bool(solo.scan_example(ex))
                if fired != expected:
                    verb = "should match but does not" if expected else "should not match but does"
                    problems.append(f"example {ex.text!r} ({ex.source}, {ex.category or 'default'}) {verb}")
        return problems

    def scan_example(self, example: ClaimExample) -> list[Finding]:
        event = TranscriptEvent(
            event_id="example",
            room_id="example",
            platform="example",
            ts=946_684_800_000,
            text=example.text,
            start_ms=0,
            end_ms=0,
        )
        category = example.category or self.settings.default_category
        return self._scan(event, normalize(example.text), example.source, "text", category)
