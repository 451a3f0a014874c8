"""Reads from the broker outside the consumer group: a range of offsets Faust did not deliver
(``read_range``), and a partition's recently decided input for a rebuild of sliding-window state
(``read_history``).

Throwaway consumers without a group and the group's committed offsets, read stable (``committed``):
nothing here joins or disturbs the worker's group. Their security arguments (TLS, SASL) are ``security``,
or, when not given, those of the process's environment (``security.environment_security``). How the
history is delimited (record timestamps, skew, the next event to decide, events "ahead") is in
docs/kafka_runtime.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline.engine import MAX_FUTURE_SKEW_MS, decode_event
from pipeline.errors import PoisonMessage
from pipeline.kafka.committed import committed_offsets
from pipeline.kafka.merge import order_key
from pipeline.kafka.security import environment_security
from pipeline.kafka.topics import seq_of
from schemas.events import BaseEvent

log = logging.getLogger("livewatch.worker.reader")

#: records looked at after the committed offset to find the first undecided event time (a few may be
#: dead letters), and before it to find the last decided one
PROBE_RECORDS = 20
#: a fetch that brings nothing this many times in a row, with the position not at the end yet, means the
#: rest of the range holds no data records (transaction markers, compacted away)
EMPTY_FETCHES = 3
#: the history reader asks the offsets of topics its consumer has no metadata for: aiokafka learns one unknown
#: topic per attempt and waits ``retry_backoff_ms`` between attempts (100 by default), so a partition number's six
#: input topics cost 0.8 s before a rebuild could start, in every rebuild after every rebalance (bench b, stop 50)
OFFSETS_RETRY_BACKOFF_MS = 10
#: … and its fetches wait at most this long at the broker for data: the one sent after a range's last record (aiokafka
#: prefetches) waits there for the broker's whole ``fetch_max_wait_ms`` (500 by default), and the broker answers a
#: connection's requests in order — the next topic's offset look-up and first fetch waited behind it, 0.5 s each
HISTORY_FETCH_WAIT_MS = 10


@dataclass
class History:
    """What a rebuild read for one partition number."""

    events: list[BaseEvent] = field(default_factory=list)  # in decision order, before next_ts
    #: decided events at or after next_ts, with their decision-order keys: each topic-partition commits on
    #: its own, so some were decided after the first undecided event of another topic — they are fed when
    #: the merge reaches their place, not before (RebuildCoordinator.decided_before)
    ahead: list[tuple[tuple[int, int, str, int], BaseEvent]] = field(default_factory=list)
    next_ts: int | None = None  # event time of the next event to decide (or the latest decided)
    start_ts: int | None = None  # events at or after this event time were kept
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # "topic-partition" → offsets read [a, b)
    records_read: int = 0

    def describe(self) -> str:
        spans = ", ".join(f"{tp}@[{a},{b})" for tp, (a, b) in sorted(self.ranges.items())) or "nothing"
        return f"{len(self.events)} events from {self.records_read} records ({spans}), event time ≥ {self.start_ts}"


async def read_range(
    bootstrap: str,
    tp: TopicPartition,
    start: int,
    end: int,
    timeout_s: float = 15.0,
    *,
    to_end: bool = False,
    isolation_level: str = "read_uncommitted",
    security: Mapping[str, Any] | None = None,
) -> tuple[list[Any], int, int]:
    """Records of ``tp`` with ``start ≤ offset < end``, as many as arrive within ``timeout_s``; the offset the
    read reached: every offset below it was read (``end`` when the range was read through, whether its last
    offsets held records or a transaction's commit marker; less after a failure or the timeout); and ``end``.
    ``to_end``: ``end`` is the partition's end when the read starts if that is further (the last stable
    offset, read_committed).

    Never raises: a failed read is logged and returns what was read (the caller stops waiting either way)."""
    records: list[Any] = []
    reached = start
    tp = TopicPartition(tp.topic, tp.partition)  # Faust's TP is not aiokafka's
    consumer: AIOKafkaConsumer | None = None
    try:
        # made inside the guard too: a caller that never hears back blocks the partition it reads for
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # a start below the log's (retention) reads what is left, not from the end
            isolation_level=isolation_level,
            **(environment_security() if security is None else security),
        )
        await consumer.start()
        consumer.assign([tp])
        if to_end:
            end = max(end, (await consumer.end_offsets([tp]))[tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + timeout_s
        while reached < end and time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=end - start)
            records.extend(r for r in batch.get(tp, []) if start <= r.offset < end)
            reached = min(end, await consumer.position(tp))
    except Exception:
        log.exception("re-reading %s %d..%d failed", tp, start, end - 1)
    finally:
        if consumer is not None:
            try:
                await consumer.stop()
            except Exception:
                log.exception("closing the re-read of %s failed", tp)
    return records, reached, end


async def committed_ends(
    bootstrap: str, tps: Sequence[Any], *, security: Mapping[str, Any] | None = None, timeout_s: float = 30.0
) -> dict[Any, int]:
    """Per partition of a transactionally written topic, the offset after its last committed record (0: none).

    What a recovery must read up to: the last stable offset itself is no record's offset when the topic ends
    with a transaction's commit or abort marker, so a reader waiting for the record before it waits forever.
    The tail is read back (read_committed skips markers and aborted records), in growing windows."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **(environment_security() if security is None else security),
    )
    out: dict[Any, int] = {}
    await consumer.start()
    try:
        parts = {tp: TopicPartition(tp.topic, tp.partition) for tp in tps}  # Faust's TP is not aiokafka's
        consumer.assign(list(parts.values()))
        stable = await consumer.end_offsets(list(parts.values()))  # read_committed: the last stable offsets
        deadline = time.monotonic() + timeout_s
        for tp, part in parts.items():
            end, window, last = stable[part], 8, None
            while end > 0 and last is None and time.monotonic() < deadline:
                start = max(0, end - window)
                consumer.seek(part, start)
                while await consumer.position(part) < end and time.monotonic() < deadline:
                    batch = await consumer.getmany(part, timeout_ms=500)
                    for r in batch.get(part, []):
                        if r.offset < end:
                            last = r.offset if last is None else max(last, r.offset)
                if last is None:  # only markers and aborted records in the window: look further back
                    end, window = start, window * 4
            out[tp] = last + 1 if last is not None else 0
    finally:
        await consumer.stop()
    return out


async def read_history(
    bootstrap: str,
    group_id: str,
    tps: Sequence[TopicPartition],
    history_ms: int,
    *,
    kinds: frozenset[str],
    clock_ms: Callable[[], int],
    skew_ms: int = MAX_FUTURE_SKEW_MS,
    security: Mapping[str, Any] | None = None,
) -> History:
    """Decided events of ``kinds`` on ``tps`` (one partition number) from ``history_ms`` before the next
    event to decide, in decision order. Raises on a broker error; bound it with ``asyncio.wait_for``."""
    history = History()
    security = environment_security() if security is None else security
    committed = await committed_offsets(bootstrap, group_id, tps, security=security)
    if not committed:
        return history  # the group never committed on these partitions: nothing of them is decided yet
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        retry_backoff_ms=OFFSETS_RETRY_BACKOFF_MS,
        fetch_max_wait_ms=HISTORY_FETCH_WAIT_MS,
        **security,
    )
    await consumer.start()
    try:
        firsts = await consumer.beginning_offsets(list(tps))
        lasts = await consumer.end_offsets(list(tps))
        # [log start, first undecided): a partition without a committed offset has nothing decided yet
        decided = {tp: (firsts[tp], max(firsts[tp], min(committed.get(tp, firsts[tp]), lasts[tp]))) for tp in tps}
        if not any(b > a for a, b in decided.values()):
            return history

        def event_of(record: Any) -> BaseEvent | None:
            try:
                event = decode_event(record.value or b"", clock_ms())
            except PoisonMessage:
                return None  # it went to the dead-letter topic when it was decided
            # a message keyed by something else than its room was dead-lettered as "wrong_key"
            return event if record.key == event.room_id.encode() else None

        # The next event to decide: the earliest first undecided event over the topics.
        upcoming = []
        for tp in tps:
            _, end = decided[tp]
            if end < lasts[tp]:
                for r in await _read(consumer, tp, end, lasts[tp], limit=PROBE_RECORDS):
                    if (event := event_of(r)) is not None:
                        upcoming.append(event.ts)
                        break
        if upcoming:
            history.next_ts = min(upcoming)
        else:  # every topic caught up: the latest decided event
            latest = []
            for tp in tps:
                start, end = decided[tp]
                if end > start:
                    latest += [
                        e.ts
                        for r in await _read(consumer, tp, max(start, end - PROBE_RECORDS), end)
                        if (e := event_of(r)) is not None
                    ]
            history.next_ts = max(latest) if latest else clock_ms()
        history.start_ts = history.next_ts - history_ms

        keyed: list[tuple[tuple[int, int, str, int], BaseEvent]] = []
        for tp in tps:
            start, end = decided[tp]
            if end <= start:
                continue
            found = (await consumer.offsets_for_times({tp: max(0, history.start_ts - skew_ms)})).get(tp)
            if found is None:  # no record stamped that late: nothing decided is recent enough
                continue
            begin = max(start, found.offset)
            if begin >= end:
                continue
            records = await _read(consumer, tp, begin, end)
            history.records_read += len(records)
            history.ranges[f"{tp.topic}-{tp.partition}"] = (begin, end)
            for r in records:
                event = event_of(r)
                if event is not None and event.kind in kinds and event.ts >= history.start_ts:
                    keyed.append((order_key(event.ts, seq_of(r.headers), tp.topic, r.offset), event))
        keyed.sort(key=lambda pair: pair[0])
        if upcoming:
            history.events = [event for _, event in keyed if event.ts < history.next_ts]
            history.ahead = [(key, event) for key, event in keyed if event.ts >= history.next_ts]
        else:
            history.events = [event for _, event in keyed]
        return history
    finally:
        await consumer.stop()


async def _read(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, stop: int, limit: int | None = None
) -> list[Any]:
    """Records of ``tp`` with ``start ≤ offset < stop`` (at most ``limit``)."""
    records: list[Any] = []
    if start >= stop:
        return records
    consumer.assign([tp])  # one partition at a time: the fetcher prefetches every assigned partition
    consumer.seek(tp, start)
    empty = 0
    while (limit is None or len(records) < limit) and empty < EMPTY_FETCHES:
        want = stop - start if limit is None else limit - len(records)
        batch = (await consumer.getmany(tp, timeout_ms=1000, max_records=min(want, 10_000))).get(tp, [])
        records += [r for r in batch if start <= r.offset < stop]
        if (records and records[-1].offset >= stop - 1) or await consumer.position(tp) >= stop:
            break
        empty = 0 if batch else empty + 1
    return records[:limit] if limit is not None else records


def wall_ms() -> int:
    return int(time.time() * 1000)
