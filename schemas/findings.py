"""Outputs: findings (alerts with evidence) and enforcement actions.

Ids are derived, never random: the same input and rules give the same ids, so a replay, a restarted
worker or at-least-once delivery can be deduplicated by consumers (DESIGN.md principle 6).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.version import SCHEMA_VERSION

#: Namespace for every uuid5 livewatch derives. Fixed forever: changing it changes every id.
ID_NAMESPACE = uuid.UUID("6f1d3c52-2b0e-4d8e-9a57-1c0f6a8e9b31")
_NAMESPACE_BYTES = ID_NAMESPACE.bytes

Severity = Literal["low", "medium", "high", "critical"]
RuleStatus = Literal["live", "shadow", "off"]
#: live: the policy acts on it; shadow: a rule being tried; review: for a person, never acted on
FindingStatus = Literal["live", "shadow", "review"]
#: how a span was matched: the lexicon (exact, after normalisation, by sound, by pattern), a field's value, the model
EvidenceHow = Literal["exact", "normalized", "homophone", "pattern", "value", "model"]


def derived_id(*parts: object) -> str:
    """A deterministic id from its parts: ``str(uuid.uuid5(ID_NAMESPACE, "\x1f".join(map(str, parts))))``, written
    out — the SHA-1 of the namespace and the name, version and variant bits set — because a ``UUID`` object is built
    and checked in Python (every finding and action has one or two; tests/test_ids.py holds the two to each other)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(map(str, parts)).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Subject(BaseModel):
    """Who an action is aimed at: the room (the stream) or one account in it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["room", "account"]
    id: str

    def key(self) -> str:
        return f"{self.kind}:{self.id}"


class Window(BaseModel):
    model_config = ConfigDict(frozen=True)

    start_ts: int
    end_ts: int


class Evidence(BaseModel):
    """One matched span: what the event said (raw) and what the matcher saw (normalised)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    field: str = Field(description="the event field the span is in, e.g. 'text' or 'title'")
    start: int = Field(description="offset of the span in the raw field (characters)")
    end: int
    raw: str
    normalized: str
    term: str | None = Field(default=None, description="the lexicon term or pattern that matched")
    how: EvidenceHow = "normalized"


class Finding(BaseModel):
    """A detector's conclusion about one room or account, with everything a reviewer needs."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    finding_id: str
    detector: str
    rule_id: str
    rule_version: int
    ruleset_version: str
    status: FindingStatus = Field(
        description="live: the policy acts on it; shadow: a rule being tried, records what it would do; "
        "review: an uncertain finding for a person to look at, never acted on"
    )
    severity: Severity
    legal_basis: str
    room_id: str
    platform: str
    ts: int = Field(description="event time of the decision (ms)")
    subject: Subject
    window: Window
    event_ids: list[str]
    evidence: list[Evidence] = Field(default_factory=list)
    score: float = Field(ge=0.0, le=1.0)
    summary: str
    details: dict[str, object] = Field(default_factory=dict)
    shadow_action: str | None = Field(
        default=None, description="for shadow rules: the action the policy would have taken"
    )


ActionType = Literal[
    "warn",
    "limit_comments",
    "limit_traffic",
    "limit_cart",
    "suspend",
    "mute_account",
    # compensating: an earlier action overturned on appeal (its reasons name the action it revokes)
    "revoke",
]


class EnforcementAction(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    action_id: str
    action: ActionType
    subject: Subject
    room_id: str
    platform: str
    ts: int = Field(description="event time the action was decided (ms)")
    duration_s: int = Field(ge=0, description="0 = no duration (a warning)")
    expires_ts: int | None
    ladder: str
    step: int = Field(ge=0, description="index on the ladder, 0 = first step")
    severity: Severity
    rule_id: str
    rule_version: int
    ruleset_version: str
    reasons: list[str] = Field(description="finding ids that led to this action")
    legal_basis: list[str]
    appeal_ref: str
    message: str
