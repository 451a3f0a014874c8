"""The Faust wiring, without a broker: the one read of a Faust private, and the parts a worker is built of."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from faust.types import TP

from pipeline.kafka.batches import BatchConsumer
from pipeline.kafka.offsets import OffsetTracker
from pipeline.kafka.rebuild import RebuildCoordinator
from pipeline.kafka.sender import OutputSender
from pipeline.kafka.state_store import TableStateStore
from pipeline.kafka.worker import WorkerRuntime, faust_committed_offset, instance_id
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
