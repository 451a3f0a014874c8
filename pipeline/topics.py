"""Every Kafka topic livewatch reads or writes, declared once (names, partitions, retention, compaction).

All input topics are keyed by ``room_id`` and must have the **same partition count**: the worker merges
them per partition by event time, and a room's events must meet on one partition number in every topic
(Faust's assignor gives co-partitioned topics of one agent to the same worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000


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


INPUTS: tuple[TopicSpec, ...] = (
    TopicSpec("live.chat", "input", ("chat",), doc="live-room comments"),
    TopicSpec("live.danmaku", "input", ("danmaku",), doc="bullet comments"),
    TopicSpec("live.transcript", "input", ("transcript",), doc="ASR segments of the host's speech"),
    TopicSpec("live.price", "input", ("price_tag",), doc="price cards shown or hidden"),
    TopicSpec("live.meta", "input", ("stream_meta",), doc="stream state: host kind, AI labels, products on air"),
    TopicSpec("live.orders", "input", ("order",), retention_ms=8 * DAY_MS,
              doc="orders (7-day price history needs 7 days of them)"),
)

ALERTS = TopicSpec("live.alerts", "output", retention_ms=90 * DAY_MS,
                   doc="findings with evidence, key = room_id, for trust-and-safety review")
ACTIONS = TopicSpec("live.actions", "output", compacted=True,
                    doc="enforcement actions, key = action_id, compacted: consumers see each action id once")
DLQ = TopicSpec("live.dlq", "output", retention_ms=30 * DAY_MS,
                doc="rejected input: raw bytes (base64), source topic/partition/offset, reason")
OUTPUTS: tuple[TopicSpec, ...] = (ALERTS, ACTIONS, DLQ)

TOPIC_FOR_KIND: dict[str, str] = {kind: t.name for t in INPUTS for kind in t.kinds}
INPUT_NAMES: tuple[str, ...] = tuple(t.name for t in INPUTS)
