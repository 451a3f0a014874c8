"""Price-marking detector (明码标价): unmarked, contradicted and fictitious prices in a live room.

Five checks, each a rule in rules/prices.yaml (``check:``): ``unmarked``, ``spoken_mismatch``,
``comparison_without_basis``, ``fictitious_original`` (虚构原价, against a 7-day price history) and
``discount_arithmetic``. Event time only: deadlines are checked on every event of the room before it is
applied, so a finding fires on the first event after the deadline. Re-delivered state changes are
recognised by id and ignored. State is durable and bounded (``max_products``, ``history_days``,
``max_reported``).

What each rule catches, with examples, and the reasons: docs/prices_and_ai_labels.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, ReportsWhenDue, RuleContext, falls_due, text_evidence
from detectors.normalize import NormalizedText, normalize
from detectors.price_speech import PriceSpeech, Said, SpeechLexicon, Utterance
from detectors.timeline import TimelineRule
from schemas.events import (
    BaseEvent,
    ChatEvent,
    DanmakuEvent,
    OrderEvent,
    PriceTagEvent,
    StreamMetaEvent,
    TranscriptEvent,
    is_viewer_comment,
)
from schemas.findings import Evidence, Finding

Check = Literal["unmarked", "spoken_mismatch", "comparison_without_basis", "fictitious_original", "discount_arithmetic"]
DAY_MS = 86_400_000
#: evidence spans kept per finding (a 20,000-character transcript of "只要9" would otherwise make a huge alert)
MAX_EVIDENCE = 20
#: the product key used when a price is spoken while no product is on air or shown at all
UNIDENTIFIED = "(unidentified)"

CHECK_LABEL: dict[str, str] = {
    "unmarked": "未明码标价",
    "spoken_mismatch": "口播价与标价不一致",
    "comparison_without_basis": "被比较价格未标明基准",
    "fictitious_original": "虚构原价",
    "discount_arithmetic": "折扣计算不实",
}


class PriceRule(TimelineRule):
    check: Check
    #: fictitious_original: the look-back for prices actually charged
    window_days: int = Field(default=7, ge=1, le=31)
    #: fictitious_original / comparison_without_basis: a basis naming one of these is a different reference
    #: (e.g. the manufacturer's suggested retail price), not a claim about past prices
    exempt_bases: list[str] = Field(default_factory=list)
    #: discount_arithmetic: the buyer may pay this much (yuan) or this share above the computed price
    tolerance_yuan: Decimal = Field(default=Decimal("0.10"), ge=0)
    tolerance_ratio: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)


class PriceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    speech: SpeechLexicon = Field(default_factory=SpeechLexicon)
    #: China time: the per-day price history starts its days at 00:00 UTC+8
    day_offset_h: int = Field(default=8, ge=-12, le=14)
    #: days of per-day price history kept (≥ every rule's window_days)
    history_days: int = Field(default=8, ge=1, le=32)
    max_products: int = Field(default=300, ge=1)
    max_reported: int = Field(default=500, ge=1)
    #: ids of recent state-changing events remembered to recognise a re-delivered one
    max_applied_ids: int = Field(default=64, ge=1)
    score_value: float = Field(default=0.95, ge=0, le=1, description="a fact read from tags or orders")
    score_speech: float = Field(default=0.85, ge=0, le=1, description="a price read from the transcript")
    score_inferred: float = Field(default=0.7, ge=0, le=1, description="judged on shown, not charged, prices")


class Tag(BaseModel):
    event_id: str
    ts: int
    price: Decimal
    original_price: Decimal | None = None
    basis: str | None = None
    visible: bool = True


class DayPrices(BaseModel):
    order_min: Decimal | None = None
    order_max: Decimal | None = None
    shown_min: Decimal | None = None
    shown_max: Decimal | None = None


class Episode(BaseModel):
    """A product on air or pitched without a visible price, since ``since``."""

    since: int
    event_id: str
    cause: Literal["on_air", "pitched", "tag_hidden"]
    reports: dict[str, int] = Field(default_factory=dict)  # rule id → findings issued in this episode


class ProductState(BaseModel):
    title: str = ""
    on_air: bool = False
    pitched: bool = False
    tag: Tag | None = None
    missing: Episode | None = None
    days: dict[int, DayPrices] = Field(default_factory=dict)
    last_order_price: Decimal | None = None
    last_order_ts: int | None = None
    touched_ts: int = 0


class PriceState(BaseModel):
    products: dict[str, ProductState] = Field(default_factory=dict)
    current: str | None = None
    #: earliest event time at which an open episode's next report falls due (None: nothing open)
    next_due: int | None = None
    reported: dict[str, int] = Field(default_factory=dict)  # report key → event time, oldest first
    applied: list[str] = Field(default_factory=list)  # ids of the latest state-changing events, oldest first


def _key(d: Decimal) -> str:
    """One spelling per amount for report keys: 299, 299.0 and 299.00 are one price."""
    return format(d.normalize(), "f")


def _plain(d: Decimal | None) -> str | None:
    """A Decimal as a short string for details ("9.9", "129", "99.50")."""
    if d is None:
        return None
    return format(d.normalize(), "f") if d == d.to_integral_value() else format(d, "f")


class PriceMarkingDetector(ReportsWhenDue, Detector[PriceRule, PriceSettings, PriceState]):
    name: ClassVar[str] = "price_marking"
    # chat and danmaku are read only as clock ticks (deadlines), and host/operator chat for spoken prices
    kinds: ClassVar[frozenset[str]] = frozenset({"price_tag", "transcript", "order", "stream_meta", "chat", "danmaku"})

    def __init__(self, settings: PriceSettings, rules: Sequence[PriceRule], context: RuleContext) -> None:
        super().__init__(settings, rules, context)
        self._by_check: dict[str, list[PriceRule]] = {}
        for r in self.rules:
            self._by_check.setdefault(r.check, []).append(r)
        self._speech = PriceSpeech(settings.speech)
        self._repeat_horizon_ms = max((r.repeat_every_s for r in self.rules), default=600) * 1000
        self._history_days = max([settings.history_days] + [r.window_days + 1 for r in self.rules])
        self._exempt = {r.id: [t for t in (normalize(x).text for x in r.exempt_bases) if t] for r in self.rules}

    # -- the detector --------------------------------------------------------------------------

    def detect(self, event: BaseEvent, text: NormalizedText | None, state: PriceState) -> list[Finding]:
        if is_viewer_comment(event):
            # a clock tick only (most of the input): never applied, so not looked for among the applied ids
            return self._due(event, state) if falls_due(event, state.next_due) else []
        if event.event_id in state.applied:
            return []  # re-delivered: its state change and its findings are out already
        findings = self._due(event, state) if falls_due(event, state.next_due) else []
        # ``type(event) is``: an event model's isinstance goes through ABCMeta, ≈ 0.07 µs for each class that misses
        if type(event) is StreamMetaEvent:
            self._on_meta(event, state)
        elif type(event) is PriceTagEvent:
            findings += self._on_tag(event, text, state)
        elif type(event) is OrderEvent:
            self._on_order(event, state)
            return findings  # history only: no episode opens or closes
        elif isinstance(event, (TranscriptEvent, ChatEvent, DanmakuEvent)):  # speech, a host's or operator's comment
            if text is None:
                return findings
            said = self._speech.read(text)
            if not said:
                return findings
            findings += self._on_speech(event, text, said, state)
        else:
            return findings
        self._update_episodes(event, state)
        state.applied.append(event.event_id)
        del state.applied[: -self.settings.max_applied_ids]
        return findings

    # -- applying events -----------------------------------------------------------------------

    def _product(self, state: PriceState, product_id: str, ts: int) -> ProductState:
        p = state.products.get(product_id)
        if p is None:
            self._make_room(state)
            p = state.products[product_id] = ProductState()
        p.touched_ts = max(p.touched_ts, ts)
        return p

    def _make_room(self, state: PriceState) -> None:
        while len(state.products) >= self.settings.max_products:
            idle = [k for k, p in state.products.items() if not (p.on_air or p.pitched or p.missing)]
            pool = idle or list(state.products)
            victim = min(pool, key=lambda k: state.products[k].touched_ts)
            del state.products[victim]
            if state.current == victim:
                state.current = None

    def _set_current(self, state: PriceState, product_id: str | None) -> None:
        if state.current != product_id and state.current in state.products:
            state.products[state.current].pitched = False  # the host has moved on to another product
        state.current = product_id

    def _on_meta(self, event: StreamMetaEvent, state: PriceState) -> None:
        if event.status == "ended":
            for p in state.products.values():
                p.on_air = p.pitched = False
                if p.tag is not None:
                    p.tag.visible = False  # the next stream shows its own price cards
            state.current = None
            return
        if not event.products:
            return  # an update of other stream fields (e.g. the AI label): products unchanged
        listed = {}
        for item in event.products:
            listed[item.product_id] = item
        for pid, p in state.products.items():
            if pid not in listed:
                p.on_air = False
        for pid, item in listed.items():
            p = self._product(state, pid, event.ts)
            p.on_air = True
            p.title = item.title or p.title
        if state.current not in listed:
            self._set_current(state, event.products[0].product_id)

    def _on_order(self, event: OrderEvent, state: PriceState) -> None:
        p = self._product(state, event.product_id, event.ts)
        day = self._day_prices(p, event.ts)
        day.order_min = event.price if day.order_min is None else min(day.order_min, event.price)
        day.order_max = event.price if day.order_max is None else max(day.order_max, event.price)
        if p.last_order_ts is None or event.ts >= p.last_order_ts:
            p.last_order_price, p.last_order_ts = event.price, event.ts

    def _on_tag(self, event: PriceTagEvent, text: NormalizedText | None, state: PriceState) -> list[Finding]:
        p = self._product(state, event.product_id, event.ts)
        p.title = event.title or p.title
        findings: list[Finding] = []
        if event.visible:
            self._set_current(state, event.product_id)
            if event.original_price is not None and event.original_price != event.price:
                findings += self._comparison_checks(
                    event, state, event.product_id, p, event.original_price, event.price_basis, None, text
                )
            findings += self._tag_discount(event, text, state, p)
        p.tag = Tag(
            event_id=event.event_id,
            ts=event.ts,
            price=event.price,
            original_price=event.original_price,
            basis=event.price_basis,
            visible=event.visible,
        )
        if event.visible:
            day = self._day_prices(p, event.ts)
            day.shown_min = event.price if day.shown_min is None else min(day.shown_min, event.price)
            day.shown_max = event.price if day.shown_max is None else max(day.shown_max, event.price)
        return findings

    def _on_speech(self, event: BaseEvent, text: NormalizedText, said: Utterance, state: PriceState) -> list[Finding]:
        pid = state.current
        if pid is None and said.sale and not any(p.tag and p.tag.visible for p in state.products.values()):
            pid = UNIDENTIFIED  # a price pitched while nothing is on air or shown
            self._set_current(state, pid)
        if pid is None:
            return []
        p = self._product(state, pid, event.ts)
        tag = p.tag if p.tag is not None and p.tag.visible else None
        findings: list[Finding] = []
        if said.sale and tag is None:
            p.pitched = True
        if said.sale and tag is not None:
            findings += self._spoken_mismatch(event, text, said, state, pid, tag)
        for original in said.original[:1]:
            basis = tag.basis if tag is not None else None
            findings += self._comparison_checks(event, state, pid, p, original.value, basis, original, text)
        if said.discount_terms:
            original_value = said.original[0].value if said.original else (tag.original_price if tag else None)
            # the price asked is the one said and the one on the tag (what is charged): "直降80" of a 299 tag
            # whose price is 249 is wrong even when the host adds "到手219" — unless the price said is another
            # product's tag, when the talk is about that product and not this tag
            asked: list[tuple[Decimal, Said | None]] = [(s.value, s) for s in said.sale[:1]]
            other = {q.tag.price for k, q in state.products.items() if k != pid and q.tag is not None and q.tag.visible}
            if tag is not None and not (said.sale and said.sale[0].value != tag.price and said.sale[0].value in other):
                asked.append((tag.price, None))
            findings += self._discount(
                event,
                state,
                pid,
                original_value,
                asked,
                said.discount_terms,
                text,
                said.original[:1],
                tag_event_id=tag.event_id if tag else None,
            )
        return findings

    # -- episodes of a missing price -------------------------------------------------------------

    def _update_episodes(self, event: BaseEvent, state: PriceState) -> None:
        next_due: int | None = None
        for p in state.products.values():
            shown = p.tag is not None and p.tag.visible
            exposed = p.on_air or p.pitched
            if exposed and not shown:
                if p.missing is None:
                    cause = "tag_hidden" if p.tag is not None else ("on_air" if p.on_air else "pitched")
                    p.missing = Episode(since=event.ts, event_id=event.event_id, cause=cause)
                due = self._episode_due(p.missing)
                if due is not None:
                    next_due = due if next_due is None else min(next_due, due)
            else:
                p.missing = None
        state.next_due = next_due

    def _episode_due(self, ep: Episode) -> int | None:
        """When the next report of this episode falls due (the earliest over the unmarked rules)."""
        dues = [
            ep.since + (r.grace_s + ep.reports.get(r.id, 0) * r.repeat_every_s) * 1000
            for r in self._by_check.get("unmarked", [])
        ]
        return min(dues) if dues else None

    def _due(self, event: BaseEvent, state: PriceState) -> list[Finding]:
        findings = []
        next_due: int | None = None
        for pid, p in state.products.items():
            ep = p.missing
            if ep is None:
                continue
            for rule in self._by_check.get("unmarked", []):
                n = ep.reports.get(rule.id, 0)
                if event.ts > ep.since + (rule.grace_s + n * rule.repeat_every_s) * 1000:
                    ep.reports[rule.id] = n + 1
                    findings.append(self._unmarked(event, rule, pid, p, ep, n))
            due = self._episode_due(ep)
            if due is not None:
                next_due = due if next_due is None else min(next_due, due)
        state.next_due = next_due
        return findings

    def _unmarked(self, event: BaseEvent, rule: PriceRule, pid: str, p: ProductState, ep: Episode, n: int) -> Finding:
        missing_s = (event.ts - ep.since) / 1000
        why = {"on_air": "on air", "pitched": "pitched", "tag_hidden": "on air with its price tag hidden"}[ep.cause]
        name = f"「{p.title}」" if p.title else pid
        return self._finding(
            rule,
            event,
            ident=(pid, ep.since, n),
            score=self.settings.score_value,
            since=ep.since,
            event_ids=[ep.event_id, event.event_id],
            evidence=[
                Evidence(
                    event_id=ep.event_id,
                    field="product_id",
                    start=0,
                    end=len(pid),
                    raw=pid,
                    normalized=pid,
                    term=ep.cause,
                    how="value",
                )
            ],
            summary=f"{CHECK_LABEL[rule.check]}: {name} {why} for {missing_s:.0f} s without a visible price "
            f"(grace {rule.grace_s} s) — {rule.legal_basis}",
            details={
                "product_id": pid,
                "title": p.title,
                "cause": ep.cause,
                "since_ts": ep.since,
                "missing_s": round(missing_s, 3),
                "grace_s": rule.grace_s,
                "report": n + 1,
            },
        )

    # -- checks on what is shown or said ----------------------------------------------------------

    def _spoken_mismatch(
        self, event: BaseEvent, text: NormalizedText, said: Utterance, state: PriceState, pid: str, tag: Tag
    ) -> list[Finding]:
        shown = {q.tag.price for q in state.products.values() if q.tag is not None and q.tag.visible}
        wrong = [s for s in said.sale if s.value != tag.price and s.value not in shown]
        if not wrong:
            return []
        findings = []
        for rule in self._by_check.get("spoken_mismatch", []):
            key = f"{rule.id}|{pid}|{_key(tag.price)}|{_key(wrong[0].value)}"
            if not self._first_report(state, key, event.ts, rule):
                continue
            evidence = [self._span(event, text, s) for s in wrong[:MAX_EVIDENCE]]
            higher = wrong[0].value > tag.price
            findings.append(
                self._finding(
                    rule,
                    event,
                    ident=(pid, event.event_id),
                    score=self.settings.score_speech,
                    since=event.ts,
                    event_ids=[tag.event_id, event.event_id],
                    evidence=evidence,
                    summary=f"{CHECK_LABEL[rule.check]}: said {'、'.join(f'「{e.raw}」' for e in evidence)} "
                    f"({_plain(wrong[0].value)}) but the tag of {pid} shows {_plain(tag.price)} — {rule.legal_basis}",
                    details={
                        "product_id": pid,
                        "tag_price": _plain(tag.price),
                        "spoken_price": _plain(wrong[0].value),
                        "spoken_prices": list(dict.fromkeys(_plain(s.value) for s in wrong))[:MAX_EVIDENCE],
                        "tag_event_id": tag.event_id,
                        "direction": "above_tag" if higher else "below_tag",
                    },
                )
            )
        return findings

    def _comparison_checks(
        self,
        event: BaseEvent,
        state: PriceState,
        pid: str,
        p: ProductState,
        original: Decimal,
        basis: str | None,
        said: Said | None,
        text: NormalizedText | None,
    ) -> list[Finding]:
        findings = []
        evidence = (
            [self._span(event, text, said)]
            if said is not None and text is not None
            else [
                Evidence(
                    event_id=event.event_id,
                    field="original_price",
                    start=0,
                    end=len(_plain(original) or ""),
                    raw=_plain(original) or "",
                    normalized=_plain(original) or "",
                    how="value",
                )
            ]
        )
        source = "transcript" if said is not None else "tag"
        basis_text = (basis or "").strip()
        for rule in self._by_check.get("comparison_without_basis", []):
            if basis_text:
                continue
            if not self._first_report(state, f"{rule.id}|{pid}|{_key(original)}", event.ts, rule):
                continue
            findings.append(
                self._finding(
                    rule,
                    event,
                    ident=(pid, event.event_id),
                    score=self.settings.score_speech if said else self.settings.score_value,
                    since=event.ts,
                    event_ids=[event.event_id],
                    evidence=evidence,
                    summary=f"{CHECK_LABEL[rule.check]}: comparison price {_plain(original)} for {pid} "
                    f"{'said' if said else 'shown'} with no basis on its price tag — {rule.legal_basis}",
                    details={"product_id": pid, "original_price": _plain(original), "source": source},
                )
            )
        for rule in self._by_check.get("fictitious_original", []):
            normalized_basis = normalize(basis_text).text if basis_text else ""
            if any(term in normalized_basis for term in self._exempt[rule.id]):
                continue  # e.g. compared with the manufacturer's suggested retail price, marked as such
            ref = self._reference(p, event.ts, rule.window_days)
            if ref is None or original <= ref[1]:
                continue
            if not self._first_report(state, f"{rule.id}|{pid}|{_key(original)}", event.ts, rule):
                continue
            how, highest, lowest, days = ref
            score = (
                self.settings.score_inferred
                if how == "shown"
                else (self.settings.score_speech if said else self.settings.score_value)
            )
            what = {
                "orders": "every price charged",
                "last_order": "the last price charged",
                "shown": "every price shown on earlier days",
            }[how]
            findings.append(
                self._finding(
                    rule,
                    event,
                    ident=(pid, event.event_id),
                    score=score,
                    since=event.ts - rule.window_days * DAY_MS,
                    event_ids=[event.event_id],
                    evidence=evidence,
                    summary=f"{CHECK_LABEL[rule.check]}: comparison price {_plain(original)} for {pid} is above {what} "
                    f"in the previous {rule.window_days} days (highest {_plain(highest)}, lowest "
                    f"{_plain(lowest)}) — {rule.legal_basis}",
                    details={
                        "product_id": pid,
                        "original_price": _plain(original),
                        "reference": how,
                        "highest_charged": _plain(highest),
                        "lowest_charged": _plain(lowest),
                        "days_with_prices": days,
                        "basis": basis_text or None,
                        "source": source,
                        "window_days": rule.window_days,
                    },
                )
            )
        return findings

    def _tag_discount(
        self, event: PriceTagEvent, text: NormalizedText | None, state: PriceState, p: ProductState
    ) -> list[Finding]:
        if event.original_price is None or not self._by_check.get("discount_arithmetic"):
            return []
        terms: list[Said] = []
        sources: list[tuple[str, NormalizedText]] = []
        if text is not None:
            terms += self._speech.read(text).discount_terms
            sources += [("title", text)] * len(terms)
        if event.price_basis:
            basis = normalize(event.price_basis)
            got = self._speech.read(basis).discount_terms
            terms += got
            sources += [("price_basis", basis)] * len(got)
        if not terms:
            return []
        return self._discount(
            event,
            state,
            event.product_id,
            event.original_price,
            [(event.price, None)],
            terms,
            None,
            [],
            sources=sources,
        )

    def _discount(
        self,
        event: BaseEvent,
        state: PriceState,
        pid: str,
        original: Decimal | None,
        asked: list[tuple[Decimal, Said | None]],
        terms: list[Said],
        text: NormalizedText | None,
        also: list[Said],
        *,
        tag_event_id: str | None = None,
        sources: list[tuple[str, NormalizedText]] | None = None,
    ) -> list[Finding]:
        """Each discount term against each price asked (the spoken sale price, then the tag's price)."""
        if original is None or not asked:
            return []
        findings = []
        for rule in self._by_check.get("discount_arithmetic", []):
            failed = None
            for i, term in enumerate(terms):
                if term.cue in ("折", "半价"):
                    expected = (original * term.value / 10).quantize(Decimal("0.01"))
                    stated = f"{_plain(term.value)}折" if term.cue == "折" else "半价"
                else:
                    expected = original - term.value
                    stated = f"{term.cue}{_plain(term.value)}"
                    if expected <= 0:
                        continue  # a reduction of the whole price or more is a misreading, not a claim
                allowed = max(rule.tolerance_yuan, abs(expected) * rule.tolerance_ratio)
                for final, sale in asked:
                    if final - expected > allowed:
                        failed = (i, term, expected, stated, final, sale)
                        break
                if failed:
                    break
            if failed is None:
                continue
            i, term, expected, stated, final, sale = failed
            if not self._first_report(
                state, f"{rule.id}|{pid}|{_key(original)}|{_key(final)}|{stated}", event.ts, rule
            ):
                continue
            if sources is not None:
                field, src = sources[i]
                evidence = [self._span(event, src, term, field)]
            else:
                evidence = [
                    self._span(event, text, s) for s in [*also, *([sale] if sale else []), term] if text is not None
                ]
            from_tag = sale is None and sources is None
            findings.append(
                self._finding(
                    rule,
                    event,
                    ident=(pid, event.event_id, stated),
                    score=self.settings.score_speech if sources is None else self.settings.score_value,
                    since=event.ts,
                    event_ids=[tag_event_id, event.event_id] if from_tag and tag_event_id else [event.event_id],
                    evidence=evidence,
                    summary=f"{CHECK_LABEL[rule.check]}: {stated} of {_plain(original)} is {_plain(expected)}, "
                    f"but {pid} sells at {_plain(final)}{' (tag)' if from_tag else ''} — {rule.legal_basis}",
                    details={
                        "product_id": pid,
                        "original_price": _plain(original),
                        "discount": stated,
                        "computed_price": _plain(expected),
                        "asked_price": _plain(final),
                        "asked_source": "transcript" if sale is not None else "tag",
                        "overcharge": _plain(final - expected),
                    },
                )
            )  # one finding per event and rule; the details name the first discount and price that fail
        return findings

    # -- price history -----------------------------------------------------------------------------

    def _day(self, ts: int) -> int:
        return (ts + self.settings.day_offset_h * 3_600_000) // DAY_MS

    def _day_prices(self, p: ProductState, ts: int) -> DayPrices:
        today = self._day(ts)
        for d in [d for d in p.days if d < today - self._history_days]:
            del p.days[d]
        day = p.days.get(today)
        if day is None:
            day = p.days[today] = DayPrices()
            p.days = dict(sorted(p.days.items()))
        return day

    def _reference(self, p: ProductState, ts: int, window_days: int) -> tuple[str, Decimal, Decimal, int] | None:
        """(source, highest, lowest, days with prices) of what the product really cost in the window.

        The window is whole China-time days: the event's day and the ``window_days`` days before it — up
        to a day more than 7 × 24 h, which can only count more real prices, in the seller's favour.
        """
        today = self._day(ts)
        days = [d for k, d in p.days.items() if today - window_days <= k <= today]
        highest = [d.order_max for d in days if d.order_max is not None]
        lowest = [d.order_min for d in days if d.order_min is not None]
        if highest and lowest:
            return "orders", max(highest), min(lowest), len(highest)
        if p.last_order_price is not None:
            return "last_order", p.last_order_price, p.last_order_price, 0
        before = [d for k, d in p.days.items() if today - window_days <= k < today]
        shown_high = [d.shown_max for d in before if d.shown_max is not None]
        shown_low = [d.shown_min for d in before if d.shown_min is not None]
        if shown_high and shown_low:
            return "shown", max(shown_high), min(shown_low), len(shown_high)
        return None

    # -- findings -----------------------------------------------------------------------------------

    def _first_report(self, state: PriceState, key: str, ts: int, rule: PriceRule) -> bool:
        """Whether ``key`` may be reported now (not reported within the rule's repeat period); records it."""
        last = state.reported.get(key)
        if last is not None and ts - last < rule.repeat_every_s * 1000:
            return False
        state.reported.pop(key, None)
        state.reported[key] = ts
        horizon = ts - self._repeat_horizon_ms
        while state.reported and (
            len(state.reported) > self.settings.max_reported or next(iter(state.reported.values())) <= horizon
        ):
            del state.reported[next(iter(state.reported))]
        return True

    def _span(self, event: BaseEvent, text: NormalizedText | None, said: Said | None, field: str = "text") -> Evidence:
        assert text is not None and said is not None
        return text_evidence(event, text, said.start, said.end, term=said.cue, how="pattern", field=field)

    def _finding(
        self,
        rule: PriceRule,
        event: BaseEvent,
        *,
        ident: tuple[object, ...],
        score: float,
        since: int,
        event_ids: list[str],
        evidence: list[Evidence],
        summary: str,
        details: dict[str, object],
    ) -> Finding:
        return self.finding(
            rule,
            event,
            ident=ident,
            score=score,
            summary=summary,
            evidence=evidence,
            since=since,
            event_ids=list(dict.fromkeys(event_ids)),
            details={"check": rule.check, **details},
        )
