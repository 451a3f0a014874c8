"""Through the real broker: the pieces of the worker's exactly-once mode that Faust does not provide."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from pipeline.kafka.reader import committed_ends
from pipeline.kafka.topics import TopicSpec, ensure_topics
from pipeline.settings import Settings

pytestmark = pytest.mark.kafka


async def _write(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-writer", acks="all")
    await producer.start()
    try:
        async with producer.transaction():  # committed: offsets 0, 1, 2, then a commit marker
            for i in range(3):
                await producer.send(topic, key=b"room", value=f"kept {i}".encode(), partition=0)
        await producer.begin_transaction()  # aborted: offsets 4, 5, then an abort marker
        for i in range(2):
            await producer.send(topic, key=b"room", value=f"dropped {i}".encode(), partition=0)
        await producer.abort_transaction()
    finally:
        await producer.stop()


def test_a_transactional_topic_is_recovered_up_to_its_last_committed_record(kafka):
    topic = "tx.changelog"
    settings = Settings(broker=kafka.url, partitions=2)
    asyncio.run(ensure_topics(settings, [TopicSpec(topic, "output")]))
    asyncio.run(_write(kafka.bootstrap, topic))
    ends = asyncio.run(committed_ends(kafka.bootstrap, [TopicPartition(topic, 0), TopicPartition(topic, 1)]))
    # the last stable offset (7) is past two markers and an aborted pair: a recovery waiting for offset 6
    # would wait forever; the last committed record is offset 2
    assert ends == {TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 0}
