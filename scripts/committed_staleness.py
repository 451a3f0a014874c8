"""How often a group's committed offsets, read right after a transaction that commits them, are the ones before it.

    python scripts/committed_staleness.py                        # starts its own broker (deploy/kafka/start.sh)
    python scripts/committed_staleness.py --rounds 300 --broker 127.0.0.1:19092

Each round commits offset ``i`` for a group in a transaction, then at once reads the group's committed offset
back through one connected admin client, as a partition's new owner does right after the rebalance that
follows its last owner's final commit: with aiokafka's plain fetch (OffsetFetch v3) and with the worker's
(``pipeline.kafka.committed``: v7, ``require_stable``). Prints, for each, how many reads were stale and how long
a read took.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from pipeline.kafka.committed import stable_offsets  # noqa: E402
from tests.kafka_harness import Broker, start_broker  # noqa: E402


async def plain_offsets(admin: AIOKafkaAdminClient, group: str, tps: list[TopicPartition]) -> dict:
    return {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group, partitions=tps)).items()}


async def rounds(bootstrap: str, n: int) -> None:
    topic = f"staleness-{int(time.time())}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-tx", acks="all")
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await producer.start()
        tp = TopicPartition(topic, 0)
        reads = (("plain OffsetFetch (aiokafka)", plain_offsets), ("require_stable (worker)", stable_offsets))
        for name, read in reads:
            group, stale, took = f"{topic}-{name.split()[0]}", 0, []
            for i in range(1, n + 1):
                async with producer.transaction():
                    await producer.send(topic, b"x", partition=0)
                    await producer.send_offsets_to_transaction({tp: i}, group)
                started = time.perf_counter()
                stale += (await read(admin, group, [tp])).get(tp) != i
                took.append(time.perf_counter() - started)
            took.sort()
            print(
                f"{name:30} {stale:4} of {n} reads stale; a read {took[n // 2] * 1000:.1f} ms median, "
                f"{took[-1] * 1000:.1f} ms max"
            )
    finally:
        await producer.stop()
        await admin.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", help="host:port of a running broker (default: start one)")
    ap.add_argument("--rounds", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="livewatch-staleness-") as d:
        broker = Broker(int(args.broker.rsplit(":", 1)[1]), Path(d)) if args.broker else start_broker(Path(d) / "k")
        try:
            asyncio.run(rounds(broker.bootstrap, args.rounds))
        finally:
            if not args.broker:
                broker.stop()


if __name__ == "__main__":
    main()
