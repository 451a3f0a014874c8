"""The detector plug-in point: a protocol, a registry, and what every detector is handed.

A detector is built once per ruleset from its settings and rules (so a hot reload builds new
detectors), and then called as a pure function of (event, normalised text, room state). Its state is
a pydantic model, so any runtime can persist it (a dict, a Faust table) and rebuild it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Protocol, Sequence, TypeVar

from pydantic import BaseModel

from detectors.normalize import NormalizedText
from schemas.events import EventModel
from schemas.findings import Finding
from schemas.rules import Rule


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Facts about the loaded ruleset a detector stamps onto its findings."""

    ruleset_version: str
    #: the bytes of the ruleset's data files other than rules (``rules/*.json``, e.g. a trained model) by
    #: file name: the loader reads them, so detectors stay free of the file system
    resources: Mapping[str, bytes] = field(default_factory=dict)


class Detector(Protocol):
    name: ClassVar[str]
    #: event kinds this detector reads; the engine routes nothing else to it
    kinds: ClassVar[frozenset[str]]
    settings_model: ClassVar[type[BaseModel]]
    rule_model: ClassVar[type[Rule]]
    state_model: ClassVar[type[BaseModel]]
    #: whether a runtime must persist the state (a changelog write whenever it changes); sliding-window
    #: state says False and is rebuilt from the input instead
    durable_state: ClassVar[bool]
    #: for state that is not durable: how much input (ms of event time) the state depends on, so that a
    #: runtime can rebuild it by feeding the detector that much of the room's input again (0 if durable)
    history_ms: int

    def __init__(self, settings: Any, rules: Sequence[Rule], context: RuleContext) -> None: ...

    def detect(self, event: EventModel, text: NormalizedText | None, state: Any) -> list[Finding]:
        """Findings for this event; may update ``state`` in place. Must not raise on valid events."""
        ...

    def check_examples(self, rule: Rule) -> list[str]:
        """Problems with the rule's inline ``examples`` (empty when they all hold)."""
        ...


REGISTRY: dict[str, type[Detector]] = {}

D = TypeVar("D", bound=type)


def register(cls: D) -> D:
    """Class decorator: make a detector available to rule files under its ``name``."""
    name = cls.name  # type: ignore[attr-defined]
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"two detectors are registered as {name!r}")
    REGISTRY[name] = cls  # type: ignore[assignment]
    return cls
