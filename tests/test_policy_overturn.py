"""An action overturned on appeal leaves the ladder: its step, and the strikes it introduced (issue #15).

The test ladder (tests/test_policy.py): high = 3 points; warn at 1, limit_comments at 4, limit_cart at 7, suspend at
10; cool-down 60 s, period 1 h.
"""

from pipeline.policy import Policy, PolicyState
from schemas.events import OverturnEvent
from schemas.findings import EnforcementAction, Subject, derived_id
from tests.builders import T0
from tests.test_policy import LADDER, finding

ROOM = Subject(kind="room", id="r1")


def overturn(action: EnforcementAction, t_s: float) -> OverturnEvent:
    return OverturnEvent.of(action, T0 + int(t_s * 1000), "lena")


def test_overturning_the_warning_lets_the_next_finding_warn_again_under_a_new_id():
    policy, state = Policy(LADDER, "test"), PolicyState()
    warn = policy.decide(finding(0), state)
    assert warn is not None and warn.action == "warn"

    assert policy.overturn(overturn(warn, 300), state)
    again = policy.decide(finding(600), state)

    # without the overturned strike, 3 points: a warning again, not limit_comments at 6 points
    assert again is not None and again.action == "warn" and again.step == 0
    assert again.action_id != warn.action_id
    assert again.reasons == [finding(600).finding_id]


def test_overturning_a_higher_step_drops_only_the_strikes_it_introduced():
    policy, state = Policy(LADDER, "test"), PolicyState()
    warn = policy.decide(finding(0), state)  # 3 points: warn
    limit = policy.decide(finding(100), state)  # 6 points: limit_comments
    assert warn is not None and limit is not None and limit.action == "limit_comments"
    assert limit.reasons == [finding(0).finding_id, finding(100).finding_id]

    assert policy.overturn(overturn(limit, 200), state)
    subject = state.subjects[ROOM.key()]
    # the warning stands, and so does the strike behind it; the one limit_comments added is gone
    assert [a.action_id for a in subject.issued] == [warn.action_id]
    assert [st.finding_id for st in subject.strikes] == [finding(0).finding_id]

    # 3 + 3 = 6 points again: the ladder's last step is the warning, so limit_comments is issued anew
    again = policy.decide(finding(300), state)
    assert again is not None and again.action == "limit_comments" and again.action_id != limit.action_id
    assert again.reasons == [finding(0).finding_id, finding(300).finding_id]


def test_an_overturn_delivered_twice_and_old_findings_delivered_again_change_nothing():
    policy, state = Policy(LADDER, "test"), PolicyState()
    warn = policy.decide(finding(0), state)
    assert warn is not None
    event = overturn(warn, 300)
    assert policy.overturn(event, state)
    after_first = state.model_dump_json()

    assert not policy.overturn(event, state)  # the action is off the ladder already
    assert policy.decide(finding(0), state) is None  # the overturned finding, re-delivered: not counted again
    assert state.model_dump_json() == after_first

    again = policy.decide(finding(600), state)
    assert again is not None
    assert policy.decide(finding(600), state) == again  # a re-delivered later finding: the same answer
    assert not policy.overturn(event, state)
    assert policy.decide(finding(0), state) is None  # still forgotten


def test_a_second_overturn_in_the_episode_gives_yet_another_id():
    policy, state = Policy(LADDER, "test"), PolicyState()
    first = policy.decide(finding(0), state)
    assert first is not None
    policy.overturn(overturn(first, 100), state)
    second = policy.decide(finding(200), state)
    assert second is not None
    policy.overturn(overturn(second, 300), state)
    third = policy.decide(finding(400), state)
    assert third is not None
    assert len({first.action_id, second.action_id, third.action_id}) == 3
    assert state.subjects[ROOM.key()].revision == 2


def test_without_an_overturn_the_ids_are_exactly_as_before():
    policy, state = Policy(LADDER, "test"), PolicyState()
    actions = [policy.decide(finding(t), state) for t in (0, 100, 200, 300)]
    assert [a.action_id for a in actions if a] == [
        derived_id("action", "room", "room:r1", step, action, T0)
        for step, action in enumerate(("warn", "limit_comments", "limit_cart", "suspend"))
    ]


def test_a_new_episode_after_the_period_starts_from_revision_zero():
    policy, state = Policy(LADDER, "test"), PolicyState()
    warn = policy.decide(finding(0), state)
    assert warn is not None
    policy.overturn(overturn(warn, 100), state)
    later = policy.decide(finding(2 * 3600), state)  # both the strike and the overturned one expired
    assert later is not None
    assert later.action_id == derived_id("action", "room", "room:r1", 0, "warn", T0 + 2 * 3600 * 1000)


def test_an_overturn_of_an_unknown_action_or_subject_changes_nothing():
    policy, state = Policy(LADDER, "test"), PolicyState()
    warn = policy.decide(finding(0), state)
    assert warn is not None
    before = state.model_dump_json()
    stranger = warn.model_copy(update={"action_id": derived_id("nothing"), "subject": Subject(kind="room", id="r9")})
    assert not policy.overturn(overturn(stranger, 100), state)
    assert not policy.overturn(overturn(warn.model_copy(update={"action_id": derived_id("nothing")}), 100), state)
    assert state.model_dump_json() == before


def test_an_accounts_mute_overturned_is_issued_again_under_a_new_id():
    policy, state = Policy(LADDER, "test"), PolicyState()
    account = Subject(kind="account", id="u-7")
    mute = policy.decide(finding(0, subject=account), state)
    assert mute is not None and mute.action == "mute_account"
    assert policy.overturn(overturn(mute, 100), state)
    again = policy.decide(finding(200, subject=account), state)
    assert again is not None and again.action == "mute_account" and again.action_id != mute.action_id


def test_state_written_before_overturns_existed_reads_back():
    old = '{"subjects": {"room:r1": {"strikes": [], "issued": [], "episode_start": null}}}'
    subject = PolicyState.model_validate_json(old).subjects["room:r1"]
    assert (subject.overturned, subject.revision) == ([], 0)


def test_policy_state_with_overturns_survives_a_json_round_trip():
    policy, state = Policy(LADDER, "test"), PolicyState()
    warn = policy.decide(finding(0), state)
    assert warn is not None
    policy.overturn(overturn(warn, 100), state)
    restored = PolicyState.model_validate_json(state.model_dump_json())
    assert restored == state
    assert policy.decide(finding(0), restored) is None
