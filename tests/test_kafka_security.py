"""Through a second broker whose only client listener is SASL_SSL (deploy/kafka/start.sh with
KAFKA_SECURITY=SASL_SSL: its own CA, certificate and SCRAM users): `livewatch publish` → `livewatch
worker` → live.alerts, the same alerts as the embedded replay; a wrong password refused with a clear
error; the password in no log."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from pipeline.simulator import demo_lines
from tests.kafka_harness import REPO, Broker, Worker, start_broker, topic_records, wait_for
from tests.test_kafka_integration import assert_same_once_deduplicated, embedded, write

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    # letters and digits only: start.sh puts it in a SCRAM credential spec
    broker = start_broker(
        tmp_path_factory.mktemp("kafka-sasl-run"), security="SASL_SSL", sasl_password=secrets.token_hex(16)
    )
    try:
        yield broker
    finally:
        broker.stop()


def cli(broker: Broker, prefix: str, *args: str, secure: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "LIVEWATCH_BROKER": broker.url,
        "LIVEWATCH_TOPIC_PREFIX": prefix,
        "LIVEWATCH_PARTITIONS": "4",
        **(broker.client_env() if secure else {}),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_broker_refuses_a_client_without_tls_and_sasl(sasl_broker):
    # the listener really is SASL_SSL: the project's default (PLAINTEXT) settings cannot use it
    done = cli(sasl_broker, "plain.", "publish", str(REPO / "examples" / "prices_ai_labels.jsonl"), secure=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot connect to" in done.stderr and "(PLAINTEXT)" in done.stderr
    assert "Traceback" not in done.stderr


def test_publish_and_worker_over_sasl_ssl_give_the_replays_alerts_and_never_log_the_password(sasl_broker, tmp_path):
    recording = write(tmp_path / "recording.jsonl", list(demo_lines()))
    prefix = "sec."
    done = cli(sasl_broker, prefix, "publish", str(recording))
    assert done.returncode == 0, done.stderr
    assert f"published {len(list(demo_lines())):,} messages" in done.stdout

    worker = Worker(sasl_broker, prefix, tmp_path, "w1", env={"LIVEWATCH_LOGLEVEL": "debug"})
    try:
        worker.wait_assigned()
        wait_for(lambda: worker.total("livewatch_events_total") >= len(list(demo_lines())), 90, "every event decided")
        metrics = worker.metrics()
        security = sasl_broker.security_kwargs()
        alerts = topic_records(sasl_broker.bootstrap, f"{prefix}live.alerts", "finding_id", security=security)
        actions = topic_records(sasl_broker.bootstrap, f"{prefix}live.actions", "action_id", security=security)
    finally:
        worker.stop()

    expected = embedded(recording, tmp_path / "embedded")
    assert expected["alerts"] and expected["actions"]
    assert_same_once_deduplicated(alerts, expected["alerts"])
    assert_same_once_deduplicated(actions, expected["actions"])
    # the rebuild of the flood windows at assignment reads outside Faust (admin client, throwaway
    # consumers, pipeline/kafka/reader.py): it went through the secured listener too
    assert metrics.get('livewatch_rebuilds_total{result="ok"}', 0) >= 1
    assert metrics.get('livewatch_rebuilds_total{result="failed"}', 0) == 0

    log = worker.log_path.read_text(errors="replace")
    assert "assigned input partitions" in log  # a real log (at debug level), not an empty file
    assert sasl_broker.sasl_password not in log
    assert sasl_broker.sasl_password not in done.stdout + done.stderr


def test_a_wrong_password_is_refused_with_a_clear_error_and_not_echoed(sasl_broker, tmp_path):
    wrong = "not-" + secrets.token_hex(8)
    done = cli(
        sasl_broker,
        "wrong.",
        "publish",
        str(REPO / "examples" / "prices_ai_labels.jsonl"),
        **{"LIVEWATCH_SASL_PASSWORD": wrong},
    )
    assert done.returncode == 1
    assert "cannot connect to" in done.stderr
    assert "SCRAM-SHA-512 as user 'livewatch'" in done.stderr
    assert "SaslAuthenticationFailed" in done.stderr and "invalid credentials" in done.stderr
    assert "Traceback" not in done.stderr
    assert wrong not in done.stdout + done.stderr

    worker = Worker(sasl_broker, "wrong.", tmp_path, "w-wrong", env={"LIVEWATCH_SASL_PASSWORD": wrong})
    try:
        assert worker.proc.wait(60) == 1  # exits at once, does not retry forever with a bad password
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "SaslAuthenticationFailed" in log and "Traceback" not in log
    assert wrong not in log
