"""All configuration in one object: environment variables ``LIVEWATCH_*`` (or a ``.env`` file given by
``LIVEWATCH_ENV_FILE``), overridden by command-line flags. docs/kafka_operations.md lists them."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.privacy import DEV_KEY
from pipeline.ruleset import default_rules_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIVEWATCH_", env_file=os.environ.get("LIVEWATCH_ENV_FILE"), extra="ignore"
    )

    broker: str = Field("kafka://127.0.0.1:19092", description="Kafka bootstrap servers, kafka://host:port[;host:port]")
    app_id: str = Field("livewatch", description="consumer group and prefix of internal topics")
    topic_prefix: str = Field("", description="prefix of every topic name (e.g. 'staging.'); empty in production")
    rules_dir: Path = Field(default_factory=default_rules_dir, description="rules directory, hot-reloaded")
    datadir: Path = Field(Path("out/worker"), description="worker's local data directory (one per worker)")
    partitions: int = Field(4, ge=1, description="partitions of every topic livewatch creates (inputs co-partitioned)")
    replication: int = Field(1, ge=1, description="replication factor of created topics (3 in production)")
    min_insync_replicas: int = Field(1, ge=1, description="min.insync.replicas of created topics (2 in production)")
    metrics_port: int = Field(0, ge=0, description="Prometheus /metrics port, 0 = off")
    metrics_host: str = Field("127.0.0.1", description="bind address of /metrics (loopback unless set)")
    web_port: int | None = Field(None, description="Faust's web server port; None = off (it exposes tables)")
    max_lateness_ms: int = Field(
        60_000,
        ge=0,
        description="event-time merge: release an event once the partition's event time is this far past it",
    )
    max_wait_s: float = Field(5.0, ge=0, description="event-time merge: release an event after this wall time")
    rebuild_timeout_s: float = Field(
        60.0,
        gt=0,
        description="after a rebalance: longest wait for re-reading a "
        "partition's recent input to rebuild sliding-window detector state; then the "
        'partition runs on without it (livewatch_rebuilds_total{result="failed"})',
    )
    reload_every_s: float = Field(5.0, gt=0, description="how often the worker checks the rules for changes")
    instance_id: str = Field(
        "",
        description="static group membership: this worker's stable name in the consumer group (a StatefulSet's "
        "pod name, say); a restarted worker of the same name takes its partitions back without waiting for its "
        "predecessor's session to expire. Empty: a name kept in the data directory (made at first start)",
    )
    exactly_once: bool = Field(
        False,
        description="EXPERIMENTAL: each step's outputs, changelog writes and input offsets committed in one Kafka "
        "transaction (consumers read live.* with isolation.level=read_committed); a partition handed to another "
        "worker is known to lose durable room state in this mode (docs/reliability.md). False: at-least-once, a "
        "crash repeats outputs (same ids)",
    )
    session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description="a worker that sends no heartbeat this long is out of the group and its partitions move",
    )
    loglevel: str = "info"
    pseudonym_key: SecretStr = Field(
        SecretStr(DEV_KEY),
        description="HMAC key of the user pseudonyms in alerts (pipeline/privacy.py); set a secret one in production",
    )

    def topic(self, name: str) -> str:
        """The real name of a declared topic ("live.chat" → "<prefix>live.chat")."""
        return self.topic_prefix + name

    def bootstrap_servers(self) -> str:
        """aiokafka's form of ``broker``: host:port[,host:port]."""
        return ",".join(u.removeprefix("kafka://") for u in self.broker.replace(";", ",").split(","))
