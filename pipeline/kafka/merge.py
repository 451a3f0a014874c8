"""Event-time merge of co-partitioned input topics (a watermark, in stream-processing terms).

Detectors depend on order across kinds (a slimming claim is judged by the product on air), so the worker
merges, per partition number, the events of every input topic by event time: an event is released once every
input topic-partition has delivered one at least as late or was read to an end heard of no earlier than the
event's own input was, or once the partition's event time has moved ``max_lateness_ms`` past it, or after
``max_wait_s`` of wall time. Ties break by the publisher's
sequence number, then topic and offset, so Kafka decides in the embedded runtime's order.

Pure: no Kafka here. The worker feeds it and asks what is ready. Operation: docs/kafka_operations.md.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
#: a topic-partition, as the runtime names it (Faust's TP in the worker, anything hashable in a test)
TP = TypeVar("TP", bound=Hashable)

NO_SEQ = 1 << 62  # events without a publisher sequence sort after those with one, at equal ts

#: what the caller knows of an input's end (``EventTimeMerger.pop_ready``): when it was last heard of, and
#: whether the input is read up to it
End = tuple[float, bool]


def order_key(ts: int, seq: int | None, topic: str, offset: int) -> tuple[int, int, str, int]:
    """The order in which a partition's events are decided: event time, then the publisher's sequence,
    then topic and offset. A rebuild of detector state after a rebalance sorts the events it re-reads
    with the same key, so it feeds them in the order the merge once released them."""
    return (ts, NO_SEQ if seq is None else seq, topic, offset)


class DeliveryClock:
    """The merge's clock for its wall-time bound: wall time that runs only while messages are delivered.

    The bound is there for an input the consumer stopped delivering while the others go on (faust-streaming
    does that after some rebalances). Counted in plain wall time, it also fired when *nothing* was delivered
    — the broker away for seconds, or a step that waited seconds on slow output sends — and released held
    events before the older ones of an input the broker still held unread: decided out of order, their
    alerts and actions unlike the replay's (the fault suite on 20,000 events: broker ×3 240 records
    different; slow-send and failing-send 179 different, 35 lost, 36 extra). A pause between two
    deliveries counts at most ``max_gap_s``, so such an outage or slow step moves the merge's clock by that
    much, while a steady flow moves it as the wall does. An input nothing is delivered from at all is read
    directly by the offset tracker after its own (wall-clock) stall time."""

    def __init__(self, max_gap_s: float = 1.0) -> None:
        self.max_gap_s = max_gap_s
        self._elapsed = 0.0  # merge time up to the last delivery
        self._last_wall: float | None = None

    def delivered(self, wall_s: float) -> None:
        """Messages were delivered at ``wall_s``."""
        self._elapsed = self.now(wall_s)
        self._last_wall = wall_s

    def now(self, wall_s: float) -> float:
        if self._last_wall is None:
            return self._elapsed
        return self._elapsed + min(max(0.0, wall_s - self._last_wall), self.max_gap_s)


# A held event is a list [key, arrival number, arrived_s, item]: the heap compares lists in C (a dataclass's
# generated __lt__ is a Python call per comparison, ≈ log n of them per push and pop), the key decides, and
# the arrival number keeps two equal keys from ever comparing their items. A list, not a tuple: restart_wait
# moves arrived_s in place. The last element is the event's input.
_KEY, _ARRIVED, _ITEM, _TP = 0, 2, 3, 4


class EventTimeMerger(Generic[TP, T]):
    """Holds events of one partition number until every input of it has moved past their event time."""

    def __init__(self, inputs: Callable[[], set[TP]], max_lateness_ms: int = 60_000, max_wait_s: float = 30.0) -> None:
        self._inputs = inputs  # the topic-partitions currently feeding this merger
        self.max_lateness_ms = max_lateness_ms
        self.max_wait_s = max_wait_s
        self._heap: list[list[Any]] = []
        self._progress: dict[TP, int] = {}  # latest event time delivered per topic-partition
        self._tiebreak = itertools.count()
        self._delivered_s: dict[TP, float] = {}  # wall time of each input's latest delivery
        self._since_s: float | None = None  # when this merger began to wait (first push, or restart_wait)
        #: events released by a bound rather than in order, by bound ("lateness" / "wait"); a runtime reads
        #: and resets it for its metrics
        self.forced: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._heap)

    def push(
        self,
        tp: TP,
        ts: int,
        item: T,
        now_s: float,
        seq: int | None = None,
        topic: str = "",
        offset: int | None = None,
        key: tuple[int, int, str, int] | None = None,
    ) -> None:
        """Hold ``item``; its place is ``order_key(ts, seq, topic, offset)``, or ``key`` when the caller has
        computed that already."""
        self._progress[tp] = max(self._progress.get(tp, ts), ts)
        self._delivered_s[tp] = now_s
        if self._since_s is None:
            self._since_s = now_s
        n = next(self._tiebreak)
        if key is None:
            key = order_key(ts, seq, topic, n if offset is None else offset)
        heapq.heappush(self._heap, [key, n, now_s, item, tp])

    def pop_ready(self, ends: Callable[[TP], End], now_s: float, wait_for_lagging: bool = False) -> list[T]:
        """Every held event that no input can still precede, in event-time order.

        ``ends(tp)``: when the end of input ``tp`` was last heard of (a fetch's answer, a direct read), and whether
        ``tp`` is read up to it. An input behind an event in event time is past it only if it is read to an end
        heard of *no earlier than the event's own input's*: the event was on the broker by then, and the
        publisher writes in event-time order, so what the slower input holds before the event was there too.
        A freshness window ("heard of within 3 s") instead let a message written to the slower input just after
        its end was heard be decided after a later event of another input (CI, stop 45: an input withheld for
        25 s, read directly, then taken as caught up for 3 s; its AI-label gap reported at a later event).

        ``wait_for_lagging``: an input that is not read to such an end (the broker holds messages of it not yet
        delivered, or may) and still delivering (something within ``max_wait_s``) is waited for beyond both
        bounds. The consumer, not the producer, is behind there — a fetch hands one topic's messages over far
        ahead of another's in event time, or one partition's fetches fail for seconds after a broker restart
        while the rest are served — so the bounds would release events before older ones on their way. Only a
        stalled input is forced past, and the worker reads a stalled input directly first (its offset tracker,
        after 10 s): ``max_wait_s`` must be longer than that, or the merge decides past events the direct read
        was about to bring (CI's broker fault run at 5 s: 918 AI-label gaps reported at a later event, 692
        price alerts the replay never had).

        ``ends`` is asked once per input per call: a batch's release costs one look at each input, not one per
        event."""
        out: list[T] = []
        if not self._heap:
            return out
        inputs = self._inputs()
        newest = max(self._progress.values(), default=0)
        known = {tp: ends(tp) for tp in inputs}
        latest = max((heard for heard, _ in known.values()), default=0.0)
        # The inputs that can still precede some event, with the event time each has reached: below the lowest,
        # nothing waits. An input read to the latest end heard of precedes nothing it has not delivered.
        behind = [
            (self._progress.get(tp, -1), tp, heard if reached else None)
            for tp, (heard, reached) in known.items()
            if not reached or heard < latest
        ]
        floor = min((progress for progress, _, _ in behind), default=None)
        while self._heap:
            head = self._heap[0]
            ts = head[_KEY][0]
            # No known inputs (the assignment is not known yet) means unknown, not "all caught up".
            if not inputs or (floor is not None and ts > floor):
                own = known.get(head[_TP], (float("inf"), False))[0]
                blocking = [tp for progress, tp, heard in behind if progress < ts and (heard is None or heard < own)]
                if not inputs or blocking:
                    if wait_for_lagging and any(not self._stalled(tp, now_s) for tp in blocking):
                        break
                    if ts <= newest - self.max_lateness_ms:
                        self.forced["lateness"] += 1
                    elif now_s - head[_ARRIVED] >= self.max_wait_s:
                        self.forced["wait"] += 1
                    else:
                        break
            out.append(heapq.heappop(self._heap)[_ITEM])
        return out

    def restart_wait(self, now_s: float) -> None:
        """Count the wall-time wait bound of every held event from ``now_s``: for a partition whose
        releases were held back (while its detector state was rebuilt), so that the hold does not make
        its events look stalled and force them out before the other input topics have caught up."""
        for held in self._heap:
            held[_ARRIVED] = now_s
        self._since_s = now_s
        self._delivered_s = dict.fromkeys(self._delivered_s, now_s)

    def _stalled(self, tp: TP, now_s: float) -> bool:
        """``tp`` has delivered nothing for ``max_wait_s`` (counted from when the merger began to wait
        if it never delivered)."""
        last = self._delivered_s.get(tp, self._since_s if self._since_s is not None else now_s)
        return now_s - last >= self.max_wait_s

    def clear(self) -> None:
        """Drop everything held (partitions revoked): those events were not acknowledged, so whoever
        owns the partitions next reads them again."""
        self._heap.clear()
        self._progress.clear()
        self._delivered_s.clear()
        self._since_s = None
