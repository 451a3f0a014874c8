"""Sends an event's outputs (alerts, actions, dead letters) and waits for the broker's acks, retrying what
can be retried. An event counts as done only once this returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
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


class OutputSender:
    def __init__(
        self,
        alerts: OutputTopic,
        actions: OutputTopic,
        dlq: OutputTopic,
        metrics: Metrics,
        attempts: int = SEND_ATTEMPTS,
        backoff_s: float = 0.2,
    ) -> None:
        self.alerts, self.actions, self.dlq = alerts, actions, dlq
        self.metrics = metrics
        self.attempts = attempts
        self.backoff_s = backoff_s

    async def send(self, outcome: Outcome, key: bytes | None) -> None:
        """Send alerts (key = room), actions (key = action id) and dead letters (key = the input's key).

        Raises ``TransientError`` when the broker stays unreachable; any other error is the message's own
        (too large, say) and is left to the caller to dead-letter."""
        messages = (
            [(self.alerts, f.room_id.encode(), f.model_dump_json().encode()) for f in outcome.findings]
            + [(self.actions, a.action_id.encode(), a.model_dump_json().encode()) for a in outcome.actions]
            + [(self.dlq, key, d.model_dump_json().encode()) for d in outcome.dead_letters]
        )
        if not messages:
            return
        for attempt in range(self.attempts):
            try:
                futures = [await topic.send(key=k, value=v) for topic, k, v in messages]
                await asyncio.gather(*futures)
                return
            except Exception as e:
                if not getattr(e, "retriable", False) and not isinstance(e, (asyncio.TimeoutError, OSError)):
                    raise
                if attempt == self.attempts - 1:
                    raise TransientError(f"sending outputs failed {self.attempts} times: {e!r}") from e
                await asyncio.sleep(self.backoff_s * 2**attempt)  # duplicates from a retry carry the same ids

    async def dead_letter(self, error: Exception, raw: bytes, source: MessageSource, key: bytes | None) -> None:
        """An event that failed in a way nobody foresaw: keep it, with the reason, in the DLQ."""
        log.exception("processing %s failed", source)
        self.metrics.dead_letters.labels(reason="processing_error").inc()
        await self.send(
            Outcome(dead_letters=[DeadLetter.of(raw, "processing_error", repr(error)[:1000], source)]), key=key
        )
