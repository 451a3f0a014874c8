"""The evidence archive's figures (issue #13 item 6), printed for docs/archive.md:

    python scripts/bench_archive.py                        # starts its own broker (deploy/kafka)
    python scripts/bench_archive.py --events 200000 --rooms 1000 --broker 127.0.0.1:19092

1. write throughput from Kafka: a synthetic platform's input (chat, danmaku, host transcript, price tags of
   ``--rooms`` rooms over one day) published to the input topics, then ``livewatch archive``'s consumer
   (pipeline/kafka/archiver.py, in this process, default roll settings) archives it: events/s from its start to
   its last flush, and bytes per event on storage (Parquet, zstd) against the messages' own size;
2. ``archive verify`` over what was written;
3. query times (DuckDB, median of 5): one room's day (the room-timeline report), and one whole day scanned
   (events per room and kind); a month of a platform of ``--platform-events-per-day`` extrapolated from them.

Figures vary with the machine's load (2 cores here, shared by the broker, this process and other work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.archive.manifest import verify
from pipeline.archive.query import run_report
from pipeline.archive.reader import ArchiveReader
from pipeline.archive.storage import open_store
from pipeline.archive.writer import ArchiveWriter
from pipeline.kafka.archiver import KafkaArchiver
from pipeline.kafka.topics import SEQ_HEADER, TOPIC_FOR_KIND, ensure_topics, new_producer
from pipeline.settings import Settings
from tests.kafka_harness import start_broker

DAY_START = 1_769_904_000_000  # 2026-02-01 00:00 UTC
COMMENTS = [
    "这个多少钱",
    "主播好美",
    "已下单",
    "质量怎么样",
    "有没有优惠",
    "好好好",
    "求链接",
    "发货快吗",
    "666",
    "第一次来",
]
SPEECH = [
    "家人们这款面霜今天直播间专属价",
    "我们的原料都是进口的",
    "三二一上链接",
    "库存不多了抓紧下单",
    "给大家试用一下",
]


def synthetic_day(rooms: int, events: int, seed: int = 7) -> list[tuple[str, bytes]]:
    """(topic, message) of one day of a platform: mostly viewer comments, some host speech and price cards."""
    rnd = random.Random(seed)
    out = []
    for i in range(events):
        room = f"room-{rnd.randrange(rooms):05d}"
        ts = DAY_START + int(i / events * 20 * 3600 * 1000)  # 20 h of the day, in order
        base = {"event_id": f"bench-{i}", "room_id": room, "platform": "douyin", "ts": ts}
        r = rnd.random()
        if r < 0.55:
            user = f"user-{rnd.randrange(200_000)}"
            signals = {"account_age_days": rnd.randrange(2000), "level": rnd.randrange(40)}
            event = {**base, "kind": "chat", "user_id": user, "text": rnd.choice(COMMENTS), "user": signals}
        elif r < 0.85:
            event = {
                **base,
                "kind": "danmaku",
                "user_id": f"user-{rnd.randrange(200_000)}",
                "text": rnd.choice(COMMENTS),
            }
        elif r < 0.97:
            text = rnd.choice(SPEECH)
            event = {**base, "kind": "transcript", "text": text, "start_ms": 0, "end_ms": 3000, "speaker": "host"}
        else:
            price = f"{rnd.randrange(10, 500)}.00"
            event = {
                **base,
                "kind": "price_tag",
                "product_id": f"p{rnd.randrange(50)}",
                "price": price,
                "visible": True,
            }
        out.append((TOPIC_FOR_KIND[event["kind"]], json.dumps(event, ensure_ascii=False).encode()))
    return out


async def publish_all(settings: Settings, messages: list[tuple[str, bytes]]) -> float:
    await ensure_topics(settings)
    producer = new_producer(settings, max_batch_size=256 * 1024)
    await producer.start()
    start = time.monotonic()
    try:
        pending = []
        for n, (topic, value) in enumerate(messages):
            key = json.loads(value)["room_id"].encode()
            pending.append(
                await producer.send(settings.topic(topic), value, key=key, headers=[(SEQ_HEADER, str(n).encode())])
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - start


def timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--rooms", type=int, default=1_000)
    p.add_argument("--broker", default=None, help="host:port of a running broker (default: start one)")
    p.add_argument("--platform-events-per-day", type=float, default=50e6, help="for the month extrapolation")
    p.add_argument("--keep", default=None, help="keep the archive in this directory")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    broker = None
    try:
        if args.broker:
            url = f"kafka://{args.broker}"
        else:
            print("starting a broker (deploy/kafka/start.sh) ...", flush=True)
            broker = start_broker(tmp / "kafka")
            url = broker.url
        settings = Settings(broker=url, topic_prefix=f"benchar{int(time.time())}.", app_id="bench-archive")
        messages = synthetic_day(args.rooms, args.events)
        payload_bytes = sum(len(v) for _, v in messages)
        publish_s = asyncio.run(publish_all(settings, messages))
        print(
            f"published {len(messages):,} messages ({payload_bytes / len(messages):.0f} bytes each) "
            f"in {publish_s:.1f} s"
        )

        root = Path(args.keep) if args.keep else tmp / "archive"
        shutil.rmtree(root, ignore_errors=True)
        writer = ArchiveWriter(open_store(str(root)), "bench")
        holder: list[KafkaArchiver] = []

        async def run() -> float:
            archiver = KafkaArchiver(settings, writer)  # aiokafka wants its loop running
            holder.append(archiver)
            start = time.monotonic()

            async def stop_when_done() -> None:
                while archiver.stats.records < len(messages):
                    await asyncio.sleep(0.05)
                archiver.stop()

            watcher = asyncio.ensure_future(stop_when_done())
            await archiver.run()
            await watcher
            return time.monotonic() - start

        elapsed = asyncio.run(run())
        stats = holder[0].stats
        print(
            f"1. archive write from Kafka: {stats.records:,} events in {elapsed:.1f} s = "
            f"{stats.records / elapsed:,.0f} events/s (consume + Parquet + fsync + manifest, one process; "
            f"the broker on the same 2 cores); {stats.files} files, {stats.bytes:,} bytes = "
            f"{stats.bytes / stats.records:.1f} bytes/event on storage vs {payload_bytes / len(messages):.0f} "
            f"bytes/event as messages ({payload_bytes / stats.bytes:.1f}x)"
        )

        t = time.perf_counter()
        report = verify(open_store(str(root), create=False))
        print(
            f"2. archive verify: {'OK' if report.ok else 'FAILED'}, {report.files_checked} files, "
            f"{report.bytes_checked:,} bytes in {time.perf_counter() - t:.2f} s"
        )

        store = open_store(str(root), create=False)
        reader = ArchiveReader(store)
        day_end = DAY_START + 24 * 3600 * 1000 - 1
        room = "room-00042"
        room_day = timed(lambda: run_report(reader, "room-timeline", DAY_START, day_end, room=room))
        room_events = timed(lambda: reader.events([room], DAY_START, day_end))
        reader.view("events", ts_range=(DAY_START, day_end))
        scan = timed(
            lambda: reader.query("SELECT room_id, kind, count(*) FROM events GROUP BY ALL"),
        )
        per_event = scan / stats.records
        month = per_event * args.platform_events_per_day * 30
        print(
            f"3. queries (median of 5): one room's day (room-timeline, {args.rooms:,} rooms in the day's files) "
            f"{room_day * 1000:.0f} ms (its events alone, with payloads: {room_events * 1000:.0f} ms); "
            f"the whole day scanned (events per room and kind, {stats.records:,} events) "
            f"{scan * 1000:.0f} ms = {per_event * 1e6:.2f} µs/event; a month of a platform of "
            f"{args.platform_events_per_day:,.0f} events/day scanned the same way ≈ {month:,.0f} s "
            f"({month / 60:.1f} min) extrapolated linearly on one process of this machine"
        )
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
