"""The group's committed offsets as they stand once every transaction that commits offsets has ended.

A transaction's offsets become the group's committed offsets only when the transaction coordinator's commit
marker reaches the offsets topic, a few milliseconds *after* the producer's ``commit_transaction`` has
returned. An offset fetch in between answers the offsets before that transaction: on this project's broker,
9–50 of 300 fetches made right after a commit returned were stale, by up to 27 ms
(scripts/committed_staleness.py). A new owner of a partition reads them right after the rebalance, which may
follow the last owner's final commit by less than that: it then rebuilt its sliding windows up to the stale
offset while deciding from the fresh one (4 flood findings lost in CI, stop 50), or decided the last owner's
final step again.

KIP-447 added ``require_stable`` to OffsetFetch (v7) for this: the broker answers UNSTABLE_OFFSET_COMMIT
for a partition with offsets pending in an open transaction, and the reader asks again. aiokafka 0.14 sends
OffsetFetch v1–v3 only, so the v7 request is declared here with aiokafka's own protocol types (flexible
version: compact strings and arrays, tagged fields). A broker older than 2.5 has no v7; there the fetch is
the plain one, and the window above stays open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.commit import OffsetFetchRequest_v3
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from pipeline.kafka.security import environment_security

log = logging.getLogger("livewatch.worker.committed")

#: asked again after this long while a partition's offsets are pending in an open transaction: its commit
#: marker follows the commit by milliseconds; an abandoned transaction is aborted by the broker after the
#: producer's transaction timeout (pipeline/kafka/transactions.py), and the callers bound the wait
UNSTABLE_RETRY_S = 0.02
#: broker errors after which the fetch is simply asked again: the coordinator loading or moving, a partition
#: its metadata does not know yet (the plain fetch raised on it; taken for "never committed", it would send a
#: new owner back to the log's start), offsets pending in an open transaction
RETRIABLE = {
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE",
    16: "NOT_COORDINATOR",
    88: "UNSTABLE_OFFSET_COMMIT",
}
RETRY_S = 0.1  # … after one of the others, or after a failed connection or request


class OffsetFetchResponseV7(Response):  # type: ignore[misc]
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequestV7(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponseV7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("topic", CompactString("utf-8")),
                ("partitions", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class StableOffsetFetch(Request[OffsetFetchRequest_v3 | OffsetFetchRequestV7]):  # type: ignore[misc]
    """OffsetFetch with ``require_stable`` (v7), or aiokafka's v3 from a broker without v7."""

    API_KEY = 9

    def __init__(self, group_id: str, topics: Mapping[str, list[int]]) -> None:
        self.group_id = group_id
        self.topics = topics

    def build(self, request_struct_class: type[Any]) -> Any:
        if request_struct_class is OffsetFetchRequestV7:
            return OffsetFetchRequestV7(
                self.group_id, [(topic, parts, {}) for topic, parts in self.topics.items()], True, {}
            )
        return request_struct_class(self.group_id, list(self.topics.items()))


async def committed_offsets(
    bootstrap: str,
    group_id: str,
    tps: Sequence[TopicPartition],
    *,
    security: Mapping[str, Any] | None = None,
) -> dict[TopicPartition, int]:
    """The group's committed offset of each partition that has one, once no open transaction holds offsets of
    them (asked again until then: bound the call with ``asyncio.wait_for``). No group membership."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, **(environment_security() if security is None else security)
    )
    await admin.start()
    try:
        return await stable_offsets(admin, group_id, tps)
    finally:
        await admin.close()


async def stable_offsets(
    admin: AIOKafkaAdminClient, group_id: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """``committed_offsets`` through an admin client that is started already."""
    topics: dict[str, list[int]] = {}
    for tp in tps:
        topics.setdefault(tp.topic, []).append(tp.partition)
    started = time.monotonic()
    warned = False
    waited = False  # for offsets pending in an open transaction
    while True:
        try:
            coordinator = await admin.find_coordinator(group_id)
            answer = (await admin._send_request(StableOffsetFetch(group_id, topics), coordinator)).to_object()
        except KafkaError as e:  # no coordinator yet, a connection lost or timed out: asked again
            if not e.retriable:
                raise
            log.debug("fetching the committed offsets of group %r failed (%r); asking again", group_id, e)
            await asyncio.sleep(RETRY_S)
            continue
        errors = {answer.get("error_code", 0)} | {p["error_code"] for t in answer["topics"] for p in t["partitions"]}
        errors.discard(0)
        if not errors:
            if waited:  # a transaction had just committed offsets of these: the plain fetch would have missed them
                log.info(
                    "committed offsets of %s were pending in a transaction; stable after %.0f ms",
                    sorted(f"{tp.topic}-{tp.partition}" for tp in tps),
                    (time.monotonic() - started) * 1000,
                )
            return {
                TopicPartition(t["topic"], p["partition"]): p["offset"]
                for t in answer["topics"]
                for p in t["partitions"]
                if p["error_code"] == 0 and p["offset"] is not None and p["offset"] >= 0
            }
        unknown = errors - RETRIABLE.keys()
        if unknown:
            raise RuntimeError(f"fetching the committed offsets of group {group_id!r}: broker error {unknown}")
        if not warned and time.monotonic() - started > 5.0:
            warned = True  # an abandoned transaction: the broker aborts it after its timeout
            log.warning(
                "the committed offsets of %s are still pending in an open transaction (%s); waiting",
                sorted(f"{tp.topic}-{tp.partition}" for tp in tps),
                ", ".join(RETRIABLE[e] for e in sorted(errors)),
            )
        waited = waited or 88 in errors
        await asyncio.sleep(UNSTABLE_RETRY_S if errors == {88} else RETRY_S)
