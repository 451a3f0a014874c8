"""Benchmark the bot-comment flood detector alone — figures to read, not a test.

    python scripts/bench_floods.py [--data ../shared/data] [--rules DIR] [--seconds 3600] [--rate 1000]
                                   [--seed 0] [--skip-real] [--skip-synthetic] [--as-shipped]

(a) Real streams: the detector built from the loaded ruleset, called as the engine calls it —
    ``detector.detect(event, normalize(text), state)`` — over each Bilibili stream (events validated
    beforehand, not timed): events per second after a short warm-up, findings raised, and in a second
    pass under ``tracemalloc`` the peak of Python memory allocated and the final state's size.
(b) A synthetic room at ``--rate`` messages/s for ``--seconds`` of event time (default 1,000/s for an
    hour: 3.6 M messages): real danmaku texts sampled from the streams (fan chants included), one message
    in six a never-seen text (template churn), an audience that keeps growing (new user ids all along,
    each with account signals), and every 20 minutes a 10-minute campaign of 200 hired accounts at 30 %
    of the traffic (at 1,000/s a shorter or smaller one is under the detector's share threshold).
    Every simulated 10 minutes it prints the size of the room's state
    (``len(state.model_dump_json())``), its templates and the process's peak RSS, to show that the state
    stays bounded however long the room runs; and the detector's throughput over that stretch.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detectors.normalize import normalize  # noqa: E402
from schemas.events import DanmakuEvent, UserSignals, event_adapter  # noqa: E402
from scripts.flood_campaigns import (  # noqa: E402
    bot_signals,
    campaign_text,
    floods_on,
    load_bilibili,
    organic_signals,
)

DETECTOR = "bot_flood"
STREAMS = ("bilibili_danmaku_2020-12-11.jsonl", "bilibili_danmaku_2020-12-12.jsonl")
T0 = 1_769_947_200_000  # 2026-02-01 20:00 +08:00
CHECK_EVERY_S = 600
CAMPAIGN_EVERY_S, CAMPAIGN_FOR_S, CAMPAIGN_ACCOUNTS, CAMPAIGN_SHARE = 1200, 600, 200, 0.30
NOVEL_SHARE = 1 / 6
WARMUP = 2_000


def load_detector(rules: Path | None, as_shipped: bool) -> Any:
    """The detector as the loaded ruleset builds it (its rules switched on if they ship off)."""
    ruleset, switched_on = floods_on(rules, as_shipped)
    found = [d for d in ruleset.detectors if d.name == DETECTOR]
    if not found:
        raise SystemExit(
            f"no {DETECTOR!r} detector running in {ruleset.directory}: add rules/floods.yaml, "
            "or turn its rules on (run without --as-shipped)"
        )
    if switched_on:
        print(
            "rules shipped off, switched on for this benchmark: "
            + ", ".join(f"{rule} → {status}" for rule, status in switched_on.items())
        )
    return found[0]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def state_size(state: Any) -> int:
    return len(state.model_dump_json())


def run(detector: Any, events: list[Any]) -> tuple[Any, Counter[str], float]:
    """A fresh state through ``events``: (final state, findings per rule, seconds)."""
    state = detector.state_model()
    findings: Counter[str] = Counter()
    start = time.perf_counter()
    for event in events:
        for f in detector.detect(event, normalize(event.text), state):
            findings[f"{f.rule_id} ({f.status})"] += 1
    return state, findings, time.perf_counter() - start


# -- (a) real streams ----------------------------------------------------------------------------


def bench_real(detector: Any, data: Path) -> list[str]:
    print("== (a) real streams, detector alone (normalize + detect, one core)")
    texts: list[str] = []
    for name in STREAMS:
        path = data / name
        if not path.exists():
            print(f"   {path} not found: skipped")
            continue
        events = [event_adapter.validate_python(e) for e in load_bilibili(path)]
        texts += [e.text for e in events]
        run(detector, events[:WARMUP])  # warm the normalisation caches
        state, findings, elapsed = run(detector, events)
        print(
            f"   {name}: {len(events):,} events in {elapsed:.2f} s — {len(events) / elapsed:,.0f} events/s; "
            f"findings: {dict(findings) or 'none'}"
        )
        norm_start = time.perf_counter()
        for e in events:
            normalize(e.text)
        norm_s = time.perf_counter() - norm_start
        print(f"      normalize alone: {len(events) / norm_s:,.0f} events/s ({norm_s / elapsed:.0%} of the time above)")
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        state, _, traced_s = run(detector, events)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"      tracemalloc: peak {(peak - base) / 2**20:.1f} MiB allocated during the pass, "
            f"{(current - base) / 2**20:.1f} MiB still held at the end (state + caches); "
            f"final state {state_size(state):,} bytes of JSON, {len(state.scripts)} templates "
            f"(and {len(state.once)} texts posted once) "
            f"(pass took {traced_s:.1f} s under tracemalloc)"
        )
    return texts


# -- (b) a synthetic room, one hour at 1,000 messages/s ------------------------------------------


def synthetic(texts: list[str], seconds: int, rate: int, seed: int) -> Iterator[tuple[int, DanmakuEvent]]:
    """(second of event time, event) for a busy room; deterministic for a seed."""
    rng = random.Random(seed)
    signals: dict[str, UserSignals] = {}
    bot_users: dict[str, UserSignals] = {}
    n = 0
    for sec in range(seconds):
        campaign = sec % CAMPAIGN_EVERY_S < CAMPAIGN_FOR_S
        wave = sec // CAMPAIGN_EVERY_S
        family = "testimonial" if wave % 2 == 0 else "urgency"
        population = 2_000 + sec * 30  # new viewers keep arriving: ~110k distinct ids in an hour
        for k in range(rate):
            ts = T0 + sec * 1000 + k * 1000 // rate
            roll = rng.random()
            if campaign and roll < CAMPAIGN_SHARE:
                i = rng.randrange(CAMPAIGN_ACCOUNTS)
                user = f"bot-w{wave}-{i}"
                if user not in bot_users:
                    bot_users[user] = UserSignals(**bot_signals(f"w{wave}", i, rng))
                text, sig = campaign_text(family, rng), bot_users[user]  # type: ignore[arg-type]
            else:
                user = f"v{rng.randrange(population)}"
                if user not in signals:
                    signals[user] = UserSignals(**organic_signals(user, random.Random(user)))
                sig = signals[user]
                if roll < CAMPAIGN_SHARE + NOVEL_SHARE:  # a text nobody has sent before
                    text = "".join(chr(0x4E00 + rng.randrange(20_000)) for _ in range(rng.randint(5, 14)))
                else:
                    text = rng.choice(texts) if texts else "然然超可爱"
            yield (
                sec,
                DanmakuEvent(
                    event_id=f"syn-{n}", room_id="synthetic", platform="bench", ts=ts, user_id=user, text=text, user=sig
                ),
            )
            n += 1


def bench_synthetic(detector: Any, texts: list[str], seconds: int, rate: int, seed: int) -> None:
    total = seconds * rate
    print(
        f"\n== (b) synthetic room: {rate:,} messages/s for {seconds:,} s of event time ({total:,} messages); "
        f"campaigns of {CAMPAIGN_ACCOUNTS} accounts for {CAMPAIGN_FOR_S} s every {CAMPAIGN_EVERY_S} s at "
        f"{CAMPAIGN_SHARE:.0%}; {NOVEL_SHARE:.0%} never-seen texts"
    )
    print(
        f"   {'event time':>10} {'messages':>10} {'state JSON':>12} {'templates':>9} {'accounts':>9} "
        f"{'findings':>9} {'detector/s':>11} {'peak RSS':>9}"
    )
    state = detector.state_model()
    findings: Counter[str] = Counter()
    named: set[str] = set()
    detect_s = 0.0
    seg_s, seg_n, done = 0.0, 0, 0
    wall = time.perf_counter()
    sizes = []

    def checkpoint(sec: int) -> None:
        size = state_size(state)
        sizes.append(size)
        accounts = sum(len(t.accounts) for t in state.scripts.values())
        print(
            f"   {sec // 60:>7} min {done:>10,} {size:>12,} {len(state.scripts):>9,} {accounts:>9,} "
            f"{sum(findings.values()):>9,} {seg_n / seg_s if seg_s else 0:>11,.0f} {peak_rss_mb():>7.0f} MB",
            flush=True,
        )

    last_sec = 0
    for sec, event in synthetic(texts, seconds, rate, seed):
        if sec != last_sec and sec % CHECK_EVERY_S == 0:
            checkpoint(sec)
            seg_s, seg_n = 0.0, 0
        last_sec = sec
        start = time.perf_counter()
        for f in detector.detect(event, normalize(event.text), state):
            findings[f"{f.rule_id} ({f.status})"] += 1
            if f.subject.kind == "account":
                named.add(f.subject.id)
        elapsed = time.perf_counter() - start
        detect_s += elapsed
        seg_s += elapsed
        seg_n += 1
        done += 1
    checkpoint(seconds)
    print(
        f"   detector: {done:,} messages in {detect_s:.1f} s — {done / detect_s:,.0f} messages/s "
        f"(normalize + detect; generating the events took the rest of {time.perf_counter() - wall:.0f} s wall)"
    )
    print(f"   findings: {dict(sorted(findings.items()))}")
    bots = sum(u.startswith("bot-") for u in named)
    waves = len(range(0, seconds, CAMPAIGN_EVERY_S))
    print(
        f"   accounts named by account findings: {len(named):,}, of which hired: {bots:,} "
        f"(of {waves * CAMPAIGN_ACCOUNTS:,} that took part in {waves} campaign(s)); viewers: {len(named) - bots:,}"
    )
    if len(sizes) >= 3:
        later = sizes[1:]
        print(
            f"   state size after the first checkpoint: min {min(later):,}, max {max(later):,} bytes "
            f"(max/min {max(later) / max(min(later), 1):.2f})"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--rules", type=Path, default=None, help="rules directory (default: rules/)")
    ap.add_argument("--seconds", type=int, default=3600, help="event time of the synthetic room (s)")
    ap.add_argument("--rate", type=int, default=1000, help="synthetic messages per second of event time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--as-shipped",
        action="store_true",
        help="use the rule statuses as shipped (by default flood rules set 'off' are switched on)",
    )
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    args = ap.parse_args(argv)

    detector = load_detector(args.rules, args.as_shipped)
    print(f"detector {detector.name}: {json.dumps(detector.settings.model_dump(), ensure_ascii=False)}")
    texts = bench_real(detector, args.data) if not args.skip_real else []
    if not args.skip_synthetic:
        if not texts:  # the synthetic room samples real texts even when (a) is skipped
            for name in STREAMS:
                if (args.data / name).exists():
                    texts += [e["text"] for e in load_bilibili(args.data / name)]
        bench_synthetic(detector, texts, args.seconds, args.rate, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
