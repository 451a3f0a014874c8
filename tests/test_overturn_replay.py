"""An overturn is an input event: a replay of findings, an overturn and later findings gives the actions of a ladder
without the overturned strikes, the same bytes every time; an account's overturn goes to the account stage."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from pipeline.cli import main
from pipeline.embedded import merge_jsonl, read_jsonl
from pipeline.engine import Engine
from pipeline.ruleset import load_ruleset
from schemas.accounts import AccountRecord
from schemas.events import OverturnEvent
from schemas.findings import EnforcementAction, Subject
from tests.builders import T0, say, wire
from tests.test_policy import finding


def overturn_of(action: dict | EnforcementAction, t: float) -> OverturnEvent:
    a = action if isinstance(action, EnforcementAction) else EnforcementAction.model_validate(action)
    return OverturnEvent.of(a, T0 + int(t * 1000), "lena")


def replay(recording: Path, out: Path, rules: Path, *merge: Path) -> list[dict]:
    args = ["replay", str(recording), "--rules", str(rules), "--out", str(out), "--no-progress", "--quiet"]
    for m in merge:
        args += ["--merge", str(m)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    assert (out / "dlq.jsonl").read_text() == ""
    return [json.loads(line) for line in (out / "actions.jsonl").read_text().splitlines()]


def test_a_replay_with_an_overturn_decides_later_findings_without_its_strikes(tiny_rules: Path, tmp_path: Path):
    # the shipped room ladder: medium 2 points, high 3; warn at 1, limit_comments at 4; cool-down 60 s
    recording = tmp_path / "recording.jsonl"
    recording.write_bytes(
        b"".join(
            wire(e) + b"\n"
            for e in (
                say("这是全网最低价", room="r1", t=0, event_id="s0"),  # 2 points: warn
                say("这是全网最低价", room="r2", t=0, event_id="x0"),  # a room nobody appealed
                say("能根治高血压", room="r1", t=100, event_id="s100"),  # 5 points: limit_comments
                say("能根治高血压", room="r2", t=100, event_id="x100"),
                say("能根治高血压", room="r1", t=300, event_id="s300"),  # 8 points: limit_traffic; after the overturn 5
            )
        )
    )
    before = replay(recording, tmp_path / "before", tiny_rules)
    assert [(a["room_id"], a["action"]) for a in before] == [
        ("r1", "warn"),
        ("r2", "warn"),
        ("r1", "limit_comments"),
        ("r2", "limit_comments"),
        ("r1", "limit_traffic"),
    ]
    warn, limit, _ = (a for a in before if a["room_id"] == "r1")

    overturns = tmp_path / "overturns.jsonl"
    overturns.write_text(overturn_of(limit, 200).model_dump_json() + "\n")
    after = replay(recording, tmp_path / "after", tiny_rules, overturns)
    replay(recording, tmp_path / "again", tiny_rules, overturns)

    # the first four actions as before; the finding at t=300 counts on the warning's 2 points alone: 5 points,
    # limit_comments issued again under a new id (not limit_traffic), its reasons without the overturned strike
    assert after[:4] == before[:4]
    assert len(after) == 5 and after[4]["action"] == "limit_comments" and after[4]["room_id"] == "r1"
    assert after[4]["action_id"] not in {a["action_id"] for a in before}
    assert len(after[4]["reasons"]) == 2 and after[4]["reasons"][0] == warn["reasons"][0]
    assert limit["reasons"][-1] not in after[4]["reasons"]
    for name in ("alerts.jsonl", "actions.jsonl", "dlq.jsonl"):
        assert (tmp_path / "after" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()

    # an overturn delivered twice (a retried publish) decides exactly as once
    overturns.write_text(2 * (overturn_of(limit, 200).model_dump_json() + "\n"))
    twice = replay(recording, tmp_path / "twice", tiny_rules, overturns)
    assert (tmp_path / "twice" / "actions.jsonl").read_bytes() == (tmp_path / "after" / "actions.jsonl").read_bytes()
    assert twice == after


def test_merge_puts_other_inputs_in_event_time_after_the_recordings_lines_of_the_same_time(tmp_path: Path):
    recording = tmp_path / "r.jsonl"
    recording.write_text("".join(json.dumps({"ts": ts, "n": f"r{ts}"}) + "\n" for ts in (1, 2, 2, 5)))
    other = tmp_path / "o.jsonl"
    other.write_text("".join(json.dumps({"ts": ts, "n": f"o{ts}"}) + "\n" for ts in (0, 2, 9)))
    merged = [json.loads(raw)["n"] for _, raw in merge_jsonl(recording, other)]
    assert merged == ["o0", "r1", "r2", "r2", "o2", "r5", "o9"]
    assert [raw for _, raw in merge_jsonl(recording)] == [raw for _, raw in read_jsonl(recording)]


def test_an_accounts_overturn_goes_to_the_account_stage(tiny_rules: Path):
    account = Subject(kind="account", id="u-7")
    engine = Engine(load_ruleset(tiny_rules), clock_ms=lambda: T0 + 3_600_000)
    mute = engine.process_account(AccountRecord(account="u-7", finding=finding(0, subject=account))).actions
    assert [a.action for a in mute] == ["mute_account"]

    out = engine.process(overturn_of(mute[0], 100))
    assert out.actions == [] and out.dead_letters == []
    again = engine.process_account(AccountRecord(account="u-7", finding=finding(200, subject=account))).actions
    assert [a.action for a in again] == ["mute_account"] and again[0].action_id != mute[0].action_id

    # on Kafka the room stage forwards it to live.accounts, keyed by the account
    forwarding = Engine(load_ruleset(tiny_rules), clock_ms=lambda: T0 + 3_600_000, forward_accounts=True)
    records = forwarding.process(overturn_of(mute[0], 100)).to_accounts
    assert [(r.account, r.overturn is not None) for r in records] == [("u-7", True)]
    assert AccountRecord.model_validate_json(records[0].model_dump_json()) == records[0]
