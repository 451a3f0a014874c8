"""Through the real broker: `livewatch publish` → `livewatch worker` + `livewatch archive` → the evidence archive;
then `archive verify` (and a tampered file failing it), and `replay --from-archive` with a changed ruleset.

The archive must hold every published message once (after de-duplication), every alert and action the topics
hold (which are the embedded replay's), and a backfill with the same rules must decide exactly that again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.archive.reader import ArchiveReader
from pipeline.archive.storage import open_store
from pipeline.ruleset import DEFAULT_RULES_DIR
from pipeline.simulator import demo_lines
from tests.kafka_harness import REPO, Worker, replay_outputs, topic_records, wait_for

pytestmark = pytest.mark.kafka

PREFIX = "arch."
ROOM = "demo-escalate"
RULE = "claims.efficacy.disease_treatment"  # 7 live findings in demo-escalate, which climb its ladder
BAD_LINE = b"{not json at all"


def cli(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def archived(kafka, tmp_path_factory):
    """The demo recording (and one malformed line) published, decided by a worker and archived by an archiver
    running beside it; the archiver is stopped (SIGTERM: flush + commit) and a second one, in the same group,
    picks up whatever the first had not committed."""
    tmp = tmp_path_factory.mktemp("archive-kafka")
    recording = tmp / "recording.jsonl"
    lines = [*demo_lines(), BAD_LINE]
    recording.write_bytes(b"".join(line + b"\n" for line in lines))
    env = {
        **os.environ,
        "LIVEWATCH_BROKER": kafka.url,
        "LIVEWATCH_TOPIC_PREFIX": PREFIX,
        "LIVEWATCH_APP_ID": f"{PREFIX}livewatch",
        "LIVEWATCH_PARTITIONS": "4",
        "LIVEWATCH_ARCHIVE_URL": str(tmp / "archive"),
        "PYTHONUNBUFFERED": "1",
    }
    done = cli("publish", str(recording), env=env)
    assert done.returncode == 0, done.stderr

    archiver_log = open(tmp / "archiver.log", "wb")
    archiver = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "archive", "--roll-seconds", "1", "--writer", "arch-a"],
        cwd=REPO,
        env=env,
        stdout=archiver_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker = Worker(kafka, PREFIX, tmp, "w1")
    try:
        worker.wait_assigned()
        wait_for(
            lambda: (
                worker.total("livewatch_events_total") >= len(lines) - 1
                and worker.total("livewatch_dead_letters_total") >= 1
            ),
            90,
            "every message decided",
        )
        expected = replay_outputs(recording, tmp / "replay")
        topics = {
            "alerts": topic_records(kafka.bootstrap, f"{PREFIX}live.alerts", "finding_id"),
            "actions": topic_records(kafka.bootstrap, f"{PREFIX}live.actions", "action_id"),
        }
        assert {k: set(v) for k, v in topics.items()} == {k: set(v) for k, v in expected.items()}
    finally:
        worker.stop()
        os.killpg(archiver.pid, signal.SIGTERM)
        archiver.wait(60)
        archiver_log.close()
    log = (tmp / "archiver.log").read_text(errors="replace")
    assert archiver.returncode == 0, log
    # a second archiver of the same group: starts at the first one's committed offsets
    second = cli("archive", "--writer", "arch-b", "--exit-when-idle", "4", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    return {"tmp": tmp, "env": env, "lines": lines, "expected": expected, "log": log, "second": second.stdout}


def test_the_archive_holds_every_message_and_output_once(archived):
    reader = ArchiveReader(open_store(archived["env"]["LIVEWATCH_ARCHIVE_URL"]))
    reader.views()
    _, events = reader.query("SELECT payload FROM events")
    assert sorted(bytes(e[0]) for e in events) == sorted(archived["lines"])  # exact bytes, bad line included
    _, dead = reader.query("SELECT kind, count(*) FROM dead_letters GROUP BY ALL")
    assert dead == [("invalid_json", 1)]
    for name, id_field in (("alerts", "finding_id"), ("actions", "action_id")):
        _, rows = reader.query(f"SELECT payload FROM {name}")
        archived_by_id = {json.loads(r[0])[id_field]: bytes(r[0]).decode() for r in rows}
        assert len(archived_by_id) == len(rows)  # duplicates (at-least-once) are gone
        assert archived_by_id == archived["expected"][name]  # the very bytes the replay writes
    assert "archived 0 records" in archived["second"] or "archived" in archived["second"]


def test_verify_passes_then_names_a_tampered_file(archived):
    env = archived["env"]
    ok = cli("archive", "verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert re.search(r"OK: \d+ manifest entries chained", ok.stdout)

    root = Path(env["LIVEWATCH_ARCHIVE_URL"])
    victim = sorted(root.glob("alerts/day=*/platform=*/*.parquet"))[0]
    original = victim.read_bytes()
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    victim.write_bytes(bytes(flipped))
    try:
        bad = cli("archive", "verify", env=env)
        assert bad.returncode == 1
        assert f"FAILED: {victim.relative_to(root)}: changed" in bad.stderr
    finally:
        victim.write_bytes(original)
    assert cli("archive", "verify", env=env).returncode == 0


def test_backfill_with_a_changed_ruleset_shows_the_expected_diff(archived, tmp_path):
    env = archived["env"]
    same = cli(
        "replay",
        "--from-archive",
        env["LIVEWATCH_ARCHIVE_URL"],
        "--room",
        ROOM,
        "--out",
        str(tmp_path / "same"),
        env=env,
    )
    assert same.returncode == 0, same.stderr
    assert "0 new, 0 gone, 0 changed" in same.stdout

    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    claims = rules / "claims.yaml"
    text = claims.read_text(encoding="utf-8")
    text, n = re.subn(rf"(- id: {re.escape(RULE)}\n    version: \d+\n    status:) live", r"\1 shadow", text)
    assert n == 1
    claims.write_text(text, encoding="utf-8")

    outs = {}
    for shards in (1, 2):
        out = tmp_path / f"shadow-{shards}"
        done = cli(
            "replay",
            "--from-archive",
            env["LIVEWATCH_ARCHIVE_URL"],
            "--room",
            ROOM,
            "--room",
            "demo-claims",
            "--between",
            "2026-02-01",
            "2026-02-01",
            "--rules",
            str(rules),
            "--shards",
            str(shards),
            "--out",
            str(out),
            env=env,
        )
        assert done.returncode == 0, done.stderr
        outs[shards] = {name: (out / f"{name}.jsonl").read_bytes() for name in ("alerts", "actions", "dlq")}
        diff = json.loads((out / "diff.json").read_text(encoding="utf-8"))
    assert outs[1] == outs[2]  # two processes, the same bytes as one

    expected_alerts = [
        json.loads(line) for line in archived["expected"]["alerts"].values() if json.loads(line)["room_id"] == ROOM
    ]
    rule_findings = [f for f in expected_alerts if f["rule_id"] == RULE]
    assert rule_findings
    # the rule's findings are the same findings, now shadow, and nothing else about the alerts differs
    assert diff["by_rule"][f"alerts:{RULE}"] == {"changed": len(rule_findings)}
    alert_items = [i for i in diff["items"] if i["output"] == "alerts"]
    assert all(i["rule_id"] == RULE and i["now"]["status"] == "shadow" for i in alert_items)
    assert {k for i in alert_items for k in i["now"]} == {"status", "shadow_action"}  # what it would have done
    # every action the rule took is gone (the room was suspended on it); the ladder now climbs on the other
    # rules' findings alone, new steps under new ids, and stops short of a suspension
    rule_actions = [a for a in map(json.loads, archived["expected"]["actions"].values()) if a["room_id"] == ROOM]
    assert any(a["action"] == "suspend" for a in rule_actions)
    gone = [i for i in diff["items"] if i["output"] == "actions" and i["change"] == "gone"]
    assert {i["id"] for i in gone} == {a["action_id"] for a in rule_actions if a["rule_id"] == RULE}
    new = [i["now"] for i in diff["items"] if i["change"] == "new"]
    assert new and all(a["rule_id"] != RULE and a["action"] != "suspend" for a in new)
    # demo-claims was decided by other rules: unchanged
    assert not [i for i in diff["items"] if i["room_id"] == "demo-claims"]
