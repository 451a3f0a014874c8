"""Materialise livewatch's outputs into the console's store: a replay's or the demo's output directory
(embedded runtime), or the topics themselves (Kafka runtime).

Everything is inserted by its own id, so reading the same directory or topic again adds nothing. A line or
message that is not a valid record is counted and named (file:line or topic/partition/offset), never fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.console.store import LoadCounts, Store
from pipeline.embedded import ACTIONS_FILE, ALERTS_FILE
from pipeline.privacy import Pseudonymizer
from schemas.events import event_adapter, text_of
from schemas.findings import EnforcementAction, Finding
from schemas.reviews import AppealDecision, Review

log = logging.getLogger(__name__)

#: the recording `livewatch demo` writes beside its outputs (pipeline/cli.py)
DEMO_RECORDING = "demo_recording.jsonl"
BATCH = 2000
RETRY_S = 5.0
REVIEWS_FILE, REVOKES_FILE = "reviews.jsonl", "revokes.jsonl"


class Materialiser:
    """Turns raw records (bytes, as on a topic or a line of a file) into store rows."""

    def __init__(self, store: Store, pseudonymizer: Pseudonymizer) -> None:
        self.store = store
        self.pseudonymizer = pseudonymizer

    def event_row(self, raw: bytes) -> dict[str, Any]:
        event = event_adapter.validate_json(raw)
        user_id = getattr(event, "user_id", None)
        return {
            "event_id": event.event_id,
            "room_id": event.room_id,
            "ts": event.ts,
            "kind": event.kind,
            # the room context shows the pseudonym the alerts use, so an account can be followed, not its id
            "user": self.pseudonymizer.user(user_id) if user_id else None,
            "text": text_of(event),
            "body": raw.decode("utf-8"),
        }

    def add(self, kind: str, records: Iterable[tuple[str, bytes]], counts: LoadCounts) -> None:
        """Store records of one kind ("alerts", "actions", "events", "reviews"); each with where it came from."""
        parsed: list[Any] = []
        for where, raw in records:
            try:
                parsed.append(self._parse(kind, raw))
            except (ValidationError, ValueError, UnicodeDecodeError) as e:
                counts.rejected.append(f"{where}: not a valid {kind} record: {str(e).splitlines()[0]}")
            if len(parsed) >= BATCH:
                self._store(kind, parsed, counts)
                parsed = []
        self._store(kind, parsed, counts)

    def _parse(self, kind: str, raw: bytes) -> Any:
        if kind == "alerts":
            return Finding.model_validate_json(raw)
        if kind == "actions":
            return EnforcementAction.model_validate_json(raw)
        if kind == "events":
            return self.event_row(raw)
        if kind == "reviews":
            record = json.loads(raw)
            model = AppealDecision if record.get("kind") == "appeal" else Review
            return model.model_validate(record)
        raise ValueError(f"unknown record kind {kind!r}")

    def _store(self, kind: str, items: list[Any], counts: LoadCounts) -> None:
        if not items:
            return
        if kind == "alerts":
            counts.findings += self.store.add_findings(items)
        elif kind == "actions":
            counts.actions += self.store.add_actions(items)
        elif kind == "events":
            counts.events += self.store.add_events(items)
        else:
            for item in items:
                if isinstance(item, Review):
                    counts.reviews += self.store.add_review(item)
                else:
                    counts.appeals += self.store.add_appeal_decision(item)


def _lines(path: Path) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if line:
                yield f"{path}:{number}", line


def load_directory(materialiser: Materialiser, directory: Path, recording: Path | None = None) -> LoadCounts:
    """A demo's or replay's output directory (alerts.jsonl, actions.jsonl) and the recording it was made
    from, for the rooms' context: ``recording``, else the demo's own recording if the directory has one."""
    if not (directory / ALERTS_FILE).is_file():
        raise FileNotFoundError(
            f"{directory} has no {ALERTS_FILE}: give the output directory of `livewatch demo` or `livewatch replay`"
        )
    counts = LoadCounts()
    materialiser.add("alerts", _lines(directory / ALERTS_FILE), counts)
    if (directory / ACTIONS_FILE).is_file():
        materialiser.add("actions", _lines(directory / ACTIONS_FILE), counts)
    # what a console decided on this directory before (decisions.JsonlSink), so a new store starts from it
    if (directory / REVOKES_FILE).is_file():
        materialiser.add("actions", _lines(directory / REVOKES_FILE), counts)
    if (directory / REVIEWS_FILE).is_file():
        materialiser.add("reviews", _lines(directory / REVIEWS_FILE), counts)
    recording = recording or (directory / DEMO_RECORDING if (directory / DEMO_RECORDING).is_file() else None)
    if recording is not None:
        materialiser.add("events", _lines(recording), counts)
    return counts


class KafkaFollower:
    """Follows live.alerts, live.actions, live.reviews and the input topics (the rooms' context) into the
    store, in a thread of its own, until stopped. Its own consumer group, read_committed: it sees what the
    workers committed, once; restarted, it goes on from its committed offsets."""

    def __init__(self, materialiser: Materialiser, settings: Any, group_suffix: str = "console") -> None:
        from pipeline.kafka.topics import ACTIONS, ALERTS, INPUT_NAMES, REVIEWS

        self.materialiser = materialiser
        self.settings = settings
        self.group = f"{settings.app_id}-{group_suffix}"
        self.kinds = {settings.topic(ALERTS.name): "alerts", settings.topic(ACTIONS.name): "actions"}
        self.kinds[settings.topic(REVIEWS.name)] = "reviews"
        for name in INPUT_NAMES:
            self.kinds[settings.topic(name)] = "events"
        self.counts = LoadCounts()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-kafka-follower", daemon=True)
        self.ready = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                asyncio.run(self._follow())
            except Exception:  # the broker away, a rebalance gone wrong: the pages stay up, and it tries again
                log.exception("console: following the topics failed; retrying in %.0f s", RETRY_S)
                self._stop.wait(RETRY_S)

    async def _follow(self) -> None:
        from aiokafka import AIOKafkaConsumer

        from pipeline.kafka.security import client_kwargs
        from pipeline.kafka.topics import ACTIONS, ALERTS, INPUTS, REVIEWS, ensure_topics

        await ensure_topics(self.settings, (*INPUTS, ALERTS, ACTIONS, REVIEWS))
        consumer = AIOKafkaConsumer(
            *self.kinds,
            **client_kwargs(self.settings),
            group_id=self.group,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            self.ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
                for tp, messages in batches.items():
                    kind = self.kinds[tp.topic]
                    records = ((f"{tp.topic}/{tp.partition}/{m.offset}", m.value or b"") for m in messages)
                    # stored before committed: a crash in between reads them again, and they are ignored
                    await asyncio.to_thread(self.materialiser.add, kind, records, self.counts)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()
