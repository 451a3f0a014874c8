"""The worker's room state: a cache over the changelog table, which gets only durable state, only on change."""

from __future__ import annotations

import json

import pytest

from pipeline.engine import Engine, RoomState
from pipeline.kafka.state_store import TableStateStore
from pipeline.ruleset import DEFAULT_RULES_DIR, load_ruleset
from tests.builders import T0, chat, floods_on_rules, say


@pytest.fixture(scope="module")
def flood_ruleset(tmp_path_factory):
    return load_ruleset(
        floods_on_rules(DEFAULT_RULES_DIR, tmp_path_factory.mktemp("floods") / "rules", window_s=120, report_every_s=60)
    )


class Table(dict):
    """A Faust table as the store sees it: bytes to bytes, every write counted."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_only_durable_state_reaches_the_changelog_and_only_when_it_changed(flood_ruleset):
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    engine = Engine(flood_ruleset, store=store)
    engine.process(say("这是全网最低价", room="r"))  # a strike: durable
    assert table.writes == 0 and not store.dirty  # written with the batch, not per event
    assert store.write_changes() == 1
    assert table.writes == 1 and store.dirty
    written = json.loads(table[b"r"])
    assert written["policy"] != json.loads(RoomState().to_json())["policy"]
    assert "bot_flood" not in written["detectors"]  # a sliding window is not durable
    store.dirty = False  # the worker flushed it
    engine.process(chat("主播好呀", user="u1", room="r", t=1))  # the window changes, nothing durable does
    assert store.write_changes() == 0
    assert table.writes == 1 and not store.dirty
    assert store.get("r").detectors["bot_flood"].once  # but the cache holds it


def test_a_viewers_comment_is_not_even_serialised(flood_ruleset, monkeypatch):
    # most of the input changes nothing durable (Detector.may_change): its room is not serialised to find that out
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    engine = Engine(flood_ruleset, store=store)
    engine.process(say("这是全网最低价", room="r"))
    assert store.write_changes() == 1
    serialised = []
    to_json = RoomState.to_json
    monkeypatch.setattr(RoomState, "to_json", lambda self, only=None: serialised.append(self) or to_json(self, only))
    for i, text in enumerate(["主播好呀", "这个多少钱", "好喝吗", "发货快吗", "已拍"]):
        engine.process(chat(text, user=f"u{i}", room="r", t=1 + i))
    assert store.write_changes() == 0 and serialised == []
    engine.process(say("喝了能降血压", room="r", t=10))  # a strike: serialised and written
    assert store.write_changes() == 1 and len(serialised) == 1
    assert json.loads(table[b"r"]) == json.loads(to_json(store.get("r"), only=flood_ruleset.durable_detectors))


def test_a_failure_half_way_still_writes_what_it_changed(flood_ruleset, monkeypatch):
    # a detector that raises, or a failure after the detectors, may leave the room half changed: it is written
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    engine = Engine(flood_ruleset, store=store)
    engine.process(say("这是全网最低价", room="r"))  # a strike on the ladder
    assert store.write_changes() == 1
    claims = flood_ruleset.configured["false_claims"]

    def half_then_fail(event, text, state):
        state.current_category = "drug"
        raise RuntimeError("a detector bug")

    monkeypatch.setattr(claims, "detect", half_then_fail)
    # the host's comment: false_claims reads no viewer's (``reads_viewer_comments``)
    assert engine.process(chat("发货快吗", user="u1", room="r", t=1, role="host")).dead_letters
    assert store.write_changes() == 1
    assert json.loads(table[b"r"])["detectors"]["false_claims"]["current_category"] == "drug"
    monkeypatch.undo()

    def cannot_say(event, state):
        raise RuntimeError("a may_change bug")

    # asked before the detector reads an event (a viewer's comment reaches ai_label only when a report falls due at
    # it: ``viewer_comments_as_clock``; the host's speech always does)
    labels = flood_ruleset.configured["ai_label"]
    monkeypatch.setattr(labels, "may_change", cannot_say)  # as a detector's failure: a dead letter, the room put
    serialised = []
    to_json = RoomState.to_json
    monkeypatch.setattr(RoomState, "to_json", lambda self, only=None: serialised.append(self) or to_json(self, only))
    assert engine.process(say("好喝吗", room="r", t=2)).dead_letters
    store.write_changes()
    assert len(serialised) == 1
    monkeypatch.undo()

    def clear_then_fail(finding, state):
        state.subjects.clear()
        raise RuntimeError("a policy bug")

    monkeypatch.setattr(flood_ruleset.policy, "decide", clear_then_fail)
    with pytest.raises(RuntimeError):  # the worker keeps the event in its dead-letter topic
        engine.process(say("全网最低价，错过今天就没有了", room="r", t=3))
    assert store.write_changes() == 1 and json.loads(table[b"r"])["policy"]["subjects"] == {}


def test_reports_forgotten_while_a_repeat_is_dropped_are_written(flood_ruleset, monkeypatch):
    # every finding a repeat of one reported (dropped: no finding out), but an older report expired meanwhile and is
    # forgotten (``RoomState.first_reports``): the room's durable state changed all the same
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    engine = Engine(flood_ruleset, store=store)
    floods = flood_ruleset.configured["bot_flood"]
    rule = floods.rules[0]

    def say_finding(event, name):
        return floods.finding(rule, event, ident=(name,), score=1.0, summary=name, evidence=[], details={})

    found = {1: ["a"], 40: ["b"], 70: ["b"]}  # at t = 70 s "a" (reported at 1 s) is past the 60 s memory
    monkeypatch.setattr(floods, "report_memory_ms", 60_000)
    monkeypatch.setattr(
        floods,
        "detect",
        lambda event, text, state: [say_finding(event, n) for n in found.get((event.ts - T0) // 1000, [])],
    )
    for t in (1, 40):
        assert engine.process(chat(f"主播好呀{t}", user=f"u{t}", room="r", t=t)).findings
    store.write_changes()
    assert set(json.loads(table[b"r"])["reported"]) == {say_finding(chat("x", room="r"), n).finding_id for n in "ab"}
    assert not engine.process(chat("主播好呀70", user="u70", room="r", t=70)).findings  # "b" again: dropped
    assert store.write_changes() == 1
    assert set(json.loads(table[b"r"])["reported"]) == {say_finding(chat("x", room="r"), "b").finding_id}


def test_a_batch_writes_each_changed_room_once_with_its_last_state(flood_ruleset):
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    engine = Engine(flood_ruleset, store=store)
    for i, text in enumerate(["这是全网最低价", "喝了能降血压", "能根治失眠"]):  # three strikes in one batch
        engine.process(say(text, room="r", t=i))
    engine.process(say("这是全网最低价", room="other", t=3))
    engine.process(chat("主播好呀", user="u1", room="r", t=4))  # nothing durable changed
    assert store.write_changes() == 2 and table.writes == 2  # r (its last state) and other
    assert table[b"r"] == store.get("r").to_json(only=flood_ruleset.durable_detectors)
    assert store.write_changes() == 0  # nothing put since
    store.put("r", store.get("r"))
    assert store.write_changes() == 0 and table.writes == 2  # put again, unchanged: no write


def test_rooms_put_before_a_revocation_are_not_written_after_it(flood_ruleset):
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    Engine(flood_ruleset, store=store).process(say("这是全网最低价", room="r"))
    store.clear()  # revoked before the batch finished: its events are read again
    assert store.write_changes() == 0 and table.writes == 0


def test_a_room_is_loaded_from_the_table_once_and_joined_with_its_rebuilt_windows(flood_ruleset):
    before = Engine(flood_ruleset)
    before.process(say("这是全网最低价", room="r"))
    table = Table({b"r": before.store["r"].to_json(only=flood_ruleset.durable_detectors)})
    store = TableStateStore(table, lambda: flood_ruleset)
    rebuilt = Engine(flood_ruleset).warm(
        [
            chat("真给力，3颗就瘦了3.2斤", user="a", room="r", t=1),
            chat("真给力，2颗就瘦了5斤", user="b", room="new", t=2),
        ]
    )
    store.adopt(rebuilt)  # before the rooms are loaded: the table may still be recovering
    assert len(store) == 0
    room = store.get("r")
    assert (
        room.policy == before.store["r"].policy and room.detectors["bot_flood"] is rebuilt["r"].detectors["bot_flood"]
    )
    assert store.get("r") is room and len(store) == 1
    assert list(store.get("new").detectors) == ["bot_flood"]
    assert store.get("nobody") is None
    store.put("r", room)  # unchanged durable state: no write
    assert store.write_changes() == 0 and table.writes == 0


def test_windows_rebuilt_for_a_cached_room_replace_its_own(flood_ruleset):
    store = TableStateStore(Table(), lambda: flood_ruleset)
    store.put("r", RoomState())
    part = Engine(flood_ruleset).warm([chat("真给力，3颗就瘦了3.2斤", user="a", room="r", t=1)])
    store.adopt(part)
    assert store.get("r").detectors["bot_flood"] is part["r"].detectors["bot_flood"]


def test_clear_drops_the_cache_and_keeps_the_table(flood_ruleset):
    table = Table()
    store = TableStateStore(table, lambda: flood_ruleset)
    Engine(flood_ruleset, store=store).process(say("这是全网最低价", room="r"))
    store.write_changes()  # the batch finished
    store.adopt(Engine(flood_ruleset).warm([chat("主播好呀", user="u", room="q", t=1)]))
    store.clear()
    assert len(store) == 0 and b"r" in table
    assert store.get("q") is None  # rebuilt state of the old assignment is gone too
    assert store.get("r").policy.model_dump() != RoomState().policy.model_dump()  # back from the table
