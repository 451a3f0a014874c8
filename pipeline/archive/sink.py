"""The embedded runtime's archive sink: every input line, dead letter, alert and action of a replay or the
demo, archived as the Kafka archiver archives the topics (same rows, same payload bytes: an alert's payload
is its line in alerts.jsonl, which is also the message the worker publishes)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.archive.rows import dead_letter_row, event_row, output_row
from pipeline.archive.writer import ArchiveWriter, FlushStats
from pipeline.engine import Outcome
from schemas.deadletter import MessageSource


class ArchiveSink:
    def __init__(self, writer: ArchiveWriter, on_flush: Callable[[FlushStats], None] | None = None) -> None:
        self.writer = writer
        self.on_flush = on_flush
        self._latest_ts = 0  # a line with no usable time is filed under the latest event time seen

    def record(self, source: MessageSource, raw: bytes, outcome: Outcome) -> None:
        if outcome.event is not None:
            self._latest_ts = max(self._latest_ts, outcome.event.ts)
        fallback = self._latest_ts or 946_684_800_000
        self.writer.add(event_row(raw, source, source.line, fallback))
        for d in outcome.dead_letters:
            self.writer.add(dead_letter_row(d.model_dump_json().encode(), source, fallback))
        for f in outcome.findings:
            self.writer.add(output_row("alerts", f.model_dump_json().encode(), source, fallback))
        for a in outcome.actions:
            self.writer.add(output_row("actions", a.model_dump_json().encode(), source, fallback))
        if self.writer.due():
            self._flush()

    def _flush(self) -> None:
        stats = self.writer.flush()
        if self.on_flush is not None and stats.files:
            self.on_flush(stats)

    def close(self) -> None:
        self._flush()
