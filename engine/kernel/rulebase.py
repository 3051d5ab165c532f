"""What a rule set is made of: patterns, rules, interventions, citations, parameters.

Rule authors describe rules declaratively here; `engine.kernel.inference` compiles them for
durable-rules. A rule never tests the absence of a fact that its own stratum could still
produce: strata are computed from what rules read and conclude (see `stratify`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.kernel.errors import RuleSetError
from engine.kernel.models import CATEGORY_ORDER, Evidence

Scalar = str | int | float | bool

_RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Test:
    """A comparison of one fact field against constants."""

    op: str  # '==', '!=', '<', '<=', '>', '>=', 'in', 'has'
    value: Any
    text: str

    def describe(self, name: str) -> str:
        return f"{name} {self.text}"


def ge(value: float) -> Test:
    return Test(">=", value, f"≥ {value}")


def gt(value: float) -> Test:
    return Test(">", value, f"> {value}")


def le(value: float) -> Test:
    return Test("<=", value, f"≤ {value}")


def lt(value: float) -> Test:
    return Test("<", value, f"< {value}")


def ne(value: Scalar) -> Test:
    return Test("!=", value, f"≠ {value}")


def one_of(*values: Scalar) -> Test:
    if not values:
        raise RuleSetError("one_of() needs at least one value")
    return Test("in", tuple(values), "in (" + ", ".join(map(str, values)) + ")")


def between(low: float, high: float) -> Test:
    """low ≤ value ≤ high."""
    if low > high:
        raise RuleSetError(f"between({low}, {high}): the low bound is above the high bound")
    return Test("between", (low, high), f"in [{low}, {high}]")


def has(item: Scalar) -> Test:
    """The fact's list field contains `item`."""
    return Test("has", item, f"contains {item}")


@dataclass(frozen=True)
class Pattern:
    """Matches one fact of `type` whose fields pass every test (a scalar means equality)."""

    type: str
    tests: tuple[tuple[str, Test], ...] = ()

    def describe(self) -> str:
        if not self.tests:
            return self.type
        return self.type + "(" + ", ".join(t.describe(n) for n, t in self.tests) + ")"


def fact(type_: str, **tests: Scalar | Test) -> Pattern:
    """A pattern: `fact("pain", duration_weeks=ge(12))`."""
    compiled = []
    for name, test in sorted(tests.items()):
        if not isinstance(test, Test):
            test = Test("==", test, f"= {test}")
        compiled.append((name, test))
    return Pattern(type_, tuple(compiled))


# ---------------------------------------------------------------- rules


class Context:
    """What an action may do; implemented by the inference wrapper."""

    def fact(self, alias: str) -> Mapping[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def all(self, type_: str) -> list[Mapping[str, Any]]:  # pragma: no cover - interface
        raise NotImplementedError

    def param(self, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def conclude(self, type_: str, key: str | None = None, **fields: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def recommend(self, intervention: str, rationale: list[str], details: Mapping[str, Any] | None = None,
                  evidence: str | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def withhold(self, intervention: str, kind: str, reason: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def unknown(self, fact_name: str, reason: str, blocks: list[str]) -> None:  # pragma: no cover
        raise NotImplementedError

    def because(self, text: str) -> None:  # pragma: no cover
        raise NotImplementedError


Action = Callable[[Context], None]


@dataclass(frozen=True)
class Rule:
    """One rule: when every `when` pattern matches and no `unless` pattern does, run `action`.

    `concludes` names the fact types the action may assert, `reads_all` the fact types it reads
    in aggregate (all of them, complete), `emits` the interventions it may recommend or
    withhold, `parameters` the named parameters it uses. These declarations are checked at run
    time and give the rule its stratum.
    """

    id: str
    purpose: str
    when: Mapping[str, Pattern]
    action: Action
    unless: Mapping[str, Pattern] = field(default_factory=dict)
    concludes: tuple[str, ...] = ()
    reads_all: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    parameters: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    reads_patient: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _RULE_ID.match(self.id):
            raise RuleSetError(f"rule id {self.id!r} must be upper-case words joined by '-', e.g. 'LDN-OFFER'")
        if not self.when:
            raise RuleSetError(f"rule {self.id}: needs at least one positive pattern in `when`")
        for alias in list(self.when) + list(self.unless):
            if not _NAME.match(alias):
                raise RuleSetError(f"rule {self.id}: alias {alias!r} must be lower_snake_case")
        if set(self.when) & set(self.unless):
            raise RuleSetError(f"rule {self.id}: an alias is used in both `when` and `unless`")

    @property
    def reads(self) -> tuple[str, ...]:
        """Fact types matched positively."""
        return tuple(sorted({p.type for p in self.when.values()}))

    @property
    def negates(self) -> tuple[str, ...]:
        return tuple(sorted({p.type for p in self.unless.values()}))


# ---------------------------------------------------------------- knowledge


def intervention_label(ruleset: "RuleSet | None", code: str) -> str:
    """The rule set's label for an intervention code ('metatarsal_pad' -> 'Metatarsal pad')."""
    spec = ruleset.interventions.get(code) if ruleset is not None else None
    return spec.label if spec is not None else code.replace("_", " ")


def code_label(ruleset: "RuleSet | None", code: str) -> str:
    """The rule set's label for any other code (a red flag, a finding)."""
    if ruleset is not None and code in ruleset.labels:
        return str(ruleset.labels[code])
    return code.replace("_", " ")


@dataclass(frozen=True)
class InterventionSpec:
    """What the rule set says about one intervention, wherever it is recommended."""

    code: str
    label: str
    category: str
    strength: str
    evidence: Evidence | None
    details: Mapping[str, Any] = field(default_factory=dict)
    evidence_variants: Mapping[str, Evidence] = field(default_factory=dict)
    #: detail keys shown in the compact terminal view (all are shown with --details)
    show: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.category not in CATEGORY_ORDER:
            raise RuleSetError(
                f"intervention {self.code}: category {self.category!r} is not one of {', '.join(CATEGORY_ORDER)}"
            )


@dataclass(frozen=True)
class Parameter:
    """A named threshold or constant, with where it comes from."""

    name: str
    value: Any
    unit: str
    source: str
    note: str


@dataclass(frozen=True)
class RuleSet:
    """Everything the engine needs to triage: the rules and the knowledge they use.

    `patient_model` validates the input; `to_facts(patient)` turns it into flat facts.
    """

    name: str
    version: str
    digest: str
    rules: tuple[Rule, ...]
    interventions: Mapping[str, InterventionSpec]
    citations: Mapping[str, Mapping[str, Any]]
    parameters: Mapping[str, Parameter]
    patient_model: type
    to_facts: Callable[[Any], list[dict[str, Any]]]
    patient_id: Callable[[Any], str]
    red_flags: Callable[[Any], list[str]]
    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: human labels for codes (red flags, findings) used when rendering
    labels: Mapping[str, str] = field(default_factory=dict)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def check(self) -> list[str]:
        """Static consistency problems of the rule set (empty when sound)."""
        problems: list[str] = []
        seen: set[str] = set()
        for r in self.rules:
            if r.id in seen:
                problems.append(f"rule id {r.id} is used twice")
            seen.add(r.id)
            for cid in r.citations:
                if cid not in self.citations:
                    problems.append(f"rule {r.id}: citation {cid!r} is not in the citation library")
            for p in r.parameters:
                if p not in self.parameters:
                    problems.append(f"rule {r.id}: parameter {p!r} is not defined")
            for code in r.emits:
                if code not in self.interventions:
                    problems.append(f"rule {r.id}: emits unknown intervention {code!r}")
        for spec in self.interventions.values():
            for ev in [spec.evidence, *spec.evidence_variants.values()]:
                if ev is None:
                    continue
                for cid in ev.citations:
                    if cid not in self.citations:
                        problems.append(f"intervention {spec.code}: citation {cid!r} is not in the citation library")
        for p in self.parameters.values():
            if not p.source.strip() or not p.note.strip():
                problems.append(f"parameter {p.name}: needs a source and a note")
        return problems
