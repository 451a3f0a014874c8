"""JSON Schema of every wire model, for consumers (``livewatch schema``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.deadletter import DeadLetter
from schemas.events import EVENT_MODELS, event_adapter
from schemas.findings import EnforcementAction, Finding
from schemas.reviews import AppealDecision, Review


def all_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {"Event": event_adapter.json_schema()}
    models: tuple[type[BaseModel], ...] = (
        *EVENT_MODELS,
        Finding,
        EnforcementAction,
        DeadLetter,
        Review,
        AppealDecision,
    )
    for model in models:
        out[model.__name__] = model.model_json_schema()
    return out
