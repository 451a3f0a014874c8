"""All configuration in one object: environment variables ``LIVEWATCH_*`` (or a ``.env`` file given by
``LIVEWATCH_ENV_FILE``), overridden by command-line flags. docs/kafka_operations.md lists them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.privacy import DEV_KEY
from pipeline.ruleset import default_rules_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LIVEWATCH_",
        env_file=os.environ.get("LIVEWATCH_ENV_FILE"),
        extra="ignore",
        # a validation error must not echo what was given: the input holds the SASL password
        hide_input_in_errors=True,
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
    max_wait_s: float = Field(
        30.0,
        ge=0,
        description="event-time merge: release an event held for an input that has delivered nothing for this "
        "long while others flow (longer than the 10 s after which a stalled input is read directly)",
    )
    rebuild_timeout_s: float = Field(
        60.0,
        gt=0,
        description="after a rebalance: longest wait for re-reading a "
        "partition's recent input to rebuild sliding-window detector state; then the "
        'partition runs on without it (livewatch_rebuilds_total{result="failed"})',
    )
    fetch_max_wait_ms: int = Field(
        100,
        ge=10,  # 0 would fetch caught-up partitions again and again, a busy loop on the worker and the broker
        le=1500,
        description="longest the broker holds the worker's fetch when no partition has data: aiokafka sends no "
        "other fetch meanwhile, so a partition read to its end waits this long for more (Faust's fixed 1,500 ms "
        "idled a worker on a backlog for 1–2 s of 12)",
    )
    reload_every_s: float = Field(5.0, gt=0, description="how often the worker checks the rules for changes")
    instance_id: str = Field(
        "",
        description="static group membership: this worker's stable name in the consumer group (a StatefulSet's "
        "pod name, say); a restarted worker of the same name takes its partitions back without waiting for its "
        "predecessor's session to expire. Empty: a name kept in the data directory (made at first start)",
    )
    exactly_once: bool = Field(
        True,
        description="each step's outputs, changelog writes and input offsets committed in one Kafka transaction: "
        "a consumer reading live.* with isolation.level=read_committed sees every alert and action once, also "
        "after a crash. False: at-least-once, a crash repeats outputs (same ids; deduplicate by id)",
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

    # The evidence archive (docs/archive.md): where it is, how files roll, how long each data class is kept.
    archive_url: str = Field(
        "out/archive", description="archive location: a directory, or an fsspec URL (s3://bucket/prefix, gs://…)"
    )
    archive_writer: str = Field(
        "archiver", description="this archiver's name: its files and manifest chain (one name per running archiver)"
    )
    archive_roll_bytes: int = Field(64 * 1024 * 1024, ge=1, description="archive: roll files at this many bytes")
    archive_roll_seconds: float = Field(300.0, gt=0, description="archive: roll files at least this often")
    archive_retention_days: dict[str, int] = Field(
        default_factory=lambda: {"events": 1096, "dead_letters": 1096, "alerts": 1096, "actions": 1096},
        description='days each data class is kept (JSON, e.g. {"dead_letters": 400}); ≥ 3 years for evidence',
    )

    # The review console (docs/console.md): its store, where it listens, how long a login lasts.
    console_db: str = Field(
        "sqlite:///out/console/console.db",
        description="the console's store: a SQLAlchemy URL, sqlite:///FILE or postgresql+psycopg://user@host/db",
    )
    console_host: str = Field("127.0.0.1", description="bind address of the console (loopback unless set)")
    console_port: int = Field(8700, ge=0, description="port of the console")
    console_session_minutes: int = Field(60, ge=1, description="a console login expires after this many minutes")

    # Kafka security (docs/security.md): every client livewatch makes takes these, through
    # pipeline/kafka/security.py. PLAINTEXT is the default so the local and test brokers need nothing.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to the broker: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (SASL_* protocols): SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN"
    )
    sasl_username: str = Field("", description="SASL user (SASL_* protocols)")
    sasl_password: SecretStr = Field(SecretStr(""), description="SASL password (SASL_* protocols); never logged")
    ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the broker's certificate; unset: the system's CAs"
    )
    ssl_certfile: Path | None = Field(None, description="PEM client certificate (chain) for mutual TLS")
    ssl_keyfile: Path | None = Field(None, description="PEM private key of ssl_certfile, if not inside it")
    ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted ssl_keyfile")
    ssl_check_hostname: bool = Field(
        True, description="check that the broker's certificate names the host connected to (keep on)"
    )

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # LIVEWATCH_SSL_CAFILE= means none, not the current directory

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        """Refuse, at load, a security setting that would be ignored or would leak the password, so a
        half-configured worker fails at start instead of connecting in the clear."""
        uses_sasl = self.security_protocol.startswith("SASL_")
        uses_tls = self.security_protocol in ("SSL", "SASL_SSL")
        p = f"LIVEWATCH_SECURITY_PROTOCOL={self.security_protocol}"
        if uses_sasl:
            if not self.sasl_username:
                raise ValueError(f"{p} needs LIVEWATCH_SASL_USERNAME")
            if not self.sasl_password.get_secret_value():
                raise ValueError(f"{p} needs LIVEWATCH_SASL_PASSWORD")
            if self.sasl_mechanism == "PLAIN" and not uses_tls:
                raise ValueError(
                    "LIVEWATCH_SASL_MECHANISM=PLAIN sends the password in the clear without TLS: "
                    "use LIVEWATCH_SECURITY_PROTOCOL=SASL_SSL, or a SCRAM mechanism"
                )
        elif self.sasl_username or self.sasl_password.get_secret_value():
            raise ValueError(
                f"LIVEWATCH_SASL_USERNAME/PASSWORD are set but {p} does not use them: "
                "set LIVEWATCH_SECURITY_PROTOCOL=SASL_SSL (or SASL_PLAINTEXT)"
            )
        files = {
            "LIVEWATCH_SSL_CAFILE": self.ssl_cafile,
            "LIVEWATCH_SSL_CERTFILE": self.ssl_certfile,
            "LIVEWATCH_SSL_KEYFILE": self.ssl_keyfile,
        }
        given = [name for name, path in files.items() if path is not None]
        if not uses_tls and (given or self.ssl_key_password is not None):
            unused = given or ["LIVEWATCH_SSL_KEY_PASSWORD"]
            raise ValueError(
                f"{', '.join(unused)} set but {p} does not use TLS: set it to SSL or SASL_SSL, or unset them"
            )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("LIVEWATCH_SSL_KEYFILE needs LIVEWATCH_SSL_CERTFILE (the certificate of that key)")
        if self.ssl_key_password is not None and self.ssl_certfile is None:
            raise ValueError("LIVEWATCH_SSL_KEY_PASSWORD needs LIVEWATCH_SSL_CERTFILE / LIVEWATCH_SSL_KEYFILE")
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    def topic(self, name: str) -> str:
        """The real name of a declared topic ("live.chat" → "<prefix>live.chat")."""
        return self.topic_prefix + name

    def bootstrap_servers(self) -> str:
        """aiokafka's form of ``broker``: host:port[,host:port]."""
        return ",".join(u.removeprefix("kafka://") for u in self.broker.replace(";", ",").split(","))
