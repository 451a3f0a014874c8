"""examples/prices_ai_labels.jsonl: up to date with the simulator, and it exercises every price-marking and
AI-label rule — positives in two rooms, the issue's negatives in two rooms that stay quiet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.embedded import EmbeddedRuntime, read_jsonl

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "prices_ai_labels.jsonl"


def test_the_example_recording_is_what_the_simulator_writes():
    done = subprocess.run(
        [sys.executable, "scripts/make_examples.py", "--check"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_the_example_exercises_every_rule_of_both_detectors_and_nothing_else(tmp_path, ruleset):
    stats = EmbeddedRuntime(tmp_path).run(read_jsonl(EXAMPLE))
    assert stats.events == len(EXAMPLE.read_bytes().splitlines()) and not stats.dead_letters
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    got = [(a["room_id"], a["rule_id"], (a["ts"] - 1_769_947_200_000) // 1000) for a in alerts]
    assert got == [
        ("demo-ai-host", "ai_label.missing_at_start", 16),
        ("demo-prices", "price.fictitious_original", 120),
        ("demo-prices", "price.spoken_mismatch", 150),
        ("demo-ai-host", "ai_label.label_gap", 241),
        ("demo-prices", "price.unmarked", 270),
        ("demo-prices", "price.comparison_without_basis", 290),
        ("demo-prices", "price.discount_arithmetic", 290),
    ]
    rules = {r for r, rule in ruleset.rules.items() if rule.id.startswith(("price.", "ai_label."))}
    assert {rule for _, rule, _ in got} == rules
    actions = [json.loads(line) for line in (tmp_path / "actions.jsonl").read_text().splitlines()]
    assert [(a["room_id"], a["action"]) for a in actions] == [
        ("demo-ai-host", "warn"),
        ("demo-prices", "warn"),
        ("demo-ai-host", "limit_comments"),
        ("demo-prices", "limit_traffic"),
    ]
