"""deploy/: Prometheus rules and config, the Grafana dashboard and the Kubernetes manifests agree with the
code (metric names and labels from pipeline/metrics.py, settings from pipeline/settings.py, the
`livewatch worker` command). No broker, no cluster.

Where `promtool` is on PATH (Debian package `prometheus`), it also checks the config and rules and runs
unit tests that make each alert fire on synthetic series and stay silent on healthy ones; without it
those tests are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics import EventCounts, Metrics
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parent.parent
PROM = REPO / "deploy" / "prometheus"
ALERTS = PROM / "alerts.yml"
PROM_CONFIG = PROM / "prometheus.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "livewatch.json"
K8S = REPO / "deploy" / "k8s"

NAME_RE = re.compile(r"\blivewatch_[a-z_]+\b")
# Labels that Prometheus or our scrape configs attach to every livewatch series.
TARGET_LABELS = {"job", "instance", "env", "namespace", "app"}
# Series used in expressions that livewatch does not export itself.
NON_LIVEWATCH_SERIES = {"up": TARGET_LABELS}
SETTINGS_ENV = {f"LIVEWATCH_{name.upper()}" for name in Settings.model_fields}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")


# -- what livewatch exports ------------------------------------------------------------------------------


def _exported() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Sample name → label names, and family name → its sample names, from a real exposition."""
    metrics = Metrics()
    for metric in vars(metrics).values():
        if isinstance(metric, EventCounts):  # a custom collector: counted in a dict, read at scrape time
            metric.add("x", "x")
            continue
        if not isinstance(metric, MetricWrapperBase):
            continue
        child = metric.labels(*("x" for _ in metric._labelnames)) if metric._labelnames else metric
        if isinstance(metric, Histogram):
            child.observe(0.1)
        elif isinstance(metric, Counter):
            child.inc()
        elif isinstance(metric, Gauge):
            child.set(1)
    samples: dict[str, set[str]] = {}
    families: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            samples.setdefault(s.name, set()).update(s.labels)
            families.setdefault(family.name, set()).add(s.name)
    return samples, families


SAMPLES, FAMILIES = _exported()


def test_the_exposition_has_the_documented_shape():
    # The rest of this file relies on these suffix conventions of prometheus_client.
    assert {"livewatch_events_total", "livewatch_events_created"} <= SAMPLES.keys()
    assert {
        "livewatch_decision_latency_seconds_bucket",
        "livewatch_decision_latency_seconds_sum",
        "livewatch_decision_latency_seconds_count",
    } <= SAMPLES.keys()
    assert SAMPLES["livewatch_decision_latency_seconds_bucket"] == {"le"}
    assert SAMPLES["livewatch_events_total"] == {"source", "kind"}
    assert "livewatch_partitions_assigned" in SAMPLES


# -- the expressions -------------------------------------------------------------------------------------


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels of a collapsed row


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every alert, dashboard target and dashboard variable query."""
    exprs = [(f"alert {r['alert']}", r["expr"]) for r in _alert_rules()]
    dashboard = _dashboard()
    for panel in _panels(dashboard):
        for t in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r} {t.get('refId')}", t["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            exprs.append((f"variable {var['name']}", query))
    return exprs


EXPRESSIONS = _expressions()


def _selectors(expr: str) -> Iterator[tuple[str, set[str]]]:
    """(series name, label names in its matcher) for every selector of an expression."""
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", expr):
        name, matcher = m.group(1), m.group(2) or "{}"
        if name.startswith("livewatch_") or name in NON_LIVEWATCH_SERIES:
            yield name, set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", matcher))


def _labels_of(name: str) -> set[str]:
    return SAMPLES.get(name) or NON_LIVEWATCH_SERIES.get(name) or set()


def test_there_are_expressions_to_check():
    assert len([w for w, _ in EXPRESSIONS if w.startswith("alert")]) >= 10
    assert len([w for w, _ in EXPRESSIONS if w.startswith("panel")]) >= 15


@pytest.mark.parametrize("where,expr", EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_metric_name_in_an_expression_is_exported(where: str, expr: str):
    names = set(NAME_RE.findall(expr))
    assert names or {n for n, _ in _selectors(expr)} & NON_LIVEWATCH_SERIES.keys(), f"{where} uses no metric"
    missing = names - SAMPLES.keys()
    assert not missing, f"{where}: not exported by pipeline.metrics.Metrics: {sorted(missing)}"


@pytest.mark.parametrize("where,expr", EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_label_in_an_expression_exists(where: str, expr: str):
    used: set[str] = set()
    for name, labels in _selectors(expr):
        unknown = labels - _labels_of(name) - TARGET_LABELS
        assert not unknown, f"{where}: {name} has no label {sorted(unknown)}"
        used.add(name)
    available = set().union(*(_labels_of(n) for n in used)) | TARGET_LABELS
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels = {x.strip() for x in clause.split(",") if x.strip()}
        assert labels <= available, f"{where}: grouping by labels no used series has: {sorted(labels - available)}"
    for name, label in re.findall(r"label_values\(\s*([a-z_]+)(?:\{[^}]*\})?\s*,\s*([a-z_]+)\s*\)", expr):
        assert label in _labels_of(name) | TARGET_LABELS, f"{where}: {name} has no label {label}"


def test_metric_names_mentioned_in_prose_are_exported_too():
    # Descriptions and comments name metrics for the reader: a renamed metric must not leave them stale.
    known = SAMPLES.keys() | FAMILIES.keys()
    for path in (ALERTS, PROM_CONFIG, DASHBOARD, *K8S.glob("*.yaml"), REPO / "deploy" / "README.md"):
        stale = set(NAME_RE.findall(path.read_text(encoding="utf-8"))) - known
        assert not stale, f"{path.relative_to(REPO)} names metrics that do not exist: {sorted(stale)}"


def test_the_dashboard_shows_every_metric():
    shown = set()
    for where, expr in EXPRESSIONS:
        if where.startswith("panel"):
            shown |= set(NAME_RE.findall(expr))
    for family, samples in FAMILIES.items():
        useful = {s for s in samples if not s.endswith("_created")}  # the text format has *_created families
        assert not useful or useful & shown, f"no dashboard panel shows {family}"


# -- alerts.yml ------------------------------------------------------------------------------------------


def test_alert_rules_are_complete():
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert isinstance(doc["groups"], list) and doc["groups"]
    names = []
    for group in doc["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            where = rule.get("alert", rule)
            assert isinstance(rule.get("alert"), str) and rule["alert"], where
            assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), where
            assert re.fullmatch(r"\d+[smhd]", str(rule.get("for", ""))), f"{where}: for: missing or malformed"
            assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, where
            annotations = rule.get("annotations", {})
            assert annotations.get("summary") and annotations.get("description"), where
            names.append(rule["alert"])
    assert len(names) == len(set(names)), "duplicate alert names"


def test_alerts_cover_the_failure_modes_of_the_brief():
    exprs = "\n".join(r["expr"] for r in _alert_rules())
    for needle in (
        "livewatch_dead_letters_total",
        "livewatch_detector_errors_total",
        "livewatch_decision_latency_seconds_bucket",
        "livewatch_consumer_lag_messages",
        "livewatch_merge_forced_total",
        "livewatch_partitions_assigned",
        'livewatch_ruleset_reloads_total{result="refused"}',
        'livewatch_actions_total{action="suspend"}',
        "livewatch_events_total",
    ):
        assert needle in exprs, needle


def test_annotation_templates_use_labels_the_alert_can_have():
    for rule in _alert_rules():
        available = set().union(*(_labels_of(n) for n, _ in _selectors(rule["expr"]))) | TARGET_LABELS
        for text in rule["annotations"].values():
            for label in re.findall(r"\$labels\.([a-zA-Z_]+)", text):
                assert label in available, f"{rule['alert']}: annotation uses $labels.{label}"


# -- livewatch.json --------------------------------------------------------------------------------------


def test_dashboard_parses_and_every_panel_queries_prometheus():
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = []
    for panel in _panels(dashboard):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no target"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for t in panel["targets"]:
            assert t["expr"].strip(), panel["title"]
            assert t["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
    assert len(ids) == len(set(ids)), "duplicate panel ids"


def test_dashboard_panels_do_not_overlap():
    cells: dict[tuple[int, int], str] = {}
    for panel in _dashboard()["panels"]:
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


# -- promtool (optional) ---------------------------------------------------------------------------------


def _promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd)


@needs_promtool
def test_promtool_accepts_the_config_and_rules():
    r = _promtool("check", "config", PROM_CONFIG)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _promtool("check", "rules", ALERTS)
    assert r.returncode == 0, r.stdout + r.stderr


def _kubernetes_sd_example() -> list[dict[str, Any]]:
    text = PROM_CONFIG.read_text(encoding="utf-8")
    block = re.search(r"# kubernetes_sd example \(begin\)\n(.*?)\n\s*# kubernetes_sd example \(end\)", text, re.S)
    assert block, "the commented kubernetes_sd example is missing"
    lines = [re.sub(r"^\s*# ?", "", line) for line in block.group(1).splitlines()]
    return yaml.safe_load("\n".join(lines))


def test_the_commented_kubernetes_example_is_a_pod_job():
    (job,) = _kubernetes_sd_example()
    assert job["job_name"] == "livewatch"  # alerts.yml selects on it
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    keep = job["relabel_configs"][0]
    assert keep["action"] == "keep" and keep["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape"
    ]
    annotations = _one("StatefulSet")["spec"]["template"]["metadata"]["annotations"]
    for relabel in job["relabel_configs"]:
        for label in relabel["source_labels"]:
            if label.startswith("__meta_kubernetes_pod_annotation_prometheus_io_"):
                key = "prometheus.io/" + label.removeprefix("__meta_kubernetes_pod_annotation_prometheus_io_")
                assert key in annotations, f"the pods have no {key} annotation"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    labels = {"job": "livewatch", "instance": "w1:9108", **labels}
    return {"series": name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}", "values": values}


def _fires(alert: str, at: str, *labelsets: dict[str, str]) -> dict[str, Any]:
    severity = {r["alert"]: r["labels"]["severity"] for r in _alert_rules()}[alert]
    return {
        "eval_time": at,
        "alertname": alert,
        "exp_alerts": [{"exp_labels": {"severity": severity, "service": "livewatch", **ls}} for ls in labelsets],
    }


def _silent(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


W1 = {"job": "livewatch", "instance": "w1:9108"}
EVENTS = "livewatch_events_total"
DEAD = "livewatch_dead_letters_total"
CREATED = "livewatch_dead_letters_created"
BUCKET = "livewatch_decision_latency_seconds_bucket"


def _latency(values_by_le: dict[str, str], instance: str) -> list[dict[str, str]]:
    return [_series(BUCKET, v, le=le, instance=instance) for le, v in values_by_le.items()]


def _expr(alert: str) -> str:
    (expr,) = [r["expr"] for r in _alert_rules() if r["alert"] == alert]
    return expr


def _nothing(alert: str, *at: str) -> list[dict[str, Any]]:
    """The alert's expression is empty at each time: the alert is neither firing nor even pending
    (alert_rule_test only sees firing alerts)."""
    return [{"expr": _expr(alert), "eval_time": t, "exp_samples": []} for t in at]


# What a freshly started, healthy worker exports (pipeline/metrics.py creates the known label values at 0;
# promtool's clock starts at 0 s, so a `_created` of 0 is "created when the process started").
FRESH_WORKER = [
    _series("up", "1x30"),
    *(
        s
        for reason in ("processing_error", "invalid_json", "schema_violation")
        for s in (
            _series("livewatch_dead_letters_total", "0x30", reason=reason),
            _series("livewatch_dead_letters_created", "0x30", reason=reason),
        )
    ),
    *(
        s
        for result in ("ok", "refused")
        for s in (
            _series("livewatch_ruleset_reloads_total", "0x30", result=result),
            _series("livewatch_ruleset_reloads_created", "0x30", result=result),
        )
    ),
    *(_series("livewatch_actions_total", "0x30", action=a) for a in ("warn", "suspend")),
    *(_series("livewatch_merge_forced_total", "0x30", bound=b) for b in ("lateness", "wait")),
    _series("livewatch_partitions_assigned", "4x30"),
    _series("livewatch_partitions_unrebuilt", "0x30"),
    _series("livewatch_ruleset_info", "1x30", version="2026.11.25+aaaa"),
    _series("livewatch_consumer_lag_messages", "0x30", topic="live.chat"),
]


# a worker 500 s behind: 5,000 messages waiting, 10 events decided per second
BEHIND = [
    _series("livewatch_consumer_lag_messages", "5000x30", topic="live.chat"),
    _series(EVENTS, "0+600x30", source="live.chat", kind="chat"),
]

PROMTOOL_CASES: list[dict[str, Any]] = [
    {
        "input_series": [_series("up", "1 1 0x20"), _series("up", "1x22", instance="w2:9108")],
        "alert_rule_test": [_silent("LivewatchWorkerDown", "4m"), _fires("LivewatchWorkerDown", "10m", W1)],
    },
    # the issue-12 case: a fresh worker with every counter at 0 raises nothing, not even a pending alert
    {
        "input_series": FRESH_WORKER,
        "alert_rule_test": [_silent(r["alert"], t) for r in _alert_rules() for t in ("2m", "20m")],
        "promql_expr_test": [x for r in _alert_rules() for x in _nothing(r["alert"], "1m", "2m", "9m")],
    },
    # events stop after 20 minutes
    {
        "input_series": [_series("up", "1x60"), _series(EVENTS, "0+60x20 1200x40", source="live.chat", kind="chat")],
        "alert_rule_test": [_silent("LivewatchNoEvents", "25m"), _fires("LivewatchNoEvents", "50m", {})],
    },
    # no event ever (the counter does not exist): still an alert, once Prometheus has scraped for 10 minutes
    {
        "input_series": [_series("up", "1x30")],
        "alert_rule_test": [_silent("LivewatchNoEvents", "20m"), _fires("LivewatchNoEvents", "27m", {})],
        "promql_expr_test": _nothing("LivewatchNoEvents", "1m", "9m"),
    },
    {
        "input_series": [_series(EVENTS, "0+60x40", source="live.chat", kind="chat")],
        "alert_rule_test": [_silent("LivewatchNoEvents", "35m")],
    },
    # 5 of 105 messages rejected as schema_violation, 0.5 of 100.5 as invalid_json
    {
        "input_series": [
            _series(EVENTS, "0+100x30", source="live.chat", kind="chat"),
            _series("livewatch_dead_letters_total", "0+5x30", reason="schema_violation"),
            _series("livewatch_dead_letters_total", "0+0.5x30", reason="invalid_json"),
        ],
        "alert_rule_test": [
            _silent("LivewatchDeadLetterRateHigh", "5m"),
            _fires("LivewatchDeadLetterRateHigh", "20m", {"reason": "schema_violation"}),
        ],
    },
    # an error in a worker that has run for 10 minutes: increase() sees it; it resolves 10 minutes later
    {
        "input_series": [
            _series(DEAD, "0x10 1x30", reason="processing_error"),
            _series(CREATED, "0x40", reason="processing_error"),
        ],
        "alert_rule_test": [
            _silent("LivewatchProcessingErrors", "9m"),
            _fires("LivewatchProcessingErrors", "13m", W1),
            _silent("LivewatchProcessingErrors", "30m"),
        ],
    },
    # a poison message decided before the first scrape of a process that started at 5m: the series is
    # first seen at 1, which increase() cannot see; its `_created` says the process is young
    {
        "input_series": [
            _series(DEAD, "_x5 1x30", reason="processing_error"),
            _series(CREATED, "_x5 300x30", reason="processing_error"),
            _series(DEAD, "_x5 1x30", reason="invalid_json"),
            _series(CREATED, "_x5 300x30", reason="invalid_json"),
        ],
        "alert_rule_test": [
            _silent("LivewatchProcessingErrors", "4m"),
            _fires("LivewatchProcessingErrors", "8m", W1),
            _silent("LivewatchProcessingErrors", "30m"),
        ],
    },
    # a restart (at 11m) whose first scrape shows 1 again, as the old process did: no reset for increase()
    {
        "input_series": [
            _series(DEAD, "1x10 _ 1x20", reason="processing_error"),
            _series(CREATED, "0x10 _ 660x20", reason="processing_error"),
        ],
        "alert_rule_test": [
            _silent("LivewatchProcessingErrors", "10m"),
            _fires("LivewatchProcessingErrors", "14m", W1),
        ],
    },
    # a new Prometheus (first scrape at 20m) meets a worker that started at 0 and had errors long ago
    {
        "input_series": [
            _series(DEAD, "_x20 3x20", reason="processing_error"),
            _series(CREATED, "_x20 0x20", reason="processing_error"),
        ],
        "alert_rule_test": [_silent("LivewatchProcessingErrors", "25m")],
        "promql_expr_test": _nothing("LivewatchProcessingErrors", "21m", "25m"),
    },
    {
        "input_series": [
            _series("livewatch_detector_errors_total", "_x5 1 2 3x20", detector="false_claims"),
            _series("livewatch_detector_errors_created", "_x5 300x22", detector="false_claims"),
        ],
        "alert_rule_test": [
            _silent("LivewatchDetectorErrors", "4m"),
            _fires("LivewatchDetectorErrors", "10m", {"detector": "false_claims"}),
        ],
    },
    # one detector error, which creates the series at 1 (the label value did not exist before)
    {
        "input_series": [
            _series("livewatch_detector_errors_total", "_x20 1x20", detector="bot_flood"),
            _series("livewatch_detector_errors_created", "_x20 1200x20", detector="bot_flood"),
        ],
        "alert_rule_test": [
            _silent("LivewatchDetectorErrors", "19m"),
            _fires("LivewatchDetectorErrors", "23m", {"detector": "bot_flood"}),
            _silent("LivewatchDetectorErrors", "35m"),
        ],
    },
    # every decision between 10 and 30 s, with a backlog of 5,000 messages at 10 events/s: high, not critical
    {
        "input_series": [
            *_latency({"1": "0x30", "10": "0x30", "30": "0+10x30", "60": "0+10x30", "+Inf": "0+10x30"}, "w1:9108"),
            *BEHIND,
        ],
        "alert_rule_test": [
            _silent("LivewatchDecisionLatencyHigh", "5m"),
            _fires("LivewatchDecisionLatencyHigh", "20m", W1),
            _silent("LivewatchDecisionLatencyCritical", "20m"),
        ],
    },
    {
        "input_series": [
            *_latency({"1": "0x30", "10": "0x30", "30": "0x30", "60": "0+10x30", "+Inf": "0+10x30"}, "w1:9108"),
            *BEHIND,
        ],
        "alert_rule_test": [_fires("LivewatchDecisionLatencyCritical", "20m", W1)],
    },
    {
        "input_series": [
            *_latency(
                {"1": "0+10x30", "10": "0+10x30", "30": "0+10x30", "60": "0+10x30", "+Inf": "0+10x30"}, "w1:9108"
            ),
            *BEHIND,
        ],
        "alert_rule_test": [_silent("LivewatchDecisionLatencyHigh", "20m")],
    },
    # an old recording replayed: every decision is minutes to days after its event time, but the worker
    # keeps up (lag back to 0 between bursts of 3,000 messages), so nothing is late and nothing is pending
    {
        "input_series": [
            *_latency({"1": "0x30", "10": "0x30", "30": "0x30", "60": "0x30", "+Inf": "0+600x30"}, "w1:9108"),
            _series("livewatch_consumer_lag_messages", "0 3000 0 0 0x27", topic="live.chat"),
            _series(EVENTS, "0+600x30", source="live.chat", kind="chat"),
        ],
        "alert_rule_test": [
            _silent("LivewatchDecisionLatencyHigh", "20m"),
            _silent("LivewatchDecisionLatencyCritical", "20m"),
        ],
        "promql_expr_test": [
            *_nothing("LivewatchDecisionLatencyHigh", "2m", "6m", "20m"),
            *_nothing("LivewatchDecisionLatencyCritical", "2m", "6m", "20m"),
        ],
    },
    {
        "input_series": [
            _series("livewatch_consumer_lag_messages", "2000+100x40", topic="live.chat"),
            _series("livewatch_consumer_lag_messages", "5000x40", topic="live.price"),
            _series("livewatch_consumer_lag_messages", "50000-1000x40", topic="live.orders"),
        ],
        "alert_rule_test": [
            _silent("LivewatchConsumerLagGrowing", "10m"),
            _fires("LivewatchConsumerLagGrowing", "35m", {"topic": "live.chat"}),
        ],
    },
    # 10% of w1's events forced out by the wait bound; 1 in 600 on w2
    {
        "input_series": [
            _series(EVENTS, "0+600x30", source="live.chat", kind="chat"),
            _series("livewatch_merge_forced_total", "0+60x30", bound="wait"),
            _series(EVENTS, "0+600x30", source="live.chat", kind="chat", instance="w2:9108"),
            _series("livewatch_merge_forced_total", "0+1x30", bound="lateness", instance="w2:9108"),
        ],
        "alert_rule_test": [_fires("LivewatchMergeForcedReleases", "25m", {**W1, "bound": "wait"})],
    },
    {
        "input_series": [
            _series("livewatch_partitions_assigned", "0x30"),
            _series("livewatch_partitions_assigned", "6 6 0 0 0 6x25", instance="w2:9108"),
        ],
        "alert_rule_test": [
            _silent("LivewatchWorkerOwnsNoPartitions", "10m"),
            _fires("LivewatchWorkerOwnsNoPartitions", "20m", W1),
        ],
    },
    {
        "input_series": [_series("livewatch_partitions_unrebuilt", "0x5 1x10 0x10")],
        "alert_rule_test": [
            _silent("LivewatchRebuildFailed", "8m"),
            _fires("LivewatchRebuildFailed", "12m", W1),
            _silent("LivewatchRebuildFailed", "25m"),
        ],
    },
    # refused before the first scrape of a worker that started at 5m (first seen at 1)
    {
        "input_series": [
            _series("livewatch_ruleset_reloads_total", "_x5 1x40", result="refused"),
            _series("livewatch_ruleset_reloads_created", "_x5 300x40", result="refused"),
            _series("livewatch_ruleset_reloads_total", "1x45", result="ok", instance="w2:9108"),
            _series("livewatch_ruleset_reloads_created", "0x45", result="ok", instance="w2:9108"),
        ],
        "alert_rule_test": [
            _silent("LivewatchRulesetReloadRefused", "4m"),
            _fires("LivewatchRulesetReloadRefused", "8m", {**W1, "result": "refused"}),
            _silent("LivewatchRulesetReloadRefused", "30m"),
        ],
    },
    # refused 20 minutes into a worker's life
    {
        "input_series": [
            _series("livewatch_ruleset_reloads_total", "0x20 1x20", result="refused"),
            _series("livewatch_ruleset_reloads_created", "0x40", result="refused"),
        ],
        "alert_rule_test": [
            _silent("LivewatchRulesetReloadRefused", "19m"),
            _fires("LivewatchRulesetReloadRefused", "23m", {**W1, "result": "refused"}),
            _silent("LivewatchRulesetReloadRefused", "40m"),
        ],
    },
    {
        "input_series": [
            _series("livewatch_ruleset_info", "1x30", version="2026.11.25+aaaa"),
            _series("livewatch_ruleset_info", "1x30", version="2026.11.26+bbbb", instance="w2:9108"),
        ],
        "alert_rule_test": [
            _silent("LivewatchRulesetVersionsDiffer", "10m"),
            _fires("LivewatchRulesetVersionsDiffer", "20m", {}),
        ],
    },
    {
        "input_series": [
            _series("livewatch_ruleset_info", "1x30", version="2026.11.25+aaaa"),
            _series("livewatch_ruleset_info", "1x30", version="2026.11.25+aaaa", instance="w2:9108"),
        ],
        "alert_rule_test": [_silent("LivewatchRulesetVersionsDiffer", "20m")],
    },
    # a quiet day, then 2 suspensions a minute
    {
        "input_series": [_series("livewatch_actions_total", "0x1440 2+2x40", action="suspend")],
        "alert_rule_test": [
            _silent("LivewatchSuspensionSpike", "1400m"),
            _fires("LivewatchSuspensionSpike", "1470m", {}),
        ],
    },
    # a steady 1 a minute all day is no spike, although it is > 10 in 15 minutes
    {
        "input_series": [_series("livewatch_actions_total", "0+1x1500", action="suspend")],
        "alert_rule_test": [_silent("LivewatchSuspensionSpike", "1470m")],
    },
]


def test_every_alert_has_a_promtool_case():
    tested = {t["alertname"] for case in PROMTOOL_CASES for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert {r["alert"] for r in _alert_rules()} <= tested


@needs_promtool
def test_alerts_fire_on_failures_and_stay_silent_otherwise(tmp_path: Path):
    # promtool compares annotations too; they are prose, checked for syntax by `promtool check rules`.
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    cases = [{"interval": "1m", **case} for case in PROMTOOL_CASES]
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": cases}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    r = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# -- Kubernetes ------------------------------------------------------------------------------------------


def _k8s_docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def _one(kind: str, docs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    found = [d for d in (docs or _k8s_docs()) if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _container() -> dict[str, Any]:
    (container,) = _one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    return container


def _worker_env() -> dict[str, str]:
    """Every environment variable the worker container gets, ConfigMap first, then `env` (which wins)."""
    docs = _k8s_docs()
    container = _container()
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
        env.update(cm["data"])
    for var in container.get("env", []):
        env[var["name"]] = var["value"]
    return env


def test_k8s_manifests_parse_and_live_in_one_namespace():
    docs = _k8s_docs()
    kinds = [d["kind"] for d in docs if d["kind"] != "Kustomization"]
    assert sorted(kinds) == sorted(["Namespace", "ConfigMap", "Service", "PodDisruptionBudget", "StatefulSet"])
    namespace = _one("Namespace", docs)["metadata"]["name"]
    for d in docs:
        if d["kind"] not in ("Namespace", "Kustomization"):
            assert d["metadata"]["namespace"] == namespace, d["kind"]
    kustomization = _one("Kustomization", docs)
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def test_statefulset_runs_livewatch_worker():
    container = _container()
    assert [*container.get("command", []), *container.get("args", [])][:2] == ["livewatch", "worker"]


def test_worker_env_names_are_settings():
    env = _worker_env()
    assert env, "the worker gets no configuration"
    unknown = set(env) - SETTINGS_ENV
    assert not unknown, f"not fields of pipeline.settings.Settings: {sorted(unknown)}"


def test_worker_env_makes_valid_production_settings(monkeypatch: pytest.MonkeyPatch):
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("LIVEWATCH_ENV_FILE", raising=False)
    for name, value in _worker_env().items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.replication == 3 and s.min_insync_replicas == 2 and s.partitions >= 3
    assert s.metrics_host == "0.0.0.0" and s.metrics_port > 0
    assert s.web_port is None  # Faust's web server exposes tables
    assert len(s.bootstrap_servers().split(",")) == 3
    from faust.utils.urls import urllist

    assert [u.scheme for u in urllist(s.broker, default_scheme="kafka")] == ["kafka"] * 3

    sts = _one("StatefulSet")
    assert 1 <= sts["spec"]["replicas"] <= s.partitions  # more workers than partitions sit idle
    pod = sts["spec"]["template"]
    container = _container()
    (port,) = container["ports"]
    assert port["containerPort"] == s.metrics_port and port["name"] == "metrics"
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(s.metrics_port),
        "prometheus.io/path": "/metrics",
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe

    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert mounts[str(s.datadir)] in claims, "the datadir must be a per-pod volume"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    rules = volumes[mounts[str(s.rules_dir)]]
    assert rules["configMap"]["name"] == "livewatch-rules"
    assert not any(m.get("subPath") for m in container["volumeMounts"]), "subPath mounts never see updates"


def test_worker_pod_is_locked_down_and_stops_cleanly():
    sts = _one("StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    container = _container()
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # writable places are volumes: the datadir and /tmp
    assert {"/tmp"} <= {m["mountPath"] for m in container["volumeMounts"]}
    assert pod["terminationGracePeriodSeconds"] >= 30
    # a Service named "livewatch" would otherwise inject LIVEWATCH_SERVICE_HOST, LIVEWATCH_PORT, ...
    assert pod["enableServiceLinks"] is False
    assert set(container["resources"]) == {"requests", "limits"}


def test_service_and_pdb_select_the_worker_pods():
    docs = _k8s_docs()
    sts = _one("StatefulSet", docs)
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    svc = _one("Service", docs)
    assert svc["spec"]["clusterIP"] == "None" and sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    pdb = _one("PodDisruptionBudget", docs)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def _fake_kubectl(tmp_path: Path) -> Path:
    fake = tmp_path / "kubectl"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> "{tmp_path}/kubectl.calls"
case "$1" in
  create) echo "kind: ConfigMap  # from: $*" ;;
  apply) cat > "{tmp_path}/applied.yaml" ;;
esac
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


def _run_rules_script(tmp_path: Path, rules_dir: Path) -> subprocess.CompletedProcess[str]:
    livewatch = Path(sys.executable).with_name("livewatch")
    env = {
        **os.environ,
        "KUBECTL": str(_fake_kubectl(tmp_path)),
        "LIVEWATCH": str(livewatch) if livewatch.exists() else "livewatch",
    }
    return subprocess.run(
        ["bash", str(K8S / "rules-configmap.sh"), str(rules_dir)], capture_output=True, text=True, env=env, timeout=120
    )


def test_rules_configmap_script_checks_then_applies(tmp_path: Path):
    r = _run_rules_script(tmp_path, REPO / "rules")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("OK: ruleset")
    # the two ends of the pipe run at once: their calls are logged in either order
    apply, create = sorted((tmp_path / "kubectl.calls").read_text().splitlines())
    assert create.startswith("create configmap livewatch-rules --namespace livewatch")
    assert f"--from-file={REPO / 'rules'}" in create and "--dry-run=client -o yaml" in create
    assert apply == "apply -f -"
    assert (tmp_path / "applied.yaml").read_text().startswith("kind: ConfigMap")


def test_rules_configmap_script_publishes_nothing_invalid(tmp_path: Path):
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules)
    with (rules / "claims.yaml").open("a", encoding="utf-8") as f:
        f.write("\nrules: [ {broken\n")
    r = _run_rules_script(tmp_path, rules)
    assert r.returncode == 2, r.stdout + r.stderr
    assert not (tmp_path / "kubectl.calls").exists()


def test_dockerfile_installs_the_project_and_runs_the_worker():
    text = (K8S / "Dockerfile").read_text(encoding="utf-8")
    copied = {
        src.rstrip("/")
        for line in re.findall(r"^COPY (.+)$", text, re.M)
        if not line.startswith("--from")  # a copy between the image's stages, not from the repository
        for src in line.split()[:-1]
    }
    for src in copied:
        assert (REPO / src).exists(), f"COPY {src}: no such path in the repository"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = pyproject["tool"]["setuptools"]
    for package in setuptools["packages"]:  # its source directory: package-dir maps pipeline.rules to rules/
        source = setuptools.get("package-dir", {}).get(package, package.replace(".", "/"))
        assert source in copied or source.split("/")[0] in copied, f"package {package} is not copied into the image"
    assert pyproject["project"]["readme"] in copied
    # the build stage compiles the wheel (setup.py: the claims scoring kernel, with its C++ compiler); the
    # image installs that wheel
    assert "rules" in copied and "setup.py" in copied and re.search(r"^RUN apt-get .*\bg\+\+", text, re.M)
    assert re.search(r"^RUN pip wheel .*--wheel-dir /wheels \.$", text, re.M)
    assert re.search(r"^RUN pip install --no-index --find-links /wheels livewatch", text, re.M)
    env_names = set(re.findall(r"\b(LIVEWATCH_[A-Z_]+)=", text))
    assert env_names and env_names <= SETTINGS_ENV, sorted(env_names - SETTINGS_ENV)
    assert 'ENTRYPOINT ["livewatch"]' in text and 'CMD ["worker"]' in text
    assert re.search(r"^USER \d+", text, re.M)
