"""The Faust wiring, without a broker: the one read of a Faust private, and the parts a worker is built of."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

from faust.types import TP

import pipeline.kafka.worker as worker_module
from pipeline.kafka.batches import BatchConsumer
from pipeline.kafka.offsets import OffsetTracker
from pipeline.kafka.rebuild import RebuildCoordinator
from pipeline.kafka.sender import OutputSender
from pipeline.kafka.state_store import TableStateStore
from pipeline.kafka.worker import WorkerRuntime, faust_committed_offset, instance_id, not_decided_yet
from pipeline.settings import Settings

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"


def test_the_committed_offset_comes_from_faust_or_is_unknown():
    tp = TP("live.chat", 0)
    assert faust_committed_offset(SimpleNamespace(_committed_offset={tp: 12}), tp) == 12
    assert faust_committed_offset(SimpleNamespace(_committed_offset={}), tp) is None
    assert faust_committed_offset(object(), tp) is None  # a Faust without it: unknown, not a crash


def test_faust_privates_are_read_in_one_place_only():
    users = {
        p.relative_to(PIPELINE).as_posix(): p.read_text(encoding="utf-8").count("._committed_offset")
        + p.read_text(encoding="utf-8").count('"_committed_offset"')
        for p in PIPELINE.rglob("*.py")
    }
    assert {name: n for name, n in users.items() if n} == {"kafka/worker.py": 1}


def test_a_worker_is_built_of_its_parts(tmp_path, ruleset):
    runtime = WorkerRuntime(Settings(rules_dir=ruleset.directory, datadir=tmp_path / "w"))
    assert isinstance(runtime.offsets, OffsetTracker) and isinstance(runtime.sender, OutputSender)
    assert isinstance(runtime.rebuilds, RebuildCoordinator) and isinstance(runtime.store, TableStateStore)
    assert runtime.engine.store is runtime.store is runtime.rebuilds.store
    assert isinstance(runtime.app.consumer, BatchConsumer)  # inputs come in fetched batches
    assert runtime.app.consumer.fetch_max_wait_ms == 100  # Settings.fetch_max_wait_ms, not Faust's 1,500
    # the account stage's repartition comes in batches too
    assert runtime.app.consumer.batch_topics == runtime.input_names | {"live.accounts"}
    assert runtime.engine.accounts is runtime.account_store and runtime.engine.forward_accounts
    assert runtime.input_names == {
        f"live.{t}" for t in ("chat", "danmaku", "transcript", "price", "meta", "orders", "appeals")
    }


def test_a_worker_keeps_its_group_name_in_its_data_directory(tmp_path):
    first = instance_id(Settings(datadir=tmp_path / "w1"))
    assert first.startswith("livewatch-") and instance_id(Settings(datadir=tmp_path / "w1")) == first  # a restart
    assert instance_id(Settings(datadir=tmp_path / "w2")) != first  # another worker
    assert instance_id(Settings(datadir=tmp_path / "w1", instance_id="livewatch-0")) == "livewatch-0"  # set by ops


def test_the_worker_joins_with_static_membership_and_a_short_session(tmp_path, ruleset):
    runtime = WorkerRuntime(Settings(rules_dir=ruleset.directory, datadir=tmp_path / "w", session_timeout_s=8))
    conf = runtime.app.conf
    assert conf.consumer_group_instance_id == instance_id(Settings(datadir=tmp_path / "w"))
    assert conf.broker_session_timeout == 8 and conf.broker_heartbeat_interval == 2


def test_held_deliveries_below_the_committed_offset_are_not_decided_again():
    chat, dm = TP("live.chat", 0), TP("live.danmaku", 1)
    held = [SimpleNamespace(tp=chat, offset=o) for o in (3, 4, 5)] + [SimpleNamespace(tp=dm, offset=9)]
    # another worker decided chat 0 up to offset 4 meanwhile; danmaku 1's committed offset is not known
    kept = not_decided_yet(held, {chat: 5}.get)  # type: ignore[arg-type]
    assert [(m.tp, m.offset) for m in kept] == [(chat, 5), (dm, 9)]


def test_the_worker_decides_only_once_faust_has_ended_the_rebalance_of_its_assignment(tmp_path, ruleset):
    runtime = WorkerRuntime(Settings(rules_dir=ruleset.directory, datadir=tmp_path / "w"))
    app = runtime.app
    app.consumer_generation_id = 1
    app.on_rebalance_start()
    runtime._assigned, runtime._generation = True, 1  # as _on_assigned leaves them
    assert not runtime._ready()  # Faust is recovering the assignment's tables
    app.on_rebalance_end()
    assert runtime._ready()

    app.on_rebalance_start()  # the next rebalance begins; generation 1's recovery still ends after that
    app.on_rebalance_end()
    app.consumer_generation_id = 2  # generation 2's assignment
    runtime._generation = 2
    assert not app.rebalancing and not runtime._ready()  # its tables are not recovered yet
    app.on_rebalance_end()  # now they are
    assert runtime._ready()
    runtime._assigned = False  # revoked
    assert not runtime._ready()


async def test_a_worker_waiting_long_for_faust_to_end_a_rebalance_says_so(tmp_path, ruleset, monkeypatch, caplog):
    runtime = WorkerRuntime(Settings(rules_dir=ruleset.directory, datadir=tmp_path / "w", reload_every_s=3600))
    runtime.app.on_rebalance_start()
    runtime._assigned, runtime._generation = True, runtime.app.consumer_generation_id
    clock = [1000.0]
    monkeypatch.setattr(worker_module.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.WARNING, logger="livewatch.worker"):
        for t in (1000, 1030, 1059):
            clock[0] = t
            await runtime._tick()
        assert "has not ended the rebalance" not in caplog.text
        clock[0] = 1061
        await runtime._tick()
        assert "assigned for 61 s and Faust has not ended the rebalance" in caplog.text
        runtime.app.on_rebalance_end()
        caplog.clear()
        clock[0] = 1200
        await runtime._tick()
        assert "has not ended" not in caplog.text and runtime._ready()
