"""Reviewers' decisions: on a finding (confirm, dismiss, escalate) and on an appeal (uphold, overturn).

Each decision is stored, audited and published: on the Kafka runtime to ``live.reviews`` (key = finding id or
appeal reference) and, for an overturn, a compensating ``revoke`` action to ``live.actions`` and an
``OverturnEvent`` to the input topic ``live.appeals`` (key = room), from which the engine's ladder forgets the
overturned strikes; on the embedded runtime to JSONL files beside the store's input, as the embedded runtime writes
its own outputs (``overturns.jsonl`` in the input format, for ``livewatch replay --merge``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol

from pipeline.console.store import Store, now_ms
from schemas.events import OverturnEvent
from schemas.findings import EnforcementAction, derived_id
from schemas.reviews import AppealDecision, Review

#: the embedded runtime's overturn events (input format), beside the console's other outputs
OVERTURNS_FILE = "overturns.jsonl"


class DecisionError(Exception):
    """A decision that cannot be taken (unknown finding, appeal decided already); the message says why."""


class DecisionSink(Protocol):
    def review(self, review: Review) -> None: ...
    def appeal(
        self, decision: AppealDecision, revoke: EnforcementAction | None, overturn: OverturnEvent | None = None
    ) -> None: ...
    def close(self) -> None: ...


class JsonlSink:
    """The embedded runtime's outputs: reviews.jsonl and revokes.jsonl in the directory the console reads
    (materialise.load_directory reads them back), and overturns.jsonl: input events for a replay (``livewatch
    replay RECORDING --merge overturns.jsonl``), so that the ladders forget the overturned strikes there too."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _append(self, name: str, line: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / name, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def review(self, review: Review) -> None:
        self._append("reviews.jsonl", review.model_dump_json())

    def appeal(
        self, decision: AppealDecision, revoke: EnforcementAction | None, overturn: OverturnEvent | None = None
    ) -> None:
        self._append("reviews.jsonl", decision.model_dump_json())
        if revoke is not None:
            self._append("revokes.jsonl", revoke.model_dump_json())
        if overturn is not None:
            self._append(OVERTURNS_FILE, overturn.model_dump_json())

    def close(self) -> None:
        pass


class KafkaSink:
    """Publishes to live.reviews, live.actions and live.appeals with the project's producer (acks=all,
    idempotent); each send waits for the broker's acknowledgement before the reviewer is told the decision is
    taken."""

    def __init__(self, settings: Any) -> None:
        from pipeline.kafka.topics import ACTIONS, APPEALS, REVIEWS

        self.settings = settings
        self.reviews_topic = settings.topic(REVIEWS.name)
        self.actions_topic = settings.topic(ACTIONS.name)
        self.appeals_topic = settings.topic(APPEALS.name)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="console-kafka-sink", daemon=True)
        self._thread.start()
        self._producer: Any = self._run(self._start())

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def _start(self) -> Any:
        from pipeline.kafka.topics import ACTIONS, INPUTS, REVIEWS, ensure_topics, new_producer

        # every input topic, not live.appeals alone: input topics are created together, co-partitioned
        await ensure_topics(self.settings, (*INPUTS, REVIEWS, ACTIONS))
        producer = new_producer(self.settings)
        await producer.start()
        return producer

    def _send(self, topic: str, key: str, value: str) -> None:
        try:
            self._run(self._producer.send_and_wait(topic, key=key.encode(), value=value.encode()))
        except Exception as e:  # the broker down, a timeout, a refused write: the reviewer must know
            raise DecisionError(
                f"could not publish to {topic} ({type(e).__name__}: {e}); nothing was recorded, try again"
            ) from e

    def review(self, review: Review) -> None:
        self._send(self.reviews_topic, review.finding_id, review.model_dump_json())

    def appeal(
        self, decision: AppealDecision, revoke: EnforcementAction | None, overturn: OverturnEvent | None = None
    ) -> None:
        if revoke is not None:  # the platform's action first: the decision names it
            self._send(self.actions_topic, revoke.action_id, revoke.model_dump_json())
        if overturn is not None:  # an input like any other: keyed by room, so the room's worker reads it in order
            self._send(self.appeals_topic, overturn.room_id, overturn.model_dump_json())
        self._send(self.reviews_topic, decision.appeal_ref, decision.model_dump_json())

    def close(self) -> None:
        self._run(self._producer.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def revoke_action(original: EnforcementAction, ts: int, reviewer: str, note: str) -> EnforcementAction:
    """The compensating action of an overturned appeal: its id derived from the original's (a second overturn,
    a retried publish or another console gives the same id), its reasons the action it revokes."""
    return original.model_copy(
        update={
            "action_id": derived_id("revoke", original.action_id),  # as OverturnEvent.of names it
            "action": "revoke",
            "ts": ts,
            "duration_s": 0,
            "expires_ts": None,
            "reasons": [original.action_id],
            "message": f"撤销处罚（申诉成立 {original.appeal_ref}）: {note}".rstrip(": "),
        }
    )


def decide_finding(
    store: Store, sink: DecisionSink, finding_id: str, decision: str, reason: str | None, note: str, reviewer: str
) -> Review:
    found = store.finding(finding_id)
    if found is None:
        raise DecisionError(f"no finding {finding_id} in the store")
    finding, _ = found
    ts = now_ms()
    review = Review(
        review_id=Review.make_id(finding_id, decision, reviewer, ts),
        finding_id=finding_id,
        decision=decision,  # validated by the model
        reason=reason if decision == "dismiss" else None,
        note=note,
        reviewer=reviewer,
        ts=ts,
        room_id=finding.room_id,
        rule_id=finding.rule_id,
    )
    sink.review(review)  # published before stored: a failed publish leaves the finding open, to be tried again
    store.add_review(review)
    store.audit(reviewer, f"finding.{decision}", finding_id, {"reason": reason, "note": note})
    return review


def decide_appeal(
    store: Store, sink: DecisionSink, appeal_ref: str, decision: str, note: str, reviewer: str
) -> tuple[AppealDecision, EnforcementAction | None]:
    original = store.action_by_appeal(appeal_ref)
    if original is None:
        raise DecisionError(f"no action carries the appeal reference {appeal_ref}")
    if store.appeal_decision(appeal_ref) is not None:
        raise DecisionError(f"appeal {appeal_ref} is decided already")
    ts = now_ms()
    revoke = revoke_action(original, ts, reviewer, note) if decision == "overturn" else None
    result = AppealDecision(
        appeal_ref=appeal_ref,
        action_id=original.action_id,
        decision=decision,  # validated by the model
        note=note,
        reviewer=reviewer,
        ts=ts,
        room_id=original.room_id,
        revoke_action_id=revoke.action_id if revoke else None,
    )
    sink.appeal(result, revoke, OverturnEvent.of(original, ts, reviewer) if revoke is not None else None)
    store.add_appeal_decision(result)
    if revoke is not None:
        store.add_actions([revoke])
    store.audit(reviewer, f"appeal.{decision}", appeal_ref, {"action_id": original.action_id, "note": note})
    return result, revoke
