"""Kafka runtime benchmark: throughput of one worker, and latency at a fixed input rate.

    python scripts/bench_kafka.py                       # starts its own broker (deploy/kafka/start.sh)
    python scripts/bench_kafka.py --broker 127.0.0.1:19092 --rate 500 --seconds 30

1. Throughput: the Bilibili recording (converted to the wire format, 48,598 danmaku) is published to
   fresh topics; one `livewatch worker` is started; events/s = events decided / time from the worker
   owning its partitions to the last event decided (read from its /metrics).
2. Latency: a generator publishes live events stamped with the current time at a fixed rate (danmaku
   from the same recording plus one host transcript with a false claim in every 20 events); latency =
   broker timestamp of the alert on live.alerts − the event's own time, i.e. event time → decision
   published, for every event that raised an alert. The worker's own histogram
   (livewatch_decision_latency_seconds, all events, up to the decision) is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer  # noqa: E402

from pipeline.kafka.topics import ensure_topics, new_producer  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from scripts.convert_bilibili import convert  # noqa: E402
from tests.kafka_harness import Broker, Worker, start_broker, wait_for  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "bilibili_danmaku_2020-12-12.jsonl"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def throughput(broker: Broker, tmp: Path) -> None:
    recording = tmp / "bili.jsonl"
    n = convert(DATA, recording)
    prefix = f"bench{int(time.time())}."
    env = {**os.environ, "LIVEWATCH_BROKER": broker.url, "LIVEWATCH_TOPIC_PREFIX": prefix, "LIVEWATCH_PARTITIONS": "4"}
    t = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "publish", str(recording)],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )
    print(f"published {n:,} events in {time.monotonic() - t:.1f} s")
    worker = Worker(broker, prefix, tmp, "throughput")
    try:
        worker.wait_assigned()
        start = time.monotonic()
        wait_for(lambda: worker.total("livewatch_events_total") >= n, 600, "every event decided", interval=0.2)
        elapsed = time.monotonic() - start
    finally:
        worker.stop()
    print(
        f"THROUGHPUT  one worker, 4 partitions: {n:,} events in {elapsed:.1f} s = {n / elapsed:,.0f} events/s "
        f"(from owning its partitions to the last event decided)"
    )


async def _generate(settings: Settings, rate: float, seconds: float, texts: list[str]) -> int:
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    sent, start = 0, time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate)
            while sent < due:
                room = f"live-{sent % 20}"
                now = int(time.time() * 1000)
                if sent % 20 == 0:
                    event = {
                        "kind": "transcript",
                        "event_id": f"g{sent}",
                        "room_id": room,
                        "platform": "bench",
                        "ts": now,
                        "text": "这款是全网最低价，喝了能降血压",
                        "start_ms": 0,
                        "end_ms": 1,
                    }
                    topic = "live.transcript"
                else:
                    event = {
                        "kind": "danmaku",
                        "event_id": f"g{sent}",
                        "room_id": room,
                        "platform": "bench",
                        "ts": now,
                        "user_id": f"u{sent % 997}",
                        "text": texts[sent % len(texts)],
                    }
                    topic = "live.danmaku"
                await producer.send(
                    settings.topic(topic), json.dumps(event, ensure_ascii=False).encode(), key=room.encode()
                )
                sent += 1
            await asyncio.sleep(0.005)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def _alert_latencies(settings: Settings) -> list[float]:
    consumer = AIOKafkaConsumer(
        settings.topic("live.alerts"),
        bootstrap_servers=settings.bootstrap_servers(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: dict[str, tuple[int, float]] = {}
    try:
        idle = time.monotonic()
        while time.monotonic() - idle < 3:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                for m in messages:
                    alert = json.loads(m.value)
                    out.setdefault(alert["finding_id"], (alert["ts"], (m.timestamp - alert["ts"]) / 1000))
                    idle = time.monotonic()
    finally:
        await consumer.stop()
    return [lat for _, lat in sorted(out.values())]  # in event-time order


def latency(broker: Broker, tmp: Path, rate: float, seconds: float) -> None:
    prefix = f"lat{int(time.time())}."
    settings = Settings(broker=broker.url, topic_prefix=prefix, partitions=4)
    texts = [json.loads(line)["text"] for line in DATA.read_text(encoding="utf-8").splitlines()[:5000]]
    asyncio.run(ensure_topics(settings))
    worker = Worker(broker, prefix, tmp, "latency")
    try:
        worker.wait_assigned()
        time.sleep(2)
        sent = asyncio.run(_generate(settings, rate, seconds, texts))
        wait_for(lambda: worker.total("livewatch_events_total") >= sent, 120, "every event decided")
        metrics = worker.metrics()
    finally:
        worker.stop()
    lat = asyncio.run(_alert_latencies(settings))
    slow = [(i, round(x * 1000)) for i, x in enumerate(lat) if x > 0.5]
    if slow:
        print(f"         alerts slower than 500 ms (index in event-time order, ms): {slow[:30]}")
    print(
        f"LATENCY  {sent:,} live events at {rate:g}/s for {seconds:g} s, one worker: event time → alert on "
        f"live.alerts over {len(lat)} alerts: p50 {1000 * statistics.median(lat):.0f} ms, "
        f"p99 {1000 * percentile(lat, 0.99):.0f} ms, max {1000 * max(lat):.0f} ms"
    )
    buckets = sorted(
        (float(k.split('le="')[1].split('"')[0]), v)
        for k, v in metrics.items()
        if k.startswith("livewatch_decision_latency_seconds_bucket")
    )
    count = metrics["livewatch_decision_latency_seconds_count"]
    for q in (0.5, 0.99):
        bound = next(le for le, c in buckets if c >= q * count)
        print(
            f"         worker histogram (all {int(count):,} events, to the decision): "
            f"p{int(q * 100)} ≤ {bound * 1000:g} ms"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", help="host:port of a running broker (default: start one)")
    p.add_argument("--rate", type=float, default=500, help="events/s for the latency run")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--only", choices=["throughput", "latency"], help="run one of the two measurements")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    if args.broker:
        host, port = args.broker.split(":")
        broker, own = Broker(int(port), tmp), False
    else:
        t = time.monotonic()
        broker, own = start_broker(tmp / "kafka"), True
        print(f"broker started in {time.monotonic() - t:.1f} s (deploy/kafka/start.sh, jars cached)")
    try:
        if args.only != "latency":
            throughput(broker, tmp)
        if args.only != "throughput":
            latency(broker, tmp, args.rate, args.seconds)
    finally:
        if own:
            broker.stop()


if __name__ == "__main__":
    main()
