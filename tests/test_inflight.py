"""Unit tests of ``InFlight``: a step's transaction runs while the next step is decided, one at a time.

Through the real broker the worker's exactly-once tests and the fault runs (tests/test_faults.py) use it
on every step."""

from __future__ import annotations

import asyncio

from pipeline.kafka.transactions import InFlight


class Broker:
    """Records what the transactions did, in order; a commit takes a round trip."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.crashes: list[BaseException] = []

    async def transaction(self, name: str, fail: bool = False) -> None:
        self.log.append(f"begin {name}")
        await asyncio.sleep(0.01)
        if fail:
            raise RuntimeError(f"{name} refused")
        self.log.append(f"commit {name}")

    async def crash(self, error: BaseException) -> None:
        self.crashes.append(error)


async def test_a_transaction_runs_while_the_caller_goes_on_and_the_next_begins_after_its_commit():
    broker = Broker()
    in_flight = InFlight(broker.crash)
    assert await in_flight.start(broker.transaction("step 1"))
    broker.log.append("deciding step 2")  # the caller goes on; the transaction runs at its next await
    assert await in_flight.start(broker.transaction("step 2"))
    assert await in_flight.settled()
    assert broker.log == ["deciding step 2", "begin step 1", "commit step 1", "begin step 2", "commit step 2"]
    assert broker.crashes == []


async def test_a_failed_transaction_crashes_at_once_and_nothing_runs_after_it():
    broker = Broker()
    in_flight = InFlight(broker.crash)
    assert await in_flight.start(broker.transaction("step 1", fail=True))
    await asyncio.sleep(0.05)  # no later step comes to notice: the failure is reported by itself
    assert [str(e) for e in broker.crashes] == ["step 1 refused"]
    later = broker.transaction("step 2")
    assert not await in_flight.start(later)
    assert not await in_flight.settled()
    assert broker.log == ["begin step 1"]  # step 2 never began
    assert len(broker.crashes) == 1


async def test_settled_waits_for_the_transaction_in_flight():
    broker = Broker()
    in_flight = InFlight(broker.crash)
    assert await in_flight.settled()  # nothing in flight
    await in_flight.start(broker.transaction("step 1"))
    assert broker.log == []  # started, not yet begun
    assert await in_flight.settled()
    assert broker.log == ["begin step 1", "commit step 1"]
