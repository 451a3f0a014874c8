"""Alerts name accounts by a keyed pseudonym; actions keep the real id the platform needs to mute."""

import dataclasses

from pipeline.engine import Engine
from pipeline.privacy import Pseudonymizer
from tests.builders import T0, danmaku

ENABLED = {"flood.commercial_campaign": "live", "flood.ring_account": "live", "flood.noncommercial_flood": "shadow"}


def flood_engine(ruleset, pseudonymizer):
    detectors = tuple(d for d in ruleset.detectors if d.name != "bot_flood") + (ruleset.build("bot_flood", ENABLED),)
    return Engine(
        dataclasses.replace(ruleset, detectors=detectors), clock_ms=lambda: T0 + 3_600_000, pseudonymizer=pseudonymizer
    )


def test_pseudonyms_are_stable_per_key_and_differ_across_keys():
    a, b = Pseudonymizer("k1"), Pseudonymizer("k2")
    assert a.user("bot7") == a.user("bot7") != a.user("bot8")
    assert a.user("bot7") != b.user("bot7") and a.user("bot7").startswith("u_") and "bot7" not in a.user("bot7")


def test_alerts_carry_pseudonyms_and_actions_the_real_account(ruleset):
    p = Pseudonymizer("secret")
    engine = flood_engine(ruleset, p)
    findings, actions = [], []
    for i in range(12):
        out = engine.process(danmaku(f"真给力，{i % 4 + 1}颗就瘦了{i + 2}斤", user=f"bot{i}", t=i))
        findings += out.findings
        actions += out.actions
    ring = [f for f in findings if f.rule_id == "flood.ring_account"]
    [campaign] = [f for f in findings if f.rule_id == "flood.commercial_campaign"]
    assert {f.subject.id for f in ring} == {p.user(f"bot{i}") for i in range(12)}
    assert set(campaign.details["account_ids"]) <= {p.user(f"bot{i}") for i in range(12)}
    muted = {a.subject.id for a in actions if a.action == "mute_account"}
    assert muted == {f"bot{i}" for i in range(12)}
    by_id = {f.finding_id: f for f in ring}
    for action in actions:
        if action.action == "mute_account":
            [reason] = action.reasons
            assert by_id[reason].subject.id == p.user(action.subject.id)  # the alert behind the action
