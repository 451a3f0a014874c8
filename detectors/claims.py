"""False-claims detector (虚假宣传): absolute terms, efficacy/disease claims, fabricated data, guarantees.

Reads what the seller says — host transcript, host/operator chat and product titles — never ordinary
viewer chat (a viewer writing "最好看" is not advertising). Lexicon terms are matched with Aho-Corasick
on the normalised text (and, for rules that ask for it, on its tone-less pinyin, which catches
"减fei" and "见肥"); patterns are regular expressions on the normalised text. A match inside one of the
rule's exception phrases ("第一个链接", "开播第一天") does not count.
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Sequence

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors.base import RuleContext, register
from detectors.normalize import NormalizedText, is_han, normalize, pinyin_keys
from schemas.events import (
    ChatEvent,
    DanmakuEvent,
    EventModel,
    PriceTagEvent,
    ProductCategory,
    StreamMetaEvent,
    TranscriptEvent,
)
from schemas.findings import Evidence, Finding, Subject, Window, derived_id
from schemas.rules import RegexPattern, Rule

Source = Literal["transcript", "host_chat", "title"]
ClaimType = Literal["absolute", "efficacy", "fabricated_data", "guarantee"]

#: evidence spans kept per finding (a 20,000-character rant would otherwise make a megabyte alert)
MAX_EVIDENCE = 20

CLAIM_TYPE_LABEL: dict[str, str] = {
    "absolute": "绝对化用语",
    "efficacy": "功效/疾病宣称",
    "fabricated_data": "虚构数据",
    "guarantee": "保证性承诺",
}


class ClaimExample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    category: ProductCategory | None = None
    source: Source = "transcript"


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


class ClaimRule(Rule):
    claim_type: ClaimType
    terms: list[str] = Field(default_factory=list)
    patterns: list[RegexPattern] = Field(default_factory=list)
    exceptions: list[str] = Field(default_factory=list)
    #: the rule applies only while a product of one of these categories is pitched (None = any)
    categories: list[ProductCategory] | None = None
    #: ... and never while one of these is pitched (e.g. a registered drug may state its indication)
    exempt_categories: list[ProductCategory] = Field(default_factory=list)
    homophones: bool = False
    sources: list[Source] = Field(default_factory=lambda: ["transcript", "host_chat", "title"])
    examples: ClaimExamples = Field(default_factory=ClaimExamples)

    @field_validator("terms", "exceptions")
    @classmethod
    def _terms_survive_normalisation(cls, v: list[str]) -> list[str]:
        for t in v:
            if not normalize(t).text:
                raise ValueError(f"term {t!r} is empty after normalisation")
        return v


class ClaimsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: category assumed while no product has been shown in the room yet
    default_category: ProductCategory = "general"
    score_exact: float = Field(default=0.95, ge=0, le=1)
    score_pattern: float = Field(default=0.85, ge=0, le=1)
    score_homophone: float = Field(default=0.7, ge=0, le=1)
    #: titles are re-sent with every price update; remember this many already-reported titles per room
    max_titles_remembered: int = Field(default=500, ge=1)


class ClaimsState(BaseModel):
    current_product_id: str | None = None
    current_category: ProductCategory | None = None
    reported_titles: list[str] = Field(default_factory=list)  # "product_id|title", oldest first


def _outermost(evidence: list[Evidence]) -> list[Evidence]:
    """Drop spans inside another span of the same rule ("根治" within "根治糖尿病"), in text order."""
    spans = sorted(evidence, key=lambda e: (e.start, -e.end))
    kept: list[Evidence] = []
    for e in spans:
        if kept and kept[-1].start <= e.start and e.end <= kept[-1].end:
            continue
        kept.append(e)
    return kept


@register
class FalseClaimsDetector:
    name: ClassVar[str] = "false_claims"
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "danmaku", "transcript", "price_tag", "stream_meta"})
    settings_model: ClassVar[type[BaseModel]] = ClaimsSettings
    rule_model: ClassVar[type[Rule]] = ClaimRule
    state_model: ClassVar[type[BaseModel]] = ClaimsState
    durable_state: ClassVar[bool] = True  # the product on air and titles already reported: small, long-lived
    history_ms: ClassVar[int] = 0

    def __init__(self, settings: ClaimsSettings, rules: Sequence[ClaimRule], context: RuleContext) -> None:
        self.settings = settings
        self.context = context
        self.rules = [r for r in rules if r.status != "off"]
        self._terms = ahocorasick.Automaton()
        self._pinyin = ahocorasick.Automaton()
        term_rules: dict[str, list[tuple[int, str]]] = {}
        pinyin_rules: dict[str, list[tuple[int, str]]] = {}
        for idx, rule in enumerate(self.rules):
            for term in rule.terms:
                key = normalize(term).text
                term_rules.setdefault(key, []).append((idx, term))
                if rule.homophones and len(key) >= 2:
                    pinyin_rules.setdefault(pinyin_keys(key).text, []).append((idx, term))
        for key, entries in term_rules.items():
            self._terms.add_word(key, (len(key), entries))
        for key, entries in pinyin_rules.items():
            chars = frozenset("".join(normalize(term).text for _, term in entries))
            self._pinyin.add_word(key, (len(key), entries, chars))
        self._has_terms = bool(term_rules)
        self._has_pinyin = bool(pinyin_rules)
        if self._has_terms:
            self._terms.make_automaton()
        if self._has_pinyin:
            self._pinyin.make_automaton()
        self._patterns = [
            (idx, [re.compile(p) for p in rule.patterns]) for idx, rule in enumerate(self.rules) if rule.patterns
        ]
        self._exceptions = [[normalize(x).text for x in rule.exceptions] for rule in self.rules]

    # -- routing -------------------------------------------------------------------------------

    def detect(self, event: EventModel, text: NormalizedText | None, state: ClaimsState) -> list[Finding]:
        if isinstance(event, StreamMetaEvent):
            if event.products and state.current_product_id not in {p.product_id for p in event.products}:
                state.current_product_id = event.products[0].product_id
                state.current_category = event.products[0].category
            return []
        if isinstance(event, PriceTagEvent):
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
        if text is None:
            return []
        category = state.current_category or self.settings.default_category
        if isinstance(event, TranscriptEvent):
            return self._scan(event, text, "transcript", "text", category)
        if isinstance(event, (ChatEvent, DanmakuEvent)) and event.role in ("host", "operator"):
            return self._scan(event, text, "host_chat", "text", category)
        return []

    # -- matching ------------------------------------------------------------------------------

    def _applies(self, rule: ClaimRule, source: Source, category: str) -> bool:
        if source not in rule.sources or category in rule.exempt_categories:
            return False
        return rule.categories is None or category in rule.categories

    def _exception_spans(self, idx: int, text: str) -> list[tuple[int, int]]:
        spans = []
        for phrase in self._exceptions[idx]:
            pos = text.find(phrase)
            while pos != -1:
                spans.append((pos, pos + len(phrase)))
                pos = text.find(phrase, pos + 1)
        return spans

    def _matches(self, text: NormalizedText) -> list[tuple[int, int, int, str, str]]:
        """(rule index, start, end, term, how) over the normalised text, exceptions not yet applied."""
        found: list[tuple[int, int, int, str, str]] = []
        norm = text.text
        if self._has_terms:
            for last, (length, entries) in self._terms.iter(norm):
                start = last - length + 1
                how = "exact" if text.raw_slice(start, last + 1) == norm[start : last + 1] else "normalized"
                for idx, term in entries:
                    found.append((idx, start, last + 1, term, how))
        if self._has_pinyin:
            keys = pinyin_keys(norm)
            exact_spans = {(f[0], f[1], f[2]) for f in found}
            for last, (length, entries, chars) in self._pinyin.iter(keys.text):
                p_start, p_end = last - length + 1, last + 1
                if p_start not in keys.boundaries or p_end not in keys.boundaries:
                    continue  # a match across syllables ("xi an" for "xian") is not a homophone
                start, end = keys.unit_of[p_start], keys.unit_of[last] + 1
                span = norm[start:end]
                if all(is_han(c) for c in span) and not chars.intersection(span):
                    continue  # an everyday word that only sounds alike ("一件非常" ~ 减肥), not an evasion
                for idx, term in entries:
                    if (idx, start, end) not in exact_spans:
                        found.append((idx, start, end, term, "homophone"))
        for idx, regexes in self._patterns:
            for rx in regexes:
                for m in rx.finditer(norm):
                    if m.end() > m.start():
                        found.append((idx, m.start(), m.end(), rx.pattern, "pattern"))
        return found

    def _scan(
        self, event: EventModel, text: NormalizedText, source: Source, field: str, category: str
    ) -> list[Finding]:
        by_rule: dict[int, list[Evidence]] = {}
        best_score: dict[int, float] = {}
        matched: dict[int, int] = {}
        exception_spans: dict[int, list[tuple[int, int]]] = {}  # found once per rule and text
        for idx, start, end, term, how in self._matches(text):
            rule = self.rules[idx]
            if not self._applies(rule, source, category):
                continue
            if idx not in exception_spans:
                exception_spans[idx] = self._exception_spans(idx, text.text)
            if any(s <= start and end <= e for s, e in exception_spans[idx]):
                continue
            matched[idx] = matched.get(idx, 0) + 1
            if matched[idx] > MAX_EVIDENCE:
                continue  # a finding stays small enough to publish; the count is kept in its details
            raw_start, raw_end = text.raw_span(start, end)
            by_rule.setdefault(idx, []).append(
                Evidence(
                    event_id=event.event_id, field=field, start=raw_start, end=raw_end,
                    raw=text.raw[raw_start:raw_end], normalized=text.text[start:end], term=term, how=how,
                )
            )
            score = {"homophone": self.settings.score_homophone, "pattern": self.settings.score_pattern}.get(
                how, self.settings.score_exact
            )
            best_score[idx] = max(best_score.get(idx, 0.0), score)
        return [self._finding(event, self.rules[idx], _outermost(ev), best_score[idx], source, category,
                              matched[idx])
                for idx, ev in sorted(by_rule.items())]

    def _finding(
        self, event: EventModel, rule: ClaimRule, evidence: list[Evidence], score: float, source: Source,
        category: str, matches: int,
    ) -> Finding:
        quoted = "、".join(dict.fromkeys(f"「{e.raw}」" for e in evidence))
        return Finding(
            finding_id=derived_id(self.name, rule.id, rule.version, event.room_id, event.event_id),
            detector=self.name,
            rule_id=rule.id,
            rule_version=rule.version,
            ruleset_version=self.context.ruleset_version,
            status="shadow" if rule.status == "shadow" else "live",
            severity=rule.severity,
            legal_basis=rule.legal_basis,
            room_id=event.room_id,
            platform=event.platform,
            ts=event.ts,
            subject=Subject(kind="room", id=event.room_id),
            window=Window(start_ts=event.ts, end_ts=event.ts),
            event_ids=[event.event_id],
            evidence=evidence,
            score=score,
            summary=f"{CLAIM_TYPE_LABEL[rule.claim_type]} {quoted} in {source} — {rule.legal_basis}",
            details={"claim_type": rule.claim_type, "source": source, "category": category, "matches": matches},
        )

    # -- rule self-checks ----------------------------------------------------------------------

    def check_examples(self, rule: Rule) -> list[str]:
        assert isinstance(rule, ClaimRule)
        solo = FalseClaimsDetector(self.settings, [rule.model_copy(update={"status": "live"})], self.context)
        problems = []
        for expected, examples in ((True, rule.examples.match), (False, rule.examples.no_match)):
            for ex in examples:
                fired = bool(solo.scan_example(ex))
                if fired != expected:
                    verb = "should match but does not" if expected else "should not match but does"
                    problems.append(f"example {ex.text!r} ({ex.source}, {ex.category or 'default'}) {verb}")
        return problems

    def scan_example(self, example: ClaimExample) -> list[Finding]:
        event = TranscriptEvent(event_id="example", room_id="example", platform="example", ts=946_684_800_000,
                  text=example.text, start_ms=0, end_ms=0)
        category = example.category or self.settings.default_category
        return self._scan(event, normalize(example.text), example.source, "text", category)
