"""The worker's fetch loop (``batches.BatchConsumer``) without a broker: what Faust's ``getmany`` yields is
handed over as batches of input messages, with Faust's rules for stale offsets and gaps kept."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP, Message

from pipeline.kafka.batches import BatchConsumer, BatchTransport, _ConsumerThread


def message(topic: str, partition: int, offset: int) -> Message:
    return Message(
        topic, partition, offset, timestamp=0.0, timestamp_type=0, headers=[], key=b"r", value=b"{}", checksum=None
    )


class Fetcher:
    """What the fetch loop needs of Faust's fetcher: a stop flag."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def consumer_with(fetches: list[list[Message]]) -> tuple[BatchConsumer, list[list[Message]], list[Message], Fetcher]:
    app = faust.App("batches-test", broker="kafka://127.0.0.1:1")
    batches: list[list[Message]] = []
    others: list[Message] = []
    fetcher = Fetcher()

    async def on_batch(batch: list[Message]) -> None:
        batches.append(batch)

    async def on_message(m: Message) -> None:
        others.append(m)

    transport = BatchTransport(app.conf.broker_consumer, app, frozenset({"live.chat", "live.danmaku"}), on_batch)
    consumer = transport.create_consumer(callback=on_message, on_partitions_revoked=None, on_partitions_assigned=None)
    assert isinstance(consumer, BatchConsumer)
    pending = list(fetches)

    async def getmany(timeout: float) -> Any:
        if not pending:
            fetcher._stopped.set()
            return
        for m in pending.pop(0):
            yield m.tp, m

    consumer.getmany = getmany  # type: ignore[method-assign]
    consumer.app.topics._acking_topics.update({"live.chat", "live.danmaku"})
    return consumer, batches, others, fetcher


async def test_each_fetch_is_one_batch_of_input_messages_in_fetch_order():
    fetches = [
        [message("live.chat", 0, 0), message("live.danmaku", 1, 0), message("live.chat", 0, 1)],
        [message("live.chat", 0, 2), message("other", 0, 7)],
    ]
    consumer, batches, others, fetcher = consumer_with(fetches)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
    assert [[(m.topic, m.partition, m.offset) for m in b] for b in batches] == [
        [("live.chat", 0, 0), ("live.danmaku", 1, 0), ("live.chat", 0, 1)],
        [("live.chat", 0, 2)],
    ]
    assert [(m.topic, m.offset) for m in others] == [("other", 7)]  # not an input: Faust's own delivery


async def test_a_large_fetch_is_handed_over_in_pieces_in_fetch_order():
    fetches = [[message("live.chat" if i % 3 else "live.danmaku", i % 2, i // 2) for i in range(25)]]
    consumer, batches, _, fetcher = consumer_with(fetches)
    consumer.batch_max = 10
    await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [m for b in batches for m in b] == fetches[0]  # nothing lost, nothing reordered


async def test_a_fetch_behind_the_last_offset_read_is_dropped_and_a_hole_becomes_a_gap():
    fetches = [[message("live.chat", 0, 5)], [message("live.chat", 0, 3), message("live.chat", 0, 9)]]
    consumer, batches, _, fetcher = consumer_with(fetches)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
    assert [[m.offset for m in b] for b in batches] == [[5], [9]]  # 3 raced a seek: Faust drops it too
    gaps = consumer._gap[TP("live.chat", 0)]
    assert sorted((i.begin, i.end) for i in gaps) == [(6, 9)]  # offsets 6..8 hold no message: commits pass them


def test_the_faust_internals_the_loop_relies_on_are_there():
    # faust-streaming is pinned; an upgrade that renames these fails here, not in production
    for name in ("_drain_messages", "_add_gap", "getmany", "wait_first", "ack"):
        assert callable(getattr(FaustConsumer, name))
    app = faust.App("batches-test-2", broker="kafka://127.0.0.1:1")
    consumer = BatchTransport(app.conf.broker_consumer, app, frozenset(), lambda b: asyncio.sleep(0)).create_consumer(
        callback=lambda m: asyncio.sleep(0), on_partitions_revoked=None, on_partitions_assigned=None
    )
    assert hasattr(consumer, "_read_offset") and hasattr(consumer, "_stopped") and hasattr(consumer, "_gap")


async def test_the_aiokafka_consumer_is_built_with_the_workers_fetch_wait():
    # Faust fixes fetch_max_wait_ms at 1,500; the worker's own (Settings.fetch_max_wait_ms) replaces it, on the
    # consumer Faust's own thread builds, and aiokafka hands it to its fetcher when it starts
    for wait, expected in ((100, 100), (None, 1500)):
        app = faust.App(f"batches-test-wait-{wait}", broker="kafka://127.0.0.1:1")
        transport = BatchTransport(
            app.conf.broker_consumer, app, frozenset(), lambda b: asyncio.sleep(0), fetch_max_wait_ms=wait
        )
        consumer = transport.create_consumer(
            callback=lambda m: asyncio.sleep(0), on_partitions_revoked=None, on_partitions_assigned=None
        )
        thread = consumer._thread
        assert isinstance(thread, _ConsumerThread)
        client = thread._create_consumer(asyncio.get_running_loop())
        assert client._fetch_max_wait_ms == expected
        await client.stop()
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_a_high_water_mark_is_given_only_while_fetches_answer_it():
    # after a broker restart one partition's fetches can fail for seconds: aiokafka keeps its last high-water
    # mark, and the merge took that for "caught up"; the consumer gives it only if a fetch answered it lately
    import time

    from aiokafka.consumer.fetcher import Fetcher as AIOFetcher

    app = faust.App("batches-test-fresh", broker="kafka://127.0.0.1:1")
    consumer = BatchTransport(app.conf.broker_consumer, app, frozenset(), lambda b: asyncio.sleep(0)).create_consumer(
        callback=lambda m: asyncio.sleep(0), on_partitions_revoked=None, on_partitions_assigned=None
    )
    tp = TP("live.meta", 0)
    polled_ms: dict[TP, float] = {tp: time.time() * 1000 - 1_000}

    class Client:  # the aiokafka consumer's one call used
        def last_poll_timestamp(self, partition: TP) -> float:
            assert partition in polled_ms, "Partition is not assigned"  # as aiokafka asserts
            return polled_ms[partition]

    consumer._thread._ensure_consumer = Client  # type: ignore[method-assign]
    consumer.highwater = lambda partition: 42  # type: ignore[method-assign]
    assert consumer.fresh_highwater(tp, max_age_s=3) == 42  # answered a second ago
    assert consumer.fresh_highwater(tp, max_age_s=0.5) is None  # not within half a second
    assert consumer.fresh_highwater(TP("live.meta", 1), max_age_s=3) is None  # not assigned
    # aiokafka stamps the poll time with the high-water mark, on an answer without error only
    source = inspect.getsource(AIOFetcher._proc_fetch_request)
    assert "tp_state.highwater = highwater" in source and "tp_state.timestamp = now_ms" in source
    # and when: every partition of one answer with one stamp, which the merge compares across inputs
    assert consumer.fetched_end(tp) == (42, polled_ms[tp] / 1000)
    assert consumer.fetched_end(TP("live.meta", 1)) is None
    assert source.count("now_ms = int(1000 * time.time())") == 1
    assert source.index("now_ms = int(") < source.index("for topic, partitions in response.topics")
    # a partition whose fetched records wait undelivered is not fetched again: its stamp stays old
    assert "if tp in self._records:" in inspect.getsource(AIOFetcher._get_actions_per_node)
