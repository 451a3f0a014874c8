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
from pipeline.kafka.worker import WorkerRuntime, faust_committed_offset
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
    assert runtime.app.consumer.batch_topics == runtime.input_names
    assert runtime.input_names == {f"live.{t}" for t in ("chat", "danmaku", "transcript", "price", "meta", "orders")}
