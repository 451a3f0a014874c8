"""The flood detector's compiled comment window (detectors/_comment_window.pyx) against its Python reference
(``comment_window.PyCommentWindow``): the same answers and the same tables after every call of random sequences,
and the state's life as data (JSON, equality, copies, size)."""

from __future__ import annotations

import copy
import gc
import pickle
import random
import sys

import pytest

from detectors import _comment_window
from detectors.comment_window import CommentWindow, PyCommentWindow, comparable
from detectors.floods import FloodState
from detectors.normalize import normalize
from schemas.events import ChatEvent, DanmakuEvent, TranscriptEvent, event_adapter
from tests.builders import flood_story, shopper_crowd_story

T0 = 1_769_947_200_000


def test_the_window_in_use_is_the_compiled_one():
    assert CommentWindow is _comment_window.CommentWindow, "detectors/_comment_window was not built (pip install -e .)"


@pytest.mark.parametrize("seed", range(40))
def test_compiled_and_reference_agree_call_for_call(seed: int):
    rng = random.Random(seed)
    compiled, reference = CommentWindow(), PyCommentWindow()
    window_ms = rng.choice([1_000, 5_000, 600_000])
    bucket_ms = rng.choice([100, 1_000, 10_000])
    max_ids, max_viewers = rng.choice([3, 10, 5_000]), rng.choice([2, 5, 20_000])
    ts = T0
    for step in range(500):
        ts += rng.choice([0, 1, 50, 300, 2_000, 20_000, -500])  # late events too
        bucket = ts // bucket_ms * bucket_ms
        op = rng.random()
        if op < 0.3:
            event_id = f"c{rng.randint(0, 80)}"  # re-deliveries, and ids seen again after they were forgotten
            got = compiled.first_delivery(event_id, ts, window_ms, max_ids)
            assert got == reference.first_delivery(event_id, ts, window_ms, max_ids), step
        elif op < 0.45:  # the three for one comment; with no viewers remembered (no shopper crowds) too
            event_id, user, commercial = f"c{rng.randint(0, 80)}", f"u{rng.randint(0, 20)}", rng.random() < 0.3
            viewers = rng.choice([0, max_viewers])
            got = compiled.take(event_id, user, ts, bucket_ms, window_ms, max_ids, commercial, viewers)
            assert got == reference.take(event_id, user, ts, bucket_ms, window_ms, max_ids, commercial, viewers), step
            assert got is None or got == bucket, step
        elif op < 0.7:
            compiled.count(bucket, ts, window_ms)
            reference.count(bucket, ts, window_ms)
        else:
            user, commercial = f"u{rng.randint(0, 20)}", rng.random() < 0.3
            compiled.remember_viewer(user, bucket, ts, commercial, window_ms, max_viewers)
            reference.remember_viewer(user, bucket, ts, commercial, window_ms, max_viewers)
        assert comparable(compiled) == comparable(reference), step
        low = ts - rng.randint(0, 3 * window_ms)
        high = low + rng.randint(0, 3 * window_ms)
        assert compiled.traffic_sum(low, high) == reference.traffic_sum(low, high)
        assert compiled.traffic_sum(low) == reference.traffic_sum(low)
        assert compiled.first_bucket_after(low) == reference.first_bucket_after(low)
        user = f"u{rng.randint(0, 20)}"
        assert compiled.viewer_buckets(user) == reference.viewer_buckets(user)
    assert compiled.traffic == reference.traffic
    assert (compiled.seen_count(), compiled.viewer_count()) == (reference.seen_count(), reference.viewer_count())
    assert compiled == reference and reference == compiled


def filled() -> CommentWindow:
    window = CommentWindow()
    for i in range(300):
        ts = T0 + i * 700
        window.first_delivery(f"c{i}", ts, 60_000, 100)
        window.count(ts // 10_000 * 10_000, ts, 60_000)
        window.remember_viewer(f"u{i % 40}", ts // 10_000 * 10_000, ts, i % 7 == 0, 60_000, 30)
    return window


def test_the_window_lives_as_data():
    window = filled()
    assert (window.seen_count(), window.viewer_count()) == (86, 30)  # bounded by the window and by count
    state = FloodState(window=window)
    again = FloodState.model_validate_json(state.model_dump_json())
    assert again == state and isinstance(again.window, CommentWindow)
    assert again.window.to_state() == window.to_state()
    assert copy.deepcopy(window) == window and pickle.loads(pickle.dumps(window)) == window
    assert CommentWindow.from_state(window.to_state()) == PyCommentWindow.from_state(window.to_state())
    other = CommentWindow.from_state(window.to_state())
    other.first_delivery("one more", T0 + 300 * 700, 60_000, 100)
    assert other != window
    # what a deep getsizeof walk counts for the reference's dicts: each id and viewer's string at least
    assert sys.getsizeof(window) > 86 * sys.getsizeof("c100") + 30 * sys.getsizeof("u10")


def test_a_state_read_from_elsewhere_may_repeat_a_key_and_is_kept_consistent():
    """A window read back from data keeps the first of a repeated id or viewer (the tables must never hold one
    twice: the compiled one forgets an id from its order and its set together)."""
    data = {"seen": [["a", T0], ["a", T0 + 1], ["b", T0 + 2]], "viewers": [["u", [[T0, 1]]], ["u", [[T0, 2]]]]}
    for cls in (CommentWindow, PyCommentWindow):
        window = cls.from_state(data)
        assert window.to_state()["seen"] == [["a", T0], ["b", T0 + 2]]
        assert window.viewer_buckets("u") == {T0: 1} and window.viewer_count() == 1
        assert window.first_delivery("c", T0 + 10_000, 5_000, 10)  # forgets a and b: each once
        assert window.seen_count() == 1


def test_a_state_that_is_not_a_window_is_refused():
    with pytest.raises(ValueError, match="comment window"):
        FloodState.model_validate({"window": [1, 2, 3]})


@pytest.mark.parametrize("story", ["floods", "shopper_crowds"])
def test_the_flood_detector_decides_alike_with_either_window(ruleset, story: str):
    """The whole detector on the flood and shopper-crowd stories (campaigns, a chant, a crowd answering the host while
    the room buys, re-delivered comments): the same findings, and the same window after every event."""
    detector = ruleset.build("bot_flood", {"flood.commercial_campaign": "live", "flood.ring_account": "live"})
    wire = flood_story() if story == "floods" else shopper_crowd_story()
    events = [event_adapter.validate_python(e) for e in wire]
    events += events[::50]  # delivered again, late: each counted once
    compiled: dict[str, FloodState] = {}
    reference: dict[str, FloodState] = {}
    findings = {"compiled": 0, "reference": 0}
    for event in events:
        text = normalize(event.text) if isinstance(event, ChatEvent | DanmakuEvent | TranscriptEvent) else None
        a = compiled.setdefault(event.room_id, FloodState())
        b = reference.setdefault(event.room_id, FloodState(window=PyCommentWindow()))
        found_a, found_b = detector.detect(event, text, a), detector.detect(event, text, b)
        assert [f.model_dump() for f in found_a] == [f.model_dump() for f in found_b], event.event_id
        assert comparable(a.window) == comparable(b.window), event.event_id
        findings["compiled"] += len(found_a)
        findings["reference"] += len(found_b)
    assert isinstance(next(iter(compiled.values())).window, CommentWindow)
    assert findings["compiled"] == findings["reference"]
    if story == "floods":
        assert findings["compiled"] > 0
    else:  # the host's prompts were heard, so the pools were judged on the viewers' buckets too
        assert all(state.prompts for state in compiled.values())
        assert compiled["shop"].window.viewer_count() > 20


@pytest.mark.parametrize("cls", [CommentWindow, PyCommentWindow])
def test_taking_a_comment_is_first_delivery_count_and_viewer_in_one_call(cls):
    window, parts = cls(), cls()
    assert window.take("a", "u", T0 + 12_345, 10_000, 60_000, 100, True, 50) == T0 + 10_000
    assert parts.first_delivery("a", T0 + 12_345, 60_000, 100)
    parts.count(T0 + 10_000, T0 + 12_345, 60_000)
    parts.remember_viewer("u", T0 + 10_000, T0 + 12_345, True, 60_000, 50)
    assert window == parts and window.viewer_buckets("u") == {T0 + 10_000: 2}
    assert window.take("a", "u", T0 + 13_000, 10_000, 60_000, 100, False, 50) is None  # re-delivered: nothing counted
    assert window == parts and window.traffic == {T0 + 10_000: 1}
    assert window.take("b", "v", T0 + 13_000, 10_000, 60_000, 100, False, 0) == T0 + 10_000  # no viewers kept
    assert window.viewer_buckets("v") == {} and window.traffic == {T0 + 10_000: 2}
    with pytest.raises(ValueError):
        window.take("c", "u", T0, 0, 60_000, 100, False, 50)


def test_a_comment_whose_bucket_is_below_int64_is_refused_by_the_compiled_window():
    # its bucket, ``ts`` rounded down, would wrap around in C (event times are from the year 2000 on: a bug elsewhere)
    window = CommentWindow()
    with pytest.raises(OverflowError):
        window.take("a", "u", -(1 << 63) + 1, 10_000, 60_000, 100, False, 50)
    assert window.seen_count() == 0 and window.traffic == {}
    lowest = -(1 << 63) + 10_000  # the lowest time whose bucket int64 holds
    assert window.take("b", "u", lowest, 10_000, 60_000, 100, False, 50) == lowest // 10_000 * 10_000


@pytest.mark.parametrize("cls", [CommentWindow, PyCommentWindow])
def test_bounds_of_nothing_and_times_at_the_edge_of_int64_leave_the_window_consistent(cls):
    """No id kept (max_ids 0), a window of no time, a time near int64's lowest: answered, never a crash."""
    window = cls()
    assert window.first_delivery("a", T0, 60_000, 0) and window.seen_count() == 0
    assert window.first_delivery("a", T0, 0, 5) and window.first_delivery("a", T0, 0, 5)  # forgotten at once
    assert window.first_delivery("b", -(1 << 63), 100, 5) and not window.first_delivery("b", -(1 << 63), 100, 5)
    window.count(0, -(1 << 63), 100)
    window.remember_viewer("u", 0, -(1 << 63), False, 100, 0)
    assert window.viewer_count() == 0 and window.traffic_sum(-(1 << 63)) == 1


@pytest.mark.parametrize("cls", [CommentWindow, PyCommentWindow])
def test_data_read_back_is_read_as_a_dict_would_and_numbers_out_of_range_are_refused(cls):
    window = cls.from_state({"viewers": [["u", [[10, 1], [20, 1], [10, 2]]]]})
    assert window.to_state()["viewers"] == [["u", [[10, 2], [20, 1]]]]  # the last marks, at the first place
    window.remember_viewer("u", 10, 12, False, 100, 10)
    assert window.viewer_buckets("u") == {10: 3, 20: 1}
    for bad in ({"seen": [["a", 1 << 63]]}, {"traffic": [[1, -(1 << 64)]]}, {"viewers": [["u", [[1, 256]]]]}):
        with pytest.raises(ValueError, match="out of range"):
            cls.from_state(bad)


def test_reading_the_window_while_the_collector_changes_it_is_safe():
    """``to_state`` makes Python objects, which may run the collector and through it Python code that changes the
    window: what it returns is whole (every id once), and nothing it read is freed under it."""
    window = CommentWindow()
    for i in range(5_000):
        window.first_delivery(f"id{i}", T0 + i, 10**9, 10**9)
        window.remember_viewer(f"u{i}", i, T0 + i, False, 10**9, 10**9)
    added = [0]

    def meddle(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            for _ in range(100):
                added[0] += 1
                window.first_delivery(f"new{added[0]}", T0 + 10**6 + added[0], 10**9, 5_000)  # forgets the oldest
                window.remember_viewer(f"v{added[0]}", added[0], T0 + 10**6 + added[0], False, 10**9, 5_000)

    thresholds = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(meddle)
    gc.set_threshold(50)
    try:
        states = [window.to_state() for _ in range(5)]
    finally:
        gc.callbacks.remove(meddle)
        gc.set_threshold(*thresholds)
    assert added[0] > 0, "the collector ran while the window was read"
    for state in states:
        ids = [i for i, _ in state["seen"]]
        assert len(ids) == len(set(ids)) == 5_000
