"""A built-in simulator: three live rooms, scripted so the demo shows each part of livewatch.

- ``demo-clean``   a tea seller who talks like the rules want: prices shown, no claims; viewers gush
                   ("最好喝了！") — viewer chat is never treated as advertising.
- ``demo-claims``  a snack seller who slips twice (a superlative, a slimming claim): warned, then limited.
- ``demo-escalate`` a "health drink" pitched as a cure, again and again: the ladder climbs to suspension.

The script is fixed (same events, same ids, same timestamps every run), so the demo's output is too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Iterator

from schemas.events import (
    ChatEvent,
    DanmakuEvent,
    EventModel,
    PriceTagEvent,
    ProductOnAir,
    StreamMetaEvent,
    TranscriptEvent,
)

#: 2026-02-01 20:00:00 +08:00, the day the live-commerce measures took effect.
START_MS = 1_769_947_200_000
PLATFORM = "demo"


class _Room:
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.n = 0

    def _base(self, t_s: float) -> dict[str, object]:
        self.n += 1
        return {"event_id": f"{self.room_id}-{self.n:04d}", "room_id": self.room_id, "platform": PLATFORM,
                "ts": START_MS + int(t_s * 1000)}

    def meta(self, t_s: float, product: ProductOnAir, **kw: object) -> StreamMetaEvent:
        return StreamMetaEvent(**self._base(t_s), products=[product], **kw)

    def price(self, t_s: float, product: ProductOnAir, price: str, **kw: object) -> PriceTagEvent:
        return PriceTagEvent(**self._base(t_s), product_id=product.product_id, title=product.title,
                             category=product.category, price=Decimal(price), **kw)

    def say(self, t_s: float, text: str) -> TranscriptEvent:
        ms = int(t_s * 1000)
        return TranscriptEvent(**self._base(t_s), text=text, start_ms=ms, end_ms=ms + 3000)

    def chat(self, t_s: float, user: str, text: str, role: str = "viewer") -> ChatEvent:
        return ChatEvent(**self._base(t_s), user_id=user, text=text, role=role)  # type: ignore[arg-type]

    def danmaku(self, t_s: float, user: str, text: str) -> DanmakuEvent:
        return DanmakuEvent(**self._base(t_s), user_id=user, text=text)


def _clean_room() -> list[EventModel]:
    r = _Room("demo-clean")
    tea = ProductOnAir(product_id="tea-01", title="云南古树普洱茶 357g", category="food")
    return [
        r.meta(0, tea),
        r.price(1, tea, "129.00"),
        r.say(5, "欢迎来到直播间，今天给大家介绍第一个链接，云南的古树普洱。"),
        r.chat(9, "v-101", "主播好！"),
        r.say(20, "这款茶是我们开播第一天就上架的，口感比较醇厚，价格就是屏幕上标的一百二十九元。"),
        r.danmaku(25, "v-102", "最好喝了！上次买的已经喝完了"),
        r.chat(31, "v-103", "有没有小包装的？"),
        r.say(40, "有的，小包装在第二个链接，大家按需购买，不要囤太多。"),
        r.chat(70, "op-1", "购买前请看清商品详情页的规格和价格哦", role="operator"),
        r.say(120, "好的，今天的直播就到这里，谢谢大家。"),
    ]


def _claims_room() -> list[EventModel]:
    r = _Room("demo-claims")
    snack = ProductOnAir(product_id="snack-07", title="魔芋爽代餐零食 20包", category="food")
    return [
        r.meta(0, snack),
        r.price(2, snack, "39.90"),
        r.say(10, "家人们，这款魔芋爽是全网最低价，今天只要三十九块九。"),
        r.chat(14, "v-201", "真的假的"),
        r.say(95, "而且它能减肥，吃了一个月瘦十斤，好多姐妹都在回购。"),
        r.chat(100, "v-202", "已下单"),
        r.say(200, "我们是正规品牌，大家放心购买。"),
    ]


def _escalating_room() -> list[EventModel]:
    r = _Room("demo-escalate")
    drink = ProductOnAir(product_id="drink-3", title="草本养生饮 12瓶装", category="food")
    return [
        r.meta(0, drink),
        r.price(2, drink, "199.00"),
        r.say(15, "这款草本饮品，喝了可以降血压，老人家都说好。"),
        r.say(100, "我跟你们说，长期喝能根治糖尿病，不用再吃药了。"),
        r.chat(110, "op-9", "喝了能抗癌，赶紧下单！", role="operator"),
        r.say(200, "医院治不好的病，喝它就能治愈，无效退款！"),
        r.say(300, "真的能根治高血压，我们已经卖了十万单了。"),
        r.say(400, "还能治疗失眠和关节炎，今天最后一次这个价。"),
        r.say(500, "喝了三个月就把降压药停了，治愈率百分之九十九。"),
    ]


def demo_events() -> list[EventModel]:
    """All rooms' events, interleaved in event-time order (stable for equal times)."""
    events = _clean_room() + _claims_room() + _escalating_room()
    return sorted(events, key=lambda e: e.ts)


def demo_lines() -> Iterator[bytes]:
    """The demo as wire-format JSONL lines."""
    for e in demo_events():
        yield json.dumps(e.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
