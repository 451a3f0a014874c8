"""The console's store and materialiser, on SQLite and on the real PostgreSQL server: a demo's outputs loaded
once however often they are read, the queue's order and filters, decisions, appeals and the labels export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipeline.console.decisions import DecisionError, JsonlSink, decide_appeal, decide_finding
from pipeline.console.labels import CLAIMS_FILE, FLOODS_FILE, export_labels
from pipeline.console.materialise import Materialiser, load_directory
from pipeline.console.store import SEVERITY_RANK, QueueFilter, Store
from pipeline.console.users import add_user, check_login
from pipeline.privacy import DEV_KEY, Pseudonymizer
from schemas.events import OverturnEvent
from schemas.findings import EnforcementAction, Finding, derived_id


@pytest.fixture
def demo_dir(demo_out: Path, tmp_path: Path) -> Path:
    """A private copy of the demo's outputs: decisions are written beside them."""
    return Path(shutil.copytree(demo_out, tmp_path / "demo"))


@pytest.fixture
def store(console_db: str):
    s = Store(console_db)
    yield s
    s.close()


def materialiser(store: Store) -> Materialiser:
    return Materialiser(store, Pseudonymizer(DEV_KEY))


def demo_findings(directory: Path) -> list[Finding]:
    lines = (directory / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    return [Finding.model_validate_json(line) for line in lines]


def demo_actions(directory: Path) -> list[EnforcementAction]:
    lines = (directory / "actions.jsonl").read_text(encoding="utf-8").splitlines()
    return [EnforcementAction.model_validate_json(line) for line in lines]


def test_a_directory_read_twice_is_stored_once(store: Store, demo_dir: Path):
    findings, actions = demo_findings(demo_dir), demo_actions(demo_dir)
    recording = (demo_dir / "demo_recording.jsonl").read_text(encoding="utf-8").splitlines()

    first = load_directory(materialiser(store), demo_dir)
    again = load_directory(materialiser(store), demo_dir)

    assert (first.findings, first.actions, first.events) == (len(findings), len(actions), len(recording))
    assert first.rejected == []
    assert (again.findings, again.actions, again.events) == (0, 0, 0)
    assert store.count(QueueFilter(state="all", include_shadow=True)) == len(findings)


def test_a_bad_line_is_named_and_the_rest_loaded(store: Store, demo_dir: Path):
    alerts = demo_dir / "alerts.jsonl"
    lines = alerts.read_text(encoding="utf-8").splitlines()
    alerts.write_text("\n".join([lines[0], '{"finding_id": "half a record"', *lines[1:]]) + "\n", encoding="utf-8")

    counts = load_directory(materialiser(store), demo_dir)

    assert counts.findings == len(lines)
    assert len(counts.rejected) == 1 and counts.rejected[0].startswith(f"{alerts}:2: not a valid alerts record")


def test_the_queue_puts_the_most_severe_first_and_filters(store: Store, demo_dir: Path):
    load_directory(materialiser(store), demo_dir)
    findings = [f for f in demo_findings(demo_dir) if f.status != "shadow"]

    queue = store.queue(QueueFilter(), limit=1000)
    assert len(queue) == len(findings) == store.count(QueueFilter())
    ranks = [(SEVERITY_RANK[r["severity"]], r["ts"]) for r in queue]
    assert ranks == sorted(ranks, reverse=True)

    medium_in_flood = [f for f in findings if f.severity == "medium" and f.room_id == "demo-flood"]
    assert medium_in_flood
    assert store.count(QueueFilter(severity="medium", room="demo-flood")) == len(medium_in_flood)
    rule = findings[0].rule_id
    assert store.count(QueueFilter(rule=rule)) == sum(f.rule_id == rule for f in findings)

    newest = max(f.ts for f in findings)
    recent = [f for f in findings if f.ts >= newest - 5 * 60_000]
    assert 0 < len(recent) < len(findings)
    assert store.count(QueueFilter(max_age_min=5)) == len(recent)

    shadows = sum(f.status == "shadow" for f in demo_findings(demo_dir))
    assert shadows and store.count(QueueFilter(include_shadow=True)) == len(findings) + shadows


def test_decisions_move_findings_out_of_the_queue_and_are_written(store: Store, demo_dir: Path):
    load_directory(materialiser(store), demo_dir)
    sink = JsonlSink(demo_dir)
    first, second, third = (r["finding_id"] for r in store.queue(QueueFilter(), limit=3))
    open_before = store.count(QueueFilter())

    decide_finding(store, sink, first, "confirm", None, "", "rita")
    decide_finding(store, sink, second, "dismiss", "not_a_claim", "a refusal", "rita")
    decide_finding(store, sink, third, "escalate", None, "for a lead", "rita")

    assert store.count(QueueFilter()) == open_before - 2  # escalated findings stay in the queue
    assert store.count(QueueFilter(state="escalated")) == 1
    assert [store.finding(f)[1] for f in (first, second)] == ["confirmed", "dismissed"]  # type: ignore[index]
    with pytest.raises(ValidationError, match="a dismissal needs a reason"):
        decide_finding(store, sink, third, "dismiss", None, "", "rita")
    with pytest.raises(DecisionError, match="no finding"):
        decide_finding(store, sink, "no-such-id", "confirm", None, "", "rita")
    written = [json.loads(line) for line in (demo_dir / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["finding_id"], r["decision"]) for r in written] == [
        (first, "confirm"),
        (second, "dismiss"),
        (third, "escalate"),
    ]
    assert [r["what"] for r in store.audit_log()] == ["finding.escalate", "finding.dismiss", "finding.confirm"]


def test_overturning_an_appeal_revokes_the_action_once(store: Store, demo_dir: Path, tmp_path: Path):
    load_directory(materialiser(store), demo_dir)
    sink = JsonlSink(demo_dir)
    original = demo_actions(demo_dir)[0]

    decision, revoke = decide_appeal(store, sink, original.appeal_ref, "overturn", "host quoted a customer", "lena")

    assert revoke is not None
    assert revoke.action == "revoke" and revoke.action_id == derived_id("revoke", original.action_id)
    assert revoke.reasons == [original.action_id] and revoke.subject == original.subject
    assert decision.revoke_action_id == revoke.action_id
    assert store.appeal_decision(original.appeal_ref) == decision
    assert [a.action for a in store.actions_where(room_id=original.room_id)].count("revoke") == 1
    # and an input event for the ladder, in the wire format a replay merges in (`livewatch replay --merge`)
    overturns = [OverturnEvent.model_validate_json(line) for line in (demo_dir / "overturns.jsonl").open()]
    assert [(o.action_id, o.subject, o.room_id, o.ts, o.appeal_ref) for o in overturns] == [
        (original.action_id, original.subject, original.room_id, decision.ts, original.appeal_ref)
    ]
    assert overturns[0].event_id == derived_id("overturn", original.action_id)
    with pytest.raises(DecisionError, match="decided already"):
        decide_appeal(store, sink, original.appeal_ref, "uphold", "", "lena")
    with pytest.raises(DecisionError, match="no action carries"):
        decide_appeal(store, sink, "LW-APPEAL-NOTHING", "uphold", "", "lena")

    # a new store loading the same directory sees the decision and the revoke the console wrote there
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    counts = load_directory(materialiser(fresh), demo_dir)
    assert (counts.appeals, fresh.appeal_decision(original.appeal_ref)) == (1, decision)
    assert counts.actions == len(demo_actions(demo_dir)) + 1


def test_labels_export_turns_decisions_into_training_rows(store: Store, demo_dir: Path, tmp_path: Path):
    load_directory(materialiser(store), demo_dir)
    sink = JsonlSink(demo_dir)
    findings = demo_findings(demo_dir)
    claims = [f for f in findings if f.detector == "false_claims"]
    campaign = next(f for f in findings if f.rule_id == "flood.commercial_campaign")
    price = next(f for f in findings if f.detector == "price_marking")
    decide_finding(store, sink, claims[0].finding_id, "confirm", None, "", "rita")
    decide_finding(store, sink, claims[1].finding_id, "dismiss", "allowed_in_context", "", "rita")
    decide_finding(store, sink, campaign.finding_id, "confirm", None, "", "rita")
    decide_finding(store, sink, price.finding_id, "confirm", None, "", "rita")
    decide_finding(store, sink, claims[2].finding_id, "escalate", None, "", "rita")  # not a label

    counts = export_labels(store, tmp_path / "labels")

    rows = [json.loads(line) for line in (tmp_path / "labels" / CLAIMS_FILE).read_text(encoding="utf-8").splitlines()]
    by_id = {r["finding_id"]: r for r in rows}
    assert set(by_id) == {claims[0].finding_id, claims[1].finding_id}
    positive, negative = by_id[claims[0].finding_id], by_id[claims[1].finding_id]
    assert positive["claim_type"] == claims[0].details["claim_type"] != "none"
    assert negative["claim_type"] == "none" and negative["family"] == "reviewed_allowed_in_context"
    recording = {
        json.loads(line)["event_id"]: json.loads(line)
        for line in (demo_dir / "demo_recording.jsonl").read_text(encoding="utf-8").splitlines()
    }
    assert positive["text"] == recording[claims[0].event_ids[0]]["text"]
    assert {"text", "category", "claim_type", "evasion", "family"} <= set(positive)

    floods = [json.loads(line) for line in (tmp_path / "labels" / FLOODS_FILE).read_text().splitlines()]
    assert floods == [
        {
            "features": campaign.details["features"],
            "label": 1,
            "group": "reviewed campaign",
            "finding_id": campaign.finding_id,
        }
    ]
    assert counts["skipped (price_marking: no training script reads it)"] == 1


def test_passwords_are_hashed_and_checked(store: Store):
    add_user(store, "rita", "a long enough secret", "reviewer")

    assert check_login(store, "rita", "a long enough secret") == {"username": "rita", "role": "reviewer"}
    assert check_login(store, "rita", "a wrong secret!!") is None
    assert check_login(store, "nobody", "a long enough secret") is None
    stored = store.user("rita")
    assert stored is not None and stored["password_hash"].startswith("$argon2id$")
    with pytest.raises(ValueError, match="at least"):
        add_user(store, "short", "short", "viewer")
    with pytest.raises(ValueError, match="role must be"):
        add_user(store, "boss", "a long enough secret", "admin")
