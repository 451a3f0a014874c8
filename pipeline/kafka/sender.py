"""Sends outputs (alerts, actions, dead letters) and waits for the broker's acks, retrying what can be
retried. The worker sends a whole batch's outputs at once (``send_many``) and counts an event as done only
once that has returned."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from pipeline.engine import Outcome
from pipeline.errors import TransientError
from pipeline.metrics import Metrics
from schemas.deadletter import DeadLetter, MessageSource

log = logging.getLogger("livewatch.worker.sender")

SEND_ATTEMPTS = 5


class OutputTopic(Protocol):
    """What the sender needs of a topic (a Faust topic is one): ``send`` returns the broker ack's future."""

    def send(self, *, key: bytes | None, value: bytes) -> Awaitable[Awaitable[Any]]: ...


def _retriable(e: BaseException) -> bool:
    return bool(getattr(e, "retriable", False)) or isinstance(e, (asyncio.TimeoutError, OSError))


class OutputSender:
    def __init__(
        self,
        alerts: OutputTopic,
        actions: OutputTopic,
        dlq: OutputTopic,
        metrics: Metrics,
        attempts: int = SEND_ATTEMPTS,
        backoff_s: float = 0.2,
        accounts: OutputTopic | None = None,
    ) -> None:
        self.alerts, self.actions, self.dlq = alerts, actions, dlq
        self.accounts = accounts  # the account stage's repartition topic (key = user id), if the runtime has one
        self.metrics = metrics
        self.attempts = attempts
        self.backoff_s = backoff_s

    def _messages(self, outcome: Outcome, key: bytes | None) -> list[tuple[OutputTopic, bytes | None, bytes]]:
        return (
            [(self.alerts, f.room_id.encode(), f.model_dump_json().encode()) for f in outcome.findings]
            + [(self.actions, a.action_id.encode(), a.model_dump_json().encode()) for a in outcome.actions]
            + [(self.dlq, key, d.model_dump_json().encode()) for d in outcome.dead_letters]
            + (
                [(self.accounts, r.account.encode(), r.model_dump_json().encode()) for r in outcome.to_accounts]
                if self.accounts is not None
                else []
            )
        )

    async def send(self, outcome: Outcome, key: bytes | None) -> None:
        """Send one event's alerts (key = room), actions (key = action id) and dead letters (key = the input's
        key) and await their broker acks.

        Raises ``TransientError`` when the broker stays unreachable; any other error is the message's own
        (too large, say) and is left to the caller to dead-letter."""
        (error,) = await self.send_many([(outcome, key)])
        if error is not None:
            raise error

    async def send_many(
        self, batch: Sequence[tuple[Outcome, bytes | None]], on_handed: Callable[[], None] | None = None
    ) -> list[Exception | None]:
        """Send the outputs of many events at once, then await every broker ack together. ``on_handed`` is
        called once, when every message of the first attempt is with the producer and before any ack is awaited.

        Returns, per ``(outcome, key)`` of ``batch``, None once all its messages are acknowledged by the
        broker, or the error of one of them that is the message's own (not retried; the caller dead-letters
        that event). An event whose send failed in a retriable way is sent again, all its messages, up to
        ``attempts`` times in all (copies carry the same ids, so they are harmless); then ``TransientError``.
        Messages are handed to the producer in the order of ``batch``."""
        errors: list[Exception | None] = [None] * len(batch)
        messages = [self._messages(outcome, key) if outcome.has_outputs else [] for outcome, key in batch]
        todo = [i for i, m in enumerate(messages) if m]
        for attempt in range(self.attempts):
            failures: list[tuple[int, BaseException]] = []
            acks: list[tuple[int, Awaitable[Any]]] = []
            for i in todo:
                try:
                    for topic, k, v in messages[i]:
                        acks.append((i, await topic.send(key=k, value=v)))
                except Exception as e:
                    failures.append((i, e))
            if on_handed is not None:
                on_handed()
                on_handed = None
            results = await asyncio.gather(*(ack for _, ack in acks), return_exceptions=True)
            failures += [(i, r) for (i, _), r in zip(acks, results, strict=True) if isinstance(r, BaseException)]
            retry: set[int] = set()
            last: BaseException | None = None  # a retriable error, for the final report
            for i, failure in failures:
                if isinstance(failure, asyncio.CancelledError):
                    raise failure
                if isinstance(failure, Exception) and _retriable(failure):
                    retry.add(i)
                    last = failure
                else:
                    errors[i] = failure if isinstance(failure, Exception) else RuntimeError(repr(failure))
            todo = sorted(i for i in retry if errors[i] is None)
            if not todo:
                return errors
            if attempt == self.attempts - 1:
                raise TransientError(f"sending outputs failed {self.attempts} times: {last!r}") from last
            await asyncio.sleep(self.backoff_s * 2**attempt)  # duplicates from a retry carry the same ids
        return errors  # pragma: no cover (attempts < 1)

    def failure(self, error: Exception, raw: bytes, source: MessageSource) -> Outcome:
        """An event that failed in a way nobody foresaw: logged, counted, and kept with the reason as a
        dead letter (the outcome to send in place of the event's own)."""
        log.error("processing %s failed", source, exc_info=error)
        self.metrics.dead_letters.labels(reason="processing_error").inc()
        return Outcome(dead_letters=[DeadLetter.of(raw, "processing_error", repr(error)[:1000], source)])

    async def dead_letter(self, error: Exception, raw: bytes, source: MessageSource, key: bytes | None) -> None:
        """``failure``, sent and acknowledged by the broker."""
        await self.send(self.failure(error, raw, source), key=key)
