"""Enforcement policy: findings → actions, along a ladder per subject (room or account).

Live findings add strike points by severity; an action is issued when the ladder's step (the highest whose
threshold the points within ``period_s`` reach) rises above the highest step issued within the period,
subject to a cool-down and to ``jump``; strikes and actions expire after ``period_s``. Keyed to event time; a
finding already counted is answered with the action it produced before, so nothing escalates twice. An action
overturned on appeal (an ``OverturnEvent``) takes its step and the strikes it introduced off the ladder.

The ladder in full: docs/rules.md ("The enforcement ladders").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import OverturnEvent
from schemas.findings import ActionType, EnforcementAction, Finding, Severity, derived_id


class LadderStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at: int = Field(ge=1, description="strike points within the period that reach this step")
    action: ActionType
    duration_s: int = Field(ge=0)
    message: str = ""


class Ladder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    period_s: int = Field(ge=60)
    cooldown_s: int = Field(ge=0)
    points: dict[Severity, int]
    jump: dict[Severity, ActionType] = Field(default_factory=dict)
    steps: list[LadderStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Ladder:
        thresholds = [s.at for s in self.steps]
        if thresholds != sorted(set(thresholds)):
            raise ValueError("steps must have strictly increasing 'at' thresholds")
        missing = {"low", "medium", "high", "critical"} - set(self.points)
        if missing:
            raise ValueError(f"points must give every severity; missing {sorted(missing)}")
        actions = [s.action for s in self.steps]
        for sev, action in self.jump.items():
            if action not in actions:
                raise ValueError(f"jump for {sev!r} names action {action!r}, which is not a step of this ladder")
        return self


class EnforcementConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    appeal_ref_prefix: str = "LW-APPEAL-"
    ladders: dict[Literal["room", "account"], Ladder]

    @model_validator(mode="after")
    def _room_ladder(self) -> EnforcementConfig:
        if "room" not in self.ladders:
            raise ValueError("a 'room' ladder is required")
        return self


#: strikes kept per subject; the newest are kept, far more than the top of any ladder needs
MAX_STRIKES = 200
#: finding ids listed as an action's reasons (the most recent ones)
MAX_REASONS = 50


class Strike(BaseModel):
    finding_id: str
    ts: int
    points: int
    legal_basis: str
    action_id: str | None = None  # the action this finding caused, if any: re-delivery answers the same


class SubjectState(BaseModel):
    strikes: list[Strike] = Field(default_factory=list)
    issued: list[EnforcementAction] = Field(default_factory=list)
    #: event time of the first strike of the current episode (strikes within one period of each other)
    episode_start: int | None = None
    #: strikes taken off by an overturn, kept for the period so that a re-delivered finding is not counted again;
    #: they keep the episode going, so a step issued again gets a new id (``revision``), never a revoked one
    overturned: list[Strike] = Field(default_factory=list)
    #: overturns in the current episode; part of the action ids once non-zero (a re-issued step gets a new id)
    revision: int = 0


class PolicyState(BaseModel):
    """Ladder state of every subject in one room (the room itself and accounts in it)."""

    subjects: dict[str, SubjectState] = Field(default_factory=dict)


class Policy:
    def __init__(self, config: EnforcementConfig, ruleset_version: str) -> None:
        self.config = config
        self.ruleset_version = ruleset_version

    def decide(self, finding: Finding, state: PolicyState) -> EnforcementAction | None:
        """The action a live finding leads to (updating ``state``), or None."""
        if finding.status != "live":
            return None
        ladder = self.config.ladders.get(finding.subject.kind)
        if ladder is None:
            return None
        key = finding.subject.key()
        subject = state.subjects.get(key)
        if subject is None:  # not setdefault: a SubjectState is a model, ≈ 1.6 µs to build for nothing
            subject = state.subjects[key] = SubjectState()
        return self._decide(ladder, finding, subject)

    def would_do(self, finding: Finding, state: PolicyState) -> str | None:
        """For a shadow finding: the action it would have caused, without touching ``state``."""
        ladder = self.config.ladders.get(finding.subject.kind)
        if ladder is None:
            return None
        # a shallow copy is enough: _decide replaces the strike and action lists before it adds to them, and
        # changes no strike or action it did not create (a deep copy per shadow finding cost ≈ 3 % of a replay)
        subject = state.subjects.get(finding.subject.key(), SubjectState()).model_copy()
        action = self._decide(ladder, finding, subject)
        return action.action if action else None

    def overturn(self, event: OverturnEvent, state: PolicyState) -> bool:
        """Take an action overturned on appeal off its subject's ladder (updating ``state``): its step, and the
        strikes it introduced — its reasons but those behind an earlier action that still stands. False when
        there is nothing to do: the action is not on the ladder (overturned already, expired, or unknown)."""
        subject = state.subjects.get(event.subject.key())
        if subject is None:
            return False
        index = next((i for i, a in enumerate(subject.issued) if a.action_id == event.action_id), None)
        if index is None:
            return False
        action = subject.issued.pop(index)
        standing = {reason for earlier in subject.issued[:index] for reason in earlier.reasons}
        dropped = set(action.reasons) - standing
        subject.overturned = [
            *subject.overturned,
            *(st for st in subject.strikes if st.finding_id in dropped),
        ][-MAX_STRIKES:]
        subject.strikes = [st for st in subject.strikes if st.finding_id not in dropped]
        subject.revision += 1
        return True

    def _decide(self, ladder: Ladder, finding: Finding, subject: SubjectState) -> EnforcementAction | None:
        seen = next((st for st in subject.strikes if st.finding_id == finding.finding_id), None)
        if seen is not None:  # already counted (a re-delivered event): answer exactly as the first time
            return next((a for a in subject.issued if a.action_id == seen.action_id), None)
        if any(st.finding_id == finding.finding_id for st in subject.overturned):
            return None  # counted once, then overturned on appeal: a re-delivery must not count it again

        horizon = finding.ts - ladder.period_s * 1000
        subject.strikes = [st for st in subject.strikes if st.ts > horizon][-(MAX_STRIKES - 1) :]
        subject.issued = [a for a in subject.issued if a.ts > horizon]
        if subject.overturned:
            subject.overturned = [st for st in subject.overturned if st.ts > horizon]
        if not subject.strikes and not subject.overturned:
            subject.episode_start = finding.ts
            subject.revision = 0
        strike = Strike(
            finding_id=finding.finding_id,
            ts=finding.ts,
            points=ladder.points[finding.severity],
            legal_basis=finding.legal_basis,
        )
        subject.strikes.append(strike)

        points = sum(st.points for st in subject.strikes)
        target = max((i for i, step in enumerate(ladder.steps) if step.at <= points), default=-1)
        jump_action = ladder.jump.get(finding.severity)
        jumped = False
        if jump_action is not None:
            jump_step = next(i for i, st in enumerate(ladder.steps) if st.action == jump_action)
            if jump_step > target:
                target, jumped = jump_step, True
        last_step = max((a.step for a in subject.issued), default=-1)
        if target <= last_step:
            return None
        last_ts = max((a.ts for a in subject.issued), default=None)
        if last_ts is not None and not jumped and finding.ts - last_ts < ladder.cooldown_s * 1000:
            return None

        step = ladder.steps[target]
        # The id names the step of this subject's episode, not the finding that happened to cross the
        # threshold: the same step is never issued under two ids, whatever order findings arrive in.
        episode = subject.episode_start
        if finding.subject.kind == "account" and episode is not None:
            # An account's findings come from many rooms; behind a repartition (Kafka) they can arrive in another
            # order than a replay decides them, and so start the episode with another finding. The period the
            # episode starts in is the same either way (two episodes never start in one period), and names it.
            period_ms = ladder.period_s * 1000
            episode = episode // period_ms * period_ms
        # After an overturn the revision joins the id: the step issued again is a new action, not the revoked one
        # (and with no overturn every id stays as it always was)
        revision = (subject.revision,) if subject.revision else ()
        action_id = derived_id(
            "action", finding.subject.kind, finding.subject.key(), target, step.action, episode, *revision
        )
        strike.action_id = action_id
        action = EnforcementAction(
            action_id=action_id,
            action=step.action,
            subject=finding.subject,
            room_id=finding.room_id,
            platform=finding.platform,
            ts=finding.ts,
            duration_s=step.duration_s,
            expires_ts=finding.ts + step.duration_s * 1000 if step.duration_s else None,
            ladder=finding.subject.kind,
            step=target,
            severity=finding.severity,
            rule_id=finding.rule_id,
            rule_version=finding.rule_version,
            ruleset_version=self.ruleset_version,
            reasons=[st.finding_id for st in subject.strikes][-MAX_REASONS:],
            legal_basis=list(dict.fromkeys(st.legal_basis for st in subject.strikes)),
            appeal_ref=f"{self.config.appeal_ref_prefix}{action_id[:8].upper()}",
            message=step.message or f"{step.action} after {points} strike point(s): {finding.summary}",
        )
        subject.issued.append(action)
        return action
