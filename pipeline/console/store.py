"""The console's store: findings, actions, room events, reviews, appeals, users and the audit log.

One code path on SQLAlchemy Core for SQLite (the default, a file) and PostgreSQL (by URL). Every record read
from a topic or a file is inserted by its own id and a second insert of the same id is ignored, so
materialising the same input twice — a restart, a re-read topic — changes nothing.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    create_engine,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url

from schemas.findings import EnforcementAction, Finding
from schemas.reviews import AppealDecision, Review

SEVERITY_RANK = {"low": 1, "medium": 2, "high": 3, "critical": 4}
#: a finding's review state: open until a reviewer decides; escalated stays in the queue for a lead
REVIEW_STATES = ("open", "escalated", "confirmed", "dismissed")
STATE_OF_DECISION = {"confirm": "confirmed", "dismiss": "dismissed", "escalate": "escalated"}
ROLES = ("viewer", "reviewer", "lead")
DECIDED, QUEUED, QUEUED_SHADOW = 0, 1, 2
CHOICES_TTL_S = 30.0

metadata = MetaData()

findings = Table(
    "findings",
    metadata,
    Column("finding_id", String(64), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("room_id", String(200), nullable=False),
    Column("platform", String(100), nullable=False),
    Column("detector", String(100), nullable=False),
    Column("rule_id", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("severity_rank", Integer, nullable=False),
    Column("subject_kind", String(20), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("score", Float, nullable=False),
    Column("summary", Text, nullable=False),
    Column("review_state", String(20), nullable=False, default="open"),
    Column("review_ts", BigInteger, nullable=True),
    # the queue a finding is in: QUEUED (open or escalated), QUEUED_SHADOW (the same, of a shadow rule) or
    # DECIDED; one equality, so the default queue is read in order from one index and counted from it
    Column("queue", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_findings_queue", "queue", "severity_rank", "ts", "finding_id"),
    Index("ix_findings_state", "review_state", "severity_rank", "ts"),
    # a room's or a rule's queue, in the queue's order (and a room's findings in time order)
    Index("ix_findings_room", "room_id", "queue", "severity_rank", "ts", "finding_id"),
    Index("ix_findings_rule", "rule_id", "queue", "severity_rank", "ts", "finding_id"),
    Index("ix_findings_subject", "subject_id", "ts"),
    Index("ix_findings_ts", "ts"),
)

actions = Table(
    "actions",
    metadata,
    Column("action_id", String(64), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("room_id", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("subject_kind", String(20), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("appeal_ref", String(100), nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_actions_room", "room_id", "ts"),
    Index("ix_actions_appeal", "appeal_ref"),
    Index("ix_actions_subject", "subject_id", "ts"),
)

#: which findings an action names as its reasons (an action's reasons are finding ids)
action_reasons = Table(
    "action_reasons",
    metadata,
    Column("action_id", String(64), primary_key=True),
    Column("finding_id", String(64), primary_key=True),
    Index("ix_action_reasons_finding", "finding_id"),
)

events = Table(
    "events",
    metadata,
    Column("event_id", String(200), primary_key=True),
    Column("room_id", String(200), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("user", String(200), nullable=True),  # pseudonymised as in the alerts, never the platform's id
    Column("text", Text, nullable=True),
    Column("body", Text, nullable=False),
    Index("ix_events_room", "room_id", "ts"),
)

reviews = Table(
    "reviews",
    metadata,
    Column("review_id", String(64), primary_key=True),
    Column("finding_id", String(64), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reason", String(100), nullable=True),
    Column("reviewer", String(100), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_reviews_finding", "finding_id", "ts"),
)

appeals = Table(
    "appeals",
    metadata,
    Column("appeal_ref", String(100), primary_key=True),
    Column("action_id", String(64), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("reviewer", String(100), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("revoke_action_id", String(64), nullable=True),
    Column("body", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("username", String(100), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(20), nullable=False),
    Column("created_ts", BigInteger, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False),
    Column("username", String(100), nullable=False),
    Column("what", String(40), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_audit_ts", "ts"),
)

settings_table = Table(
    "console_meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


class StoreError(Exception):
    """The store cannot be opened or written; the message says which URL and why."""


@dataclass(frozen=True)
class QueueFilter:
    severity: str = ""
    rule: str = ""
    room: str = ""
    #: only findings at most this many minutes older than the newest finding in the store (event time)
    max_age_min: int = 0
    #: "open" (open + escalated, the default), one of REVIEW_STATES, or "all"
    state: str = "open"
    #: shadow findings are kept but only shown on request: they act on nothing
    include_shadow: bool = False


@dataclass
class LoadCounts:
    findings: int = 0
    actions: int = 0
    events: int = 0
    reviews: int = 0
    appeals: int = 0
    rejected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        bad = f"; {len(self.rejected)} rejected (first: {self.rejected[0]})" if self.rejected else ""
        return (
            f"{self.findings} findings, {self.actions} actions, {self.events} room events, "
            f"{self.reviews} reviews, {self.appeals} appeal decisions new in the store{bad}"
        )


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
            metadata.create_all(self.engine)
        except Exception as e:  # a wrong URL, a server not running, a missing driver
            raise StoreError(f"cannot open the console store {parsed.render_as_string()}: {e}") from e
        self._insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        # every rule and room, for the filters: a scan of an index, so kept, and renewed after an insert here or
        # after CHOICES_TTL_S (another console may write to the same server)
        self._choices: tuple[float, dict[str, list[str]]] | None = None

    def close(self) -> None:
        self.engine.dispose()

    def analyze(self) -> None:
        """Refresh the planner's statistics (and PostgreSQL's visibility map, for index-only counts) after a
        bulk load; the server's autovacuum does the same on its own schedule."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with self.engine.begin() as conn:
                conn.execute(text("ANALYZE"))

    # -- writing -------------------------------------------------------------------------------------

    def _insert_new(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows whose key is not there yet; the number inserted."""
        if not rows:
            return 0
        # RETURNING names the rows really inserted (rowcount of a many-row insert is not reliable everywhere)
        key = next(iter(table.primary_key.columns))
        return len(conn.execute(self._insert(table).on_conflict_do_nothing().returning(key), list(rows)).all())

    def add_findings(self, items: Iterable[Finding]) -> int:
        rows = [
            {
                "finding_id": f.finding_id,
                "ts": f.ts,
                "room_id": f.room_id,
                "platform": f.platform,
                "detector": f.detector,
                "rule_id": f.rule_id,
                "status": f.status,
                "severity": f.severity,
                "severity_rank": SEVERITY_RANK[f.severity],
                "subject_kind": f.subject.kind,
                "subject_id": f.subject.id,
                "score": f.score,
                "summary": f.summary,
                "review_state": "open",
                "review_ts": None,
                "queue": QUEUED_SHADOW if f.status == "shadow" else QUEUED,
                "body": f.model_dump_json(),
            }
            for f in items
        ]
        with self.engine.begin() as conn:
            added = self._insert_new(conn, findings, rows)
        if added:
            self._choices = None
        return added

    def add_actions(self, items: Iterable[EnforcementAction]) -> int:
        items = list(items)
        rows = [
            {
                "action_id": a.action_id,
                "ts": a.ts,
                "room_id": a.room_id,
                "action": a.action,
                "subject_kind": a.subject.kind,
                "subject_id": a.subject.id,
                "appeal_ref": a.appeal_ref,
                "body": a.model_dump_json(),
            }
            for a in items
        ]
        links = [{"action_id": a.action_id, "finding_id": r} for a in items for r in dict.fromkeys(a.reasons)]
        with self.engine.begin() as conn:
            self._insert_new(conn, action_reasons, links)
            return self._insert_new(conn, actions, rows)

    def add_events(self, rows: Iterable[dict[str, Any]]) -> int:
        with self.engine.begin() as conn:
            return self._insert_new(conn, events, list(rows))

    def add_review(self, review: Review) -> bool:
        """Store a decision on a finding; the finding takes the state of its latest decision."""
        with self.engine.begin() as conn:
            row = {
                "review_id": review.review_id,
                "finding_id": review.finding_id,
                "decision": review.decision,
                "reason": review.reason,
                "reviewer": review.reviewer,
                "ts": review.ts,
                "body": review.model_dump_json(),
            }
            if not self._insert_new(conn, reviews, [row]):
                return False
            conn.execute(
                update(findings)
                .where(findings.c.finding_id == review.finding_id)
                .where(or_(findings.c.review_ts.is_(None), findings.c.review_ts <= review.ts))
                .values(
                    review_state=STATE_OF_DECISION[review.decision],
                    review_ts=review.ts,
                    queue=DECIDED
                    if review.decision != "escalate"
                    else case((findings.c.status == "shadow", QUEUED_SHADOW), else_=QUEUED),
                )
            )
            return True

    def add_appeal_decision(self, decision: AppealDecision) -> bool:
        """Store an appeal's decision; an appeal is decided once (a second decision is refused)."""
        row = {
            "appeal_ref": decision.appeal_ref,
            "action_id": decision.action_id,
            "decision": decision.decision,
            "reviewer": decision.reviewer,
            "ts": decision.ts,
            "revoke_action_id": decision.revoke_action_id,
            "body": decision.model_dump_json(),
        }
        with self.engine.begin() as conn:
            return bool(self._insert_new(conn, appeals, [row]))

    def audit(self, username: str, what: str, target: str, detail: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                audit.insert().values(
                    ts=now_ms(),
                    username=username,
                    what=what,
                    target=target,
                    detail=json.dumps(detail, ensure_ascii=False, sort_keys=True),
                )
            )

    # -- users ---------------------------------------------------------------------------------------

    def put_user(self, username: str, password_hash: str, role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self.engine.begin() as conn:
            exists = conn.execute(select(users.c.username).where(users.c.username == username)).first()
            if exists:
                conn.execute(
                    update(users).where(users.c.username == username).values(password_hash=password_hash, role=role)
                )
            else:
                conn.execute(
                    users.insert().values(
                        username=username, password_hash=password_hash, role=role, created_ts=now_ms()
                    )
                )

    def user(self, username: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
            return dict(row) if row else None

    def secret(self, key: str) -> str:
        """A random secret kept in the store (e.g. the session-signing key), made on first use."""
        with self.engine.begin() as conn:
            row = conn.execute(select(settings_table.c.value).where(settings_table.c.key == key)).first()
            if row:
                return str(row[0])
            self._insert_new(conn, settings_table, [{"key": key, "value": secrets.token_hex(32)}])
            return str(conn.execute(select(settings_table.c.value).where(settings_table.c.key == key)).scalar_one())

    # -- reading -------------------------------------------------------------------------------------

    def _queue_where(self, flt: QueueFilter, conn: Connection) -> list[Any]:
        where: list[Any] = []
        if flt.state == "open":
            where.append(
                findings.c.queue.in_((QUEUED, QUEUED_SHADOW)) if flt.include_shadow else findings.c.queue == QUEUED
            )
        else:
            if flt.state in REVIEW_STATES:
                where.append(findings.c.review_state == flt.state)
            if not flt.include_shadow:
                where.append(findings.c.status != "shadow")
        if flt.severity:
            where.append(findings.c.severity_rank == SEVERITY_RANK[flt.severity])  # an index column
        if flt.rule:
            where.append(findings.c.rule_id == flt.rule)
        if flt.room:
            where.append(findings.c.room_id == flt.room)
        if flt.max_age_min:
            newest = conn.execute(select(func.max(findings.c.ts))).scalar()
            if newest is not None:
                where.append(findings.c.ts >= newest - flt.max_age_min * 60_000)
        return where

    def queue(self, flt: QueueFilter, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Open findings, most severe first, then newest."""
        with self.engine.connect() as conn:
            query = (
                select(
                    findings.c.finding_id,
                    findings.c.ts,
                    findings.c.room_id,
                    findings.c.rule_id,
                    findings.c.status,
                    findings.c.severity,
                    findings.c.subject_kind,
                    findings.c.subject_id,
                    findings.c.score,
                    findings.c.summary,
                    findings.c.review_state,
                )
                .where(and_(True, *self._queue_where(flt, conn)))
                .order_by(findings.c.severity_rank.desc(), findings.c.ts.desc(), findings.c.finding_id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [dict(r) for r in conn.execute(query).mappings()]

    def count(self, flt: QueueFilter) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(findings).where(and_(True, *self._queue_where(flt, conn)))
            return int(conn.execute(query).scalar_one())

    def choices(self) -> dict[str, list[str]]:
        """The values the queue's filters offer: every rule and room in the store."""
        if self._choices is not None and time.monotonic() - self._choices[0] < CHOICES_TTL_S:
            return self._choices[1]
        with self.engine.connect() as conn:
            rules = [r[0] for r in conn.execute(select(findings.c.rule_id).distinct().order_by(findings.c.rule_id))]
            rooms = [r[0] for r in conn.execute(select(findings.c.room_id).distinct().order_by(findings.c.room_id))]
        self._choices = (time.monotonic(), {"rules": rules, "rooms": rooms})
        return self._choices[1]

    def finding(self, finding_id: str) -> tuple[Finding, str] | None:
        """A finding and its review state."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(findings.c.body, findings.c.review_state).where(findings.c.finding_id == finding_id)
            ).first()
        return (Finding.model_validate_json(row[0]), row[1]) if row else None

    def reviews_of(self, finding_id: str) -> list[Review]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(reviews.c.body).where(reviews.c.finding_id == finding_id).order_by(reviews.c.ts))
            return [Review.model_validate_json(r[0]) for r in rows]

    def reviewed(self) -> list[tuple[Finding, Review]]:
        """Every finding whose latest decision is a confirmation or a dismissal, with that decision."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(findings.c.body, reviews.c.body)
                .join(
                    reviews,
                    and_(reviews.c.finding_id == findings.c.finding_id, reviews.c.ts == findings.c.review_ts),
                )
                .where(findings.c.review_state.in_(("confirmed", "dismissed")))
                .order_by(findings.c.ts, findings.c.finding_id)
            )
            out: dict[str, tuple[Finding, Review]] = {}
            for f, r in rows:
                finding, review = Finding.model_validate_json(f), Review.model_validate_json(r)
                out[finding.finding_id] = (finding, review)
            return list(out.values())

    def actions_for_finding(self, finding_id: str) -> list[EnforcementAction]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(actions.c.body)
                .join(action_reasons, action_reasons.c.action_id == actions.c.action_id)
                .where(action_reasons.c.finding_id == finding_id)
                .order_by(actions.c.ts)
            )
            return [EnforcementAction.model_validate_json(r[0]) for r in rows]

    def action_by_appeal(self, appeal_ref: str) -> EnforcementAction | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(actions.c.body).where(actions.c.appeal_ref == appeal_ref, actions.c.action != "revoke")
            ).first()
        return EnforcementAction.model_validate_json(row[0]) if row else None

    def appeal_decision(self, appeal_ref: str) -> AppealDecision | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(appeals.c.body).where(appeals.c.appeal_ref == appeal_ref)).first()
        return AppealDecision.model_validate_json(row[0]) if row else None

    def appeal_decisions(self) -> list[AppealDecision]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(appeals.c.body).order_by(appeals.c.ts.desc()))
            return [AppealDecision.model_validate_json(r[0]) for r in rows]

    def room_findings(self, room_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(findings.c.finding_id, findings.c.ts, findings.c.rule_id, findings.c.severity,
                       findings.c.status, findings.c.subject_kind, findings.c.subject_id, findings.c.summary,
                       findings.c.review_state)
                .where(findings.c.room_id == room_id)
                .order_by(findings.c.ts)
            )  # fmt: skip
            return [dict(r) for r in rows.mappings()]

    def actions_where(self, *, room_id: str | None = None, subject_id: str | None = None) -> list[EnforcementAction]:
        with self.engine.connect() as conn:
            query = select(actions.c.body).order_by(actions.c.ts, actions.c.action_id)
            if room_id is not None:
                query = query.where(actions.c.room_id == room_id)
            if subject_id is not None:
                query = query.where(actions.c.subject_id == subject_id)
            return [EnforcementAction.model_validate_json(r[0]) for r in conn.execute(query)]

    def account_findings(self, subject_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(findings.c.finding_id, findings.c.ts, findings.c.room_id, findings.c.rule_id,
                       findings.c.severity, findings.c.status, findings.c.summary, findings.c.review_state)
                .where(findings.c.subject_id == subject_id)
                .order_by(findings.c.ts)
            )  # fmt: skip
            return [dict(r) for r in rows.mappings()]

    def event(self, event_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.event_id == event_id)).mappings().first()
            return dict(row) if row else None

    def room_events(self, room_id: str, start_ts: int, end_ts: int, limit: int = 500) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.event_id, events.c.ts, events.c.kind, events.c.user, events.c.text)
                .where(events.c.room_id == room_id, events.c.ts >= start_ts, events.c.ts <= end_ts)
                .order_by(events.c.ts, events.c.event_id)
                .limit(limit)
            )
            return [dict(r) for r in rows.mappings()]

    def events_per_minute(self, room_id: str) -> list[tuple[int, int]]:
        """(minute start in ms, events in that minute) for a room, in time order."""
        minute = events.c.ts // 60_000
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(minute.label("m"), func.count()).where(events.c.room_id == room_id).group_by("m").order_by("m")
            )
            return [(int(m) * 60_000, int(n)) for m, n in rows]

    def audit_log(self, limit: int = 200) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit).order_by(audit.c.id.desc()).limit(limit))
            return [dict(r) for r in rows.mappings()]
