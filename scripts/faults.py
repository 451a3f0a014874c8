"""The fault suite (issue #12): livewatch under faults, against the real broker, judged by an oracle.

    python scripts/faults.py                       # long form: ≥ 100,000 events, every scenario
    python scripts/faults.py --quick               # ≈ 20,000 events (too few for scale's joins to come
                                                   # mid-stream on 2 cores: its line says when they did not)
    python scripts/faults.py --only kill --kills 30 --broker 127.0.0.1:19092

Input: the demo's violation rooms copied many times (each copy with its own room and accounts) plus the
real Bilibili danmaku stream. The oracle, in the style of Kafka's transactions system test: the embedded
replay of the same recording decides what the outputs must be; after the scenario, every alert and action on
the broker is read back and compared — lost (expected, not on the broker), extra (on the broker, not
expected), duplicate (more than one record of one id), different (a copy that is not the replay's) — and
the consumer group's committed offsets must reach the end of every input (input set = decided set). Each
scenario prints one line: "N events, lost 0, extra 0, duplicate actions 0 …" and the time from the last
fault to complete outputs.

Scenarios (each on fresh topics and a fresh consumer group; the input is published before the first
worker starts, so its cross-topic order is the file's and the replay is the exact oracle; faults are
placed by progress — the workers' decided-event count — so that each one hits a worker mid-stream):
kill          one worker SIGKILLed ``--kills`` times, each 0.1–1 s after it owns its partitions
              (deciding), and restarted at once on the same data directory; then left to finish.
broker        the broker stopped (deploy/kafka/stop.sh: controlled shutdown) at 25 %, 50 % and 75 % of
              the input decided, kept down ``--down`` s, restarted on its data (start.sh,
              KAFKA_KEEP_DATA=1); the one worker must stay up throughout. Needs a broker it owns: it
              starts its own even when ``--broker`` is given.
scale         a second and a third worker join while the first decides (each its own data directory),
              then two of them leave (SIGTERM), one after the other, mid-stream.
slow-send     the worker's Produce requests (outputs, dead letters, changelog) held 200–500 ms each by a
              proxy (scripts/faultproxy.py) for ``--fault-s`` s, from 10 % of the input decided.
failing-send  the same proxy resets every connection that carries a Produce request, for ``--fault-s`` s.
              Both need a broker that advertises the proxy (a second listener): their own, always.

A worker that exits on its own during a scenario is restarted on its data directory (as a supervisor
would) and counted: "worker exits" in the verdict. Workers run with exactly-once outputs, the default
(``--at-least-once``: without); the oracle reads read_committed, as consumers must, and also reports what a
read_uncommitted consumer would see twice.
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
from concurrent.futures import Future, ThreadPoolExecutor
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
from scripts.faultproxy import FaultProxy  # noqa: E402
from tests.kafka_harness import OUTPUT_IDS, Broker, Worker, free_port, replay_outputs, start_broker  # noqa: E402

PARTITIONS = 4
SCENARIOS = ("kill", "broker", "scale", "slow-send", "failing-send")


def demo_copies(copies: int, first: int = 0) -> Iterator[dict[str, Any]]:
    """The demo's rooms ``copies`` times over, each copy with its own rooms, accounts and event ids."""
    demo = [json.loads(line) for line in demo_lines()]
    for c in range(first, first + copies):
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
    if len(lines) < events:  # the Bilibili stream has 48,598 events: more demo copies make up the rest
        lines += demo_copies(-(-(events - len(lines)) // len(demo)), first=copies)
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
    worker_exits: int = 0  # workers that exited on their own (restarted by the scenario)
    faults_at: tuple[float, ...] = ()  # share of the input decided when each fault began
    uncommitted_duplicate_actions: int = 0  # what a consumer reading read_uncommitted would see twice

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.extra
            or self.duplicate_actions
            or self.different
            or self.undecided
            or self.worker_exits
            or self.complete_after_s is None
        )

    def line(self) -> str:
        complete = (
            f"outputs complete {self.complete_after_s:.1f} s after the last fault"
            if self.complete_after_s is not None
            else "outputs NOT complete"
        )
        return (
            f"{self.scenario}: {self.events:,} events, lost {self.lost}, extra {self.extra}, "
            f"duplicate actions {self.duplicate_actions} (duplicate alerts {self.duplicate_alerts}), "
            f"different {self.different}, undecided inputs {self.undecided}, worker exits {self.worker_exits}; "
            f"{complete}"
            + (f" (faults at {', '.join(f'{f:.0%}' for f in self.faults_at)} decided)" if self.faults_at else "")
            + (
                f" — {late} fault(s) came once the decided count had reached the input's size (re-decided events"
                " count too): probably not mid-stream, run with more --events"
                if (late := sum(f >= 1 for f in self.faults_at))
                else ""
            )
            + f"; read_uncommitted (aborted records included): {self.uncommitted_duplicate_actions} duplicate actions"
        )


def judge(want: dict[str, dict[str, str]], got: dict[str, dict[str, list[str]]]) -> tuple[int, int, int, int, int]:
    """lost, extra, duplicate actions, duplicate alerts, different copies."""
    lost = sum(len(set(want[n]) - set(got[n])) for n in want)
    extra = sum(len(set(got[n]) - set(want[n])) for n in want)
    dup_actions = sum(len(c) - 1 for c in got["actions"].values())
    dup_alerts = sum(len(c) - 1 for c in got["alerts"].values())
    different = sum(1 for n in want for k, copies in got[n].items() if k in want[n] for c in copies if c != want[n][k])
    return lost, extra, dup_actions, dup_alerts, different


def show_differences(want: dict[str, dict[str, str]], got: dict[str, dict[str, list[str]]], examples: int = 3) -> None:
    """What the oracle found wrong, by output and rule, with the fields of a few wrong copies."""
    for name in want:
        rules: dict[tuple[str, str], int] = {}
        shown = 0
        for key, copies in got[name].items():
            for c in copies:
                kind = "extra" if key not in want[name] else "different" if c != want[name][key] else ""
                if not kind:
                    continue
                record = json.loads(c)
                rule = (kind, record.get("rule_id") or record.get("action", "?"))
                rules[rule] = rules.get(rule, 0) + 1
                if kind == "different" and shown < examples:
                    shown += 1
                    mine, theirs = json.loads(want[name][key]), record
                    fields = {f: (mine.get(f), theirs.get(f)) for f in mine.keys() | theirs.keys()}
                    print(
                        f"    {name} {key}: replay vs broker " + repr({f: v for f, v in fields.items() if v[0] != v[1]})
                    )
        for key in set(want[name]) - set(got[name]):
            rule = ("lost", json.loads(want[name][key]).get("rule_id", "?"))
            rules[rule] = rules.get(rule, 0) + 1
        for (kind, rule), count in sorted(rules.items()):
            print(f"    {name}: {count} {kind} of {rule}", flush=True)


def complete(settings: Settings, want: dict[str, dict[str, str]]) -> bool:
    got = asyncio.run(read_outputs(settings))
    return all(set(got[n]) >= set(want[n]) for n in want)


def fresh(broker: Broker, name: str, path: Path) -> tuple[str, Settings]:
    """Fresh topics and group (also on a broker used before), the recording published on them."""
    prefix = f"{name}{time.time_ns() % 10**9}."
    settings = Settings(broker=broker.url, topic_prefix=prefix, app_id=f"{prefix}livewatch", partitions=PARTITIONS)
    lines = path.read_bytes().splitlines()
    asyncio.run(publish(settings, enumerate(lines, start=1), progress_every_s=3600))
    return prefix, settings


class Crew:
    """The scenario's workers by name; one that exits on its own is restarted on its data directory and
    counted, and the events decided by every incarnation are summed (the progress faults are placed by)."""

    def __init__(self, broker: Broker, prefix: str, tmp: Path, env: dict[str, str]) -> None:
        self.broker, self.prefix, self.tmp, self.env = broker, prefix, tmp, env
        self.workers: dict[str, Worker] = {}
        self.gone = 0.0  # events decided by incarnations that are no more
        self._seen: dict[str, float] = {}  # each live worker's count at the last look (what an exit takes along)
        self.exits = 0

    def start(self, name: str) -> Worker:
        self.workers[name] = Worker(self.broker, self.prefix, self.tmp, name, env=self.env)
        return self.workers[name]

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        w = self.workers.pop(name)
        self.gone += max(w.total("livewatch_events_total"), self._seen.pop(name, 0.0))
        w.stop(sig)

    def check(self) -> None:
        for name, w in list(self.workers.items()):
            if w.proc.poll() is not None:
                self.exits += 1
                # its count as last seen: its successor decides again from the committed offsets, and the
                # progress faults are placed by must not fall back (once a stop then came after the last event)
                self.gone += self._seen.pop(name, 0.0)
                print(f"  worker {name} exited with {w.proc.returncode}; restarting it. Log tail:", flush=True)
                print("    " + w.log_tail(15).replace("\n", "\n    "), flush=True)
                w.stop()
                self.start(name)

    def decided(self) -> float:
        self.check()
        for name, w in self.workers.items():
            self._seen[name] = max(self._seen.get(name, 0.0), w.total("livewatch_events_total"))
        return self.gone + sum(self._seen.get(name, 0.0) for name in self.workers)

    def wait_decided(self, events: float, timeout: float = 180) -> float:
        deadline = time.monotonic() + timeout
        while (done := self.decided()) < events and time.monotonic() < deadline:
            time.sleep(0.1)
        return done

    def stop_all(self) -> None:
        for name in list(self.workers):
            self.stop(name)


def finish(
    scenario: str,
    settings: Settings,
    crew: Crew,
    n: int,
    want: dict[str, dict[str, str]],
    last_fault: float,
    faults_at: tuple[float, ...] = (),
) -> Verdict:
    """Wait for complete outputs and a fully committed input, then judge what is on the broker."""
    done_after: float | None = None
    deadline = last_fault + 120
    try:
        while time.monotonic() < deadline:
            crew.check()
            if complete(settings, want):
                done_after = time.monotonic() - last_fault
                break
            time.sleep(0.5)
        # the rest of the input decided and committed (Faust commits every 2.8 s)
        limit = time.monotonic() + 60
        while asyncio.run(undecided(settings)) and time.monotonic() < limit:
            crew.check()
            time.sleep(1)
    finally:
        crew.stop_all()
    got = asyncio.run(read_outputs(settings))
    lost, extra, dup_a, dup_l, diff = judge(want, got)
    if lost or extra or diff:
        show_differences(want, got)
    uncommitted = asyncio.run(read_outputs(settings, "read_uncommitted"))
    return Verdict(
        scenario + (" (at-least-once)" if crew.env.get("LIVEWATCH_EXACTLY_ONCE") == "false" else " (exactly-once)"),
        n,
        lost,
        extra,
        dup_a,
        dup_l,
        diff,
        asyncio.run(undecided(settings)),
        done_after,
        crew.exits,
        faults_at,
        uncommitted_duplicate_actions=judge(want, uncommitted)[2],
    )


def scenario_kill(
    broker: Broker, tmp: Path, path: Path, n: int, want: dict[str, dict[str, str]], env: dict[str, str], kills: int
) -> Verdict:
    prefix, settings = fresh(broker, "kill", path)
    rng = random.Random(kills)
    crew = Crew(broker, prefix, tmp, env)
    worker = crew.start("kill-w")  # one data directory for every incarnation
    last_fault = time.monotonic()
    for _ in range(kills):
        # killed while it works: 0.1–1 s after it owns its partitions (Faust's kill script spaces kills
        # 0.1–1 s from the start; a Python worker needs longer than that to start, so it would die idle)
        worker.wait_assigned(timeout=120)
        time.sleep(rng.uniform(0.1, 1.0))
        crew.stop("kill-w", signal.SIGKILL)
        last_fault = time.monotonic()
        worker = crew.start("kill-w")
    print(f"  {kills} kills done; waiting for complete outputs", flush=True)
    return finish(f"kill ×{kills}", settings, crew, n, want, last_fault)


def scenario_broker(
    run_dir: Path,
    tmp: Path,
    path: Path,
    n: int,
    want: dict[str, dict[str, str]],
    env: dict[str, str],
    stops: int = 3,
    down_s: float = 10,
) -> Verdict:
    """The broker stopped ``stops`` times mid-stream and restarted on its data; the worker must stay up.

    The harness watches the worker's progress while the broker's start-up script still checks readiness: the
    worker decides meanwhile, and a stop placed only after the script returned once came after the last event."""
    broker = start_broker(run_dir)  # its own: it is stopped and restarted (same run dir, same port)
    try:
        prefix, settings = fresh(broker, "broker", path)
        crew = Crew(broker, prefix, tmp, env)
        crew.start("broker-w").wait_assigned(timeout=120)
        faults_at = []

        def restart(stopped_at: float) -> None:
            broker.start(keep_data=True)
            print(f"  broker back {time.monotonic() - stopped_at:.1f} s after it was stopped", flush=True)

        with ThreadPoolExecutor(1) as background:
            restarting: Future[None] | None = None
            for i in range(1, stops + 1):
                faults_at.append(crew.wait_decided(n * i / (stops + 1)) / n)
                if restarting is not None:
                    restarting.result()  # its start-up script has returned: it may be stopped again
                broker.stop()
                t0 = time.monotonic()
                print(f"  broker stopped at {faults_at[-1]:.0%} decided, down {down_s:.0f} s", flush=True)
                time.sleep(down_s)
                crew.check()  # a worker that gave up while the broker was away is counted here
                restarting = background.submit(restart, t0)
            assert restarting is not None
            restarting.result()
            last_fault = time.monotonic()
        return finish(f"broker ×{stops}", settings, crew, n, want, last_fault, tuple(faults_at))
    finally:
        broker.stop()


def scenario_scale(
    broker: Broker, tmp: Path, path: Path, n: int, want: dict[str, dict[str, str]], env: dict[str, str]
) -> Verdict:
    """Two workers join the first while it decides, then two of the three leave (SIGTERM), one at a time.

    Each join and leave is a rebalance whose partitions are rebuilt and re-decided from the last commit, so
    the input must outlast them: ≈ 100,000 events on 2 cores (50,000 were all decided before the joins once
    since stop 24's steps of 4,000)."""
    prefix, settings = fresh(broker, "scale", path)
    crew = Crew(broker, prefix, tmp, env)
    crew.start("scale-w1").wait_assigned(timeout=120)
    crew.start("scale-w2")  # both join while the first decides (their start takes seconds of its own)
    crew.start("scale-w3")
    faults_at = []
    for name in ("scale-w2", "scale-w3"):
        crew.workers[name].wait_assigned(timeout=120)
        faults_at.append(crew.decided() / n)
    last_fault = time.monotonic()
    for name, share in (("scale-w2", 0.6), ("scale-w1", 0.8)):
        faults_at.append(crew.wait_decided(n * share) / n)
        left = asyncio.run(undecided(settings))
        crew.stop(name)  # static membership: its partitions wait the session timeout (10 s), then move
        last_fault = time.monotonic()
        print(f"  {name} left at {faults_at[-1]:.0%} decided, {left:,} input messages uncommitted", flush=True)
    return finish("scale 1→3→1", settings, crew, n, want, last_fault, tuple(faults_at))


def proxied_broker(run_dir: Path) -> tuple[Broker, FaultProxy]:
    """A broker with a second listener, advertised at a proxy's port, and that proxy (in pass mode).

    Clients that bootstrap on the broker's own port (publish, the oracle) get its own address back; a worker
    that bootstraps on the proxy gets the proxy's port back from the second listener, so all its
    connections go through the proxy."""
    port = free_port(span=4)  # the broker, its controller, the second listener, the proxy
    inner, outer = port + 2, port + 3
    extra = "\n".join(
        [
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1},PROXIED://127.0.0.1:{inner}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},PROXIED://127.0.0.1:{outer}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT",
        ]
    )
    proxy = FaultProxy(upstream_port=inner, listen_port=outer)
    proxy.start()
    broker = Broker(port, run_dir, extra_properties=extra)
    try:
        broker.start()
    except Exception:
        proxy.stop()
        raise
    return broker, proxy


def scenario_send(
    mode: str,
    run_dir: Path,
    tmp: Path,
    path: Path,
    n: int,
    want: dict[str, dict[str, str]],
    env: dict[str, str],
    fault_s: float,
) -> Verdict:
    """The worker's Produce requests slowed (``slow``) or its connections reset when they carry one
    (``fail``) for ``fault_s`` seconds, from 10 % of the input decided."""
    broker, proxy = proxied_broker(run_dir)
    try:
        prefix, settings = fresh(broker, mode, path)  # published directly, not through the proxy
        crew = Crew(broker, prefix, tmp, {**env, "LIVEWATCH_BROKER": f"kafka://127.0.0.1:{proxy.listen_port}"})
        crew.start(f"{mode}-w").wait_assigned(timeout=120)
        faults_at = (crew.wait_decided(n * 0.1) / n,)
        proxy.set(mode)
        until = time.monotonic() + fault_s
        while time.monotonic() < until:
            crew.check()
            time.sleep(0.2)
        proxy.set("pass")
        c = proxy.counts
        print(
            f"  {fault_s:.0f} s of {mode}: {c.produce_requests} produce requests, {c.delayed} delayed, "
            f"{c.resets} connections reset; {crew.decided() / n:.0%} decided",
            flush=True,
        )
        name = {"slow": "slow-send", "fail": "failing-send"}[mode]
        return finish(f"{name} {fault_s:.0f} s", settings, crew, n, want, time.monotonic(), faults_at)
    finally:
        broker.stop()
        proxy.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help="≈ 20,000 events (scale's joins may come after all is decided)"
    )
    ap.add_argument("--events", type=int, help="input size (default 100,000; 20,000 with --quick)")
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--down", type=float, default=10, help="seconds the broker stays down (broker)")
    ap.add_argument("--fault-s", type=float, default=15, help="seconds of slow or failing sends")
    ap.add_argument("--only", default=",".join(SCENARIOS), help=f"scenarios, comma-separated ({', '.join(SCENARIOS)})")
    ap.add_argument(
        "--at-least-once", action="store_true", help="workers without transactions (LIVEWATCH_EXACTLY_ONCE=false)"
    )
    ap.add_argument("--broker", help="host:port of a running broker for kill and scale (default: start one)")
    args = ap.parse_args(argv)
    events = args.events or (20_000 if args.quick else 100_000)
    names = args.only.split(",")
    if unknown := [name for name in names if name not in SCENARIOS]:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="livewatch-faults-") as t:
        tmp = Path(t)
        path = tmp / "input.jsonl"
        n = recording(path, events)
        print(f"input: {n:,} events; replaying it embedded for the oracle", flush=True)
        want = expected(path, tmp / "embedded")
        print(f"  expected: {len(want['alerts']):,} alerts, {len(want['actions']):,} actions", flush=True)
        broker: Broker | None = None
        if args.broker:
            host, port = args.broker.rsplit(":", 1)
            broker = Broker(int(port), tmp / "external")
        elif {"kill", "scale"} & set(names):
            broker = start_broker(tmp / "kafka")
        env = {"LIVEWATCH_EXACTLY_ONCE": "false" if args.at_least_once else "true"}
        verdicts = []
        try:
            for name in names:
                print(f"\n[{name}]", flush=True)
                if name == "kill":
                    assert broker is not None
                    verdicts.append(scenario_kill(broker, tmp, path, n, want, env, args.kills))
                elif name == "scale":
                    assert broker is not None
                    verdicts.append(scenario_scale(broker, tmp, path, n, want, env))
                elif name == "broker":
                    if args.broker:
                        print("  (stops and restarts a broker: runs on its own, not on --broker)", flush=True)
                    verdicts.append(scenario_broker(tmp / "kafka-broker", tmp, path, n, want, env, down_s=args.down))
                else:
                    mode = {"slow-send": "slow", "failing-send": "fail"}[name]
                    verdicts.append(scenario_send(mode, tmp / f"kafka-{name}", tmp, path, n, want, env, args.fault_s))
                print("  " + verdicts[-1].line(), flush=True)
        finally:
            if broker is not None and not args.broker:
                broker.stop()
        print()
        for v in verdicts:
            print(("PASS " if v.ok else "FAIL ") + v.line())
        return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
