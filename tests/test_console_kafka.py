"""The console on the Kafka runtime, through the real broker: `livewatch publish` → `livewatch worker` →
live.alerts / live.actions → `livewatch console --kafka` (materialised into its store) → a reviewer's
decision on live.reviews and an overturned appeal's revoke action on live.actions."""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.console.store import now_ms
from pipeline.simulator import demo_lines
from schemas.events import OverturnEvent
from schemas.findings import Finding, derived_id
from tests.builders import T0, say, wire
from tests.console_harness import PASSWORD, Console, add_users, livewatch
from tests.kafka_harness import Worker, replay_outputs, topic_records, wait_for

pytestmark = pytest.mark.kafka


class Session:
    """A person's browser session, as plain HTTP (the browser test drives the same pages in chromium)."""

    def __init__(self, base: str, name: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.get("/login")
        self.post("/login", page, username=name, password=PASSWORD)

    def get(self, path: str) -> str:
        return self.opener.open(self.base + path, timeout=10).read().decode()

    def post(self, path: str, page_with_form: str, **fields: str) -> str:
        found = re.search(r'name="csrf_token" value="([^"]+)"', page_with_form)
        assert found, "no CSRF token on the page"
        data = urllib.parse.urlencode({"csrf_token": found.group(1), **fields}).encode()
        return self.opener.open(self.base + path, data, timeout=30).read().decode()

    def count(self, query: str = "") -> int:
        return int(json.loads(self.get(f"/api/count{query}"))["count"])


def test_decisions_and_revokes_reach_the_topics(kafka, demo_out: Path, tmp_path: Path):
    prefix = "console."
    env = {
        "LIVEWATCH_BROKER": kafka.url,
        "LIVEWATCH_TOPIC_PREFIX": prefix,
        "LIVEWATCH_APP_ID": f"{prefix}livewatch",
        "LIVEWATCH_PARTITIONS": "4",
    }
    # the oracle: what the embedded demo decided on the same recording
    expected = [Finding.model_validate_json(line) for line in (demo_out / "alerts.jsonl").read_text().splitlines()]
    expected_actions = [json.loads(line) for line in (demo_out / "actions.jsonl").read_text().splitlines()]
    recording = tmp_path / "recording.jsonl"
    recording.write_bytes(b"".join(line + b"\n" for line in demo_lines()))

    livewatch("publish", str(recording), env=env)
    worker = Worker(kafka, prefix, tmp_path, "w1")
    db = f"sqlite:///{tmp_path / 'console.db'}"
    add_users(db, env=env)
    console = None
    try:
        worker.wait_assigned()
        console = Console(tmp_path / "console.log", "--kafka", "--db", db, env=env)
        lead = Session(console.url, "lena")
        wait_for(lambda: lead.count("?state=all&shadow=1") == len(expected), 90, "the console to hold every alert")
        assert lead.count() == sum(f.status != "shadow" for f in expected)
        # the rooms' context came from the input topics
        escalating = next(f for f in expected if f.room_id == "demo-escalate")
        page = lead.get(f"/finding/{escalating.finding_id}")
        assert escalating.evidence[0].raw in re.findall(r"<mark>([^<]*)</mark>", page)[0]

        # a reviewer confirms a finding: its decision is on live.reviews, keyed by the finding id
        reviewer = Session(console.url, "rita")
        page = reviewer.get(f"/finding/{escalating.finding_id}")
        reviewer.post(f"/finding/{escalating.finding_id}/decide", page, decision="confirm", note="clear claim")
        assert reviewer.count() == lead.count() == sum(f.status != "shadow" for f in expected) - 1

        # a lead overturns an appeal: a revoke action with its derived id on live.actions
        wait_for(lambda: lead.get("/room/demo-escalate").count("LW-APPEAL-") >= 4, 60, "the room's actions")
        suspend = next(a for a in expected_actions if a["room_id"] == "demo-escalate" and a["action"] == "suspend")
        page = lead.get(f"/appeal/{suspend['appeal_ref']}")
        lead.post(f"/appeal/{suspend['appeal_ref']}/decide", page, decision="overturn", note="quoted, not claimed")
        revoke_id = derived_id("revoke", suspend["action_id"])
        assert revoke_id in lead.get(f"/appeal/{suspend['appeal_ref']}")
    finally:
        if console is not None:
            console.stop()
        worker.stop()

    actions = topic_records(kafka.bootstrap, f"{prefix}live.actions", "action_id")
    assert set(actions) == {a["action_id"] for a in expected_actions} | {revoke_id}
    revoke = json.loads(actions[revoke_id][0])
    assert (revoke["action"], revoke["reasons"], revoke["subject"]) == (
        "revoke",
        [suspend["action_id"]],
        suspend["subject"],
    )

    reviews = topic_records(kafka.bootstrap, f"{prefix}live.reviews", "kind")
    decided = [json.loads(r) for r in reviews["review"]]
    assert [(r["finding_id"], r["decision"], r["reviewer"]) for r in decided] == [
        (escalating.finding_id, "confirm", "rita")
    ]
    appeals = [json.loads(r) for r in reviews["appeal"]]
    assert [(a["appeal_ref"], a["decision"], a["revoke_action_id"]) for a in appeals] == [
        (suspend["appeal_ref"], "overturn", revoke_id)
    ]


def test_an_overturn_in_the_console_takes_the_strike_off_the_workers_ladder(kafka, tiny_rules: Path, tmp_path: Path):
    """Issue #15: the console's overturn reaches live.appeals as an input event; the worker's ladder forgets the
    overturned strike, so the room's next finding is judged without it — as the embedded replay of the same input
    topics decides."""
    prefix = "overturn."
    env = {
        "LIVEWATCH_BROKER": kafka.url,
        "LIVEWATCH_TOPIC_PREFIX": prefix,
        "LIVEWATCH_APP_ID": f"{prefix}livewatch",
        "LIVEWATCH_PARTITIONS": "4",
    }
    # event times near the wall clock: the overturn's event time is the decision's (now), and what the room says
    # after it must come later in event time (and no more than 5 minutes ahead of the clock)
    start_s = (now_ms() - 10 * 60 * 1000 - T0) / 1000
    first = tmp_path / "first.jsonl"
    first.write_bytes(
        wire(say("这是全网最低价", room="ov-1", t=start_s, event_id="ov-s0"))  # 2 points: warn
        + b"\n"
        + wire(say("能根治高血压", room="ov-1", t=start_s + 100, event_id="ov-s100"))  # 5 points: limit_comments
        + b"\n"
    )
    livewatch("publish", str(first), env=env)
    worker = Worker(kafka, prefix, tmp_path, "w1", rules_dir=tiny_rules)
    db = f"sqlite:///{tmp_path / 'console.db'}"
    add_users(db, env=env)
    console = None
    try:
        worker.wait_assigned()
        console = Console(tmp_path / "console.log", "--kafka", "--db", db, env=env)
        lead = Session(console.url, "lena")
        wait_for(lambda: lead.get("/room/ov-1").count("LW-APPEAL-") >= 2, 90, "the room's two actions")
        before = [
            json.loads(r[0]) for r in topic_records(kafka.bootstrap, f"{prefix}live.actions", "action_id").values()
        ]
        assert sorted(a["action"] for a in before) == ["limit_comments", "warn"]
        limit = next(a for a in before if a["action"] == "limit_comments")

        page = lead.get(f"/appeal/{limit['appeal_ref']}")
        lead.post(f"/appeal/{limit['appeal_ref']}/decide", page, decision="overturn", note="a customer's words")

        # the overturn is an input event on live.appeals, keyed by the room, its id derived from the action's
        [(key, value)] = asyncio.run(keyed_messages(kafka.bootstrap, f"{prefix}live.appeals"))
        overturn = OverturnEvent.model_validate_json(value)
        assert (key, overturn.event_id, overturn.action_id, overturn.subject.model_dump()) == (
            b"ov-1",
            derived_id("overturn", limit["action_id"]),
            limit["action_id"],
            limit["subject"],
        )

        later = tmp_path / "later.jsonl"  # after the decision in event time
        later_s = (overturn.ts - T0) / 1000 + 30
        later.write_bytes(wire(say("能根治高血压", room="ov-1", t=later_s, event_id="ov-s-later")) + b"\n")
        livewatch("publish", str(later), env=env)
        wait_for(
            lambda: len(topic_records(kafka.bootstrap, f"{prefix}live.actions", "action_id")) >= 4,
            90,
            "the action after the overturn",
        )
    finally:
        if console is not None:
            console.stop()
        worker.stop()

    actions = {
        k: [json.loads(v) for v in vs]
        for k, vs in topic_records(kafka.bootstrap, f"{prefix}live.actions", "action_id").items()
    }
    revoke_id = derived_id("revoke", limit["action_id"])
    assert all(len(records) == 1 for records in actions.values())  # read_committed: each record once
    decided = {k: v[0] for k, v in actions.items() if k != revoke_id}
    after = [a for a in decided.values() if a["action_id"] not in {b["action_id"] for b in before}]
    # without the overturned strike: 2 + 3 = 5 points, limit_comments again under a new id (not limit_traffic at 8)
    assert [(a["action"], a["room_id"]) for a in after] == [("limit_comments", "ov-1")]
    assert limit["reasons"][-1] not in after[0]["reasons"] and len(after[0]["reasons"]) == 2

    # the worker decided as the embedded replay of the same input topics (live.appeals included)
    recording = tmp_path / "recorded.jsonl"
    livewatch("record", "--out", str(recording), env=env)
    assert sum(1 for _ in recording.open()) == 4
    oracle = replay_outputs(recording, tmp_path / "replay", rules_dir=tiny_rules)
    assert set(oracle["actions"]) == set(decided)
    for action_id, line in oracle["actions"].items():
        assert json.loads(line) == decided[action_id]
    alerts = topic_records(kafka.bootstrap, f"{prefix}live.alerts", "finding_id")
    assert {k: [json.loads(v) for v in vs] for k, vs in alerts.items()} == {
        k: [json.loads(v)] for k, v in oracle["alerts"].items()
    }
    # and so does a replay of the publisher's files with the console's overturn merged in (embedded runtime)
    overturns = tmp_path / "overturns.jsonl"
    overturns.write_text(overturn.model_dump_json() + "\n")
    both = tmp_path / "both.jsonl"
    both.write_bytes(first.read_bytes() + later.read_bytes())
    livewatch("replay", str(both), "--merge", str(overturns), "--rules", str(tiny_rules), "--out", str(tmp_path / "m"))
    merged = (tmp_path / "m" / "actions.jsonl").read_text().splitlines()
    assert merged == (tmp_path / "replay" / "actions.jsonl").read_text().splitlines()


async def keyed_messages(bootstrap: str, topic: str, idle_s: float = 2.0) -> list[tuple[bytes | None, bytes]]:
    """Every message on a topic with its key, read from the start without a consumer group."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    out: list[tuple[bytes | None, bytes]] = []
    try:
        last = time.monotonic()
        while time.monotonic() - last < idle_s:
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                out += [(m.key, m.value) for m in messages]
                last = time.monotonic() if messages else last
    finally:
        await consumer.stop()
    return out
