"""AI-content label detector (AI主播标识): an AI-generated host or segment without a visible label.

A stream is AI while its metadata (``host_kind`` ai/mixed), a classifier's ``aigc_score``, its implicit label
or the host's own words say so. Two checks, each a rule in rules/ai_label.yaml (``check:``):
``missing_at_start`` (no visible label within ``grace_s``) and ``label_gap`` (a shown label gone longer than
``max_gap_s``), each re-reported every ``repeat_every_s``. Deadlines are event time, checked on every event of
the room before it is applied. State is small and durable; re-delivered events are recognised by id.

Reasons and examples: docs/prices_and_ai_labels.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, ReportsWhenDue, RuleContext, falls_due, text_evidence
from detectors.normalize import NormalizedText, Term, normalize, words_regex
from detectors.timeline import TimelineRule
from schemas.events import BaseEvent, ChatEvent, DanmakuEvent, StreamMetaEvent, TranscriptEvent, is_viewer_comment
from schemas.findings import Evidence, Finding
from schemas.rules import RegexPattern

Check = Literal["missing_at_start", "label_gap"]
Trigger = Literal["host_kind", "aigc_score", "implicit_label", "self_disclosed"]

TRIGGER_LABEL: dict[str, str] = {
    "host_kind": "stream metadata marks the host as AI",
    "aigc_score": "the AIGC classifier's score is over the threshold",
    "implicit_label": "the content's implicit label says it is AI-generated",
    "self_disclosed": "the host discloses being AI",
}


class AiLabelRule(TimelineRule):
    check: Check
    #: missing_at_start: how long after the stream becomes AI a visible label may take to appear
    grace_s: int = Field(default=10, ge=0)
    #: label_gap: how long a shown label may disappear
    max_gap_s: int = Field(default=30, ge=0)


class AiLabelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: host kinds that make the stream AI
    ai_host_kinds: list[Literal["human", "ai", "mixed"]] = ["ai", "mixed"]  # pydantic copies mutable defaults
    #: an upstream classifier's aigc_score at or above this marks the stream (segment) AI
    aigc_threshold: float = Field(default=0.8, ge=0, le=1)
    #: an implicit label matching one of these (regular expressions, case-insensitive) says AI-generated
    implicit_label_patterns: list[RegexPattern] = Field(
        default_factory=lambda: ["aigc", "ai[-_ ]?generated", "人工智能生成", "生成合成"]
    )
    #: what a host says when the host is AI (matched on normalised text, case-folded)
    self_disclosure_cues: list[Term] = Field(default_factory=lambda: ["AI主播", "数字人", "虚拟主播"])
    #: a cue inside one of these phrases does not count ("数字人民币" is money, not a host)
    self_disclosure_exceptions: list[Term] = Field(default_factory=lambda: ["数字人民币"])
    #: a cue right after one of these is a denial ("我不是AI主播")
    negations: list[Term] = Field(default_factory=lambda: ["不是", "并非", "没有用", "不用"])
    #: ids of recent state-changing events remembered to recognise a re-delivered one
    max_applied_ids: int = Field(default=64, ge=1)
    score: dict[Trigger, float] = Field(
        default={"host_kind": 0.95, "implicit_label": 0.95, "self_disclosed": 0.9, "aigc_score": 0.75}
    )


class AiLabelState(BaseModel):
    #: what currently makes the stream AI (empty: it is not)
    triggers: list[Trigger] = Field(default_factory=list)
    #: start of the current AI episode (the stream or segment being AI) and the event that began it
    ai_since: int | None = None
    ai_event_id: str | None = None
    #: why it is AI, one piece of evidence per trigger, as first seen in this episode
    evidence: list[Evidence] = Field(default_factory=list)
    #: the host said so (held until the stream ends)
    disclosed: Evidence | None = None
    label_visible: bool = False
    label_seen: bool = False  # shown at some point of the current AI episode
    label_lost_at: int | None = None
    label_lost_event_id: str | None = None
    reports: dict[str, int] = Field(default_factory=dict)  # rule id → findings in the open episode
    next_due: int | None = None
    applied: list[str] = Field(default_factory=list)  # ids of the latest state-changing events, oldest first


class AiLabelDetector(ReportsWhenDue, Detector[AiLabelRule, AiLabelSettings, AiLabelState]):
    name: ClassVar[str] = "ai_label"
    # viewer chat and danmaku are clock ticks (deadlines); host/operator chat is read like the transcript
    kinds: ClassVar[frozenset[str]] = frozenset({"stream_meta", "transcript", "chat", "danmaku"})

    def __init__(self, settings: AiLabelSettings, rules: Sequence[AiLabelRule], context: RuleContext) -> None:
        super().__init__(settings, rules, context)
        self._by_check: dict[str, list[AiLabelRule]] = {}
        for r in self.rules:
            self._by_check.setdefault(r.check, []).append(r)
        self._implicit = [re.compile(p, re.IGNORECASE) for p in settings.implicit_label_patterns]
        self._cue_rx = words_regex(settings.self_disclosure_cues)
        self._exceptions = [normalize(x).text for x in settings.self_disclosure_exceptions]
        self._negations = [normalize(x).text for x in settings.negations]

    # -- the detector --------------------------------------------------------------------------

    def detect(self, event: BaseEvent, text: NormalizedText | None, state: AiLabelState) -> list[Finding]:
        if is_viewer_comment(event):
            # a clock tick only (most of the input): never applied, so not looked for among the applied ids
            return self._due(event, state) if falls_due(event, state.next_due) else []
        if event.event_id in state.applied:
            return []  # re-delivered: its state change and its findings are out already
        findings = self._due(event, state) if falls_due(event, state.next_due) else []
        if type(event) is StreamMetaEvent:  # not isinstance: ABCMeta's check costs ≈ 0.07 µs when it misses
            self._on_meta(event, state)
        elif isinstance(event, (TranscriptEvent, ChatEvent, DanmakuEvent)):  # speech, a host's or operator's comment
            said = self._disclosure(event, text) if text is not None and state.disclosed is None else None
            if said is None:
                return findings
            state.disclosed = said
            self._set_triggers(event, state, [*state.triggers, "self_disclosed"], {"self_disclosed": said})
        else:
            return findings
        state.next_due = self._next_due(state)
        state.applied.append(event.event_id)
        del state.applied[: -self.settings.max_applied_ids]
        return findings

    # -- applying events -----------------------------------------------------------------------

    def _on_meta(self, event: StreamMetaEvent, state: AiLabelState) -> None:
        if event.status == "ended":
            state.disclosed = None
            self._set_triggers(event, state, [], {})
            state.label_visible = False
            return
        s = self.settings
        found: dict[str, Evidence] = {}
        if event.host_kind in s.ai_host_kinds:
            found["host_kind"] = _value(event, "host_kind", event.host_kind)
        if event.aigc_score is not None and event.aigc_score >= s.aigc_threshold:
            found["aigc_score"] = _value(event, "aigc_score", f"{event.aigc_score:g}")
        if event.implicit_label and any(rx.search(event.implicit_label) for rx in self._implicit):
            found["implicit_label"] = _value(event, "implicit_label", event.implicit_label[:200])
        if state.disclosed is not None:
            found["self_disclosed"] = state.disclosed
        order: list[Trigger] = ["host_kind", "aigc_score", "implicit_label", "self_disclosed"]
        self._set_triggers(event, state, [t for t in order if t in found], found)
        self._set_label(event, state, event.ai_label_visible)

    def _set_triggers(
        self, event: BaseEvent, state: AiLabelState, triggers: list[Trigger], evidence: dict[str, Evidence]
    ) -> None:
        triggers = list(dict.fromkeys(triggers))
        if triggers and state.ai_since is None:  # the stream (or a segment) becomes AI
            state.ai_since, state.ai_event_id = event.ts, event.event_id
            state.evidence = []
            state.label_seen = state.label_visible
            state.label_lost_at = state.label_lost_event_id = None
            state.reports = {}
        elif not triggers:
            state.ai_since = state.ai_event_id = None
            state.evidence = []
            state.label_seen = False
            state.label_lost_at = state.label_lost_event_id = None
            state.reports = {}
        seen = {e.field for e in state.evidence}
        for t in triggers:
            e = evidence.get(t)
            if e is not None and _field_of(t) not in seen:
                state.evidence.append(e)
        state.triggers = triggers

    def _set_label(self, event: BaseEvent, state: AiLabelState, visible: bool) -> None:
        was = state.label_visible
        state.label_visible = visible
        if state.ai_since is None:
            return
        if visible and not was:
            if not state.label_seen:
                _drop_reports(state, self._by_check.get("missing_at_start", []))
            state.label_seen = True
            state.label_lost_at = state.label_lost_event_id = None
            _drop_reports(state, self._by_check.get("label_gap", []))
        elif was and not visible and state.label_seen:
            state.label_lost_at, state.label_lost_event_id = event.ts, event.event_id

    def _disclosure(self, event: BaseEvent, text: NormalizedText) -> Evidence | None:
        norm = text.text
        for m in self._cue_rx.finditer(norm):
            start, end = m.start(), m.end()
            if any(norm.endswith(neg, 0, start) for neg in self._negations):
                continue  # "我不是AI主播"
            if any(_inside(norm, x, start, end) for x in self._exceptions):
                continue  # "数字人民币"
            return text_evidence(event, text, start, end, term=m.group(0), how="normalized")
        return None

    # -- deadlines -------------------------------------------------------------------------------

    def _dues(self, state: AiLabelState) -> list[tuple[int, AiLabelRule]]:
        """(due time, rule) of every report the open episode owes next."""
        if state.ai_since is None:
            return []
        out = []
        if not state.label_seen:
            for r in self._by_check.get("missing_at_start", []):
                n = state.reports.get(r.id, 0)
                out.append((state.ai_since + (r.grace_s + n * r.repeat_every_s) * 1000, r))
        elif not state.label_visible and state.label_lost_at is not None:
            for r in self._by_check.get("label_gap", []):
                n = state.reports.get(r.id, 0)
                out.append((state.label_lost_at + (r.max_gap_s + n * r.repeat_every_s) * 1000, r))
        return out

    def _next_due(self, state: AiLabelState) -> int | None:
        return min((due for due, _ in self._dues(state)), default=None)

    def _due(self, event: BaseEvent, state: AiLabelState) -> list[Finding]:
        findings = []
        for due, rule in self._dues(state):
            if event.ts > due:
                n = state.reports.get(rule.id, 0)
                state.reports[rule.id] = n + 1
                findings.append(self._finding(event, rule, state, n))
        state.next_due = self._next_due(state)
        return findings

    # -- findings ----------------------------------------------------------------------------------

    def _finding(self, event: BaseEvent, rule: AiLabelRule, state: AiLabelState, n: int) -> Finding:
        assert state.ai_since is not None and state.ai_event_id is not None
        gap = rule.check == "label_gap"
        since = state.label_lost_at if gap and state.label_lost_at is not None else state.ai_since
        first_event = state.label_lost_event_id if gap and state.label_lost_event_id else state.ai_event_id
        seconds = (event.ts - since) / 1000
        why = "; ".join(TRIGGER_LABEL[t] for t in state.triggers)
        if gap:
            summary = (
                f"AI label gone for {seconds:.0f} s (allowed gap {rule.max_gap_s} s) while the stream is "
                f"AI-generated ({why}) — {rule.legal_basis}"
            )
        else:
            summary = (
                f"AI-generated stream without a visible AI label for {seconds:.0f} s since it became AI "
                f"(grace {rule.grace_s} s; {why}) — {rule.legal_basis}"
            )
        evidence = list(state.evidence)
        if gap:
            evidence.append(
                Evidence(
                    event_id=first_event,
                    field="ai_label_visible",
                    start=0,
                    end=5,
                    raw="false",
                    normalized="false",
                    term="label_gap",
                    how="value",
                )
            )
        score = max((self.settings.score.get(t, 0.75) for t in state.triggers), default=0.75)
        return self.finding(
            rule,
            event,
            ident=(since, n),
            score=score,
            summary=summary,
            evidence=evidence,
            since=since,
            event_ids=list(
                dict.fromkeys([state.ai_event_id, first_event, *(e.event_id for e in evidence), event.event_id])
            ),
            details={
                "check": rule.check,
                "triggers": list(state.triggers),
                "ai_since_ts": state.ai_since,
                "since_ts": since,
                "seconds": round(seconds, 3),
                "label_seen": state.label_seen,
                "allowed_s": rule.max_gap_s if gap else rule.grace_s,
                "report": n + 1,
            },
        )


def _value(event: BaseEvent, field: str, value: str) -> Evidence:
    return Evidence(
        event_id=event.event_id, field=field, start=0, end=len(value), raw=value, normalized=value, how="value"
    )


def _field_of(trigger: str) -> str:
    return "text" if trigger == "self_disclosed" else trigger


def _inside(text: str, phrase: str, start: int, end: int) -> bool:
    """Whether an occurrence of ``phrase`` in ``text`` contains the span [start, end)."""
    pos = text.find(phrase, max(0, end - len(phrase)))
    while pos != -1 and pos <= start:
        if pos + len(phrase) >= end:
            return True
        pos = text.find(phrase, pos + 1)
    return False


def _drop_reports(state: AiLabelState, rules: list[AiLabelRule]) -> None:
    for r in rules:
        state.reports.pop(r.id, None)
