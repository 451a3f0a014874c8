"""Cross-room ring detector: one account posting the same commercial script in many rooms.

Professional danmaku accounts (职业弹幕人) work several rooms at once at a low share in each — too few accounts
per room for ``bot_flood``, whose state is per room. This detector's state is **per account** (the runtime
keys it by ``user_id``, not by room): the account's commercial scripts within ``window_s`` (numbers masked
and near-duplicates merged with ``bot_flood``'s own helpers: a padded variant is the same script), and per
script the rooms it was posted in. An account whose one script reached ``min_rooms`` rooms within the window
is a finding (subject: the account), at most once per ``report_every_s``. Its evidence names the script
(stable hashes of its MinHash bands), the device and the IP prefix the account used: the links by which
accounts form a ring (accounts sharing any of them; ``ring_links``).

Reasons, settings and figures: docs/floods.md ("Cross-room rings").
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from detectors.base import Detector, RuleContext
from detectors.floods import (
    FloodExamples,
    _ip_prefix,
    band_keys,
    bigrams,
    commercial_example_problems,
    similarity,
)
from detectors.normalize import NormalizedText, mask_digits, words_regex
from schemas.events import BaseEvent, ChatEvent, DanmakuEvent
from schemas.findings import Evidence, Finding, Subject
from schemas.rules import Rule


class RingRule(Rule):
    #: cue words that make a text commercial (as in rules/floods.yaml): only commercial scripts count
    cues: list[str] = Field(default_factory=list)
    examples: FloodExamples = Field(default_factory=FloodExamples)


class RingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: int = Field(3600, ge=60, description="event-time window over which an account's rooms are counted")
    min_rooms: int = Field(4, ge=2, description="rooms one script of the account must reach within the window")
    min_template_chars: int = Field(4, ge=1, description="shorter texts are not scripts (as in bot_flood)")
    min_jaccard: float = Field(0.5, gt=0, le=1, description="near-duplicate scripts, as in bot_flood")
    min_containment: float = Field(0.8, gt=0, le=1)
    max_scripts: int = Field(20, ge=1, description="scripts kept per account (least recently posted dropped)")
    max_rooms: int = Field(50, ge=2, description="rooms kept per script (least recently posted dropped)")
    max_examples: int = Field(5, ge=1, description="event ids kept per script")
    report_every_s: int = Field(3600, ge=1, description="name an account at most once per period")


class AccountScript(BaseModel):
    text: str  # the first masked, normalised text of the script (its key)
    raw_example: str  # the latest message's raw text
    rooms: OrderedDict[str, int] = Field(default_factory=OrderedDict)  # room → last ts, least recent first
    examples: list[str] = Field(default_factory=list)  # the latest event ids


class AccountRingState(BaseModel):
    """What livewatch remembers of one account (bounded: ``max_scripts`` × ``max_rooms``)."""

    scripts: OrderedDict[str, AccountScript] = Field(default_factory=OrderedDict)  # least recently posted first
    device: str | None = None  # the latest seen
    ip_prefix: str | None = None
    reported_period: int | None = None
    seen: list[str] = Field(default_factory=list)  # the latest comment ids: a re-delivered one counts once


#: comment ids remembered per account to recognise a re-delivered comment
MAX_SEEN = 32


def link_hash(kind: str, value: str) -> str:
    """A short stable hash of a ring link (a script, a device, an IP prefix): comparable across findings
    without quoting the device id or the address."""
    return f"{kind}:{hashlib.sha256(f'{kind}|{value}'.encode()).hexdigest()[:16]}"


class AccountRingsDetector(Detector[RingRule, RingSettings, AccountRingState]):
    name: ClassVar[str] = "account_rings"
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "danmaku"})
    keyed_by: ClassVar[Literal["room", "account"]] = "account"

    def __init__(self, settings: RingSettings, rules: Sequence[RingRule], context: RuleContext) -> None:
        super().__init__(settings, rules, context)
        self._cue_rx = words_regex(c for r in self.rules for c in r.cues)

    def is_commercial(self, normalized: str) -> bool:
        return self._cue_rx.search(normalized) is not None

    def wants(self, event: BaseEvent, text: NormalizedText) -> bool:
        """A viewer's commercial comment: all this detector reads (the rest never reaches the account stage)."""
        return (  # the cue search first: one C-speed search rules out most comments
            self.is_commercial(text.text)
            and isinstance(event, (ChatEvent, DanmakuEvent))
            and event.role == "viewer"
            and len(mask_digits(text.text)) >= self.settings.min_template_chars
        )

    def detect(self, event: BaseEvent, text: NormalizedText | None, state: AccountRingState) -> list[Finding]:
        if text is None or not self.wants(event, text) or event.event_id in state.seen:
            return []
        assert isinstance(event, (ChatEvent, DanmakuEvent))
        state.seen = [*state.seen[-(MAX_SEEN - 1) :], event.event_id]
        if event.user is not None:
            state.device = event.user.device_id or state.device
            state.ip_prefix = _ip_prefix(event.user.ip) or state.ip_prefix
        masked = mask_digits(text.text)
        s = self.settings
        horizon = event.ts - s.window_s * 1000
        for kept in state.scripts.values():  # rooms older than the window no longer count
            for room in [r for r, ts in kept.rooms.items() if ts <= horizon]:
                del kept.rooms[room]
        for key in [k for k, sc in state.scripts.items() if not sc.rooms]:
            del state.scripts[key]

        key = self._script_key(state, masked)
        script = state.scripts.get(key)
        if script is None:
            if len(state.scripts) >= s.max_scripts:
                state.scripts.popitem(last=False)
            script = state.scripts[key] = AccountScript(text=masked, raw_example="")
        state.scripts.move_to_end(key)
        script.raw_example = text.raw[:200]
        script.rooms.pop(event.room_id, None)
        script.rooms[event.room_id] = event.ts
        if len(script.rooms) > s.max_rooms:
            script.rooms.popitem(last=False)
        script.examples = [*script.examples[-(s.max_examples - 1) :], event.event_id]

        period = event.ts // (s.report_every_s * 1000)
        if len(script.rooms) < s.min_rooms or state.reported_period == period or not self.rules:
            return []
        state.reported_period = period
        return [self._finding(self.rules[0], event, text, state, key, script, period)]

    def _script_key(self, state: AccountRingState, masked: str) -> str:
        """The key of the account's script this text is a variant of, or the text itself (an account has few
        scripts: each is checked exactly, no index needed)."""
        if masked in state.scripts:
            return masked
        grams = bigrams(masked)
        best, best_sim = masked, 0.0
        for other in state.scripts:
            jaccard, containment = similarity(grams, bigrams(other))
            if (jaccard >= self.settings.min_jaccard or containment >= self.settings.min_containment) and (
                jaccard > best_sim
            ):
                best, best_sim = other, jaccard
        return best

    def _finding(
        self,
        rule: RingRule,
        event: ChatEvent | DanmakuEvent,
        text: NormalizedText,
        state: AccountRingState,
        key: str,
        script: AccountScript,
        period: int,
    ) -> Finding:
        # a script links accounts through its MinHash LSH bands: variants of one script share a band
        links = [link_hash("script", str(band)) for band in band_keys(key)]
        if state.device:
            links.append(link_hash("device", state.device))
        if state.ip_prefix:
            links.append(link_hash("ip_prefix", state.ip_prefix))
        rooms = list(script.rooms)
        return self.finding(
            rule,
            event,
            ident=("cross_room", event.user_id, period),
            score=min(1.0, len(rooms) / (2 * self.settings.min_rooms)),
            summary=f"account posted one commercial script in {len(rooms)} rooms within "
            f"{self.settings.window_s // 60} min 「{script.raw_example[:40]}」",
            evidence=[
                Evidence(
                    event_id=event.event_id,
                    field="text",
                    start=0,
                    end=len(text.raw),
                    raw=text.raw[:200],
                    normalized=text.text[:200],
                    term=key,
                    how="pattern",
                )
            ],
            details={"rooms": rooms, "script": key, "ring_links": links, "rooms_count": len(rooms)},
            since=min(script.rooms.values()),
            event_ids=list(script.examples),
            subject=Subject(kind="account", id=event.user_id),
        )

    def check_examples(self, rule: RingRule) -> list[str]:
        return commercial_example_problems(self.solo(rule).is_commercial, rule.examples)


def rings(links_by_account: dict[str, Sequence[str]]) -> list[set[str]]:
    """Rings: the groups of accounts connected by shared links (a script, a device, an IP prefix), largest
    first; accounts linked to no other are left out."""
    parent = {a: a for a in links_by_account}

    def root(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    first_with: dict[str, str] = {}
    for account in sorted(links_by_account):
        for link in links_by_account[account]:
            other = first_with.setdefault(link, account)
            parent[root(account)] = root(other)
    groups: dict[str, set[str]] = {}
    for account in links_by_account:
        groups.setdefault(root(account), set()).add(account)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), sorted(g)))
