"""Small helpers that build events for tests: given events → expected findings/actions."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import count
from typing import Any

from schemas.events import (
    ChatEvent,
    DanmakuEvent,
    OrderEvent,
    PriceTagEvent,
    ProductOnAir,
    StreamMetaEvent,
    TranscriptEvent,
)

T0 = 1_769_947_200_000  # 2026-02-01 20:00 +08:00
_ids = count(1)


def _base(room: str, t: float, event_id: str | None) -> dict[str, Any]:
    return {"event_id": event_id or f"e{next(_ids)}", "room_id": room, "platform": "test", "ts": T0 + int(t * 1000)}


def say(text: str, *, room: str = "r1", t: float = 0, event_id: str | None = None) -> TranscriptEvent:
    return TranscriptEvent(**_base(room, t, event_id), text=text, start_ms=int(t * 1000), end_ms=int(t * 1000) + 2000)


def chat(text: str, *, role: str = "viewer", user: str = "u1", room: str = "r1", t: float = 0,
         event_id: str | None = None, **extra: Any) -> ChatEvent:
    return ChatEvent(**_base(room, t, event_id), user_id=user, text=text, role=role, **extra)


def danmaku(text: str, *, user: str = "u1", room: str = "r1", t: float = 0, event_id: str | None = None,
            signals: dict[str, Any] | None = None, **extra: Any) -> DanmakuEvent:
    """A viewer's bullet comment; ``signals`` are the optional account signals (the event's ``user``)."""
    return DanmakuEvent(**_base(room, t, event_id), user_id=user, text=text, user=signals, **extra)


def price_tag(product: str, title: str, price: str, *, category: str = "general", room: str = "r1", t: float = 0,
              event_id: str | None = None, **extra: Any) -> PriceTagEvent:
    return PriceTagEvent(**_base(room, t, event_id), product_id=product, title=title, category=category,
                         price=Decimal(price), **extra)


def on_air(product: str, category: str = "general", *, title: str = "", room: str = "r1", t: float = 0,
           event_id: str | None = None, **extra: Any) -> StreamMetaEvent:
    return StreamMetaEvent(**_base(room, t, event_id),
                           products=[ProductOnAir(product_id=product, title=title, category=category)], **extra)


def meta(*products: str, room: str = "r1", t: float = 0, event_id: str | None = None, **extra: Any) -> StreamMetaEvent:
    """Stream metadata: the products on air (none: unchanged) and any other field (host_kind, ai_label_visible …)."""
    return StreamMetaEvent(**_base(room, t, event_id), products=[ProductOnAir(product_id=p) for p in products],
                           **extra)


def order(product: str, price: str, *, qty: int = 1, room: str = "r1", t: float = 0,
          event_id: str | None = None) -> OrderEvent:
    return OrderEvent(**_base(room, t, event_id), product_id=product, price=Decimal(price), qty=qty)


def wire(event: Any) -> bytes:
    """An event as one wire-format line."""
    return json.dumps(event.model_dump(mode="json"), ensure_ascii=False).encode()
