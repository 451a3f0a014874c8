"""The Faust wiring, without a broker: the one read of a Faust private, and the parts a worker is built of."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pipeline.ruleset as ruleset_module
from pipeline.kafka.batches import BatchConsumer
from pipeline.kafka.offsets import OffsetTracker
from pipeline.kafka.rebuild import RebuildCoordinator
from pipeline.kafka.sender import OutputSender
from pipeline.kafka.state_store import TableStateStore
from pipeline.kafka.worker import WorkerRuntime, instance_id
from pipeline.settings import Settings

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"


def test_faust_s_committed_offsets_are_not_read():
    # Faust's ``_committed_offset`` is filled at its seek, seconds after a new assignment's batches flow, and can keep
    # an entry of an earlier assignment: the offset tracker takes where delivery starts from the broker instead
    users = {
        p.relative_to(PIPELINE).as_posix(): p.read_text(encoding="utf-8").count("._committed_offset")
        + p.read_text(encoding="utf-8").count('"_committed_offset"')
        for p in PIPELINE.rglob("*.py")
    }
    assert not any(users.values()), users


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


async def test_a_rule_edit_is_loaded_beside_the_loop_and_adopted_between_two_steps(tmp_path, tiny_rules, monkeypatch):
    """A ruleset load is a large part of a second of CPU: in a thread, so that the worker's ticks (the merge's
    release, the stall net) and its steps go on meanwhile with the running ruleset; swapped in between two steps."""
    runtime = WorkerRuntime(Settings(rules_dir=tiny_rules, datadir=tmp_path / "w", reload_every_s=0.01))
    released = []

    async def release() -> None:
        released.append(time.monotonic())

    runtime._release = release  # type: ignore[method-assign]
    runtime._update_lag = lambda: None  # type: ignore[method-assign]  # no consumer without a broker
    load = ruleset_module.load_ruleset
    loaded_in = []

    def slow_load(directory):
        loaded_in.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.6)  # a slow machine's load, and more
        return load(directory)

    monkeypatch.setattr(ruleset_module, "load_ruleset", slow_load)
    before = runtime.watcher.current.version
    claims = tiny_rules / "claims.yaml"
    claims.write_text(claims.read_text(encoding="utf-8").replace("severity: medium", "severity: critical"), "utf-8")

    started = time.monotonic()
    ticks = []
    while loaded_in == [] or time.monotonic() - started < 1.0:  # the load, and more than its 0.6 s
        t = time.monotonic()
        async with runtime._lock:  # a step under way: nothing is swapped in under it
            version = runtime.watcher.current.version
            tick = asyncio.ensure_future(runtime._tick())
            await asyncio.sleep(0.02)
            assert runtime.watcher.current.version == version and not tick.done()
        await tick
        ticks.append(time.monotonic() - t)
    while runtime.watcher.current.version == before and time.monotonic() - started < 10:
        await runtime._tick()
        await asyncio.sleep(0.02)
    assert runtime.watcher.current.rules["claims.tiny.lowest"].severity == "critical"  # adopted
    assert loaded_in == [False]  # once, beside the loop
    assert max(ticks) < 0.3 and len(released) >= 10  # the ticks went on while the load took 0.6 s
    assert runtime.metrics.registry.get_sample_value("livewatch_ruleset_reloads_total", {"result": "ok"}) == 1


async def test_a_load_that_fails_is_counted_logged_and_tried_again(tmp_path, tiny_rules, monkeypatch):
    runtime = WorkerRuntime(Settings(rules_dir=tiny_rules, datadir=tmp_path / "w", reload_every_s=0.01))
    runtime._update_lag = lambda: None  # type: ignore[method-assign]
    load = ruleset_module.load_ruleset
    failures = [OSError("a file vanished mid-read")]

    def flaky_load(directory):
        if failures:
            raise failures.pop()
        return load(directory)

    monkeypatch.setattr(ruleset_module, "load_ruleset", flaky_load)
    claims = tiny_rules / "claims.yaml"
    claims.write_text(claims.read_text(encoding="utf-8").replace("severity: medium", "severity: critical"), "utf-8")
    started = time.monotonic()
    while runtime.watcher.current.rules["claims.tiny.lowest"].severity != "critical":
        assert time.monotonic() - started < 10, "the same bytes are loaded again after a failure"
        await runtime._tick()
        await asyncio.sleep(0.02)
    sample = runtime.metrics.registry.get_sample_value
    assert sample("livewatch_ruleset_reloads_total", {"result": "refused"}) == 1
    assert sample("livewatch_ruleset_reloads_total", {"result": "ok"}) == 1


async def test_a_steps_transaction_sends_only_what_has_outputs_and_redoes_a_refused_one_as_a_dead_letter(
    tmp_path, ruleset
):
    from aiokafka.errors import MessageSizeTooLargeError

    from pipeline.engine import Outcome
    from pipeline.kafka.offsets import Pending
    from pipeline.kafka.worker import _Decided, _Step
    from schemas.deadletter import DeadLetter, MessageSource

    runtime = WorkerRuntime(Settings(rules_dir=ruleset.directory, datadir=tmp_path / "w"))
    attempts: list[list[tuple[Outcome, bytes | None]]] = []
    calls: list[str] = []

    async def send_many(batch, on_handed=None):
        attempts.append(list(batch))
        calls.append("handed")
        on_handed()  # the offsets go while the acks are awaited
        await asyncio.sleep(0)
        return [MessageSizeTooLargeError() if len(attempts) == 1 else None for _ in batch]

    async def record(name, *args):
        calls.append(name)

    runtime.sender.send_many = send_many  # type: ignore[method-assign]
    transactions = SimpleNamespace(
        begin=lambda: record("begin"),
        abort=lambda: record("abort"),
        add_offsets=lambda offsets: record("offsets"),
        commit=lambda: record("commit"),
        log_change=lambda *a: record("change"),
    )
    source = MessageSource(topic="live.chat", partition=0, offset=1)
    loud = Outcome(dead_letters=[DeadLetter.of(b"{}", "schema_violation", "why", source)])
    step = _Step()
    for i, outcome in enumerate([Outcome(), loud, Outcome()]):  # most events lead to nothing
        step.decided.append(_Decided(outcome, b"r1", Pending(i, None), b"{}", source))

    assert await runtime._finish_in_transaction(step, transactions)  # type: ignore[arg-type]
    assert await runtime._in_flight.settled()
    assert all(d.pending.done for d in step.decided)
    assert [[o for o, _ in sends] for sends in attempts][0] == [loud]  # the events without outputs are not sent
    redone = attempts[1][0][0]  # refused (its own error): the transaction is redone with a dead letter instead
    assert redone is not loud and [d.reason for d in redone.dead_letters] == ["processing_error"]
    # each attempt adds the offsets beside its sends; the abort drops them with the refused attempt
    assert calls == ["begin", "handed", "offsets", "abort", "begin", "handed", "offsets", "commit"]


async def test_a_step_whose_offsets_could_not_be_added_is_never_committed(tmp_path, ruleset):
    """The offsets are added beside the sends; when adding them fails, the step's transaction fails (the worker
    stops and a restart reads the step again) instead of committing outputs without their offsets."""
    from pipeline.engine import Outcome
    from pipeline.kafka.offsets import Pending
    from pipeline.kafka.worker import _Decided, _Step
    from schemas.deadletter import MessageSource

    runtime = WorkerRuntime(Settings(rules_dir=ruleset.directory, datadir=tmp_path / "w"))
    calls: list[str] = []
    failures: list[BaseException] = []

    async def send_many(batch, on_handed=None):
        on_handed()
        await asyncio.sleep(0)
        return [None for _ in batch]

    async def record(name, *args):
        calls.append(name)

    async def refuse(offsets):
        calls.append("offsets")
        raise RuntimeError("the group coordinator went away")

    async def crash(error):
        failures.append(error)

    runtime.sender.send_many = send_many  # type: ignore[method-assign]
    runtime._in_flight._on_failure = crash
    transactions = SimpleNamespace(
        begin=lambda: record("begin"),
        abort=lambda: record("abort"),
        add_offsets=refuse,
        commit=lambda: record("commit"),
        log_change=lambda *a: record("change"),
    )
    step = _Step()
    step.decided.append(_Decided(Outcome(), b"r1", Pending(0, None), b"{}", MessageSource(topic="live.chat")))
    assert await runtime._finish_in_transaction(step, transactions)  # type: ignore[arg-type]
    assert not await runtime._in_flight.settled()
    await asyncio.sleep(0)
    assert calls == ["begin", "offsets"]  # no commit
    assert len(failures) == 1 and "group coordinator" in str(failures[0])


async def test_a_message_taken_before_the_committed_offset_was_known_and_below_it_is_not_decided(tmp_path, tiny_rules):
    """The fetcher may start below the committed offset (its own read of it can come before the last owner's
    final transaction is visible: pipeline/kafka/committed.py). What it delivers below is held like the rest until
    the worker's own read answers, then left undecided: the last owner decided it."""
    from faust.types import TP

    from tests.builders import chat, wire

    runtime = WorkerRuntime(Settings(rules_dir=tiny_rules, datadir=tmp_path / "w"))  # no windows to rebuild
    tp = TP("live.chat", 0)
    runtime._owned = {0: {tp}}
    runtime._assigned = True
    runtime.offsets.assign([tp], time.monotonic())
    runtime.rebuilds.assign([0], runtime.watcher.current)
    assert runtime.rebuilds.is_open(0)
    decided: list[int] = []

    async def finish(step) -> bool:
        decided.extend(d.source.offset for d in step.decided)
        return True

    async def acknowledge() -> None:
        return None

    runtime._finish = finish  # type: ignore[method-assign]
    runtime._acknowledge = acknowledge  # type: ignore[method-assign]
    values = [wire(chat("好看", t=o, event_id=f"c{o}")) for o in range(6)]
    values[1] = values[4] = b"{not json"  # dead letters: they need no state, yet wait for the answer too
    messages = [SimpleNamespace(tp=tp, offset=o, key=b"r1", value=v, headers=[]) for o, v in enumerate(values)]
    await runtime._receive(messages)  # delivered from offset 0: the fetcher's (stale) committed offset
    assert decided == []  # held: where delivery starts is not known yet
    runtime.offsets.set_bounds(tp, 0, 6, 3, time.monotonic())  # the group committed 3 (read stable)
    await runtime._release()
    assert sorted(decided) == [3, 4, 5]


async def test_the_account_stage_starts_at_the_committed_offset_read_stable(tmp_path, tiny_rules, monkeypatch):
    """The account stage decides live.accounts from where the group committed, read stable, not from where the
    fetcher started: its own read may predate the last owner's final transaction."""
    from faust.types import TP

    import pipeline.kafka.worker as worker_module
    from schemas.accounts import AccountRecord

    runtime = WorkerRuntime(Settings(rules_dir=tiny_rules, datadir=tmp_path / "w"))
    tp = TP(runtime.account_topic, 0)
    runtime._account_tps = {tp}
    asked: list[list] = []

    async def committed(bootstrap, group, tps, security=None):
        asked.append(tps)
        return {tps[0]: 3}

    monkeypatch.setattr(worker_module, "committed_offsets", committed)
    seen: list[int] = []
    process = runtime.engine.process_account
    runtime.engine.process_account = lambda record: seen.append(int(record.account)) or process(record)  # type: ignore[method-assign]

    async def transact(transaction) -> bool:
        transaction.close()  # the broker's part is tested through the broker
        return True

    runtime._transact = transact  # type: ignore[method-assign]
    record = [AccountRecord(account=str(o)).model_dump_json().encode() for o in range(6)]
    await runtime._decide_accounts([SimpleNamespace(tp=tp, offset=o, key=b"a", value=record[o]) for o in range(5)])
    await runtime._decide_accounts([SimpleNamespace(tp=tp, offset=5, key=b"a", value=record[5])])
    assert seen == [3, 4, 5] and len(asked) == 1  # asked once for the assignment
