"""Synthetic bot-comment campaigns (职业弹幕人) to inject into real background traffic.

Shared by ``scripts/eval_floods.py`` and ``scripts/bench_floods.py``. The builders are pure functions of
their arguments: a campaign is a list of wire-format ``danmaku`` event dicts (the format
``convert_bilibili.py`` writes and ``livewatch replay`` reads), built deterministically from a seed
with ``random.Random`` — the same spec and seed give the same events, byte for byte. Two helpers touch
files: ``load_bilibili`` (a real stream as background, via ``convert_bilibili.convert``) and
``floods_on`` (the ruleset with flood rules that ship ``off`` switched on for an evaluation).

Two script families, modelled on real paid-comment cases:

- ``testimonial``: fake customer reports — "真给力，{n}颗就瘦了{x}斤", "吃了{n}周瘦了{x}斤，太神奇了" …
- ``urgency``: pressure to buy now — "快下单，马上涨价了", "最后{n}单了，抢到就是赚到" …

Each message fills the template's numbers at random and adds light variation (punctuation, an emoji or
a Bilibili text emote such as "[赞]", a filler word, now and then a few traditional characters), as hired
accounts do to dodge exact-match filters. Account signals are either bot-like (accounts 0–3 days old,
level 0–1, a device shared by a group of ~5 accounts, every IP in one /24) or organic-looking (old
accounts, real levels, own device, scattered IPs), so an evaluation can measure what the text alone catches.

    from scripts.flood_campaigns import CampaignSpec, build_campaign, inject, load_bilibili
    background = load_bilibili(Path("../shared/data/bilibili_danmaku_2020-12-12.jsonl"))
    spec = CampaignSpec("t50", accounts=50, family="testimonial", start_ms=..., duration_s=60, share=0.7)
    events = inject(background, build_campaign(spec, background))
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import json
import math
import random
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from pipeline.ruleset import Ruleset, load_ruleset  # noqa: E402
from scripts.convert_bilibili import convert  # noqa: E402

Family = Literal["testimonial", "urgency", "mixed", "shoppers"]

#: Script templates from real cases; {n}, {m} are small counts, {x} a weight in 斤.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "testimonial": (
        "真给力，{n}颗就瘦了{x}斤",
        "{n}天成功{m}天破平台期",
        "我喝酒夜宵还瘦了{x}斤，就{n}盒",
        "吃了{n}周瘦了{x}斤，太神奇了",
    ),
    "urgency": (
        "快下单，马上涨价了",
        "最后{n}单了，抢到就是赚到",
        "主播说了今晚之后恢复原价，赶紧拍",
    ),
    # Not a campaign: genuine viewers reacting to a price reveal or a restock — short common phrases with
    # commercial words, typed by many real accounts at once (organic negatives for evaluation).
    "shoppers": (
        "太划算了",
        "好划算啊",
        "回购了回购了",
        "第{n}次回购了",
        "囤货囤货",
        "这个价格划算",
        "又来回购了",
    ),
}

PUNCTUATION = ("", "", "！", "!!", "～", "。", "…", "！！！", "~~")
EMOJI = ("👍", "🔥", "💪", "😍", "❤️", "🎉", "👏", "[赞]", "[666]")
FILLERS = ("真的", "姐妹们", "亲测", "家人们", "绝了", "哈哈", "说实话", "宝子们", "信我")
#: simplified → traditional for characters the templates use (applied now and then, per character)
TRADITIONAL = {
    "给": "給",
    "颗": "顆",
    "单": "單",
    "涨": "漲",
    "价": "價",
    "赶": "趕",
    "紧": "緊",
    "说": "說",
    "复": "復",
    "抢": "搶",
    "赚": "賺",
    "后": "後",
    "台": "臺",
    "还": "還",
    "们": "們",
    "实": "實",
    "亲": "親",
    "测": "測",
}

#: The /24 every bot-like account posts from (TEST-NET-3, RFC 5737: never a real host).
BOT_NET = "203.0.113"
#: accounts per shared device, for bot-like signals
DEVICE_GROUP = 5


@dataclass(frozen=True)
class CampaignSpec:
    """One injected campaign.

    The number of messages is ``messages_per_account`` × ``accounts`` when given; otherwise it is set so
    that the campaign is ``share`` of the room's traffic during [start, start + duration) (bots / (bots +
    background)), but never fewer than one message per account nor more than one per account per
    ``min_gap_s`` on average — so a low ``share`` with many accounts in a quiet room comes out higher
    than asked, a high one with few accounts in a busy room lower; ``achieved_share`` says what it
    was. ``rate`` (messages/s), when given, sets the duration from the message count instead of
    ``duration_s``.
    """

    scenario: str
    accounts: int
    start_ms: int
    family: Family = "testimonial"
    #: script templates to use instead of the family's ({n}, {m}, {x} are filled at random)
    templates: tuple[str, ...] | None = None
    duration_s: float = 60.0
    messages_per_account: int | None = None
    share: float | None = None
    rate: float | None = None
    signals: bool = True
    seed: int = 0
    #: a share is never reached by an account posting more than once per ``min_gap_s`` on average
    min_gap_s: float = 1.0
    kind: Literal["danmaku", "chat"] = "danmaku"
    #: genuine viewers, not bots — a negative example, with organic-looking signals whatever ``signals``
    #: says: a share ``regulars`` of the room's recent commenters, the rest viewers who never commented
    organic: bool = False
    regulars: float = 0.5
    #: share of bot accounts that post one ordinary comment of the room (from the background) first
    warm_up: float = 0.0

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError("accounts must be ≥ 1")
        if self.share is not None and not 0 < self.share < 1:
            raise ValueError("share must be in (0, 1)")
        if self.messages_per_account is None and self.share is None:
            raise ValueError("give messages_per_account or share")
        if self.duration_s <= 0 and self.rate is None:
            raise ValueError("duration_s must be > 0")


@dataclass
class Campaign:
    spec: CampaignSpec
    events: list[dict[str, Any]]
    account_ids: frozenset[str] = field(default_factory=frozenset)
    end_ms: int = 0

    @property
    def event_ids(self) -> frozenset[str]:
        return frozenset(e["event_id"] for e in self.events)

    @property
    def script_events(self) -> list[dict[str, Any]]:
        """The campaign's scripted messages, without the accounts' warm-up comments."""
        return [e for e in self.comments if "-warm-" not in e["event_id"] and "-sat-" not in e["event_id"]]

    @property
    def comments(self) -> list[dict[str, Any]]:
        """Its comments, without the host's prompt and the orders an answering crowd comes with."""
        return [e for e in self.events if e["kind"] in ("chat", "danmaku")]


# -- text ----------------------------------------------------------------------------------------


def _weight(rng: random.Random) -> str:
    x = rng.choice((rng.randint(3, 20), round(rng.uniform(2.0, 15.0), 1)))
    return str(x)


def fill_template(template: str, rng: random.Random) -> str:
    return template.format(n=rng.randint(1, 6), m=rng.randint(3, 14), x=_weight(rng))


def vary(text: str, rng: random.Random) -> str:
    """Light variation as hired accounts apply it: punctuation, emoji, a filler, some traditional chars."""
    if rng.random() < 0.35:
        filler = rng.choice(FILLERS)
        text = f"{filler}{rng.choice(('', '，', ' '))}{text}" if rng.random() < 0.6 else f"{text}，{filler}"
    if rng.random() < 0.3:  # swap the comma for something else
        text = text.replace("，", rng.choice(("，", ",", " ", "！", "")), 1)
    if rng.random() < 0.15:
        text = "".join(TRADITIONAL.get(c, c) if rng.random() < 0.7 else c for c in text)
    text += rng.choice(PUNCTUATION)
    if rng.random() < 0.4:
        text += rng.choice(EMOJI) * rng.choice((1, 1, 2, 3))
    return text


def campaign_text(family: Family, rng: random.Random, templates: Sequence[str] | None = None) -> str:
    """One message of a campaign: a template of the family (or of ``templates``), filled and varied."""
    if templates:
        pool: Sequence[str] = templates
    else:
        pool = TEMPLATES["testimonial"] + TEMPLATES["urgency"] if family == "mixed" else TEMPLATES[family]
    return vary(fill_template(rng.choice(pool), rng), rng)


# -- account signals -----------------------------------------------------------------------------


def bot_signals(scenario: str, i: int, rng: random.Random) -> dict[str, Any]:
    """Signals of a hired account: brand new, level 0–1, a device shared by ~5 accounts, one /24, and
    2–8 rooms worked at once."""
    return {
        "account_age_days": rng.randint(0, 3),
        "level": rng.randint(0, 1),
        "device_id": f"dev-{scenario}-{i // DEVICE_GROUP}",
        "ip": f"{BOT_NET}.{rng.randint(1, 254)}",
        "active_rooms": rng.randint(2, 8),
    }


def organic_signals(key: str, rng: random.Random) -> dict[str, Any]:
    """Signals that look like an ordinary viewer's: an old account, a real level, its own device and IP,
    mostly one room at a time."""
    return {
        "account_age_days": rng.randint(30, 2500),
        "level": rng.randint(3, 40),
        "device_id": f"dev-{key}",
        "ip": f"{rng.randint(11, 199)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        "active_rooms": rng.choice((1, 1, 1, 1, 2, 3)),
    }


def with_organic_signals(events: Iterable[dict[str, Any]], seed: int = 0) -> list[dict[str, Any]]:
    """Copies of background events with stable organic-looking ``user`` signals (one set per user id)."""
    per_user: dict[str, dict[str, Any]] = {}
    out = []
    for e in events:
        uid = e.get("user_id")
        if uid is None:
            out.append(e)
            continue
        if uid not in per_user:
            per_user[uid] = organic_signals(uid, random.Random(f"{seed}:{uid}"))
        out.append({**e, "user": per_user[uid]})
    return out


# -- campaigns -----------------------------------------------------------------------------------


def room_of(background: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """(room_id, platform) of a background stream."""
    if not background:
        raise ValueError("empty background: pass room_id and platform explicitly")
    return background[0]["room_id"], background[0]["platform"]


def count_between(background: Sequence[dict[str, Any]], start_ms: int, end_ms: int) -> int:
    """Background events with start_ms ≤ ts < end_ms (background sorted by ts)."""
    ts = [e["ts"] for e in background] if not isinstance(background, _TsIndex) else background.ts
    return bisect.bisect_left(ts, end_ms) - bisect.bisect_left(ts, start_ms)


class _TsIndex(list):  # type: ignore[type-arg]
    """A background list that remembers its sorted timestamps (for repeated ``count_between``)."""

    def __init__(self, events: Iterable[dict[str, Any]]) -> None:
        super().__init__(events)
        self.ts = [e["ts"] for e in self]


def index(background: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The background as a list that answers ``count_between`` without rebuilding its time index."""
    return _TsIndex(background)


def messages_for_share(share: float, background_count: int) -> int:
    """Bot messages that make ``share`` of (bots + background)."""
    return math.ceil(share / (1 - share) * background_count)


def _per_account(total: int, accounts: int, rng: random.Random) -> list[int]:
    """Split ``total`` messages over accounts, every account at least one, a few posting more."""
    counts = [1] * accounts
    for _ in range(max(0, total - accounts)):
        counts[rng.randrange(accounts)] += 1
    return counts


def build_campaign(
    spec: CampaignSpec,
    background: Sequence[dict[str, Any]] = (),
    room_id: str | None = None,
    platform: str | None = None,
) -> Campaign:
    """The campaign's events (sorted by ts), in the background's room unless room/platform are given."""
    rng = random.Random(f"{spec.seed}:{spec.scenario}")
    if room_id is None or platform is None:
        bg_room, bg_platform = room_of(background)
        room_id, platform = room_id or bg_room, platform or bg_platform

    if spec.messages_per_account is not None:
        counts = [spec.messages_per_account] * spec.accounts
    else:
        assert spec.share is not None
        duration_ms = round(spec.duration_s * 1000)
        bg = count_between(background, spec.start_ms, spec.start_ms + duration_ms)
        cap = spec.accounts * max(1, math.floor(spec.duration_s / spec.min_gap_s))
        total = min(messages_for_share(spec.share, bg), cap)
        counts = _per_account(max(total, spec.accounts), spec.accounts, rng)
    total = sum(counts)
    duration_ms = round(total / spec.rate * 1000) if spec.rate else round(spec.duration_s * 1000)
    duration_ms = max(duration_ms, 1)

    events: list[dict[str, Any]] = []
    accounts: list[str] = []
    # A crowd is the room's own viewers: those who commented in the 10 minutes before, then newcomers.
    regulars = (
        recent_viewers(background, spec.start_ms, 600_000, rng)[: round(spec.accounts * spec.regulars)]
        if spec.organic
        else []
    )
    ordinary = [e["text"] for e in background[:2000] if e.get("text")] if spec.warm_up else []
    for i, n in enumerate(counts):
        if spec.organic:
            user_id = regulars[i] if i < len(regulars) else f"viewer-{spec.scenario}-{i}"
            user = organic_signals(user_id, random.Random(f"{spec.seed}:{user_id}"))  # as with_organic_signals
        else:
            user_id = f"bot-{spec.scenario}-{i}"
            user = bot_signals(spec.scenario, i, rng) if spec.signals else organic_signals(f"{spec.scenario}-{i}", rng)
        accounts.append(user_id)
        times = sorted(spec.start_ms + rng.randrange(duration_ms) for _ in range(n))
        texts = [campaign_text(spec.family, rng, spec.templates) for _ in range(n)]
        if not spec.organic and ordinary and rng.random() < spec.warm_up:
            # a "warmed-up" account: one ordinary comment of the room shortly before its first script
            times.insert(0, max(spec.start_ms, times[0] - rng.randrange(5_000, 120_000)))
            texts.insert(0, rng.choice(ordinary))
        for j, (ts, text) in enumerate(zip(times, texts, strict=True)):
            events.append(
                {
                    "_warm_up": j == 0 and len(times) > n,
                    "kind": spec.kind,
                    "room_id": room_id,
                    "platform": platform,
                    "ts": ts,
                    "user_id": user_id,
                    "text": text,
                    "role": "viewer",
                    "user": user,
                }
            )
    events.sort(key=lambda e: e["ts"])
    for k, e in enumerate(events):
        warm = "warm-" if e.pop("_warm_up") else ""
        e["event_id"] = f"{room_id}-{'viewer' if spec.organic else 'bot'}-{spec.scenario}-{warm}{k}"
    return Campaign(spec=spec, events=events, account_ids=frozenset(accounts), end_ms=spec.start_ms + duration_ms)


#: what a host says to start a sale and ask viewers to answer (real phrasings of Douyin live commerce)
HOST_PROMPTS = ("家人们三二一上链接！", "3、2、1上链接，拍了的打已拍", "想要的扣1，马上开价", "拍了的家人们打个已拍")


def host_prompt(room_id: str, platform: str, ts: int, rng: random.Random, key: str) -> dict[str, Any]:
    """The host's prompt as a transcript segment (ASR of the host's speech) at ``ts``."""
    text = rng.choice(HOST_PROMPTS)
    return {
        "kind": "transcript",
        "event_id": f"{room_id}-prompt-{key}",
        "room_id": room_id,
        "platform": platform,
        "ts": ts,
        "speaker": "host",
        "text": text,
        "start_ms": 0,
        "end_ms": 0,
    }


def orders_between(
    room_id: str, platform: str, start_ms: int, end_ms: int, count: int, rng: random.Random, key: str
) -> list[dict[str, Any]]:
    """``count`` orders of the product on sale, at random times in [start, end) (sorted)."""
    times = sorted(start_ms + rng.randrange(max(1, end_ms - start_ms)) for _ in range(count))
    return [
        {
            "kind": "order",
            "event_id": f"{room_id}-order-{key}-{i}",
            "room_id": room_id,
            "platform": platform,
            "ts": ts,
            "order_id": f"o-{key}-{i}",
            "product_id": "p-sale",
            "price": "39.90",
            "qty": 1,
        }
        for i, ts in enumerate(times)
    ]


#: how often a host repeats the prompt during a sale
PROMPT_EVERY_MS = 120_000


def answering_prompt(
    campaign: Campaign, prompt_lead_ms: int, orders_per_account: float, seed: int, warm_before_ms: int = 0
) -> Campaign:
    """The campaign (or crowd) as an answer to the host: a prompt ``prompt_lead_ms`` before its start (and
    every ``PROMPT_EVERY_MS`` while it lasts), the
    room's orders over its span (``orders_per_account`` × its accounts, from just after the prompt — buyers
    are quicker than typers), and with ``warm_before_ms`` every account posting one ordinary comment up to that
    long before the prompt (a hire that sits in the room first)."""
    spec = campaign.spec
    rng = random.Random(f"{seed}:{spec.scenario}:answer")
    room_id, platform = campaign.events[0]["room_id"], campaign.events[0]["platform"]
    prompt_ts = spec.start_ms - prompt_lead_ms
    # the host keeps asking while the sale lasts ("还没拍的扣1"): a prompt every ``PROMPT_EVERY_MS``
    extra = [
        host_prompt(room_id, platform, ts, rng, f"{spec.scenario}-{k}")
        for k, ts in enumerate(range(prompt_ts, campaign.end_ms, PROMPT_EVERY_MS))
    ]
    n_orders = round(orders_per_account * len(campaign.account_ids))
    extra += orders_between(room_id, platform, prompt_ts + 1000, campaign.end_ms, n_orders, rng, spec.scenario)
    if warm_before_ms:
        first = {}
        for e in campaign.events:
            first.setdefault(e["user_id"], e)
        for k, (_, e) in enumerate(sorted(first.items())):
            ts = prompt_ts - rng.randrange(60_000, max(60_001, warm_before_ms))
            extra.append(
                {
                    **e,
                    "ts": ts,
                    "text": rng.choice(("主播好", "来了来了", "晚上好", "这个怎么样")),
                    "event_id": f"{e['event_id']}-sat-{k}",
                }
            )
    events = sorted(campaign.events + extra, key=lambda e: e["ts"])
    return dataclasses.replace(campaign, events=events)


def recent_viewers(background: Sequence[dict[str, Any]], start_ms: int, span_ms: int, rng: random.Random) -> list[str]:
    """Users who commented in [start − span, start), in random order."""
    seen = sorted({e["user_id"] for e in background if start_ms - span_ms <= e["ts"] < start_ms and "user_id" in e})
    rng.shuffle(seen)
    return seen


def achieved_share(campaign: Campaign, background: Sequence[dict[str, Any]]) -> float:
    """The campaign's real share of the room's messages during its own span."""
    bg = count_between(background, campaign.spec.start_ms, campaign.end_ms)
    bots = len(campaign.comments)
    return bots / (bots + bg) if bots + bg else 0.0


def inject(
    background: Iterable[dict[str, Any]], *campaigns: Campaign | Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Background and campaigns merged by ts (stable: on equal ts, background first, then campaigns in order)."""
    streams: list[Iterable[dict[str, Any]]] = [background]
    streams += [c.events if isinstance(c, Campaign) else c for c in campaigns]
    return list(heapq.merge(*streams, key=lambda e: e["ts"]))


# -- background ----------------------------------------------------------------------------------


def load_bilibili(src: Path, room_id: str | None = None) -> list[dict[str, Any]]:
    """A Bilibili danmaku dump as wire-format events sorted by ts, via ``convert_bilibili.convert``."""
    with tempfile.TemporaryDirectory(prefix="livewatch-floods-") as tmp:
        dst = Path(tmp) / f"{src.stem}.jsonl"
        convert(src, dst, room_id)
        with open(dst, encoding="utf-8") as f:
            return index(json.loads(line) for line in f if line.strip())


def load_livechat_rooms(
    src: Path, rooms: int, seed: int, start_ms: int = 1_767_225_600_000
) -> list[list[dict[str, Any]]]:
    """The ``rooms`` streamers with the most comments in a LiveChat Douyin file as live rooms: their real
    audience comments as chat and the host's real replies as transcript, in file order. LiveChat has no times
    or user ids, so both are made up (seeded): a comment every 1–6 s, the reply 3 s after it, and the author
    an earlier commenter of the room half of the time (regulars), else a newcomer."""
    by_streamer: dict[str, list[dict[str, Any]]] = {}
    with open(src, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                by_streamer.setdefault(row["streamer"], []).append(row)
    top = sorted(by_streamer, key=lambda k: (-len(by_streamer[k]), k))[:rooms]
    out = []
    for streamer in top:
        rng = random.Random(f"{seed}:{streamer}")
        room_id, ts, authors, events = f"douyin-{streamer}", start_ms, [], []
        for i, row in enumerate(by_streamer[streamer]):
            ts += rng.randrange(1000, 6000)
            if authors and rng.random() < 0.5:
                user = rng.choice(authors)
            else:
                user = f"dy-{streamer}-{len(authors)}"
                authors.append(user)
            events.append(
                {
                    "kind": "chat",
                    "event_id": f"{room_id}-c{i}",
                    "room_id": room_id,
                    "platform": "douyin",
                    "ts": ts,
                    "user_id": user,
                    "text": row["comment"][:500],
                    "role": "viewer",
                }
            )
            if row.get("reply"):
                events.append(
                    {
                        "kind": "transcript",
                        "event_id": f"{room_id}-r{i}",
                        "room_id": room_id,
                        "platform": "douyin",
                        "ts": ts + 3000,
                        "speaker": "host",
                        "text": row["reply"][:2000],
                        "start_ms": 0,
                        "end_ms": 0,
                    }
                )
        events.sort(key=lambda e: e["ts"])
        out.append(index(with_organic_signals(events, seed)))
    return out


def busiest_window(background: Sequence[dict[str, Any]], window_s: float) -> int:
    """Start ts (ms) of the ``window_s`` span [t, t + window) with the most background events (ties: earliest)."""
    ts = background.ts if isinstance(background, _TsIndex) else [e["ts"] for e in background]
    if not ts:
        return 0
    width = round(window_s * 1000)
    best_i = max(range(len(ts)), key=lambda i: (bisect.bisect_left(ts, ts[i] + width) - i, -i))
    return ts[best_i]


# -- many rooms: cross-room rings -------------------------------------------------------------------

#: what genuine viewers who hop between rooms type: greetings, and now and then a shopper's phrase
GREETINGS = (
    "主播好",
    "主播好呀",
    "来了来了",
    "晚上好",
    "大家好",
    "刚来",
    "主播辛苦了",
    "有点卡",
    "支持主播",
    "哈哈哈哈",
)
T_ROOMS = 1_769_947_200_000  # 2026-02-01T12:00:00Z: rooms of the many-room scenarios start here


def load_real_texts(data: Path) -> list[str]:
    """Real viewer texts: the Douyin LiveChat audience comments (real Douyin live-room chat), then the
    Bilibili danmaku of the stream of 12-11 — the background of the many-room scenarios."""
    texts: list[str] = []
    douyin = data / "livechat_douyin_dev.jsonl"
    if douyin.exists():
        with open(douyin, encoding="utf-8") as f:
            texts += [json.loads(line)["comment"].strip() for line in f if line.strip()]
    bilibili = data / "bilibili_danmaku_2020-12-11.jsonl"
    if bilibili.exists():
        with open(bilibili, encoding="utf-8") as f:
            texts += [json.loads(line)["text"].strip() for line in f if line.strip()]
    texts = [t for t in texts if t]
    if not texts:
        raise FileNotFoundError(
            f"no real chat in {data} (livechat_douyin_dev.jsonl, bilibili_danmaku_2020-12-11.jsonl)"
        )
    return texts


def _comment(room: str, ts: int, user_id: str, text: str, user: dict[str, Any], event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "kind": "danmaku",
        "room_id": room,
        "platform": "douyin",
        "ts": ts,
        "user_id": user_id,
        "text": text,
        "role": "viewer",
        "user": user,
    }


def room_backgrounds(
    texts: Sequence[str], rooms: int, per_room: int, duration_s: float, seed: int, audience: int = 200
) -> dict[str, list[dict[str, Any]]]:
    """``rooms`` rooms of real viewer chat: each ``per_room`` real texts at random times over ``duration_s``,
    from its own audience of ``audience`` viewers (organic-looking signals), sorted by ts."""
    rng = random.Random(f"rooms:{seed}")
    out = {}
    span = round(duration_s * 1000)
    for r in range(rooms):
        room = f"room-{r:03d}"
        viewers = [f"{room}-v{k}" for k in range(audience)]
        signals = {v: organic_signals(v, random.Random(f"{seed}:{v}")) for v in viewers}
        events = []
        for k in range(per_room):
            v = rng.choice(viewers)
            events.append(
                _comment(room, T_ROOMS + rng.randrange(span), v, rng.choice(texts), signals[v], f"{room}-bg-{k}")
            )
        events.sort(key=lambda e: e["ts"])
        out[room] = events
    return out


@dataclass
class Ring:
    """A cross-room ring: hired accounts each posting one product's scripts in several rooms, and the control
    accounts — genuine viewers who also visit several rooms."""

    events: list[dict[str, Any]]
    ring_accounts: frozenset[str]
    control_accounts: frozenset[str]
    #: room → ring accounts that posted in it
    per_room: dict[str, set[str]]


def build_ring(
    rooms: Sequence[str],
    texts: Sequence[str],
    seed: int,
    accounts: int = 30,
    rooms_each: int = 10,
    messages_per_room: int = 1,
    controls: int = 60,
    control_rooms: int = 6,
    duration_s: float = 3600.0,
    templates: Sequence[str] = TEMPLATES["testimonial"][:2],
) -> Ring:
    """A ring of ``accounts`` hired accounts, each posting ``messages_per_room`` varied messages of one
    product's ``templates`` in ``rooms_each`` rooms (as evenly spread over the rooms as the numbers allow) at
    random times; organic-looking signals except a device shared by each group of ``DEVICE_GROUP`` accounts.
    And ``controls`` genuine viewers visiting ``control_rooms`` rooms each, posting 1–3 greetings or real
    chat per room, and in ~30 % of their rooms a shopper's phrase ("太划算了", "回购了回购了")."""
    rng = random.Random(f"ring:{seed}")
    span = round(duration_s * 1000)
    events: list[dict[str, Any]] = []
    per_room: dict[str, set[str]] = {r: set() for r in rooms}
    load = {r: 0 for r in rooms}
    ring = []
    for i in range(accounts):
        user_id = f"pro-{seed}-{i}"
        ring.append(user_id)
        user = {**organic_signals(user_id, rng), "device_id": f"dev-ring-{seed}-{i // DEVICE_GROUP}"}
        # the least worked rooms first (ties at random): every room gets about the same few ring accounts
        chosen = sorted(rooms, key=lambda r: (load[r], rng.random()))[:rooms_each]
        for room in chosen:
            load[room] += 1
            per_room[room].add(user_id)
            for _ in range(messages_per_room):
                text = campaign_text("testimonial", rng, templates)
                events.append(_comment(room, T_ROOMS + rng.randrange(span), user_id, text, user, ""))
    control = []
    for i in range(controls):
        user_id = f"hopper-{seed}-{i}"
        control.append(user_id)
        user = organic_signals(user_id, rng)
        for room in rng.sample(list(rooms), control_rooms):
            for _ in range(rng.randint(1, 3)):
                text = rng.choice(GREETINGS) if rng.random() < 0.6 else rng.choice(texts)
                events.append(_comment(room, T_ROOMS + rng.randrange(span), user_id, text, user, ""))
            if rng.random() < 0.3:
                text = fill_template(rng.choice(TEMPLATES["shoppers"]), rng)
                events.append(_comment(room, T_ROOMS + rng.randrange(span), user_id, text, user, ""))
    events.sort(key=lambda e: (e["ts"], e["room_id"], e["user_id"]))
    for k, e in enumerate(events):
        e["event_id"] = f"{e['room_id']}-{e['user_id']}-{k}"
    return Ring(events, frozenset(ring), frozenset(control), per_room)


def shared_flood_rooms(
    texts: Sequence[str], seed: int, rooms: int = 10, pool: int = 60, accounts: int = 25, per_room: int = 600
) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """``rooms`` rooms of real chat, each flooded within its 10 minutes by ``accounts`` hired accounts drawn
    from one ``pool`` (so most hired accounts work several rooms), 70 % of the traffic, bot-like signals: the
    events merged by ts, and the hired accounts."""
    rng = random.Random(f"shared:{seed}")
    backgrounds = room_backgrounds(texts, rooms, per_room, 600.0, seed)
    hired = [f"hired-{seed}-{i}" for i in range(pool)]
    signals = {a: bot_signals(f"shared-{seed}", i, random.Random(f"{seed}:{a}")) for i, a in enumerate(hired)}
    streams: list[list[dict[str, Any]]] = []
    for r, (room, background) in enumerate(backgrounds.items()):
        chosen = rng.sample(hired, accounts)
        start = T_ROOMS + 60_000 + r * 5_000
        flood = []
        for k in range(messages_for_share(0.7, per_room // 10)):
            user_id = chosen[k % accounts]
            ts = start + rng.randrange(60_000)
            flood.append(
                _comment(room, ts, user_id, campaign_text("testimonial", rng), signals[user_id], f"{room}-hired-{k}")
            )
        flood.sort(key=lambda e: e["ts"])
        streams.append(list(heapq.merge(background, flood, key=lambda e: e["ts"])))
    return list(heapq.merge(*streams, key=lambda e: e["ts"])), frozenset(hired)


# -- rules ---------------------------------------------------------------------------------------

DETECTOR = "bot_flood"
#: the status a flood rule shipped ``off`` gets for an evaluation, by what it reports
EVAL_STATUS = {"campaign": "live", "ring_account": "live", "noncommercial_flood": "shadow"}


def floods_on(rules_dir: Path | str | None = None, as_shipped: bool = False) -> tuple[Ruleset, dict[str, str]]:
    """The ruleset with the bot-flood rules that ship ``off`` switched on for evaluation — campaign and
    ring-account rules ``live``, the non-commercial flood rule ``shadow`` (as its description says) — and
    the statuses changed, {rule id: status}. Rules already ``live`` or ``shadow`` are left alone; with
    ``as_shipped`` nothing is changed. Uses ``Ruleset.build`` where the ruleset has it; otherwise loads a
    temporary copy of the rules directory with the statuses edited."""
    ruleset = load_ruleset(rules_dir)
    if as_shipped:
        return ruleset, {}
    configured = getattr(ruleset, "configured", None)
    if configured is not None and hasattr(ruleset, "build"):
        if DETECTOR not in configured:
            return ruleset, {}
        rules = configured[DETECTOR].all_rules
        changes = {r.id: EVAL_STATUS.get(getattr(r, "reports", ""), "live") for r in rules if r.status == "off"}
        if not changes:
            return ruleset, {}
        detector = ruleset.build(DETECTOR, changes)
        others = tuple(d for d in ruleset.detectors if d.name != DETECTOR)
        return dataclasses.replace(ruleset, detectors=others + (detector,)), changes
    return _floods_on_by_copy(ruleset.directory)


def _floods_on_by_copy(rules_dir: Path) -> tuple[Ruleset, dict[str, str]]:
    changes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="livewatch-rules-") as tmp:
        dst = Path(tmp) / "rules"
        shutil.copytree(rules_dir, dst)
        for path in sorted(dst.glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("detector") != DETECTOR:
                continue
            for rule in data.get("rules") or []:
                # YAML 1.1 reads a bare ``off`` as false
                if isinstance(rule, dict) and rule.get("status") in ("off", False):
                    rule["status"] = changes[rule["id"]] = EVAL_STATUS.get(rule.get("reports", ""), "live")
            path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return load_ruleset(dst), changes  # everything is read at load: the copy can go


def write_jsonl(events: Iterable[dict[str, Any]], dst: Path) -> int:
    """Write events as a recording ``livewatch replay`` reads."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(dst, "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """Write a background stream with one campaign injected, for ``livewatch replay``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("src", type=Path, help="a Bilibili dump, e.g. ../shared/data/bilibili_danmaku_2020-12-12.jsonl")
    ap.add_argument("dst", type=Path)
    ap.add_argument("--accounts", type=int, default=50)
    ap.add_argument("--family", choices=("testimonial", "urgency", "mixed"), default="testimonial")
    ap.add_argument("--share", type=float, default=0.7)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of event time")
    ap.add_argument("--no-signals", action="store_true", help="organic-looking account signals")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    background = load_bilibili(args.src)
    start = busiest_window(background, args.duration)
    spec = CampaignSpec(
        "cli",
        accounts=args.accounts,
        start_ms=start,
        family=args.family,
        duration_s=args.duration,
        share=args.share,
        signals=not args.no_signals,
        seed=args.seed,
    )
    campaign = build_campaign(spec, background)
    n = write_jsonl(inject(background, campaign), args.dst)
    print(
        f"wrote {n:,} events to {args.dst}: {len(campaign.events)} campaign messages from {spec.accounts} "
        f"accounts at ts {start} (share {achieved_share(campaign, background):.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
