"""Bot-comment floods: a commercial script from many accounts is a campaign; a fan chant is not."""

from collections import OrderedDict

import pytest

from detectors.floods import BotFloodDetector, FloodState, Script, bigrams, similarity
from detectors.normalize import normalize
from tests.builders import T0, danmaku

ENABLED = {"flood.commercial_campaign": "live", "flood.ring_account": "live", "flood.noncommercial_flood": "shadow"}


@pytest.fixture
def detector(ruleset) -> BotFloodDetector:
    return ruleset.build("bot_flood", ENABLED)  # as shipped; pinned here so tests do not follow status edits


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
    assert list(state.scripts) == ["#颗就瘦了#斤"]


def test_account_signals_are_reported(detector):
    state = FloodState()
    signals = [
        {"account_age_days": 1, "device_id": f"dev{i // 5}", "ip": f"10.0.3.{i}", "active_rooms": 4} for i in range(12)
    ]
    msgs = [(t, u, text, signals[i]) for i, (t, u, text) in enumerate(campaign(12, start=0))]
    msgs += [(20, "bot0", "真给力，1颗就瘦了35斤")]  # bot0 contradicts its own numbers
    [room] = [f for f in feed(detector, state, msgs) if f.rule_id == "flood.commercial_campaign"]
    assert set(room.details["signals"]) >= {"new_accounts", "shared_device", "shared_ip_prefix", "multi_room"}
    feed(detector, state, [(300 + i, f"bot{i}", "真给力，1颗就瘦了9斤") for i in range(12)])
    assert "contradicting_numbers" in state.verdict.signals


def test_a_campaign_is_judged_again_at_the_first_message_of_each_slot_of_event_time(detector):
    # Judged at most every judge_every_ms after the last judgement, a campaign's judgements followed from when the
    # chain began, which can be older than a rebuild's history: a worker taking over judged at other moments than the
    # replay (and so named other accounts on the pool's judgement and quoted other features). Slots of event time
    # depend on no history.
    state, judged, first_of_slot = FloodState(), [], {}
    every = detector.settings.judge_every_ms
    feed(detector, state, background(40))
    for t, user, text in campaign(60, start=30, every=0.35):  # 30–51 s, about three messages a slot
        feed(detector, state, [(t, user, text)])
        if state.verdict is not None and state.verdict.campaign:
            ts = T0 + int(t * 1000)  # as the builder stamps it
            first_of_slot.setdefault(ts // every, ts)
            if state.verdict.ts not in judged:
                judged.append(state.verdict.ts)
    assert len(judged) >= 15
    assert judged[1:] == sorted(first_of_slot.values())[1:]  # the first: where the campaign was found


def test_state_stays_bounded_in_a_busy_room(detector):
    state = FloodState()
    feed(detector, state, [(i * 0.001, f"u{i % 5000}", f"第{i}条：随便说点什么{i % 997}") for i in range(30_000)])
    feed(detector, state, [(30 + i * 0.001, f"v{i}", f"随便说点什么{_han(i)}") for i in range(3_000)])
    assert len(state.scripts) <= detector.settings.max_scripts and len(state.once) <= detector.settings.max_scripts
    assert len(state.aliases) <= 2 * detector.settings.max_scripts
    assert len(state.window.traffic) <= detector.settings.window_s // detector.settings.bucket_s + 1
    assert state.window.seen_count() <= detector.settings.max_seen_ids


def test_padded_and_reworded_variants_join_one_script(detector):
    state = FloodState()
    feed(
        detector,
        state,
        [
            (0, "a", "真给力，3颗就瘦了3.2斤"),
            (1, "b", "家人们真给力2颗就瘦了5斤！！[赞]"),
            (2, "c", "真給力，4顆就瘦了6斤～ 亲测"),
            (3, "d", "今天的歌好好听啊"),
        ],
    )
    assert list(state.scripts) == ["真给力#颗就瘦了#斤"]
    assert set(state.scripts["真给力#颗就瘦了#斤"].accounts) == {"a", "b", "c"}
    assert list(state.once) == ["今天的歌好好听啊"]  # an ordinary text posted once is not a script yet


def test_an_ordinary_text_posted_again_is_the_script_it_would_have_been_from_its_first_message(detector):
    state = FloodState()
    bucket_ms = detector.settings.bucket_s * 1000
    first = danmaku("今天的歌好好听啊！", user="a", t=3, event_id="first")
    second = danmaku("今天的歌好好听啊～", user="b", t=25, event_id="second")
    assert detector.detect(first, normalize(first.text), state) == []
    assert list(state.once) == ["今天的歌好好听啊"] and not state.scripts
    assert detector.detect(second, normalize(second.text), state) == []
    assert not state.once
    assert state.scripts["今天的歌好好听啊"] == Script(
        text="今天的歌好好听啊",
        raw_example="今天的歌好好听啊～",  # the latest message's words
        commercial=False,
        last_ts=second.ts,
        accounts=OrderedDict([("a", first.ts), ("b", second.ts)]),
        buckets={first.ts // bucket_ms * bucket_ms: 1, second.ts // bucket_ms * bucket_ms: 1},
        examples=[(first.ts, "first"), (second.ts, "second")],
    )


def test_a_text_posted_once_is_forgotten_after_the_window(detector):
    state = FloodState()
    window_s = detector.settings.window_s
    feed(detector, state, [(0, "a", "今天的歌好好听啊"), (window_s + 1, "b", "今天的歌好好听啊")])
    assert not state.scripts  # once in the window, as a rebuild reading only the window sees it
    assert [(p.user, p.ts) for p in state.once.values()] == [("b", T0 + (window_s + 1) * 1000)]


def _han(i: int) -> str:
    """A different pair of Chinese characters for each i (no digits: they would be masked into one text)."""
    return chr(0x4E00 + i % 5000) + chr(0x6000 + i // 5000)


def test_chatter_posted_once_still_ends_the_scripts_past_the_window(detector):
    """A script whose last message left the window goes when the room's next comment comes, be that a text
    posted once: a chant taken up again later is a new script (its first time, its examples), as a rebuild
    reading the window would have it."""
    state = FloodState()
    window_s = detector.settings.window_s
    chant = [(i, f"fan{i}", "然然超可爱") for i in range(3)]
    chatter = [(10 + i * 10, f"u{i}", f"说点别的{_han(i)}") for i in range(window_s // 10 + 1)]
    feed(detector, state, chant + chatter)
    assert "然然超可爱" not in state.scripts


def test_a_chant_outlives_a_flood_of_texts_each_posted_once(detector):
    """Texts posted once are bounded apart from the scripts: thousands of them (chatter, or a spammer varying
    every message) do not push a chant under way out of the window."""
    state = FloodState()
    chant = [(i * 0.1, f"fan{i}", "然然超可爱") for i in range(detector.settings.min_accounts - 1)]
    chatter = [(1 + i * 0.01, f"u{i}", f"说点别的{_han(i)}") for i in range(3 * detector.settings.max_scripts)]
    feed(detector, state, chant + chatter + [(62, "fan-last", "然然超可爱")])
    assert len(state.once) == detector.settings.max_scripts  # each of them once: the latest kept
    assert len(state.scripts["然然超可爱"].accounts) == detector.settings.min_accounts  # enough to be judged


def test_similarity_is_jaccard_and_containment_of_bigrams():
    jaccard, containment = similarity(bigrams("真给力#颗就瘦了#斤"), bigrams("姐妹们真给力#颗就瘦了#斤"))
    assert containment == 1.0 and 0.5 < jaccard < 1.0
    assert similarity(bigrams("然然超可爱"), bigrams("快下单马上涨价了")) == (0.0, 0.0)


def test_a_campaign_of_several_scripts_is_judged_as_one_pool(detector):
    scripts = ["真给力，{n}颗就瘦了{x}斤", "{n}天成功{x}天破平台期", "快下单，马上涨价了", "最后{n}单了，抢到就是赚到"]
    state = FloodState()
    feed(detector, state, background(200))
    msgs = [(100 + i, f"bot{i}", scripts[i % 4].format(n=i % 5 + 1, x=i % 7 + 2)) for i in range(12)]
    findings = feed(detector, state, msgs)
    [room] = [f for f in findings if f.rule_id == "flood.commercial_campaign"]
    assert len(room.details["templates"]) == 4 and room.details["accounts"] >= 8
    assert {f.subject.id for f in findings if f.rule_id == "flood.ring_account"} == {f"bot{i}" for i in range(12)}


def test_an_account_is_named_once_per_period_however_often_it_posts(detector):
    state = FloodState()
    msgs = campaign(10, start=0) + [(20 + i, f"bot{i % 10}", f"真给力，{i}颗就瘦了3斤") for i in range(50)]
    ring = [f for f in feed(detector, state, msgs) if f.rule_id == "flood.ring_account"]
    assert sorted(f.subject.id for f in ring) == sorted(f"bot{i}" for i in range(10))


def test_a_host_solicited_purchase_chant_is_not_commercial(detector):
    state = FloodState()
    findings = feed(detector, state, [(i * 0.2, f"fan{i}", "已下单已下单") for i in range(100)])
    assert {f.rule_id for f in findings} == {"flood.noncommercial_flood"}


def test_bought_accounts_below_the_traffic_thresholds_are_a_campaign_by_the_signal_model(detector):
    assert detector.settings.model is not None, "the shipped rules carry the trained model"
    hand = BotFloodDetector(detector.settings.model_copy(update={"model": None}), detector.rules, detector.context)
    bought = [{"account_age_days": 1, "device_id": f"dev{i // 4}", "ip": f"203.0.113.{i}"} for i in range(10)]
    busy = [(i * 0.05, f"fan{i % 900}", f"弹幕{i}号来了，主播加油") for i in range(12_000)]
    ring = [(300 + i * 20, f"bot{i}", f"吃了{i % 3 + 1}周瘦了{i + 3}斤，太神奇了", bought[i]) for i in range(10)]

    def campaigns(d):
        msgs = sorted(busy + ring, key=lambda m: m[0])
        return [f for f in feed(d, FloodState(), msgs) if f.rule_id == "flood.commercial_campaign"]

    assert campaigns(hand) == []  # 10 messages among 12,000: under every share threshold
    [room] = campaigns(detector)
    assert room.details["features"]["new_accounts"] == 1.0 and "shared_device" in room.details["signals"]


def test_a_model_with_an_unknown_feature_is_refused_at_load_with_its_line(rules_copy):
    from pipeline.errors import RuleSetError
    from pipeline.ruleset import load_ruleset

    path = rules_copy / "floods.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("    weights:\n", "    weights:\n      followers: 1.0\n"),
        encoding="utf-8",
    )
    with pytest.raises(RuleSetError) as err:
        load_ruleset(rules_copy)
    [problem] = [str(p) for p in err.value.problems]
    assert "floods.yaml:" in problem and "followers" in problem


def hand_of(detector):
    return BotFloodDetector(detector.settings.model_copy(update={"model": None}), detector.rules, detector.context)


def test_a_burst_of_the_rooms_traffic_carrying_the_pool_is_a_campaign(detector):
    hand = hand_of(detector)
    quiet = [(i, f"fan{i % 50}", f"第{i}条普通弹幕聊聊天") for i in range(480)]  # 1 message/s for 8 minutes
    early = [(30 + i * 40, f"bot{i}", f"吃了{i % 3 + 1}周瘦了{i + 3}斤，太神奇了") for i in range(10)]
    rush = [(480 + i * 0.3, f"fan{i}", f"哇哦第{i}个人来了好热闹") for i in range(200)]
    late = [(480 + i * 5, f"bot{i}", f"吃了{i % 3 + 1}周瘦了{i + 5}斤，太神奇了") for i in range(12)]
    state = FloodState()
    findings = [
        f
        for f in feed(hand, state, sorted(quiet + early + rush + late, key=lambda m: m[0]))
        if f.rule_id == "flood.commercial_campaign"
    ]
    [room] = findings
    features = room.details["features"]
    assert features["share"] < hand.settings.min_share and features["recent_share"] < hand.settings.min_recent_share
    assert features["log_burst"] >= __import__("math").log1p(hand.settings.burst_factor)


def test_an_ongoing_campaign_is_held_until_its_share_falls_below_half_the_threshold(detector):
    hand = hand_of(detector)
    state = FloodState()
    feed(hand, state, background(200) + campaign(10, start=100))
    assert state.verdict.campaign
    f = {**state.verdict.features, "share": 0.03, "recent_share": 0.03, "log_burst": 0.0}
    assert hand.is_campaign(f, ongoing=True)[0] and not hand.is_campaign(f, ongoing=False)[0]
    assert not hand.is_campaign({**f, "share": 0.02, "recent_share": 0.02}, ongoing=True)[0]


def test_shoppers_answering_the_hosts_prompt_are_spared_but_a_hire_without_orders_is_not(detector):
    """Regulars typing "太划算了" after "3、2、1上链接" while the room buys are a crowd; the same texts from
    accounts never seen before, with no one buying, are a hire told to answer the prompt."""
    from tests.builders import order, say

    def run(regulars: bool, buying: bool):
        state, out = FloodState(), []
        out += feed(detector, state, background(120))  # fan0…fan119 comment during the first minute
        prompt = say("家人们3、2、1上链接！", t=100)
        out += detector.detect(prompt, normalize(prompt.text), state)
        for i in range(30 if buying else 0):
            sale = order("p1", "39.90", t=101 + i)
            out += detector.detect(sale, None, state)
        who = "fan" if regulars else "hired"
        out += feed(detector, state, [(102 + 3 * i, f"{who}{i}", "太划算了") for i in range(40)])
        return [f for f in out if f.rule_id != "flood.noncommercial_flood"]

    assert run(regulars=True, buying=True) == []
    assert run(regulars=False, buying=False)
    assert run(regulars=True, buying=False)  # past the sale's first minute nobody bought: not spared


def test_padding_words_do_not_split_a_short_script(detector):
    """ "囤货囤货，信我" and "家人们！囤货囤货" share too few bigrams to be near-duplicates; without the fillers
    of the rules they are one script, so both accounts join its pool."""
    state = FloodState()
    feed(detector, state, [(1, "a", "囤货囤货，信我"), (2, "b", "家人们！囤货囤货"), (3, "c", "囤货囤货")])
    scripts = [sc for sc in state.scripts.values() if sc.commercial]
    assert len(scripts) == 1 and set(scripts[0].accounts) == {"a", "b", "c"}


def test_price_talk_is_not_a_prompt_and_a_prompt_alone_spares_nobody_for_long(detector):
    """A host saying "到手价" does not ask viewers to answer: accounts never seen in the room typing "太划算了" with
    nobody buying are a campaign at once. After "上链接" they are spared grace_s (too soon to have bought) and
    named when it is over, on the room's other comments although they have fallen silent."""
    from tests.builders import say

    grace = detector.settings.crowd.grace_s
    for prompt, at_once in (("今天到手价只要四十九", True), ("3、2、1上链接", False)):
        state = FloodState()
        feed(detector, state, background(200))  # t = 0 … 99.5
        host = say(prompt, t=100)
        detector.detect(host, normalize(host.text), state)
        out = feed(detector, state, [(101 + i, f"hired{i}", "太划算了") for i in range(12)])
        assert bool([f for f in out if f.rule_id == "flood.commercial_campaign"]) == at_once, prompt
        out += feed(detector, state, background(100, start=113))  # the room chats on until 162.5 s
        campaigns = [f for f in out if f.rule_id == "flood.commercial_campaign"]
        assert campaigns and (at_once or campaigns[0].ts >= T0 + (100 + grace) * 1000), prompt
        assert {f.subject.id for f in out if f.rule_id == "flood.ring_account"} == {f"hired{i}" for i in range(12)}


def test_a_viewer_remembered_with_no_bucket_comments_again_without_error(detector):
    """The detector never keeps a viewer without a bucket, but a state built elsewhere (a test's, a checkpoint's) may
    hold one: the viewer's next comment is remembered, not an error."""
    state = FloodState.model_validate({"window": {"viewers": [["u1", []]]}})
    assert state.window.viewer_count() == 1 and state.window.viewer_buckets("u1") == {}
    event = danmaku("今天的货真不错", user="u1", t=5)
    assert detector.detect(event, normalize(event.text), state) == []
    assert list(state.window.viewer_buckets("u1").values()) == [1]  # one ordinary comment in its bucket
