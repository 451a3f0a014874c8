"""The fault suite (issue #12): livewatch under faults, against the real broker, judged by an oracle.

    python scripts/faults.py                       # long form: ≥ 100,000 events, every scenario
    python scripts/faults.py --quick               # the CI form: ≈ 20,000 events
    python scripts/faults.py --only kill --kills 30 --broker 127.0.0.1:19092

Input: the demo's violation rooms copied many times (each copy with its own room and accounts) plus the
real Bilibili danmaku stream. The oracle, in the style of Kafka's transactions system test: the embedded
replay of the same recording decides what the outputs must be; after the scenario, every alert and action on
the broker is read back and compared — lost (expected, not on the broker), extra (on the broker, not
expected), duplicate (more than one record of one id), different (a copy that is not the replay's) — and
the consumer group's committed offsets must reach the end of every input (input set = decided set). Each
scenario prints one line: "N events, lost 0, extra 0, duplicate actions 0 …" and the time from the last
fault to complete outputs.

Scenarios:
kill  one worker SIGKILLed ``--kills`` times, each 0.1–1 s after it owns its partitions (deciding), and
      restarted at once on the same data directory; then left to finish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402

from pipeline.kafka.recording import publish  # noqa: E402
from pipeline.kafka.security import client_kwargs
from pipeline.kafka.topics import INPUT_NAMES  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator import demo_lines  # noqa: E402
from scripts.bench import bilibili_events  # noqa: E402
from tests.kafka_harness import OUTPUT_IDS, Broker, Worker, replay_outputs, start_broker  # noqa: E402

PARTITIONS = 4


def demo_copies(copies: int) -> Iterator[dict[str, Any]]:
    """The demo's rooms ``copies`` times over, each copy with its own rooms, accounts and event ids."""
    demo = [json.loads(line) for line in demo_lines()]
    for c in range(copies):
        for e in demo:
            e = dict(e, event_id=f"{e['event_id']}~{c}", room_id=f"{e['room_id']}~{c}")
            if e.get("user_id"):
                e["user_id"] = f"{e['user_id']}~{c}"
            yield e


def recording(path: Path, events: int) -> int:
    """Write the scenario input (demo copies + Bilibili danmaku, in event-time order); returns its size."""
    demo = list(demo_copies(1))
    copies = max(1, events // 2 // len(demo))
    lines = list(demo_copies(copies))
    lines += bilibili_events(path.parent, max(0, events - len(lines)), start_ms=min(e["ts"] for e in demo))
    lines.sort(key=lambda e: e["ts"])  # stable: a room's own order is kept
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in lines), encoding="utf-8")
    return len(lines)


def expected(path: Path, out: Path) -> dict[str, dict[str, str]]:
    """The embedded replay's alerts and actions, by id: what the broker must hold after any scenario."""
    return replay_outputs(path, out)


async def read_outputs(settings: Settings, isolation: str = "read_committed") -> dict[str, dict[str, list[str]]]:
    """Every record on live.alerts and live.actions, by id (read to the end offsets, no group)."""
    found: dict[str, dict[str, list[str]]] = {}
    for name, key in OUTPUT_IDS:
        consumer = AIOKafkaConsumer(**client_kwargs(settings), enable_auto_commit=False, isolation_level=isolation)
        await consumer.start()
        try:
            tps = [TopicPartition(settings.topic(f"live.{name}"), p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: dict[str, list[str]] = {}
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    for m in messages:
                        records.setdefault(json.loads(m.value)[key], []).append(m.value.decode())
            found[name] = records
        finally:
            await consumer.stop()
    return found


async def undecided(settings: Settings) -> int:
    """Input messages past the consumer group's committed offsets (0: everything was decided)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    consumer = AIOKafkaConsumer(**client_kwargs(settings))
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [TopicPartition(settings.topic(n), p) for n in INPUT_NAMES for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return sum(
            max(0, ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0))
            for tp in tps
        )
    finally:
        await consumer.stop()
        await admin.close()


@dataclass
class Verdict:
    scenario: str
    events: int
    lost: int
    extra: int
    duplicate_actions: int
    duplicate_alerts: int
    different: int
    undecided: int
    complete_after_s: float | None  # from the last fault to complete outputs; None: never complete
    uncommitted_duplicate_actions: int = 0  # what a consumer reading read_uncommitted would see twice

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.duplicate_actions or self.different or self.undecided)

    def line(self) -> str:
        complete = (
            f"outputs complete {self.complete_after_s:.1f} s after the last fault"
            if self.complete_after_s is not None
            else "outputs NOT complete"
        )
        return (
            f"{self.scenario}: {self.events:,} events, lost {self.lost}, extra {self.extra}, "
            f"duplicate actions {self.duplicate_actions} (duplicate alerts {self.duplicate_alerts}), "
            f"different {self.different}, undecided inputs {self.undecided}; {complete} "
            f"(read_uncommitted, aborted records included: {self.uncommitted_duplicate_actions} duplicate actions)"
        )


def judge(want: dict[str, dict[str, str]], got: dict[str, dict[str, list[str]]]) -> tuple[int, int, int, int, int]:
    """lost, extra, duplicate actions, duplicate alerts, different copies."""
    lost = sum(len(set(want[n]) - set(got[n])) for n in want)
    extra = sum(len(set(got[n]) - set(want[n])) for n in want)
    dup_actions = sum(len(c) - 1 for c in got["actions"].values())
    dup_alerts = sum(len(c) - 1 for c in got["alerts"].values())
    different = sum(1 for n in want for k, copies in got[n].items() if k in want[n] for c in copies if c != want[n][k])
    return lost, extra, dup_actions, dup_alerts, different


def show_differences(want: dict[str, dict[str, str]], got: dict[str, dict[str, list[str]]], limit: int = 3) -> None:
    """Print the first copies that differ from the replay, field by field: what an analyst needs to start."""
    shown = 0
    for n in want:
        for k, copies in got[n].items():
            for c in copies:
                if k in want[n] and c != want[n][k] and shown < limit:
                    mine, theirs = json.loads(c), json.loads(want[n][k])
                    fields = {f: (mine.get(f), theirs.get(f)) for f in theirs if mine.get(f) != theirs.get(f)}
                    print(f"  different {n[:-1]} {k} ({theirs.get('rule_id')}): kafka vs replay {fields}"[:2000])
                    shown += 1


def complete(settings: Settings, want: dict[str, dict[str, str]]) -> bool:
    got = asyncio.run(read_outputs(settings))
    return all(set(got[n]) >= set(want[n]) for n in want)


def scenario_kill(
    broker: Broker,
    tmp: Path,
    path: Path,
    n: int,
    want: dict[str, dict[str, str]],
    kills: int,
    exactly_once: bool = True,
) -> Verdict:
    prefix = f"kill{time.time_ns() % 10**9}."  # fresh topics and group, also on a broker used before
    settings = Settings(broker=broker.url, topic_prefix=prefix, app_id=f"{prefix}livewatch", partitions=PARTITIONS)
    lines = path.read_bytes().splitlines()
    asyncio.run(publish(settings, enumerate(lines, start=1), progress_every_s=3600))
    rng = random.Random(kills)
    env = {"LIVEWATCH_EXACTLY_ONCE": "true" if exactly_once else "false"}
    worker = Worker(broker, prefix, tmp, "kill-w", env=env)  # one data directory for every incarnation
    last_fault = time.monotonic()
    for _ in range(kills):
        # killed while it works: 0.1–1 s after it owns its partitions (Faust's kill script spaces kills
        # 0.1–1 s from the start; a Python worker needs longer than that to start, so it would die idle)
        worker.wait_assigned(timeout=120)
        time.sleep(rng.uniform(0.1, 1.0))
        worker.stop(signal.SIGKILL)
        last_fault = time.monotonic()
        worker = Worker(broker, prefix, tmp, "kill-w", env=env)
    print(f"  {kills} kills done; waiting for complete outputs", flush=True)
    done_after: float | None = None
    deadline = last_fault + 120
    try:
        while time.monotonic() < deadline:
            if complete(settings, want):
                done_after = time.monotonic() - last_fault
                break
            time.sleep(0.5)
        # the rest of the input decided and committed (Faust commits every 2.8 s)
        limit = time.monotonic() + 60
        while asyncio.run(undecided(settings)) and time.monotonic() < limit:
            time.sleep(1)
    finally:
        worker.stop()
    got = asyncio.run(read_outputs(settings))
    lost, extra, dup_a, dup_l, diff = judge(want, got)
    show_differences(want, got)
    uncommitted = asyncio.run(read_outputs(settings, "read_uncommitted"))
    return Verdict(
        f"kill ×{kills}" + (" (exactly-once)" if exactly_once else " (at-least-once)"),
        n,
        lost,
        extra,
        dup_a,
        dup_l,
        diff,
        asyncio.run(undecided(settings)),
        done_after,
        uncommitted_duplicate_actions=judge(want, uncommitted)[2],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the CI form: ≈ 20,000 events")
    ap.add_argument("--events", type=int, help="input size (default 100,000; 20,000 with --quick)")
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--only", default="kill", help="scenarios, comma-separated (kill)")
    ap.add_argument(
        "--at-least-once", action="store_true", help="workers without transactions (LIVEWATCH_EXACTLY_ONCE=false)"
    )
    ap.add_argument("--broker", help="host:port of a running broker (default: start one)")
    args = ap.parse_args(argv)
    events = args.events or (20_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory(prefix="livewatch-faults-") as t:
        tmp = Path(t)
        path = tmp / "input.jsonl"
        n = recording(path, events)
        print(f"input: {n:,} events; replaying it embedded for the oracle", flush=True)
        want = expected(path, tmp / "embedded")
        print(f"  expected: {len(want['alerts']):,} alerts, {len(want['actions']):,} actions", flush=True)
        broker = None
        if args.broker:
            host, port = args.broker.rsplit(":", 1)
            broker = Broker(int(port), tmp / "external")
        else:
            broker = start_broker(tmp / "kafka")
        verdicts = []
        try:
            for name in args.only.split(","):
                print(f"\n[{name}]", flush=True)
                if name == "kill":
                    verdicts.append(scenario_kill(broker, tmp, path, n, want, args.kills, not args.at_least_once))
                else:
                    raise SystemExit(f"unknown scenario {name!r}")
                print("  " + verdicts[-1].line(), flush=True)
        finally:
            if not args.broker:
                broker.stop()
        print()
        for v in verdicts:
            print(("PASS " if v.ok else "FAIL ") + v.line())
        return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
