"""Rebuilding sliding-window (non-durable) detector state after a rebalance, without Kafka.

A rebalance is simulated in the engine: one engine decides a recording up to some event, a new one
takes over with only the durable state (what the changelog carries) plus the non-durable state rebuilt
by ``Engine.warm`` from the decided input of the last ``history_ms``, and decides the rest. Its findings
must be the replay's, id for id and byte for byte.
"""

from __future__ import annotations

import json

import pytest
from pipeline.engine import Engine, MemoryStateStore, RoomState
from pipeline.merge import EventTimeMerger, order_key
from pipeline.metrics import Metrics
from pipeline.ruleset import DEFAULT_RULES_DIR, load_ruleset
from schemas.events import event_adapter
from tests.builders import chat, flood_story, floods_on_rules, say

WINDOW_S = 120


@pytest.fixture(scope="module")
def flood_ruleset(tmp_path_factory):
    return load_ruleset(floods_on_rules(DEFAULT_RULES_DIR, tmp_path_factory.mktemp("floods") / "rules",
                                        window_s=WINDOW_S, report_every_s=60))


@pytest.fixture(scope="module")
def story():
    return [event_adapter.validate_python(e) for e in flood_story()]


@pytest.fixture(scope="module")
def replay(flood_ruleset, story):
    engine = Engine(flood_ruleset)
    return [engine.process(e) for e in story]


def take_over(ruleset, story, k, rebuild=True):
    """The findings of a worker that takes over after event k: durable state from the changelog, the
    rest rebuilt from the decided input of the last history_ms before the next flood-relevant event."""
    before = Engine(ruleset)
    for e in story[:k]:
        before.process(e)
    durable = {room: RoomState.from_json(json.loads(json.dumps(state.to_json(only=ruleset.durable_detectors))), ruleset)
               for room, state in before.store.items()}
    after = Engine(ruleset, store=MemoryStateStore(durable))
    if rebuild:
        kinds, history = ruleset.rebuild_kinds, ruleset.rebuild_history_ms
        next_ts = next((e.ts for e in story[k:] if e.kind in kinds), story[k - 1].ts)
        after.rebuild([e for e in story[:k] if e.kind in kinds and e.ts >= next_ts - history])
    return [f.model_dump_json() for e in story[k:] for f in after.process(e).findings]


def test_the_ruleset_says_what_to_rebuild(ruleset, flood_ruleset):
    assert ruleset.rebuilt_detectors == () and ruleset.rebuild_kinds == frozenset()  # flood rules ship off
    assert ruleset.rebuild_history_ms == 0
    assert [d.name for d in flood_ruleset.rebuilt_detectors] == ["bot_flood"]
    assert flood_ruleset.rebuild_kinds == {"chat", "danmaku"}
    assert flood_ruleset.rebuild_history_ms == WINDOW_S * 1000
    assert "bot_flood" not in flood_ruleset.durable_detectors


def test_the_story_has_flood_findings_of_every_kind(replay):
    rules = {f.rule_id for o in replay for f in o.findings}
    assert rules == {"flood.commercial_campaign", "flood.ring_account", "flood.noncommercial_flood"}


SPLITS = [60, 200, 420, 540, 580, 620, 660, 700, 740, 780, 820]  # the campaigns run from event 528 to 833


@pytest.mark.parametrize("k", SPLITS)
def test_a_worker_taking_over_with_rebuilt_windows_decides_as_the_replay(flood_ruleset, story, replay, k):
    expected = [f.model_dump_json() for o in replay[k:] for f in o.findings]
    assert take_over(flood_ruleset, story, k) == expected


def test_without_the_rebuild_a_worker_taking_over_misses_findings(flood_ruleset, story, replay):
    # the check above has teeth: empty windows after a take-over in the campaign change the findings
    differ = [k for k in SPLITS
              if take_over(flood_ruleset, story, k, rebuild=False) != [f.model_dump_json() for o in replay[k:]
                                                                       for f in o.findings]]
    assert len(differ) >= 3


def test_warming_feeds_only_the_non_durable_detectors_and_outputs_nothing(flood_ruleset):
    metrics = Metrics()
    engine = Engine(flood_ruleset, metrics=metrics)
    events = [say("这是全网最低价，喝了能降血压", room="r", t=0)]  # a claim: a durable detector's input
    events += [chat(f"真给力，{i % 5 + 1}颗就瘦了{i % 7 + 2}斤", user=f"bot{i}", room="r", t=1 + i) for i in range(30)]
    rooms = engine.warm(events)
    assert list(rooms) == ["r"] and list(rooms["r"].detectors) == ["bot_flood"]
    assert rooms["r"].policy == RoomState().policy  # no ladder step, although the campaign is well past threshold
    assert rooms["r"].detectors["bot_flood"].templates  # the window is filled
    samples = {s.name: s.value for m in metrics.registry.collect() for s in m.samples}
    assert samples["livewatch_rebuilt_events_total"] == 30  # the transcript is not re-fed
    assert not any(name.startswith("livewatch_findings_total") and value for name, value in samples.items())
    assert not any(name.startswith("livewatch_events_total") and value for name, value in samples.items())
    assert len(engine.store) == 0  # warm leaves the store alone; rebuild hands the state over


def test_rebuilt_state_joins_the_durable_state_of_a_room(flood_ruleset):
    engine = Engine(flood_ruleset)
    engine.process(say("这是全网最低价", room="r", t=0))
    before = engine.store["r"].to_json()
    assert before["policy"] != RoomState().to_json()["policy"]  # a strike
    assert engine.rebuild([chat("真给力，3颗就瘦了3.2斤", user="a", room="r", t=1),
                           chat("主播好呀大家好", user="b", room="new", t=2)]) == 2
    after = engine.store["r"].to_json()
    assert after["policy"] == before["policy"]
    assert after["detectors"]["false_claims"] == before["detectors"]["false_claims"]
    assert set(after["detectors"]) == {"false_claims", "bot_flood"}
    assert list(engine.store["new"].detectors) == ["bot_flood"]


def test_the_rebuild_order_is_the_merge_order():
    merger = EventTimeMerger(lambda: {"a", "b"})
    items = [("a", 5, 2, "live.chat", 7), ("b", 5, 1, "live.danmaku", 3), ("b", 5, None, "live.danmaku", 4),
             ("a", 3, None, "live.chat", 8), ("a", 5, None, "live.chat", 9)]
    for tp, ts, seq, topic, offset in items:
        merger.push(tp, ts, (ts, seq, topic, offset), now_s=0, seq=seq, topic=topic, offset=offset)
    released = merger.pop_ready(lambda tp: True, now_s=0)
    assert released == sorted(((ts, seq, topic, offset) for _, ts, seq, topic, offset in items),
                              key=lambda x: order_key(*x))


def test_held_events_wait_from_the_moment_the_partition_opens():
    merger = EventTimeMerger(lambda: {"a", "b"}, max_wait_s=5)
    merger.push("a", 100, "a@100", now_s=0)
    assert merger.pop_ready(lambda tp: False, now_s=10) == ["a@100"]  # waited past the bound
    merger.push("a", 200, "a@200", now_s=0)
    merger.restart_wait(now_s=10)
    assert merger.pop_ready(lambda tp: False, now_s=12) == []
    assert merger.pop_ready(lambda tp: False, now_s=15) == ["a@200"]
