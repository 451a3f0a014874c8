"""Recordings to and from the input topics: ``livewatch publish`` and ``livewatch record``."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from pipeline.kafka.security import client_kwargs
from pipeline.kafka.topics import INPUT_NAMES, SEQ_HEADER, TOPIC_FOR_KIND, ensure_topics, new_producer
from pipeline.settings import Settings


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


async def publish(
    settings: Settings, lines: Iterable[tuple[int, bytes]], speed: float | None = None, progress_every_s: float = 2.0
) -> int:
    """Send recorded lines to their input topics in file order, paced by event time if ``speed``."""
    await ensure_topics(settings)
    producer = new_producer(settings)
    await producer.start()
    sent = 0
    start = last_report = time.monotonic()
    first_ts: int | None = None
    pending: list[asyncio.Future[Any]] = []
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
            pending.append(
                await producer.send(settings.topic(topic), line, key=key, headers=[(SEQ_HEADER, str(number).encode())])
            )
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


async def record(
    settings: Settings, out: Path, topics: Iterable[str] = INPUT_NAMES, idle_s: float = 3.0, limit: int | None = None
) -> int:
    """Dump topics from the beginning into a recording (sorted by event time, ties by topic/offset) and
    stop once nothing new arrived for ``idle_s``. Reads without a consumer group: commits nothing.
    Topic names are given without the configured prefix."""
    consumer = AIOKafkaConsumer(
        *(settings.topic(t) for t in topics),
        **client_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
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
