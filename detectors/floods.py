"""Bot-comment flood detector (职业弹幕人): many accounts posting one commercial script in a room.

Per room, comments are grouped into templates: the normalised text with numbers masked
("3颗就瘦了3.2斤" and "2颗就瘦了5斤" are one template), and near-duplicates merged by a 64-bit SimHash
of character bigrams (Hamming distance ≤ 3, found through four 16-bit LSH bands, so a lookup never
scans every template). For each template the state keeps, within a sliding event-time window, the
accounts that posted it, message counts in buckets, and account signals (new accounts, shared device,
shared IP /24, an account contradicting its own numbers).

A template is a **campaign** when enough distinct accounts post it within the window, it carries
commercial content (testimonial, urgency, efficacy — the rule's cue words), and it is a large share of
the room's traffic or a burst against the room's own baseline. Fan chants ("然然超可爱" ×200 in 10 s)
have no commercial cue: they are reported only by a shadow rule, which never acts.

State is bounded: at most ``max_templates`` templates (least recently seen evicted), at most
``max_accounts`` accounts per template, and buckets for one window.
"""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar, Sequence

import numpy as np

from pydantic import BaseModel, ConfigDict, Field

from detectors.base import RuleContext, register
from detectors.normalize import NormalizedText, mask_digits, normalize
from schemas.events import ChatEvent, DanmakuEvent, EventModel
from schemas.findings import Evidence, Finding, Subject, Window, derived_id
from schemas.rules import Rule

_BANDS = 4
_BAND_BITS = 16
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def simhash(text: str) -> int:
    """64-bit SimHash over character bigrams (the unigram for a one-character text): bit i is set when
    most grams' hashes have bit i set."""
    grams = [text[i:i + 2] for i in range(len(text) - 1)] or [text]
    hashes = np.fromiter((hash64(g) for g in grams), dtype=np.uint64, count=len(grams))
    ones = np.unpackbits(hashes.view(np.uint8), bitorder="little").reshape(-1, 64).sum(axis=0)
    return int(np.packbits(ones * 2 > len(grams), bitorder="little").view(np.uint64)[0])


def hash64(s: str) -> int:
    """A stable 64-bit hash (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def bands(sig: int) -> list[str]:
    return [f"{i}:{(sig >> (i * _BAND_BITS)) & 0xFFFF:04x}" for i in range(_BANDS)]


class FloodExamples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    commercial: list[str] = Field(default_factory=list)
    not_commercial: list[str] = Field(default_factory=list)


class FloodRule(Rule):
    #: what the rule reports: a commercial campaign (room), its accounts, or a non-commercial flood
    reports: str = Field(pattern="^(campaign|ring_account|noncommercial_flood)$")
    #: cue words that make a template commercial (testimonial, urgency, efficacy), normalised at load
    cues: list[str] = Field(default_factory=list)
    examples: FloodExamples = Field(default_factory=FloodExamples)


class FloodSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: int = Field(600, ge=10, description="sliding event-time window for accounts and traffic")
    bucket_s: int = Field(10, ge=1)
    min_accounts: int = Field(8, ge=2, description="distinct accounts on one template within the window")
    min_share: float = Field(0.05, ge=0, le=1, description="template messages / room messages in the window")
    burst_factor: float = Field(3.0, ge=1, description="... or window traffic ≥ this × the room's baseline")
    near_duplicate_bits: int = Field(3, ge=0, le=3, description="SimHash Hamming distance (≤ 3: LSH bands)")
    min_template_chars: int = Field(4, ge=1, description="shorter texts (\"666\", \"?\") are not templated")
    new_account_days: int = Field(7, ge=0)
    max_templates: int = Field(2000, ge=10)
    max_accounts: int = Field(5000, ge=10)
    max_examples: int = Field(5, ge=1)
    report_every_s: int = Field(600, ge=1, description="re-report an active template at most this often")


class Template(BaseModel):
    text: str  # masked, normalised sample
    raw_example: str
    sig: int
    commercial: bool
    first_ts: int
    last_ts: int
    accounts: dict[str, int] = Field(default_factory=dict)  # user → last ts
    buckets: dict[int, int] = Field(default_factory=dict)  # bucket start → messages
    examples: list[str] = Field(default_factory=list)  # event ids
    new_accounts: list[str] = Field(default_factory=list)
    devices: dict[str, list[str]] = Field(default_factory=dict)  # device → accounts (capped)
    ip_prefixes: dict[str, list[str]] = Field(default_factory=dict)
    numbers: dict[str, list[str]] = Field(default_factory=dict)  # account → numbers it claimed (capped)
    reported_ts: int | None = None
    reported_accounts: list[str] = Field(default_factory=list)


class FloodState(BaseModel):
    templates: dict[str, Template] = Field(default_factory=dict)  # key: masked text
    band_index: dict[str, list[str]] = Field(default_factory=dict)  # LSH band → template keys
    traffic: dict[int, int] = Field(default_factory=dict)  # bucket start → room messages
    baseline: float = 0.0  # EWMA of room messages per window, updated per bucket


@register
class BotFloodDetector:
    name: ClassVar[str] = "bot_flood"
    kinds: ClassVar[frozenset[str]] = frozenset({"chat", "danmaku"})
    settings_model: ClassVar[type[BaseModel]] = FloodSettings
    rule_model: ClassVar[type[Rule]] = FloodRule
    state_model: ClassVar[type[BaseModel]] = FloodState
    durable_state: ClassVar[bool] = False  # a sliding window: kept in memory, never in the changelog

    def __init__(self, settings: FloodSettings, rules: Sequence[FloodRule], context: RuleContext) -> None:
        self.settings = settings
        self.context = context
        self.history_ms = settings.window_s * 1000
        self.rules = [r for r in rules if r.status != "off"]
        self._by_report = {r.reports: r for r in self.rules}
        self._cues = sorted({normalize(c).text for r in self.rules for c in r.cues if normalize(c).text})

    # -- the detector --------------------------------------------------------------------------

    def detect(self, event: EventModel, text: NormalizedText | None, state: FloodState) -> list[Finding]:
        if not isinstance(event, (ChatEvent, DanmakuEvent)) or event.role != "viewer" or text is None:
            return []
        s = self.settings
        bucket = event.ts // (s.bucket_s * 1000) * s.bucket_s * 1000
        self._count_traffic(state, bucket, event.ts)
        masked = mask_digits(text.text)
        if len(masked) < s.min_template_chars:
            return []
        key, sig = self._template_key(state, masked)
        t = state.templates.get(key)
        if t is None:
            t = Template(text=masked, raw_example=text.raw[:200], sig=sig,
                         commercial=self.is_commercial(text.text), first_ts=event.ts, last_ts=event.ts)
            self._add_template(state, key, t)
        else:
            state.templates[key] = state.templates.pop(key)  # most recent last
        self._observe(t, event, text.text, bucket)
        return self._judge(event, key, t, state)

    def is_commercial(self, normalized: str) -> bool:
        return any(cue in normalized for cue in self._cues)

    # -- state upkeep --------------------------------------------------------------------------

    def _count_traffic(self, state: FloodState, bucket: int, ts: int) -> None:
        if bucket not in state.traffic:
            horizon = ts - self.settings.window_s * 1000
            expired = [b for b in state.traffic if b <= horizon]
            for b in expired:
                # A bucket leaving the window feeds the baseline: messages per window, smoothed.
                per_window = state.traffic.pop(b) * self.settings.window_s / self.settings.bucket_s
                state.baseline = per_window if state.baseline == 0 else 0.9 * state.baseline + 0.1 * per_window
            state.traffic[bucket] = 0
        state.traffic[bucket] += 1

    def _template_key(self, state: FloodState, masked: str) -> tuple[str, int]:
        """The key of the template this text belongs to (a near-duplicate's, or its own) and its SimHash."""
        known = state.templates.get(masked)
        if known is not None:
            return masked, known.sig
        sig = simhash(masked)
        for band in bands(sig):
            for key in state.band_index.get(band, ()):
                other = state.templates.get(key)
                if other is not None and bin(other.sig ^ sig).count("1") <= self.settings.near_duplicate_bits:
                    return key, sig
        return masked, sig

    def _add_template(self, state: FloodState, key: str, t: Template) -> None:
        # state.templates is kept in recency order (see detect), so the least recent comes first.
        horizon = t.last_ts - self.settings.window_s * 1000
        while state.templates and (len(state.templates) >= self.settings.max_templates
                                   or next(iter(state.templates.values())).last_ts <= horizon):
            self._drop_template(state, next(iter(state.templates)))
        state.templates[key] = t
        for band in bands(t.sig):
            state.band_index.setdefault(band, []).append(key)

    def _drop_template(self, state: FloodState, key: str) -> None:
        t = state.templates.pop(key)
        for band in bands(t.sig):
            keys = state.band_index.get(band, [])
            if key in keys:
                keys.remove(key)
            if not keys:
                state.band_index.pop(band, None)

    def _observe(self, t: Template, event: ChatEvent | DanmakuEvent, normalized: str, bucket: int) -> None:
        s = self.settings
        user = event.user_id
        t.last_ts = max(t.last_ts, event.ts)
        t.accounts.pop(user, None)
        t.accounts[user] = event.ts  # insertion order = recency: the oldest account comes first
        horizon = event.ts - s.window_s * 1000
        while t.accounts and (len(t.accounts) > s.max_accounts or next(iter(t.accounts.values())) <= horizon):
            del t.accounts[next(iter(t.accounts))]
        t.buckets[bucket] = t.buckets.get(bucket, 0) + 1
        if len(t.buckets) > s.window_s // s.bucket_s + 1:
            for b in [b for b in t.buckets if b <= horizon]:
                del t.buckets[b]
        if len(t.examples) < s.max_examples:
            t.examples.append(event.event_id)
        numbers = _NUMBER.findall(normalized)
        if numbers:
            claimed = t.numbers.setdefault(user, [])
            if "|".join(numbers) not in claimed and len(claimed) < 5:
                claimed.append("|".join(numbers))
            if len(t.numbers) > s.max_accounts:
                del t.numbers[next(iter(t.numbers))]
        signals = event.user
        if signals is None:
            return
        if signals.account_age_days is not None and signals.account_age_days <= s.new_account_days \
                and user not in t.new_accounts and len(t.new_accounts) < s.max_accounts:
            t.new_accounts.append(user)
        for value, table in ((signals.device_id, t.devices), (_ip_prefix(signals.ip), t.ip_prefixes)):
            if value:
                users = table.setdefault(value, [])
                if user not in users and len(users) < 50:
                    users.append(user)
                if len(table) > 1000:
                    del table[next(iter(table))]

    # -- decisions -----------------------------------------------------------------------------

    def _judge(self, event: ChatEvent | DanmakuEvent, key: str, t: Template, state: FloodState) -> list[Finding]:
        s = self.settings
        if len(t.accounts) < s.min_accounts:  # t.accounts holds only accounts active within the window
            return []
        horizon = event.ts - s.window_s * 1000
        template_msgs = sum(n for b, n in t.buckets.items() if b > horizon - s.bucket_s * 1000)
        room_msgs = sum(state.traffic.values()) or 1
        share = template_msgs / room_msgs
        burst = state.baseline > 0 and room_msgs >= s.burst_factor * state.baseline
        if share < s.min_share and not burst:
            return []
        first_detection = t.reported_ts is None
        # Report once per report_every_s period of event time; the period, not the moment of detection,
        # names the finding, so a worker that rebuilt its window after a rebalance names it the same.
        period = event.ts // (s.report_every_s * 1000)
        due = first_detection or period != t.reported_ts // (s.report_every_s * 1000)
        report = "campaign" if t.commercial else "noncommercial_flood"
        rule = self._by_report.get(report)
        findings: list[Finding] = []
        if rule is not None and due:
            t.reported_ts = event.ts
            findings.append(self._room_finding(rule, event, t, share, horizon))
        ring = self._by_report.get("ring_account")
        if t.commercial and ring is not None:
            # On detection every active account is reported; afterwards each account as it joins.
            newcomers = list(t.accounts) if first_detection else [event.user_id]
            reported = set(t.reported_accounts) if first_detection else None
            for user in newcomers:
                if (user not in reported) if reported is not None else (user not in t.reported_accounts):
                    t.reported_accounts.append(user)
                    findings.append(self._account_finding(ring, event, t, user, share, horizon))
            del t.reported_accounts[: -s.max_accounts]
        return findings

    def _signals(self, t: Template) -> list[str]:
        out = []
        if t.new_accounts and len(set(t.new_accounts) & t.accounts.keys()) >= len(t.accounts) / 2:
            out.append("new_accounts")
        if any(len(users) >= 3 for users in t.devices.values()):
            out.append("shared_device")
        if any(len(users) >= 5 for users in t.ip_prefixes.values()):
            out.append("shared_ip_prefix")
        if any(len(claims) >= 2 for claims in t.numbers.values()):
            out.append("contradicting_numbers")
        return out

    def _finding(self, rule: FloodRule, event: EventModel, t: Template, subject: Subject, share: float,
                 signals: list[str], horizon: int, accounts: int, summary: str, ident: str) -> Finding:
        """A finding with the template's evidence; ``ident`` makes its id unique and repeatable."""
        score = min(1.0, 0.5 + 0.5 * min(share / 0.5, 1.0) * 0.6 + 0.1 * len(signals))
        return Finding(
            finding_id=derived_id(self.name, rule.id, rule.version, event.room_id, ident),
            detector=self.name, rule_id=rule.id, rule_version=rule.version,
            ruleset_version=self.context.ruleset_version,
            status="shadow" if rule.status == "shadow" else "live",
            severity=rule.severity, legal_basis=rule.legal_basis, room_id=event.room_id, platform=event.platform,
            ts=event.ts, subject=subject, window=Window(start_ts=max(horizon, t.first_ts), end_ts=event.ts),
            event_ids=list(t.examples), score=round(score, 3),
            evidence=[Evidence(event_id=t.examples[0], field="text", start=0, end=len(t.raw_example),
                               raw=t.raw_example, normalized=t.text, term=t.text, how="normalized")],
            summary=summary,
            details={"template": t.text, "accounts": accounts, "share": round(share, 3), "signals": signals,
                     "commercial": t.commercial},
        )

    def _room_finding(self, rule: FloodRule, event: EventModel, t: Template, share: float, horizon: int
                      ) -> Finding:
        kind = "商业刷屏" if t.commercial else "非商业刷屏"
        signals = self._signals(t)
        return self._finding(
            rule, event, t, Subject(kind="room", id=event.room_id), share, signals, horizon, len(t.accounts),
            f"{kind}: {len(t.accounts)} accounts posted 「{t.raw_example[:40]}」 ({share:.0%} of the room's comments"
            f"{'; ' + ', '.join(signals) if signals else ''})",
            ident=f"{t.text}|{event.ts // (self.settings.report_every_s * 1000)}")

    def _account_finding(self, rule: FloodRule, event: EventModel, t: Template, user: str, share: float,
                         horizon: int) -> Finding:
        return self._finding(
            rule, event, t, Subject(kind="account", id=user), share, self._signals(t), horizon, 1,
            f"account posts the campaign template 「{t.raw_example[:40]}」", ident=f"{t.text}|{user}")

    # -- rule self-checks ----------------------------------------------------------------------

    def check_examples(self, rule: Rule) -> list[str]:
        assert isinstance(rule, FloodRule)
        solo = BotFloodDetector(self.settings, [rule.model_copy(update={"status": "live"})], self.context)
        problems = []
        for expected, texts in ((True, rule.examples.commercial), (False, rule.examples.not_commercial)):
            for text in texts:
                if solo.is_commercial(normalize(text).text) != expected:
                    what = "commercial" if expected else "not commercial"
                    problems.append(f"example {text!r} should read as {what}")
        return problems


def _ip_prefix(ip: str | None) -> str | None:
    if not ip or ip.count(".") != 3:
        return ip.rsplit(":", 4)[0] if ip and ":" in ip else None  # IPv6: the /64-ish prefix
    return ip.rsplit(".", 1)[0]
