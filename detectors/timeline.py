"""Inline rule examples as short timelines, for detectors whose findings depend on time and state.

A ``TimelineRule``'s ``examples`` list timelines that must make it fire (``fires``) or stay quiet
(``quiet``), each event written compactly, e.g. ``{t: 0, meta: {products: [p1]}}``,
``{t: 40, say: 今天到手价只要八十九}``, ``{t: -2, day: -3, order: {product: p1, price: "199"}}``: ``t`` is
seconds and ``day`` whole days from the example's start; events are fed in the order written.

The full format: docs/prices_and_ai_labels.md ("Timeline examples").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.normalize import normalize
from schemas.events import (
    BaseEvent,
    ChatEvent,
    OrderEvent,
    PriceTagEvent,
    ProductCategory,
    ProductOnAir,
    StreamMetaEvent,
    TranscriptEvent,
    text_of,
)
from schemas.findings import Finding
from schemas.rules import Rule

#: 2026-02-01 20:00 +08:00; examples may reach back up to 30 days before it
EXAMPLE_T0 = 1_769_947_200_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExampleProduct(_Strict):
    id: str = Field(min_length=1)
    title: str = ""
    category: ProductCategory = "general"


class ExampleMeta(_Strict):
    products: list[ExampleProduct] = Field(default_factory=list)
    status: Literal["live", "ended"] = "live"
    host_kind: Literal["human", "ai", "mixed"] = "human"
    ai_label_visible: bool = False
    aigc_score: float | None = Field(default=None, ge=0, le=1)
    implicit_label: str | None = None

    @field_validator("products", mode="before")
    @classmethod
    def _ids_are_products(cls, v: object) -> object:
        return [{"id": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v


class ExampleTag(_Strict):
    product: str = Field(min_length=1)
    price: Decimal = Field(ge=0)
    original_price: Decimal | None = Field(default=None, ge=0)
    basis: str | None = None
    visible: bool = True
    title: str = ""
    category: ProductCategory = "general"


class ExampleOrder(_Strict):
    product: str = Field(min_length=1)
    price: Decimal = Field(ge=0)
    qty: int = Field(default=1, ge=1)


class ExampleEvent(_Strict):
    t: float = 0
    day: int = Field(default=0, ge=-30, le=30)
    say: str | None = None
    chat: str | None = None
    meta: ExampleMeta | None = None
    tag: ExampleTag | None = None
    order: ExampleOrder | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ExampleEvent:
        given = [k for k in ("say", "chat", "meta", "tag", "order") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"an example event is exactly one of say/chat/meta/tag/order; got {given or 'none'}")
        return self


class ExampleTimeline(_Strict):
    note: str = ""
    events: list[ExampleEvent] = Field(min_length=1)


def _as_timeline(value: object) -> object:
    return {"events": value} if isinstance(value, list) else value


class TimelineExamples(_Strict):
    """Timelines after which the rule must have fired at least once, and timelines after which it must not."""

    fires: list[ExampleTimeline] = Field(default_factory=list)
    quiet: list[ExampleTimeline] = Field(default_factory=list)

    @field_validator("fires", "quiet", mode="before")
    @classmethod
    def _lists_are_timelines(cls, v: object) -> object:
        return [_as_timeline(x) for x in v] if isinstance(v, list) else v


class TimelineRule(Rule):
    """A rule about something that lasts (a missing price, a missing label): it is reported once it has
    lasted ``grace_s``, and again at most every ``repeat_every_s`` while it goes on."""

    grace_s: int = Field(default=60, ge=0)
    repeat_every_s: int = Field(default=600, ge=1)
    examples: TimelineExamples = Field(default_factory=TimelineExamples)


def build_events(timeline: ExampleTimeline, room: str = "example") -> list[BaseEvent]:
    """The timeline as real, validated events (ids ``ex-1``, ``ex-2`` … in the order written)."""
    out: list[BaseEvent] = []
    for i, ex in enumerate(timeline.events, start=1):
        base: dict[str, Any] = {
            "event_id": f"ex-{i}",
            "room_id": room,
            "platform": "example",
            "ts": EXAMPLE_T0 + ex.day * 86_400_000 + int(ex.t * 1000),
        }
        if ex.say is not None:
            ms = max(0, int(ex.t * 1000))
            out.append(TranscriptEvent(**base, text=ex.say, start_ms=ms, end_ms=ms + 2000))
        elif ex.chat is not None:
            out.append(ChatEvent(**base, user_id="host", role="host", text=ex.chat))
        elif ex.meta is not None:
            m = ex.meta
            out.append(
                StreamMetaEvent(
                    **base,
                    status=m.status,
                    host_kind=m.host_kind,
                    ai_label_visible=m.ai_label_visible,
                    aigc_score=m.aigc_score,
                    implicit_label=m.implicit_label,
                    products=[ProductOnAir(product_id=p.id, title=p.title, category=p.category) for p in m.products],
                )
            )
        elif ex.tag is not None:
            g = ex.tag
            out.append(
                PriceTagEvent(
                    **base,
                    product_id=g.product,
                    title=g.title or g.product,
                    category=g.category,
                    price=g.price,
                    original_price=g.original_price,
                    price_basis=g.basis,
                    visible=g.visible,
                )
            )
        elif ex.order is not None:
            o = ex.order
            out.append(OrderEvent(**base, product_id=o.product, price=o.price, qty=o.qty))
    return out


def run(detector: Any, events: list[BaseEvent], state: Any = None) -> list[Finding]:
    """Feed events to a detector (only the kinds it reads) with one state, as the engine does."""
    state = detector.state_model() if state is None else state
    findings: list[Finding] = []
    for event in events:
        if event.kind in detector.kinds:
            raw = text_of(event)
            findings.extend(detector.detect(event, normalize(raw) if raw else None, state))
    return findings


def check_timelines(solo: Any, rule_id: str, examples: TimelineExamples) -> list[str]:
    """Problems with a rule's timelines, run on ``solo`` (a detector holding that rule, live)."""
    problems = []
    for expected, timelines in ((True, examples.fires), (False, examples.quiet)):
        for n, timeline in enumerate(timelines, start=1):
            fired = any(f.rule_id == rule_id for f in run(solo, build_events(timeline)))
            if fired != expected:
                what = "should fire but does not" if expected else "should stay quiet but fires"
                label = f"{'fires' if expected else 'quiet'}[{n}]" + (f" ({timeline.note})" if timeline.note else "")
                problems.append(f"example {label} {what}")
    return problems
