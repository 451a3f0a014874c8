"""aiokafka glue shared by the worker, ``publish`` and ``record``: topic creation and explicit clients.

aiokafka's defaults are acks=1, no idempotence and auto-commit; every client here says what it wants.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.settings import Settings
from pipeline.topics import INPUT_NAMES, INPUTS, OUTPUTS, TOPIC_FOR_KIND, TopicSpec

#: Header carrying a recording's line number, so a merge by event time breaks ties as the file did.
SEQ_HEADER = "livewatch-seq"


def seq_of(headers: Any) -> int | None:
    """The publisher's sequence number in a message's headers (a list of pairs or a dict), if any."""
    headers = headers or []
    for k, v in (headers.items() if isinstance(headers, dict) else headers):
        if k == SEQ_HEADER:
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
    return None


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec] = (*INPUTS, *OUTPUTS)) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Existing ones are left alone."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if settings.topic(s.name) not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(settings.topic(s.name), num_partitions=settings.partitions, replication_factor=settings.replication,
                     topic_configs={**s.kafka_config(), "min.insync.replicas": str(settings.min_insync_replicas)})
            for s in wanted
        ]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another worker created them first
        created = [settings.topic(s.name) for s in wanted]
        await _wait_for_leaders(admin, created)
        return created
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 15.0) -> None:
    """New topics answer NotLeaderForPartition until their leaders are elected; wait for that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(t.get("error_code", 0) == 0 and t.get("partitions")
               and all(p.get("leader", -1) >= 0 for p in t["partitions"]) for t in described):
            return
        await asyncio.sleep(0.2)


def new_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers(), acks="all", enable_idempotence=True,
                            linger_ms=5)


def route(line: bytes) -> tuple[str, bytes | None]:
    """The input topic and key of one recorded line. A line that cannot be routed (not JSON, no known
    kind) still goes to ``live.chat``, so the worker dead-letters it with its reason instead of the
    publisher dropping it silently."""
    try:
        data = json.loads(line)
        topic = TOPIC_FOR_KIND[data["kind"]]
        room = data["room_id"]
        return topic, str(room).encode() if room is not None else None
    except (ValueError, KeyError, TypeError, RecursionError):
        return TOPIC_FOR_KIND["chat"], None


async def publish(settings: Settings, lines: Iterable[tuple[int, bytes]], speed: float | None = None,
                  progress_every_s: float = 2.0) -> int:
    """Send recorded lines to their input topics in file order, paced by event time if ``speed``."""
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    sent = 0
    start = last_report = time.monotonic()
    first_ts: int | None = None
    pending: list[asyncio.Future] = []
    try:
        for number, line in lines:
            topic, key = route(line)
            if speed:
                try:
                    ts = int(json.loads(line)["ts"])
                    first_ts = ts if first_ts is None else first_ts
                    delay = start + (ts - first_ts) / 1000 / speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                except (ValueError, KeyError, TypeError, RecursionError):
                    pass
            pending.append(await producer.send(settings.topic(topic), line, key=key, headers=[(SEQ_HEADER, str(number).encode())]))
            sent += 1
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
            if time.monotonic() - last_report >= progress_every_s:
                last_report = time.monotonic()
                print(f"  published {sent:,} messages", file=sys.stderr)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def record(settings: Settings, out: Path, topics: Iterable[str] = INPUT_NAMES, idle_s: float = 3.0,
                 limit: int | None = None) -> int:
    """Dump topics from the beginning into a recording (sorted by event time, ties by topic/offset) and
    stop once nothing new arrived for ``idle_s``. Reads without a consumer group: commits nothing.
    Topic names are given without the configured prefix."""
    consumer = AIOKafkaConsumer(*(settings.topic(t) for t in topics), bootstrap_servers=settings.bootstrap_servers(), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    rows: list[tuple[int, str, int, int, bytes]] = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle_s and (limit is None or len(rows) < limit):
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for m in messages:
                    try:
                        ts = int(json.loads(m.value)["ts"])
                    except (ValueError, KeyError, TypeError, RecursionError):
                        ts = m.timestamp  # not a valid event: keep it, placed by its broker time
                    rows.append((ts, tp.topic, tp.partition, m.offset, m.value))
                last = time.monotonic()
    finally:
        await consumer.stop()
    rows.sort(key=lambda r: r[:4])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        for *_, value in rows:
            f.write(value.rstrip(b"\n") + b"\n")
    return len(rows)
