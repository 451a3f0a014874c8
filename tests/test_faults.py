"""The fault suite's CI form (scripts/faults.py): a worker SIGKILLed again and again under ≈ 20,000 events,
through the real broker, judged against the embedded replay by the suite's oracle."""

from __future__ import annotations

import pytest

from scripts import faults

pytestmark = pytest.mark.kafka


def test_the_oracle_counts_what_is_lost_extra_duplicated_and_different():
    want = {"alerts": {"a1": "A1", "a2": "A2"}, "actions": {"x1": "X1", "x2": "X2"}}
    got = {"alerts": {"a1": ["A1", "A1"], "a3": ["A3"]}, "actions": {"x1": ["X1", "X1", "X1"], "x2": ["X2?"]}}
    # lost a2; extra a3; x1 twice more; a1 once more; x2's copy is not the replay's
    assert faults.judge(want, got) == (1, 1, 2, 1, 1)


@pytest.mark.timeout(900)  # 30 restarts of a Python worker: ≈ 3 min here
def test_a_worker_killed_thirty_times_loses_nothing_adds_nothing_and_repeats_nothing(kafka, tmp_path):
    path = tmp_path / "input.jsonl"
    n = faults.recording(path, 20_000)
    want = faults.expected(path, tmp_path / "embedded")
    assert n >= 20_000 and want["actions"] and want["alerts"]
    verdict = faults.scenario_kill(kafka, tmp_path, path, n, want, kills=30)
    print(verdict.line())  # the figures, in CI's log
    assert (verdict.lost, verdict.extra, verdict.different, verdict.undecided) == (0, 0, 0, 0), verdict.line()
    # exactly-once: a read_committed consumer sees every action and alert once
    assert (verdict.duplicate_actions, verdict.duplicate_alerts) == (0, 0), verdict.line()
    assert verdict.complete_after_s is not None, verdict.line()
