"""The contract every registered detector keeps (checked for each one in the registry).

Like a library's estimator checks: state survives serialisation, same input + state → same output,
no exception on odd-but-valid events, every finding names a rule that exists, inline examples hold.
"""

import copy

import pytest

from detectors import REGISTRY
from detectors.normalize import normalize
from schemas.events import text_of
from tests.builders import chat, danmaku, on_air, order, price_tag, say

ODD_EVENTS = [
    say(""), say("   "), say("\u200b\u200b\u200b"), say("全网最低" * 2000), say("🤣🤣🤣 ㊗️ 𝕓𝕖𝕤𝕥"),
    chat("", role="host"), chat("第一" * 500, role="operator"), danmaku("減\u00ad肥", user="x"),
    price_tag("p", "", "0"), price_tag("p", "全网最低价 国家级", "99999999.99", category="drug"),
    on_air("p", "cosmetics"), order("p", "0.01", qty=10_000),
]
SELLING_TALK = [
    # an AI host without its label, a comparison price without a basis
    on_air("tea-1", "food", t=0, host_kind="ai"),
    price_tag("tea-1", "养生茶 全网最低", "59", category="food", t=1, original_price="99"),
    say("这是全网最低价", t=2), say("喝了能降血压，根治失眠", t=3), chat("国家级品质", role="host", t=4),
    say("已经卖了十万单了", t=5), say("今天到手价只要四十九", t=5.5), chat("好喝", t=6),
    # a hired ring posting one testimonial
    *[danmaku(f"真给力，{i % 3 + 1}颗就瘦了{i % 5 + 2}斤", user=f"bot{i}", t=7 + i) for i in range(12)],
]


@pytest.fixture(params=sorted(REGISTRY))
def detector(request, ruleset):
    if request.param not in ruleset.configured:
        pytest.fail(f"detector {request.param} is registered but has no rules in the shipped ruleset")
    return ruleset.build(request.param, status="live")  # shipped-off rules are held to the contract too


def run(detector, events, state):
    out = []
    for e in events:
        if e.kind in detector.kinds:
            raw = text_of(e)
            out.extend(detector.detect(e, normalize(raw) if raw else None, state))
    return out


def test_no_exception_on_odd_but_valid_events(detector):
    state = detector.state_model()
    run(detector, ODD_EVENTS, state)
    assert isinstance(state, detector.state_model)


def test_same_input_and_state_give_the_same_output(detector):
    s1, s2 = detector.state_model(), detector.state_model()
    assert run(detector, SELLING_TALK, s1) == run(detector, SELLING_TALK, s2)
    assert s1 == s2


def test_state_survives_a_serialisation_round_trip(detector):
    state = detector.state_model()
    run(detector, SELLING_TALK[:3], state)
    restored = detector.state_model.model_validate_json(state.model_dump_json())
    assert run(detector, SELLING_TALK[3:], copy.deepcopy(state)) == run(detector, SELLING_TALK[3:], restored)


def test_every_finding_names_a_rule_that_exists_and_cites_its_law(detector, ruleset):
    findings = run(detector, SELLING_TALK + ODD_EVENTS, detector.state_model())
    assert findings, "the selling-talk fixture should trigger this detector"
    for f in findings:
        rule = ruleset.rules[f.rule_id]
        assert f.rule_version == rule.version and f.legal_basis == rule.legal_basis
        assert f.ruleset_version == ruleset.version and f.detector == detector.name
        assert f.event_ids and all(e.event_id in f.event_ids for e in f.evidence)


def test_each_rules_inline_examples_hold(detector):
    for rule in detector.rules:
        assert detector.check_examples(rule) == [], rule.id


def test_detectors_are_pure():
    import ast
    import pathlib

    banned = {"faust", "aiokafka", "prometheus_client", "pipeline", "os", "pathlib", "time", "io"}
    for path in pathlib.Path(__file__).resolve().parent.parent.joinpath("detectors").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in banned, f"{path.name} imports {name}"


ADVERSARIAL = ["1" * 19_990, "已售" + "1" * 19_990, "最佳" * 9_000, "已售10万单" * 2_000, "1.1" * 6_600,
               "百分之" * 6_600, "第一个链接" * 4_000, "减" + "\u200b" * 19_000 + "肥"]


@pytest.mark.timeout(30)
def test_adversarial_long_texts_neither_hang_nor_make_huge_findings(detector):
    # Backtracking regexes or per-match rescans turn a 20,000-character message into minutes of CPU on
    # one partition; a finding must also stay far below Kafka's 1 MB message limit.
    state = detector.state_model()
    for i, text in enumerate(ADVERSARIAL):
        for f in run(detector, [say(text, t=i), chat(text, role="host", t=i)], state):
            assert len(f.model_dump_json()) < 64 * 1024
