"""The worker's offset tracker, without Kafka: what may be acknowledged, what must be read directly, what
is a duplicate. Topic-partitions are plain strings here; "events" are whatever the caller acknowledges."""

from __future__ import annotations

import logging

import pytest

from pipeline.kafka.offsets import NEVER, OffsetTracker, Reread

TP, OTHER = "live.chat-0", "live.danmaku-0"


class Tracker:
    """An OffsetTracker assigned TP and OTHER, with the committed offsets the broker answered for them (the log
    starting at 0 and ending there), and an event per offset ("ev@7")."""

    def __init__(self, committed: dict[str, int] | None = None, **kwargs) -> None:
        self.t = OffsetTracker(**kwargs)
        self.t.assign([TP, OTHER], now=0)
        for tp, offset in (committed or {}).items():
            self.t.set_bounds(tp, 0, offset, offset, now=0)
        self.pending = {}

    def deliver(self, *offsets: int, tp: str = TP, now: float = 0):
        receipts = []
        for offset in offsets:
            r = self.t.receive(tp, offset, f"ev@{offset}", now)
            if r.pending is not None:
                self.pending[(tp, offset)] = r.pending
            receipts.append(r)
        return receipts[0] if len(receipts) == 1 else receipts

    def done(self, *offsets: int, tp: str = TP) -> None:
        for offset in offsets:
            self.pending[(tp, offset)].done = True

    def acks(self, now: float = 0):
        return self.t.acks(now)


# -- in-order acknowledgements ----------------------------------------------------------------------


def test_done_messages_are_acknowledged_in_offset_order_per_topic_partition():
    k = Tracker({TP: 10, OTHER: 0})
    k.deliver(10, 11, 12)
    k.deliver(0, 1, tp=OTHER)
    k.done(11, 12)
    k.done(0, tp=OTHER)
    assert k.acks() == (["ev@0"], [])  # 10 is not done: 11 and 12 wait behind it
    k.done(10)
    assert k.acks() == (["ev@10", "ev@11", "ev@12"], [])
    assert k.acks() == ([], [])  # each once
    k.done(1, tp=OTHER)
    assert k.acks() == (["ev@1"], [])


def test_the_first_acknowledgement_waits_for_the_committed_offset():
    """Right after a rebalance Faust can hand over messages beyond ones it will deliver again: the head
    must be the committed offset, not whatever came first."""
    k = Tracker({TP: 5})
    k.deliver(7)  # 5 and 6 were skipped
    k.done(7)
    events, rereads = k.acks(now=1)
    assert events == [] and rereads == []  # its re-read was already asked for at delivery


def test_a_gap_found_only_at_acknowledgement_is_reread_without_blocking_releases():
    k = Tracker({TP: 5})
    k.t.receive(TP, 5, "ev@5", 0).pending.done = True
    assert k.acks() == (["ev@5"], [])
    # offsets below the next acknowledgement, delivered again after the tracker lost its taken ones
    k2 = Tracker({TP: 3})
    k2.deliver(3)
    k2.done(3)
    assert k2.acks() == (["ev@3"], [])
    r = k2.t.receive(TP, 9, "ev@9", 0)  # 4..8 skipped: asked at delivery, and blocks
    assert r.reread == Reread(TP, 4, 9, k2.t.epoch) and k2.t.blocked([TP])
    k2.t.reread_done(r.reread, [], now=1)  # nothing found
    assert not k2.t.blocked([TP])
    r.pending.done = True
    events, rereads = k2.acks(now=2)  # the head still waits at the gap, and asks for it again
    assert events == [] and rereads == [Reread(TP, 4, 9, k2.t.epoch)]
    assert not k2.t.blocked([TP])  # that re-read does not hold releases back
    assert k2.acks(now=3) == ([], [])  # not asked twice while under way


def test_a_head_that_waits_at_a_gap_longer_than_the_patience_goes_past_it(caplog):
    k = Tracker({TP: 0}, gap_patience_s=30)
    r = k.deliver(2)
    k.t.reread_done(r.reread, [], now=0)  # transaction markers, say: nothing to read at 0..1
    k.done(2)
    assert k.acks(now=1)[0] == []
    assert k.acks(now=20)[0] == []
    with caplog.at_level(logging.WARNING):
        assert k.acks(now=31.5)[0] == ["ev@2"]
    assert "past a gap from 0" in caplog.text
    k.deliver(3)
    k.done(3)
    assert k.acks(now=32)[0] == ["ev@3"]  # no gap after it: no wait


# -- gaps: offsets Faust skipped ---------------------------------------------------------------------


def test_a_delivery_beyond_the_next_offset_asks_for_the_skipped_ones_and_blocks_until_they_are_read():
    k = Tracker({TP: 10})
    assert k.deliver(10).reread is None
    r = k.deliver(14)
    assert r.take and r.reread == Reread(TP, 11, 14, k.t.epoch)
    assert k.t.blocked([TP]) and k.t.blocked([OTHER, TP]) and not k.t.blocked([OTHER])
    entries = k.t.reread_done(r.reread, [11, 12, 13], now=1)
    assert [e.offset for e in entries] == [11, 12, 13] and all(e.event is None for e in entries)
    assert not k.t.blocked([TP])
    for e in entries:
        e.done = True
    k.done(10, 14)
    assert k.acks() == (["ev@10", "ev@14"], [])  # re-read messages have no event to acknowledge


def test_a_skipped_message_delivered_before_its_reread_is_taken_once_and_in_order():
    k = Tracker({TP: 0})
    r = k.deliver(3)
    late = k.deliver(1)  # Faust delivers it after all
    assert late.take and late.reread is None
    entries = k.t.reread_done(r.reread, [0, 1, 2], now=1)
    assert [e.offset for e in entries] == [0, 2]  # 1 was taken already
    for e in entries:
        e.done = True
    k.done(1, 3)
    assert k.acks() == (["ev@1", "ev@3"], [])


def test_the_position_is_after_the_last_offset_taken_else_the_committed_offset():
    k = Tracker({TP: 40})
    assert k.t.position(TP) == 40 and k.t.position(OTHER) is None
    k.deliver(40, 41)
    assert k.t.position(TP) == 42
    k.deliver(38)  # an older copy does not move it back
    assert k.t.position(TP) == 42


# -- duplicates -------------------------------------------------------------------------------------


def test_faust_delivering_a_message_read_directly_is_not_decided_twice_and_is_acknowledged_in_order():
    k = Tracker({TP: 0})
    r = k.deliver(2)
    (entry0, entry1) = k.t.reread_done(r.reread, [0, 1], now=0)
    copy = k.deliver(1)
    assert not copy.take and copy.ack_now is None  # acknowledged with the entry taken
    entry0.done = entry1.done = True
    k.done(2)
    assert k.acks() == (["ev@1", "ev@2"], [])  # 0 has no event; 1 now carries Faust's


def test_a_copy_of_a_message_acknowledged_already_is_acknowledged_at_once():
    k = Tracker({TP: 0})
    k.deliver(0, 1)
    k.done(0, 1)
    assert k.acks()[0] == ["ev@0", "ev@1"]
    again = k.t.receive(TP, 1, "copy@1", 0)
    assert not again.take and again.ack_now == "copy@1"


def test_a_copy_of_a_message_still_pending_is_dropped():
    k = Tracker({TP: 0})
    k.deliver(0, 1)
    again = k.t.receive(TP, 0, "copy@0", 0)
    assert not again.take and again.ack_now is None
    k.done(0, 1)
    assert k.acks()[0] == ["ev@0", "ev@1"]


# -- stalls: inputs Faust stopped delivering ---------------------------------------------------------


def test_an_input_that_delivers_nothing_with_messages_on_the_broker_is_read_directly(caplog):
    """faust-streaming 0.15 was seen to stop delivering an assigned partition after a rebalance."""
    stalled, idle, busy = "live.danmaku-0", "live.chat-0", "live.transcript-0"
    t = OffsetTracker(stall_s=10)
    t.assign([stalled, idle, busy], now=0)
    t.receive(stalled, 85, "ev", now=0)
    t.receive(idle, 9, "ev", now=0)
    t.receive(busy, 40, "ev", now=99)
    highwater = {stalled: 120, idle: 10, busy: 90}.get
    with caplog.at_level(logging.WARNING):
        rereads = t.stalled([stalled, idle, busy], highwater, now=100)
    assert rereads == [Reread(stalled, 86, 120, t.epoch, to_end=True)]  # idle is caught up, busy delivers
    assert t.blocked([stalled])  # its partition waits for the read
    assert "has delivered nothing" in caplog.text
    assert t.stalled([stalled, idle, busy], highwater, now=101) == []  # not again while it is read
    t.reread_done(rereads[0], [], now=102, reached=86)  # the read failed at once (the broker away, say)
    assert t.stalled([stalled], highwater, now=105) == []  # the clock restarted at the request
    assert t.stalled([stalled], highwater, now=111) == [Reread(stalled, 86, 120, t.epoch, to_end=True)]  # so: again


def test_an_input_read_through_to_its_end_is_caught_up_though_its_last_offsets_held_no_record():
    # a topic written with transactions ends with a commit marker, which no consumer returns: Faust's position
    # stays one short of the high-water mark, and the merge, which waits for an input not caught up, would wait
    # for it forever
    t = OffsetTracker(stall_s=10)
    t.assign([TP], now=0)
    t.set_bounds(TP, 0, 10, 8, now=0)  # committed up to 8
    t.receive(TP, 8, "ev", now=0)  # offset 9: the commit marker
    assert t.end(TP, (10, 0.0)) == (0.0, False)
    (request,) = t.stalled([TP], {TP: 10}.get, now=10)
    assert request == Reread(TP, 9, 10, t.epoch, to_end=True)
    assert t.reread_done(request, [], now=11, reached=10) == []
    assert t.end(TP, (10, 11.0)) == (11.0, True)
    assert t.stalled([TP], {TP: 10}.get, now=30) == []  # and not read again
    assert t.end(TP, (12, 30.0)) == (30.0, False)  # until the broker holds more of it


def test_an_input_never_fetched_is_read_up_to_the_end_known_at_assignment():
    t = OffsetTracker(stall_s=10)
    t.assign([TP], now=0)
    # asked of the broker at assignment; the consumer never fetched it (no high water)
    t.set_bounds(TP, 0, 30, 7, now=0)
    assert t.stalled([TP], lambda tp: None, now=5) == []
    assert t.stalled([TP], lambda tp: None, now=11) == [Reread(TP, 7, 30, t.epoch, to_end=True)]


def test_an_input_without_a_committed_offset_is_read_from_the_logs_start_once_it_stalls():
    t = OffsetTracker(stall_s=10)
    t.assign([TP], now=0)
    assert t.stalled([TP], lambda tp: 12, now=11) == []  # the log's start is not known yet
    t.set_bounds(TP, 3, 12, None, now=0)
    assert t.position(TP) == 3 and not t.end(TP, (12, 0.0))[1]  # so its partition's merge waits for it
    (request,) = t.stalled([TP], lambda tp: 12, now=11)
    assert (request.start, request.end) == (3, 12) and t.blocked([TP])
    entries = t.reread_done(request, range(3, 12), now=12)
    assert [e.offset for e in entries] == list(range(3, 12)) and t.end(TP, (12, 12.0))[1]


def test_a_first_delivery_past_the_logs_start_of_an_input_without_a_commit_asks_for_the_skipped_offsets():
    t = OffsetTracker()
    t.assign([TP], now=0)
    t.set_bounds(TP, 3, 12, None, now=0)
    receipt = t.receive(TP, 6, "m6", now=1)  # Faust skipped 3..5, the start of a partition never committed to
    assert receipt.reread == Reread(TP, 3, 6, t.epoch) and t.blocked([TP])
    receipt.pending.done = True
    assert t.acks(now=2) == ([], [])  # nothing acknowledged past the skipped start while it is read
    t.reread_done(receipt.reread, [3, 4, 5], now=3)
    assert not t.blocked([TP])


def test_the_brokers_answer_at_assignment_is_where_delivery_starts():
    # The batches of a new assignment flow as soon as aiokafka fetches them, seconds before Faust's seek fills its
    # committed offsets. Reading Faust's silence as "never committed" (so: from the log's start) re-read and
    # decided again all 33,282 messages a taken-over partition had decided (the scale scenario, stop 41).
    t = OffsetTracker()
    t.assign([TP], now=0)
    t.set_bounds(TP, 0, 40_000, 33_282, now=0)
    receipt = t.receive(TP, 33_282, "m", now=1)
    assert receipt.reread is None and not t.blocked([TP])
    receipt.pending.done = True
    assert t.acks(now=2) == (["m"], [])
    # the broker's answer does not hide a real skip: a first delivery past it asks for the offsets in between
    t.assign([OTHER], now=3)
    t.set_bounds(OTHER, 0, 50, 20, now=0)
    assert t.receive(OTHER, 25, "m25", now=4).reread == Reread(OTHER, 20, 25, t.epoch)


def test_a_delivery_before_the_start_is_known_is_held_and_not_acknowledged_on_a_guess():
    t = OffsetTracker()
    t.assign([TP, OTHER], now=0)
    receipt = t.receive(TP, 500, "m500", now=1)  # the broker has not answered yet
    assert receipt.reread is None and t.position(TP) == 501
    assert t.blocked([TP, OTHER])  # offsets before 500 may be missing: the partition releases nothing yet
    receipt.pending.done = True
    assert t.acks(now=2) == ([], [])  # 500 may be past the committed offset
    assert t.set_bounds(TP, 0, 600, 500, now=0) is None  # it is not
    assert not t.blocked([TP, OTHER]) and t.acks(now=3) == (["m500"], [])
    # a new assignment forgets the last one's answer: asked again, held again until then
    t.revoke()
    t.clear()
    t.assign([TP], now=4)
    t.receive(TP, 700, "m700", now=5).pending.done = True
    assert t.blocked([TP]) and t.acks(now=6) == ([], [])


def test_a_start_learnt_after_the_first_delivery_still_finds_the_offsets_skipped_before_it():
    t = OffsetTracker(gap_patience_s=30)
    t.assign([TP], now=0)
    t.receive(TP, 12, "m12", now=1).pending.done = True  # Faust skipped 10 and 11, the committed offset's
    request = t.set_bounds(TP, 0, 20, 10, now=0)
    assert request == Reread(TP, 10, 12, t.epoch) and t.blocked([TP])  # read before anything is released
    assert t.acks(now=2) == ([], [])
    t.reread_done(request, [10, 11], now=3)
    assert not t.blocked([TP])


def test_a_delivery_below_the_committed_offset_is_not_taken_again():
    # The fetcher's own committed offset can be read just before the last owner's final transaction became
    # visible (pipeline/kafka/committed.py): it then delivers the last owner's final step again, below the
    # committed offset the tracker was told. Decided already: acknowledged as a copy, never taken.
    t = OffsetTracker()
    t.assign([TP], now=0)
    t.set_bounds(TP, 0, 300, 250, now=0)
    for offset in (240, 241, 249):
        receipt = t.receive(TP, offset, f"m{offset}", now=1)
        assert not receipt.take and receipt.ack_now == f"m{offset}" and receipt.reread is None
    receipt = t.receive(TP, 250, "m250", now=1)
    assert receipt.take and receipt.reread is None and not t.blocked([TP])
    receipt.pending.done = True
    assert t.acks(now=2) == (["m250"], []) and t.next_acks() == {TP: 251}  # never below 250


def test_messages_taken_before_the_committed_offset_was_known_and_below_it_are_dropped_when_it_is():
    t = OffsetTracker()
    t.assign([TP], now=0)
    taken = {offset: t.receive(TP, offset, f"m{offset}", now=1).pending for offset in range(240, 255)}
    assert t.blocked([TP])  # nothing of it is released before the broker answers
    assert t.set_bounds(TP, 0, 300, 250, now=0) is None and not t.blocked([TP])
    assert [o for o, p in taken.items() if p.decided_before] == list(range(240, 250))  # the holder skips them
    for pending in taken.values():
        pending.done = True
    events, rereads = t.acks(now=2)
    assert events == [f"m{o}" for o in range(250, 255)] and rereads == []
    assert t.receive(TP, 249, "again", now=3).ack_now == "again"  # a later copy below it: not taken either
    # all of them below it: the next delivery is expected from the committed offset on
    t.assign([OTHER], now=4)
    [t.receive(OTHER, o, "m", now=5) for o in (7, 8)]
    t.set_bounds(OTHER, 0, 30, 20, now=0)
    assert t.position(OTHER) == 20 and t.receive(OTHER, 20, "m20", now=6).reread is None


def test_a_reread_asked_before_the_committed_offset_was_known_takes_nothing_below_it():
    t = OffsetTracker()
    t.assign([TP], now=0)
    t.receive(TP, 0, "m0", now=1)
    t.receive(TP, 1, "m1", now=1)
    early = t.receive(TP, 5, "m5", now=1).reread  # Faust skipped 2..4: read them directly
    assert early == Reread(TP, 2, 5, t.epoch)
    late = t.set_bounds(TP, 0, 6, 4, now=0)  # the group committed 4: 0 and 1 are dropped, 4 still to read
    assert late == Reread(TP, 4, 5, t.epoch)
    assert [p.offset for p in t.reread_done(early, [2, 3, 4], now=2)] == [4]  # 2 and 3 were decided before
    assert t.reread_done(late, [4], now=2) == [] and not t.blocked([TP])
    # a gap wholly below the committed offset is not waited for
    t.assign([OTHER], now=3)
    t.receive(OTHER, 10, "m10", now=4)
    t.receive(OTHER, 13, "m13", now=4)  # asks for 11..12
    assert t.set_bounds(OTHER, 0, 20, 13, now=0) is None and not t.blocked([OTHER])


def test_a_committed_offset_that_retention_passed_starts_at_the_logs_start():
    t = OffsetTracker()
    t.assign([TP], now=0)
    t.set_bounds(TP, 40, 90, 25, now=0)  # the consumer resets to the earliest offset
    assert t.position(TP) == 40 and t.receive(TP, 40, "m40", now=1).reread is None


def test_the_wait_for_the_tables_recovery_is_not_a_stall():
    t = OffsetTracker(stall_s=10)
    t.assign([TP], now=0)  # Faust now recovers the tables; it delivers nothing until that is done
    t.set_bounds(TP, 0, 0, 7, now=0)
    t.restart_stall_clocks(now=12)  # done, 12 s later
    assert t.stalled([TP], {TP: 20}.get, now=15) == []
    assert t.stalled([TP], {TP: 20}.get, now=22) == [Reread(TP, 7, 20, t.epoch, to_end=True)]


def test_an_input_that_never_delivered_is_read_from_its_committed_offset():
    t = OffsetTracker(stall_s=10)
    t.assign([TP], now=0)
    t.set_bounds(TP, 0, 0, 7, now=0)  # the consumer had fetched nothing of it at assignment
    (request,) = t.stalled([TP], lambda tp: 9, now=50)
    assert (request.start, request.end, request.to_end) == (7, 9, True)
    entries = t.reread_done(request, [7, 8], now=51)
    assert [e.offset for e in entries] == [7, 8] and t.position(TP) == 9


def test_an_input_whose_end_nobody_has_heard_of_lately_is_read_to_the_brokers_end_heard_of_when_asked():
    # After a broker restart one partition's fetches failed for seconds while the others flowed: its last
    # high-water mark said "caught up", and the merge decided its rooms' danmaku before their older stream
    # metadata (CI's broker fault run: 918 AI-label gaps reported at a later event, 692 extra price alerts).
    # The end is kept with when it was heard of; the merge compares that with when the other inputs' were.
    t = OffsetTracker(stall_s=10, fresh_s=3)
    t.assign([TP], now=0)
    t.set_bounds(TP, 0, 7, 7, now=0)  # the end, as the broker told at assignment
    assert t.end(TP, None) == (0, True)
    assert t.end(TP, (7, 60.0)) == (60.0, True)  # a fetch answered at 60
    assert t.stalled([TP], lambda tp: 7, now=60) == []  # idle, and known to be
    (request,) = t.stalled([TP], lambda tp: None, now=60)  # no fetch answered for fresh_s: read it directly
    assert (request.start, request.end, request.to_end) == (7, 7, True) and t.blocked([TP])
    # the read went on to the broker's end when it began: two records more
    entries = t.reread_done(request, [7, 8], now=61, reached=9, end=9, asked=60.5)
    assert [e.offset for e in entries] == [7, 8] and not t.blocked([TP])
    # heard of when the read asked for it, not when it ended: a message written in between may be there
    assert t.end(TP, None) == (60.5, True)
    # a read that failed part-way: the end it asked for is known, and not reached
    (request,) = t.stalled([TP], lambda tp: None, now=71)
    t.reread_done(request, [], now=72, reached=9, end=15, asked=71)
    assert t.end(TP, None) == (71, False) and t.end(TP, (9, 72.0)) == (72.0, False)


# -- catching up ------------------------------------------------------------------------------------


def test_the_end_follows_the_bounds_at_assignment():
    k = Tracker()
    assert k.t.end(TP, (3, 0.0)) == (NEVER, False)  # bounds unknown: neither "empty" nor done
    k.t.set_bounds(TP, 0, 5, 3, now=0)
    assert k.t.end(TP, None) == (0, False)
    k.deliver(3, 4)
    assert k.t.end(TP, (5, 1.0)) == (1.0, True)
    assert k.t.end(TP, (8, 2.0)) == (2.0, False)  # more arrived since the assignment
    k.t.set_bounds(OTHER, 2, 2, None, now=0)
    assert k.t.end(OTHER, (0, 1.0)) == (1.0, True)  # no committed offset: from the log start


# -- revocation -------------------------------------------------------------------------------------


def test_after_a_revocation_answers_for_the_old_assignment_are_ignored_and_nothing_is_acknowledged():
    k = Tracker({TP: 0})
    r = k.deliver(3)
    k.deliver(0)
    k.done(0)
    k.t.revoke()
    assert k.acks()[0] == ["ev@0"]  # decided before the revocation: still acknowledged until cleared
    k.t.clear()
    assert not k.t.blocked([TP]) and k.t.position(TP) == 0
    k.t.assign([TP], now=5)
    assert k.t.reread_done(r.reread, [1, 2], now=6) == []  # stale
    k.done(3)
    assert k.acks() == ([], [])
    fresh = k.deliver(0)  # read again from the committed offset
    assert fresh.take and fresh.reread is None


def test_a_reread_of_a_partition_no_longer_assigned_is_dropped():
    t = OffsetTracker()
    t.assign([TP], now=0)
    t.set_bounds(TP, 0, 0, 0, now=0)
    r = t.receive(TP, 2, "ev@2", now=0)
    t.assign([OTHER], now=1)  # reassigned without TP (a new epoch too)
    assert t.reread_done(r.reread, [0, 1], now=2) == []


@pytest.mark.parametrize("offsets", [[5, 6, 7], [7, 5, 6]])
def test_the_queue_stays_in_offset_order_whatever_the_delivery_order(offsets):
    k = Tracker({TP: 5})
    receipts = [k.t.receive(TP, o, f"ev@{o}", 0) for o in offsets]
    for r in receipts:
        if r.reread is not None:
            k.t.reread_done(r.reread, [], now=0)
        r.pending.done = True
    assert k.acks()[0] == ["ev@5", "ev@6", "ev@7"]
