"""A room's comment bookkeeping for the flood detector: the comment ids seen, the room's messages per time
bucket and, per viewer, the buckets it commented in — what every viewer comment updates.

``CommentWindow`` is the compiled class of ``detectors/_comment_window.pyx`` when it is built (setup.py), else
``PyCommentWindow`` below: the reference, which the compiled one is tested to match call for call
(tests/test_comment_window.py). Why compiled: these three tables were 7 % of the embedded runtime's instructions
per event (bench_instructions, stop 48), most of it the interpreter stepping through a few dictionary operations
per comment.

Every rule is a function of the last ``window_ms`` of input (a rebuild reads only that much), bounded in count
(``take`` does the three for one comment in one call: the flood detector's hot path):

- ``first_delivery``: an id is remembered in arrival order; the oldest are forgotten once older than the window
  or beyond ``max_ids``.
- ``count``: a bucket's messages; the buckets at or before the window's start are dropped when a new one begins.
- ``remember_viewer``: a viewer's buckets and how it commented in each (1 ordinary, 2 commercial, 3 both); viewers
  are kept in order of their last comment, the least recent forgotten once their latest bucket left the window
  or beyond ``max_viewers``. Not "when it first came": that can be older than the window, which is all a rebuild
  re-reads.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator

#: a bound above any bucket (event times are ms since the epoch; a bucket is an event time rounded down)
NO_BOUND = (1 << 62) - 1


class PyCommentWindow:
    """The comment bookkeeping in Python: the reference of the compiled ``_comment_window.CommentWindow``."""

    __slots__ = ("_seen", "_traffic", "_viewers")

    def __init__(self) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()  # comment id → ts, in arrival order
        self._traffic: dict[int, int] = {}  # bucket start → room messages
        self._viewers: OrderedDict[str, dict[int, int]] = OrderedDict()  # least recently active first

    def take(
        self,
        event_id: str,
        user: str,
        ts: int,
        bucket_ms: int,
        window_ms: int,
        max_ids: int,
        commercial: bool,
        max_viewers: int,
    ) -> int | None:
        """A viewer's comment, in one call: None when it was delivered before (nothing is counted); else counted in
        its bucket (``ts`` rounded down to ``bucket_ms``), which is returned, and, when ``max_viewers`` is not 0,
        remembered of its viewer."""
        if bucket_ms <= 0:
            raise ValueError(f"buckets of {bucket_ms} ms")
        if not self.first_delivery(event_id, ts, window_ms, max_ids):
            return None
        bucket = ts // bucket_ms * bucket_ms
        self.count(bucket, ts, window_ms)
        if max_viewers > 0:
            self.remember_viewer(user, bucket, ts, commercial, window_ms, max_viewers)
        return bucket

    def first_delivery(self, event_id: str, ts: int, window_ms: int, max_ids: int) -> bool:
        _check_window(window_ms)
        seen = self._seen
        if event_id in seen:
            return False
        seen[event_id] = ts
        horizon = ts - window_ms
        while seen and (len(seen) > max_ids or next(iter(seen.values())) <= horizon):
            seen.popitem(last=False)
        return True

    def count(self, bucket: int, ts: int, window_ms: int) -> None:
        _check_window(window_ms)
        traffic = self._traffic
        n = traffic.get(bucket)
        if n is None:
            horizon = ts - window_ms
            for b in [b for b in traffic if b <= horizon]:
                del traffic[b]
            n = 0
        traffic[bucket] = n + 1

    def remember_viewer(
        self, user: str, bucket: int, ts: int, commercial: bool, window_ms: int, max_viewers: int
    ) -> None:
        _check_window(window_ms)
        horizon = ts - window_ms
        viewers = self._viewers
        buckets = viewers.get(user)
        if buckets is None:
            buckets = viewers[user] = {}
        else:
            viewers.move_to_end(user)  # most recent last
            if buckets and min(buckets) <= horizon:
                for b in [b for b in buckets if b <= horizon]:
                    del buckets[b]
        buckets[bucket] = buckets.get(bucket, 0) | (2 if commercial else 1)
        while viewers and (len(viewers) > max_viewers or max(next(iter(viewers.values())), default=horizon) <= horizon):
            viewers.popitem(last=False)

    # -- reading -------------------------------------------------------------------------------------

    def traffic_sum(self, low: int, high: int = NO_BOUND) -> int:
        """The room's messages in the buckets from ``low`` to ``high``, both included."""
        return sum(n for b, n in self._traffic.items() if low <= b <= high)

    def first_bucket_after(self, horizon: int) -> int | None:
        """The earliest bucket after ``horizon``, or None."""
        return min((b for b in self._traffic if b > horizon), default=None)

    def viewer_buckets(self, user: str) -> dict[int, int]:
        """The viewer's buckets and how it commented in each (a copy; empty for a viewer not remembered)."""
        return dict(self._viewers.get(user, {}))

    @property
    def traffic(self) -> dict[int, int]:
        return dict(self._traffic)

    def seen_count(self) -> int:
        return len(self._seen)

    def viewer_count(self) -> int:
        return len(self._viewers)

    # -- as data -------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain data, in each table's order: what the state's JSON holds."""
        return {
            "seen": [[i, ts] for i, ts in self._seen.items()],
            "traffic": [[b, n] for b, n in self._traffic.items()],
            "viewers": [[u, [[b, how] for b, how in buckets.items()]] for u, buckets in self._viewers.items()],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> PyCommentWindow:
        """The window of ``to_state``'s data; a number out of the compiled window's range (int64; a mark 0–255) is
        refused here too, so that data is read alike by both."""
        if not _in_range(data):
            raise ValueError("a comment window holds a number out of range")
        window = cls()
        for i, ts in data.get("seen", ()):  # a repeated key (data from elsewhere): the first is kept
            window._seen.setdefault(str(i), int(ts))
        window._traffic.update((int(b), int(n)) for b, n in data.get("traffic", ()))
        for u, buckets in data.get("viewers", ()):
            window._viewers.setdefault(str(u), {int(b): int(how) for b, how in buckets})
        return window

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PyCommentWindow | CommentWindow):
            return NotImplemented
        return comparable(self) == comparable(other)

    def __deepcopy__(self, memo: dict[int, Any]) -> PyCommentWindow:
        return type(self).from_state(self.to_state())

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).from_state, (self.to_state(),))

    def __repr__(self) -> str:
        return f"CommentWindow({self.seen_count()} ids, {len(self._traffic)} buckets, {self.viewer_count()} viewers)"


def _check_window(window_ms: int) -> None:
    if window_ms < 0:
        raise ValueError(f"a window of {window_ms} ms")


def _in_range(data: dict[str, Any]) -> bool:
    """Whether every time and count of a window's data fits in 64 bits and every mark in a byte."""
    numbers = [ts for _, ts in data.get("seen", ())] + [x for pair in data.get("traffic", ()) for x in pair]
    marks = []
    for _, buckets in data.get("viewers", ()):
        for b, how in buckets:
            numbers.append(b)
            marks.append(how)
    return all(-(1 << 63) <= int(v) < 1 << 63 for v in numbers) and all(0 <= int(how) < 256 for how in marks)


def comparable(window: Any) -> tuple[Any, ...]:
    """What two windows must agree on to be equal: each table's content and order (the order decides what is
    forgotten first; a dict's own equality would ignore it, the traffic's order decides nothing)."""
    state = window.to_state()
    return state["seen"], sorted(state["traffic"]), state["viewers"]


try:  # the compiled window (setup.py builds it); without it the same bookkeeping in Python, slower
    from detectors._comment_window import CommentWindow as CommentWindow
except ImportError:  # pragma: no cover - a build without a C++ compiler
    CommentWindow = PyCommentWindow  # type: ignore[misc,assignment]


def _window_of(value: Any) -> Any:
    if isinstance(value, CommentWindow | PyCommentWindow):
        return value
    if isinstance(value, dict):
        return CommentWindow.from_state(value)
    raise ValueError(f"a comment window is an object with seen, traffic and viewers, not {type(value).__name__}")


#: a state model's field holding a comment window, read from and written as ``to_state``'s plain data
CommentWindowField = Annotated[
    CommentWindow, PlainValidator(_window_of), PlainSerializer(lambda w: w.to_state(), return_type=dict)
]
