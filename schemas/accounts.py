"""The account stage's work item: what the room stage hands to the stage keyed by account (``Engine.process_account``).

On the Kafka runtime it travels on the internal repartition topic live.accounts, keyed by ``account``: a real user
id, as on the input topics (alerts carry pseudonyms). Not a contract with platforms: producer and consumer are
both livewatch workers.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.events import ChatEvent, DanmakuEvent, OverturnEvent
from schemas.findings import Finding


class AccountRecord(BaseModel):
    """A comment for the account-keyed detectors, a live finding about the account for its ladder, or an overturn of
    an action against the account (its ladder forgets the action's strikes)."""

    model_config = ConfigDict(frozen=True)

    account: str
    event: ChatEvent | DanmakuEvent | None = Field(default=None, discriminator="kind")
    finding: Finding | None = None
    overturn: OverturnEvent | None = None
