"""Exactly-once outputs: one Kafka transaction per step holds the step's alerts, actions and dead letters,
the changelog records of the rooms it changed, and the input offsets it may commit.

Consumers that read ``live.alerts`` and ``live.actions`` with ``isolation.level=read_committed`` see each
record once: a worker that dies mid-step leaves an open transaction, which the broker aborts when the
worker's successor starts with the same transactional id (the worker's group name, ``instance_id``), or
after ``transaction.timeout.ms``; the successor reads the inputs again from the committed offsets and
decides them again, in a new transaction. The changelog is read back with read_committed too, so a room's
state never runs ahead of the outputs that went with it.

One producer per worker (not one per partition, as Faust's own exactly-once mode does): a step spans the
worker's partitions, and the transactional id is fenced by the worker's stable name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from pipeline.kafka.topics import new_producer
from pipeline.settings import Settings

log = logging.getLogger("livewatch.worker")

#: an open transaction of a dead worker blocks read_committed consumers of its partitions until its successor
#: starts (which aborts it) or this much time passes; a step takes milliseconds
TRANSACTION_TIMEOUT_MS = 30_000
#: a transaction begun right after the last one committed is refused with CONCURRENT_TRANSACTIONS until the
#: broker has written the last one's markers (KAFKA-5477), a few milliseconds; aiokafka retries its offsets
#: requests after ``retry_backoff_ms`` (100 by default), which put ≈ 150 ms on every step's alerts (bench d:
#: p50 171 ms at 500 events/s, 12 ms before transactions)
RETRY_BACKOFF_MS = 10
#: a partition's batch in the producer's buffer; a send that finds it full waits until it is sent, i.e. for a
#: round trip to the broker in the middle of a step's transaction. aiokafka's default (16 KiB) is a dozen
#: changelog records of rooms; a step of 1,000 events writes ≈ 70 KiB of them, outputs besides
BATCH_BYTES = 256 * 1024


class TransactionalTopic:
    """An output topic written through the worker's transactional producer (what ``OutputSender`` sends to)."""

    def __init__(self, transactions: Transactions, name: str) -> None:
        self.transactions, self.name = transactions, name

    async def send(self, *, key: bytes | None, value: bytes) -> Any:
        return await self.transactions.producer.send(self.name, value=value, key=key)


class Transactions:
    def __init__(self, settings: Settings, transactional_id: str, group_id: str) -> None:
        self.settings, self.transactional_id, self.group_id = settings, transactional_id, group_id
        self._producer: AIOKafkaProducer | None = None  # made in the running loop (aiokafka needs one)

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("the transactional producer is not started")
        return self._producer

    def topic(self, name: str) -> TransactionalTopic:
        return TransactionalTopic(self, name)

    async def start(self) -> None:
        """Start the producer once (fencing a predecessor of the same transactional id)."""
        if self._producer is None:
            producer = new_producer(
                self.settings,
                transactional_id=self.transactional_id,
                transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
                retry_backoff_ms=RETRY_BACKOFF_MS,
                max_batch_size=BATCH_BYTES,
            )
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def begin(self) -> None:
        await self.start()
        await self.producer.begin_transaction()

    async def add_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Add the consumer group's next offsets to the open transaction (AddOffsetsToTxn, then TxnOffsetCommit
        to the group's coordinator). May run while the transaction's records are in flight: the commit sends
        them all before it ends the transaction, and an abort drops the offsets with them."""
        if offsets:
            await self.producer.send_offsets_to_transaction(dict(offsets), self.group_id)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Add ``offsets`` (if any) to the open transaction and commit it."""
        if offsets:
            await self.add_offsets(offsets)
        await self.producer.commit_transaction()

    async def abort(self) -> None:
        await self.producer.abort_transaction()

    async def log_change(self, topic: str, key: bytes, value: bytes) -> None:
        """A changelog record in the open transaction (partitioned by key, as Faust partitions its own)."""
        await self.producer.send(topic, value=value, key=key)


class InFlight:
    """At most one transaction in flight, run while the worker decides its next step: deciding is CPU, a
    commit is round trips to the broker, and one waiting for the other left a fifth of a core idle. The next
    transaction starts only once this one has committed. A failure calls ``on_failure`` once, at once — even
    if no step follows to notice it — and every later ``settled`` answers False."""

    def __init__(self, on_failure: Callable[[BaseException], Coroutine[Any, Any, None]]) -> None:
        self._on_failure = on_failure
        self._task: asyncio.Future[None] | None = None
        self.failed = False

    async def settled(self) -> bool:
        """Wait until the transaction in flight (if any) has committed; False if one failed."""
        task = self._task
        if task is not None:
            try:
                await asyncio.shield(task)
            except Exception:
                pass  # reported by _done
            if self._task is task:
                self._task = None
        return not self.failed

    async def start(self, transaction: Coroutine[Any, Any, None]) -> bool:
        """Run ``transaction`` once the one before has committed, without waiting for it; False (and it is
        not run) if one failed."""
        if not await self.settled():
            transaction.close()
            return False
        self._task = asyncio.ensure_future(transaction)
        self._task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Future[None]) -> None:
        if task.cancelled() or task.exception() is None or self.failed:
            return
        self.failed = True
        error = task.exception()
        assert error is not None
        log.error("%s; stopping so that a restarted worker reads the events again", error)
        asyncio.ensure_future(self._on_failure(error))
