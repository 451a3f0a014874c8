"""Every registered detector keeps the contract of ``detectors.checks`` (each check a test of its own, so a
failure names the detector and the check), and detectors stay pure."""

import ast
import pathlib

import pytest
from pydantic import BaseModel

from detectors import REGISTRY, checks
from detectors.base import Detector, RuleContext
from schemas.rules import Rule


@pytest.fixture(params=sorted(REGISTRY))
def detector(request, ruleset):
    if request.param not in ruleset.configured:
        pytest.fail(f"detector {request.param} is registered but has no rules in the shipped ruleset")
    return ruleset.build(request.param, status="live")  # shipped-off rules are held to the contract too


@pytest.mark.parametrize("check", [checks.check_declaration, checks.check_odd_events, checks.check_rule_examples])
def test_contract(detector, check):
    check(detector)


@pytest.mark.parametrize(
    "check",
    [
        checks.check_deterministic,
        checks.check_state_round_trip,
        checks.check_findings_cite_rules,
        checks.check_may_change,
    ],
)
def test_contract_on_selling_talk(detector, check):
    check(detector, checks.selling_talk())


@pytest.mark.timeout(30)
def test_long_texts_neither_hang_nor_make_huge_findings(detector):
    # Backtracking regexes or per-match rescans turn a 20,000-character message into minutes of CPU on
    # one partition; a finding must also stay far below Kafka's 1 MB message limit.
    checks.check_long_texts(detector)


def test_check_detector_runs_every_check(detector):
    checks.check_detector(detector)


def test_check_detector_names_what_a_broken_detector_breaks(ruleset):
    class Forgetful(type(ruleset.configured["false_claims"])):  # cites a rule it does not have
        name = "forgetful_claims_for_test"

        def detect(self, event, text, state):
            return [f.model_copy(update={"rule_id": "claims.nonexistent"}) for f in super().detect(event, text, state)]

    try:
        base = ruleset.configured["false_claims"]
        with pytest.raises(AssertionError, match="unknown rule claims.nonexistent"):
            checks.check_findings_cite_rules(
                Forgetful(base.settings, base.all_rules, base.context), checks.selling_talk()
            )
    finally:
        REGISTRY.pop("forgetful_claims_for_test", None)


def test_subclassing_registers_and_takes_the_models_from_the_type_arguments():
    class Settings(BaseModel):
        pass

    class State(BaseModel):
        pass

    class Quiet(Detector[Rule, Settings, State]):
        name = "quiet_for_test"
        kinds = frozenset({"chat"})

        def detect(self, event, text, state):
            return []

    try:
        assert REGISTRY["quiet_for_test"] is Quiet
        assert (Quiet.rule_model, Quiet.settings_model, Quiet.state_model) == (Rule, Settings, State)
        d = Quiet(Settings(), [], RuleContext("test"))
        assert isinstance(d.new_state(), State) and d.durable_state and d.history_ms == 0
        with pytest.raises(AssertionError, match="report something"):
            checks.check_detector(d)
    finally:
        REGISTRY.pop("quiet_for_test", None)


def test_a_detector_a_viewers_comment_is_only_the_clock_of_must_keep_next_due():
    """The engine reads ``state.next_due`` to route a viewer's comment to a ``ReportsWhenDue`` detector: a state without
    it is refused when the class is defined, not met as an AttributeError on the first comment."""
    from detectors.base import ReportsWhenDue

    class Settings(BaseModel):
        pass

    class Clockless(BaseModel):
        pass

    with pytest.raises(TypeError, match="next_due"):

        class Clocked(ReportsWhenDue, Detector[Rule, Settings, Clockless]):
            kinds = frozenset({"chat"})


def test_detectors_are_pure():
    banned = {"faust", "aiokafka", "prometheus_client", "pipeline", "os", "pathlib", "time", "io"}
    for path in pathlib.Path(__file__).resolve().parent.parent.joinpath("detectors").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"
