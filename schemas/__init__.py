"""pydantic v2 models for every event, finding, action and rule file; JSON Schema export."""

from schemas.events import (
    EVENT_KINDS,
    BaseEvent,
    ChatEvent,
    DanmakuEvent,
    Event,
    OrderEvent,
    OverturnEvent,
    PriceTagEvent,
    StreamMetaEvent,
    TranscriptEvent,
    UserSignals,
    event_adapter,
    text_of,
)
from schemas.findings import EnforcementAction, Evidence, Finding, Subject, Window, derived_id

__all__ = [
    "EVENT_KINDS",
    "ChatEvent",
    "DanmakuEvent",
    "Event",
    "BaseEvent",
    "OrderEvent",
    "OverturnEvent",
    "PriceTagEvent",
    "StreamMetaEvent",
    "TranscriptEvent",
    "UserSignals",
    "event_adapter",
    "text_of",
    "EnforcementAction",
    "Evidence",
    "Finding",
    "Subject",
    "Window",
    "derived_id",
]
