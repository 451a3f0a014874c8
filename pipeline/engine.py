"""The engine: decode → validate → normalise once → detectors → policy. Shared by every runtime.

The engine knows nothing of Kafka or files: runtimes hand it raw bytes with their source position and
write out what it returns. Room state lives behind ``StateStore`` so the embedded runtime can keep it in
a dict and the Faust runtime in a changelog-backed table.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pydantic_core
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from detectors.base import AnyDetector, falls_due
from detectors.normalize import normalize
from pipeline.errors import PoisonMessage
from pipeline.metrics import Metrics
from pipeline.policy import PolicyState
from pipeline.privacy import Pseudonymizer
from pipeline.ruleset import Ruleset
from schemas.accounts import AccountRecord
from schemas.deadletter import DeadLetter, MessageSource
from schemas.events import (
    BaseEvent,
    ChatEvent,
    DanmakuEvent,
    OverturnEvent,
    event_adapter,
    is_viewer_comment,
    text_of,
    user_of,
)
from schemas.findings import EnforcementAction, Finding

log = logging.getLogger(__name__)

#: Largest message accepted, checked before parsing so a huge payload costs nothing to reject.
MAX_EVENT_BYTES = 64 * 1024
#: Event times further ahead of the wall clock than this are a producer's clock bug.
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000


@dataclass
class RoomState:
    """Everything livewatch remembers about one room: each detector's state and the ladders."""

    detectors: dict[str, BaseModel] = field(default_factory=dict)
    policy: PolicyState = field(default_factory=PolicyState)
    #: finding id → event time until which a repeat of it is dropped: the reports of detectors whose state is
    #: rebuilt (``Detector.report_memory_ms``). Durable: a rebuild forgets what was reported before its history.
    reported: dict[str, int] = field(default_factory=dict)

    def for_detector(self, detector: AnyDetector) -> Any:
        state = self.detectors.get(detector.name)
        if state is None:
            state = self.detectors[detector.name] = detector.state_model()
        return state

    def to_json(self, only: frozenset[str] | None = None) -> bytes:
        """The state as JSON bytes; ``only`` limits detector states to those names (the durable ones).

        Serialised by pydantic-core in one pass (5x ``model_dump`` + ``json.dumps``: the worker does this
        for every room a batch touched)."""
        detectors = {name: s for name, s in self.detectors.items() if only is None or name in only}
        data: dict[str, Any] = {"detectors": detectors, "policy": self.policy}
        if self.reported:
            data["reported"] = self.reported
        return pydantic_core.to_json(data)

    @classmethod
    def from_json(cls, data: dict[str, Any], ruleset: Ruleset) -> RoomState:
        models = {d.name: d.state_model for d in ruleset.detectors}
        return cls(
            detectors={n: models[n].model_validate(s) for n, s in data.get("detectors", {}).items() if n in models},
            policy=PolicyState.model_validate(data.get("policy", {})),
            reported={str(k): int(v) for k, v in data.get("reported", {}).items()},
        )

    def first_reports(self, findings: list[Finding], now_ms: int, memory_ms: int) -> list[Finding]:
        """``findings`` without those reported within the last ``memory_ms`` (by id), remembering the rest."""
        if any(until < now_ms for until in self.reported.values()):
            self.reported = {i: until for i, until in self.reported.items() if until >= now_ms}
        first = [f for f in findings if f.finding_id not in self.reported]
        for f in first:
            self.reported[f.finding_id] = now_ms + memory_ms
        return first


class StateStore(Protocol):
    #: whether the store writes rooms' durable state somewhere (a changelog) and so wants ``put``'s ``changed``
    #: after every event; a store that does not is ``put`` a room once, when it is new, and must keep that object
    persists: bool

    def get(self, room_id: str) -> RoomState | None: ...
    def put(self, room_id: str, state: RoomState, changed: bool = True) -> None:
        """Keep ``state`` as the room's; ``changed`` False says its durable part is as it was (no write needed)."""
        ...

    def adopt(self, rebuilt: dict[str, RoomState]) -> None:
        """Take over rebuilt non-durable detector states (``Engine.warm``), replacing those held."""
        ...

    def __len__(self) -> int: ...


class MemoryStateStore(dict):  # type: ignore[type-arg]
    """The embedded runtime's store: a dict of rooms."""

    persists = False

    def put(self, room_id: str, state: RoomState, changed: bool = True) -> None:
        self[room_id] = state

    def adopt(self, rebuilt: dict[str, RoomState]) -> None:
        for room_id, part in rebuilt.items():
            room = self.get(room_id)
            if room is None:
                self[room_id] = RoomState(detectors=dict(part.detectors))
            else:
                room.detectors.update(part.detectors)


@dataclass(slots=True, init=False)
class Outcome:
    """What one input message led to."""

    event: BaseEvent | None
    findings: list[Finding]
    actions: list[EnforcementAction]
    dead_letters: list[DeadLetter]
    #: work for the account stage, when the runtime runs it elsewhere (``forward_accounts``): the Kafka worker
    #: sends it to live.accounts keyed by account
    to_accounts: list[AccountRecord]

    def __init__(
        self,
        event: BaseEvent | None = None,
        findings: list[Finding] | None = None,
        actions: list[EnforcementAction] | None = None,
        dead_letters: list[DeadLetter] | None = None,
        to_accounts: list[AccountRecord] | None = None,
    ) -> None:
        # written out: the generated one calls each list's default factory through a global, on every event
        self.event = event
        self.findings = [] if findings is None else findings
        self.actions = [] if actions is None else actions
        self.dead_letters = [] if dead_letters is None else dead_letters
        self.to_accounts = [] if to_accounts is None else to_accounts

    @property
    def has_outputs(self) -> bool:
        """Whether anything is to be sent for it (most events lead to nothing)."""
        return bool(self.findings or self.actions or self.dead_letters or self.to_accounts)


#: the event union's validator itself: ``TypeAdapter.validate_json`` is a Python wrapper (a frame and its keywords on
#: every message)
_validate_json = event_adapter.validator.validate_json


def decode_event(raw: bytes, now_ms: int) -> BaseEvent:
    """Parse and validate one wire message, or raise ``PoisonMessage`` saying exactly why not."""
    if len(raw) > MAX_EVENT_BYTES:
        raise PoisonMessage("too_large", f"{len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        # pydantic-core parses and validates the bytes in one pass, half the cost of json.loads and then
        # validation; a message it refuses is read again the slow way below, which says why in words
        # that do not depend on the parser (and accepts what json.loads accepts of UTF-8, if it can be
        # written back as JSON)
        event: BaseEvent = _validate_json(raw)
    except (ValidationError, RecursionError):
        event = _decode_slowly(raw)
    if event.ts > now_ms + MAX_FUTURE_SKEW_MS:
        raise PoisonMessage(
            "future_timestamp",
            f"ts {event.ts} is {(event.ts - now_ms) / 1000:.0f} s ahead of the clock "
            f"(allowed: {MAX_FUTURE_SKEW_MS // 1000} s); check the producer's clock",
        )
    return event


def _decode_slowly(raw: bytes) -> BaseEvent:
    try:
        # UTF-8 strictly (a BOM is allowed): json.loads of bytes would also take UTF-16/32 and, through
        # "surrogatepass", encoded surrogates ("\xed\xa0\x80"), none of which is UTF-8
        data = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, a 5,000-digit number, [[[[… nesting
        raise PoisonMessage("invalid_json", f"{type(e).__name__}: {e}"[:500]) from None
    if not isinstance(data, dict):
        raise PoisonMessage("invalid_json", f"expected a JSON object, got {type(data).__name__}")
    try:
        event = event_adapter.validate_python(data)
    except RecursionError:
        raise PoisonMessage("schema_violation", "nested too deeply") from None
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or '(root)'}: {err['msg']}" for err in e.errors()[:5]
        )
        raise PoisonMessage("schema_violation", problems) from None
    try:
        # Unknown fields are kept unvalidated, and json.loads takes what the fast parser refused: nesting
        # deeper than pydantic-core writes (255 levels), lone surrogates ("\ud800"). Such an event cannot be
        # written back — Engine.process writes it into a detector_error dead letter — so it is refused here.
        event.model_dump_json()
    except PydanticSerializationError as e:
        raise PoisonMessage("schema_violation", f"an unknown field cannot be written back as JSON: {e}"[:500]) from None
    return event


def _wall_ms() -> int:
    return int(time.time() * 1000)


class Engine:
    def __init__(
        self,
        ruleset: Callable[[], Ruleset] | Ruleset,
        store: StateStore | None = None,
        metrics: Metrics | None = None,
        clock_ms: Callable[[], int] = _wall_ms,
        pseudonymizer: Pseudonymizer | None = None,
        accounts: StateStore | None = None,
        accounts_per_room: bool = False,
        forward_accounts: bool = False,
    ) -> None:
        # A callable lets a watcher swap rulesets under a running engine; each event sees one ruleset.
        self._ruleset = ruleset if callable(ruleset) else (lambda: ruleset)
        self.store: StateStore = store if store is not None else MemoryStateStore()
        self._ask_changes = self.store.persists  # else no detector is asked ``may_change`` (a call per detector)
        self.metrics = metrics or Metrics()
        self.clock_ms = clock_ms
        # Findings leave the engine as alerts with account ids pseudonymised (after the policy, which
        # keys account ladders by the real id); None keeps the real ids (evaluation scripts, tests).
        self.pseudonymizer = pseudonymizer
        # Accounts: the state of account-keyed detectors (account_rings) and each account's ladder, keyed by user
        # id across rooms — one account, one ladder, one action per step however many rooms its findings come
        # from (docs/floods.md, "One account, one action"). The account stage runs in-process after each event,
        # or, with ``forward_accounts`` (the Kafka worker), its work is left in ``Outcome.to_accounts`` for the
        # runtime to deliver to ``process_account`` where the account's state lives. ``accounts_per_room``: the
        # ladders of accounts in each room's state, and no account-keyed detector (the behaviour before issue
        # #14, kept to measure it).
        self.accounts: StateStore | None = None
        if not accounts_per_room:
            self.accounts = accounts if accounts is not None else MemoryStateStore()
        self.forward_accounts = forward_accounts and not accounts_per_room

    @property
    def ruleset(self) -> Ruleset:
        return self._ruleset()

    def decode(self, raw: bytes, source: MessageSource) -> BaseEvent | DeadLetter:
        """The validated event, or the dead letter saying why there is none."""
        try:
            return decode_event(raw, self.clock_ms())
        except PoisonMessage as p:
            return self._poisoned(raw, p, source)

    def process_raw(self, raw: bytes, source: MessageSource) -> Outcome:
        """Decode and process one message; a bad one becomes a dead letter, never an exception."""
        try:  # ``decode`` and ``process_decoded`` written out: two frames less on every message of a replay
            event = decode_event(raw, self.clock_ms())
        except PoisonMessage as p:
            return Outcome(dead_letters=[self._poisoned(raw, p, source)])
        outcome = self.process(event, source=source.topic or "file")
        if outcome.dead_letters:
            self._carry_raw(outcome, raw, source)
        return outcome

    def process_decoded(self, event: BaseEvent, raw: bytes, source: MessageSource) -> Outcome:
        """Process a decoded event; a detector's dead letter carries the original bytes and position."""
        outcome = self.process(event, source=source.topic or "file")
        if outcome.dead_letters:
            self._carry_raw(outcome, raw, source)
        return outcome

    def _poisoned(self, raw: bytes, poison: PoisonMessage, source: MessageSource) -> DeadLetter:
        self.metrics.dead_letters.labels(reason=poison.reason).inc()
        return DeadLetter.of(raw, poison.reason, poison.detail, source)

    @staticmethod
    def _carry_raw(outcome: Outcome, raw: bytes, source: MessageSource) -> None:
        outcome.dead_letters = [
            DeadLetter.of(raw, d.reason, d.detail, source, d.event_id) for d in outcome.dead_letters
        ]

    def warm(self, events: Iterable[BaseEvent], rooms: dict[str, RoomState] | None = None) -> dict[str, RoomState]:
        """Rebuild non-durable detector state from input that was decided before (DESIGN.md principle 7).

        Feeds each event, in the order given, to the detectors of the ruleset whose state is *not*
        durable (sliding windows) and that read its kind — nothing else: their findings are discarded, no
        policy runs, no output and no finding metric is produced. ``rooms`` (room id → state holding only
        those detectors' states) is updated in place and returned; hand it to ``StateStore.adopt``.

        The caller decides which events: every decided event of the rebuilt kinds whose event time is at
        most ``Ruleset.rebuild_history_ms`` before the next event to decide, in the order they were
        decided. Then the rebuilt state equals the state a replay holds at that point, as far as the
        detectors depend on that much input only."""
        rooms = {} if rooms is None else rooms
        self._warm(events, rooms)
        return rooms

    def rebuild(self, events: Iterable[BaseEvent]) -> int:
        """``warm`` the events into fresh state and hand it to the store; returns the number of events fed."""
        rooms: dict[str, RoomState] = {}
        n = self._warm(events, rooms)
        self.store.adopt(rooms)
        return n

    def warm_in_store(self, events: Iterable[BaseEvent]) -> int:
        """``warm`` decided events straight into the rooms the store holds (a rebuild's events that come
        after the next event to decide, fed at their place in the merge)."""
        n = 0
        for event in events:
            room = self.store.get(event.room_id) or RoomState()
            n += self._warm([event], {event.room_id: room})
            self.store.put(event.room_id, room, changed=False)  # only the rebuilt (not durable) detectors ran
        return n

    def _warm(self, events: Iterable[BaseEvent], rooms: dict[str, RoomState]) -> int:
        rebuilt = self.ruleset.rebuilt_detectors
        n = 0
        for event in events:
            detectors = [d for d in rebuilt if event.kind in d.kinds]
            if not detectors:
                continue
            room = rooms.get(event.room_id)
            if room is None:
                room = rooms[event.room_id] = RoomState()
            raw_text = text_of(event)
            text = normalize(raw_text) if raw_text else None
            for detector in detectors:
                try:
                    detector.detect(event, text, room.for_detector(detector))
                except Exception:  # counted when the event was decided; here it must not stop the rebuild
                    log.debug(
                        "detector %s failed on event %s while rebuilding", detector.name, event.event_id, exc_info=True
                    )
            n += 1
        self.metrics.rebuilt_events.inc(n)
        return n

    def process(self, event: BaseEvent, source: str = "direct") -> Outcome:
        ruleset = self._ruleset()
        self.metrics.events.add(source, event.kind)
        outcome = Outcome(event=event)
        route = ruleset.route(event.kind, is_viewer_comment(event))
        room = self.store.get(event.room_id)
        # a store that persists is told of every event's room (``put``); the embedded one, a dict, of a new room only
        tell_store = room is None or self.store.persists
        if room is None:
            room = RoomState()
            self.metrics.rooms_active.set(len(self.store) + 1)
        detectors = route.always
        if route.clocked:  # a viewer's comment: the clock of these, called only when a report falls due at it
            states = room.detectors
            for detector in route.clocked:
                clock: Any = states.get(detector.name)  # a ``ReportsWhenDue`` state: it has ``next_due``
                if clock is not None and falls_due(event, clock.next_due):
                    detectors = route.every
                    break

        user_id = user_of(event)
        by_account = route.accounts if self.accounts is not None and user_id else ()
        raw_text = text_of(event)
        text = normalize(raw_text) if (detectors or by_account) and raw_text else None
        changed = False  # whether the room's durable state may have changed (``Detector.may_change``)
        try:
            for detector in detectors:
                state = room.detectors.get(detector.name)
                if state is None:
                    state = room.for_detector(detector)
                try:
                    if not changed and detector.durable_state and self._ask_changes:
                        changed = detector.may_change(event, state)
                    found = detector.detect(event, text, state)
                except Exception as e:  # a detector bug must not stop the room, nor lose the event
                    changed = True  # its state may be half changed
                    outcome.dead_letters.append(self._detector_failed(detector.name, event, e))
                    continue
                if found:
                    changed = True  # the ladder (below), the reports remembered
                    if detector.report_memory_ms:
                        found = room.first_reports(found, event.ts, detector.report_memory_ms)
                outcome.findings.extend(found)

            # work for the account stage: findings about accounts (their ladders are per account, not per room) and
            # the comments the account-keyed detectors want
            records: list[AccountRecord] = []
            for i, finding in enumerate(outcome.findings):
                self.metrics.findings.labels(
                    detector=finding.detector, rule_id=finding.rule_id, status=finding.status
                ).inc()
                per_account = finding.subject.kind == "account" and self.accounts is not None
                if finding.status == "shadow":
                    # an account's shadow finding: what it would do on a fresh ladder (the account's own is the
                    # account stage's, possibly on another worker)
                    ladder_state = PolicyState() if per_account else room.policy
                    outcome.findings[i] = finding.model_copy(
                        update={"shadow_action": ruleset.policy.would_do(finding, ladder_state)}
                    )
                    continue
                if per_account:
                    records.append(AccountRecord(account=finding.subject.id, finding=finding))
                    continue
                action = ruleset.policy.decide(finding, room.policy)
                if action is not None:
                    outcome.actions.append(action)
                    self.metrics.actions.labels(action=action.action).inc()
            if user_id and text is not None:
                for detector in by_account:  # (a loop, not ``any`` over a generator: a comment's hot path)
                    if detector.wants(event, text):
                        assert isinstance(event, (ChatEvent, DanmakuEvent))
                        records.append(AccountRecord(account=user_id, event=event))
                        break
            overturn = event.kind == "overturn"  # not isinstance: a model class's costs ≈ 0.2 µs on every other event
            if overturn:  # an appeal overturned an action: to the ladder that holds it
                assert isinstance(event, OverturnEvent)
                if event.subject.kind == "account" and self.accounts is not None:
                    records.append(AccountRecord(account=event.subject.id, overturn=event))
                else:
                    ruleset.policy.overturn(event, room.policy)
        except BaseException:
            self.store.put(event.room_id, room)  # what a failure left half done reaches the changelog too
            raise
        if tell_store:
            self.store.put(event.room_id, room, changed or overturn)  # an overturn: the ladder
        if self.pseudonymizer is not None and outcome.findings:
            outcome.findings = [self.pseudonymizer.finding(f) for f in outcome.findings]
        if self.forward_accounts:
            outcome.to_accounts = records
        else:
            for record in records:
                decided = self.process_account(record)
                outcome.findings += decided.findings
                outcome.actions += decided.actions
                outcome.dead_letters += decided.dead_letters
        return outcome

    def process_account(self, record: AccountRecord) -> Outcome:
        """The account stage: a comment for the account-keyed detectors, a finding for the account's ladder or an
        overturn of an action against the account, decided on the account's own state (``accounts``). One ladder
        per account, whatever room a finding comes from: a mute is one action, issued once (docs/floods.md, "One
        account, one action")."""
        if self.accounts is None:
            raise ValueError("this engine keeps account ladders per room (accounts_per_room): no account stage")
        ruleset = self.ruleset
        account = self.accounts.get(record.account) or RoomState()
        outcome = Outcome()
        try:
            decide = [record.finding] if record.finding is not None else []
            event = record.event
            if event is not None:
                text = normalize(event.text)
                for detector in ruleset.account_detectors_for(event.kind):
                    try:
                        found = detector.detect(event, text, account.for_detector(detector))
                    except Exception as e:  # as for a room's detector: the account goes on, the event is kept
                        outcome.dead_letters.append(self._detector_failed(detector.name, event, e))
                        continue
                    for finding in found:
                        self.metrics.findings.labels(
                            detector=finding.detector, rule_id=finding.rule_id, status=finding.status
                        ).inc()
                        if finding.status == "shadow":
                            finding = finding.model_copy(
                                update={"shadow_action": ruleset.policy.would_do(finding, PolicyState())}
                            )
                        else:
                            decide.append(finding)
                        outcome.findings.append(finding)
            if record.overturn is not None:
                ruleset.policy.overturn(record.overturn, account.policy)
            for finding in decide:
                action = ruleset.policy.decide(finding, account.policy)
                if action is not None:
                    outcome.actions.append(action)
                    self.metrics.actions.labels(action=action.action).inc()
        finally:  # also what a failure left half done reaches the changelog
            self.accounts.put(record.account, account)
        if self.pseudonymizer is not None and outcome.findings:
            outcome.findings = [self.pseudonymizer.finding(f) for f in outcome.findings]
        return outcome

    def _detector_failed(self, name: str, event: BaseEvent, error: Exception) -> DeadLetter:
        log.exception("detector %s failed on event %s", name, event.event_id)
        self.metrics.detector_errors.labels(detector=name).inc()
        return DeadLetter.of(
            event.model_dump_json().encode(),
            "detector_error",
            f"{name}: {error!r}",
            MessageSource(),
            event_id=event.event_id,
        )
