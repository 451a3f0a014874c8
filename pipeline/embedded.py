"""The embedded runtime: the same engine in one process, no Kafka — JSONL in, JSONL out.

Used by ``livewatch demo`` and ``livewatch replay``. Pacing follows the events' own timestamps
(``speed`` × real time, or as fast as possible); output depends only on the input and the rules,
never on the pace, so a replay gives the same alerts and actions byte for byte at any speed.
"""

from __future__ import annotations

import heapq
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from pydantic import BaseModel

from pipeline.engine import Engine, Outcome
from pipeline.metrics import Metrics
from pipeline.privacy import DEV_KEY, Pseudonymizer
from pipeline.ruleset import RulesetWatcher
from schemas.deadletter import MessageSource

if TYPE_CHECKING:
    from pipeline.archive.sink import ArchiveSink

ALERTS_FILE = "alerts.jsonl"
ACTIONS_FILE = "actions.jsonl"
DLQ_FILE = "dlq.jsonl"
#: in a replay, an event more than this ahead of every earlier one counts as from the future
REPLAY_MAX_JUMP_MS = 30 * 24 * 3600 * 1000


def read_jsonl(path: Path) -> Iterator[tuple[MessageSource, bytes]]:
    """Each non-blank line of a file with its position; bytes, so invalid UTF-8 reaches the DLQ intact."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield MessageSource(file=str(path), line=number), line


def merge_jsonl(recording: Path, *others: Path) -> Iterator[tuple[MessageSource, bytes]]:
    """The lines of a recording with those of other input files (a console's ``overturns.jsonl``) merged in by
    event time, each file's own order kept. At equal event time the recording's line goes first, as on Kafka,
    where the console's events carry no publisher sequence (``merge.NO_SEQ``). A line without a readable ``ts``
    keeps its place after the line before it."""

    def keyed(index: int, path: Path) -> Iterator[tuple[int, int, MessageSource, bytes]]:
        ts = -1
        for source, raw in read_jsonl(path):
            try:
                ts = int(json.loads(raw)["ts"])
            except (ValueError, KeyError, TypeError, RecursionError):
                pass
            yield ts, index, source, raw

    merged = heapq.merge(*(keyed(i, p) for i, p in enumerate((recording, *others))), key=lambda r: r[:2])
    for _, _, source, raw in merged:
        yield source, raw


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


#: how often (wall time) a running replay flushes its output files: a reader tailing them sees a record this late
FLUSH_EVERY_S = 0.2


class JsonlWriter:
    """Append-only JSONL output (UTF-8). Buffered: ``EmbeddedRuntime.run`` flushes it every ``FLUSH_EVERY_S``, before
    it waits to pace a replay, and when it closes — a flush per record, a system call each, was 1–2 % of a replay."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[bytes] = open(path, "wb")

    def write(self, record: BaseModel) -> None:
        # the bytes ``model_dump_json`` decodes to a string, written as they are
        self._f.write(record.__pydantic_serializer__.to_json(record) + b"\n")

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()


@dataclass
class RunStats:
    events: int = 0
    findings: int = 0
    actions: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    ruleset_versions: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        dl = ", ".join(f"{k}={v}" for k, v in sorted(self.dead_letters.items())) or "none"
        return (
            f"{self.events:,} events in {self.elapsed_s:.2f} s ({self.events_per_s:,.0f} events/s); "
            f"{self.findings} alerts, {self.actions} actions; dead letters: {dl}; "
            f"ruleset {', '.join(self.ruleset_versions)}"
        )


class Progress:
    """A one-line progress report on stderr every few seconds, for long replays."""

    def __init__(self, total: int | None, every_s: float = 2.0, stream: IO[str] = sys.stderr) -> None:
        self.total, self.every_s, self.stream = total, every_s, stream
        self._start = self._last = time.monotonic()

    def tick(self, done: int, stats: RunStats, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        rate = done / (now - self._start) if now > self._start else 0.0
        share = f" ({100 * done / self.total:.1f} %)" if self.total else ""
        of = f" / {self.total:,}" if self.total else ""
        self.stream.write(
            f"  {done:,}{of} messages{share}, {rate:,.0f}/s, {stats.findings} alerts, {stats.actions} actions\n"
        )
        self.stream.flush()


def _flush(outputs: Iterable[JsonlWriter]) -> None:
    for out in outputs:
        out.flush()


class EmbeddedRuntime:
    def __init__(
        self,
        out_dir: Path,
        rules_dir: Path | None = None,
        speed: float | None = None,
        metrics: Metrics | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        reload_every_s: float = 1.0,
        pseudonym_key: str = DEV_KEY,
        archive: ArchiveSink | None = None,
    ) -> None:
        self.archive = archive  # every input line and output also archived (pipeline/archive/), if given
        self.watcher = RulesetWatcher(rules_dir)
        self.metrics = metrics or Metrics()
        self.metrics.set_ruleset(self.watcher.current.version)
        # "From the future" is judged against the recording's own latest event time (plus a month: real
        # recordings have gaps of hours), not the wall clock, so a replay rejects the same lines whenever
        # it runs.
        self._latest_ts: int | None = None
        self.engine = Engine(
            lambda: self.watcher.current,
            metrics=self.metrics,
            clock_ms=self._stream_clock,
            pseudonymizer=Pseudonymizer(pseudonym_key),
        )
        self.out_dir = out_dir
        self.speed = speed
        self.on_outcome = on_outcome
        self.reload_every_s = reload_every_s

    def _stream_clock(self) -> int:
        return self._latest_ts + REPLAY_MAX_JUMP_MS if self._latest_ts is not None else 1 << 62

    def run(self, messages: Iterable[tuple[MessageSource, bytes]], progress: Progress | None = None) -> RunStats:
        alerts = JsonlWriter(self.out_dir / ALERTS_FILE)
        actions = JsonlWriter(self.out_dir / ACTIONS_FILE)
        dlq = JsonlWriter(self.out_dir / DLQ_FILE)
        stats = RunStats(ruleset_versions=[self.watcher.current.version])
        outputs = (alerts, actions, dlq)
        start = last_poll = last_flush = time.monotonic()
        first_ts: int | None = None
        done = 0
        try:
            for source, raw in messages:
                now = time.monotonic()
                if now - last_flush >= FLUSH_EVERY_S:
                    last_flush = now
                    _flush(outputs)
                if now - last_poll >= self.reload_every_s:
                    last_poll = now
                    self.watcher.reload(self.metrics, lambda msg: print(msg, file=sys.stderr))
                    if self.watcher.current.version != stats.ruleset_versions[-1]:
                        stats.ruleset_versions.append(self.watcher.current.version)
                outcome = self.engine.process_raw(raw, source)
                event = outcome.event
                if event is not None:
                    stats.events += 1
                    if self._latest_ts is None or event.ts > self._latest_ts:
                        self._latest_ts = event.ts
                    if self.speed:
                        first_ts = event.ts if first_ts is None else first_ts
                        # Pace by event time. The event is decided already; only its output waits, so the
                        # decision is identical at every speed.
                        delay = start + (event.ts - first_ts) / 1000 / self.speed - time.monotonic()
                        if delay > 0:
                            _flush(outputs)  # what is decided is readable while it waits
                            time.sleep(delay)
                # most events lead to nothing (``Outcome.has_outputs`` without its frame, 0.7 % of the instructions;
                # this runtime forwards nothing to an account stage)
                if outcome.findings or outcome.actions or outcome.dead_letters:
                    for f in outcome.findings:
                        alerts.write(f)
                    for a in outcome.actions:
                        actions.write(a)
                    for d in outcome.dead_letters:
                        dlq.write(d)
                        stats.dead_letters[d.reason] += 1
                    stats.findings += len(outcome.findings)
                    stats.actions += len(outcome.actions)
                if self.archive is not None:
                    self.archive.record(source, raw, outcome)
                done += 1
                if self.on_outcome is not None:
                    self.on_outcome(outcome)
                if progress is not None:
                    progress.tick(done, stats)
        finally:
            for out in outputs:
                out.close()
            if self.archive is not None:
                self.archive.close()  # what was decided is archived even if the run stops early
            stats.elapsed_s = time.monotonic() - start
        if progress is not None:
            progress.tick(done, stats, force=True)
        return stats
