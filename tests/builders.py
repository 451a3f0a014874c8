"""Small helpers that build events for tests: given events → expected findings/actions."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import count
from pathlib import Path
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


def chat(
    text: str,
    *,
    role: str = "viewer",
    user: str = "u1",
    room: str = "r1",
    t: float = 0,
    event_id: str | None = None,
    **extra: Any,
) -> ChatEvent:
    return ChatEvent(**_base(room, t, event_id), user_id=user, text=text, role=role, **extra)


def danmaku(
    text: str,
    *,
    user: str = "u1",
    room: str = "r1",
    t: float = 0,
    event_id: str | None = None,
    signals: dict[str, Any] | None = None,
    **extra: Any,
) -> DanmakuEvent:
    """A viewer's bullet comment; ``signals`` are the optional account signals (the event's ``user``)."""
    return DanmakuEvent(**_base(room, t, event_id), user_id=user, text=text, user=signals, **extra)


def price_tag(
    product: str,
    title: str,
    price: str,
    *,
    category: str = "general",
    room: str = "r1",
    t: float = 0,
    event_id: str | None = None,
    **extra: Any,
) -> PriceTagEvent:
    return PriceTagEvent(
        **_base(room, t, event_id), product_id=product, title=title, category=category, price=Decimal(price), **extra
    )


def on_air(
    product: str,
    category: str = "general",
    *,
    title: str = "",
    room: str = "r1",
    t: float = 0,
    event_id: str | None = None,
    **extra: Any,
) -> StreamMetaEvent:
    return StreamMetaEvent(
        **_base(room, t, event_id), products=[ProductOnAir(product_id=product, title=title, category=category)], **extra
    )


def meta(*products: str, room: str = "r1", t: float = 0, event_id: str | None = None, **extra: Any) -> StreamMetaEvent:
    """Stream metadata: the products on air (none: unchanged) and any other field (host_kind, ai_label_visible …)."""
    return StreamMetaEvent(**_base(room, t, event_id), products=[ProductOnAir(product_id=p) for p in products], **extra)


def order(
    product: str, price: str, *, qty: int = 1, room: str = "r1", t: float = 0, event_id: str | None = None
) -> OrderEvent:
    return OrderEvent(**_base(room, t, event_id), product_id=product, price=Decimal(price), qty=qty)


def wire(event: Any) -> bytes:
    """An event as one wire-format line."""
    return json.dumps(event.model_dump(mode="json"), ensure_ascii=False).encode()


# -- bot floods: organic comments, a rules copy with the flood rules on ------------------------------

_OPENERS = (
    "今天",
    "刚才",
    "主播",
    "这个",
    "我觉得",
    "话说",
    "弹幕里",
    "昨天",
    "听说",
    "其实",
    "看到",
    "终于",
    "一直",
    "感觉",
    "突然",
)
_MIDDLES = (
    "画面很清楚",
    "声音有点小",
    "背景音乐不错",
    "灯光换了吗",
    "聊得挺开心",
    "讲得很细",
    "节奏刚好",
    "镜头晃了一下",
    "衣服挺好看",
    "口音好可爱",
    "网有点卡",
    "房间布置变了",
    "猫咪出镜了",
    "讲解很耐心",
    "笑点好多",
)
_CLOSERS = ("哈哈", "呀", "吧", "呢", "啊", "嘛", "！", "。", "～", "哦", "捏", "啦", "耶", "…", "嘿嘿")


def organic_comments(
    room: str, start_s: float, end_s: float, every_s: float, *, users: int = 60, seed: int = 0, chat_share: float = 0.3
) -> list[dict[str, Any]]:
    """Ordinary viewers' comments in wire form (dicts), one every ``every_s`` seconds (jittered): varied
    texts from many accounts, ``chat_share`` of them in chat, the rest danmaku. Deterministic per seed."""
    import random

    rng = random.Random(f"{seed}:{room}")
    out, t, i = [], start_s, 0
    while t < end_s:
        text = rng.choice(_OPENERS) + rng.choice(_MIDDLES) + rng.choice(_CLOSERS)
        kind = "chat" if rng.random() < chat_share else "danmaku"
        out.append(
            {
                "kind": kind,
                "event_id": f"{room}-org-{i}",
                "room_id": room,
                "platform": "test",
                "ts": T0 + int(t * 1000),
                "user_id": f"{room}-fan{rng.randrange(users)}",
                "text": text,
                "role": "viewer",
            }
        )
        t += every_s * rng.uniform(0.5, 1.5)
        i += 1
    return out


FLOOD_STATUS = {"campaign": "live", "ring_account": "live", "noncommercial_flood": "shadow"}


def floods_on_rules(src: Path, dst: Path, **settings: Any) -> Path:
    """A copy of the rules in ``src`` at ``dst`` with the bot-flood rules switched on as an evaluation
    does (``scripts/flood_campaigns.floods_on``: campaign and ring-account rules live, the non-commercial
    flood rule shadow) and the detector's ``settings`` overridden; returns ``dst``."""
    import shutil

    import yaml

    shutil.copytree(src, dst)
    path = dst / "floods.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for rule in data["rules"]:
        rule["status"] = FLOOD_STATUS[rule["reports"]]
    data["settings"] = {**(data.get("settings") or {}), **settings}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dst


def flood_story(
    rooms: int = 4,
    campaign_rooms: tuple[int, ...] = (1, 3),
    end_s: float = 370,
    chat_until_s: float = 300,
    campaign_start_s: float = 250,
) -> list[dict[str, Any]]:
    """Rooms with organic comments (one every ~2 s), a fan chant in room 0 (a shadow finding) and, in
    ``campaign_rooms``, a hired campaign: 20 accounts posting one testimonial script twice each over
    110 s from ``campaign_start_s`` (scripts/flood_campaigns.py builds it). Comments before
    ``chat_until_s`` are mixed chat and danmaku, later ones danmaku only. Wire dicts sorted by ts."""
    from scripts.flood_campaigns import CampaignSpec, build_campaign

    events: list[dict[str, Any]] = []
    for r in range(rooms):
        room = f"room-{r}"
        events += organic_comments(room, 0, end_s, 2.0, seed=1)
        if r in campaign_rooms:
            spec = CampaignSpec(
                f"c{r}",
                accounts=20,
                start_ms=T0 + int(campaign_start_s * 1000),
                templates=("真给力，{n}颗就瘦了{x}斤",),
                duration_s=110,
                messages_per_account=2,
                seed=r,
            )
            bots = build_campaign(spec, room_id=room, platform="test").events
            for i, e in enumerate(bots):
                if i % 3 == 0:
                    e["kind"] = "chat"
            events += bots
        if r == 0:
            events += [
                {
                    "kind": "danmaku",
                    "event_id": f"{room}-chant-{i}",
                    "room_id": room,
                    "platform": "test",
                    "ts": T0 + 100_000 + i * 700,
                    "user_id": f"{room}-chanter{i}",
                    "text": "主播唱得太好听了",
                    "role": "viewer",
                }
                for i in range(14)
            ]
    for e in events:
        if e["ts"] >= T0 + chat_until_s * 1000:
            e["kind"] = "danmaku"
    events.sort(key=lambda e: e["ts"])
    return events


def short_sale() -> dict[str, Any]:
    """The shipped shopper-crowd settings with a one-minute sale (answer_s, order_pace_s), so that a sale fits
    the two-minute flood window of the rebuild and Kafka tests."""
    import yaml

    from pipeline.ruleset import DEFAULT_RULES_DIR

    shipped = yaml.safe_load((DEFAULT_RULES_DIR / "floods.yaml").read_text(encoding="utf-8"))["settings"]["crowd"]
    return {**shipped, "answer_s": 60, "order_pace_s": 60}


_CROWD_TEXTS = ("太划算了", "好划算啊", "回购了回购了", "囤货囤货", "这个价格划算", "又来回购了")


def shopper_crowd_story(end_s: float = 330) -> list[dict[str, Any]]:
    """Two rooms whose host says "3、2、1上链接" at 150 s, viewers chatting until ``end_s`` (wire dicts, sorted).
    In "shop" 20 of its viewers answer over a minute while the room buys; in "hire" 20 accounts never seen
    answer over 30 s and fall silent, the room buying a little (brushed orders): with ``short_sale`` spared
    while the orders are not due in full, a campaign when they are (judged on a viewer's comment)."""
    events = []
    for room in ("shop", "hire"):
        events += organic_comments(room, 0, end_s, 1.0, users=40, seed=3)
        events.append(say("3、2、1上链接，拍了的打已拍", room=room, t=150, event_id=f"{room}-prompt"))
    for i in range(40):
        text = _CROWD_TEXTS[i % 6]
        events.append(chat(text, user=f"shop-fan{i % 20}", room="shop", t=155 + i * 1.5, event_id=f"shop-c{i}"))
        events.append(chat(text, user=f"hired{i % 20}", room="hire", t=155 + i * 0.75, event_id=f"hire-c{i}"))
    events += [order("p1", "39.90", room="shop", t=151 + 6 * i, event_id=f"shop-o{i}") for i in range(15)]
    events += [order("p1", "39.90", room="hire", t=152 + 20 * i, event_id=f"hire-o{i}") for i in range(2)]
    wire_dicts = [e if isinstance(e, dict) else e.model_dump(mode="json", exclude_none=True) for e in events]
    return sorted(wire_dicts, key=lambda e: e["ts"])
