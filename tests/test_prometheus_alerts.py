"""deploy/prometheus/alerts.yml in a real Prometheus (Debian's binary, as CI installs it) scraping a real
`livewatch worker` on the session broker: a healthy start raises nothing, not even a pending alert — with
an old recording replayed through it — and each failure the rules name raises its alert.

Failures staged here: a malformed message (LivewatchDeadLetterRateHigh), an event the worker cannot
process (LivewatchProcessingErrors: its room's stored state is unreadable, seeded in the changelog
before the worker starts, since no input message alone makes a correct worker fail), a refused ruleset
change (LivewatchRulesetReloadRefused) and a killed worker (LivewatchWorkerDown).

Not staged: a stalled partition (LivewatchMergeForcedReleases, LivewatchConsumerLagGrowing). The merge
only forces a release while an input topic-partition holds messages the consumer does not deliver, and
the worker re-reads such a partition itself after 10 s; on one loopback broker nothing makes a partition
unreadable without changing the worker. Nor a worker too slow for its input (the latency alerts): that
needs minutes of overload. promtool cases in test_deploy.py cover those rules.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaProducer

from pipeline.kafka.recording import publish
from pipeline.kafka.topics import TopicSpec, ensure_topics
from pipeline.settings import Settings
from tests.builders import T0, chat, wire
from tests.kafka_harness import REPO, Worker, free_port, wait_for

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"),
]

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
OLD_RECORDING = REPO / "examples" / "prices_ai_labels.jsonl"  # event times of 2026-02-01
POISON_ROOM = "lw-poison-room"
HEALTHY_S = 25

# The expressions of issue #12, to show that this setup is one where they did fire.
OLD_PROCESSING_ERRORS = """
sum by (job, instance) (
  livewatch_dead_letters_total{reason="processing_error"}
    unless livewatch_dead_letters_total{reason="processing_error"} offset 10m
)"""
OLD_LATENCY_HIGH = (
    "histogram_quantile(0.99, sum by (job, instance, le) (rate(livewatch_decision_latency_seconds_bucket[5m]))) > 10"
)


class Prometheus:
    """A Prometheus process scraping one worker every second and evaluating the rules every second."""

    def __init__(self, tmp: Path, target_port: int) -> None:
        doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                # Shipped `for:` durations are 1 to 15 minutes; 2 s keeps the test short. The expressions,
                # windows and thresholds are the shipped ones.
                rule["for"] = "2s"
        (tmp / "alerts.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {"job_name": "livewatch", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.log_path = tmp / "prometheus.log"
        self._log = open(self.log_path, "wb")
        assert PROMETHEUS is not None
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            cwd=tmp,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        body = json.loads(urllib.request.urlopen(url, timeout=5).read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts."""
        return self.api("alerts")["alerts"]

    def firing(self) -> dict[str, list[dict[str, str]]]:
        out: dict[str, list[dict[str, str]]] = {}
        for a in self.alerts():
            if a["state"] == "firing":
                out.setdefault(a["labels"]["alertname"], []).append(a["labels"])
        return out

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2).status == 200
            except OSError:
                return False

        wait_for(ready, timeout, "prometheus to be ready", interval=0.3)

    def log_tail(self, n: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def _publish(settings: Settings, lines: list[bytes]) -> None:
    asyncio.run(publish(settings, list(enumerate(lines, 1))))


async def _seed_unreadable_state(settings: Settings) -> None:
    """Write a room state that is not JSON to the worker's changelog before it starts: the worker recovers
    it into its table, and the first event of that room fails with processing_error."""
    changelog = TopicSpec("livewatch-rooms-changelog", "output", compacted=True)  # Faust's "<app id>-rooms-changelog"
    await ensure_topics(settings, [changelog])
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers(), acks="all")
    await producer.start()
    try:
        # keyed like the room's input messages: the same partition, which the table recovers on assignment
        await producer.send_and_wait(settings.topic(changelog.name), b"{unreadable", key=POISON_ROOM.encode())
    finally:
        await producer.stop()


def _wait_firing(prom: Prometheus, *names: str) -> dict[str, list[dict[str, str]]]:
    def firing() -> dict[str, list[dict[str, str]]] | None:
        f = prom.firing()
        return f if set(names) <= f.keys() else None

    found: dict[str, list[dict[str, str]]] = wait_for(firing, 30, f"{', '.join(names)} to fire")
    return found


def _now_t() -> float:
    """builders' `t` (seconds after T0) of the current wall time: an event that is live, not replayed."""
    return (time.time() * 1000 - T0) / 1000


def test_alerts_stay_silent_on_a_healthy_worker_and_fire_on_each_failure(kafka, tmp_path, rules_copy):
    prefix = f"prom{int(time.time() * 1000) % 10**8}."
    settings = Settings(broker=kafka.url, topic_prefix=prefix, partitions=4)  # the worker's app id: prefix + livewatch
    asyncio.run(_seed_unreadable_state(settings))
    worker = Worker(kafka, prefix, tmp_path, "w1", rules_dir=rules_copy)
    prometheus: Prometheus | None = None
    try:
        worker.wait_assigned()
        prometheus = Prometheus(tmp_path, worker.metrics_port)
        prom = prometheus
        prom.wait_ready()
        # Scraped, with the `_created` series the rules rely on (Prometheus ingests them as series).
        wait_for(lambda: prom.query('up{job="livewatch"} == 1'), 30, "the worker to be scraped")
        assert prom.query('livewatch_dead_letters_created{reason="processing_error"}')
        assert prom.query('livewatch_dead_letters_total{reason="processing_error"} == 0')

        # Healthy: an analyst replays a recording of February (event times ten months old) and live chat
        # flows. Nothing may fire or even be pending for HEALTHY_S seconds.
        old = OLD_RECORDING.read_bytes().splitlines()
        _publish(settings, old)
        # decided before live chat starts: the same partitions carrying February and now at once is a real
        # event-time merge problem (LivewatchMergeForcedReleases, by the lateness bound), not this scenario
        wait_for(lambda: worker.total("livewatch_events_total") >= len(old), 60, "the old recording decided")
        assert prom.alerts() == [], prom.alerts()
        deadline = time.monotonic() + HEALTHY_S
        live = 0
        while time.monotonic() < deadline:
            text = ("围巾有几种颜色", "主播今天几点下播", "刚下单了", "包邮吗")[live % 4]
            _publish(settings, [wire(chat(text, room="lw-live", t=_now_t()))])
            live += 1
            assert prom.alerts() == [], prom.alerts()
            time.sleep(1)
        decided = prom.query('sum(livewatch_events_total{job="livewatch"})')
        assert decided and float(decided[0]["value"][1]) >= 52, decided
        rules = prom.api("rules")["groups"][0]["rules"]
        assert rules and all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
        # ... where the expressions of issue #12 were true: they would have paged
        assert prom.query(OLD_PROCESSING_ERRORS)
        assert prom.query(OLD_LATENCY_HIGH)

        # A malformed message, and a valid event whose processing fails.
        _publish(settings, [b"{not json", wire(chat("还有货吗", room=POISON_ROOM, t=_now_t()))])
        firing = _wait_firing(prom, "LivewatchProcessingErrors", "LivewatchDeadLetterRateHigh")
        assert firing["LivewatchProcessingErrors"][0]["instance"] == f"127.0.0.1:{worker.metrics_port}"
        assert {a["reason"] for a in firing["LivewatchDeadLetterRateHigh"]} >= {"invalid_json"}
        assert firing.keys() == {"LivewatchProcessingErrors", "LivewatchDeadLetterRateHigh"}, firing

        # A ruleset change that does not validate: the worker keeps its rules and counts a refusal.
        (rules_copy / "claims.yaml").write_text("detector: false_claims\nrules:\n  - id: x\n", encoding="utf-8")
        firing = _wait_firing(prom, "LivewatchRulesetReloadRefused")
        assert firing["LivewatchRulesetReloadRefused"][0]["result"] == "refused"
        assert worker.proc.poll() is None

        # The worker dies.
        worker.stop(signal.SIGKILL)
        _wait_firing(prom, "LivewatchWorkerDown")
    except BaseException:
        print(worker.log_tail())
        if prometheus is not None:
            print(prometheus.log_tail())
        raise
    finally:
        worker.stop()
        if prometheus is not None:
            prometheus.stop()
