"""``livewatch archive``: a consumer group of its own reading every input topic, the dead letters, alerts and
actions, into the evidence archive (pipeline/archive/). It sits beside the workers, never on their path.

At-least-once: offsets are committed only after a flush has put every row read so far on storage and in the
manifest. A crash or a rebalance before that archives those rows again; the reader removes the duplicates
(same id, same bytes). Outputs are read ``read_committed``, as their consumers read them: an aborted
transaction's alerts are not evidence of anything decided.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pipeline.archive.rows import ArchiveRow, dead_letter_row, event_row, output_row
from pipeline.archive.writer import ArchiveWriter, FlushStats
from pipeline.kafka.security import client_kwargs
from pipeline.kafka.topics import ACTIONS, ALERTS, DLQ, INPUT_NAMES, ensure_topics, seq_of
from pipeline.settings import Settings
from schemas.deadletter import MessageSource

log = logging.getLogger("livewatch.archive")


def group_id(settings: Settings) -> str:
    """The archiver's consumer group: the workers' app id + "-archive" (never the workers' own group)."""
    return f"{settings.app_id}-archive"


def data_classes(settings: Settings) -> dict[str, str]:
    """Topic name (prefixed) → the archive's data class."""
    classes = {settings.topic(name): "events" for name in INPUT_NAMES}
    classes[settings.topic(DLQ.name)] = "dead_letters"
    classes[settings.topic(ALERTS.name)] = "alerts"
    classes[settings.topic(ACTIONS.name)] = "actions"
    return classes


def row_of(data_class: str, record: Any) -> ArchiveRow:
    """One consumed record as an archive row. A record without a value (a tombstone) is archived empty."""
    payload: bytes = record.value or b""
    source = MessageSource(topic=record.topic, partition=record.partition, offset=record.offset)
    fallback = int(record.timestamp)  # the broker's time: for messages that carry no usable event time
    if data_class == "events":
        return event_row(payload, source, seq_of(record.headers), fallback)
    if data_class == "dead_letters":
        return dead_letter_row(payload, source, fallback)
    return output_row(data_class, payload, source, fallback)


@dataclass
class ArchiverStats:
    records: int = 0
    flushes: int = 0
    files: int = 0
    bytes: int = 0
    payload_bytes: int = 0


class _FlushOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions leaving this archiver: flush and commit first, so their next owner starts after our rows."""

    def __init__(self, archiver: KafkaArchiver) -> None:
        self.archiver = archiver

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self.archiver.flush_and_commit()
            self.archiver.forget(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("archiving %d topic-partitions", len(assigned))


class KafkaArchiver:
    def __init__(
        self,
        settings: Settings,
        writer: ArchiveWriter,
        *,
        on_flush: Callable[[FlushStats], None] | None = None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.classes = data_classes(settings)
        self.on_flush = on_flush
        self.stats = ArchiverStats()
        self.consumer = AIOKafkaConsumer(
            **client_kwargs(settings),
            group_id=group_id(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self._stop = asyncio.Event()
        # the rebalance listener runs in the consumer's coordinator task, possibly while the loop is flushing
        self._flushing = asyncio.Lock()
        # per topic-partition, the offset after the last record handed to the writer: what a commit may cover
        # once the writer has flushed (the consumer's position can be ahead: fetched, not yet handed over)
        self._added: dict[TopicPartition, int] = {}

    def forget(self, partitions: Any) -> None:
        for tp in partitions:
            self._added.pop(tp, None)

    def stop(self) -> None:
        self._stop.set()

    async def flush_and_commit(self) -> None:
        async with self._flushing:
            await self._flush_and_commit()

    async def _flush_and_commit(self) -> None:
        covered = dict(self._added)  # every one of these records is in the writer's buffers (or already flushed)
        if self.writer.buffered_rows:
            # the flush is file and network I/O: off the event loop, so the consumer's heartbeats go on
            stats = await asyncio.to_thread(self.writer.flush)
            self.stats.flushes += 1
            self.stats.files += stats.files
            self.stats.bytes += stats.bytes
            self.stats.payload_bytes += stats.payload_bytes
            if self.on_flush is not None:
                self.on_flush(stats)
        # every row handed over so far is on storage and chained: its offsets may be committed
        owned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in covered.items() if tp in owned}
        if offsets:
            await self.consumer.commit(offsets)

    async def run(self, idle_exit_s: float | None = None) -> ArchiverStats:
        """Archive until ``stop()`` (or, if ``idle_exit_s``, until nothing arrived for that long)."""
        # topics missing yet would be seen only at the consumer's next metadata refresh (5 min): create them
        # as a worker or publish would (existing ones are left alone)
        await ensure_topics(self.settings)
        self.consumer.subscribe(sorted(self.classes), listener=_FlushOnRevoke(self))
        await self.consumer.start()
        last_record = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=500, max_records=10_000)
                async with self._flushing:  # never hand rows over while a rebalance's flush runs
                    for tp, records in batch.items():
                        if not records:
                            continue
                        data_class = self.classes[tp.topic]
                        for record in records:
                            self.writer.add(row_of(data_class, record))
                        self._added[tp] = records[-1].offset + 1
                        self.stats.records += len(records)
                        last_record = time.monotonic()
                if self.writer.due():
                    await self.flush_and_commit()
                if idle_exit_s is not None and time.monotonic() - last_record >= idle_exit_s:
                    break
            await self.flush_and_commit()
        finally:
            await self.consumer.stop()
        return self.stats


def run_archiver(
    settings: Settings,
    writer: ArchiveWriter,
    *,
    idle_exit_s: float | None = None,
    on_flush: Callable[[FlushStats], None] | None = None,
) -> ArchiverStats:
    """Run until SIGTERM/SIGINT (flushing and committing before it exits), or until idle for ``idle_exit_s``."""

    async def main() -> ArchiverStats:
        archiver = KafkaArchiver(settings, writer, on_flush=on_flush)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, archiver.stop)
        return await archiver.run(idle_exit_s=idle_exit_s)

    return asyncio.run(main())
