"""The event-time merge releases events in event-time order once no input can still precede them."""

import inspect

from aiokafka import TopicPartition

from pipeline.kafka.merge import DeliveryClock, EventTimeMerger, order_key
from pipeline.kafka.reader import read_range
from pipeline.kafka.worker import STALL_S
from pipeline.settings import Settings

A, B = ("chat", 0), ("price", 0)


def merger(**kw):
    return EventTimeMerger(lambda: {A, B}, **kw)


def test_an_event_waits_until_every_input_has_moved_past_it():
    m = merger()
    m.push(A, 100, "chat@100", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=0) == []
    m.push(B, 90, "price@90", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=0) == ["price@90"]
    m.push(B, 120, "price@120", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=0) == ["chat@100"]
    assert len(m) == 1


def test_a_caught_up_input_does_not_hold_the_others():
    m = merger()
    m.push(A, 100, "chat@100", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, tp == B), now_s=0) == ["chat@100"]


def test_an_input_read_to_an_end_heard_of_before_the_events_own_input_was_still_holds_it():
    # CI, stop 45: live.meta withheld by the consumer, read directly at t=10 (its end asked then), and taken as
    # caught up for the next 3 s. A stream-metadata message written at 10.5 and a danmaku of the same room at 12
    # (later in event time): the danmaku was decided first and the AI-label gap reported at a later event.
    m = merger()
    m.push(A, 241, "chat@241", now_s=12)  # fetched by an answer at 12
    ends = {A: (12.0, True), B: (10.0, True)}  # price read to the end it had at 10
    assert m.pop_ready(ends.get, now_s=12, wait_for_lagging=True) == []
    m.push(B, 200, "price@200", now_s=20)  # read at 20 (directly, or by a fetch answering both)
    ends = {A: (20.0, True), B: (20.0, True)}
    assert m.pop_ready(ends.get, now_s=20, wait_for_lagging=True) == ["price@200", "chat@241"]
    assert not m.forced


def test_inputs_one_fetch_answered_together_hold_nothing_they_have_not_delivered():
    # aiokafka stamps every partition of one fetch answer alike: an idle input answered with the event's own
    # is read through for it, and one answered later still more so
    m = merger()
    m.push(A, 100, "chat@100", now_s=0)
    assert m.pop_ready({A: (5.0, True), B: (5.0, True)}.get, now_s=0, wait_for_lagging=True) == ["chat@100"]
    m.push(A, 200, "chat@200", now_s=0)
    assert m.pop_ready({A: (5.0, True), B: (6.0, True)}.get, now_s=0, wait_for_lagging=True) == ["chat@200"]
    m.push(A, 300, "chat@300", now_s=0)  # price not read to its end: its messages are on their way
    assert m.pop_ready({A: (7.0, True), B: (7.0, False)}.get, now_s=0, wait_for_lagging=True) == []


def test_ties_follow_the_publisher_sequence_then_topic_and_offset():
    m = merger()
    m.push(A, 100, "second", now_s=0, seq=2, topic="chat", offset=7)
    m.push(B, 100, "first", now_s=0, seq=1, topic="price", offset=9)
    m.push(A, 100, "unsequenced", now_s=0, topic="chat", offset=8)
    assert m.pop_ready(lambda tp: (0.0, True), now_s=0) == ["first", "second", "unsequenced"]


def test_a_place_computed_by_the_caller_orders_as_the_fields_do():
    # the worker computes an event's place once and hands it over (``key``)
    m = merger()
    m.push(A, 100, "second", now_s=0, key=order_key(100, 2, "chat", 7))
    m.push(B, 100, "first", now_s=0, seq=1, topic="price", offset=9)
    m.push(A, 100, "unsequenced", now_s=0, key=order_key(100, None, "chat", 8))
    assert m.pop_ready(lambda tp: (0.0, True), now_s=0) == ["first", "second", "unsequenced"]


def test_the_same_place_twice_releases_both_in_arrival_order_without_comparing_the_events():
    # the worker's held events are not orderable; one offset pushed twice (a re-delivery racing its re-read)
    # must not make the heap compare them
    m = merger()
    first, second = object(), object()
    m.push(A, 100, first, now_s=0, topic="chat", offset=7)
    m.push(A, 100, second, now_s=0, topic="chat", offset=7)
    assert m.pop_ready(lambda tp: (0.0, True), now_s=0) == [first, second]


def test_a_stalled_input_holds_events_only_up_to_the_lateness_bound():
    m = merger(max_lateness_ms=1000, max_wait_s=999)
    m.push(A, 100, "old", now_s=0)
    m.push(A, 1200, "new", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=0) == ["old"]
    assert m.forced["lateness"] == 1


def test_a_stalled_input_holds_events_only_up_to_the_wall_clock_bound():
    m = merger(max_lateness_ms=10**9, max_wait_s=5)
    m.push(A, 100, "held", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=4.9) == []
    assert m.pop_ready(lambda tp: (0.0, False), now_s=5.0) == ["held"]
    assert m.forced["wait"] == 1


def test_clear_drops_everything_held():
    m = merger()
    m.push(A, 100, "x", now_s=0)
    m.clear()
    assert len(m) == 0 and m.pop_ready(lambda tp: (0.0, True), now_s=0) == []


def test_an_input_still_reading_its_backlog_is_waited_for_beyond_the_lateness_bound():
    # A fetch (after a start, a rebalance or a burst) may hand over one topic's messages far ahead of
    # another's: the lagging topic's older events are on their way, so the bounds must not release past them.
    m = merger(max_lateness_ms=1000, max_wait_s=5)
    m.push(A, 100, "chat@100", now_s=0)
    m.push(A, 5000, "chat@5000", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=1, wait_for_lagging=True) == []
    m.push(B, 50, "price@50", now_s=2)
    m.push(B, 4000, "price@4000", now_s=2)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=2, wait_for_lagging=True) == [
        "price@50",
        "chat@100",
        "price@4000",
    ]
    assert not m.forced


def test_an_input_that_stops_delivering_its_backlog_holds_events_no_longer_than_the_bounds():
    m = merger(max_lateness_ms=1000, max_wait_s=5)
    m.push(A, 100, "chat@100", now_s=0)
    m.push(A, 5000, "chat@5000", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=4.9, wait_for_lagging=True) == []
    assert m.pop_ready(lambda tp: (0.0, False), now_s=5.0, wait_for_lagging=True) == ["chat@100", "chat@5000"]
    assert m.forced == {"lateness": 1, "wait": 1}


def test_the_default_wait_outlasts_the_workers_direct_read_of_a_stalled_input():
    # After a broker restart one input's fetches failed for seconds while the rest flowed. Forced past at 5 s,
    # the merge decided a room's danmaku before its older stream metadata, which the worker's stall net would
    # have read directly at 10 s (CI's broker fault run: 918 AI-label gaps at a later event, 692 extra price
    # alerts). A direct read is a delivery: it restarts the wait.
    settings = Settings()
    m = EventTimeMerger(lambda: {A, B}, settings.max_lateness_ms, settings.max_wait_s)
    read_s = STALL_S + inspect.signature(read_range).parameters["timeout_s"].default  # the stall, then the read
    m.push(A, 100, "chat@100", now_s=0)
    assert m.pop_ready(lambda tp: (0.0, False), now_s=read_s, wait_for_lagging=True) == []
    m.push(B, 50, "price@50", now_s=read_s)  # read directly
    assert m.pop_ready(lambda tp: (0.0, tp == B), now_s=read_s, wait_for_lagging=True) == ["price@50", "chat@100"]
    assert not m.forced


def test_a_release_looks_at_each_input_once_however_many_events_it_releases():
    m = merger()
    for t in range(100):
        m.push(A, t, f"chat@{t}", now_s=0)
    m.push(B, 50, "price@50", now_s=0)
    asked = []

    def ends(tp):
        asked.append(tp)
        return 0.0, False

    released = m.pop_ready(ends, now_s=0)
    assert released == [f"chat@{t}" for t in range(51)] + ["price@50"]  # up to where price has got
    assert sorted(asked) == sorted([A, B])  # once each, not once per event


def test_the_delivery_clock_runs_with_the_wall_while_messages_flow_and_barely_while_none_do():
    clock = DeliveryClock(max_gap_s=1.0)
    clock.delivered(100.0)
    clock.delivered(100.5)
    assert clock.now(100.5) == 0.5 and clock.now(100.75) == 0.75  # a steady flow: wall time
    # the broker away, or a step stuck on slow sends, for 17 s: the merge's clock moves 1 s
    assert clock.now(117.5) == 1.5
    clock.delivered(117.5)
    assert clock.now(118.0) == 2.0


def test_held_events_are_not_forced_out_by_a_pause_in_which_nothing_was_delivered():
    clock = DeliveryClock(max_gap_s=1.0)
    m = merger(max_lateness_ms=1000, max_wait_s=5)
    clock.delivered(0)
    m.push(A, 100, "chat@100", now_s=clock.now(0))
    m.push(A, 5000, "chat@5000", now_s=clock.now(0))
    # 20 s with no delivery (price lags: the broker holds its older events): nothing is forced
    assert m.pop_ready(lambda tp: (0.0, False), now_s=clock.now(20), wait_for_lagging=True) == []
    clock.delivered(20)
    m.push(B, 50, "price@50", now_s=clock.now(20))
    assert m.pop_ready(lambda tp: (0.0, tp == B), now_s=clock.now(20), wait_for_lagging=True)[0] == "price@50"
    assert not m.forced


async def test_a_direct_read_that_cannot_even_start_reports_nothing_read_instead_of_raising(caplog):
    # The worker waits for the answer of each direct read before releasing the partition it reads for: one that
    # raised (here a client refused at construction) would block the partition for good.
    records, reached, end = await read_range(
        "127.0.0.1:9", TopicPartition("live.meta", 0), 5, 9, security={"security_protocol": "NO_SUCH_PROTOCOL"}
    )
    assert (records, reached, end) == ([], 5, 9)
    assert "re-reading" in caplog.text
