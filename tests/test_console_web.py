"""The console's access rules, through Flask's test client: logins, roles, CSRF, session expiry, audit."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pipeline.console.decisions import JsonlSink
from pipeline.console.materialise import Materialiser, load_directory
from pipeline.console.store import QueueFilter, Store
from pipeline.console.users import add_user
from pipeline.console.web import create_app
from pipeline.privacy import DEV_KEY, Pseudonymizer

PASSWORD = "a long enough secret"


@pytest.fixture
def console(demo_out: Path, tmp_path: Path):
    directory = Path(shutil.copytree(demo_out, tmp_path / "demo"))
    store = Store(f"sqlite:///{tmp_path / 'console.db'}")
    load_directory(Materialiser(store, Pseudonymizer(DEV_KEY)), directory)
    for name, role in (("vic", "viewer"), ("rita", "reviewer"), ("lena", "lead")):
        add_user(store, name, PASSWORD, role)
    app = create_app(store, JsonlSink(directory), session_minutes=30)
    yield app, store
    store.close()


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def log_in(client, name: str, password: str = PASSWORD):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": token(page), "username": name, "password": password})


def test_every_page_needs_a_login(console):
    app, store = console
    client = app.test_client()
    finding = store.queue(QueueFilter(), limit=1)[0]["finding_id"]
    for path in ("/", f"/finding/{finding}", "/room/demo-flood", "/appeals", "/api/count"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_a_wrong_password_is_refused(console):
    app, _ = console
    client = app.test_client()
    assert log_in(client, "rita", "not her password").status_code == 401
    assert client.get("/").status_code == 302


def test_a_form_without_its_csrf_token_is_refused(console):
    app, store = console
    client = app.test_client()
    log_in(client, "rita")
    finding = store.queue(QueueFilter(), limit=1)[0]["finding_id"]

    response = client.post(f"/finding/{finding}/decide", data={"decision": "confirm"})

    assert response.status_code == 400
    assert store.finding(finding)[1] == "open"  # type: ignore[index]


def test_viewers_read_reviewers_decide_leads_decide_appeals(console):
    app, store = console
    finding = store.queue(QueueFilter(), limit=1)[0]["finding_id"]
    appeal_ref = store.actions_where(room_id="demo-escalate")[0].appeal_ref

    viewer = app.test_client()
    log_in(viewer, "vic")
    page = viewer.get(f"/finding/{finding}").get_data(as_text=True)
    assert "Viewers cannot decide" in page
    assert (
        viewer.post(f"/finding/{finding}/decide", data={"csrf_token": token(page), "decision": "confirm"}).status_code
        == 403
    )

    reviewer = app.test_client()
    log_in(reviewer, "rita")
    page = reviewer.get(f"/finding/{finding}").get_data(as_text=True)
    decided = reviewer.post(f"/finding/{finding}/decide", data={"csrf_token": token(page), "decision": "confirm"})
    assert decided.status_code == 302 and store.finding(finding)[1] == "confirmed"  # type: ignore[index]
    page = reviewer.get(f"/appeal/{appeal_ref}").get_data(as_text=True)
    assert "Only a lead decides appeals" in page
    refused = reviewer.post(f"/appeal/{appeal_ref}/decide", data={"csrf_token": token(page), "decision": "overturn"})
    assert refused.status_code == 403 and store.appeal_decision(appeal_ref) is None
    assert reviewer.get("/audit").status_code == 403

    lead = app.test_client()
    log_in(lead, "lena")
    page = lead.get(f"/appeal/{appeal_ref}").get_data(as_text=True)
    lead.post(f"/appeal/{appeal_ref}/decide", data={"csrf_token": token(page), "decision": "uphold", "note": "fair"})
    decision = store.appeal_decision(appeal_ref)
    assert decision is not None and (decision.decision, decision.reviewer) == ("uphold", "lena")
    audit = lead.get("/audit").get_data(as_text=True)
    assert "finding.confirm" in audit and "appeal.uphold" in audit


def test_a_session_expires(console):
    app, _ = console
    client = app.test_client()
    log_in(client, "rita")
    assert client.get("/").status_code == 200
    with client.session_transaction() as session:
        session["since"] -= 31 * 60_000  # logged in 31 minutes ago; sessions last 30

    response = client.get("/")

    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_live_count_follows_the_filters(console):
    app, store = console
    client = app.test_client()
    log_in(client, "vic")
    for query, flt in (("", QueueFilter()), ("?room=demo-flood", QueueFilter(room="demo-flood"))):
        assert client.get(f"/api/count{query}").get_json() == {"count": store.count(flt)}
    assert store.count(QueueFilter(room="demo-flood")) < store.count(QueueFilter())


def test_the_finding_page_marks_the_evidence_in_the_raw_text(console):
    app, store = console
    client = app.test_client()
    log_in(client, "vic")
    claim = next(r for r in store.queue(QueueFilter(), limit=100) if r["rule_id"].startswith("claims.absolute"))
    finding, _ = store.finding(claim["finding_id"])  # type: ignore[misc]

    page = client.get(f"/finding/{finding.finding_id}").get_data(as_text=True)

    marked = re.findall(r"<mark>([^<]*)</mark>", page)  # overlapping spans are marked as one
    assert all(any(evidence.raw in m for m in marked) for evidence in finding.evidence)
    assert finding.legal_basis in page
    assert 'class="model"' in page  # the model's deciding spans


class UnreachableSink(JsonlSink):
    """A sink whose broker cannot be reached (the Kafka sink raises this when a send fails)."""

    def review(self, review):
        from pipeline.console.decisions import DecisionError

        raise DecisionError("could not publish to live.reviews (KafkaConnectionError); nothing was recorded")


def test_a_decision_that_cannot_be_published_is_not_recorded_and_the_reviewer_is_told(demo_out, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'console.db'}")
    load_directory(Materialiser(store, Pseudonymizer(DEV_KEY)), demo_out)
    add_user(store, "rita", PASSWORD, "reviewer")
    client = create_app(store, UnreachableSink(tmp_path)).test_client()
    log_in(client, "rita")
    finding = store.queue(QueueFilter(), limit=1)[0]["finding_id"]
    page = client.get(f"/finding/{finding}").get_data(as_text=True)

    shown = client.post(
        f"/finding/{finding}/decide", data={"csrf_token": token(page), "decision": "confirm"}, follow_redirects=True
    ).get_data(as_text=True)

    assert "Not recorded: could not publish to live.reviews" in shown
    assert store.finding(finding)[1] == "open"  # type: ignore[index]
    assert store.reviews_of(finding) == [] and store.audit_log()[0]["what"] == "login"
