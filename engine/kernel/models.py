"""Pydantic models of the engine: the strict base for input models, and the result.

The result is the public output of CONTRACT.md. Nothing here names a clinical term: categories
and kinds are generic decision-support notions; interventions and codes are plain strings that
the rule set defines.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["urgent_referral", "first_line", "adjunct", "interventional", "surgical_referral"]
#: Display and output order of categories: what must be acted on first comes first.
CATEGORY_ORDER: tuple[str, ...] = (
    "urgent_referral",
    "first_line",
    "adjunct",
    "interventional",
    "surgical_referral",
)
#: How categories are titled for people (terminal, markdown, cards).
CATEGORY_TITLE: dict[str, str] = {
    "urgent_referral": "Urgent referral",
    "first_line": "First-line care",
    "adjunct": "Adjuncts",
    "interventional": "Interventional",
    "surgical_referral": "Surgical referral",
}
WithheldKind = Literal["contraindicated", "not_indicated", "deferred", "suppressed"]
KIND_ORDER: tuple[str, ...] = ("contraindicated", "suppressed", "not_indicated", "deferred")
Sort = Literal["A", "B", "C"]
Certainty = Literal["high", "moderate", "low", "very_low"]


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
    """Base of result models: closed, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Evidence(OutputModel):
    """How strong the evidence behind a recommendation is, and where it comes from."""

    sort: Sort = Field(description="Strength of Recommendation Taxonomy (SORT) grade")
    certainty: Certainty = Field(description="GRADE certainty of the evidence")
    directness: str = Field(description="direct, or indirect with the population it comes from")
    citations: list[str] = Field(description="ids into the result's citation library")


class Recommendation(OutputModel):
    """One intervention the rule set recommends for this patient."""

    intervention: str = Field(description="intervention code")
    category: Category = Field(description="where it sits in the pathway")
    strength: str = Field(description="wording of the recommendation, e.g. 'may be considered'")
    evidence: Evidence | None = Field(
        default=None, description="evidence grade; absent only for urgent referral"
    )
    details: dict[str, Any] = Field(default_factory=dict, description="dosing, cautions, monitoring")
    rationale: list[str] = Field(description="the facts that led here")
    rule: str = Field(description="id of the rule that made it")


class NotRecommended(OutputModel):
    """An intervention withheld, with the kind of reason and the reason itself."""

    intervention: str
    kind: WithheldKind
    reason: str
    rule: str


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


class RulesetInfo(OutputModel):
    name: str
    version: str
    digest: str = Field(description="sha256 over the rule set's files")


class Result(OutputModel):
    """The triage result: CONTRACT.md's output."""

    patient_id: str
    ruleset: RulesetInfo
    red_flags: list[str]
    recommendations: list[Recommendation]
    not_recommended: list[NotRecommended]
    unknowns: list[Unknown] = Field(default_factory=list)
    trace: list[TraceEntry]
    citations: dict[str, dict[str, Any]]

    def recommended(self, intervention: str) -> Recommendation | None:
        """The recommendation for `intervention`, or None."""
        return next((r for r in self.recommendations if r.intervention == intervention), None)

    def withheld(self, intervention: str) -> list[NotRecommended]:
        """Every not-recommended entry for `intervention` (several reasons may apply)."""
        return [n for n in self.not_recommended if n.intervention == intervention]
