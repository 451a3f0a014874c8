"""A built-in simulator: nine live rooms, scripted so the demo shows each part of livewatch.

Three claims rooms (``demo-clean``, ``demo-claims``, ``demo-escalate``), four price-marking and AI-label rooms
(``demo-prices``, ``demo-prices-ok``, ``demo-ai-host``, ``demo-ai-ok``; also written to
``examples/prices_ai_labels.jsonl`` by ``scripts/make_examples.py``) and two bot-flood rooms
(``demo-flood``, ``demo-fans``). The script is fixed (same events, same ids, same timestamps every run), so
the demo's output is too.

What each room does and shows: docs/cli.md ("livewatch demo").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

from schemas.events import (
    BaseEvent,
    ChatEvent,
    DanmakuEvent,
    OrderEvent,
    PriceTagEvent,
    ProductOnAir,
    StreamMetaEvent,
    TranscriptEvent,
    UserSignals,
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
        return {
            "event_id": f"{self.room_id}-{self.n:04d}",
            "room_id": self.room_id,
            "platform": PLATFORM,
            "ts": START_MS + int(t_s * 1000),
        }

    def meta(self, t_s: float, *products: ProductOnAir, **kw: object) -> StreamMetaEvent:
        return StreamMetaEvent(**self._base(t_s), products=list(products), **kw)

    def order(self, t_s: float, product: ProductOnAir, price: str, qty: int = 1) -> OrderEvent:
        return OrderEvent(
            **self._base(t_s),
            order_id=f"{self.room_id}-o{self.n + 1}",
            product_id=product.product_id,
            price=Decimal(price),
            qty=qty,
        )

    def price(self, t_s: float, product: ProductOnAir, price: str, **kw: object) -> PriceTagEvent:
        return PriceTagEvent(
            **self._base(t_s),
            product_id=product.product_id,
            title=product.title,
            category=product.category,
            price=Decimal(price),
            **kw,
        )

    def say(self, t_s: float, text: str) -> TranscriptEvent:
        ms = int(t_s * 1000)
        return TranscriptEvent(**self._base(t_s), text=text, start_ms=ms, end_ms=ms + 3000)

    def chat(self, t_s: float, user: str, text: str, role: str = "viewer") -> ChatEvent:
        return ChatEvent(**self._base(t_s), user_id=user, text=text, role=role)

    def danmaku(self, t_s: float, user: str, text: str, signals: dict[str, object] | None = None) -> DanmakuEvent:
        return DanmakuEvent(
            **self._base(t_s), user_id=user, text=text, user=UserSignals(**signals) if signals else None
        )


def _clean_room() -> list[BaseEvent]:
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


def _claims_room() -> list[BaseEvent]:
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


def _escalating_room() -> list[BaseEvent]:
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


def _prices_room() -> list[BaseEvent]:
    r = _Room("demo-prices")
    scarf = ProductOnAir(product_id="scarf-01", title="羊绒围巾 180cm", category="apparel")
    cup = ProductOnAir(product_id="cup-02", title="限时5折 保温杯 500ml", category="general")
    return [
        r.meta(0, scarf),
        r.price(2, scarf, "159.00"),
        r.say(20, "这款羊绒围巾，一百五十九，喜欢的直接拍。"),
        r.order(40, scarf, "159.00"),
        r.order(45, scarf, "159.00", qty=2),
        r.order(70, scarf, "159.00"),
        # 299 "original" while only 159 was ever charged: 虚构原价
        r.price(120, scarf, "99.00", original_price=Decimal("299.00"), price_basis="前7日最低成交价"),
        r.say(130, "原价两百九十九的围巾，今天直接九十九！"),
        r.danmaku(140, "v-301", "冲冲冲"),
        # 89 said, 99 on the tag
        r.say(150, "家人们，今天到手价只要八十九！"),
        r.order(160, scarf, "99.00"),
        # a second product on air, no price for more than a minute
        r.meta(200, scarf, cup),
        r.say(230, "再看看这个保温杯，保温十二个小时。"),
        r.danmaku(270, "v-302", "杯子多少钱？"),
        # its tag: "5折" of 99 would be 49.50, it asks 69; and the 99 has no basis
        r.price(290, cup, "69.00", original_price=Decimal("99.00")),
        r.say(320, "杯子也是今天的福利价，六十九。"),
        r.meta(400, status="ended"),
    ]


def _prices_ok_room() -> list[BaseEvent]:
    r = _Room("demo-prices-ok")
    box = ProductOnAir(product_id="tea-09", title="普洱茶礼盒 500g", category="food")
    cup = ProductOnAir(product_id="cup-03", title="玻璃茶杯", category="general")
    return [
        r.meta(0, box),
        r.say(10, "今天给大家介绍这款普洱礼盒，价格马上给大家挂上。"),
        r.price(30, box, "199.00"),  # within the 60 s grace
        r.order(60, box, "199.00"),
        r.order(90, box, "199.00"),
        # the original price really was charged, and its basis is shown
        r.price(150, box, "159.00", original_price=Decimal("199.00"), price_basis="前7日最低成交价"),
        r.say(160, "原价一百九十九，今天到手价一百五十九，两件只要三百。"),
        r.say(200, "满三百减三十，用券更划算。"),
        r.say(240, "相当于打八折，大家量力而行。"),  # 8折 of 199 = 159.20 ≥ 159: in the buyer's favour
        r.meta(300, box, cup),
        r.price(320, cup, "59.00", original_price=Decimal("99.00"), price_basis="厂商建议零售价"),
        r.say(330, "茶杯只要五十九，建议零售价九十九。"),
        r.meta(400, status="ended"),
    ]


def _ai_host_room() -> list[BaseEvent]:
    r = _Room("demo-ai-host")
    cream = ProductOnAir(product_id="cream-5", title="保湿面霜 50g", category="cosmetics")
    return [
        r.meta(0, cream, host_kind="human"),  # the platform's metadata is stale: it says human
        r.price(1, cream, "89.00"),
        r.say(3, "大家好，我是本店的AI数字人主播小美，今天给大家介绍保湿面霜。"),
        r.danmaku(9, "v-401", "是真人吗"),
        r.danmaku(16, "v-402", "好像是AI"),  # 13 s after the disclosure, still no label
        r.meta(40, cream, host_kind="human", ai_label_visible=True),
        r.say(100, "这款面霜质地清爽，适合干皮。"),
        r.meta(200, cream, host_kind="human", ai_label_visible=False),  # the label vanishes
        r.danmaku(215, "v-403", "怎么买"),
        r.danmaku(241, "v-404", "下单了"),  # gone for 41 s: longer than the 30 s allowed
        r.meta(260, cream, host_kind="human", ai_label_visible=True),
        r.say(300, "感谢大家，今天的直播就到这里。"),
        r.meta(310, status="ended"),
    ]


def _ai_ok_room() -> list[BaseEvent]:
    r = _Room("demo-ai-ok")
    lamp = ProductOnAir(product_id="lamp-7", title="护眼台灯", category="electronics")
    implicit = '{"AIGC":{"Label":"1","ContentProducer":"demo-vendor","ContentID":"lamp-7-v1"}}'
    return [
        r.meta(0, lamp, host_kind="ai", ai_label_visible=True, aigc_score=0.97, implicit_label=implicit),
        r.price(2, lamp, "129.00"),
        r.say(5, "大家好，我是AI数字人主播，这款护眼台灯今天一百二十九。"),
        r.danmaku(30, "v-501", "AI主播好"),
        r.meta(100, lamp, host_kind="ai", ai_label_visible=False, aigc_score=0.97, implicit_label=implicit),
        r.meta(115, lamp, host_kind="ai", ai_label_visible=True, aigc_score=0.97, implicit_label=implicit),
        r.danmaku(200, "v-502", "台灯亮度可以调吗"),
        r.say(220, "可以的，三档调光。"),
        r.meta(300, status="ended"),
    ]


#: what a hired ring posts: one testimonial script, padded and renumbered so no two messages are equal
_RING_SCRIPTS = (
    "真给力，{n}颗就瘦了{x}斤",
    "姐妹们，真给力{n}颗就瘦了{x}斤！",
    "真給力 {n}顆就瘦了{x}斤[赞]",
    "{n}天成功{m}天破平台期",
    "亲测{n}天成功{m}天破平台期！！",
)
_FAN_NOISE = ("主播好", "晚上好呀", "这个颜色好看", "多少钱", "有没有大码", "发货快吗", "哈哈哈哈", "来了来了")


def _flood_room() -> list[BaseEvent]:
    """A slimming-candy seller whose room is flooded by 14 hired accounts (two days old, five to a device,
    one /24) posting padded variants of two testimonial scripts: a campaign, each account named and muted."""
    r = _Room("demo-flood")
    candy = ProductOnAir(product_id="candy-5", title="酵素果蔬软糖 60粒", category="food")
    events: list[BaseEvent] = [
        r.meta(0, candy),
        r.price(1, candy, "69.00"),
        r.say(5, "今天这款果蔬软糖，口味有三种，大家看屏幕上的价格。"),
    ]
    events += [r.danmaku(10 + i * 4, f"fan-{i % 9}", _FAN_NOISE[i % len(_FAN_NOISE)]) for i in range(40)]
    for i in range(14):
        signals = {"account_age_days": 2, "device_id": f"dev-ring-{i // 5}", "ip": f"203.0.113.{20 + i}"}
        text = _RING_SCRIPTS[i % len(_RING_SCRIPTS)].format(n=i % 3 + 1, m=i % 5 + 5, x=i % 7 + 2)
        events.append(r.danmaku(60 + i * 3, f"ring-{i:02d}", text, signals))
    return events


def _fan_chant_room() -> list[BaseEvent]:
    """A singer's fans chanting one line together: a flood, but not a commercial one — a shadow finding only."""
    r = _Room("demo-fans")
    return [r.danmaku(20 + i * 0.5, f"fan-{i:02d}", "唱得太好听了！" + "！" * (i % 3)) for i in range(30)]


def example_events() -> list[BaseEvent]:
    """The price-marking and AI-label rooms (examples/prices_ai_labels.jsonl), in event-time order."""
    events = _prices_room() + _prices_ok_room() + _ai_host_room() + _ai_ok_room()
    return sorted(events, key=lambda e: e.ts)


def example_lines() -> Iterator[bytes]:
    """The example rooms as wire-format JSONL lines (the content of examples/prices_ai_labels.jsonl)."""
    for e in example_events():
        yield json.dumps(e.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")


def demo_events() -> list[BaseEvent]:
    """All rooms' events, interleaved in event-time order (stable for equal times)."""
    events = _clean_room() + _claims_room() + _escalating_room() + _flood_room() + _fan_chant_room() + example_events()
    return sorted(events, key=lambda e: e.ts)


def demo_lines() -> Iterator[bytes]:
    """The demo as wire-format JSONL lines."""
    for e in demo_events():
        yield json.dumps(e.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
