"""Prometheus metrics. Names are the contract with deploy/prometheus and deploy/grafana.

No user or room ids in labels (unbounded cardinality, and personal data): labels are topics, kinds,
detectors, rule ids, actions and reasons — all bounded sets.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from schemas.deadletter import DEAD_LETTER_REASONS
from schemas.findings import ActionType


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = EventCounts(registry=r)
        self.findings = Counter(
            "livewatch_findings_total", "Findings raised", ["detector", "rule_id", "status"], registry=r
        )
        self.actions = Counter("livewatch_actions_total", "Enforcement actions issued", ["action"], registry=r)
        self.dead_letters = Counter(
            "livewatch_dead_letters_total", "Input messages rejected to the dead-letter output", ["reason"], registry=r
        )
        self.detector_errors = Counter(
            "livewatch_detector_errors_total", "Detector exceptions on valid events", ["detector"], registry=r
        )
        self.latency = StepHistogram(
            "livewatch_decision_latency_seconds",
            "Event time to decision (wall clock), live runtimes only",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            r,
        )
        # when the latest step decided its events (set once a step): how long since a worker last decided anything,
        # and where a benchmark's run really ended (a poll of the event counter finds it up to a poll late)
        self.last_decision = Gauge(
            "livewatch_last_decision_timestamp_seconds",
            "Wall-clock time (Unix seconds) of this worker's latest step of decided events",
            registry=r,
        )
        self.partitions_assigned = Gauge(
            "livewatch_partitions_assigned", "Input partition numbers this worker owns", registry=r
        )
        self.merge_held = Gauge(
            "livewatch_merge_held_events",
            "Events waiting in the event-time merge for the other input topics",
            registry=r,
        )
        self.merge_forced = Counter(
            "livewatch_merge_forced_total",
            "Events released by a merge bound (lateness or wait) rather than in order",
            ["bound"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "livewatch_consumer_lag_messages",
            "Messages on owned input partitions not yet received, by topic",
            ["topic"],
            registry=r,
        )
        self.unowned = Counter(
            "livewatch_unowned_messages_total",
            "Messages Faust delivered after their partition moved to another worker (left "
            "to the new owner, which reads them from the committed offset)",
            registry=r,
        )
        self.reread = Counter(
            "livewatch_reread_messages_total",
            "Messages Faust skipped after a rebalance, read again directly and decided",
            registry=r,
        )
        self.rebuilt_events = Counter(
            "livewatch_rebuilt_events_total",
            "Decided events re-read after a rebalance and fed again to the detectors whose state is not durable "
            "(sliding windows), findings discarded",
            registry=r,
        )
        self.rebuilds = Counter(
            "livewatch_rebuilds_total",
            "Rebuilds of non-durable detector state for a newly owned partition, by result",
            ["result"],
            registry=r,
        )
        self.rebuild_seconds = Histogram(
            "livewatch_rebuild_seconds",
            "Wall time to rebuild one partition's non-durable detector state",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.partitions_rebuilding = Gauge(
            "livewatch_partitions_rebuilding",
            "Owned partitions whose events wait while their non-durable detector state is rebuilt",
            registry=r,
        )
        self.partitions_unrebuilt = Gauge(
            "livewatch_partitions_unrebuilt",
            "Owned partitions running with empty non-durable detector state because their rebuild failed",
            registry=r,
        )
        # One step's transaction (exactly-once): how long a decided step waited for the one before it to commit
        # ("wait": the worker holds one in flight), and how long its own took from begin to commit ("run"). An
        # event's alert waits for about one of each after its step, so these say where latency goes.
        self.transaction_seconds = Histogram(
            "livewatch_transaction_seconds",
            "A step's Kafka transaction: waiting for the one in flight before it, and its own begin to commit",
            ["phase"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.transaction_phase = {phase: self.transaction_seconds.labels(phase=phase) for phase in ("wait", "run")}
        self.rooms_active = Gauge("livewatch_rooms_active", "Rooms with state in this process", registry=r)
        self.ruleset_info = Gauge("livewatch_ruleset_info", "The loaded ruleset (value 1)", ["version"], registry=r)
        self.ruleset_reloads = Counter(
            "livewatch_ruleset_reloads_total", "Ruleset reload attempts", ["result"], registry=r
        )

        # Create the known label values at 0, so rate()/increase() see the first increment too.
        for action in get_args(ActionType):
            self.actions.labels(action=action)
        for reason in DEAD_LETTER_REASONS:
            self.dead_letters.labels(reason=reason)
        for result in ("ok", "refused"):
            self.ruleset_reloads.labels(result=result)
        for bound in ("lateness", "wait"):
            self.merge_forced.labels(bound=bound)
        for result in ("ok", "failed"):
            self.rebuilds.labels(result=result)

    def set_ruleset(self, version: str) -> None:
        self.ruleset_info.clear()
        self.ruleset_info.labels(version=version).set(1)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Expose /metrics; loopback unless configured otherwise (DESIGN.md reliability rules)."""
        start_http_server(port, addr=host, registry=self.registry)


class EventCounts:
    """``livewatch_events_total{source, kind}``: every input event the engine accepts, counted in a plain dict and
    read by the registry at scrape time (a custom collector). A ``Counter`` child's ``inc`` takes a lock per call;
    once per event that was ≈ 1 % of a replay's instructions, and nothing else reads the count between scrapes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        #: source → kind → events (the engine's per-event step: two dict look-ups and an add)
        self.counts: dict[str, dict[str, int]] = {}
        self._created: dict[tuple[str, str], float] = {}
        registry.register(self)

    def add(self, source: str, kind: str) -> None:
        of_source = self.counts.get(source)
        if of_source is None:
            of_source = self.counts[source] = {}
        n = of_source.get(kind)
        if n is None:
            self._created[(source, kind)] = time.time()
            n = 0
        of_source[kind] = n + 1

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily("livewatch_events", "Input events accepted", labels=["source", "kind"])

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("livewatch_events", "Input events accepted", labels=["source", "kind"])
        # copied first (each copy is one step under the GIL): the engine's thread may add a source meanwhile
        for source, kinds in list(self.counts.items()):
            for kind, n in list(kinds.items()):
                family.add_metric([source, kind], n, created=self._created.get((source, kind)))
        yield family


class StepHistogram:
    """A histogram without labels observed a step's values at a time (``observe_many``) and read by the registry at
    scrape time (a custom collector, as ``EventCounts``), exposed as ``Histogram`` exposes one: ``_bucket`` per
    ``le`` with +Inf, ``_count``, ``_sum``, ``_created``. ``Histogram.observe`` takes two locks and walks the buckets
    on every call; once per decided event that was ≈ 3 % of one worker's time in section b of scripts/bench.py."""

    def __init__(self, name: str, documentation: str, bounds: Iterable[float], registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in bounds)  # upper bounds, ascending; +Inf follows
        if list(self.bounds) != sorted(set(self.bounds)):
            raise ValueError(f"{name}: bucket bounds must be ascending and distinct: {self.bounds}")
        self.counts = [0] * (len(self.bounds) + 1)  # per bucket, not cumulative; the last one is +Inf's
        # the ``le`` labels as prometheus_client writes a Histogram's (an untyped helper of the library's own)
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self.total = 0.0
        self._created = time.time()
        registry.register(self)

    def observe_many(self, amounts: Iterable[float]) -> None:
        """Observe each of ``amounts``: in the first bucket whose bound it does not exceed, as ``Histogram``."""
        counts, bounds, total = self.counts, self.bounds, 0.0
        for amount in amounts:
            counts[bisect_left(bounds, amount)] += 1
            total += amount
        self.total += total

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        # copied first (one step under the GIL): the worker's loop may observe meanwhile
        counts, total = list(self.counts), self.total
        cumulative = list(accumulate(counts))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], list(zip(self._les, cumulative, strict=True)), total)
        family.samples.append(Sample(f"{self.name}_created", {}, self._created))
        yield family
