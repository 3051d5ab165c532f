"""Pydantic models of the engine: the strict base for input models, and the result.

The result is the public output of CONTRACT.md. Nothing here names a clinical term: the kinds of
withheld entry are generic decision-support notions; categories, interventions and codes are
plain strings that the rule set defines (and `engine.kernel.triage` checks against it). The one
word of the contract's own, `red_flags`, is the name of the result's list of flags.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WithheldKind = Literal["contraindicated", "not_indicated", "deferred", "suppressed"]
KIND_ORDER: tuple[str, ...] = ("contraindicated", "suppressed", "not_indicated", "deferred")
Sort = Literal["A", "B", "C"]
#: GRADE certainty; `not_graded` for a good practice statement (advice whose benefit is plain, such as an
#: urgent referral on a red flag, which no body of evidence grades).
Certainty = Literal["high", "moderate", "low", "very_low", "not_graded"]


def _none(v: Any) -> bool:
    return v is None


class StrictModel(BaseModel):
    """Base of every input model: unknown fields are errors, assignments are validated."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        strict=True,
        frozen=False,
        str_strip_whitespace=False,
    )


class OutputModel(BaseModel):
    """Base of result models: closed, immutable once built.

    Their validators are built on first use (`defer_build`), not at import: the batch path and
    `triage --format json` write results as JSON data and never build most of them, which keeps
    them out of the CLI's cold start.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Evidence(OutputModel):
    """How strong the evidence behind a recommendation is, and where it comes from."""

    sort: Sort = Field(description="Strength of Recommendation Taxonomy (SORT) grade")
    certainty: Certainty = Field(description="GRADE certainty of the evidence")
    directness: str = Field(description="direct, or indirect with the population it comes from")
    citations: list[str] = Field(description="ids into the result's citation library")


class Review(OutputModel):
    """When a recommendation should be reviewed."""

    weeks: float = Field(description="weeks from now")
    text: str = Field(description="what to judge then")


class Recommendation(OutputModel):
    """One intervention the rule set recommends for this patient."""

    intervention: str = Field(description="intervention code")
    category: str = Field(description="where it sits in the pathway (a category of the rule set)")
    strength: str = Field(description="wording of the recommendation, e.g. 'may be considered'")
    evidence: Evidence | None = Field(
        default=None, description="evidence grade; absent only in a category the rule set leaves ungraded"
    )
    details: dict[str, Any] = Field(default_factory=dict, description="dosing, cautions, monitoring")
    rationale: list[str] = Field(description="the facts that led here")
    rule: str = Field(description="id of the rule that made it")
    review: Review | None = Field(
        default=None, exclude_if=_none, description="when to review it (absent where the rule set sets no review)"
    )


class Change(OutputModel):
    """One set of changes to the patient's facts that would make a withheld option an option."""

    text: str = Field(description="the change in words, e.g. 'pain reaches 12 weeks (in 9 weeks)'")
    edits: list[dict[str, Any]] = Field(description="the changed facts: [{field, to, ...}]")


class NotRecommended(OutputModel):
    """An intervention withheld, with the kind of reason and the reason itself."""

    intervention: str
    kind: WithheldKind
    reason: str
    rule: str
    what_would_change: list[Change] | None = Field(
        default=None,
        exclude_if=_none,
        description="the nearest changes of the patient's facts that would make it an option (when asked for)",
    )


class TraceEntry(OutputModel):
    """One rule firing: what it used, what it concluded, and the comparisons it made."""

    rule: str
    used: list[str]
    concluded: list[str]
    because: list[str] = Field(default_factory=list)


class Unknown(OutputModel):
    """A fact the pathway needs that the input did not give, and what it blocks."""

    fact: str
    reason: str
    blocks: list[str]
    rule: str


class Notice(OutputModel):
    """Something the rule set does not cover for this patient, named next to what it affects."""

    code: str
    text: str
    affects: list[str]
    rule: str


class SiteValue(OutputModel):
    value: Any
    default: Any
    reason: str
    set_by: str


class SiteInfo(OutputModel):
    name: str
    parameters: dict[str, SiteValue]


class RulesetInfo(OutputModel):
    name: str
    version: str
    digest: str = Field(description="sha256 over the rule set's files (and the site's parameter values, if any)")
    site: SiteInfo | None = Field(
        default=None, exclude_if=_none, description="the site's parameter values, when a site configuration is applied"
    )


class Result(OutputModel):
    """The triage result: CONTRACT.md's output."""

    patient_id: str
    ruleset: RulesetInfo
    red_flags: list[str]
    recommendations: list[Recommendation]
    not_recommended: list[NotRecommended]
    unknowns: list[Unknown] = Field(default_factory=list)
    notices: list[Notice] = Field(default_factory=list)
    trace: list[TraceEntry]
    citations: dict[str, dict[str, Any]]

    def recommended(self, intervention: str) -> Recommendation | None:
        """The recommendation for `intervention`, or None."""
        return next((r for r in self.recommendations if r.intervention == intervention), None)

    def withheld(self, intervention: str) -> list[NotRecommended]:
        """Every not-recommended entry for `intervention` (several reasons may apply)."""
        return [n for n in self.not_recommended if n.intervention == intervention]
