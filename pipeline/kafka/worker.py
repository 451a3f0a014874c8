"""The Kafka runtime's Faust wiring: the six input topics read in fetched batches (``batches``), the changelog-
backed rooms table, the rebalance hooks, and ``run_worker``.

Faust's fetcher hands each fetched batch of input messages over in pieces of at most 4,000
(``batches.BatchConsumer``), a task takes the pieces waiting (up to 4,000 messages) as one step under the
worker's lock: every message decoded (a poison one becomes a dead letter) → held in its partition's event-time
merge (``merge``) → what the merges release decided by the engine → the step's outputs sent together and their
broker acks awaited together (``sender``), the changelog flushed → the step's events done, acknowledged to
Faust in offset order (``offsets``). A newly assigned partition releases nothing until its sliding windows are
rebuilt (``rebuild``). Why it is built this way: docs/kafka_runtime.md.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.types import TP, Message

from pipeline.engine import Engine, Outcome
from pipeline.errors import TransientError
from pipeline.heap import settle_heap
from pipeline.kafka.batches import BatchConsumer, BatchTransport
from pipeline.kafka.committed import committed_offsets
from pipeline.kafka.merge import DeliveryClock, End, EventTimeMerger, order_key
from pipeline.kafka.offsets import OffsetTracker, Pending, Reread
from pipeline.kafka.reader import History, committed_ends, read_history, read_range
from pipeline.kafka.rebuild import RebuildCoordinator
from pipeline.kafka.security import faust_credentials, security_kwargs
from pipeline.kafka.sender import OutputSender
from pipeline.kafka.state_store import TableStateStore
from pipeline.kafka.topics import (
    ACCOUNTS,
    ACTIONS,
    ALERTS,
    DLQ,
    INPUT_NAMES,
    TOPIC_FOR_KIND,
    ensure_topics,
    seq_of,
)
from pipeline.kafka.transactions import InFlight, Transactions
from pipeline.metrics import Metrics
from pipeline.privacy import DEV_KEY, Pseudonymizer
from pipeline.ruleset import Ruleset, RulesetWatcher
from pipeline.settings import Settings
from schemas.accounts import AccountRecord
from schemas.deadletter import DeadLetter, MessageSource
from schemas.events import BaseEvent

log = logging.getLogger("livewatch.worker")

ROOMS_TABLE = "rooms"
ACCOUNTS_TABLE = "accounts"
#: fetched batches waiting for their step at most: the fetcher reads ahead, then waits. Deeper is not better:
#: 8 gave ≈ 10 % more events/s on a pre-published backlog (bench b) but doubled event → alert latency at
#: 2,000 events/s (bench d, alternating runs: p50 225–258 ms at 2, 472–545 ms at 8)
BATCHES_AHEAD = 2
#: deciding yields to the event loop this often: a step of 1,000 events is ≈ 0.1 s of CPU, and the last step's
#: transaction (InFlight), which runs meanwhile, moves one broker round trip per turn of the loop — without a
#: turn it waited for the whole step at each of them, and the next step then for it (a third of a core idle)
YIELD_EVERY_S = 0.005
GAP_PATIENCE_S = 30.0  # a head of the acknowledgement queue waits this long at a gap, then goes past it
STALL_S = 10.0  # an input with messages on the broker that delivers nothing this long is read directly
BOUNDS_RETRY_S = 1.0  # a new assignment's offsets asked of the broker again after a failure
BOUNDS_TIMEOUT_S = 15.0  # … or after this long without an answer
ACCOUNT_START_TIMEOUT_S = 5.0  # the account stage's committed offsets, read under the step lock: not waited longer


def instance_id(settings: Settings) -> str:
    """The worker's name in the consumer group: ``settings.instance_id``, or one kept in its data directory
    (made at first start), so that a worker restarted on the same data directory comes back as itself."""
    if settings.instance_id:
        return settings.instance_id
    path = Path(settings.datadir) / "instance-id"
    try:
        kept = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        kept = ""
    if not kept:
        kept = f"{settings.app_id}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(kept + "\n", encoding="utf-8")
    return kept


@dataclass(slots=True)
class _Held:
    """An event waiting in the merge."""

    decoded: BaseEvent
    raw: bytes
    source: MessageSource
    pending: Pending
    key: tuple[int, int, str, int]  # its place in the merge (merge.order_key)


@dataclass(slots=True)
class _Decided:
    """An event decided in this step, its outputs not yet on the broker."""

    outcome: Outcome
    key: bytes | None
    pending: Pending
    raw: bytes
    source: MessageSource


#: an event's outcome, its input's key, bytes and place: what a transaction sends, or dead-letters if refused
_Output = tuple[Outcome, bytes | None, bytes, MessageSource]


class _Step:
    """What one step (a batch from Faust, a release, a re-read) decided: sent together, then done together."""

    __slots__ = ("decided",)

    def __init__(self) -> None:
        self.decided: list[_Decided] = []


class WorkerRuntime:
    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = s = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self.instance_id = instance_id(s)  # the group name, and the transactional id in exactly-once
        self.app = faust.App(
            s.app_id,
            broker=s.broker,
            broker_credentials=faust_credentials(s),  # TLS / SASL (docs/security.md)
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
            # static membership and a short session: a restarted worker takes its partitions back at once, a
            # dead one is out of the group in seconds, not a minute (docs/kafka_operations.md)
            consumer_group_instance_id=self.instance_id,
            broker_session_timeout=s.session_timeout_s,
            broker_heartbeat_interval=s.session_timeout_s / 4,
            # Events held in the merge are un-acknowledged by design; waiting for them to be acknowledged
            # before a rebalance would wait forever. They are read again afterwards.
            stream_wait_empty=False,
        )
        self.input_names = frozenset(s.topic(name) for name in INPUT_NAMES)
        self.account_topic = s.topic(ACCOUNTS.name)  # the account stage's input: a repartition by user id
        self._batches: asyncio.Queue[list[Message]] = asyncio.Queue(maxsize=BATCHES_AHEAD)
        # before anything asks the app for its consumer: the one built must be a BatchConsumer
        self.app.transport = BatchTransport(
            self.app.conf.broker_consumer,
            self.app,
            self.input_names | {self.account_topic},
            self._batches.put,
            committed_ends=(
                (lambda tps: committed_ends(s.bootstrap_servers(), tps, security=security_kwargs(s)))
                if s.exactly_once
                else None
            ),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
        )
        self.inputs = self.app.topic(
            *sorted(self.input_names), key_serializer="raw", value_serializer="raw", partitions=s.partitions
        )
        self.account_input = self.app.topic(
            self.account_topic, key_serializer="raw", value_serializer="raw", partitions=s.partitions
        )
        out: dict[str, Any] = dict(
            key_serializer="raw", value_serializer="raw", partitions=s.partitions, replicas=s.replication
        )
        self.alerts = self.app.topic(s.topic(ALERTS.name), config=ALERTS.kafka_config(), **out)
        self.actions = self.app.topic(s.topic(ACTIONS.name), config=ACTIONS.kafka_config(), compacting=True, **out)
        self.dlq = self.app.topic(s.topic(DLQ.name), config=DLQ.kafka_config(), **out)
        # use_partitioner: the changelog partition follows the key (room_id) like the inputs do. Raw bytes:
        # a JSON-quoted key would hash to another partition than the room's input messages.
        self.rooms = self.app.Table(
            ROOMS_TABLE, default=None, partitions=s.partitions, use_partitioner=True, key_type=bytes, value_type=bytes
        )
        self._changelog_topic = self.rooms.changelog_topic.get_topic_name()
        # the account stage's state (account ladders, account-keyed detectors), keyed and partitioned by user id
        # as live.accounts is
        self.accounts_table = self.app.Table(
            ACCOUNTS_TABLE,
            default=None,
            partitions=s.partitions,
            use_partitioner=True,
            key_type=bytes,
            value_type=bytes,
        )
        self._accounts_changelog = self.accounts_table.changelog_topic.get_topic_name()

        self.watcher = RulesetWatcher(s.rules_dir)
        self.metrics.set_ruleset(self.watcher.current.version)
        self.store = TableStateStore(self.rooms, lambda: self.watcher.current)
        self.account_store = TableStateStore(self.accounts_table, lambda: self.watcher.current)
        if s.pseudonym_key.get_secret_value() == DEV_KEY:
            log.warning(
                "LIVEWATCH_PSEUDONYM_KEY is not set: alerts pseudonymise user ids with the public "
                "development key, which anyone can reverse; set a secret key in production"
            )
        self.engine = Engine(
            lambda: self.watcher.current,
            store=self.store,
            metrics=self.metrics,
            pseudonymizer=Pseudonymizer(s.pseudonym_key.get_secret_value()),
            accounts=self.account_store,
            forward_accounts=True,  # the room stage sends the account stage's work to live.accounts
        )

        self._lock = asyncio.Lock()  # one decision step at a time: deliveries, re-reads, releases, handovers
        self.offsets: OffsetTracker[TP] = OffsetTracker(gap_patience_s=GAP_PATIENCE_S, stall_s=STALL_S)
        self.transactions: Transactions | None = None
        if s.exactly_once:
            self.transactions = t = Transactions(s, transactional_id=self.instance_id, group_id=s.app_id)
            # in a transaction a failed send cannot be sent again: the step is aborted and redone (attempts=1)
            self.sender = OutputSender(
                t.topic(s.topic(ALERTS.name)),
                t.topic(s.topic(ACTIONS.name)),
                t.topic(s.topic(DLQ.name)),
                self.metrics,
                attempts=1,
                accounts=t.topic(self.account_topic),
            )
        else:
            account_output = self.app.topic(self.account_topic, **out)
            self.sender = OutputSender(self.alerts, self.actions, self.dlq, self.metrics, accounts=account_output)
        self._committed: dict[TP, int] = {}  # exactly-once: the next offsets committed in a transaction
        self._in_flight = InFlight(self.app.crash)  # exactly-once: the last step's transaction
        self.rebuilds = RebuildCoordinator(
            self._read_history,
            self.engine,
            self.store,
            self.metrics,
            lock=self._lock,
            on_open=self._opened,
            input_topic=lambda kind: s.topic(TOPIC_FOR_KIND[kind]) if kind in TOPIC_FOR_KIND else None,
            timeout_s=s.rebuild_timeout_s,
        )

        self._mergers: dict[int, EventTimeMerger[TP, _Held]] = {}
        self._merge_clock = DeliveryClock()  # the mergers' time: stands still while nothing is delivered
        self._owned: dict[int, set[TP]] = {}  # partition number → the input topic-partitions we own
        self._account_tps: set[TP] = set()  # the partitions of live.accounts we own
        self._account_next: dict[TP, int] = {}  # per live.accounts partition: the next offset to decide
        self._assigned = False  # False between a revocation and the next assignment
        self._limbo: list[Message] = []  # delivered meanwhile: ours or not is known at assignment
        #: dead letters of partitions whose committed offset is not known yet (``_decide_letter``)
        self._held_letters: list[tuple[TP, _Decided]] = []
        self._rebalancing_seen = False  # a tick saw Faust rebalancing since the stall clocks last restarted
        self._last_reload = time.monotonic()
        self._loading: asyncio.Future[Ruleset | None] | None = None  # a look at the rule files under way

        self.app.topics.add(self.inputs)  # subscribed (no agent: the batches come from the consumer)
        self.app.topics.add(self.account_input)
        self.app.task(self._consume)
        self.app.timer(0.2)(self._tick)
        self.app.task(self._declare_outputs)
        # mode types a receiver as taking any positional arguments; ours name the two the rebalance
        # signals pass (the app, the partitions) and take ``signal=`` in **kwargs
        self.app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        self.app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # -- Faust hooks ---------------------------------------------------------------------------------

    async def _declare_outputs(self, app: faust.App | None = None) -> None:
        for topic in (self.alerts, self.actions, self.dlq):
            await topic.maybe_declare()
        if self.settings.metrics_port:
            self.metrics.serve(self.settings.metrics_port, self.settings.metrics_host)
            log.info("metrics on http://%s:%d/metrics", self.settings.metrics_host, self.settings.metrics_port)

    async def _on_assigned(self, app: Any, assigned: set[TP], **kwargs: Any) -> None:
        inputs = {tp for tp in assigned if tp.topic in self.input_names}
        self._account_tps = {tp for tp in assigned if tp.topic == self.account_topic}
        self._owned = {}
        for tp in inputs:
            self._owned.setdefault(tp.partition, set()).add(tp)
        self.metrics.partitions_assigned.set(len(self._owned))
        log.info("assigned input partitions %s", sorted({tp.partition for tp in inputs}))
        self.offsets.assign(inputs, time.monotonic())
        self._assigned = True
        self.rebuilds.assign(self._owned, self.watcher.current)  # before any await: nothing of them goes first
        asyncio.ensure_future(self._query_bounds(inputs))
        limbo, self._limbo = self._limbo, []
        if limbo:  # in the order Faust delivered them, before anything fetched later
            await self._receive(limbo)

    async def _on_revoked(self, app: Any, revoked: set[TP], **kwargs: Any) -> None:
        # Everything held or un-acknowledged is read again from the committed offsets after the rebalance
        # (by us or by the partition's new owner): drop it, with the room cache.
        self.offsets.revoke()
        self.rebuilds.revoke()
        self._assigned = False
        async with self._lock:  # once the decision under way (if any) is done
            # and its transaction committed: the partitions' next owner starts from the offsets it commits
            await self._in_flight.settled()
            self.rebuilds.clear()
            for merger in self._mergers.values():
                merger.clear()
            self._mergers.clear()
            self._held_letters.clear()
            self.offsets.clear()
            self._committed.clear()
            self._owned = {}
            self._account_tps = set()
            self._account_next.clear()
            self.store.clear()
            self.account_store.clear()
            self.metrics.partitions_assigned.set(0)
            self.metrics.consumer_lag.clear()
            self.metrics.merge_held.set(0)

    async def _consume(self, app: Any = None) -> None:
        carried: list[Message] | None = None
        while True:
            batch = carried if carried is not None else await self._batches.get()
            carried = None
            # the batches fetched while the last step was decided and committed join this step, up to a step's
            # size: one transaction for them all, instead of one each that the last of them would wait behind
            while not self._batches.empty():
                more = self._batches.get_nowait()
                if len(batch) + len(more) > BatchConsumer.batch_max:
                    carried = more
                    break
                batch.extend(more)
            try:
                await self._receive(batch)
            except Exception:  # the task must go on; the batch's messages are read again after a restart
                log.exception("unexpected error on a batch of %d message(s)", len(batch))

    async def _tick(self, app: Any = None) -> None:
        now = time.monotonic()
        if self._loading is None and now - self._last_reload >= self.settings.reload_every_s:
            self._last_reload = now
            # An edit's ruleset is read and built in a thread: on the loop, every rule edit stopped every worker's
            # decisions for the load (2–3 s here until stop 36). Adopted at a later tick, where the reload swapped it.
            self._loading = asyncio.ensure_future(asyncio.to_thread(self.watcher.load_if_changed))
            self._update_lag()
        try:
            async with self._lock:
                if self._loading is not None and self._loading.done():
                    loading, self._loading = self._loading, None
                    self._adopt_rules(loading)  # between two steps: a step is decided by one ruleset
                await self._release()
        except Exception:
            log.exception("release failed")
        # Faust recovers the tables of a new assignment after signalling it and delivers the new partitions only
        # then: that wait is no stall. A direct read during a slow recovery once decided a room loaded from its
        # table before the table was back (its product category lost, in CI): no stall is looked for until the
        # rebalance has ended, and the silence of the inputs counts from there.
        if self.app.rebalancing:
            self._rebalancing_seen = True
            return
        if self._rebalancing_seen:
            self._rebalancing_seen = False
            self.offsets.restart_stall_clocks(now)
        open_inputs = [tp for p, tps in self._owned.items() if self.rebuilds.is_open(p) for tp in tps]
        for request in self.offsets.stalled(open_inputs, self._fresh_highwater, now):
            asyncio.ensure_future(self._reread(request))

    def _adopt_rules(self, loading: asyncio.Future[Ruleset | None]) -> None:
        if loading.cancelled():  # at shutdown
            return
        try:
            self.watcher.adopt(loading.result(), self.metrics, log.warning)
        except Exception:  # not a refused edit (that is reported, not raised)
            self.metrics.ruleset_reloads.labels(result="refused").inc()
            log.exception("ruleset reload failed; keeping %s", self.watcher.current.version)

    # -- the pipeline --------------------------------------------------------------------------------

    async def _receive(self, messages: list[Message]) -> None:
        """One batch Faust fetched, in its order: one step."""
        if not self._assigned:  # between a revocation and the next assignment: wait and see
            self._limbo.extend(messages)
            return
        async with self._lock:
            if not self._assigned:  # revoked while we waited for the lock
                self._limbo.extend(messages)
                return
            step = _Step()
            now = time.monotonic()
            self._merge_clock.delivered(now)
            merge_now = self._merge_clock.now(now)
            ack_now = []
            for_accounts = [m for m in messages if m.tp.topic == self.account_topic]
            for msg in messages:
                tp = msg.tp
                if tp.topic == self.account_topic:
                    continue
                if tp not in self._owned.get(tp.partition, ()):
                    # Fetched before a rebalance, delivered after it, and the partition is another worker's
                    # now: its new owner reads it from the committed offset (deciding it here would use stale
                    # state).
                    self.metrics.unowned.inc()
                    continue
                receipt = self.offsets.receive(tp, msg.offset, msg, now)
                if receipt.ack_now is not None:
                    ack_now.append(receipt.ack_now)
                if receipt.reread is not None:
                    asyncio.ensure_future(self._reread(receipt.reread))
                if receipt.pending is not None:  # else taken already
                    self._accept(step, tp, msg.offset, msg.key, msg.value, msg.headers, receipt.pending, merge_now)
            if self.transactions is None:
                for copy in ack_now:  # copies of messages acknowledged already
                    self.app.consumer.ack(copy)
            await self._release(step)
            if for_accounts:
                await self._decide_accounts(for_accounts)

    async def _decide_accounts(self, messages: list[Message]) -> None:
        """The account stage (under the lock): each live.accounts message of ours, in offset order, decided by
        ``Engine.process_account`` on the account's state; the outputs, the accounts table's changes and the
        offsets go in one transaction (exactly-once), or are sent, flushed and then acknowledged."""
        unknown = {m.tp for m in messages if m.tp in self._account_tps and m.tp not in self._account_next}
        if unknown:
            await self._account_starts(unknown)
        decided: list[_Output] = []
        taken: list[Message] = []
        offsets: dict[TopicPartition, int] = {}
        for msg in messages:
            tp = msg.tp
            if tp not in self._account_tps or msg.offset < self._account_next.get(tp, 0):
                continue  # another worker's now, or decided already (a fetch that raced a seek)
            raw = msg.value if isinstance(msg.value, bytes) else bytes(msg.value or b"")
            source = MessageSource(topic=tp.topic, partition=tp.partition, offset=msg.offset)
            try:
                outcome = self.engine.process_account(AccountRecord.model_validate_json(raw))
            except Exception as e:  # a record we cannot read (written by another version?): kept in the DLQ
                outcome = self.sender.failure(e, raw, source)
            decided.append((outcome, msg.key, raw, source))
            taken.append(msg)
            self._account_next[tp] = msg.offset + 1
            offsets[TopicPartition(tp.topic, tp.partition)] = msg.offset + 1
        if not taken:
            return
        try:
            if self.transactions is not None:
                changes = [
                    (self._accounts_changelog, account, blob)
                    for account, blob in self.account_store.take_changes(self.accounts_table.data)
                ]
                await self._transact(self._commit(self.transactions, decided, changes, offsets))
            else:
                errors = await self.sender.send_many([(outcome, key) for outcome, key, _, _ in decided])
                letters = [
                    (self.sender.failure(e, raw, source), key)
                    for (_, key, raw, source), e in zip(decided, errors, strict=True)
                    if e is not None
                ]
                if letters and any(await self.sender.send_many(letters)):
                    raise TransientError("an account stage dead letter was refused")
                if self.account_store.write_changes():
                    await self.app.producer.flush()
                for msg in taken:
                    self.app.consumer.ack(msg)
        except TransientError as e:
            log.error("%s; stopping so that a restarted worker reads the account records again", e)
            await self.app.crash(e)

    async def _account_starts(self, tps: set[TP]) -> None:
        """Where the account stage starts deciding newly owned live.accounts partitions: the group's committed
        offsets, read stable. The fetcher's own read of them can come before the last owner's final transaction
        is visible (``committed.py``); deciding from there would send that transaction's account actions again."""
        try:
            committed = await asyncio.wait_for(self._committed_of(tps), ACCOUNT_START_TIMEOUT_S)
        except Exception as e:  # under the step lock: not waited for long; the fetcher's position is mostly right
            log.warning("could not read the committed offsets of %s (%r); deciding from the fetcher's", sorted(tps), e)
            return
        for tp in tps:
            self._account_next.setdefault(tp, committed.get(TopicPartition(tp.topic, tp.partition), 0))

    def _accept(
        self,
        step: _Step,
        tp: TP,
        offset: int,
        key: bytes | None,
        value: Any,
        headers: Any,
        pending: Pending,
        merge_now: float,
    ) -> None:
        """Decode one message: a dead letter joins the step's outputs, a valid event joins the event-time merge
        (at ``merge_now``, the merge clock's time of the delivery)."""
        source = MessageSource(topic=tp.topic, partition=tp.partition, offset=offset)
        raw = value if isinstance(value, bytes) else bytes(value or b"")
        try:
            decoded = self.engine.decode(raw, source)
            if not isinstance(decoded, DeadLetter) and key != decoded.room_id.encode():
                # Room state is partitioned by room_id: a message keyed otherwise would split a room's
                # ladder across workers.
                self.metrics.dead_letters.labels(reason="wrong_key").inc()
                decoded = DeadLetter.of(
                    raw,
                    "wrong_key",
                    f"message key {key!r} is not the room_id {decoded.room_id!r}; producers must key by room_id",
                    source,
                    decoded.event_id,
                )
            if isinstance(decoded, DeadLetter):
                self._decide_letter(step, tp, _Decided(Outcome(dead_letters=[decoded]), key, pending, raw, source))
                return
            merger = self._mergers.get(tp.partition)
            if merger is None:
                merger = self._mergers[tp.partition] = EventTimeMerger(
                    self._inputs_of(tp.partition), self.settings.max_lateness_ms, self.settings.max_wait_s
                )
            seq = seq_of(headers)
            place = order_key(decoded.ts, seq, tp.topic, offset)
            merger.push(tp, decoded.ts, _Held(decoded, raw, source, pending, place), merge_now, key=place)
        except Exception as e:
            self._decide_letter(step, tp, _Decided(self.sender.failure(e, raw, source), key, pending, raw, source))

    def _decide_letter(self, step: _Step, tp: TP, letter: _Decided) -> None:
        """A dead letter needs no state and no order: decided with the step — unless where the partition's delivery
        starts is not known yet. It may lie below the committed offset (decided before this assignment), so it
        waits for the answer (``_release``)."""
        if self.offsets.start_known(tp):
            step.decided.append(letter)
        else:
            self._held_letters.append((tp, letter))

    async def _reread(self, request: Reread[TP]) -> None:
        """Read a range Faust skipped or stopped delivering, and decide what it had not delivered."""
        tp = request.tp
        asked = time.monotonic()  # the broker's end it reads to is heard of as of then
        records, reached, end = await read_range(
            self.settings.bootstrap_servers(),
            tp,
            request.start,
            request.end,
            to_end=request.to_end,
            # as the worker's consumer reads: with transactions, an aborted input record is no event
            isolation_level="read_committed" if self.transactions is not None else "read_uncommitted",
            security=security_kwargs(self.settings),
        )
        async with self._lock:
            by_offset = {r.offset: r for r in records}
            entries = self.offsets.reread_done(request, list(by_offset), time.monotonic(), reached, end, asked)
            if entries:
                log.warning(
                    "re-read %d message(s) of %s that Faust did not deliver (offsets %d..%d)",
                    len(entries),
                    tp,
                    request.start,
                    request.end - 1,
                )
                self.metrics.reread.inc(len(entries))
            step = _Step()
            now = time.monotonic()
            if entries:
                self._merge_clock.delivered(now)
            merge_now = self._merge_clock.now(now)
            for entry in entries:
                r = by_offset[entry.offset]
                self._accept(step, tp, r.offset, r.key, r.value, r.headers, entry, merge_now)
            await self._release(step)

    async def _release(self, step: _Step | None = None) -> None:
        """Decide what the merges release, in order, for partitions that are open and wait for no re-read;
        then finish the step (``_finish``) and acknowledge what may be."""
        step = step if step is not None else _Step()
        if self._held_letters:
            waiting = []
            for tp, letter in self._held_letters:
                if not self.offsets.start_known(tp):
                    waiting.append((tp, letter))
                elif not letter.pending.decided_before:
                    step.decided.append(letter)
            self._held_letters = waiting
        now = time.monotonic()
        turn = time.perf_counter() + YIELD_EVERY_S
        ends = self._ends()
        for partition, merger in list(self._mergers.items()):
            if not self.rebuilds.is_open(partition) or self.offsets.blocked(self._owned.get(partition, ())):
                continue
            # an input not caught up is the consumer's lag, not a late producer: waited for until it stalls
            ahead = self.rebuilds.has_ahead(partition)  # only shrinks below: asked once, not per event
            for held in merger.pop_ready(ends, self._merge_clock.now(now), wait_for_lagging=True):
                if time.perf_counter() >= turn:
                    # still under the lock: only the transaction in flight and the fetcher move meanwhile (a
                    # revocation waits for the lock, and what was taken stays acknowledgeable until then)
                    await asyncio.sleep(0)
                    turn = time.perf_counter() + YIELD_EVERY_S
                if held.pending.decided_before:  # taken before the committed offset was known, and below it
                    continue
                key = held.decoded.room_id.encode()
                try:
                    passed = self.rebuilds.decided_before(partition, held.key) if ahead else None
                    if passed:  # decided by the last owner before this one: into the windows first
                        self.engine.warm_in_store(passed)
                    outcome = self.engine.process_decoded(held.decoded, held.raw, held.source)
                except TransientError as e:
                    log.error("%s; stopping so that a restarted worker reads the event again", e)
                    await self.app.crash(e)
                    return
                except Exception as e:  # e.g. unreadable stored state: keep the event, in the DLQ
                    outcome = self.sender.failure(e, held.raw, held.source)
                step.decided.append(_Decided(outcome, key, held.pending, held.raw, held.source))
        if step.decided:
            wall = time.time()
            self.metrics.last_decision.set(wall)
            self.metrics.latency.observe_many(
                max(0.0, wall - d.outcome.event.ts / 1000) for d in step.decided if d.outcome.event is not None
            )
            if not await self._finish(step):
                return
        self.metrics.merge_held.set(sum(len(m) for m in self._mergers.values()))
        for merger in self._mergers.values():
            for bound, n in merger.forced.items():
                self.metrics.merge_forced.labels(bound=bound).inc(n)
            merger.forced.clear()
        await self._acknowledge()

    async def _finish(self, step: _Step) -> bool:
        if self.transactions is not None:
            return await self._finish_in_transaction(step, self.transactions)
        return await self._finish_at_least_once(step)

    async def _finish_in_transaction(self, step: _Step, transactions: Transactions) -> bool:
        """Commit the step in one transaction: its outputs, the changelog records of the rooms it changed,
        and the input offsets that may be acknowledged with it (``offsets.acks``); only then are its events
        done. False when the worker is stopping."""
        changes = [(self._changelog_topic, room_id, blob) for room_id, blob in self.store.take_changes(self.rooms.data)]
        for d in step.decided:
            d.pending.done = True
        # most events lead to nothing: the transaction handles the few that have outputs (a list per event, three
        # times over, cost ≈ 2 µs an event)
        outputs = [(d.outcome, d.key, d.raw, d.source) for d in step.decided if d.outcome.has_outputs]
        return await self._transact(self._commit(transactions, outputs, changes, self._offsets_to_commit()))

    async def _transact(self, transaction: Coroutine[Any, Any, None]) -> bool:
        """Start a step's transaction once the one in flight has committed (``InFlight.start``), timing the wait."""
        waited = time.monotonic()
        started = await self._in_flight.start(transaction)
        self.metrics.transaction_phase["wait"].observe(time.monotonic() - waited)
        return started

    async def _commit(
        self,
        transactions: Transactions,
        outputs: list[_Output],
        changes: list[tuple[str, str, bytes]],
        offsets: dict[TopicPartition, int],
    ) -> None:
        """The transaction of what a step left — outputs, changelog records (topic, key, value), input offsets —
        run by ``InFlight`` while the next step is decided (the caller took the changes before the next step can
        alter a room). An output refused for a reason of its own (too large) aborts it, and it is redone once
        with that event's outputs replaced by a dead letter; anything else is a TransientError."""
        sends = [(outcome, key) for outcome, key, _, _ in outputs]
        adding: list[asyncio.Future[None]] = []  # the offsets' requests of the attempt under way

        def add_offsets() -> None:
            adding.append(asyncio.ensure_future(transactions.add_offsets(offsets)))

        began = time.monotonic()
        try:
            for attempt in range(2):
                await transactions.begin()
                # the changelog records first, unacknowledged: they travel in the same produce requests as the
                # outputs, whose acknowledgements send_many awaits (one round trip for both, not two)
                for topic, key, blob in changes:
                    await transactions.log_change(topic, key.encode(), blob)
                # The offsets go to the coordinators while the records are in flight, once every record is with
                # the producer (a partition it adds to the transaction is added first): two requests fewer in a
                # row before the commit. An abort below drops them with the records.
                try:
                    errors = await self.sender.send_many(sends, on_handed=add_offsets)
                finally:
                    added = await asyncio.gather(*adding, return_exceptions=True)  # never left running
                    adding.clear()
                if any(errors):  # the offsets, whether they were added or failed to be, go with the abort
                    await transactions.abort()
                    if attempt:
                        raise TransientError(f"a step's dead letters were refused too: {errors!r}")
                    sends = [
                        (self.sender.failure(e, raw, source), key) if e is not None else sent
                        for (_, key, raw, source), sent, e in zip(outputs, sends, errors, strict=True)
                    ]
                    continue
                for result in added:
                    if isinstance(result, BaseException):
                        raise result
                await transactions.commit()
                self.metrics.transaction_phase["run"].observe(time.monotonic() - began)
                return
        except TransientError:
            raise
        except Exception as e:  # the producer's own failure: the step is read again by a restart
            raise TransientError(f"transaction failed: {e!r}") from e

    def _offsets_to_commit(self) -> dict[TopicPartition, int]:
        """The next offset of every topic-partition acknowledged further since the last commit (what
        ``offsets.acks`` pops now, in order; re-reads of gaps it asks for are started)."""
        _, rereads = self.offsets.acks(time.monotonic())
        for request in rereads:
            asyncio.ensure_future(self._reread(request))
        out = {}
        for tp, position in self.offsets.next_acks().items():
            if self._committed.get(tp) != position:
                self._committed[tp] = position
                out[TopicPartition(tp.topic, tp.partition)] = position
        return out

    async def _finish_at_least_once(self, step: _Step) -> bool:
        """Put the step's outputs on the broker, all sent before any ack is awaited, and flush the changelog
        writes the step caused; only then are its events done. False when the worker is stopping.

        The changelog is written only once the outputs are on the broker: Faust sends table writes from its
        own buffer whenever it likes, and a room's state that reached the changelog before the outputs that
        went with it would, after a crash, make the re-decided events produce nothing (a title already
        reported, a ladder already climbed): outputs lost. In this order a crash repeats outputs instead."""
        try:
            sending = [d for d in step.decided if d.outcome.has_outputs]  # most events lead to nothing
            errors = await self.sender.send_many([(d.outcome, d.key) for d in sending])
            failed = [(d, e) for d, e in zip(sending, errors, strict=True) if e is not None]
            if failed:  # an output of the message's own making (too large, say): the event goes to the DLQ
                letters = [(self.sender.failure(e, d.raw, d.source), d.key) for d, e in failed]
                for error in await self.sender.send_many(letters):
                    if error is not None:
                        raise error
            self.store.write_changes()  # one table write per room at most, buffered by Faust
            if self.store.dirty:
                # Faust buffers changelog writes and may commit offsets before sending them; the step's
                # events are done only once their state changes are on the broker too.
                await self.app.producer.flush()
                self.store.dirty = False
        except TransientError as e:
            log.error("%s; stopping so that a restarted worker reads the events again", e)
            await self.app.crash(e)
            return False
        for d in step.decided:
            d.pending.done = True
        return True

    async def _acknowledge(self) -> None:
        if self.transactions is not None:
            await self._commit_offsets(self.transactions)
            return
        if self.app.rebalancing:
            # Faust drops the acknowledgements of revoked partitions when a rebalance starts, yet accepts new
            # ones meanwhile and commits them once a kept partition is assigned again: past the offset it has
            # just seeked to. A rebuild would then count as decided messages that Faust delivers again. Wait
            # until the rebalance is over: what was revoked is cleared by then, the rest is acknowledged.
            return
        messages, rereads = self.offsets.acks(time.monotonic())
        for request in rereads:
            asyncio.ensure_future(self._reread(request))
        ack = self.app.consumer.ack
        for message in messages:
            ack(message)

    async def _commit_offsets(self, transactions: Transactions) -> None:
        """Exactly-once, between steps: commit offsets acknowledged since the last transaction (events that
        produced nothing, gaps passed) in a transaction of their own, if there are any."""
        if self.app.rebalancing:  # as for acks: what was revoked is cleared once the rebalance is over
            return
        offsets = self._offsets_to_commit()
        if not offsets:
            return
        if not await self._in_flight.settled():
            return
        try:
            await transactions.begin()
            await transactions.commit(offsets)
        except Exception as e:
            log.error("committing offsets failed (%r); stopping so that a restarted worker reads from them", e)
            await self.app.crash(e)

    async def _opened(self, partition: int) -> None:
        """A rebuild opened ``partition`` (called under the lock): release what waited for it."""
        merger = self._mergers.get(partition)
        if merger is not None:
            # held back by us, not stalled: count the wait from now
            merger.restart_wait(self._merge_clock.now(time.monotonic()))
        try:
            await self._release()
        except Exception:
            log.exception("release failed")  # the timer tries again

    # -- helpers -------------------------------------------------------------------------------------

    async def _read_history(self, tps: list[TopicPartition], history_ms: int, kinds: frozenset[str]) -> History:
        return await read_history(
            self.settings.bootstrap_servers(),
            self.settings.app_id,
            tps,
            history_ms,
            kinds=kinds,
            clock_ms=self.engine.clock_ms,
            security=security_kwargs(self.settings),
        )

    def _inputs_of(self, partition: int) -> Any:
        return lambda: self._owned.get(partition, set())

    def _highwater(self, tp: TP) -> int | None:
        try:
            return self.app.consumer.highwater(tp)
        except Exception:
            return None

    def _fresh_highwater(self, tp: TP) -> int | None:
        """The consumer's high-water mark of ``tp`` if a fetch answered it lately (``OffsetTracker.caught_up``)."""
        consumer = self.app.consumer
        assert isinstance(consumer, BatchConsumer)  # the transport builds one (``BatchTransport``)
        return consumer.fresh_highwater(tp, self.offsets.fresh_s)

    def _ends(self) -> Callable[[TP], End]:
        """What the merges know of each input's end (``EventTimeMerger.pop_ready``), for one release: aiokafka
        stamps a fetch's answer with the wall clock, the tracker keeps monotonic time, and one offset between
        the two for the whole release keeps two inputs answered by the same fetch equal."""
        consumer = self.app.consumer
        assert isinstance(consumer, BatchConsumer)  # the transport builds one (``BatchTransport``)
        to_monotonic = time.monotonic() - time.time()

        def end(tp: TP) -> End:
            fetched = consumer.fetched_end(tp)
            return self.offsets.end(tp, None if fetched is None else (fetched[0], fetched[1] + to_monotonic))

        return end

    async def _query_bounds(self, tps: set[TP]) -> None:
        """Ask the broker where each newly owned input partition starts and ends, and where the group's
        delivery of it starts (its committed offset). Until then nothing of it is released or acknowledged
        (``OffsetTracker.blocked``): asked again until answered, or until the assignment changes."""
        if not tps:
            return
        epoch = self.offsets.epoch
        while True:
            asked = time.monotonic()  # the ends answered are heard of as of then (more may come during the ask)
            try:
                starts, ends, committed = await asyncio.wait_for(self._bounds_of(tps), BOUNDS_TIMEOUT_S)
                missing = sorted(tp for tp in tps if tp not in starts or tp not in ends)
                if missing:  # each must be known: its partition is held till then
                    raise LookupError(f"no bounds for {missing}")
                break
            except Exception as e:
                if epoch != self.offsets.epoch:
                    return
                log.warning("could not read the offsets of %s (%r); asking again", sorted(tps), e)
                await asyncio.sleep(BOUNDS_RETRY_S)
        async with self._lock:  # a step decides on one view of what may be released
            if epoch != self.offsets.epoch:  # a later assignment asks for its own (a re-read starts from these)
                return
            for tp in tps:
                commit = committed.get(TopicPartition(tp.topic, tp.partition))
                request = self.offsets.set_bounds(tp, starts[tp] or 0, ends[tp] or 0, commit, asked)
                if request is not None:
                    asyncio.ensure_future(self._reread(request))
            try:
                await self._release()  # what was held for want of them
            except Exception:
                log.exception("release failed")  # the timer tries again

    async def _bounds_of(self, tps: set[TP]) -> tuple[Any, Any, dict[TopicPartition, int]]:
        starts = await self.app.consumer.earliest_offsets(*tps)
        ends = await self.app.consumer.highwaters(*tps)
        return starts, ends, await self._committed_of(tps)

    async def _committed_of(self, tps: set[TP]) -> dict[TopicPartition, int]:
        """The group's committed offsets of ``tps``, read stable (``committed.py``)."""
        return await committed_offsets(
            self.settings.bootstrap_servers(),
            self.settings.app_id,
            [TopicPartition(tp.topic, tp.partition) for tp in tps],
            security=security_kwargs(self.settings),
        )

    def _update_lag(self) -> None:
        lag: dict[str, int] = {}
        for tp in self.app.consumer.assignment():
            if tp.topic not in self.input_names:
                continue
            highwater = self._highwater(tp)
            if highwater is not None:
                received = self.offsets.position(tp) or 0
                lag[tp.topic] = lag.get(tp.topic, 0) + max(0, highwater - received)
        for topic, value in lag.items():
            self.metrics.consumer_lag.labels(topic=topic).set(value)


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (then it stops cleanly, committing what is done)."""
    runtime = WorkerRuntime(settings)  # loads the rules first: a bad ruleset refuses to start
    asyncio.run(ensure_topics(settings))  # inputs co-partitioned, with our retention/compaction settings
    worker = faust.Worker(runtime.app, loglevel=settings.loglevel)
    settle_heap()  # the rules, models and libraries loaded above are kept for the process's life
    worker.execute_from_commandline()
