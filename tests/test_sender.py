"""Sending an event's outputs: every alert, action and dead letter on its topic with its key, broker acks
awaited, retriable failures retried, the rest left to the caller."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RequestTimedOutError

from pipeline.engine import Engine, Outcome
from pipeline.errors import TransientError
from pipeline.kafka.sender import OutputSender
from pipeline.metrics import Metrics
from schemas.deadletter import DeadLetter, MessageSource
from tests.builders import say


class FakeTopic:
    """A topic whose sends fail with ``errors`` first, then succeed; acks are futures, as Faust's are."""

    def __init__(self, name: str, errors: list[Exception] | None = None) -> None:
        self.name = name
        self.errors = list(errors or [])
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.acked = 0

    async def send(self, *, key, value):
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((key, value))
        ack = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_soon(self._ack, ack)
        return ack

    def _ack(self, future) -> None:
        self.acked += 1
        future.set_result(None)


@pytest.fixture
def outcome(ruleset):
    return Engine(ruleset).process(say("这是全网最低价，喝了能降血压", room="r7"))


def sender(alerts=None, actions=None, dlq=None):
    topics = alerts or FakeTopic("alerts"), actions or FakeTopic("actions"), dlq or FakeTopic("dlq")
    return OutputSender(*topics, Metrics(), backoff_s=0.001), topics


async def test_every_output_goes_to_its_topic_with_its_key_and_is_acknowledged_before_send_returns(outcome):
    assert outcome.findings and outcome.actions
    dead = DeadLetter.of(b"{x", "invalid_json", "bad", MessageSource(topic="live.chat", partition=0, offset=3))
    outcome.dead_letters.append(dead)
    s, (alerts, actions, dlq) = sender()
    await s.send(outcome, key=b"r7")
    assert alerts.sent == [(b"r7", f.model_dump_json().encode()) for f in outcome.findings]
    assert actions.sent == [(a.action_id.encode(), a.model_dump_json().encode()) for a in outcome.actions]
    assert dlq.sent == [(b"r7", dead.model_dump_json().encode())]
    assert (alerts.acked, actions.acked, dlq.acked) == (len(alerts.sent), len(actions.sent), 1)


async def test_nothing_to_send_sends_nothing():
    s, topics = sender()
    await s.send(Outcome(), key=b"r")
    assert all(not t.sent for t in topics)


async def test_retriable_failures_are_retried_and_resend_everything_with_the_same_ids(outcome):
    s, (alerts, actions, _) = sender(actions=FakeTopic("actions", [RequestTimedOutError(), OSError("reset")]))
    await s.send(outcome, key=b"r7")
    assert len(actions.sent) == len(outcome.actions)
    assert alerts.sent == [(b"r7", f.model_dump_json().encode()) for f in outcome.findings] * 3  # harmless copies


async def test_a_broker_that_stays_unreachable_is_a_transient_error(outcome):
    s, _ = sender(alerts=FakeTopic("alerts", [KafkaConnectionError()] * 10))
    with pytest.raises(TransientError, match="failed 5 times"):
        await s.send(outcome, key=b"r7")


async def test_an_error_of_the_message_itself_is_not_retried(outcome):
    alerts = FakeTopic("alerts", [MessageSizeTooLargeError(), RequestTimedOutError()])
    s, _ = sender(alerts=alerts)
    with pytest.raises(MessageSizeTooLargeError):
        await s.send(outcome, key=b"r7")
    assert len(alerts.errors) == 1  # tried once


async def test_an_unforeseen_failure_is_kept_in_the_dlq_with_its_reason(caplog):
    s, (_, _, dlq) = sender()
    source = MessageSource(topic="live.chat", partition=2, offset=9)
    try:
        raise ValueError("state unreadable")
    except ValueError as e:
        await s.dead_letter(e, b'{"kind": "chat"}', source, key=b"r")
    ((key, value),) = dlq.sent
    letter = DeadLetter.model_validate_json(value)
    assert key == b"r" and letter.reason == "processing_error" and "state unreadable" in letter.detail
    assert letter.raw() == b'{"kind": "chat"}' and letter.source == source
    samples = {x.name + str(x.labels): x.value for m in s.metrics.registry.collect() for x in m.samples}
    assert samples["livewatch_dead_letters_total{'reason': 'processing_error'}"] == 1
    assert "processing live.chat[2]@9 failed" in caplog.text


# -- a batch's outputs ------------------------------------------------------------------------------


class SlowTopic(FakeTopic):
    """Acks arrive only after every send of the batch was handed over: a sender awaiting each ack before the
    next send would see the acks of a batch one by one; this one records how many sends preceded each ack."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.sent_before_ack: list[int] = []

    def _ack(self, future) -> None:
        self.sent_before_ack.append(len(self.sent))
        super()._ack(future)


def dead(offset: int) -> Outcome:
    source = MessageSource(topic="live.chat", partition=0, offset=offset)
    return Outcome(dead_letters=[DeadLetter.of(b"{x", "invalid_json", "bad", source)])


async def test_a_batch_is_sent_at_once_and_every_ack_is_awaited_before_send_many_returns(outcome):
    s, (alerts, actions, dlq) = sender(dlq=SlowTopic("dlq"))
    errors = await s.send_many([(dead(1), b"a"), (Outcome(), b"b"), (outcome, b"r7"), (dead(2), b"c")])
    assert errors == [None, None, None, None]
    assert [key for key, _ in dlq.sent] == [b"a", b"c"]  # in the order of the batch
    assert dlq.sent_before_ack == [2, 2]  # both handed over before the first ack came back
    assert (alerts.acked, actions.acked, dlq.acked) == (len(outcome.findings), len(outcome.actions), 2)


async def test_an_error_of_one_events_output_is_returned_for_that_event_and_the_rest_is_sent(outcome):
    s, (alerts, actions, dlq) = sender(dlq=FakeTopic("dlq", [MessageSizeTooLargeError()]))
    errors = await s.send_many([(dead(1), b"a"), (outcome, b"r7"), (dead(2), b"c")])
    assert isinstance(errors[0], MessageSizeTooLargeError) and errors[1:] == [None, None]
    assert dlq.sent == [(b"c", dead(2).dead_letters[0].model_dump_json().encode())]
    assert alerts.acked == len(outcome.findings) and actions.acked == len(outcome.actions)


async def test_a_retriable_failure_resends_only_that_events_outputs(outcome):
    s, (alerts, actions, dlq) = sender(dlq=FakeTopic("dlq", [RequestTimedOutError()]))
    assert await s.send_many([(dead(1), b"a"), (outcome, b"r7")]) == [None, None]
    assert [key for key, _ in dlq.sent] == [b"a"]  # sent again once
    assert len(alerts.sent) == len(outcome.findings)  # the other event's outputs went once


async def test_a_batch_the_broker_never_takes_is_a_transient_error():
    s, _ = sender(dlq=FakeTopic("dlq", [KafkaConnectionError()] * 10))
    with pytest.raises(TransientError, match="failed 5 times"):
        await s.send_many([(dead(1), b"a"), (dead(2), b"b")])


async def test_the_handed_callback_runs_once_every_message_is_with_the_producer_and_before_any_ack(outcome):
    # The worker's transaction adds its input offsets then: beside the produce requests, not after their acks.
    s, (alerts, actions, dlq) = sender()
    seen: list[tuple[int, int, int]] = []
    errors = await s.send_many(
        [(outcome, b"r7"), (Outcome(), b"r8")],
        on_handed=lambda: seen.append((len(alerts.sent), len(actions.sent), alerts.acked + actions.acked)),
    )
    assert errors == [None, None]
    assert seen == [(len(outcome.findings), len(outcome.actions), 0)]


async def test_the_handed_callback_runs_once_however_many_attempts_the_sends_take(outcome):
    s, (alerts, _, _) = sender(alerts=FakeTopic("alerts", [RequestTimedOutError()]))  # the event is sent again
    calls = []
    assert await s.send_many([(outcome, b"r7")], on_handed=lambda: calls.append(len(alerts.sent))) == [None]
    assert calls == [0] and len(alerts.sent) == len(outcome.findings)
