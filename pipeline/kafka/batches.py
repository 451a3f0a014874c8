"""Input messages handed over in fetched batches, straight from Faust's fetcher.

Faust's own fetcher awaits the conductor once per message, each time under ``Service.wait_first`` (two new
tasks and an ``asyncio.wait``), and a stream then takes the message off a queue as an ``Event``: a no-op agent
tops out near 4,000 messages/s on this project's machine, below what the detectors cost. Here the consumer's
fetch loop is replaced: each ``getmany`` result is split into the messages of the batch topics, handed to
``on_batch`` in pieces of at most ``batch_max``, in fetch order, and the rest (the table changelogs, while
Faust recovers them) delivered the usual way, through the conductor. Faust still owns the group, the
assignment, the pause and seek on a rebalance, the changelog tables, and the commits of what is acknowledged
(``Consumer.ack``).

Kept from Faust's loop, with the same meaning: a message below the last offset read of its partition is
dropped (a fetch that raced a seek), a hole in the offsets is registered as a gap on acknowledging topics (so
commits can pass offsets that hold no message), and a delivery is abandoned when Faust suspends the flow for a
rebalance (what was abandoned is read again from the committed offsets).

This reads Faust privates (``_stopped``, ``_read_offset``, ``_add_gap``, ``_thread``) of faust-streaming 0.15;
the pin in ``pyproject.toml`` and ``tests/test_batches.py`` hold them to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message

OnBatch = Callable[[list[Message]], Awaitable[None]]
CommittedEnds = Callable[[list[Any]], Awaitable[dict[Any, int]]]


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, its aiokafka consumer built with the worker's fetch wait instead of Faust's
    fixed 1,500 ms."""

    consumer: BatchConsumer

    def _create_consumer(self, loop: asyncio.AbstractEventLoop) -> Any:
        consumer = super()._create_consumer(loop)
        if self.consumer.fetch_max_wait_ms is not None:
            # aiokafka 0.14 builds its fetcher from this at start() (tests/test_batches.py holds it to that)
            consumer._fetch_max_wait_ms = self.consumer.fetch_max_wait_ms
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop hands ``batch_topics`` over in pieces of fetched batches."""

    batch_topics: frozenset[str] = frozenset()
    on_batch: OnBatch | None = None
    #: messages handed over in one call at most: one call is one step, one transaction (≈ 0.1 s of round trips
    #: whatever its size), so under a backlog a bigger step decides more per transaction — section b of
    #: scripts/bench.py, alternating: 1,000 → 5,716 / 6,603, 2,000 → 7,775 / 7,714 / 8,335, 4,000 → 9,153 / 8,350
    #: events/s; 4,000 events are ≈ 0.4 s of deciding, far inside the merge's 5 s wait bound (below)
    batch_max: int = 4000
    #: given: read_committed, and per partition the offset after its last committed record
    #: (``reader.committed_ends``) is the highwater
    committed_ends: CommittedEnds | None = None
    #: the broker holds a fetch this long when none of its partitions has data. aiokafka sends one fetch per
    #: broker at a time, and none for a partition whose records are still being read: a backlog read out
    #: while a fetch for caught-up partitions waits at the broker waits with it. At Faust's 1,500 ms one
    #: worker idled 1–2 s of a 13 s backlog (the bench input; docs/performance-history.md, stop 31); None keeps Faust's
    fetch_max_wait_ms: int | None = None

    async def highwaters(self, *partitions: Any) -> Any:
        if self.committed_ends is None:
            return await super().highwaters(*partitions)
        # Faust's recovery reads a changelog up to the record before its highwater. Read_committed, Faust
        # takes the fetcher's last stable offset: unknown (so: nothing to recover) for a partition not
        # fetched yet, and past a commit marker (so: waiting forever) for one that ends with a transaction.
        # The offset after the last committed record is what it must reach.
        return await self.committed_ends(list(partitions))

    def fetched_end(self, tp: Any) -> tuple[int, float] | None:
        """The high-water mark of ``tp`` (the last stable offset, read_committed) and when a fetch answered it
        (wall clock, s; aiokafka stamps every partition of one answer alike), or None if none did. aiokafka keeps
        the last one it was told: a partition whose fetches fail (its leader moving after a broker restart), or
        whose fetched records wait undelivered (it is not fetched again meanwhile), keeps an old one."""
        try:
            polled_ms = self._thread._ensure_consumer().last_poll_timestamp(tp)
            highwater = self.highwater(tp)
            if polled_ms is None or highwater is None:
                return None
            return highwater, polled_ms / 1000
        except Exception:  # not assigned (any more), or the consumer not started
            return None

    def fresh_highwater(self, tp: Any, max_age_s: float) -> int | None:
        """The high-water mark of ``tp`` if a fetch answered it within ``max_age_s``, else None."""
        fetched = self.fetched_end(tp)
        if fetched is None or time.time() - fetched[1] >= max_age_s:
            return None
        return fetched[0]

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_init_dependencies(self) -> list[Any]:
        # Faust starts its own transaction manager (a producer per partition) when ``in_transaction`` is
        # set; the worker's transactions are its own (``transactions.py``), the flag only makes Faust read
        # with read_committed and take highwaters at the last stable offset
        return []

    async def _drain_messages(self, fetcher: Any) -> None:
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                batch: list[Message] = []
                others: list[Message] = []
                async for tp, message in self.getmany(timeout=1.0):
                    last = read_offset[tp]
                    if last is not None and message.offset < last:
                        continue
                    if last is not None and message.offset - last > 1 and acks_enabled_for(tp.topic):
                        # the offsets in between, inclusive (Faust's own loop also marks the message's own)
                        await self._add_gap(tp, last + 1, message.offset - 1)
                    read_offset[tp] = message.offset
                    (batch if tp.topic in self.batch_topics else others).append(message)
                for message in others:
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                # In pieces of at most batch_max, in fetch order: a fetch can hold every partition's backlog
                # (tens of thousands of messages), and a step that long would age the events the merge holds
                # past its wait bound — released out of event-time order while their inputs are still read.
                if self.on_batch is not None:
                    for i in range(0, len(batch), self.batch_max):
                        piece = batch[i : i + self.batch_max]
                        await self.wait_first(self.on_batch(piece), self.suspend_flow.wait())
                await asyncio.sleep(0)  # a long run of full fetches still lets the loop breathe
        except (asyncio.CancelledError, *self.consumer_stopped_errors):  # type: ignore[misc]
            if self.transport.app.should_stop:  # the worker is stopping: a quiet end, as Faust's loop has
                return
            raise  # a rebalance restarts the fetcher on a CancelledError; anything else crashes the worker


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with a ``BatchConsumer`` that hands ``batch_topics`` to ``on_batch``."""

    Consumer: ClassVar[type[Any]] = BatchConsumer

    def __init__(
        self,
        url: Any,
        app: Any,
        batch_topics: frozenset[str],
        on_batch: OnBatch,
        committed_ends: CommittedEnds | None = None,
        fetch_max_wait_ms: int | None = None,
    ) -> None:
        """``committed_ends`` given: the consumer reads read_committed (for a changelog written in
        transactions) and takes its highwaters from it."""
        super().__init__(url, app)
        self.batch_topics = batch_topics
        self.on_batch = on_batch
        self.committed_ends = committed_ends
        self.fetch_max_wait_ms = fetch_max_wait_ms

    def create_consumer(self, callback: Any, **kwargs: Any) -> Any:
        consumer = super().create_consumer(callback, **kwargs)
        assert isinstance(consumer, BatchConsumer)
        consumer.batch_topics = self.batch_topics
        consumer.on_batch = self.on_batch
        # read_committed: a changelog written in transactions is recovered without what was aborted
        consumer.in_transaction = self.committed_ends is not None
        consumer.committed_ends = self.committed_ends
        consumer.fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer
