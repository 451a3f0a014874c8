"""Evaluate the bot-comment flood detector (rules/floods.yaml) on real rooms — an evaluation to read, not a test.

    python scripts/eval_floods.py [--data ../shared/data] [--seed 0] [--quick] [--rules DIR] [--as-shipped]
                                  [--at 0.5] [--tail 600] [--no-background-signals] [--hand]
    python scripts/eval_floods.py --only rooms [--seed N]   # only the cross-room ring and one-account sections
    python scripts/eval_floods.py --near-duplicates   # SimHash (first version) vs MinHash LSH merging

Flood rules that ship ``off`` are switched on for the evaluation (campaign and ring-account rules live,
the non-commercial flood rule shadow) unless ``--as-shipped``; the header says which.

For each real Bilibili stream (organic fan chants such as "然然超可爱" ×200 in 10 s, and a single-account
spammer — hard negatives for a paid-bot detector), through the whole engine (detectors + policy):

(a) the organic stream alone: flood findings per rule, room actions by type, accounts muted (each one
    a false positive) and the templates flagged;
(b) a grid of synthetic campaigns (``scripts/flood_campaigns.py``) injected at one fixed point of the
    stream (by default the median event: half of the stream's messages before it, so the room has a
    baseline): accounts × share of the room's traffic × account signals × script family × pace (slow:
    over 10 minutes; burst: 60 s). Per scenario: detected or not, time from the campaign's start to the
    first campaign alert (event time), account-level precision and recall (accounts flagged by
    ``flood.ring_account`` or muted, against the injected bots; organic accounts flagged count as false
    positives) and whether the room reached ``suspend``.

(c) organic shopper crowds: 20–200 real-looking accounts typing short commercial phrases ("太划算了",
    "回购了回购了") as viewers do after a price reveal — not a campaign: every alert or flagged account is
    a false alarm (not one of the issue's targets, printed so that a rule change cannot hide its cost).

Real viewers get stable organic-looking account signals (old accounts, own devices, scattered IPs), as a
platform that sends signals sends them for everyone; ``--no-background-signals`` leaves them without.
Campaigns are decided by the trained model in the rules when there is one; ``--hand`` uses the hand
thresholds instead, to compare.

(d) when the rules carry the account-signal model: 12 campaigns at 2 % of the traffic — under every
    traffic threshold — run with the hand thresholds alone and with the model, to show what it adds.

The stream before the injection point is processed once; each scenario starts from a copy of the whole
room state at that point (serialised to JSON and rebuilt, so every scenario sees exactly what a replay of
the stream would hold there) and runs from the campaign's start to ``--tail`` seconds after its end.

Then, unless ``--only grid``, the many-room sections (``--only rooms`` runs only them), each replayed by the
embedded runtime over rooms of real chat (the LiveChat Douyin audience comments and Bilibili danmaku):

(e) a cross-room ring (issue #14): 30 accounts each posting one product's testimonials in 10 of 50 rooms, ≤ 6
    ring accounts and well under 1 % of the comments in any room, and 60 genuine viewers who visit 6 rooms each
    (greetings, real chat, now and then a shopper's phrase): account recall and precision of
    ``ring.cross_room_account`` findings and mutes against the ring (targets ≥ 0.9 and ≥ 0.95), and the rings
    linked by shared links;
(f) one account, one action: 10 flood rooms sharing 60 hired accounts — account action records against action
    ids, with account ladders per room (the behaviour before issue #14) and per account.

Targets (the issue's), printed PASS/FAIL: every campaign of ≥ 20 accounts detected within 60 s of event
time; account-level precision ≥ 0.95 and recall ≥ 0.9; on the organic streams alone no room suspended
and no account muted for a fan chant.
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import itertools
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.account_rings import rings  # noqa: E402
from detectors.normalize import mask_digits, normalize  # noqa: E402
from pipeline.embedded import ACTIONS_FILE, EmbeddedRuntime, RunStats, read_jsonl  # noqa: E402
from pipeline.engine import Engine, MemoryStateStore, RoomState  # noqa: E402
from pipeline.privacy import DEV_KEY, Pseudonymizer  # noqa: E402
from pipeline.ruleset import Ruleset  # noqa: E402
from schemas.events import BaseEvent, event_adapter  # noqa: E402
from schemas.findings import EnforcementAction, Finding  # noqa: E402
from scripts.flood_campaigns import (  # noqa: E402
    Campaign,
    CampaignSpec,
    achieved_share,
    answering_prompt,
    build_campaign,
    build_ring,
    count_between,
    floods_on,
    index,
    load_bilibili,
    load_livechat_rooms,
    load_real_texts,
    room_backgrounds,
    shared_flood_rooms,
    with_organic_signals,
    write_jsonl,
)

DETECTOR = "bot_flood"
CAMPAIGN_RULE = "flood.commercial_campaign"
ACCOUNT_RULE = "flood.ring_account"
STREAMS = ("bilibili_danmaku_2020-12-11.jsonl", "bilibili_danmaku_2020-12-12.jsonl")
DOUYIN = "livechat_douyin_dev.jsonl"
FAR_FUTURE = 1 << 62

# targets from the issue
DETECT_WITHIN_S = 60.0
DETECT_MIN_ACCOUNTS = 20
MIN_PRECISION = 0.95
MIN_RECALL = 0.90
#: issue #14: sparing crowds must not cost the grid more than this
MIN_CAMPAIGN_RECALL = 0.95
MIN_POOLED_PRECISION = 0.95

PACES = {"burst": 60.0, "slow": 600.0}
#: share of hired accounts that post one ordinary comment before their script (so that "only ever posts
#: the script" is a hint, not a giveaway); share of a shopper crowd that had commented before
WARM_UP = 0.3
CROWD_REGULARS = 0.5
SHARES = {"s05": 0.05, "s70": 0.70}


@dataclass
class Run:
    """Everything the engine said over a stretch of events."""

    findings: list[Finding]
    actions: list[EnforcementAction]
    events: int
    elapsed_s: float


def new_engine(ruleset: Ruleset, rooms: dict[str, RoomState] | None = None) -> Engine:
    store = MemoryStateStore()
    store.update(rooms or {})
    return Engine(ruleset, store=store, clock_ms=lambda: FAR_FUTURE)


def process(engine: Engine, events: Iterable[BaseEvent], run: Run | None = None) -> Run:
    run = run or Run([], [], 0, 0.0)
    start = time.perf_counter()
    for event in events:
        outcome = engine.process(event)
        run.findings.extend(outcome.findings)
        run.actions.extend(outcome.actions)
        run.events += 1
    run.elapsed_s += time.perf_counter() - start
    return run


def snapshot(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every room's state as JSON text-ready dicts (what a changelog would hold)."""
    return {room: json.loads(state.to_json()) for room, state in engine.store.items()}


def restore(data: dict[str, dict[str, Any]], ruleset: Ruleset) -> dict[str, RoomState]:
    return {room: RoomState.from_json(state, ruleset) for room, state in data.items()}


def flood_findings(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.detector == DETECTOR]


def flagged_accounts(run: Run) -> set[str]:
    """Accounts a live ring finding named or the policy muted."""
    named = {
        f.subject.id
        for f in run.findings
        if f.rule_id == ACCOUNT_RULE and f.subject.kind == "account" and f.status == "live"
    }
    muted = {a.subject.id for a in run.actions if a.action == "mute_account"}
    return named | muted


# -- (a) organic background ----------------------------------------------------------------------


def report_organic(name: str, run: Run, top: int) -> dict[str, bool]:
    floods = flood_findings(run.findings)
    by_rule = Counter(f"{f.rule_id} ({f.status})" for f in floods)
    room_actions = Counter(a.action for a in run.actions if a.subject.kind == "room")
    muted = sorted({a.subject.id for a in run.actions if a.action == "mute_account"})
    ring = {f.subject.id for f in floods if f.rule_id == ACCOUNT_RULE and f.status == "live"}
    print(
        f"\n-- (a) {name}: organic background alone — {run.events:,} events in {run.elapsed_s:.1f} s "
        f"({run.events / max(run.elapsed_s, 1e-9):,.0f} events/s, whole engine)"
    )
    print(f"   flood findings: {len(floods)}" + "".join(f"\n      {n:>5}  {r}" for r, n in by_rule.most_common()))
    other = Counter(f.rule_id for f in run.findings if f.detector != DETECTOR)
    if other:
        print(f"   other detectors' findings: {dict(other)}")
    print(f"   room actions: {dict(room_actions) or 'none'}")
    print(f"   accounts muted: {len(muted)} (each one a false positive); accounts named by {ACCOUNT_RULE}: {len(ring)}")
    for uid in muted[:10]:
        print(f"      muted {uid}")
    templates: Counter[tuple[str, str, str]] = Counter()
    detail: dict[tuple[str, str, str], Finding] = {}
    for f in floods:
        if f.subject.kind == "room":
            k = (f.rule_id, f.status, str(f.details.get("template", "?")))
            templates[k] += 1
            detail[k] = f
    if templates:
        print(f"   top templates flagged (room findings; of {len(templates)}):")
        for k, n in templates.most_common(top):
            d = detail[k].details
            print(
                f"      {n:>4}× {k[0]} ({k[1]}): 「{k[2][:40]}」 accounts={d.get('accounts')} "
                f"share={d.get('share')} signals={d.get('signals')} commercial={d.get('commercial', '?')}"
            )
    else:
        print("   templates flagged: none")
    # A mute in a room with no campaign is a false positive; "for a fan chant" when its template is not
    # commercial by the detector's own account, or the stream is organic anyway — here every mute counts.
    no_suspend = room_actions.get("suspend", 0) == 0
    no_mute = not muted
    print(f"   target: no room suspension ........................ {'PASS' if no_suspend else 'FAIL'}")
    print(f"   target: no account muted (for a fan chant or else) . {'PASS' if no_mute else 'FAIL'}")
    return {"no_suspend": no_suspend, "no_mute": no_mute}


# -- (b) injected campaigns ----------------------------------------------------------------------


def grid(quick: bool) -> list[tuple[int, str, bool, str, str]]:
    """(accounts, share key, signals, family, pace) per scenario."""
    if quick:
        full = [(a, s, True, "testimonial", p) for a in (20, 200) for s in SHARES for p in PACES]
        return full + [(50, "s70", False, "urgency", "burst"), (50, "s05", False, "urgency", "slow")]
    return list(itertools.product((20, 50, 200), SHARES, (True, False), ("testimonial", "urgency"), PACES))


def scenario_name(accounts: int, share: str, signals: bool, family: str, pace: str) -> str:
    return f"{accounts}a-{share}-{'sig' if signals else 'nosig'}-{family[:4]}-{pace}"


@dataclass
class Score:
    name: str
    accounts: int
    messages: int
    templates: int  # distinct normalised, digit-masked texts the campaign's messages make
    share: float
    detected: bool
    latency_s: float | None
    enough_s: float | None  # start → the moment DETECT_MIN_ACCOUNTS distinct bots had posted
    tp: int
    fp: int
    precision: float | None
    recall: float
    suspended: bool
    top_room_action: str
    organic_alerts: int
    stream: str = ""

    @property
    def label(self) -> str:
        return f"{self.stream}/{self.name}" if self.stream else self.name

    @property
    def fast_enough(self) -> bool:
        # A campaign "of ≥ 20 accounts" is one from its 20th account on: the clock starts there (for a
        # burst that is seconds after the start, for a campaign paced over 10 minutes minutes later).
        if not self.detected or self.latency_s is None:
            return False
        return self.latency_s - (self.enough_s or 0.0) <= DETECT_WITHIN_S

    @property
    def accounts_ok(self) -> bool:
        return (self.precision or 0.0) >= MIN_PRECISION and self.recall >= MIN_RECALL


def campaign_templates(campaign: Campaign) -> set[str]:
    return {mask_digits(normalize(e["text"]).text) for e in campaign.script_events}


def score(
    name: str, campaign: Campaign, background: list[dict[str, Any]], run: Run, min_accounts: int, ladder: list[str]
) -> Score:
    spec = campaign.spec
    bot_ids, templates = campaign.event_ids, campaign_templates(campaign)
    campaign_alerts, organic_alerts = [], 0
    for f in run.findings:
        if f.rule_id != CAMPAIGN_RULE or f.status != "live":
            continue
        ours = bool(bot_ids & set(f.event_ids)) or str(f.details.get("template")) in templates
        if ours:
            campaign_alerts.append(f)
        else:
            organic_alerts += 1
    first = min((f.ts for f in campaign_alerts), default=None)
    seen: set[str] = set()
    enough = None
    for e in campaign.script_events:
        seen.add(e["user_id"])
        if len(seen) >= min(DETECT_MIN_ACCOUNTS, spec.accounts):
            enough = (e["ts"] - spec.start_ms) / 1000
            break
    flagged = flagged_accounts(run)
    tp = len(flagged & campaign.account_ids)
    fp = len(flagged - campaign.account_ids)
    room = [a.action for a in run.actions if a.subject.kind == "room"]
    return Score(
        name=name,
        accounts=spec.accounts,
        messages=len(campaign.script_events),
        templates=len(templates),
        share=achieved_share(campaign, background),
        detected=first is not None,
        latency_s=(first - spec.start_ms) / 1000 if first is not None else None,
        enough_s=enough,
        tp=tp,
        fp=fp,
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / len(campaign.account_ids),
        suspended="suspend" in room,
        top_room_action=top_room_action(run, ladder),
        organic_alerts=organic_alerts,
    )


def fmt(x: float | None, spec: str = ".2f", none: str = "—") -> str:
    return none if x is None else format(x, spec)


def print_scores(scores: list[Score]) -> None:
    print(
        f"   {'scenario':<28} {'msgs':>5} {'tmpl':>4} {'share':>6} {'det':>4} {'t_alert':>8} {'t_20':>6} "
        f"{'TP':>4} {'FP':>4} {'prec':>5} {'recall':>6} {'room ladder':>14} {'susp':>4} {'org':>4}"
    )
    for s in scores:
        print(
            f"   {s.name:<28} {s.messages:>5} {s.templates:>4} {s.share:>6.1%} {'yes' if s.detected else 'NO':>4} "
            f"{fmt(s.latency_s, '.1f'):>7}s {fmt(s.enough_s, '.0f'):>5}s {s.tp:>4} {s.fp:>4} "
            f"{fmt(s.precision):>5} {s.recall:>6.2f} {s.top_room_action:>14} "
            f"{'yes' if s.suspended else 'no':>4} {s.organic_alerts:>4}"
        )


def eval_stream(
    path: Path,
    ruleset: Ruleset,
    args: argparse.Namespace,
    crowds: list[CrowdResult],
    imitations: list[tuple[str, bool, float]],
) -> tuple[dict[str, bool], list[Score]]:
    background = load_bilibili(path)
    if not args.no_background_signals:
        background = index(with_organic_signals(background, args.seed))
    name = path.name
    models = [event_adapter.validate_python(e) for e in background]
    room_id = background[0]["room_id"]
    start_ms = background[int(len(background) * args.at)]["ts"]
    print(
        f"\n== {name}: {len(background):,} danmaku, {len({e['user_id'] for e in background}):,} users, "
        f"room {room_id}; injection point ts {start_ms} "
        f"({(start_ms - background[0]['ts']) / 3600_000:.2f} h in, quantile {args.at} of the messages)"
    )

    # (a) the whole organic stream; the room state at the injection point is kept for (b)
    engine = new_engine(ruleset)
    cut = next(i for i, e in enumerate(models) if e.ts >= start_ms)
    organic = process(engine, models[:cut])
    state_at_start = snapshot(engine)
    injection = Injection(background, models, cut, start_ms, state_at_start, round(args.tail * 1000))
    process(engine, models[cut:], organic)
    targets = report_organic(name, organic, args.top)

    # (b) the grid
    settings = next(d for d in ruleset.detectors if d.name == DETECTOR).settings
    min_accounts = getattr(settings, "min_accounts", DETECT_MIN_ACCOUNTS)
    ladder = [step.action for step in ruleset.policy.config.ladders["room"].steps]
    scenarios = grid(args.quick)
    print(
        f"\n-- (b) {name}: {len(scenarios)} injected campaigns at ts {start_ms}; background there: "
        f"{count_between(background, start_ms, start_ms + 60_000)} msgs in 60 s, "
        f"{count_between(background, start_ms, start_ms + 600_000)} in 10 min; each run to {args.tail:.0f} s "
        "after the campaign ends"
    )
    print(
        "   t_alert: campaign start → first campaign alert (event time); t_20: start → the moment "
        f"{DETECT_MIN_ACCOUNTS} bots had posted (the target: t_alert − t_20 ≤ {DETECT_WITHIN_S:.0f} s);\n"
        "   tmpl: distinct masked texts (normalize + mask_digits) among the campaign's messages;\n"
        "   TP/FP: accounts flagged (ring finding or muted) that are bots / organic; org: campaign alerts "
        "on organic templates in the run"
    )
    scores = []
    wall = time.perf_counter()
    for accounts, share, signals, family, pace in scenarios:
        scen = scenario_name(accounts, share, signals, family, pace)
        spec = CampaignSpec(
            scen,
            accounts=accounts,
            start_ms=start_ms,
            family=family,  # type: ignore[arg-type]
            duration_s=PACES[pace],
            share=SHARES[share],
            signals=signals,
            seed=args.seed,
            warm_up=WARM_UP,
        )
        campaign = build_campaign(spec, background)
        run = injection.run(campaign, ruleset)
        result = score(scen, campaign, background, run, min_accounts, ladder)
        result.stream = path.stem.rsplit("_", 1)[-1][5:]  # "12-11"
        scores.append(result)
    print_scores(scores)
    print(f"   ({len(scenarios)} scenarios in {time.perf_counter() - wall:.1f} s)")

    # (c) organic crowds: real-looking viewers typing short commercial phrases at once — not a campaign
    print(
        f'\n-- (c) {name}: organic shopper crowds ("太划算了", "回购了回购了" … from real-looking accounts) answering '
        'the host\'s "3、2、1上链接" 5 s before, the room buying 0.3–1.5 orders per crowd account; each alert, named '
        "account or room action a false alarm (target: none). Last column: the same crowd without prompt or orders"
    )
    print(
        f"   {'crowd':<20} {'msgs':>5} {'share':>6} {'alerts':>6} {'flagged':>8}  {'room ladder':<12} "
        f"{'orders':>6}  unprompted: alerts flagged"
    )
    for accounts, share, pace in itertools.product((20, 50, 200), SHARES, PACES):
        crowd = f"{accounts}v-{share}-{pace}"
        spec = CampaignSpec(
            crowd,
            accounts=accounts,
            start_ms=start_ms,
            family="shoppers",
            duration_s=PACES[pace],
            share=SHARES[share],
            seed=args.seed,
            organic=True,
            regulars=CROWD_REGULARS,
        )
        bare = build_campaign(spec, background)
        per_account = random.Random(f"{args.seed}:{crowd}:orders").uniform(0.3, 1.5)
        campaign = answering_prompt(bare, PROMPT_LEAD_MS, per_account, args.seed)
        run = injection.run(campaign, ruleset)
        result = crowd_result(run, campaign, ladder)
        crowds.append(result)
        unprompted = crowd_result(injection.run(bare, ruleset), bare, ladder)
        print(
            f"   {crowd:<20} {len(campaign.comments):>5} {achieved_share(campaign, background):>6.1%} "
            f"{result.alerts:>6} {result.flagged:>4}/{accounts:<3}  {result.top:<12} {per_account:>6.2f}  "
            f"{unprompted.alerts:>10} {unprompted.flagged:>4}/{accounts}"
        )
    imitations.extend(imitating_hires(name, ruleset, injection, args.seed, ladder))
    if detector_of(ruleset).settings.model is not None:
        below_thresholds(name, ruleset, injection, args.seed)
    return targets, scores


#: the host's prompt comes this long before the crowd's first message
PROMPT_LEAD_MS = 5_000


@dataclass
class CrowdResult:
    """What the engine did to a genuine crowd: every item a false alarm."""

    label: str
    accounts: int
    alerts: int  # live campaign alerts
    flagged: int  # genuine accounts named or muted
    room_actions: int
    top: str


def crowd_result(run: Run, campaign: Campaign, ladder: list[str], label: str = "") -> CrowdResult:
    return CrowdResult(
        label=label or campaign.spec.scenario,
        accounts=len(campaign.account_ids),
        alerts=sum(1 for f in run.findings if f.rule_id == CAMPAIGN_RULE and f.status == "live"),
        flagged=len(flagged_accounts(run) & campaign.account_ids),
        room_actions=sum(1 for a in run.actions if a.subject.kind == "room" and a.rule_id.startswith("flood.")),
        top=top_room_action(run, ladder),
    )


#: how a hire imitates an answering crowd: (brushed orders per account, accounts sat in the room first)
IMITATIONS = {
    "prompt-only": (0.0, False),
    "brushed-orders": (0.5, False),
    "sat-in-room": (0.0, True),
    "orders+sat": (0.5, True),  # pays for orders and sits in the room: not told apart (a known limit)
}


def imitating_hires(
    name: str, ruleset: Ruleset, injection: Injection, seed: int, ladder: list[str]
) -> list[tuple[str, bool, float]]:
    """(e) hired accounts (organic-looking signals) typing shopper phrases right after the host's prompt — a
    campaign that imitates a crowd: (label, detected, account recall) for the imitations it must not pass."""
    print(
        f"\n-- (e) {name}: hires imitating an answering crowd — shopper phrases from organic-looking hired accounts "
        "5 s after the host's prompt; brushed orders 0.5 per account, 'sat' = every account commented 1–5 min "
        "before the prompt"
    )
    print(f"   {'scenario':<36} {'msgs':>5} {'share':>6} {'det':>4} {'recall':>6} {'prec':>5}  target")
    out = []
    for (accounts, share), (how, (orders, sat)) in itertools.product(
        ((20, "s05"), (50, "s70"), (200, "s05"), (200, "s70")), IMITATIONS.items()
    ):
        scen = f"{accounts}a-{share}-{how}"
        spec = CampaignSpec(
            scen,
            accounts=accounts,
            start_ms=injection.start_ms,
            family="shoppers",
            duration_s=PACES["burst"],
            share=SHARES[share],
            signals=False,
            seed=seed,
        )
        bare = build_campaign(spec, injection.background)
        campaign = answering_prompt(bare, PROMPT_LEAD_MS, orders, seed, warm_before_ms=300_000 if sat else 0)
        run = injection.run(campaign, ruleset)
        detected = any(f.rule_id == CAMPAIGN_RULE and f.status == "live" for f in run.findings)
        flagged = flagged_accounts(run)
        tp = len(flagged & campaign.account_ids)
        precision = tp / len(flagged) if flagged else None
        recall = tp / accounts
        must = how != "orders+sat"
        if must:
            out.append((f"{name}/{scen}", detected, recall))
        print(
            f"   {scen:<36} {len(campaign.comments):>5} {achieved_share(campaign, injection.background):>6.1%} "
            f"{'yes' if detected else 'NO':>4} {recall:>6.2f} {fmt(precision):>5}  "
            f"{'must be caught' if must else 'limit: not required'}"
        )
    return out


def eval_douyin(path: Path, ruleset: Ruleset, seed: int, crowds: list[CrowdResult], rooms: int = 8) -> bool:
    """(f) real Douyin rooms (LiveChat audience comments and host replies): each alone, then 60 of the room's
    own earlier commenters answering the host's prompt, then 60 hires doing the same without orders."""
    ladder = [step.action for step in ruleset.policy.config.ladders["room"].steps]
    backgrounds = load_livechat_rooms(path, rooms, seed)
    print(
        f"\n== (f) {path.name}: {len(backgrounds)} real Douyin rooms (the streamers with the most comments; real "
        "audience comments as chat, the host's real replies as transcript; times and user ids made up, seeded)"
    )
    print(
        f"   {'room':<22} {'comments':>8} {'alone: muted':>12} {'actions':>7}   {'crowd of 60: alerts':>19} "
        f"{'flagged':>7} {'room actions':>12}   {'hire of 60, no orders: det':>26} {'recall':>6}"
    )
    hires_ok = True
    for background in backgrounds:
        room = background[0]["room_id"]
        models = [event_adapter.validate_python(e) for e in background]
        alone = process(new_engine(ruleset), models)
        muted = len({a.subject.id for a in alone.actions if a.action == "mute_account"})
        comments = [e for e in background if e["kind"] == "chat"]
        start_ms = comments[len(comments) // 2]["ts"]
        engine = new_engine(ruleset)
        cut = next(i for i, e in enumerate(models) if e.ts >= start_ms)
        process(engine, models[:cut])
        injection = Injection(background, models, cut, start_ms, snapshot(engine), 600_000)
        per_account = random.Random(f"{seed}:{room}:orders").uniform(0.3, 1.5)
        crowd_spec = CampaignSpec(
            f"{room}-crowd",
            accounts=60,
            start_ms=start_ms,
            family="shoppers",
            duration_s=60.0,
            messages_per_account=2,
            seed=seed,
            organic=True,
            regulars=1.0,
            kind="chat",
        )
        crowd = answering_prompt(build_campaign(crowd_spec, background), PROMPT_LEAD_MS, per_account, seed)
        result = crowd_result(injection.run(crowd, ruleset), crowd, ladder, f"douyin/{room}")
        crowds.append(result)
        hire_spec = CampaignSpec(
            f"{room}-hire",
            accounts=60,
            start_ms=start_ms,
            family="shoppers",
            duration_s=60.0,
            messages_per_account=2,
            seed=seed,
            signals=False,
            kind="chat",
        )
        hire = answering_prompt(build_campaign(hire_spec, background), PROMPT_LEAD_MS, 0.0, seed)
        hire_run = injection.run(hire, ruleset)
        hire_det = any(f.rule_id == CAMPAIGN_RULE and f.status == "live" for f in hire_run.findings)
        hire_recall = len(flagged_accounts(hire_run) & hire.account_ids) / 60
        hires_ok &= hire_det and hire_recall >= MIN_RECALL
        print(
            f"   {room:<22} {len(comments):>8} {muted:>12} {len(alone.actions):>7}   {result.alerts:>19} "
            f"{result.flagged:>4}/60 {result.room_actions:>12}   {'yes' if hire_det else 'NO':>26} {hire_recall:>6.2f}"
        )
    return hires_ok


@dataclass
class Injection:
    """A stream prepared for injections: its events, where the campaigns start, and the room state there."""

    background: list[dict[str, Any]]
    models: list[BaseEvent]
    cut: int  # index of the first background event at or after start_ms
    start_ms: int
    state_at_start: dict[str, dict[str, Any]]
    tail_ms: int

    def run(self, campaign: Campaign, ruleset: Ruleset) -> Run:
        """The engine over the background from the start to ``tail_ms`` after the campaign, with it injected,
        from a copy of the room state at the start (as a replay would hold it there)."""
        hi = self.cut + count_between(self.background, self.start_ms, campaign.end_ms + self.tail_ms)
        injected = [event_adapter.validate_python(e) for e in campaign.events]
        merged = sorted(self.models[self.cut : hi] + injected, key=lambda e: e.ts)  # stable: background first
        return process(new_engine(ruleset, restore(self.state_at_start, ruleset)), merged)


def top_room_action(run: Run, ladder: list[str]) -> str:
    room = [a.action for a in run.actions if a.subject.kind == "room"]
    return max(room, key=lambda a: ladder.index(a) if a in ladder else -1, default="-")


def detector_of(ruleset: Ruleset) -> Any:
    return next(d for d in ruleset.detectors if d.name == DETECTOR)


def without_model(ruleset: Ruleset) -> Ruleset:
    """The ruleset with the flood detector deciding by its hand thresholds only."""
    d = detector_of(ruleset)
    hand = type(d)(d.settings.model_copy(update={"model": None}), d.rules, d.context)
    return dataclasses.replace(ruleset, detectors=tuple(hand if x is d else x for x in ruleset.detectors))


def below_thresholds(name: str, ruleset: Ruleset, injection: Injection, seed: int) -> None:
    """(d) campaigns at 2 % of the traffic, under every traffic threshold: what the signal model adds."""
    hand = without_model(ruleset)
    print(
        f"\n-- (d) {name}: campaigns at 2 % of the room's traffic (under the traffic thresholds), detected by "
        "the hand thresholds alone / with the account-signal model"
    )
    print(f"   {'scenario':<28} {'msgs':>5} {'share':>6} {'hand':>5} {'model':>6} {'recall (model)':>15}")
    for accounts, signals, pace in itertools.product((20, 50, 200), (True, False), PACES):
        scen = f"{accounts}a-s02-{'sig' if signals else 'nosig'}-test-{pace}"
        spec = CampaignSpec(
            scen,
            accounts=accounts,
            start_ms=injection.start_ms,
            family="testimonial",
            duration_s=PACES[pace],
            share=0.02,
            signals=signals,
            seed=seed,
            warm_up=WARM_UP,
        )
        campaign = build_campaign(spec, injection.background)
        found = []
        for rs in (hand, ruleset):
            run = injection.run(campaign, rs)
            found.append(
                (
                    any(f.rule_id == CAMPAIGN_RULE and f.status == "live" for f in run.findings),
                    len(flagged_accounts(run) & campaign.account_ids) / accounts,
                )
            )
        print(
            f"   {scen:<28} {len(campaign.script_events):>5} {achieved_share(campaign, injection.background):>6.1%} "
            f"{'yes' if found[0][0] else 'no':>5} {'yes' if found[1][0] else 'no':>6} {found[1][1]:>15.2f}"
        )


FACTORS = {
    "stream": lambda s: s.stream,
    "accounts": lambda s: f"{s.accounts}",
    "share": lambda s: s.name.split("-")[1],
    "signals": lambda s: s.name.split("-")[2],
    "family": lambda s: s.name.split("-")[3],
    "pace": lambda s: s.name.split("-")[4],
}


def print_breakdown(scores: list[Score]) -> None:
    """Detection and account recall per value of each grid factor, to see what the misses share."""
    print("\n== by factor (all streams)")
    print(
        f"   {'factor':<9} {'value':<7} {'n':>3} {'detected':>9} {'≤ 60 s':>7} {'median t':>9} "
        f"{'recall':>7} {'precision':>9} {'suspend':>8}"
    )
    for factor, key in FACTORS.items():
        groups: dict[str, list[Score]] = {}
        for s in scores:
            groups.setdefault(key(s), []).append(s)
        for value, group in groups.items():
            lat = sorted(s.latency_s for s in group if s.latency_s is not None)
            tp, fp = sum(s.tp for s in group), sum(s.fp for s in group)
            print(
                f"   {factor:<9} {value:<7} {len(group):>3} {sum(s.detected for s in group) / len(group):>9.0%} "
                f"{sum(s.fast_enough for s in group) / len(group):>7.0%} "
                f"{fmt(lat[len(lat) // 2] if lat else None, '.1f'):>8}s "
                f"{tp / sum(s.accounts for s in group):>7.2f} {fmt(tp / (tp + fp) if tp + fp else None, '.3f'):>9} "
                f"{sum(s.suspended for s in group) / len(group):>8.0%}"
            )


def print_some(lines: list[str], limit: int) -> None:
    for line in lines[:limit]:
        print(line)
    if len(lines) > limit:
        print(f"      … and {len(lines) - limit} more")


def summarise(
    organic: dict[str, dict[str, bool]],
    scores: list[Score],
    crowds: list[CrowdResult],
    imitations: list[tuple[str, bool, float]],
    hires_ok: bool,
    limit: int,
) -> int:
    print_breakdown(scores)
    print("\n== targets")
    big = [s for s in scores if s.accounts >= DETECT_MIN_ACCOUNTS]
    slow_det = [s for s in big if not s.fast_enough]
    ok_detect = not slow_det
    from_start = sum(1 for s in big if s.detected and (s.latency_s or 0.0) <= DETECT_WITHIN_S)
    print(
        f"   every campaign of ≥ {DETECT_MIN_ACCOUNTS} accounts detected within {DETECT_WITHIN_S:.0f} s "
        f"of event time after its {DETECT_MIN_ACCOUNTS}th account: {len(big) - len(slow_det)}/{len(big)} … "
        f"{'PASS' if ok_detect else 'FAIL'}  ({from_start}/{len(big)} within {DETECT_WITHIN_S:.0f} s of its start)"
    )
    print_some(
        [f"      {s.label}: {'not detected' if not s.detected else f'after {s.latency_s:.1f} s'}" for s in slow_det],
        limit,
    )
    tp, fp = sum(s.tp for s in scores), sum(s.fp for s in scores)
    n_bots = sum(s.accounts for s in scores)
    p_all = tp / (tp + fp) if tp + fp else None
    r_all = tp / n_bots if n_bots else 0.0
    bad = [s for s in scores if not s.accounts_ok]
    ok_acc = not bad
    print(
        f"   account-level precision ≥ {MIN_PRECISION} and recall ≥ {MIN_RECALL} in every scenario: "
        f"{len(scores) - len(bad)}/{len(scores)} … {'PASS' if ok_acc else 'FAIL'}  "
        f"(pooled: precision {fmt(p_all, '.3f')}, recall {r_all:.3f}, {tp} TP, {fp} FP of {n_bots} bots)"
    )
    print_some([f"      {s.label}: precision {fmt(s.precision)}, recall {s.recall:.2f}" for s in bad], limit)
    ok_org = True
    for name, t in organic.items():
        ok = t["no_suspend"] and t["no_mute"]
        ok_org &= ok
        print(
            f"   {name} alone: no suspension {'PASS' if t['no_suspend'] else 'FAIL'}, "
            f"no account muted {'PASS' if t['no_mute'] else 'FAIL'}"
        )
    for s in scores:
        if s.organic_alerts:
            print(f"   note: {s.label}: {s.organic_alerts} campaign alert(s) on organic templates during the run")
    detected = sum(s.detected for s in scores)
    ok_recall = detected / max(1, len(scores)) >= MIN_CAMPAIGN_RECALL and (p_all or 0.0) >= MIN_POOLED_PRECISION
    print(
        f"   campaign recall ≥ {MIN_CAMPAIGN_RECALL} and pooled account precision ≥ {MIN_POOLED_PRECISION}: "
        f"{detected}/{len(scores)}, {fmt(p_all, '.3f')} … {'PASS' if ok_recall else 'FAIL'}"
    )
    alerted = sum(1 for c in crowds if c.alerts)
    flagged = sum(c.flagged for c in crowds)
    acted = sum(c.room_actions for c in crowds)
    ok_crowds = flagged == 0 and acted == 0
    print(
        f"   genuine shopper crowds answering the host, (c) and (f): 0 accounts muted or named and no room action: "
        f"{flagged} of {sum(c.accounts for c in crowds)} accounts flagged, {acted} room actions, "
        f"{alerted}/{len(crowds)} crowds alerted … {'PASS' if ok_crowds else 'FAIL'}"
    )
    print_some(
        [
            f"      {c.label}: {c.alerts} alerts, {c.flagged} flagged, {c.top}"
            for c in crowds
            if c.flagged or c.room_actions
        ],
        limit,
    )
    missed = [(label, det, rec) for label, det, rec in imitations if not det or rec < MIN_RECALL]
    ok_imitations = not missed and hires_ok
    print(
        f"   hires imitating an answering crowd without orders or without prior presence, (e) and (f): caught with "
        f"account recall ≥ {MIN_RECALL}: {len(imitations) - len(missed)}/{len(imitations)} (e), "
        f"{'all' if hires_ok else 'NOT all'} (f) … {'PASS' if ok_imitations else 'FAIL'}"
    )
    print_some(
        [f"      {label}: {'detected' if det else 'not detected'}, recall {rec:.2f}" for label, det, rec in missed],
        limit,
    )
    all_ok = ok_detect and ok_acc and ok_org and ok_recall and ok_crowds and ok_imitations
    print(f"   overall: {'PASS' if all_ok else 'FAIL'}")
    return 0


# -- many rooms: cross-room rings, and one account one action ------------------------------------

RING_RULE = "ring.cross_room_account"
RING_ROOMS = 50
RING_PER_ROOM = 1500  # real comments per room over the hour: a ring account's one message is ≤ 1 % of a room


def replay_embedded(
    events: list[dict[str, Any]], rules: Path | None, per_room_accounts: bool = False
) -> tuple[list[Finding], list[dict[str, Any]], RunStats]:
    """The events replayed by the embedded runtime (as ``livewatch replay`` does): the alerts with account
    pseudonyms as written, and the action records as written to actions.jsonl. ``per_room_accounts``: the
    account ladders kept per room, as before issue #14 (and as the Kafka worker still does)."""
    with tempfile.TemporaryDirectory(prefix="livewatch-rings-") as tmp:
        recording = Path(tmp) / "in.jsonl"
        write_jsonl(events, recording)
        findings: list[Finding] = []
        runtime = EmbeddedRuntime(Path(tmp) / "out", rules_dir=rules, on_outcome=lambda o: findings.extend(o.findings))
        if per_room_accounts:
            runtime.engine.accounts = None
        stats = runtime.run(read_jsonl(recording))
        with open(Path(tmp) / "out" / ACTIONS_FILE, encoding="utf-8") as f:
            actions = [json.loads(line) for line in f if line.strip()]
    return findings, actions, stats


def action_counts(actions: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(account action records, distinct action ids among them, ids with more than one distinct record)."""
    by_id: dict[str, set[str]] = {}
    for a in actions:
        if a["subject"]["kind"] == "account":
            by_id.setdefault(a["action_id"], set()).add(json.dumps(a, sort_keys=True))
    records = sum(1 for a in actions if a["subject"]["kind"] == "account")
    return records, len(by_id), sum(1 for v in by_id.values() if len(v) > 1)


def eval_one_action(data: Path, rules: Path | None, seed: int) -> bool:
    """Item 3: ten flood rooms sharing hired accounts, replayed by the embedded runtime — account action
    records against action ids, with the account ladders per room (before) and per account (now)."""
    events, hired = shared_flood_rooms(load_real_texts(data), seed)
    print(
        f"\n== one account, one action: 10 flood rooms sharing {len(hired)} hired accounts (25 per room), "
        f"{len(events):,} events, embedded replay"
    )
    ok = True
    for label, per_room in (("account ladders per room (before)", True), ("account ladders per account", False)):
        _, actions, _ = replay_embedded(events, rules, per_room_accounts=per_room)
        records, ids, conflicting = action_counts(actions)
        muted = {a["subject"]["id"] for a in actions if a["action"] == "mute_account"}
        if not per_room:
            ok = records == ids and conflicting == 0
        print(
            f"   {label}: {records} account action records for {ids} action ids ({conflicting} ids with "
            f"differing records); {len(muted & hired)}/{len(hired)} hired accounts muted, "
            f"{len(muted - hired)} others"
        )
    print(f"   one record per action id: {'PASS' if ok else 'FAIL'}")
    return ok


def eval_rings(data: Path, rules: Path | None, seed: int) -> bool:
    """Item 2: a ring of 30 accounts each in 10 of 50 rooms at ≤ 1 % of each room's comments, with 60
    genuine viewers who also visit 6 rooms each, replayed by the embedded runtime."""
    texts = load_real_texts(data)
    backgrounds = room_backgrounds(texts, RING_ROOMS, RING_PER_ROOM, 3600.0, seed)
    ring = build_ring(list(backgrounds), texts, seed)
    events = list(heapq.merge(*backgrounds.values(), ring.events, key=lambda e: e["ts"]))
    ring_msgs = Counter(e["room_id"] for e in ring.events if e["user_id"] in ring.ring_accounts)
    room_msgs = Counter(e["room_id"] for e in events)
    worst = max(ring_msgs[r] / room_msgs[r] for r in backgrounds)
    per_room = max(len(v) for v in ring.per_room.values())
    print(
        f"\n== cross-room ring, seed {seed}: {len(ring.ring_accounts)} accounts each in 10 of {RING_ROOMS} rooms "
        f"(≤ {per_room} ring accounts and ≤ {worst:.2%} of the comments in any room), "
        f"{len(ring.control_accounts)} genuine viewers in 6 rooms each, {len(events):,} events of real chat, "
        "embedded replay"
    )
    findings, actions, stats = replay_embedded(events, rules)
    pseudonym = Pseudonymizer(DEV_KEY).user
    real = {pseudonym(a): a for a in {e["user_id"] for e in events}}
    found = {real[f.subject.id] for f in findings if f.rule_id == RING_RULE and f.status == "live"}
    muted = {a["subject"]["id"] for a in actions if a["action"] == "mute_account"}
    flagged = found | muted
    tp = len(flagged & ring.ring_accounts)
    precision = tp / len(flagged) if flagged else None
    recall = tp / len(ring.ring_accounts)
    room_actions = Counter(a["action"] for a in actions if a["subject"]["kind"] == "room")
    links = {
        real[f.subject.id]: [str(x) for x in f.details.get("ring_links", [])]  # type: ignore[union-attr]
        for f in findings
        if f.rule_id == RING_RULE
    }
    groups = rings(links)
    print(
        f"   {stats.events:,} events in {stats.elapsed_s:.1f} s; ring findings {len(found)}, accounts muted "
        f"{len(muted)} ({len(muted & ring.ring_accounts)} of the ring, {len(muted & ring.control_accounts)} "
        f"genuine hoppers, {len(muted - ring.ring_accounts - ring.control_accounts)} other viewers); room actions: "
        f"{dict(room_actions) or 'none'}"
    )
    print(
        f"   rings linked (shared script bands, devices, IP prefixes): {len(groups)}, sizes "
        f"{[len(g) for g in groups[:5]]}, the largest holding {len(groups[0] & ring.ring_accounts) if groups else 0} "
        "ring accounts"
    )
    ok = precision is not None and precision >= MIN_PRECISION and recall >= MIN_RECALL
    print(
        f"   account recall ≥ {MIN_RECALL} and precision ≥ {MIN_PRECISION}: recall {recall:.3f}, precision "
        f"{fmt(precision, '.3f')} ({tp} TP, {len(flagged) - tp} FP) … {'PASS' if ok else 'FAIL'}"
    )
    return ok


# -- near-duplicates -----------------------------------------------------------------------------


def simhash64(text: str) -> int:
    """The first version's fingerprint (kept here as the baseline): 64-bit SimHash of character bigrams."""
    import hashlib

    grams = [text[i : i + 2] for i in range(len(text) - 1)] or [text]
    weights = [0] * 64
    for g in grams:
        h = int.from_bytes(hashlib.blake2b(g.encode("utf-8"), digest_size=8).digest(), "little")
        for bit in range(64):
            weights[bit] += 1 if h >> bit & 1 else -1
    return sum(1 << bit for bit in range(64) if weights[bit] > 0)


def near_duplicates(data: Path, seed: int, pairs: int = 3000) -> int:
    """How often each method merges two variants of one script, and two texts that are not one script."""
    import random

    from detectors.floods import band_keys, bigrams, similarity
    from scripts.flood_campaigns import TEMPLATES, fill_template, vary

    settings = next(d for d in floods_on()[0].detectors if d.name == DETECTOR).settings
    rng = random.Random(seed)
    scripts = [t for family in ("testimonial", "urgency") for t in TEMPLATES[family]]

    def masked(text: str) -> str:
        return mask_digits(normalize(text).text)

    def variant(template: str) -> str:
        return masked(vary(fill_template(template, rng), rng))

    organic = sorted(
        {
            masked(e["text"])
            for e in load_bilibili(data / STREAMS[1])
            if len(masked(e["text"])) >= settings.min_template_chars
        }
    )
    same = [(variant(t), variant(t)) for t in (rng.choice(scripts) for _ in range(pairs))]
    other = [(variant(a), variant(b)) for a, b in (rng.sample(scripts, 2) for _ in range(pairs))]
    real = [tuple(rng.sample(organic, 2)) for _ in range(pairs)]

    def by_simhash(a: str, b: str) -> bool:
        return a == b or bin(simhash64(a) ^ simhash64(b)).count("1") <= 3

    def by_minhash(a: str, b: str) -> bool:
        if a == b:
            return True
        if not set(band_keys(a)) & set(band_keys(b)):  # never compared: no LSH band in common
            return False
        jaccard, containment = similarity(bigrams(a), bigrams(b))
        return jaccard >= settings.min_jaccard or containment >= settings.min_containment

    print(f"near-duplicate merging, {pairs:,} pairs each (seed {seed}); texts normalised, numbers masked")
    print(f"   {'method':<58} {'same script':>12} {'two scripts':>12} {'two real danmaku':>17}")
    for name, merge in (
        ("SimHash-64, Hamming ≤ 3 (first version)", by_simhash),
        (
            f"MinHash LSH 16×2 + Jaccard ≥ {settings.min_jaccard} or containment ≥ {settings.min_containment}",
            by_minhash,
        ),
    ):
        rates = [sum(merge(a, b) for a, b in group) / len(group) for group in (same, other, real)]
        print(f"   {name:<58} {rates[0]:>12.1%} {rates[1]:>12.1%} {rates[2]:>17.2%}")
    print("   (same script: want high — variants of one script are one template; the others: want ≈ 0)")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data", type=Path, default=REPO.parent / "shared" / "data", help="folder with the Bilibili danmaku dumps"
    )
    ap.add_argument("--rules", type=Path, default=None, help="rules directory (default: rules/)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a reduced grid (10 scenarios per stream)")
    ap.add_argument(
        "--at",
        type=float,
        default=0.5,
        help="injection point: quantile of the stream's messages before it (default 0.5)",
    )
    ap.add_argument("--tail", type=float, default=600.0, help="seconds run after each campaign ends")
    ap.add_argument("--top", type=int, default=8, help="flagged templates to list for the organic streams")
    ap.add_argument("--list", type=int, default=12, help="failing scenarios to list per target")
    ap.add_argument(
        "--as-shipped",
        action="store_true",
        help="use the rule statuses as shipped (by default flood rules set 'off' are switched on)",
    )
    ap.add_argument(
        "--no-background-signals",
        action="store_true",
        help="real viewers carry no account signals (by default each gets stable organic-looking ones)",
    )
    ap.add_argument(
        "--hand",
        action="store_true",
        help="decide campaigns by the hand thresholds, ignoring the trained model in the rules",
    )
    ap.add_argument(
        "--near-duplicates",
        action="store_true",
        help="only measure near-duplicate merging: SimHash (first version) vs MinHash LSH",
    )
    ap.add_argument(
        "--only",
        choices=("grid", "rooms"),
        default=None,
        help="run only the per-stream grid (a–d), or only the many-room sections (cross-room ring, one "
        "account one action); by default all",
    )
    args = ap.parse_args(argv)
    if args.near_duplicates:
        return near_duplicates(args.data, args.seed)
    if args.only == "rooms":
        return many_rooms(args)
    if not 0 <= args.at < 1:
        ap.error("--at must be in [0, 1)")

    ruleset, switched_on = floods_on(args.rules, args.as_shipped)
    detector = next((d for d in ruleset.detectors if d.name == DETECTOR), None)
    if detector is None:
        print(
            f"no {DETECTOR!r} detector running in {ruleset.directory}: add rules/floods.yaml, or turn its "
            "rules on (run without --as-shipped)",
            file=sys.stderr,
        )
        return 2
    if args.hand and detector.settings.model is not None:
        ruleset = without_model(ruleset)
        detector = detector_of(ruleset)
    decision = "trained model" if detector.settings.model is not None else "hand thresholds"
    print(
        f"ruleset {ruleset.version} ({ruleset.directory}); seed {args.seed}; "
        f"{'quick' if args.quick else 'full'} grid; campaigns decided by the {decision}; real viewers "
        f"{'without' if args.no_background_signals else 'with organic-looking'} account signals"
    )
    if switched_on:
        print(
            "rules shipped off, switched on for this evaluation: "
            + ", ".join(f"{rule} → {status}" for rule, status in switched_on.items())
        )
    organic: dict[str, dict[str, bool]] = {}
    scores: list[Score] = []
    crowds: list[CrowdResult] = []
    imitations: list[tuple[str, bool, float]] = []
    for stream in STREAMS:
        path = args.data / stream
        if not path.exists():
            print(f"\n{path} not found: skipped")
            continue
        t, s = eval_stream(path, ruleset, args, crowds, imitations)
        organic[stream] = t
        scores += s
    if not organic:
        print(f"no Bilibili streams in {args.data}", file=sys.stderr)
        return 2
    douyin = args.data / DOUYIN
    hires_ok = eval_douyin(douyin, ruleset, args.seed, crowds) if douyin.exists() else False
    status = summarise(organic, scores, crowds, imitations, hires_ok, args.list)
    if args.only is None:  # the full run also prints the many-rooms sections
        many_rooms(args)
    return status


def many_rooms(args: argparse.Namespace) -> int:
    ring_ok = eval_rings(args.data, args.rules, args.seed)
    one_ok = eval_one_action(args.data, args.rules, args.seed)
    verdict = {True: "PASS", False: "FAIL"}
    print(f"\n== many rooms: cross-room ring {verdict[ring_ok]}, one account one action {verdict[one_ok]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
