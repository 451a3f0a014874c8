"""Reviewers' decisions, as the console writes them to ``live.reviews`` (compacted, key = finding id or
appeal reference): a finding confirmed, dismissed or escalated; an appeal upheld or overturned.

Ids are derived like every other livewatch id, so a decision read back from the topic is the one stored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.findings import derived_id
from schemas.version import SCHEMA_VERSION

ReviewDecisionType = Literal["confirm", "dismiss", "escalate"]
AppealDecisionType = Literal["uphold", "overturn"]

#: why a finding is dismissed: a fixed list, so dismissals can be counted and learnt from
DISMISS_REASONS: dict[str, str] = {
    "not_a_claim": "not a claim (quoted, refused, a question, a notice)",
    "allowed_in_context": "allowed in this context or product category",
    "organic_activity": "organic viewers, not hired accounts",
    "price_is_correct": "the price is marked and correct",
    "label_was_visible": "the AI label was visible",
    "wrong_match": "the words matched do not say this",
    "other": "other (say why in the note)",
}


class Review(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["review"] = "review"
    review_id: str
    finding_id: str
    decision: ReviewDecisionType
    reason: str | None = Field(default=None, description="one of DISMISS_REASONS; required for a dismissal")
    note: str = ""
    reviewer: str
    ts: int = Field(description="wall time of the decision (ms): a person's act, not a stream's event")
    room_id: str
    rule_id: str

    @model_validator(mode="after")
    def _reason(self) -> Review:
        if self.decision == "dismiss" and self.reason not in DISMISS_REASONS:
            raise ValueError(f"a dismissal needs a reason from the list: {', '.join(DISMISS_REASONS)}")
        return self

    @staticmethod
    def make_id(finding_id: str, decision: str, reviewer: str, ts: int) -> str:
        return derived_id("review", finding_id, decision, reviewer, ts)


class AppealDecision(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["appeal"] = "appeal"
    appeal_ref: str
    action_id: str
    decision: AppealDecisionType
    note: str = ""
    reviewer: str
    ts: int = Field(description="wall time of the decision (ms)")
    room_id: str
    revoke_action_id: str | None = Field(default=None, description="the compensating action of an overturn")
