"""Offset bookkeeping of the worker, per input topic-partition: what was delivered, what is done, what may be
acknowledged, and which offsets must be read directly because Faust skipped or stopped delivering them.

Pure: no Kafka, no Faust, no clock (``now`` is passed in), no I/O. The worker reports what happens and does
what the answers ask: acknowledge these events, re-read these ranges. The contract:

- a message below where the partition's delivery starts (the group's committed offset) was decided before
  this assignment and is not taken again, whatever the fetcher delivers (its own committed offset may be
  read a few milliseconds before the last owner's final transaction became visible: ``committed.py``);
- acknowledgements come out per topic-partition strictly in offset order, starting at the committed offset
  (none before it is known), and never across a gap that has waited less than ``gap_patience_s``;
- a message delivered twice (by Faust and by a direct read) is decided once;
- a delivery beyond the next expected offset asks for the skipped range to be re-read, and the partition's
  releases wait (``blocked``) until that re-read has finished;
- an input with messages on the broker that has delivered nothing for ``stall_s`` is re-read the same way,
  and so is one whose end nobody has heard of for ``fresh_s`` (its fetches fail): to the broker's end;
- what the merge knows of an input's end (``end``) is the furthest end heard of and *when*: an input counts
  as read through for an event only if it reached an end heard of no earlier than the event's own input was
  (``EventTimeMerger.pop_ready``), so a stale high-water mark (the fetcher's last answer before a partition's
  fetches began to fail) is no evidence that nothing more is there;
- an input is re-read when its end has not been heard of within ``fresh_s``.

Why Faust needs all this is in docs/kafka_runtime.md.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

log = logging.getLogger("livewatch.worker.offsets")

NEVER = float("-inf")  # when an end nobody has heard of was heard of

#: a topic-partition as the runtime names it (Faust's TP in the worker, anything hashable in a test)
TP = TypeVar("TP", bound=Hashable)


@dataclass(slots=True)
class Pending:
    """One message taken for a decision and not yet acknowledged."""

    offset: int
    event: Any  # what to hand back to acknowledge it; None for a message read directly (nothing to ack)
    done: bool = False  # decided, its outputs on the broker
    #: taken before the partition's committed offset was known, and below it: decided before this assignment
    #: (``set_bounds`` drops it from the queue; whoever holds it must not decide it)
    decided_before: bool = False

    def __lt__(self, other: Pending) -> bool:  # for bisect: queues are kept in offset order
        return self.offset < other.offset


@dataclass(frozen=True)
class Reread(Generic[TP]):
    """A request to read ``[start, end)`` of ``tp`` directly and report it with ``OffsetTracker.reread_done``."""

    tp: TP
    start: int
    end: int
    epoch: int  # the assignment it belongs to; a late answer for an older one is ignored
    to_end: bool = False  # read on to the broker's end at the time of the read (a stalled input), past ``end``


@dataclass(slots=True)
class Receipt:
    """What to do with a delivered message."""

    pending: Pending | None = None  # its entry if it is to be decided (None: taken already), done once decided
    ack_now: Any = None  # an event to acknowledge at once (a copy of a message acknowledged already)
    reread: Reread[Any] | None = None  # offsets Faust skipped before it

    @property
    def take(self) -> bool:
        return self.pending is not None


@dataclass(slots=True)
class _Partition:
    queue: deque[Pending] = field(default_factory=deque)  # taken, not yet acknowledged, in offset order
    last: int | None = None  # highest offset taken
    next_ack: int | None = None  # next offset to acknowledge
    gap_since: float | None = None  # when the head of the queue began to wait at a gap
    gaps: set[tuple[int, int]] = field(default_factory=set)  # skipped ranges being re-read: releases wait
    read_to: int = 0  # a direct read covered the offsets below this, records or not (a tail of commit markers)


class OffsetTracker(Generic[TP]):
    def __init__(self, gap_patience_s: float = 30.0, stall_s: float = 10.0, fresh_s: float = 3.0) -> None:
        self.gap_patience_s = gap_patience_s
        self.stall_s = stall_s
        self.fresh_s = fresh_s
        self.epoch = 0  # bumped on every assignment and revocation
        self._assigned: frozenset[TP] = frozenset()
        self._parts: dict[TP, _Partition] = {}
        self._rereading: set[TP] = set()  # a re-read is under way (survives a revocation until it answers)
        self._progress_at: dict[TP, float] = {}  # when each assigned input last delivered (or was assigned)
        #: (log start, end, the group's committed offset or None) asked of the broker at assignment
        self._bounds: dict[TP, tuple[int, int, int | None]] = {}
        #: the furthest end of each input the broker told us of itself (at assignment, or a direct read to the
        #: end), and when; the consumer's high-water marks are passed in by the caller, fresh or not at all
        self._ends: dict[TP, tuple[int, float]] = {}

    # -- assignment ------------------------------------------------------------------------------

    def assign(self, tps: Iterable[TP], now: float) -> None:
        self.epoch += 1
        self._assigned = frozenset(tps)
        self.restart_stall_clocks(now)
        self._bounds = {}
        self._ends = {}

    def restart_stall_clocks(self, now: float) -> None:
        """Count every assigned input's silence from ``now``: Faust delivers nothing while it recovers the
        tables after an assignment, and that wait is not a stall."""
        self._progress_at = dict.fromkeys(self._assigned, now)

    def revoke(self) -> None:
        """The assignment is being revoked: answers to its re-reads are void from now on. What is taken
        stays until ``clear``, so that decisions already under way can still be acknowledged."""
        self.epoch += 1
        self._assigned = frozenset()

    def clear(self) -> None:
        """Forget everything taken: un-acknowledged messages are read again from the committed offsets."""
        self._parts.clear()

    def set_bounds(self, tp: TP, start: int, end: int, committed: int | None, now: float) -> Reread[TP] | None:
        """What the broker said at assignment: the log's start and end, and the group's committed offset (None:
        the group never committed to ``tp``). Messages taken before it was known were held (``blocked``); if the
        first of them is past where delivery starts, the offsets in between are to be re-read (returned)."""
        self._bounds[tp] = (start, end, committed)
        self._ends[tp] = (end, now)
        part = self._parts.get(tp)
        if part is None or not part.queue or part.next_ack is not None:
            return None
        expected = self._start(tp)
        if expected is not None and part.queue[0].offset < expected:
            self._drop_decided(part, expected)
            if not part.queue:
                return None
        first = part.queue[0].offset
        if expected is None or first <= expected:
            return None
        return self._request(tp, expected, first, blocking=True)

    # -- positions -------------------------------------------------------------------------------

    def position(self, tp: TP) -> int | None:
        """The next offset to receive: after the last one taken, else where delivery starts (None: unknown)."""
        part = self._parts.get(tp)
        if part is not None and part.last is not None:
            return part.last + 1
        return self._start(tp)

    def _start(self, tp: TP) -> int | None:
        """Where the consumer's delivery of ``tp`` starts, as the broker answered for this assignment
        (``set_bounds``): the group's committed offset, or, with none committed (or one below the log's start,
        retention having passed it), the log's start — the consumer resets to the earliest offset. None until
        answered.

        Not Faust's ``_committed_offset``: the worker's batches of a new assignment flow seconds before Faust's
        seek fills it, and an entry of an earlier assignment can outlive its revocation there. Taking that
        silence for "never committed" once re-read and decided again every message a taken-over partition had
        decided (docs/kafka_runtime.md, "Whose committed offset")."""
        bounds = self._bounds.get(tp)
        if bounds is None:
            return None
        start, _, committed = bounds
        return start if committed is None else max(committed, start)

    def end(self, tp: TP, fetched: tuple[int, float] | None) -> tuple[float, bool]:
        """What the merge knows of the end of ``tp``: when it was last heard of, and whether ``tp`` is read up to
        it. The end is the furthest of ``fetched`` (the consumer's high-water mark and when a fetch answered it,
        on this tracker's clock; None if none did), the broker's answer at assignment and the end a direct read
        asked for; it was heard of when the latest of them was. Unknown bounds are neither heard of nor reached
        (a fetcher reports 0 for a partition it has not fetched yet, which must not read as "empty")."""
        bounds = self._bounds.get(tp)
        if bounds is None:
            return NEVER, False
        end, at = self._ends.get(tp, (0, NEVER))
        if fetched is not None:
            end, at = max(end, fetched[0]), max(at, fetched[1])
        position = self.position(tp)
        return at, self._reached(tp, bounds[0] if position is None else position) >= end

    def start_known(self, tp: TP) -> bool:
        """Whether the broker has answered where the delivery of ``tp`` starts in this assignment (``set_bounds``)."""
        return tp in self._bounds

    def blocked(self, tps: Iterable[TP]) -> bool:
        """Whether skipped offsets of any of ``tps`` are being re-read, or one has delivered before where its
        delivery starts is known (offsets before its first may be missing): their partition must not release."""
        return any(
            part.gaps or (part.last is not None and tp not in self._bounds)
            for tp in tps
            if (part := self._parts.get(tp)) is not None
        )

    # -- deliveries ------------------------------------------------------------------------------

    def receive(self, tp: TP, offset: int, event: Any, now: float) -> Receipt:
        """A message Faust delivered, on an assigned input."""
        part = self._parts.get(tp)
        if part is None:  # not setdefault: that would build a partition record (a deque, a set) per message
            part = self._parts[tp] = _Partition()
        last = part.last
        if last is None or offset <= last:  # the first delivery, or seen this far already
            start = self._start(tp)
            if start is not None and offset < start:  # decided before this assignment: acknowledged as a copy
                return Receipt(ack_now=event)
            if last is not None:
                taken = next((p for p in part.queue if p.offset == offset), None)
                if taken is not None:  # taken already (by a direct read, say): acknowledged with that copy, in order
                    if taken.event is None:
                        taken.event = event
                    return Receipt()
                if not any(a <= offset < b for a, b in part.gaps):  # else a skipped one, before its re-read got it
                    if part.next_ack is not None and offset < part.next_ack:
                        return Receipt(ack_now=event)
        reread = None
        expected = last + 1 if last is not None else self._start(tp)
        if expected is not None and offset > expected:
            reread = self._request(tp, expected, offset, blocking=True)
        pending = Pending(offset, event)
        queue = part.queue
        if not queue or queue[-1].offset < offset:  # the usual case: the next offset, at the end
            queue.append(pending)
        else:
            bisect.insort(queue, pending)
        part.last = offset if last is None or offset > last else last  # as _taken, inlined (hot)
        self._progress_at[tp] = now
        return Receipt(pending=pending, reread=reread)

    def reread_done(
        self,
        request: Reread[TP],
        offsets: Iterable[int],
        now: float,
        reached: int | None = None,
        end: int | None = None,
        asked: float | None = None,
    ) -> list[Pending]:
        """The direct read of ``request`` found ``offsets`` and read every offset below ``reached``, of a range
        that ended at ``end`` (None: the request's end, read whole; for a read to the end, the broker's end when
        the read began, at ``asked``, None: ``now``): entries for those not taken yet, to decide (in the order
        given). Empty when the assignment changed meanwhile or ``tp`` is no longer ours."""
        tp = request.tp
        self._rereading.discard(tp)
        if request.epoch != self.epoch:
            return []
        part = self._parts.get(tp)
        if part is not None:
            part.gaps.discard((request.start, request.end))  # whatever was found, stop waiting for it
            # read to there: an input whose last offsets hold no record a consumer returns (a transaction's
            # commit marker) is caught up at the end, not waited for by the merge forever
            end = request.end if end is None else end
            reached = end if reached is None else reached
            part.read_to = max(part.read_to, reached)
            if request.to_end:  # the broker's end when the read began, heard of then (not when the read ended)
                known, at = self._ends.get(tp, (0, NEVER))
                self._ends[tp] = (max(end, known), max(at, now if asked is None else asked))
        offsets = list(offsets)
        if not offsets or part is None or tp not in self._assigned:
            return []
        have = {p.offset for p in part.queue}
        start = self._start(tp)  # below it: decided before this assignment (a re-read asked before it was known)
        entries = [
            Pending(offset, None) for offset in offsets if offset not in have and (start is None or offset >= start)
        ]
        for entry in entries:
            bisect.insort(part.queue, entry)
            self._taken(part, tp, entry.offset, now)
        return entries

    def stalled(self, tps: Iterable[TP], highwater: Callable[[TP], int | None], now: float) -> list[Reread[TP]]:
        """Re-reads, to the broker's end, of those ``tps`` that have delivered nothing for ``stall_s`` while the
        broker holds messages beyond their position or their end has not been heard of for ``fresh_s``
        (``highwater``: as for ``caught_up``); each blocks its partition like skipped offsets do."""
        out = []
        for tp in tps:
            if tp in self._rereading or now - self._progress_at.get(tp, now) < self.stall_s:
                continue
            # the consumer knows no high-water mark of a partition it never fetched: the end asked of the broker
            # at assignment stands in (a restarted worker once decided nothing for 94 s, its inputs never fetched).
            # An input with no commit starts at the log's start (``_start``): without it the stall net never fired
            # for one — the restart test's silent worker decided nothing for 90 s (stops 35–37)
            start = self.position(tp)
            if start is None:
                continue
            end, fresh = self._end(tp, highwater(tp), now)
            if fresh and self._reached(tp, start) >= end:
                continue
            log.warning(
                "%s has delivered nothing for %.0f s with %s: reading it directly to the broker's end",
                tp,
                now - self._progress_at[tp],
                f"offsets {start}..{end - 1} on the broker" if start < end else "its end not heard of lately",
            )
            self._progress_at[tp] = now
            out.append(self._request(tp, start, max(start, end), blocking=True, to_end=True))
        return out

    # -- acknowledgements ------------------------------------------------------------------------

    def acks(self, now: float) -> tuple[list[Any], list[Reread[TP]]]:
        """Pop every done message that may be acknowledged now: the events to acknowledge, in order per
        topic-partition, and re-reads of gaps found before a done head (they do not block releases)."""
        events: list[Any] = []
        rereads: list[Reread[TP]] = []
        for tp, part in self._parts.items():
            queue = part.queue
            while queue and queue[0].done:
                head = queue[0]
                expected = part.next_ack if part.next_ack is not None else self._start(tp)
                if expected is None:  # where delivery starts is not known yet: the head may be past it
                    break
                if head.offset > expected:
                    if part.gap_since is None:
                        part.gap_since = now
                    waited = now - part.gap_since
                    if waited < self.gap_patience_s:
                        if tp not in self._rereading:
                            rereads.append(self._request(tp, expected, head.offset, blocking=False))
                        break
                    log.warning("acknowledging %s@%d past a gap from %d", tp, head.offset, expected)
                part.gap_since = None
                queue.popleft()
                part.next_ack = head.offset + 1
                if head.event is not None:
                    events.append(head.event)
        return events, rereads

    def next_acks(self) -> dict[TP, int]:
        """Per topic-partition, the offset after the last one acknowledged (where a restart resumes)."""
        return {tp: part.next_ack for tp, part in self._parts.items() if part.next_ack is not None}

    # -- internals -------------------------------------------------------------------------------

    def _end(self, tp: TP, highwater: int | None, now: float) -> tuple[int, bool]:
        """The furthest end of ``tp`` known, and whether it was heard of within ``fresh_s``."""
        end, at = self._ends.get(tp, (0, NEVER))
        if highwater is not None:
            return max(end, highwater), True
        return end, now - at < self.fresh_s

    def _reached(self, tp: TP, position: int) -> int:
        """How far ``tp`` is read: its position, or further where a direct read found nothing to take."""
        part = self._parts.get(tp)
        return position if part is None else max(position, part.read_to)

    @staticmethod
    def _drop_decided(part: _Partition, start: int) -> None:
        """Drop the messages below ``start`` taken before it was known: decided before this assignment. A re-read
        of offsets all below it is not waited for (its answer takes nothing below it: ``reread_done``)."""
        while part.queue and part.queue[0].offset < start:
            part.queue.popleft().decided_before = True
        part.gaps = {(a, b) for a, b in part.gaps if b > start}
        if part.last is not None and part.last < start:
            part.last = start - 1  # what follows is expected from ``start`` on

    def _taken(self, part: _Partition, tp: TP, offset: int, now: float) -> None:
        part.last = offset if part.last is None else max(part.last, offset)
        self._progress_at[tp] = now

    def _request(self, tp: TP, start: int, end: int, blocking: bool, to_end: bool = False) -> Reread[TP]:
        if blocking:
            self._parts.setdefault(tp, _Partition()).gaps.add((start, end))
        self._rereading.add(tp)
        return Reread(tp, start, end, self.epoch, to_end)
