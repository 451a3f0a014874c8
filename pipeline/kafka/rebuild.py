"""The rebuild coordinator: holds each newly assigned partition closed until the state of its non-durable
detectors (sliding windows) is rebuilt from its recently decided input, then opens it.

A rebuild reads the partition's history (``reader.read_history``), feeds it to those detectors alone
(``Engine.warm``) and hands the state to the store; decided events that come after the next event to
decide are kept and given out at their place in the merge (``decided_before``). A rebuild that fails or
times out is logged and counted, and the partition opens with empty windows: the worker goes on.
An assignment or revocation makes every rebuild under way stale; a stale rebuild changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import TopicPartition

from pipeline.engine import Engine, RoomState, StateStore
from pipeline.kafka.reader import History
from pipeline.metrics import Metrics
from pipeline.ruleset import Ruleset
from schemas.events import BaseEvent

log = logging.getLogger("livewatch.worker.rebuild")

REBUILD_CHUNK = 500  # events fed per step, between which other partitions' events flow
REBUILD_RETRY_S = 1.0

#: reads one partition number's history: (topic-partitions, history_ms, kinds) → History
HistoryReader = Callable[[list[TopicPartition], int, frozenset[str]], Awaitable[History]]
OrderKey = tuple[int, int, str, int]


class RebuildCoordinator:
    def __init__(
        self,
        read: HistoryReader,
        engine: Engine,
        store: StateStore,
        metrics: Metrics,
        *,
        input_topic: Callable[[str], str | None],
        lock: asyncio.Lock,
        on_open: Callable[[int], Awaitable[None]],
        timeout_s: float,
        retry_s: float = REBUILD_RETRY_S,
        chunk: int = REBUILD_CHUNK,
    ) -> None:
        """``input_topic(kind)``: the input topic of an event kind. ``lock`` is the one the worker decides
        under: state is handed over and the partition opened while holding it, then ``on_open(partition)``
        is awaited, still holding it (the worker releases what waited)."""
        self.read = read
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.input_topic = input_topic
        self.lock = lock
        self.on_open = on_open
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.chunk = chunk
        self.generation = 0  # bumped on every assignment and revocation
        self._partitions: set[int] = set()
        self._open: set[int] = set()
        self._unrebuilt: set[int] = set()  # opened after a failed rebuild: running on empty windows
        self._ahead: dict[int, deque[tuple[OrderKey, BaseEvent]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what the worker asks ------------------------------------------------------------------------

    def is_open(self, partition: int) -> bool:
        return partition in self._open

    @property
    def open(self) -> frozenset[int]:
        return frozenset(self._open)

    @property
    def unrebuilt(self) -> frozenset[int]:
        return frozenset(self._unrebuilt)

    def has_ahead(self, partition: int) -> bool:
        """Whether the rebuild of ``partition`` still holds decided events not given out (``decided_before``)."""
        return bool(self._ahead.get(partition))

    def decided_before(self, partition: int, key: OrderKey) -> list[BaseEvent]:
        """The rebuild's decided events that the merge order puts before ``key`` and that were not given
        out yet: warm them into the store before deciding the event at ``key``."""
        ahead = self._ahead.get(partition)
        passed: list[BaseEvent] = []
        while ahead and ahead[0][0] < key:
            passed.append(ahead.popleft()[1])
        return passed

    # -- the assignment ------------------------------------------------------------------------------

    def assign(self, partitions: Iterable[int], ruleset: Ruleset) -> None:
        """Start a rebuild of every partition (kept or new: the room cache went with the revocation), or
        open them all at once when no running detector needs one. Call before anything of them is released."""
        self.generation += 1
        self._partitions = set(partitions)
        topics = sorted({t for k in ruleset.rebuild_kinds if (t := self.input_topic(k)) is not None})
        if not topics or ruleset.rebuild_history_ms <= 0:
            self._open = set(self._partitions)
            return
        self._open = set()
        self.metrics.partitions_rebuilding.set(len(self._partitions))
        for partition in sorted(self._partitions):
            tps = [TopicPartition(t, partition) for t in topics]
            task = asyncio.ensure_future(
                self.rebuild(partition, tps, ruleset.rebuild_kinds, ruleset.rebuild_history_ms)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def revoke(self) -> None:
        """Make the rebuilds under way stale and stop them."""
        self.generation += 1
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()

    def clear(self) -> None:
        """Close every partition and drop what was kept (with the revocation, under the worker's lock)."""
        self._partitions = set()
        self._open.clear()
        self._unrebuilt.clear()
        self._ahead.clear()
        self.metrics.partitions_rebuilding.set(0)
        self.metrics.partitions_unrebuilt.set(0)

    async def wait(self) -> None:
        """Wait until the rebuilds under way have ended."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one rebuild ---------------------------------------------------------------------------------

    async def rebuild(self, partition: int, tps: list[TopicPartition], kinds: frozenset[str], history_ms: int) -> None:
        """Rebuild one partition for the current assignment and open it. Never raises but when cancelled."""
        generation = self.generation
        started = time.monotonic()
        rooms: dict[str, RoomState] = {}
        history: History | None = None
        read_s = 0.0
        deadline = started + self.timeout_s
        try:
            while True:  # a broker error right after a rebalance (coordinator loading, say) is retried
                try:
                    history = await asyncio.wait_for(
                        self.read(tps, history_ms, kinds), max(0.1, deadline - time.monotonic())
                    )
                    break
                except (TimeoutError, asyncio.CancelledError):
                    raise
                except Exception as e:
                    if time.monotonic() + self.retry_s >= deadline or generation != self.generation:
                        raise
                    log.warning("re-reading the input of partition %d failed (%r); trying again", partition, e)
                    await asyncio.sleep(self.retry_s)
            read_s = time.monotonic() - started
            for i in range(0, len(history.events), self.chunk):
                if generation != self.generation:
                    return  # revoked meanwhile: the next assignment rebuilds again
                self.engine.warm(history.events[i : i + self.chunk], rooms)
                await asyncio.sleep(0)  # let the other partitions' events through
            failed = False
        except asyncio.CancelledError:
            raise
        except Exception as e:
            failed = True
            log.error(
                "rebuilding the state of partition %d failed after %.1f s (%r); it goes on with empty "
                "sliding windows for its rooms",
                partition,
                time.monotonic() - started,
                e,
            )
        async with self.lock:
            if generation != self.generation:
                return
            if history is not None and not failed:
                self.store.adopt(rooms)
                self._ahead[partition] = deque(history.ahead)
            else:
                self._unrebuilt.add(partition)
            self._open.add(partition)
            took = time.monotonic() - started
            self.metrics.rebuilds.labels(result="failed" if failed else "ok").inc()
            self.metrics.rebuild_seconds.observe(took)
            self.metrics.partitions_rebuilding.set(len(self._partitions - self._open))
            self.metrics.partitions_unrebuilt.set(len(self._unrebuilt))
            if history is not None and not failed:
                log.info(
                    "partition %d: rebuilt %d rooms from %s in %.2f s (read %.2f s)",
                    partition,
                    len(rooms),
                    history.describe(),
                    took,
                    read_s,
                )
            await self.on_open(partition)
