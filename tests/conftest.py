from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.ruleset import DEFAULT_RULES_DIR, load_ruleset

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def ruleset():
    return load_ruleset(DEFAULT_RULES_DIR)


@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    """A private copy of the shipped rules, safe to edit in a test."""
    dst = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, dst)
    return dst


TINY_CLAIMS = """\
detector: false_claims
rules:
  - id: claims.tiny.lowest
    version: 1
    severity: medium
    legal_basis: 《广告法》第九条第三项
    claim_type: absolute
    terms: [全网最低]
    exceptions: [全网最低温]
    examples:
      match: [这是全网最低价]
      no_match: [今天全网最低温零下五度]
  - id: claims.tiny.cure
    version: 1
    severity: high
    legal_basis: 《广告法》第十七条
    claim_type: efficacy
    terms: [根治, 降血压]
    exempt_categories: [drug]
    examples:
      match: [能根治高血压]
      no_match: [治理环境]
"""


@pytest.fixture
def tiny_rules(rules_copy: Path) -> Path:
    """The shipped manifest and ladder with two small claim rules, independent of lexicon tuning."""
    for f in rules_copy.glob("*.yaml"):
        if f.name not in ("ruleset.yaml", "enforcement.yaml"):
            f.unlink()
    (rules_copy / "claims.yaml").write_text(TINY_CLAIMS, encoding="utf-8")
    return rules_copy


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    """The real Kafka broker, fetched and started by deploy/kafka/start.sh, once per test session.

    Never skipped: if the broker cannot start, every Kafka test fails with the start script's output.
    """
    from tests.kafka_harness import start_broker

    broker = start_broker(tmp_path_factory.mktemp("kafka-run"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server, started by deploy/postgres/start.sh once per test session (Debian's package).

    Never skipped: if the server cannot start, every PostgreSQL test fails with the start script's output.
    """
    import os
    import subprocess
    import tempfile

    from tests.kafka_harness import free_port

    run_dir = Path(tempfile.mkdtemp(prefix="livewatch-pg-"))  # directly in /tmp: the postgres user must reach it
    env = {**os.environ, "PG_RUN_DIR": str(run_dir), "PG_PORT": str(free_port())}
    started = subprocess.run(
        [str(REPO / "deploy" / "postgres" / "start.sh")], env=env, capture_output=True, text=True, timeout=180
    )
    if started.returncode != 0:
        pytest.fail(f"deploy/postgres/start.sh failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run([str(REPO / "deploy" / "postgres" / "stop.sh")], env=env, capture_output=True, timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def console_db(request, tmp_path: Path):
    """The console store's URL on each backend it supports: an SQLite file, and the real PostgreSQL server
    (emptied after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'console.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    from sqlalchemy import create_engine

    from pipeline.console.store import metadata

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def demo_out(tmp_path_factory) -> Path:
    """The output directory of `livewatch demo --fast` (alerts, actions and the demo's recording)."""
    import contextlib
    import io

    from pipeline.cli import main

    out = tmp_path_factory.mktemp("demo-out")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--fast", "--out", str(out)]) == 0
    return out


WORKER_LOG_LINES = 60


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that ran worker processes shows the end of their logs (``<tmp_path>/<name>.log``): CI keeps
    no temporary files, and a worker's last lines are often the only account of what it did."""
    outcome = yield
    report = outcome.get_result()
    tmp = item.funcargs.get("tmp_path") if hasattr(item, "funcargs") else None
    if report.when != "call" or not report.failed or tmp is None:
        return
    for log in sorted(Path(tmp).glob("*.log")):
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:  # a directory so named, say: the report goes on without it
            continue
        lines = [line for line in text.splitlines() if not line.startswith(("+", "|"))]  # not Faust's tables
        report.sections.append((f"{log.name}: its last {WORKER_LOG_LINES} lines", "\n".join(lines[-WORKER_LOG_LINES:])))
