"""The Kafka runtime: a faust-streaming worker running the same engine as the embedded runtime.

One agent reads all six input topics (co-partitioned, key = room_id) with ``concurrency=1`` and manual
acknowledgements:

1. each message is decoded at once; a poison message goes to ``live.dlq`` (send awaited) and is done;
2. valid events wait in an event-time merge per partition number (``pipeline/merge.py``) so a room's
   events from different topics are decided in event-time order, as in a replay;
3. released events go through the engine; alerts, actions and dead letters are sent and their broker
   acks awaited before the event counts as done;
4. acknowledgements go back to Faust strictly in offset order per topic-partition, because
   faust-streaming 0.15 can commit past an unacknowledged offset when acks arrive out of order
   (``Consumer._new_offset``; faust issue #606). An event is therefore committed only after its outputs
   are on the broker: at-least-once, and outputs carry derived ids so duplicates are harmless.

Room state is cached in memory and its durable part (ladder strikes, detector state) is written to a
Faust table backed by a changelog topic whenever it changes; after a rebalance the cache is dropped,
un-acknowledged events are read again by whoever owns their partition, and the ladder recognises
findings it has already counted, so no second action is issued.

Sliding-window detector state (``durable_state = False``: bot floods) is not in the changelog. On every
assignment each owned partition is held until that state is rebuilt: the decided input of the last
``history_ms`` before the partition's next event is re-read from the topics those detectors read
(``pipeline/rebuild.py``), put in the merge's order and fed to them alone (``Engine.warm``). A failed
rebuild is logged and counted, and the partition goes on with empty windows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from pipeline.privacy import DEV_KEY, Pseudonymizer
from pipeline.engine import Engine, Outcome, RoomState
from pipeline.errors import TransientError
from pipeline.merge import EventTimeMerger, order_key
from pipeline.metrics import Metrics
from pipeline.ruleset import Ruleset, RulesetWatcher
from pipeline.settings import Settings
from pipeline.rebuild import read_history
from pipeline.topics import ACTIONS, ALERTS, DLQ, INPUT_NAMES, TOPIC_FOR_KIND
from pipeline.kafka import ensure_topics, seq_of
from schemas.deadletter import DeadLetter, Source

log = logging.getLogger("livewatch.worker")

ROOMS_TABLE = "rooms"
SEND_ATTEMPTS = 5
GAP_PATIENCE_S = 30.0
#: an owned input with messages on the broker that Faust has delivered nothing of for this long is read
#: directly (seen after a rebalance: faust-streaming 0.15 stopped delivering partitions it had assigned)
STALL_S = 10.0
REBUILD_CHUNK = 500  # events fed per step of a rebuild, between which other partitions' events flow
REBUILD_RETRY_S = 1.0


class TableStateStore:
    """Room state: an in-memory cache in front of a changelog-backed Faust table.

    Writes go to the table only when the durable form changed, so most events cost no changelog write.
    """

    def __init__(self, table: Any, ruleset: Callable[[], Ruleset]) -> None:
        self.table = table
        self.ruleset = ruleset
        self._cache: dict[str, RoomState] = {}
        self._written: dict[str, str] = {}
        # rebuilt non-durable detector state, joined to a room's durable state when the room is first
        # loaded (not before: the table may still be recovering from the changelog during a rebuild)
        self._rebuilt: dict[str, RoomState] = {}
        self.dirty = False  # a changelog write is buffered and not yet flushed

    def __len__(self) -> int:
        return len(self._cache)

    def get(self, room_id: str) -> RoomState | None:
        state = self._cache.get(room_id)
        if state is None:
            stored = self.table.get(room_id.encode())
            if stored:
                data = json.loads(stored)
                state = RoomState.from_json(data, self.ruleset())
                self._written[room_id] = json.dumps(data, sort_keys=True)
            rebuilt = self._rebuilt.pop(room_id, None)
            if rebuilt is not None:
                state = state if state is not None else RoomState()
                state.detectors.update(rebuilt.detectors)
            if state is not None:
                self._cache[room_id] = state
        return state

    def adopt(self, rebuilt: dict[str, RoomState]) -> None:
        for room_id, part in rebuilt.items():
            cached = self._cache.get(room_id)
            if cached is not None:
                cached.detectors.update(part.detectors)
            else:
                self._rebuilt[room_id] = part

    def put(self, room_id: str, state: RoomState) -> None:
        self._cache[room_id] = state
        # Only long-lived state goes to the changelog: ladders and durable detector state. Sliding-window
        # state (bot floods) changes with every comment; it lives in memory and is rebuilt from the input
        # after a rebalance (WorkerRuntime._rebuild, DESIGN.md principle 7).
        data = state.to_json(only=self.ruleset().durable_detectors)
        blob = json.dumps(data, sort_keys=True)
        if self._written.get(room_id) != blob:
            self.table[room_id.encode()] = blob.encode()
            self._written[room_id] = blob
            self.dirty = True

    def clear(self) -> None:
        self._cache.clear()
        self._written.clear()
        self._rebuilt.clear()


@dataclass
class _Pending:
    offset: int
    event: Any  # the Faust event to acknowledge; None for a message re-read directly
    done: bool = False


@dataclass
class _Held:
    decoded: Any
    raw: bytes
    source: Source
    pending: _Pending
    key: tuple[int, int, str, int] | None = None  # its place in the merge (pipeline.merge.order_key)


@dataclass
class WorkerRuntime:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        s = self.settings
        self.app = faust.App(
            s.app_id,
            broker=s.broker,
            store="memory://",
            datadir=str(s.datadir),
            web_enabled=s.web_port is not None,
            web_bind="127.0.0.1",
            web_port=s.web_port or 6066,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            table_standby_replicas=0,
            # Events held in the event-time merge are un-acknowledged by design; waiting for them to be
            # acknowledged before a rebalance would wait forever. They are read again afterwards.
            stream_wait_empty=False,
        )
        self.input_names = frozenset(s.topic(name) for name in INPUT_NAMES)
        self.inputs = self.app.topic(*sorted(self.input_names), key_serializer="raw", value_serializer="raw",
                                     partitions=s.partitions)
        out = dict(key_serializer="raw", value_serializer="raw", partitions=s.partitions,
                   replicas=s.replication)
        self.alerts = self.app.topic(s.topic(ALERTS.name), config=ALERTS.kafka_config(), **out)
        self.actions = self.app.topic(s.topic(ACTIONS.name), config=ACTIONS.kafka_config(), compacting=True, **out)
        self.dlq = self.app.topic(s.topic(DLQ.name), config=DLQ.kafka_config(), **out)
        # use_partitioner: the changelog partition follows the key (room_id) like the inputs do, so the
        # table never depends on which event happens to be "current" when a merged event is decided.
        # key/value types bytes → raw serializers (a table's default is JSON: a JSON-quoted key would hash to
        # another partition than the room's input messages, and the state would recover on the wrong worker).
        self.rooms = self.app.Table(ROOMS_TABLE, default=None, partitions=s.partitions, use_partitioner=True,
                                    key_type=bytes, value_type=bytes)

        self.watcher = RulesetWatcher(s.rules_dir)
        self.metrics.set_ruleset(self.watcher.current.version)
        self.store = TableStateStore(self.rooms, lambda: self.watcher.current)
        if s.pseudonym_key.get_secret_value() == DEV_KEY:
            log.warning("LIVEWATCH_PSEUDONYM_KEY is not set: alerts pseudonymise user ids with the public "
                        "development key, which anyone can reverse; set a secret key in production")
        self.engine = Engine(lambda: self.watcher.current, store=self.store, metrics=self.metrics,
                             pseudonymizer=Pseudonymizer(s.pseudonym_key.get_secret_value()))

        self._stream: Any = None
        self._mergers: dict[int, EventTimeMerger[_Held]] = {}
        self._pending: dict[TP, deque[_Pending]] = {}
        self._last_offset: dict[TP, int] = {}
        self._owned: dict[int, set[TP]] = {}  # partition number → the input topic-partitions we own
        self._assigned = False  # False between a revocation and the next assignment
        self._limbo: list[Any] = []  # events Faust delivered meanwhile: ours or not is known at assignment
        self._next_ack: dict[TP, int] = {}  # next offset to acknowledge per topic-partition
        self._gap_since: dict[TP, float] = {}
        self._rereading: set[TP] = set()
        self._gaps: dict[TP, set[tuple[int, int]]] = {}  # offsets Faust skipped, being re-read
        self._progress_at: dict[TP, float] = {}  # when each owned input last delivered (or was assigned)
        self._ahead: dict[int, deque[tuple[tuple[int, int, str, int], Any]]] = {}  # see History.ahead
        self._bounds: dict[TP, tuple[int, int]] = {}  # input partition → (log start, end) at assignment
        # Partition numbers whose events may be decided. A newly owned partition opens once the state of
        # its non-durable detectors is rebuilt (or at once when no detector needs that); until then its
        # events wait in its merger, while other partitions flow.
        self._open: set[int] = set()
        self._unrebuilt: set[int] = set()  # opened after a failed rebuild: running on empty windows
        self._generation = 0  # bumped on every revocation and assignment; a stale rebuild is dropped
        self._rebuilds: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._last_reload = time.monotonic()

        self.app.agent(self.inputs, name="livewatch.decide", concurrency=1)(self._consume)
        self.app.timer(0.2)(self._tick)
        self.app.task(self._declare_outputs)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.on_partitions_assigned.connect(self._on_assigned)

    # -- Faust hooks ---------------------------------------------------------------------------

    async def _declare_outputs(self, app: faust.App | None = None) -> None:
        for topic in (self.alerts, self.actions, self.dlq):
            await topic.maybe_declare()
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_port, self.settings.metrics_host)
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, self.settings.metrics_port)

    async def _on_assigned(self, app: Any, assigned: set[TP], **kwargs: Any) -> None:
        inputs = {tp for tp in assigned if tp.topic in self.input_names}
        self._owned = {}
        for tp in inputs:
            self._owned.setdefault(tp.partition, set()).add(tp)
        self.metrics.partitions_assigned.set(len(self._owned))
        log.info("assigned input partitions %s", sorted({tp.partition for tp in inputs}))
        self._bounds = {}
        self._progress_at = dict.fromkeys(inputs, time.monotonic())
        self._generation += 1
        self._assigned = True
        self._start_rebuilds(self._generation)  # before any await: no event of a new partition goes first
        asyncio.ensure_future(self._query_bounds(inputs))
        limbo, self._limbo = self._limbo, []
        for event in limbo:  # in the order Faust delivered them, before anything fetched later
            await self._receive(event)

    async def _on_revoked(self, app: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Everything held or un-acknowledged is read again from the committed offsets after the
        # rebalance (by us or by the partition's new owner): drop it, with the room cache.
        self._generation += 1
        self._assigned = False
        for task in self._rebuilds:
            task.cancel()
        self._rebuilds.clear()
        async with self._lock:
            self._open.clear()
            self._unrebuilt.clear()
            self.metrics.partitions_rebuilding.set(0)
            self.metrics.partitions_unrebuilt.set(0)
            for merger in self._mergers.values():
                merger.clear()
            self._mergers.clear()
            self._pending.clear()
            self._last_offset.clear()
            self._next_ack.clear()
            self._gap_since.clear()
            self._gaps.clear()
            self._ahead.clear()
            self._owned = {}
            self.store.clear()
            self.metrics.partitions_assigned.set(0)
            self.metrics.consumer_lag.clear()
            self.metrics.merge_held.set(0)

    async def _consume(self, stream: Any) -> None:
        self._stream = stream.noack()
        async for event in self._stream.events():
            try:
                await self._receive(event)
            except Exception:  # nothing may escape an agent: Faust would skip the message for good
                log.exception("unexpected error on %s", event.message.tp)

    async def _tick(self, app: Any = None) -> None:
        now = time.monotonic()
        if now - self._last_reload >= self.settings.reload_every_s:
            self._last_reload = now
            self.watcher.reload(self.metrics, log.warning)
            self._update_lag()
        try:
            async with self._lock:
                await self._release()
        except Exception:
            log.exception("release failed")
        self._read_stalled_inputs(now)

    def _read_stalled_inputs(self, now: float) -> None:
        """Read directly what Faust has stopped delivering: an owned, open input partition whose messages
        are on the broker but that has delivered nothing for ``STALL_S``. Treated like skipped offsets:
        the partition waits for the re-read, and a late copy from Faust is not decided twice."""
        committed = getattr(self.app.consumer, "_committed_offset", {})
        for partition, tps in self._owned.items():
            if partition not in self._open:
                continue
            for tp in tps:
                if tp in self._rereading or now - self._progress_at.get(tp, now) < STALL_S:
                    continue
                try:
                    end = self.app.consumer.highwater(tp)
                except Exception:
                    continue
                last = self._last_offset.get(tp)
                start = last + 1 if last is not None else committed.get(tp)
                if start is None or not end or start >= end:
                    continue
                log.warning("%s has delivered nothing for %.0f s with offsets %d..%d on the broker: reading "
                            "them directly", tp, now - self._progress_at[tp], start, end - 1)
                self._progress_at[tp] = now
                self._gaps.setdefault(tp, set()).add((start, end))
                self._rereading.add(tp)
                asyncio.ensure_future(self._reread(tp, start, end, self._generation))

    # -- the pipeline --------------------------------------------------------------------------

    async def _receive(self, event: Any) -> None:
        msg = event.message
        if not self._assigned:  # between a revocation and the next assignment: wait and see
            self._limbo.append(event)
            return
        if msg.tp not in self._owned.get(msg.tp.partition, ()):
            # Fetched before a rebalance, delivered after it, and the partition is another worker's now:
            # deciding it here with state that is no longer ours (windows emptied, no rebuild) would
            # publish a second, different finding; the new owner reads it from the committed offset.
            self.metrics.unowned.inc()
            return
        async with self._lock:
            if await self._duplicate(msg.tp, msg.offset, event):
                return
            self._watch_for_gap(msg.tp, msg.offset)
            # Faust can hand over a message fetched just before a rebalance after it; of a partition we
            # kept it is processed like any other (dropping it would lose it: Faust has already moved its
            # read offset past it).
            pending = _Pending(msg.offset, event)
            self._pending.setdefault(msg.tp, deque()).append(pending)
            await self._accept(msg.tp, msg.offset, msg.key, event.value, msg.headers, pending)
            await self._release()

    def _watch_for_gap(self, tp: TP, offset: int) -> None:
        """A message beyond the next expected offset of its topic-partition means Faust skipped some
        (faust-streaming 0.15 drops part of a fetched batch around a rebalance): read them directly
        at once, and hold the partition's releases until they are in the merge. Otherwise the later
        events would be decided first, which sliding windows (bot floods) do not forgive."""
        last = self._last_offset.get(tp)
        expected = last + 1 if last is not None else getattr(self.app.consumer, "_committed_offset", {}).get(tp)
        if expected is None or offset <= expected:
            return
        self._gaps.setdefault(tp, set()).add((expected, offset))
        self._rereading.add(tp)
        asyncio.ensure_future(self._reread(tp, expected, offset, self._generation))

    async def _duplicate(self, tp: TP, offset: int, event: Any) -> bool:
        """Whether Faust hands over a message already taken (re-read directly, say): it must not be
        decided twice. Its event is acknowledged in order with the copy taken, or now if that one was
        acknowledged already."""
        last = self._last_offset.get(tp)
        if last is None or offset > last:
            return False
        queue = self._pending.get(tp, deque())
        taken = next((p for p in queue if p.offset == offset), None)
        if taken is None:
            if any(a <= offset < b for a, b in self._gaps.get(tp, ())):
                return False  # a skipped message after all, before its re-read got it: take it
            acknowledged_to = self._next_ack.get(tp)
            if acknowledged_to is not None and offset < acknowledged_to:
                await self._stream.ack(event)
                return True
            return False
        if taken.event is None:
            taken.event = event
        return True

    async def _accept(self, tp: TP, offset: int, key: bytes | None, value: Any, headers: Any,
                      pending: _Pending) -> None:
        """Decode one message: a dead letter is sent at once, a valid event joins the event-time merge."""
        source = Source(topic=tp.topic, partition=tp.partition, offset=offset)
        self._last_offset[tp] = max(offset, self._last_offset.get(tp, offset))
        self._progress_at[tp] = time.monotonic()
        raw = value if isinstance(value, bytes) else bytes(value or b"")
        try:
            decoded = self.engine.decode(raw, source)
            if not isinstance(decoded, DeadLetter) and key != decoded.room_id.encode():
                # Room state is partitioned by room_id: a message keyed otherwise would split a room's
                # ladder across workers.
                self.metrics.dead_letters.labels(reason="wrong_key").inc()
                decoded = DeadLetter.of(raw, "wrong_key", f"message key {key!r} is not the room_id "
                                        f"{decoded.room_id!r}; producers must key by room_id", source,
                                        decoded.event_id)
            if isinstance(decoded, DeadLetter):
                await self._send(Outcome(dead_letters=[decoded]), key=key)
                pending.done = True
                return
            merger = self._mergers.get(tp.partition)
            if merger is None:
                merger = self._mergers[tp.partition] = EventTimeMerger(
                    self._inputs_of(tp.partition), self.settings.max_lateness_ms, self.settings.max_wait_s)
            held = _Held(decoded, raw, source, pending, order_key(decoded.ts, seq_of(headers), tp.topic, offset))
            merger.push(tp, decoded.ts, held, time.monotonic(),
                        seq=seq_of(headers), topic=tp.topic, offset=offset)
        except Exception as e:
            await self._dead_letter_unexpected(e, raw, source, key)
            pending.done = True

    async def _reread(self, tp: TP, start: int, end: int, generation: int | None = None) -> None:
        """Read offsets [start, end) of ``tp`` directly and decide them: messages Faust skipped.

        faust-streaming 0.15 sometimes never delivers the message at the committed offset after a
        rebalance (seen in the two-worker test); acknowledging past it would lose it for good."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers(), group_id=None,
                                    enable_auto_commit=False)
        records: list[Any] = []
        try:
            await consumer.start()
            part = TopicPartition(tp.topic, tp.partition)
            consumer.assign([part])
            consumer.seek(part, start)
            deadline = time.monotonic() + 15
            while (not records or records[-1].offset < end - 1) and time.monotonic() < deadline:
                batch = await consumer.getmany(part, timeout_ms=500, max_records=end - start)
                records.extend(r for r in batch.get(part, []) if start <= r.offset < end)
        except Exception:
            log.exception("re-reading %s %d..%d failed", tp, start, end - 1)
        finally:
            await consumer.stop()
        async with self._lock:
            self._rereading.discard(tp)
            if generation is not None and generation != self._generation:
                return  # revoked meanwhile
            gaps = self._gaps.get(tp, set())
            gaps.discard((start, end))  # whatever was found, the partition need not wait any longer
            queue = self._pending.get(tp)
            if not records or queue is None or tp not in self._owned.get(tp.partition, ()):
                await self._release()
                return
            have = {p.offset for p in queue}
            missing = [r for r in records if r.offset not in have]
            log.warning("re-read %d message(s) of %s that Faust did not deliver (offsets %d..%d)",
                        len(missing), tp, start, end - 1)
            self.metrics.reread.inc(len(missing))
            entries = [_Pending(r.offset, None) for r in missing]
            merged = sorted([*queue, *entries], key=lambda p: p.offset)
            queue.clear()
            queue.extend(merged)
            for r, entry in zip(missing, entries):
                await self._accept(tp, r.offset, r.key, r.value, r.headers, entry)
            await self._release()

    async def _release(self) -> None:
        now = time.monotonic()
        for partition, merger in list(self._mergers.items()):
            if partition not in self._open or any(self._gaps.get(tp) for tp in self._owned.get(partition, ())):
                continue  # its detector state is being rebuilt, or Faust skipped messages being re-read
            ahead = self._ahead.get(partition)
            for held in merger.pop_ready(self._caught_up, now, self._catching_up):
                key = held.decoded.room_id.encode()
                try:
                    if ahead and held.key is not None:  # decided earlier than this one by the last owner
                        passed = []
                        while ahead and ahead[0][0] < held.key:
                            passed.append(ahead.popleft()[1])
                        self.engine.warm_in_store(passed)
                    outcome = self.engine.process_decoded(held.decoded, held.raw, held.source)
                    self.metrics.latency.observe(max(0.0, time.time() - held.decoded.ts / 1000))
                    await self._send(outcome, key=key)
                    if self.store.dirty:
                        # Faust buffers changelog writes and may commit offsets before sending them; the
                        # event is done only once its state change is on the broker too.
                        await self.app.producer.flush()
                        self.store.dirty = False
                except TransientError as e:
                    log.error("%s; stopping so that a restarted worker reads the event again", e)
                    await self.app.crash(e)
                    return
                except Exception as e:  # e.g. unreadable stored state: keep the event, in the DLQ
                    await self._dead_letter_unexpected(e, held.raw, held.source, key)
                held.pending.done = True
        self.metrics.merge_held.set(sum(len(m) for m in self._mergers.values()))
        for merger in self._mergers.values():
            for bound, n in merger.forced.items():
                self.metrics.merge_forced.labels(bound=bound).inc(n)
            merger.forced.clear()
        await self._ack_in_order()

    # -- rebuilding non-durable detector state after a rebalance (DESIGN.md principle 7) ---------

    def _start_rebuilds(self, generation: int) -> None:
        """Hold every owned partition until its non-durable detector state is rebuilt from its input.

        Faust revokes every partition on a rebalance and the room cache is dropped with it, so each
        assignment rebuilds every partition it gets, kept or new. Nothing to rebuild (no running detector
        without durable state, e.g. flood rules off) opens every partition at once."""
        ruleset = self.watcher.current
        topics = sorted({self.settings.topic(TOPIC_FOR_KIND[k]) for k in ruleset.rebuild_kinds if k in TOPIC_FOR_KIND})
        if not topics or ruleset.rebuild_history_ms <= 0:
            self._open = set(self._owned)
            return
        self._open = set()
        self.metrics.partitions_rebuilding.set(len(self._owned))
        for partition in sorted(self._owned):
            tps = [TopicPartition(t, partition) for t in topics]
            task = asyncio.ensure_future(self._rebuild(generation, partition, tps, ruleset.rebuild_kinds,
                                                       ruleset.rebuild_history_ms))
            self._rebuilds.add(task)
            task.add_done_callback(self._rebuilds.discard)

    async def _rebuild(self, generation: int, partition: int, tps: list[TopicPartition], kinds: frozenset[str],
                       history_ms: int) -> None:
        """Re-read one partition's recent decided input, feed it to the non-durable detectors, then open
        the partition. A failure (broker unreachable, timeout) is logged and counted, and the partition
        opens with empty windows for the rooms concerned: the worker must go on."""
        started = time.monotonic()
        rooms: dict[str, RoomState] = {}
        history = None
        read_s = 0.0
        deadline = started + self.settings.rebuild_timeout_s
        try:
            while True:  # a broker error right after a rebalance (coordinator loading, say) is retried
                try:
                    history = await asyncio.wait_for(
                        read_history(self.settings.bootstrap_servers(), self.settings.app_id, tps, history_ms,
                                     kinds=kinds, clock_ms=self.engine.clock_ms),
                        max(0.1, deadline - time.monotonic()))
                    break
                except (asyncio.CancelledError, asyncio.TimeoutError):
                    raise
                except Exception as e:
                    if time.monotonic() + REBUILD_RETRY_S >= deadline or generation != self._generation:
                        raise
                    log.warning("re-reading the input of partition %d failed (%r); trying again", partition, e)
                    await asyncio.sleep(REBUILD_RETRY_S)
            read_s = time.monotonic() - started
            for i in range(0, len(history.events), REBUILD_CHUNK):
                if generation != self._generation:
                    return  # revoked meanwhile: the next assignment rebuilds again
                self.engine.warm(history.events[i:i + REBUILD_CHUNK], rooms)
                await asyncio.sleep(0)  # let the other partitions' events through
            failed = False
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failed = True
            log.error("rebuilding the state of partition %d failed after %.1f s (%r); it goes on with empty "
                      "sliding windows for its rooms", partition, time.monotonic() - started, e)
        async with self._lock:
            if generation != self._generation:
                return
            if not failed:
                self.store.adopt(rooms)
                self._ahead[partition] = deque(history.ahead)
            else:
                self._unrebuilt.add(partition)
            self._open.add(partition)
            took = time.monotonic() - started
            self.metrics.rebuilds.labels(result="failed" if failed else "ok").inc()
            self.metrics.rebuild_seconds.observe(took)
            self.metrics.partitions_rebuilding.set(len(set(self._owned) - self._open))
            self.metrics.partitions_unrebuilt.set(len(self._unrebuilt))
            if history is not None and not failed:
                log.info("partition %d: rebuilt %d rooms from %s in %.2f s (read %.2f s)", partition, len(rooms),
                         history.describe(), took, read_s)
            merger = self._mergers.get(partition)
            if merger is not None:
                merger.restart_wait(time.monotonic())  # held back by us, not stalled: count the wait from now
            try:
                await self._release()
            except Exception:
                log.exception("release failed")  # the timer tries again

    async def _send(self, outcome: Outcome, key: bytes | None) -> None:
        """Send an event's outputs and wait for the broker's acks (acks=all), retrying what can be retried.

        Raises ``TransientError`` when the broker stays unreachable; any other error is the message's own
        (too large, say) and is left to the caller to dead-letter."""
        messages = ([(self.alerts, f.room_id.encode(), f.model_dump_json().encode()) for f in outcome.findings]
                    + [(self.actions, a.action_id.encode(), a.model_dump_json().encode()) for a in outcome.actions]
                    + [(self.dlq, key, d.model_dump_json().encode()) for d in outcome.dead_letters])
        if not messages:
            return
        for attempt in range(SEND_ATTEMPTS):
            try:
                futures = [await topic.send(key=k, value=v) for topic, k, v in messages]
                await asyncio.gather(*futures)
                return
            except Exception as e:
                if not getattr(e, "retriable", False) and not isinstance(e, (asyncio.TimeoutError, OSError)):
                    raise
                if attempt == SEND_ATTEMPTS - 1:
                    raise TransientError(f"sending outputs failed {SEND_ATTEMPTS} times: {e!r}") from e
                await asyncio.sleep(0.2 * 2 ** attempt)  # duplicates from a retry carry the same ids

    async def _dead_letter_unexpected(self, error: Exception, raw: bytes, source: Source, key: bytes | None) -> None:
        """An event that failed in a way nobody foresaw: keep it, with the reason, in the DLQ."""
        log.exception("processing %s failed", source)
        self.metrics.dead_letters.labels(reason="processing_error").inc()
        await self._send(Outcome(dead_letters=[DeadLetter.of(raw, "processing_error", repr(error)[:1000], source)]),
                         key=key)

    async def _ack_in_order(self) -> None:
        """Acknowledge done events per topic-partition, in offset order and without gaps.

        Without gaps means: starting at the partition's committed offset. Right after a rebalance Faust
        can hand over messages fetched before it, beyond messages it will deliver again; acknowledging
        those first would let faust-streaming 0.15 commit past the undelivered one (its gap check
        accepts a gap of exactly one offset). A head that waits at a gap for ``GAP_PATIENCE_S`` (offsets
        skipped by transaction markers, say) is acknowledged anyway."""
        now = time.monotonic()
        committed = getattr(self.app.consumer, "_committed_offset", {})
        for tp, queue in self._pending.items():
            while queue and queue[0].done:
                head = queue[0]
                expected = self._next_ack.get(tp, committed.get(tp))
                if expected is not None and head.offset > expected:
                    waiting = self._gap_since.setdefault(tp, now)
                    if tp not in self._rereading and now - waiting < GAP_PATIENCE_S:
                        self._rereading.add(tp)
                        asyncio.ensure_future(self._reread(tp, expected, head.offset, self._generation))
                    if now - waiting < GAP_PATIENCE_S:
                        break
                    log.warning("acknowledging %s@%d past a gap from %d", tp, head.offset, expected)
                self._gap_since.pop(tp, None)
                queue.popleft()
                self._next_ack[tp] = head.offset + 1
                if head.event is not None:  # a re-read message has no Faust event to acknowledge
                    await self._stream.ack(head.event)

    # -- helpers -------------------------------------------------------------------------------

    def _inputs_of(self, partition: int) -> Callable[[], set[TP]]:
        return lambda: self._owned.get(partition, set())

    def _caught_up(self, tp: TP) -> bool:
        """Nothing more to read on ``tp`` right now: the next offset to read has reached the end.

        The end is the larger of the fetcher's high-water mark and the end offset asked of the broker at
        assignment; until one of them is known, ``tp`` is not caught up (the fetcher reports 0 for a
        partition it has not fetched yet, which must not read as "empty")."""
        bounds = self._bounds.get(tp)
        if bounds is None:
            return False
        start, end = bounds
        try:
            end = max(end, self.app.consumer.highwater(tp) or 0)
        except Exception:
            pass
        last = self._last_offset.get(tp)
        if last is not None:
            return last + 1 >= end
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)
        return (committed if committed is not None else start) >= end

    def _catching_up(self, tp: TP) -> bool:
        """``tp`` has not yet delivered every message that was on the broker when it was assigned (or
        that is not known yet): its events are on their way, and the merge waits for them rather than
        releasing later events of the other topics by its lateness or wait bound."""
        bounds = self._bounds.get(tp)
        if bounds is None:
            return True
        start, end = bounds
        last = self._last_offset.get(tp)
        if last is not None:
            return last + 1 < end
        committed = getattr(self.app.consumer, "_committed_offset", {}).get(tp)
        return (committed if committed is not None else start) < end

    async def _query_bounds(self, tps: set[TP]) -> None:
        """Ask the broker where each newly owned input partition starts and ends."""
        try:
            starts = await self.app.consumer.earliest_offsets(*tps)
            ends = await self.app.consumer.highwaters(*tps)
        except Exception:
            log.exception("could not read the offsets of %s; the merge falls back to its wait bound", tps)
            return
        for tp in tps:
            if tp in starts and tp in ends:
                self._bounds[tp] = (starts[tp] or 0, ends[tp] or 0)

    def _update_lag(self) -> None:
        lag: dict[str, int] = {}
        for tp in self.app.consumer.assignment():
            if tp.topic not in self.input_names:
                continue
            try:
                highwater = self.app.consumer.highwater(tp)
            except Exception:
                continue
            if highwater is not None:
                last = self._last_offset.get(tp)
                received = last + 1 if last is not None else (
                    getattr(self.app.consumer, "_committed_offset", {}).get(tp) or 0)
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - received)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic=topic).set(value)


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (then it stops cleanly, committing what is done)."""
    runtime = WorkerRuntime(settings)  # loads the rules first: a bad ruleset refuses to start
    asyncio.run(ensure_topics(settings))  # inputs co-partitioned, with our retention/compaction settings
    worker = faust.Worker(runtime.app, loglevel=settings.loglevel)
    worker.execute_from_commandline()
