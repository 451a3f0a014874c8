"""Bot-comment flood detector (职业弹幕人): many accounts posting commercial scripts in one room.

Per room, viewer comments are clustered into scripts (numbers masked; near-duplicate commercial texts merged
by MinHash LSH and an exact Jaccard/containment check). The commercial scripts posted by several accounts
form a pool; it is a campaign when enough accounts post it and either the traffic thresholds or the
account-signal model fire: a room finding per campaign period, one per account (muted by the account
ladder), a shadow finding for a non-commercial chant. A pool of shoppers answering the host's prompt while the
room buys is spared the traffic thresholds (``settings.crowd``: the host's transcript and the room's orders are
read for it). State is not durable: it depends only on the last ``history_ms`` of input and is bounded.

Reasons, settings and figures: docs/floods.md.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, RuleContext
from detectors.comment_window import CommentWindow, CommentWindowField
from detectors.normalize import NormalizedText, Term, mask_digits, normalize, words_regex
from schemas.events import BaseEvent, ChatEvent, DanmakuEvent, OrderEvent, TranscriptEvent, is_viewer_comment
from schemas.findings import Evidence, Finding, Subject
from schemas.rules import Rule

_NUMBER = re.compile(r"\d+(?:\.\d+)?")

# MinHash: 32 universal hashes (a·x + b) mod p over CRC-32 values of the bigrams; fixed seeds so that
# signatures are the same in every process. 16 bands of 2 rows: pairs with Jaccard 0.5 meet in some band
# with probability 0.99, pairs at 0.2 with 0.49 (then rejected by the exact check).
_HASHES, _ROWS = 32, 2
_PRIME = np.uint64((1 << 31) - 1)
_A, _B = np.random.default_rng(20261126).integers(1, (1 << 31) - 1, size=(2, _HASHES), dtype=np.uint64)


@lru_cache(maxsize=1 << 16)  # a pure function of the text: cached (most lookups compare recent scripts)
def bigrams(text: str) -> frozenset[str]:
    """Character bigrams (the text itself when shorter than two characters)."""
    return frozenset({text[i : i + 2] for i in range(len(text) - 1)} or {text})


def minhash(grams: Iterable[str]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    x = np.fromiter((zlib.crc32(g.encode("utf-8")) for g in grams), dtype=np.uint64)
    signature: np.ndarray[Any, np.dtype[np.uint64]] = ((np.outer(x, _A) + _B) % _PRIME).min(axis=0)
    return signature


@lru_cache(maxsize=1 << 14)
def band_keys(text: str) -> tuple[int, ...]:
    """The LSH band keys of a text: per band, its two 31-bit MinHash values and the band's number."""
    sig = minhash(bigrams(text))
    pairs = (sig[0::_ROWS] << np.uint64(31)) | sig[1::_ROWS]
    return tuple(v * 16 + i for i, v in enumerate(pairs.tolist()))


def similarity(a: frozenset[str], b: frozenset[str]) -> tuple[float, float]:
    """(Jaccard, containment) of two bigram sets."""
    shared = len(a & b)
    return shared / (len(a) + len(b) - shared), shared / min(len(a), len(b))


# -- rules and settings --------------------------------------------------------------------------


class FloodExamples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    commercial: list[str] = Field(default_factory=list)
    not_commercial: list[str] = Field(default_factory=list)


class FloodRule(Rule):
    #: what the rule reports: a commercial campaign (room), its accounts, or a non-commercial flood
    reports: str = Field(pattern="^(campaign|ring_account|noncommercial_flood)$")
    #: cue words that make a script commercial (testimonial, urgency, efficacy), normalised at load
    cues: list[str] = Field(default_factory=list)
    examples: FloodExamples = Field(default_factory=FloodExamples)


#: features of a pool the model reads (all in [0, 1] or small logs, so weights are comparable)
FEATURES = (
    "log_accounts",
    "share",
    "recent_share",
    "log_burst",
    "new_accounts",
    "shared_device",
    "shared_ip_prefix",
    "contradicting_numbers",
    "multi_room",
)


class CampaignModel(BaseModel):
    """A logistic model over pool features: campaign when σ(intercept + Σ wᵢ·xᵢ) ≥ threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intercept: float
    weights: dict[str, float]
    threshold: float = Field(0.5, gt=0, lt=1)
    #: False: a campaign when the hand thresholds *or* the model say so; True: the model alone decides
    alone: bool = False
    trained: str = Field("", description="how and on what it was trained (scripts/train_floods.py writes it)")

    def model_post_init(self, _: object) -> None:
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {list(FEATURES)}")

    def probability(self, features: dict[str, float]) -> float:
        z = self.intercept + sum(w * features[name] for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


class CrowdSettings(BaseModel):
    """When a commercial pool reads as the room's shoppers answering the host rather than a hire: the host
    asked for it, the room has been buying since it asked, and some of the pool also talked in the room
    before its script. A hire can be told what to type and when; buying costs money in proportion to its
    accounts, and taking part in the room's conversation costs an account's time there — so all three are
    required, and the account-signal model still decides alone. Every signal is read from the window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: words in the host's speech (transcript) or a host/operator comment that ask viewers to type or buy
    prompt_cues: list[str] = Field(min_length=1)
    answer_s: int = Field(180, ge=1, description="a message within this long after a prompt answers it")
    min_answering: float = Field(0.8, ge=0, le=1, description="share of the pool's messages that answer a prompt")
    min_orders_per_account: float = Field(
        0.1, ge=0, description="the room's orders since the sale's first prompt per pool account, once due in full"
    )
    grace_s: int = Field(
        30, ge=0, description="this soon after the prompt, answering it spares a pool: too soon to read the rest"
    )
    order_pace_s: int = Field(
        300, ge=1, description="… due in proportion over this long after the prompt (whole orders: none at first)"
    )
    min_present_before: float = Field(
        0.3,
        ge=0,
        le=1,
        description="share of pool accounts with an ordinary comment in the window before one of their scripts",
    )
    present_lead_s: int = Field(30, ge=0, description="… at least this long before it")
    max_viewers: int = Field(20_000, ge=10, description="viewers remembered (the buckets they commented in)")


class FloodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: int = Field(600, ge=10, description="sliding event-time window for scripts, accounts, traffic")
    bucket_s: int = Field(10, ge=1)
    recent_s: int = Field(60, ge=1, description="the short window of recent_share and of the burst")
    min_accounts: int = Field(8, ge=2, description="distinct accounts in the pool within the window")
    min_script_accounts: int = Field(2, ge=1, description="a script joins the pool with this many accounts")
    min_share: float = Field(0.05, ge=0, le=1, description="pool messages / room messages over the pool's span")
    min_recent_share: float = Field(0.10, ge=0, le=1, description="… or over the last recent_s")
    burst_factor: float = Field(3.0, ge=1, description="… or room traffic over recent_s ≥ this × its earlier rate")
    hold_factor: float = Field(
        0.5, gt=0, le=1, description="an ongoing campaign's shares may fall to this × the thresholds"
    )
    model: CampaignModel | None = Field(None, description="a campaign also when this model on signals says so")
    min_jaccard: float = Field(0.5, gt=0, le=1)
    min_containment: float = Field(0.8, gt=0, le=1)
    min_template_chars: int = Field(4, ge=1, description='shorter texts ("666", "?") are not clustered')
    fillers: list[Term] = Field(
        default_factory=list, description="padding words (家人们, 信我) left out when a commercial text is matched"
    )
    new_account_days: int = Field(7, ge=0)
    shared_device_accounts: int = Field(3, ge=2, description="a device used by this many pool accounts")
    shared_ip_accounts: int = Field(5, ge=2, description="an IP prefix (/24, /64) used by this many")
    multi_room_accounts: int = Field(3, ge=2, description="an account active in this many rooms at once")
    max_scripts: int = Field(2000, ge=10, description="scripts kept; and as many ordinary texts posted once")
    max_accounts: int = Field(5000, ge=10)
    max_examples: int = Field(5, ge=1)
    max_seen_ids: int = Field(
        5000, ge=1, description="comment ids remembered (within window_s) to recognise a re-delivered comment"
    )
    judge_every_ms: int = Field(1000, ge=0)
    report_every_s: int = Field(600, ge=1, description="re-report an active campaign/script at most this often")
    account_report_every_s: int = Field(3600, ge=1, description="name an account at most once per period")
    crowd: CrowdSettings | None = Field(None, description="spare shoppers answering the host (see CrowdSettings)")


# -- state ---------------------------------------------------------------------------------------


# The records a room's window holds are plain slotted dataclasses: a comment creates or updates one, and
# pydantic's per-attribute validation and construction cost ≈ 6 % of a replay there. FloodState (a model)
# still validates and serialises them.
@dataclass(slots=True)
class Script:
    text: str  # the latest message's masked, normalised text (a commercial cluster's key is its first one)
    raw_example: str  # the latest message's raw text (its event is examples[-1])
    commercial: bool
    last_ts: int
    accounts: OrderedDict[str, int] = field(default_factory=OrderedDict)  # user → last ts, oldest first
    buckets: dict[int, int] = field(default_factory=dict)  # bucket start → messages
    examples: list[tuple[int, str]] = field(default_factory=list)  # (ts, event id) of the latest messages
    reported_ts: int | None = None

    def accounts_after(self, horizon: int) -> int:
        """Its accounts with a message after ``horizon`` (older ones stay until its next message prunes them)."""
        return sum(t > horizon for t in self.accounts.values())


@dataclass(slots=True)
class Account:
    """What the pool's signals need of an account that posted a commercial script."""

    last_ts: int
    # The signals of the account's latest message that carried any, and that message's time: they count while it
    # is in the window (``known``), as everything else here — a rebuild reads the window, not the account's past.
    signals_ts: int | None = None
    new: bool = False
    multi_room: bool = False
    device: str | None = None
    ip_prefix: str | None = None
    # script → the numbers claimed in it (each "|"-joined) → when last claimed (event time); the latest 3 per script,
    # in the 5 scripts last claimed in
    numbers: dict[str, dict[str, int]] = field(default_factory=dict)
    reported_period: int | None = None

    def known(self, horizon: int) -> bool:
        """Whether the account's signals came with a message after ``horizon``."""
        return self.signals_ts is not None and self.signals_ts > horizon

    def contradicts(self, horizon: int) -> bool:
        """Whether the account claimed different numbers in one script after ``horizon``."""
        return any(sum(t > horizon for t in claimed.values()) > 1 for claimed in self.numbers.values())

    def claimed_in(self, horizon: int) -> list[str]:
        """The scripts the account claimed numbers in after ``horizon``, most recently claimed in first."""
        last = {key: max(claimed.values()) for key, claimed in self.numbers.items()}
        return sorted((key for key, ts in last.items() if ts > horizon), key=lambda key: (-last[key], key))


@dataclass(slots=True)
class Verdict:
    ts: int
    campaign: bool
    features: dict[str, float] = field(default_factory=dict)
    accounts: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    signals: list[str] = field(default_factory=list)
    score: float = 0.0
    reported_period: int | None = None


class PostedOnce(NamedTuple):
    """An ordinary text's one message so far."""

    ts: int
    user: str
    event_id: str
    raw: str  # its raw words (cut to 200 characters, as a script's example)


# The maps kept in recency order are OrderedDicts: a plain dict whose oldest entries are deleted again and
# again keeps their holes at its front, and finding its first entry scans them (≈ 5 µs at 3,000 scripts).
class FloodState(BaseModel):
    scripts: OrderedDict[str, Script] = Field(default_factory=OrderedDict)  # key: first text; least recent first
    # the keys of the commercial scripts, in the same order: a pool is judged at every commercial message, and
    # a room's scripts are mostly chants and chatter (scanning all of them was ≈ 0.3 ms per judgement)
    commercial: OrderedDict[str, None] = Field(default_factory=OrderedDict)
    aliases: OrderedDict[str, str] = Field(default_factory=OrderedDict)  # a masked text seen → its script key
    band_index: dict[int, list[str]] = Field(default_factory=dict)  # LSH band key → script keys
    accounts: OrderedDict[str, Account] = Field(default_factory=OrderedDict)  # commercial posters, oldest first
    verdict: Verdict | None = None  # the last judgement of the pool
    # What every comment updates: the comment ids seen, the room's messages per bucket and, per viewer, the buckets
    # it commented in (1: an ordinary comment, 2: commercial; for sparing shopper crowds). Compiled when built.
    window: CommentWindowField = Field(default_factory=CommentWindow)
    # For sparing shopper crowds (settings.crowd), like the rest a function of the last history_ms of input:
    # the host's prompts (kept answer_s longer than the window: the window's first messages may answer one) and
    # the room's orders.
    prompts: list[int] = Field(default_factory=list)  # ts of the host's prompts, oldest first
    orders: dict[int, int] = Field(default_factory=dict)  # bucket start → orders
    # Ordinary (not commercial) texts posted once so far, oldest first: masked text → its message. Most of a
    # room's chatter is never repeated (90 % of the scripts the bench input's window dropped had one message),
    # and a Script per text cost a third of the detector and most of a room's memory; a second message makes
    # the text a Script, as it would have been after its first. Bounded like the scripts, by window and count.
    once: OrderedDict[str, PostedOnce] = Field(default_factory=OrderedDict)


# -- the detector --------------------------------------------------------------------------------


class BotFloodDetector(Detector[FloodRule, FloodSettings, FloodState]):
    name: ClassVar[str] = "bot_flood"
    # transcript and orders only feed the shopper-crowd signals (settings.crowd): the host's prompts, the buying
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "danmaku", "transcript", "order"})
    durable_state: ClassVar[bool] = False  # a sliding window: kept in memory, rebuilt from the input

    def __init__(self, settings: FloodSettings, rules: Sequence[FloodRule], context: RuleContext) -> None:
        super().__init__(settings, rules, context)
        crowd = settings.crowd
        # a prompt answered by the window's first messages is up to answer_s older than the window; and a judgement
        # made at a judge_every_ms slot's first message holds for the rest of the slot, with the window read then
        self.history_ms = (settings.window_s + (crowd.answer_s if crowd else 0)) * 1000 + settings.judge_every_ms
        # a campaign, chant or account is reported once per period (its id holds the period)
        self.report_memory_ms = max(settings.report_every_s, settings.account_report_every_s) * 1000
        self._by_report = {r.reports: r for r in self.rules}
        self._cue_rx = words_regex(c for r in self.rules for c in r.cues)  # one C-speed search per comment
        self._filler_rx = words_regex(settings.fillers)
        self._prompt_rx = words_regex(normalize(c).text for c in crowd.prompt_cues) if crowd else None
        # settings in the units the per-comment upkeep compares (a comment reads them a dozen times)
        self._window_ms = settings.window_s * 1000
        self._bucket_ms = settings.bucket_s * 1000
        self._max_viewers = crowd.max_viewers if crowd else 0
        self._max_seen_ids = settings.max_seen_ids

    def detect(self, event: BaseEvent, text: NormalizedText | None, state: FloodState) -> list[Finding]:
        if not is_viewer_comment(event):
            if self._prompt_rx is not None:  # the host's prompts and the room's orders feed the crowd signals
                self._room_context(event, text, state)
            return []
        if text is None:
            return []
        s = self.settings
        masked = mask_digits(text.text)
        clustered = len(masked) >= s.min_template_chars  # shorter texts ("666", "?") are counted, not clustered
        # Only commercial texts are matched to near-duplicates (MinHash LSH): a paid script is varied to dodge
        # filters, a fan chant need not be, and most of a room's comments are neither — they cost one lookup.
        commercial = clustered and self.is_commercial(text.text)
        # the comment counted in the room's traffic and of its viewer (for sparing shopper crowds: max_viewers is 0
        # without them), in one compiled call: None when it was delivered before
        bucket = state.window.take(
            event.event_id,
            event.user_id,
            event.ts,
            self._bucket_ms,
            self._window_ms,
            self._max_seen_ids,
            commercial,
            self._max_viewers,
        )
        if bucket is None:
            return []  # re-delivered: counted once, as the other detectors apply an event id once
        if not clustered:
            return self._judge_pending(state, event)
        # A script whose last message left the window is gone before any look-up: a rebuild, which reads only
        # the window, never saw it, and one taken up again here would carry its old messages into a report.
        horizon = event.ts - self._window_ms
        self._drop_expired(state, horizon)
        while True:
            key = self._script_key(state, self._unpadded(masked)) if commercial else masked
            script = state.scripts.get(key)
            if script is None or script.last_ts > horizon:
                break
            self._drop_script(state, key)  # behind a later-delivered script, so not dropped above
        if script is None and not commercial:
            first = self._posted_once(state, key, event, text.raw)
            if first is None:  # one account and one message: no chant to judge yet
                return self._judge_pending(state, event)
            script = self._script_of_once(state, key, first)
        if script is None:
            script = Script(masked, text.raw[:200], commercial, event.ts)
            self._add_script(state, key, script)
        else:
            state.scripts.move_to_end(key)  # most recent last
            if script.commercial:
                state.commercial.move_to_end(key)
        self._observe(state, key, script, event, text.text, bucket)
        # the latest message's words, as with the example ids: the first ones of a script older than the
        # window are unknown to a rebuild (a worker restarted mid-chant quoted another spelling than the replay,
        # and a commercial report the template its cluster was first written in)
        script.raw_example = text.raw[:200]
        script.text = masked
        if script.commercial:
            return self._judge_pool(state, event, key)
        return self._judge_chant(state, event, script) + self._judge_pending(state, event)

    def _judge_pending(self, state: FloodState, event: ChatEvent | DanmakuEvent) -> list[Finding]:
        """Judge again, on the room's other comments too, a pool spared as a shopper crowd while its orders were
        not yet due in full (once per judge_every_ms slot of event time): a hire answering a prompt in a burst and then
        falling silent is otherwise never judged once it turns out that nobody bought."""
        verdict = state.verdict
        if verdict is None or not verdict.features.get("orders_pending"):
            return []
        if self._same_slot(event.ts, verdict.ts):
            return []
        return self._judge_pool(state, event, None)

    def _same_slot(self, ts: int, judged_ts: int) -> bool:
        """Whether ``ts`` falls in the judge_every_ms slot of the last judgement: the pool is judged again in the
        next slot. Slots of event time, not judge_every_ms after the last judgement: when a chain of judgements
        began is older than a rebuild's history, and a worker taking over judged at other moments than the replay."""
        every = self.settings.judge_every_ms
        return every > 0 and ts // every == judged_ts // every

    def _room_context(self, event: BaseEvent, text: NormalizedText | None, state: FloodState) -> None:
        """Record what the shopper-crowd signals read of an event that is not a viewer's comment: a host
        prompt, an order."""
        crowd = self.settings.crowd
        assert crowd is not None and self._prompt_rx is not None
        horizon = event.ts - self.settings.window_s * 1000
        if type(event) is OrderEvent:  # not isinstance: ABCMeta's check costs ≈ 0.07 µs when it misses
            if self._first_delivery(state, event):
                bucket = event.ts // (self.settings.bucket_s * 1000) * self.settings.bucket_s * 1000
                if bucket not in state.orders:
                    for b in [b for b in state.orders if b <= horizon]:
                        del state.orders[b]
                    state.orders[bucket] = 0
                state.orders[bucket] += 1
            return
        spoken = type(event) is TranscriptEvent and event.speaker == "host"
        hosted = not spoken and isinstance(event, (ChatEvent, DanmakuEvent))  # the host's, a moderator's
        if (spoken or hosted) and text is not None and self._prompt_rx.search(text.text) is not None:
            if event.ts not in state.prompts and self._first_delivery(state, event):
                state.prompts.append(event.ts)
                state.prompts.sort()
            while state.prompts and state.prompts[0] <= horizon - crowd.answer_s * 1000:  # answered in the window
                del state.prompts[0]
            del state.prompts[:-50]  # bounded: a host repeating "扣1" all evening keeps the latest 50

    def _first_delivery(self, state: FloodState, event: BaseEvent) -> bool:
        """Remember the comment's id; False when it was seen already. Every comment moves the room's traffic,
        a script's accounts and examples, so a second copy (a producer's retried send, an upstream repeat)
        would count twice. Bounded like the rest of the window: the oldest ids are forgotten once older than
        window_s or beyond max_seen_ids, so a rebuild, which reads the window, remembers what the replay does.
        (``detect`` asks the window itself: a viewer's comment is the hot path.)"""
        return state.window.first_delivery(event.event_id, event.ts, self._window_ms, self._max_seen_ids)

    def is_commercial(self, normalized: str) -> bool:
        return self._cue_rx.search(normalized) is not None

    # -- clustering ----------------------------------------------------------------------------

    def _unpadded(self, masked: str) -> str:
        """The text without its padding words (when enough is left): "囤货囤货信我" and "家人们囤货囤货" are one
        script, which bigram similarity alone misses in a text this short."""
        bare = self._filler_rx.sub("", masked)
        return bare if len(bare) >= self.settings.min_template_chars else masked

    def _script_key(self, state: FloodState, masked: str) -> str:
        """The key of the script this text belongs to: a known alias, a near-duplicate's, or its own."""
        key = state.aliases.get(masked)
        if key is not None and key in state.scripts:
            return key
        grams = bigrams(masked)
        best, best_sim = masked, 0.0
        seen: set[str] = set()
        for band in band_keys(masked):
            for other in state.band_index.get(band, ()):
                if other in seen:
                    continue
                seen.add(other)
                jaccard, containment = similarity(grams, bigrams(other))
                if (
                    jaccard >= self.settings.min_jaccard or containment >= self.settings.min_containment
                ) and jaccard > best_sim:
                    best, best_sim = other, jaccard
        if best != masked:
            if len(state.aliases) >= 2 * self.settings.max_scripts:
                state.aliases.popitem(last=False)
            state.aliases[masked] = best
        return best

    def _add_script(self, state: FloodState, key: str, script: Script) -> None:
        scripts = state.scripts
        while len(scripts) >= self.settings.max_scripts:
            self._drop_script(state, next(iter(scripts)))
        scripts[key] = script
        if script.commercial:
            state.commercial[key] = None
            for band in band_keys(key):
                state.band_index.setdefault(band, []).append(key)

    def _posted_once(self, state: FloodState, key: str, event: ChatEvent | DanmakuEvent, raw: str) -> PostedOnce | None:
        """The text's one earlier message in the window, taken out of ``state.once``; None when it has none, and then
        this message is remembered as its first (the oldest forgotten beyond max_scripts or out of the window)."""
        once, ts = state.once, event.ts
        horizon = ts - self._window_ms
        first = once.pop(key, None)
        if first is not None and first.ts > horizon:
            return first
        while once and (len(once) >= self.settings.max_scripts or next(iter(once.values())).ts <= horizon):
            once.popitem(last=False)
        once[key] = PostedOnce(ts, event.user_id, event.event_id, raw[:200])
        return None

    def _script_of_once(self, state: FloodState, key: str, first: PostedOnce) -> Script:
        """The script of a text posted once before, holding that message as ``_observe`` would have left it."""
        bucket = first.ts // self._bucket_ms * self._bucket_ms
        script = Script(
            key,
            first.raw,
            False,
            first.ts,
            accounts=OrderedDict([(first.user, first.ts)]),
            buckets={bucket: 1},
            examples=[(first.ts, first.event_id)],
        )
        self._add_script(state, key, script)
        return script

    def _drop_expired(self, state: FloodState, horizon: int) -> None:
        """Drop the least recently posted scripts while their last message is at ``horizon`` or before."""
        scripts = state.scripts
        while scripts and next(iter(scripts.values())).last_ts <= horizon:
            self._drop_script(state, next(iter(scripts)))

    def _drop_script(self, state: FloodState, key: str) -> None:
        if not state.scripts.pop(key).commercial:
            return
        del state.commercial[key]
        for band in band_keys(key):
            keys = state.band_index.get(band, [])
            if key in keys:
                keys.remove(key)
            if not keys:
                state.band_index.pop(band, None)
        # aliases pointing at a dropped script are ignored on lookup and age out of the capped table

    # -- state upkeep --------------------------------------------------------------------------

    def _observe(
        self, state: FloodState, key: str, script: Script, event: ChatEvent | DanmakuEvent, normalized: str, bucket: int
    ) -> None:
        s = self.settings
        user, ts = event.user_id, event.ts
        horizon = ts - self._window_ms
        if ts > script.last_ts:
            script.last_ts = ts
        accounts = script.accounts
        accounts[user] = ts
        accounts.move_to_end(user)  # order = recency: the oldest account comes first
        while accounts and (len(accounts) > s.max_accounts or next(iter(accounts.values())) <= horizon):
            accounts.popitem(last=False)
        buckets = script.buckets
        n = buckets.get(bucket)
        if n is None:  # buckets only expire when a new one starts: prune then, not per message
            for b in [b for b in buckets if b <= horizon]:
                del buckets[b]
            n = 0
        buckets[bucket] = n + 1
        # the latest messages, not the first: a script older than the window keeps examples a rebuild (which
        # reads only the window) could not know, and a worker restarted mid-flood reported other ones
        script.examples.append((ts, event.event_id))
        del script.examples[: -s.max_examples]
        if not script.commercial:
            return
        account = state.accounts.get(user)
        if account is None:
            account = state.accounts[user] = Account(last_ts=event.ts)
        else:
            state.accounts.move_to_end(user)
        if ts > account.last_ts:  # by event time: a late message is not the account's latest
            account.last_ts = ts
        signals = event.user
        if signals is not None and (account.signals_ts is None or ts >= account.signals_ts):
            account.signals_ts = ts
            account.new = signals.account_age_days is not None and signals.account_age_days <= s.new_account_days
            account.device = signals.device_id or None
            account.ip_prefix = _ip_prefix(signals.ip)
            account.multi_room = signals.active_rooms is not None and signals.active_rooms >= s.multi_room_accounts
        numbers = "|".join(_NUMBER.findall(normalized))
        if numbers:
            # the least recently claimed by event time is dropped: what a rebuild of the window would not have
            numbers_of = account.numbers
            claimed = numbers_of.setdefault(key, {})
            claimed[numbers] = max(ts, claimed.get(numbers, ts))
            if len(claimed) > 3:
                del claimed[min(claimed, key=claimed.__getitem__)]
            if len(numbers_of) > 5:
                del numbers_of[min(numbers_of, key=lambda k: max(numbers_of[k].values()))]
        while state.accounts and (
            len(state.accounts) > s.max_accounts or next(iter(state.accounts.values())).last_ts <= horizon
        ):
            state.accounts.popitem(last=False)

    # -- decisions -----------------------------------------------------------------------------

    def pool_features(
        self, state: FloodState, ts: int, quiet: bool = False
    ) -> tuple[dict[str, float], list[str], list[str]]:
        """Features of the room's commercial pool at ``ts``, its accounts and its scripts. ``quiet``: judged on
        another comment, so its traffic features are taken at its own last message, as loud as it was then."""
        s = self.settings
        horizon = ts - s.window_s * 1000
        scripts = [
            k
            for k in state.commercial
            if (sc := state.scripts[k]).last_ts > horizon and sc.accounts_after(horizon) >= s.min_script_accounts
        ]
        now = ts
        if quiet:
            ts = max((state.scripts[k].last_ts for k in scripts), default=ts)
        recent = ts - s.recent_s * 1000
        accounts: dict[str, None] = {}
        pool_msgs = pool_recent = 0
        pool_start = ts
        for k in scripts:
            sc = state.scripts[k]
            accounts.update((u, None) for u, t in sc.accounts.items() if t > horizon)
            for b, n in sc.buckets.items():
                if horizon < b <= ts:
                    pool_msgs += n
                    pool_recent += n if b >= recent - s.bucket_s * 1000 else 0
                    pool_start = min(pool_start, b)
        # The share is taken over the pool's own span (at least recent_s), not the whole window: a
        # campaign five minutes old is judged on those five minutes, not diluted by the five before it.
        span_start = min(pool_start, recent - s.bucket_s * 1000)
        window = state.window
        pool_room = window.traffic_sum(span_start, ts) or 1
        room_msgs = window.traffic_sum(horizon + 1, ts) or 1
        room_recent = window.traffic_sum(recent - s.bucket_s * 1000, ts) or 1
        # The room's rate before the recent window, over the part of the window the room has existed;
        # a room younger than two recent windows has no rate to burst against.
        first = window.first_bucket_after(horizon)
        first = ts if first is None else first
        earlier_s = (recent - s.bucket_s * 1000 - first) / 1000
        burst = (
            room_recent / ((room_msgs - room_recent) / earlier_s * s.recent_s)
            if earlier_s >= s.recent_s and room_msgs > room_recent
            else 1.0
        )
        members = [state.accounts[u] for u in accounts if u in state.accounts]
        n = max(1, len(accounts))
        known = [a for a in members if a.known(horizon)]  # signals from a message in the window
        devices = _counts(a.device for a in known)
        prefixes = _counts(a.ip_prefix for a in known)
        features = {
            "log_accounts": math.log1p(len(accounts)),
            "share": min(1.0, pool_msgs / pool_room),
            "recent_share": min(1.0, pool_recent / room_recent),
            "log_burst": math.log1p(burst),
            "new_accounts": sum(a.new for a in known) / n,
            "shared_device": sum(devices.get(a.device or "", 0) >= s.shared_device_accounts for a in known) / n,
            "shared_ip_prefix": sum(prefixes.get(a.ip_prefix or "", 0) >= s.shared_ip_accounts for a in known) / n,
            "contradicting_numbers": sum(a.contradicts(horizon) for a in members) / n,
            "multi_room": sum(a.multi_room for a in known) / n,
        }
        if s.crowd is not None:
            features.update(self._crowd_features(state, now, scripts, list(accounts), pool_msgs))
        return features, list(accounts), scripts

    def _crowd_features(
        self, state: FloodState, ts: int, scripts: list[str], accounts: list[str], pool_msgs: int
    ) -> dict[str, float]:
        """How far the pool reads as the room's shoppers answering the host (nothing without a host prompt that
        its messages could answer): the share of its messages posted within answer_s after a prompt, the
        room's orders since the first such prompt per pool account, and the share of its accounts that also
        posted an ordinary comment in the window at least present_lead_s before one of their scripts."""
        crowd = self.settings.crowd
        assert crowd is not None
        horizon = ts - self.settings.window_s * 1000
        answer_ms = crowd.answer_s * 1000
        prompts = [p for p in state.prompts if horizon - answer_ms < p <= ts]
        if not prompts:
            return {}
        bucket_ms = self.settings.bucket_s * 1000
        answering = {
            b
            for k in scripts
            for b in state.scripts[k].buckets
            if b > horizon and any(p // bucket_ms * bucket_ms <= b <= p + answer_ms for p in prompts)
        }
        answered = sum(n for k in scripts for b, n in state.scripts[k].buckets.items() if b in answering)
        # a real crowd's buyers buy after the host asked: the room's earlier sales do not vouch for the pool
        sale = prompts[0] // bucket_ms * bucket_ms
        orders = sum(n for b, n in state.orders.items() if b > horizon and sale <= b <= ts)
        lead = crowd.present_lead_s * 1000
        present = 0
        for u in accounts:
            live = [(b, how) for b, how in state.window.viewer_buckets(u).items() if horizon < b <= ts]
            ordinary = [b for b, how in live if how & 1]
            scripted = [b for b, how in live if how & 2]
            present += bool(ordinary and scripted) and min(ordinary) <= max(scripted) - lead
        n = max(1, len(accounts))
        # Buyers take a while to check out, a hire never does: the orders fall due in proportion over
        # order_pace_s after the prompt, in whole orders (none in the first moments). A pool spared before they
        # are due in full is judged again on the room's other comments (_judge_pending) until they are.
        elapsed = min(1.0, (ts - prompts[0]) / (crowd.order_pace_s * 1000))
        due = math.floor(crowd.min_orders_per_account * n * elapsed + 1e-9)
        features = {
            "answers_prompt": answered / max(1, pool_msgs),
            "orders_per_account": orders / n,
            "present_before": present / n,
        }
        # Both buying and presence are asked once the orders are due in full. Before, one of them will do, and in
        # the first grace_s neither: the first accounts to answer are too few to read presence from (a small
        # room's buyers mostly never commented) and may not have checked out yet. A pool spared meanwhile is
        # judged again until the orders are due in full (_judge_pending), so a hire is named then at the latest.
        present = features["present_before"] >= crowd.min_present_before
        early = ts - prompts[0] < crowd.grace_s * 1000
        spared = (
            features["answers_prompt"] >= crowd.min_answering
            and orders >= due
            and (present or (elapsed < 1.0 and (orders > 0 or early)))
        )
        return {**features, "shopper_crowd": float(spared), "orders_pending": float(spared and elapsed < 1.0)}

    def is_campaign(self, features: dict[str, float], ongoing: bool = False) -> tuple[bool, float]:
        """(campaign?, score) for pool features: the hand thresholds on traffic, or the trained model on
        account signals — either suffices (the model adds campaigns whose accounts look bought but whose
        traffic is below the thresholds; it cannot clear a pool, see scripts/train_floods.py)."""
        s = self.settings
        if features["log_accounts"] < math.log1p(s.min_accounts):
            return False, 0.0
        # A burst of the room's traffic counts when the pool is a visible part of it. An ongoing campaign
        # stays one down to hold_factor × the shares (hysteresis: a campaign hovering at the threshold
        # is not dropped and re-detected, and its late accounts are still named).
        k = s.hold_factor if ongoing else 1.0
        hand = (
            features["share"] >= k * s.min_share
            or features["recent_share"] >= k * s.min_recent_share
            or (features["log_burst"] >= math.log1p(s.burst_factor) and features["recent_share"] >= k * s.min_share)
        )
        # Shoppers answering the host (settings.crowd) are spared the traffic thresholds — they are loud by
        # nature; the account-signal model below still catches a crowd of bought accounts.
        hand = hand and not features.get("shopper_crowd")
        score = min(1.0, 0.5 + features["share"] / 2) if hand else 0.0
        if s.model is not None:
            p = s.model.probability(features)
            return (p >= s.model.threshold if s.model.alone else hand or p >= s.model.threshold), max(score, p)
        return hand, score

    def _judge_pool(self, state: FloodState, event: ChatEvent | DanmakuEvent, key: str | None) -> list[Finding]:
        """Judge the pool at ``event``: a comment posted to script ``key``, or (None) another comment."""
        s = self.settings
        verdict = state.verdict
        # A campaign, or a large pool, is judged again once per judge_every_ms slot of event time (its newcomers
        # are named meanwhile); a small pool below the bar at every commercial message.
        throttled = (
            verdict is not None
            and self._same_slot(event.ts, verdict.ts)
            and (verdict.campaign or verdict.features.get("log_accounts", 0.0) >= math.log1p(10 * s.min_accounts))
        )
        if verdict is None or not throttled:
            features, accounts, scripts = self.pool_features(state, event.ts, quiet=key is None)
            campaign, score = self.is_campaign(features, ongoing=verdict is not None and verdict.campaign)
            verdict = state.verdict = Verdict(
                ts=event.ts,
                campaign=campaign,
                features={k: round(v, 4) for k, v in features.items()},
                accounts=accounts if campaign else [],
                scripts=scripts if campaign else [],
                signals=_signals(features),
                score=round(score, 3),
                reported_period=verdict.reported_period if verdict else None,
            )
        if not verdict.campaign:
            return []
        findings: list[Finding] = []
        period = event.ts // (s.report_every_s * 1000)
        room_rule = self._by_report.get("campaign")
        horizon = event.ts - self._window_ms
        if room_rule is not None and verdict.reported_period != period:
            quoted = self._pool_scripts(state, verdict, horizon)
            if quoted:  # else all left the window since the slot's judgement: reported at the next one
                verdict.reported_period = period
                findings.append(self._campaign_finding(room_rule, event, verdict, period, quoted, horizon))
        ring = self._by_report.get("ring_account")
        if ring is not None:
            # Every pool account when the pool was judged just now; between judgements, the poster.
            users = list(verdict.accounts) if verdict.ts == event.ts else []
            joined = key is not None and (
                key in verdict.scripts or len(state.scripts[key].accounts) >= s.min_script_accounts
            )
            if joined and event.user_id not in users:
                users.append(event.user_id)
            account_period = event.ts // (s.account_report_every_s * 1000)
            for user in users:
                account = state.accounts.get(user)
                if account is not None and account.reported_period != account_period:
                    account.reported_period = account_period
                    findings.append(self._account_finding(ring, state, event, verdict, user, account_period, key))
        return findings

    def _judge_chant(self, state: FloodState, event: ChatEvent | DanmakuEvent, script: Script) -> list[Finding]:
        rule = self._by_report.get("noncommercial_flood")
        s = self.settings
        if rule is None or len(script.accounts) < s.min_accounts:  # accounts within the window only
            return []
        period = event.ts // (s.report_every_s * 1000)
        if script.reported_ts is not None and script.reported_ts // (s.report_every_s * 1000) == period:
            return []
        horizon = event.ts - s.window_s * 1000
        room_msgs = state.window.traffic_sum(horizon + 1) or 1
        share = sum(n for b, n in script.buckets.items() if b > horizon) / room_msgs
        if share < s.min_share:
            return []
        script.reported_ts = event.ts
        return [
            self._finding(
                rule,
                event,
                Subject(kind="room", id=event.room_id),
                [script],
                len(script.accounts),
                share,
                [],
                horizon,
                1.0,
                f"非商业刷屏: {len(script.accounts)} accounts posted 「{script.raw_example[:40]}」 "
                f"({share:.0%} of the room's comments)",
                ident=f"chant|{script.text}|{period}",
            )
        ]

    # -- findings ------------------------------------------------------------------------------

    def _finding(
        self,
        rule: FloodRule,
        event: BaseEvent,
        subject: Subject,
        scripts: list[Script],
        accounts: int,
        share: float,
        signals: list[str],
        horizon: int,
        score: float,
        summary: str,
        ident: str,
        extra: dict[str, object] | None = None,
    ) -> Finding:
        """A finding with the scripts' evidence; ``ident`` makes its id unique and repeatable."""
        # only messages of the window's buckets (as ``since`` below): a script older than a rebuild's history keeps
        # ones the rebuild never saw
        bucket_ms = self._bucket_ms
        examples = [e for sc in scripts for ts, e in sc.examples if ts // bucket_ms * bucket_ms > horizon]
        examples = examples[: self.settings.max_examples * 2]
        return self.finding(
            rule,
            event,
            ident=(ident,),
            score=round(score, 3),
            summary=summary,
            subject=subject,
            # the scripts' first bucket in the window, not their first message ever: a script kept alive by a
            # message every few minutes can be older than any rebuild's history (a worker taking over
            # reported another window than the replay, CI of stop 37)
            since=min((b for sc in scripts for b in sc.buckets if b > horizon), default=horizon),
            event_ids=examples,
            evidence=[
                Evidence(
                    event_id=sc.examples[-1][1],
                    field="text",
                    start=0,
                    end=len(sc.raw_example),
                    raw=sc.raw_example,
                    normalized=sc.text,
                    term=sc.text,
                    how="normalized",
                )
                for sc in scripts[:5]
            ],
            details={
                "template": scripts[0].text,
                "templates": [sc.text for sc in scripts[:20]],
                "accounts": accounts,
                "share": round(share, 3),
                "signals": signals,
                "commercial": scripts[0].commercial,
                **(extra or {}),
            },
        )

    def _pool_scripts(self, state: FloodState, verdict: Verdict, horizon: int) -> list[Script]:
        """The verdict's scripts still in the window (one judged earlier in the slot may have left it), the most
        accounts in the window first."""
        scripts = [sc for k in verdict.scripts if (sc := state.scripts.get(k)) is not None and sc.last_ts > horizon]
        return sorted(scripts, key=lambda sc: -sc.accounts_after(horizon))

    def _campaign_finding(
        self, rule: FloodRule, event: BaseEvent, verdict: Verdict, period: int, scripts: list[Script], horizon: int
    ) -> Finding:
        f = verdict.features
        return self._finding(
            rule,
            event,
            Subject(kind="room", id=event.room_id),
            scripts,
            len(verdict.accounts),
            f["share"],
            verdict.signals,
            horizon,
            verdict.score,
            f"商业刷屏: {len(verdict.accounts)} accounts posted {len(scripts)} commercial script(s) such as "
            f"「{scripts[0].raw_example[:40]}」 ({f['share']:.0%} of the room's comments, {f['recent_share']:.0%} "
            f"in the last {self.settings.recent_s} s{'; ' + ', '.join(verdict.signals) if verdict.signals else ''})",
            ident=f"campaign|{period}",
            extra={"features": verdict.features, "account_ids": verdict.accounts[:200]},
        )

    def _account_finding(
        self,
        rule: FloodRule,
        state: FloodState,
        event: BaseEvent,
        verdict: Verdict,
        user: str,
        period: int,
        key: str | None,
    ) -> Finding:
        account = state.accounts[user]
        horizon = event.ts - self._window_ms
        # its own scripts in the window, else the pool's still in it (a verdict up to judge_every_ms old may name one
        # that has left since), else the one just posted to
        scripts = (
            [state.scripts[k] for k in account.claimed_in(horizon) if k in state.scripts]
            or self._pool_scripts(state, verdict, horizon)
            or ([state.scripts[key]] if key is not None else [])
        )
        own = [
            name
            for name, hit in (
                ("new_account", account.new and account.known(horizon)),
                ("contradicting_numbers", account.contradicts(horizon)),
            )
            if hit
        ]
        return self._finding(
            rule,
            event,
            Subject(kind="account", id=user),
            scripts[:3],
            1,
            verdict.features["share"],
            verdict.signals,
            horizon,
            verdict.score,
            f"account takes part in a commercial flood of {len(verdict.accounts)} accounts "
            f"「{scripts[0].raw_example[:40]}」",
            ident=f"ring|{user}|{period}",
            extra={"account_signals": own},
        )

    # -- rule self-checks ----------------------------------------------------------------------

    def check_examples(self, rule: FloodRule) -> list[str]:
        return commercial_example_problems(self.solo(rule).is_commercial, rule.examples)


#: an account signal "fires" for a pool when this share of its accounts shows it (contradicting one's own
#: numbers needs several messages per account, so fewer accounts can show it)
_SIGNAL_SHARE = {
    "new_accounts": 0.5,
    "shared_device": 0.5,
    "shared_ip_prefix": 0.5,
    "contradicting_numbers": 0.25,
    "multi_room": 0.5,
}


def _signals(features: dict[str, float]) -> list[str]:
    return [name for name, share in _SIGNAL_SHARE.items() if features[name] >= share]


def _counts(values: Iterable[str | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v:
            out[v] = out.get(v, 0) + 1
    return out


def _ip_prefix(ip: str | None) -> str | None:
    """The /24 of an IPv4 address, roughly the /64 of an IPv6 one."""
    if not ip:
        return None
    if ip.count(".") == 3:
        return ip.rsplit(".", 1)[0]
    return ":".join(ip.split(":")[:4]) if ":" in ip else None


def commercial_example_problems(is_commercial: Callable[[str], bool], examples: FloodExamples) -> list[str]:
    """What is wrong with a rule's inline examples of commercial and not commercial text (also account_rings')."""
    problems = []
    for expected, texts in ((True, examples.commercial), (False, examples.not_commercial)):
        for text in texts:
            if is_commercial(normalize(text).text) != expected:
                what = "commercial" if expected else "not commercial"
                problems.append(f"example {text!r} should read as {what}")
    return problems
