"""The fault suite's CI form (scripts/faults.py): a worker SIGKILLed again and again, the broker stopped
under it, workers joining and leaving, output sends slowed and failing — each through the real broker on
≥ 20,000 events, with exactly-once outputs, judged against the embedded replay by the suite's oracle:
nothing lost, nothing extra, nothing different, and no record twice for a read_committed consumer."""

from __future__ import annotations

import pytest

from scripts import faults

pytestmark = pytest.mark.kafka

EXACTLY_ONCE = {"LIVEWATCH_EXACTLY_ONCE": "true"}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The 20,000-event input and the replay's outputs, shared by the scenarios (each on fresh topics)."""
    tmp = tmp_path_factory.mktemp("faults-input")
    path = tmp / "input.jsonl"
    n = faults.recording(path, 20_000)
    want = faults.expected(path, tmp / "embedded")
    assert n >= 20_000 and want["actions"] and want["alerts"]
    return path, n, want


def assert_correct(verdict: faults.Verdict, *, stays_up: bool = True) -> None:
    print(verdict.line())  # the figures, in CI's log
    assert (verdict.lost, verdict.extra, verdict.different, verdict.undecided) == (0, 0, 0, 0), verdict.line()
    # exactly-once: a read_committed consumer sees every action and alert once
    assert (verdict.duplicate_actions, verdict.duplicate_alerts) == (0, 0), verdict.line()
    if stays_up:
        assert verdict.worker_exits == 0, verdict.line()
    assert verdict.complete_after_s is not None, verdict.line()


def test_the_oracle_counts_what_is_lost_extra_duplicated_and_different():
    want = {"alerts": {"a1": "A1", "a2": "A2"}, "actions": {"x1": "X1", "x2": "X2"}}
    got = {"alerts": {"a1": ["A1", "A1"], "a3": ["A3"]}, "actions": {"x1": ["X1", "X1", "X1"], "x2": ["X2?"]}}
    # lost a2; extra a3; x1 twice more; a1 once more; x2's copy is not the replay's
    assert faults.judge(want, got) == (1, 1, 2, 1, 1)


def test_a_verdict_fails_on_a_worker_exit_or_incomplete_outputs():
    clean = faults.Verdict("x", 1, 0, 0, 0, 0, 0, 0, 1.0)
    assert clean.ok
    assert not faults.Verdict("x", 1, 0, 0, 0, 0, 0, 0, 1.0, worker_exits=1).ok
    assert not faults.Verdict("x", 1, 0, 0, 0, 0, 0, 0, None).ok
    # a fault once the decided count reached the input's size probably tested nothing mid-stream: the line says so
    assert "not mid-stream" in faults.Verdict("x", 1, 0, 0, 0, 0, 0, 0, 1.0, faults_at=(0.4, 1.0)).line()
    assert "not mid-stream" not in clean.line()


@pytest.mark.timeout(900)  # 30 restarts of a Python worker: ≈ 3 min here
def test_a_worker_killed_thirty_times_loses_nothing_adds_nothing_and_repeats_nothing(kafka, tmp_path, recording):
    path, n, want = recording
    verdict = faults.scenario_kill(kafka, tmp_path, path, n, want, EXACTLY_ONCE, kills=30)
    assert_correct(verdict)
    # a restarted worker does not wait for its dead predecessor's session to expire (static membership):
    # before it did, outputs were complete only 95 s after the last kill; now 0.1–15.5 s (target ≤ 15 s)
    assert verdict.complete_after_s is not None and verdict.complete_after_s < 60, verdict.line()


@pytest.mark.timeout(900)  # three stops of 5 s, each ≈ 2 s of shutdown and 10–15 s of start-up: ≈ 4 min here
def test_the_broker_stopped_three_times_under_a_deciding_worker_loses_nothing_and_repeats_nothing(tmp_path):
    # 200,000 events: each restart takes ≈ 20 s, in which a worker catching up decides up to half of 20,000 —
    # the third stop then came after the last event (seen once in CI: faults at 27 %, 56 %, 100 %); and once
    # 25 %, 100 %, 100 %: a worker's exit took its count along and its successor decided again from the
    # committed offsets. Since stop 35 an exit keeps its last count, and progress is watched during start-up.
    # 50,000 until stop 37, whose faster worker decided the last half of them during the second restart's
    # readiness checks (faults at 25 %, 51 %, 125 %; outputs exactly once all the same)
    path = tmp_path / "input.jsonl"
    n = faults.recording(path, 200_000)
    want = faults.expected(path, tmp_path / "embedded")
    # its own broker: the session's is shared with every other test and must not go down
    verdict = faults.scenario_broker(tmp_path / "kafka", tmp_path, path, n, want, EXACTLY_ONCE, stops=3, down_s=5)
    # a transaction refused while the broker is away stops the worker (by design: its successor re-reads the
    # step from the committed offsets); the harness starts it again. Seen once in five runs: outputs stayed
    # exactly-once — what is asserted. Staying up needs a retry of the refused transaction (docs/reliability.md).
    assert_correct(verdict, stays_up=False)
    assert len(verdict.faults_at) == 3 and all(0 < f < 1 for f in verdict.faults_at), verdict.line()


@pytest.mark.timeout(600)  # ≈ 2 min here
def test_workers_joining_and_leaving_mid_stream_lose_nothing_and_add_nothing(kafka, tmp_path):
    # 150,000 events: on 2 cores 20,000 are all decided before the third worker has joined, so nobody
    # would leave mid-stream; since the worker's steps of 4,000 (stop 24) 50,000 were too, once in five runs;
    # and since a take-over no longer decides the leaver's input again (stop 41), the second leave of 100,000
    # came after the last event in 2 of 10 runs
    path = tmp_path / "input.jsonl"
    n = faults.recording(path, 150_000)
    want = faults.expected(path, tmp_path / "embedded")
    verdict = faults.scenario_scale(kafka, tmp_path, path, n, want, EXACTLY_ONCE)
    assert_correct(verdict)
    # two joins and two leaves, the first join while the input was still being decided
    assert len(verdict.faults_at) == 4 and verdict.faults_at[0] < 1, verdict.line()


@pytest.mark.timeout(400)  # ≈ 40 s here
@pytest.mark.parametrize("mode", ["slow", "fail"])
def test_output_sends_slowed_or_failing_for_ten_seconds_lose_nothing_and_the_worker_stays_up(tmp_path, recording, mode):
    path, n, want = recording
    # its own broker: it must advertise the fault proxy, which the session's broker does not
    verdict = faults.scenario_send(mode, tmp_path / "kafka", tmp_path, path, n, want, EXACTLY_ONCE, fault_s=10)
    assert_correct(verdict)
    assert 0 < verdict.faults_at[0] < 1, verdict.line()
