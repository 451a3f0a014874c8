"""Common shape of rule files (``rules/*.yaml``); each detector extends ``Rule`` with its own fields."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from schemas.findings import RuleStatus, Severity

RuleId = str


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {e}") from e
    return pattern


#: a regular expression in a rule file: refused at load when it does not compile
RegexPattern = Annotated[str, AfterValidator(_compiles)]


class Rule(BaseModel):
    """One rule: a stable id, a version, a status, a severity and the law it enforces."""

    # Rule files are written by people: a misspelt key must be an error, not silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", description="e.g. claims.absolute.best")
    version: int = Field(ge=1)
    status: RuleStatus = "live"
    severity: Severity
    legal_basis: str = Field(min_length=2, description="e.g. 《广告法》第九条第三项")
    description: str = ""

    @field_validator("status", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, v: object) -> object:
        # YAML 1.1 reads a bare `off` as the boolean false; it means the status "off".
        return "off" if v is False else v


class RuleFile(BaseModel):
    """A file of rules for one detector. ``settings`` is validated by the detector's own model."""

    model_config = ConfigDict(extra="forbid")

    detector: str
    settings: dict[str, Any] = Field(default_factory=dict)
    rules: list[dict[str, Any]] = Field(default_factory=list)


class RulesetManifest(BaseModel):
    """``rules/ruleset.yaml``: the human-chosen version of the whole ruleset."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=64)
    description: str = ""
