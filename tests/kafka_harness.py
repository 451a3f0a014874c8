"""Helpers for the integration tests: the real broker (deploy/kafka), worker processes, topic reads."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

REPO = Path(__file__).resolve().parent.parent
KAFKA_DIR = REPO / "deploy" / "kafka"


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(span: int = 1) -> int:
    """The first of ``span`` consecutive free loopback ports, all below the kernel's ephemeral range.

    Below it because a port the kernel hands out for bind(0) is also what it hands out as the source
    port of outgoing connections: a broker's controller port (port + 1) was taken by one of them
    between the check and the broker's bind (a CI run failed on it)."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20000, _EPHEMERAL_LOW - span)
        if all(_bindable(port + i) for i in range(span)):
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")


@dataclass
class Broker:
    port: int
    run_dir: Path
    extra_properties: str = ""  # server.properties lines that override start.sh's (KAFKA_EXTRA_PROPERTIES)
    security: str = "PLAINTEXT"  # or "SASL_SSL": start.sh makes the certificates and SCRAM users
    sasl_password: str = ""

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.port + 1),
            "KAFKA_RUN_DIR": str(self.run_dir),
            "KAFKA_EXTRA_PROPERTIES": self.extra_properties,
            "KAFKA_SECURITY": self.security,
            "KAFKA_SASL_USERNAME": "livewatch",
            "KAFKA_SASL_PASSWORD": self.sasl_password,
        }

    def client_env(self) -> dict[str, str]:
        """The LIVEWATCH_* security settings of a client of this broker (none for PLAINTEXT)."""
        if self.security == "PLAINTEXT":
            return {}
        return {
            "LIVEWATCH_SECURITY_PROTOCOL": self.security,
            "LIVEWATCH_SASL_MECHANISM": "SCRAM-SHA-512",
            "LIVEWATCH_SASL_USERNAME": "livewatch",
            "LIVEWATCH_SASL_PASSWORD": self.sasl_password,
            "LIVEWATCH_SSL_CAFILE": str(self.run_dir / "tls" / "ca.pem"),
        }

    def security_kwargs(self) -> dict[str, Any]:
        """aiokafka's security arguments for this broker, made by the project's own helper."""
        from pipeline.kafka.security import security_kwargs
        from pipeline.settings import Settings

        fields = {k.removeprefix("LIVEWATCH_").lower(): v for k, v in self.client_env().items()}
        return security_kwargs(Settings(**fields))

    def start(self, keep_data: bool = False) -> None:
        """start.sh; ``keep_data``: restart on the topics and offsets of this run dir's last start."""
        env = {**self.env(), **({"KAFKA_KEEP_DATA": "1"} if keep_data else {})}
        done = subprocess.run([str(KAFKA_DIR / "start.sh")], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"deploy/kafka/start.sh failed:\n{done.stdout}\n{done.stderr}")

    def stop(self) -> None:
        subprocess.run([str(KAFKA_DIR / "stop.sh")], env=self.env(), capture_output=True, timeout=120)


def start_broker(run_dir: Path, security: str = "PLAINTEXT", sasl_password: str = "") -> Broker:
    broker = Broker(free_port(span=2), run_dir, security=security, sasl_password=sasl_password)  # + controller
    broker.start()
    return broker


class Worker:
    """A `livewatch worker` process with its own data dir and metrics port."""

    def __init__(
        self,
        broker: Broker,
        prefix: str,
        tmp: Path,
        name: str,
        rules_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = free_port()
        self.log_path = tmp / f"{name}.log"
        self.env = {
            **os.environ,
            "LIVEWATCH_BROKER": broker.url,
            "LIVEWATCH_TOPIC_PREFIX": prefix,
            "LIVEWATCH_APP_ID": f"{prefix}livewatch",
            "LIVEWATCH_PARTITIONS": "4",
            "LIVEWATCH_RELOAD_EVERY_S": "0.5",
            "PYTHONUNBUFFERED": "1",
            **broker.client_env(),
            **(env or {}),
        }
        cmd = [
            sys.executable,
            "-m",
            "pipeline.cli",
            "worker",
            "--datadir",
            str(tmp / name),
            "--metrics-port",
            str(self.metrics_port),
        ]
        if rules_dir is not None:
            cmd += ["--rules", str(rules_dir)]
        # appended: a worker restarted under its name (the fault suite) keeps its predecessor's log, and with
        # it the reason that one exited
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def metrics(self) -> dict[str, float]:
        """Samples of the worker's /metrics, as {'name{labels}': value}."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def total(self, name: str) -> float:
        try:
            samples = self.metrics()
        except OSError:
            return 0.0
        return sum(v for k, v in samples.items() if re.fullmatch(rf"{name}(\{{.*\}})?", k))

    def wait_assigned(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.total("livewatch_partitions_assigned") > 0:
                return
            time.sleep(0.3)
        raise TimeoutError(f"worker got no partitions in {timeout} s:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


async def read_topic(
    bootstrap: str, topic: str, idle_s: float = 1.5, security: Mapping[str, Any] | None = None
) -> list[bytes]:
    """Every message now on a topic, read from the start without a consumer group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # as the outputs' consumers read them (the worker writes in transactions)
        **(security or {}),
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                values.extend(m.value for m in messages)
                last = time.monotonic() if messages else last
    finally:
        await consumer.stop()
    return values


def wait_for(condition, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def topic_records(
    bootstrap: str, topic: str, id_field: str, security: Mapping[str, Any] | None = None
) -> dict[str, list[str]]:
    """{id: [every JSON record with that id]} for an output topic."""
    out: dict[str, list[str]] = {}
    for value in asyncio.run(read_topic(bootstrap, topic, security=security)):
        record = json.loads(value)
        out.setdefault(record[id_field], []).append(value.decode())
    return out


#: the output topics' records and the field that identifies each
OUTPUT_IDS = (("alerts", "finding_id"), ("actions", "action_id"))


def replay_outputs(recording: Path, out: Path, rules_dir: Path | None = None) -> dict[str, dict[str, str]]:
    """The embedded replay's alerts and actions of a recording, by id: what Kafka must hold (the oracle of
    the integration tests and of scripts/faults.py)."""
    from pipeline.embedded import EmbeddedRuntime, read_jsonl

    EmbeddedRuntime(out, rules_dir=rules_dir, reload_every_s=3600).run(read_jsonl(recording))
    return {
        name: {json.loads(line)[key]: line for line in (out / f"{name}.jsonl").read_text().splitlines()}
        for name, key in OUTPUT_IDS
    }
