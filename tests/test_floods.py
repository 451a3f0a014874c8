"""Bot-comment floods: a commercial script from many accounts is a campaign; a fan chant is not."""

import pytest

from detectors.floods import BotFloodDetector, FloodState, simhash
from detectors.normalize import normalize
from tests.builders import danmaku


ENABLED = {"flood.commercial_campaign": "live", "flood.ring_account": "live", "flood.noncommercial_flood": "shadow"}


@pytest.fixture
def detector(ruleset) -> BotFloodDetector:
    return ruleset.build("bot_flood", ENABLED)  # the shipped rules are off until issue #4 is done


def feed(detector, state, messages):
    """messages: (t seconds, user, text[, user signals]) → every finding."""
    out = []
    for t, user, text, *signals in messages:
        event = danmaku(text, user=user, t=t, signals=signals[0] if signals else None)
        out.extend(detector.detect(event, normalize(text), state))
    return out


def background(n: int, start: float = 0):
    return [(start + i * 0.5, f"fan{i % 300}", f"今天第{i}次来看主播，好开心呀") for i in range(n)]


def campaign(accounts: int, start: float, every: float = 1.0, template="真给力，{n}颗就瘦了{x}斤"):
    return [(start + i * every, f"bot{i}", template.format(n=i % 5 + 1, x=i % 7 + 2)) for i in range(accounts)]


def test_many_accounts_posting_one_commercial_script_is_a_campaign_and_each_account_is_named(detector):
    state = FloodState()
    feed(detector, state, background(40))
    findings = feed(detector, state, campaign(20, start=30))
    rooms = [f for f in findings if f.rule_id == "flood.commercial_campaign"]
    accounts = {f.subject.id for f in findings if f.rule_id == "flood.ring_account"}
    assert len(rooms) == 1 and rooms[0].details["accounts"] >= 8
    assert rooms[0].details["template"] == "真给力#颗就瘦了#斤"
    assert accounts == {f"bot{i}" for i in range(20)}
    assert all(f.subject.kind == "account" for f in findings if f.rule_id == "flood.ring_account")


def test_a_fan_chant_from_many_accounts_is_only_a_shadow_finding(detector):
    state = FloodState()
    findings = feed(detector, state, [(i * 0.05, f"fan{i}", "然然超可爱") for i in range(200)])
    assert {f.rule_id for f in findings} == {"flood.noncommercial_flood"}
    assert all(f.status == "shadow" for f in findings)


def test_one_account_repeating_itself_is_not_a_ring(detector):
    state = FloodState()
    assert feed(detector, state, [(i, "spammer", "快下单，马上涨价了") for i in range(100)]) == []


def test_too_few_accounts_or_too_small_a_share_is_not_a_campaign(detector):
    def campaigns(findings):
        return [f for f in findings if f.rule_id != "flood.noncommercial_flood"]
    state = FloodState()
    assert campaigns(feed(detector, state, background(200) + campaign(5, start=10))) == []
    state = FloodState()
    busy = [(i * 0.01, f"fan{i % 900}", f"弹幕{i}号来了，主播加油") for i in range(20_000)]
    assert campaigns(feed(detector, state, busy + campaign(9, start=100, every=5))) == []


def test_numbers_are_masked_so_one_script_with_other_numbers_is_one_template(detector):
    state = FloodState()
    feed(detector, state, [(0, "a", "3颗就瘦了3.2斤"), (1, "b", "2颗就瘦了5斤")])
    assert list(state.templates) == ["#颗就瘦了#斤"]


def test_account_signals_are_reported(detector):
    state = FloodState()
    signals = [{"account_age_days": 1, "device_id": f"dev{i // 5}", "ip": f"10.0.3.{i}"} for i in range(12)]
    msgs = [(t, u, text, signals[i]) for i, (t, u, text) in enumerate(campaign(12, start=0))]
    msgs += [(20, "bot0", "真给力，1颗就瘦了35斤")]  # bot0 contradicts its own numbers
    [room] = [f for f in feed(detector, state, msgs) if f.rule_id == "flood.commercial_campaign"]
    assert set(room.details["signals"]) >= {"new_accounts", "shared_device", "shared_ip_prefix"}
    later = [f for f in feed(detector, state, [(700, f"bot{i}", "真给力，1颗就瘦了9斤") for i in range(12)])
             if f.rule_id == "flood.commercial_campaign"]
    assert later and "contradicting_numbers" in later[0].details["signals"]


def test_state_stays_bounded_in_a_busy_room(detector):
    state = FloodState()
    feed(detector, state, [(i * 0.001, f"u{i % 5000}", f"第{i}条：随便说点什么{i % 997}") for i in range(30_000)])
    assert len(state.templates) <= detector.settings.max_templates
    assert len(state.traffic) <= detector.settings.window_s // detector.settings.bucket_s + 1


def test_near_duplicates_share_a_simhash_neighbourhood():
    assert bin(simhash("真给力#颗就瘦了#斤") ^ simhash("真给力#颗就瘦了#斤")).count("1") == 0
    assert bin(simhash("真给力#颗就瘦了#斤啊啊") ^ simhash("真给力#颗就瘦了#斤")).count("1") < 32
