"""The detector plug-in point: one generic base class, a registry, and what every detector is handed.

A detector subclasses ``Detector[RuleT, SettingsT, StateT]`` and names itself; that registers it (the
package imports every module in ``detectors/``). It is built once per ruleset from its settings and rules
(a hot reload builds new detectors) and then called as a pure function of (event, normalised text, room
state). Its state is a pydantic model, so any runtime can persist it (a dict, a Faust table) and rebuild it.
``detectors.checks.check_detector`` holds any detector to the contract.

How to write a detector: docs/rules.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel

from detectors.normalize import NormalizedText
from detectors.timeline import TimelineExamples, check_timelines
from schemas.events import BaseEvent, is_viewer_comment
from schemas.findings import Evidence, EvidenceHow, Finding, FindingStatus, RuleStatus, Subject, Window, derived_id
from schemas.rules import Rule

RuleT = TypeVar("RuleT", bound=Rule)
SettingsT = TypeVar("SettingsT", bound=BaseModel)
StateT = TypeVar("StateT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Facts about the loaded ruleset a detector stamps onto its findings."""

    ruleset_version: str
    #: the bytes of the ruleset's data files other than rules (``rules/*.json``, e.g. a trained model) by
    #: file name: the loader reads them, so detectors stay free of the file system
    resources: Mapping[str, bytes] = field(default_factory=dict)


class Detector(Generic[RuleT, SettingsT, StateT]):
    """Base of every detector. A subclass declares ``name`` and ``kinds``, implements ``detect``, and
    overrides ``check_examples`` when its rules' examples are not timelines; the rule, settings and state
    models are the class's type arguments."""

    name: ClassVar[str]
    #: event kinds this detector reads; the engine routes nothing else to it
    kinds: ClassVar[frozenset[str]]
    #: False: no viewer's comment is routed to it, though ``kinds`` holds chat or danmaku (a host's or operator's
    #: comment). Viewer comments are four events in five, and a call that returns at once cost ≈ 1 µs each.
    reads_viewer_comments: ClassVar[bool] = True
    #: True: a viewer's comment is only the room's clock to it (``ReportsWhenDue``), so the engine routes one to it
    #: only when its state's ``next_due`` falls due at the comment; at any other comment ``detect`` would return no
    #: finding and leave the state as it is (``checks.check_may_change`` holds it to that)
    viewer_comments_as_clock: ClassVar[bool] = False
    rule_model: ClassVar[type[Rule]]
    settings_model: ClassVar[type[BaseModel]]
    state_model: ClassVar[type[BaseModel]]
    #: whether a runtime must persist the state (a changelog write whenever it changes); sliding-window
    #: state says False and is rebuilt from the input instead (``history_ms``)
    durable_state: ClassVar[bool] = True
    #: what the runtime keys this detector's state by: the event's room (most detectors), or the commenting
    #: account (``user_id``), for a detector that follows one account across rooms (account_rings)
    keyed_by: ClassVar[Literal["room", "account"]] = "room"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if get_origin(base) is Detector:
                cls.rule_model, cls.settings_model, cls.state_model = get_args(base)
        state_fields = getattr(getattr(cls, "state_model", None), "model_fields", None)
        if cls.viewer_comments_as_clock and state_fields is not None and "next_due" not in state_fields:
            # the engine reads ``state.next_due`` to route a viewer's comment to it (``viewer_comments_as_clock``)
            raise TypeError(f"{cls.__name__}: a viewer's comment is only its clock, but its state has no next_due")
        if "name" in cls.__dict__:
            register(cls)

    def __init__(self, settings: SettingsT, rules: Sequence[RuleT], context: RuleContext) -> None:
        self.settings = settings
        self.context = context
        #: every rule of the ruleset for this detector, those switched off included
        self.all_rules: tuple[RuleT, ...] = tuple(rules)
        #: the rules that run
        self.rules: list[RuleT] = [r for r in rules if r.status != "off"]
        #: for state that is not durable: how much input (ms of event time) the state depends on, so that a
        #: runtime can rebuild it by feeding the detector that much of the room's input again
        self.history_ms: int = 0
        #: for state that is not durable: how long (ms of event time) the detector's own memory of a report
        #: keeps it from repeating that finding. Longer than ``history_ms``, a rebuild forgets it and the same
        #: finding would come again after a handover (other figures, same id), so the engine remembers the ids
        #: reported that long in the room's durable state and drops a repeat (``RoomState.first_reports``).
        self.report_memory_ms: int = 0

    def new_state(self) -> StateT:
        return cast(StateT, self.state_model())

    def wants(self, event: BaseEvent, text: NormalizedText) -> bool:
        """For an account-keyed detector: whether ``detect`` could use this event at all (a runtime sends the
        account stage only what some detector wants: the account stage may sit behind a repartition)."""
        return True

    def detect(self, event: BaseEvent, text: NormalizedText | None, state: StateT) -> list[Finding]:
        """Findings for this event; may update ``state`` in place. Must not raise on valid events."""
        raise NotImplementedError

    def may_change(self, event: BaseEvent, state: StateT) -> bool:
        """Whether ``detect`` may change ``state`` on ``event`` (asked just before it runs). A worker learns whether
        a room's durable state changed by serialising it, so it does that only after an event some durable
        detector answers yes for, or that led to a finding. Yes unless the detector knows better: a viewer's
        comment — most of the input — changes no durable state but the clock's (``checks.check_may_change``)."""
        return True

    # -- rules --------------------------------------------------------------------------------------

    def with_statuses(self, status: RuleStatus | Mapping[str, RuleStatus]) -> Self:
        """The same detector with rule statuses overridden — one for all, or by rule id — to evaluate or test
        rules that ship switched off."""
        wanted = status if isinstance(status, Mapping) else {r.id: status for r in self.all_rules}
        rules = [r.model_copy(update={"status": wanted.get(r.id, r.status)}) for r in self.all_rules]
        return type(self)(self.settings, rules, self.context)

    def solo(self, rule: RuleT) -> Self:
        """This detector running ``rule`` alone, live: how a rule's own examples are checked."""
        return type(self)(self.settings, [rule.model_copy(update={"status": "live"})], self.context)

    def check_examples(self, rule: RuleT) -> list[str]:
        """Problems with the rule's inline ``examples`` (empty when they all hold). Timelines are checked
        here; a detector whose examples are of another kind overrides this."""
        examples = getattr(rule, "examples", None)
        if isinstance(examples, TimelineExamples):
            return check_timelines(self.solo(rule), rule.id, examples)
        return []

    # -- findings -----------------------------------------------------------------------------------

    def finding(
        self,
        rule: RuleT,
        event: BaseEvent,
        *,
        ident: Sequence[object],
        score: float,
        summary: str,
        evidence: list[Evidence],
        details: dict[str, object],
        since: int | None = None,
        event_ids: list[str] | None = None,
        subject: Subject | None = None,
        status: FindingStatus | None = None,
    ) -> Finding:
        """A finding of ``rule`` decided at ``event``. ``ident`` makes its id unique and repeatable (derived,
        never random); a rule in shadow always gives a shadow finding."""
        return Finding(
            # an account-keyed detector's finding is the account's, whichever room's comment completed it
            finding_id=derived_id(
                self.name, rule.id, rule.version, event.room_id if self.keyed_by == "room" else "", *ident
            ),
            detector=self.name,
            rule_id=rule.id,
            rule_version=rule.version,
            ruleset_version=self.context.ruleset_version,
            status="shadow" if rule.status == "shadow" else (status or "live"),
            severity=rule.severity,
            legal_basis=rule.legal_basis,
            room_id=event.room_id,
            platform=event.platform,
            ts=event.ts,
            subject=subject or Subject(kind="room", id=event.room_id),
            window=Window(start_ts=event.ts if since is None else since, end_ts=event.ts),
            event_ids=[event.event_id] if event_ids is None else event_ids,
            evidence=evidence,
            score=score,
            summary=summary,
            details=details,
        )


def falls_due(event: BaseEvent, next_due: int | None) -> bool:
    """Whether a report owed at ``next_due`` (event time) is due at ``event``: detectors that report what did
    not happen (a label or a price still missing) do so at the next event of the room, a viewer's comment too."""
    return next_due is not None and event.ts > next_due


class _OwesReports(Protocol):
    next_due: int | None


class ReportsWhenDue:
    """Mixed into a detector that reports what did not happen when it falls due (``falls_due``): to it a viewer's
    comment is only the room's clock, and changes its state only when a report falls due at it. Its state has
    ``next_due``, and the engine reads it to skip the call at every other comment (``viewer_comments_as_clock``)."""

    viewer_comments_as_clock: ClassVar[bool] = True

    def may_change(self, event: BaseEvent, state: _OwesReports) -> bool:
        return not is_viewer_comment(event) or falls_due(event, state.next_due)


def text_evidence(
    event: BaseEvent,
    text: NormalizedText,
    start: int,
    end: int,
    *,
    term: str | None,
    how: EvidenceHow,
    field: str = "text",
) -> Evidence:
    """Evidence of ``text.text[start:end]`` (normalised coordinates): the raw span a reviewer saw, and what the
    matcher read."""
    raw_start, raw_end = text.raw_span(start, end)
    return Evidence(
        event_id=event.event_id,
        field=field,
        start=raw_start,
        end=raw_end,
        raw=text.raw[raw_start:raw_end],
        normalized=text.text[start:end],
        term=term,
        how=how,
    )


AnyDetector = Detector[Any, Any, Any]

REGISTRY: dict[str, type[AnyDetector]] = {}

D = TypeVar("D", bound=type[AnyDetector])


def register(cls: D) -> D:
    """Make a detector available to rule files under its ``name`` (subclassing ``Detector`` does it)."""
    name = cls.name
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"two detectors are registered as {name!r}")
    REGISTRY[name] = cls
    return cls
