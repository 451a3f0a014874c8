"""Every Kafka topic livewatch reads or writes, declared once (names, partitions, retention, compaction),
the conventions of their messages (key = room_id, the publisher's sequence header), and their creation.

All input topics are keyed by ``room_id`` (live.accounts, the account stage's repartition, by ``user_id``) and
must have the **same partition count**: the worker merges
them per partition by event time, and a room's events must meet on one partition number in every topic
(Faust's assignor gives co-partitioned topics of one agent to the same worker).

aiokafka's defaults are acks=1, no idempotence and auto-commit; every client made here says what it wants.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from pipeline.kafka.security import client_kwargs
from pipeline.settings import Settings

DAY_MS = 24 * 3600 * 1000

#: Header carrying a recording's line number, so a merge by event time breaks ties as the file did.
SEQ_HEADER = "livewatch-seq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    role: str  # "input" | "output"
    kinds: tuple[str, ...] = ()  # event kinds published to this input topic
    retention_ms: int = 7 * DAY_MS
    compacted: bool = False
    doc: str = ""
    config: dict[str, str] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, str]:
        conf = {"retention.ms": str(self.retention_ms), "unclean.leader.election.enable": "false"}
        if self.compacted:
            conf["cleanup.policy"] = "compact"
        return {**conf, **self.config}


#: written by the review console (an overturned appeal), read by the workers as input: the ladder forgets the
#: overturned action's strikes at the decision's event time, in the room's merge like every input
APPEALS = TopicSpec(
    "live.appeals",
    "input",
    ("overturn",),
    doc="actions overturned on appeal (the review console), key = room_id: the ladder forgets their strikes",
)
INPUTS: tuple[TopicSpec, ...] = (
    TopicSpec("live.chat", "input", ("chat",), doc="live-room comments"),
    TopicSpec("live.danmaku", "input", ("danmaku",), doc="bullet comments"),
    TopicSpec("live.transcript", "input", ("transcript",), doc="ASR segments of the host's speech"),
    TopicSpec("live.price", "input", ("price_tag",), doc="price cards shown or hidden"),
    TopicSpec("live.meta", "input", ("stream_meta",), doc="stream state: host kind, AI labels, products on air"),
    TopicSpec(
        "live.orders",
        "input",
        ("order",),
        retention_ms=8 * DAY_MS,
        doc="orders (7-day price history needs 7 days of them)",
    ),
    APPEALS,
)

ALERTS = TopicSpec(
    "live.alerts",
    "output",
    retention_ms=90 * DAY_MS,
    doc="findings with evidence, key = room_id, for trust-and-safety review",
)
ACTIONS = TopicSpec(
    "live.actions",
    "output",
    compacted=True,
    doc="enforcement actions, key = action_id, compacted: consumers see each action id once",
)
DLQ = TopicSpec(
    "live.dlq",
    "output",
    retention_ms=30 * DAY_MS,
    doc="rejected input: raw bytes (base64), source topic/partition/offset, reason",
)
OUTPUTS: tuple[TopicSpec, ...] = (ALERTS, ACTIONS, DLQ)
#: written by the review console (pipeline/console/), not by the workers
REVIEWS = TopicSpec(
    "live.reviews",
    "output",
    compacted=True,
    doc="reviewers' decisions: key = finding id (or appeal reference), compacted: the latest decision per key",
)
ACCOUNTS = TopicSpec(
    "live.accounts",
    "internal",
    retention_ms=DAY_MS,
    doc="repartition: the account stage's work (account findings, comments the account-keyed detectors "
    "want), key = user_id, written by the room stage in its transaction and read by the account stage",
)
INTERNAL: tuple[TopicSpec, ...] = (ACCOUNTS,)

TOPIC_FOR_KIND: dict[str, str] = {kind: t.name for t in INPUTS for kind in t.kinds}
INPUT_NAMES: tuple[str, ...] = tuple(t.name for t in INPUTS)


def seq_of(headers: Any) -> int | None:
    """The publisher's sequence number in a message's headers (a list of pairs or a dict), if any."""
    headers = headers or []
    for k, v in headers.items() if isinstance(headers, dict) else headers:
        if k == SEQ_HEADER:
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
    return None


async def ensure_topics(settings: Settings, specs: Iterable[TopicSpec] = (*INPUTS, *OUTPUTS, *INTERNAL)) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Existing ones are left alone."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if settings.topic(s.name) not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(
                settings.topic(s.name),
                num_partitions=settings.partitions,
                replication_factor=settings.replication,
                topic_configs={**s.kafka_config(), "min.insync.replicas": str(settings.min_insync_replicas)},
            )
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
        if all(
            t.get("error_code", 0) == 0
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
            for t in described
        ):
            return
        await asyncio.sleep(0.2)


def new_producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """A producer with acks from every in-sync replica and idempotence, secured as the settings say;
    ``options`` go to aiokafka (``transactional_id=`` for the worker's transactions)."""
    return AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True, linger_ms=5, **options)
