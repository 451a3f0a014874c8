"""The console on the Kafka runtime, through the real broker: `livewatch publish` → `livewatch worker` →
live.alerts / live.actions → `livewatch console --kafka` (materialised into its store) → a reviewer's
decision on live.reviews and an overturned appeal's revoke action on live.actions."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from pipeline.simulator import demo_lines
from schemas.findings import Finding, derived_id
from tests.console_harness import PASSWORD, Console, add_users, livewatch
from tests.kafka_harness import Worker, topic_records, wait_for

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
