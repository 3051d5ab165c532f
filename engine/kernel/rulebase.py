"""What a rule set is made of: patterns, rules, interventions, citations, parameters.

Rule authors describe rules declaratively here; `engine.kernel.inference` compiles them for
durable-rules. A rule says each thing once:

* its id, purpose, patterns (`when`, `unless`) and action, and what the action may conclude,
  read in aggregate or emit;
* parameters by name, the same way in patterns and in actions: `param("persistent_pain_weeks")`.
  In a pattern it is a reference, resolved when the rule set is compiled (with a site's values,
  see `RuleSet.with_site`); inside a running action it is the value.

Everything else is derived by the rule set, never declared twice: the parameters a rule uses
(the references in its patterns and the parameter names its action code holds), the patient
attributes it reads (through `RuleSet.fact_sources`, transitively through the findings it matches)
and its stratum (`engine.kernel.inference.stratify`). `RuleSet.check()` is the one consistency
check; it returns graded findings.

This module knows no clinical term.
"""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as _dt
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from engine.kernel.errors import RuleSetError
from engine.kernel.models import Evidence

Scalar = str | int | float | bool

_RULE_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# ---------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamRef:
    """A named parameter inside a pattern, resolved to its value when the rule set is compiled."""

    name: str

    def __str__(self) -> str:  # a reference must never be formatted into text as if it were a value
        raise RuleSetError(
            f"parameter {self.name!r} was formatted outside a running rule: call param() inside "
            "the action, where it gives the value"
        )

    __format__ = lambda self, spec: self.__str__()  # noqa: E731


#: The rule firing that is running on this thread (set by the inference wrapper around an action).
_RUNNING: contextvars.ContextVar[Context | None] = contextvars.ContextVar("running_rule", default=None)


def param(name: str) -> Any:
    """A parameter of the rule set: its value inside a running action, a reference in a pattern.

    `fact("pain", duration_weeks=ge(param("persistent_pain_weeks")))` and, in the action,
    `param("persistent_pain_weeks")` name the same parameter; the rule set records that the rule
    uses it. A site may change its value within its declared bounds.
    """
    run = _RUNNING.get()
    if run is not None:
        try:  # the running rule's own parameters, without a further call (`Context.values`)
            return run.values[name]
        except (KeyError, TypeError):
            return run.param(name)  # the full lookup: a site's value, or the error naming the rule
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleSetError(f"param({name!r}): a parameter name is lower_snake_case")
    return ParamRef(name)


def _refs_in(value: Any) -> list[str]:
    if isinstance(value, ParamRef):
        return [value.name]
    if isinstance(value, (tuple, list)):
        return [n for v in value for n in _refs_in(v)]
    return []


def _resolve(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, ParamRef):
        if value.name not in values:
            raise RuleSetError(f"parameter {value.name!r} is not defined")
        v = values[value.name]
        return tuple(v) if isinstance(v, list) else v
    if isinstance(value, tuple):
        return tuple(_resolve(v, values) for v in value)
    return value


# ---------------------------------------------------------------- conditions

OPS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "in", "between", "has")


def _show(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, tuple) else str(v)


@dataclass(frozen=True)
class Test:
    """A comparison of one fact field against constants (or parameters, until resolved).

    `evaluate` is the one reading of a test outside durable-rules (explain uses it), and a test
    checks it against durable-rules for every operator.
    """

    op: str
    value: Any

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise RuleSetError(f"unknown test operator {self.op!r}")

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(_refs_in(self.value))

    def resolve(self, values: Mapping[str, Any]) -> Test:
        """This test with every parameter replaced by its value."""
        if not self.params:
            return self
        v = _resolve(self.value, values)
        if self.op == "in":
            v = tuple(x for item in v for x in (item if isinstance(item, tuple) else (item,)))
        return Test(self.op, v)

    @property
    def text(self) -> str:
        """How the test reads: '≥ 12', 'in (none, partial)'. Parameters show by name until resolved."""
        v = self.value

        def name(x: Any) -> Any:
            return f"{{{x.name}}}" if isinstance(x, ParamRef) else x

        if self.op == "between":
            return f"in [{name(v[0])}, {name(v[1])}]"
        if self.op == "in":
            return "in (" + ", ".join(str(name(x)) for x in v) + ")"
        if self.op == "has":
            return f"contains {name(v)}"
        sym = {"==": "=", "!=": "≠", "<": "<", "<=": "≤", ">": ">", ">=": "≥"}[self.op]
        return f"{sym} {name(v)}"

    def describe(self, field_name: str) -> str:
        return f"{field_name} {self.text}"

    def evaluate(self, actual: Any) -> bool:
        """Whether a field value passes (the comparison durable-rules makes; a missing field never passes)."""
        if self.params:
            raise RuleSetError("a test with unresolved parameters cannot be evaluated: resolve it first")
        if actual is None:
            return False
        v = self.value
        try:
            if self.op == "==":
                return bool(actual == v)
            if self.op == "!=":
                return bool(actual != v)
            if self.op == "in":
                return actual in v
            if self.op == "has":
                return isinstance(actual, (list, tuple)) and v in actual
            if self.op == "between":
                return bool(v[0] <= actual <= v[1])
            if self.op == "<":
                return bool(actual < v)
            if self.op == "<=":
                return bool(actual <= v)
            if self.op == ">":
                return bool(actual > v)
            return bool(actual >= v)
        except TypeError:
            return False


def ge(value: float | ParamRef) -> Test:
    return Test(">=", value)


def gt(value: float | ParamRef) -> Test:
    return Test(">", value)


def le(value: float | ParamRef) -> Test:
    return Test("<=", value)


def lt(value: float | ParamRef) -> Test:
    return Test("<", value)


def ne(value: Scalar | ParamRef) -> Test:
    return Test("!=", value)


def one_of(*values: Scalar | ParamRef) -> Test:
    """Equal to one of the values (a list-valued parameter counts as its items)."""
    if not values:
        raise RuleSetError("one_of() needs at least one value")
    return Test("in", tuple(values))


def between(low: float | ParamRef, high: float | ParamRef) -> Test:
    """low ≤ value ≤ high."""
    if not isinstance(low, ParamRef) and not isinstance(high, ParamRef) and low > high:
        raise RuleSetError(f"between({low}, {high}): the low bound is above the high bound")
    return Test("between", (low, high))


def has(item: Scalar | ParamRef) -> Test:
    """The fact's list field contains `item`."""
    return Test("has", item)


@dataclass(frozen=True)
class Pattern:
    """Matches one fact of `type` whose fields pass every test (a scalar means equality)."""

    type: str
    tests: tuple[tuple[str, Test], ...] = ()

    def describe(self) -> str:
        if not self.tests:
            return self.type
        return self.type + "(" + ", ".join(t.describe(n) for n, t in self.tests) + ")"

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(n for _, t in self.tests for n in t.params)

    def resolve(self, values: Mapping[str, Any]) -> Pattern:
        if not self.params:
            return self
        return Pattern(self.type, tuple((n, t.resolve(values)) for n, t in self.tests))

    def matches(self, f: Mapping[str, Any]) -> bool:
        """Whether fact `f` matches (a resolved pattern only)."""
        return f.get("type") == self.type and all(t.evaluate(f.get(n)) for n, t in self.tests)


def fact(type_: str, **tests: Scalar | Test | ParamRef) -> Pattern:
    """A pattern: `fact("pain", duration_weeks=ge(param("persistent_pain_weeks")))`."""
    compiled = []
    for name, test in sorted(tests.items()):
        if not isinstance(test, Test):
            test = Test("==", test)
        compiled.append((name, test))
    return Pattern(type_, tuple(compiled))


# ---------------------------------------------------------------- rules


class Context:
    """What an action may do; implemented by the inference wrapper."""

    #: the values of the running rule's declared parameters (what `param(name)` gives for them)
    values: Mapping[str, Any] = MappingProxyType({})

    def fact(self, alias: str) -> Mapping[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def all(self, type_: str) -> list[Mapping[str, Any]]:  # pragma: no cover - interface
        raise NotImplementedError

    def param(self, name: str) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def conclude(self, type_: str, key: str | None = None, **fields: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def recommend(
        self,
        intervention: str,
        rationale: list[str],
        details: Mapping[str, Any] | None = None,
        evidence: str | None = None,
        review: tuple[float, str] | None = None,
        citations: list[str] | None = None,
    ) -> None:  # pragma: no cover
        """Recommend `intervention`. `evidence` picks a variant grade; `citations` adds sources to its
        grade; `review` is (weeks, what to judge then)."""
        raise NotImplementedError

    def withhold(self, intervention: str, kind: str, reason: str) -> None:  # pragma: no cover
        raise NotImplementedError

    def unknown(self, fact_name: str, reason: str, blocks: list[str]) -> None:  # pragma: no cover
        raise NotImplementedError

    def notice(self, code: str, text: str, affects: list[str]) -> None:  # pragma: no cover
        raise NotImplementedError

    def because(self, text: str) -> None:  # pragma: no cover
        raise NotImplementedError


Action = Callable[[Context], None]


@dataclass(frozen=True)
class Rule:
    """One rule: when every `when` pattern matches and no `unless` pattern does, run `action`.

    `concludes` names the fact types the action may assert, `reads_all` the fact types it reads
    in aggregate (all of them, complete), `emits` the interventions it may recommend or
    withhold. These declarations are checked at run time and give the rule its stratum.
    `parameters` and `reads_patient` are derived by the rule set that holds the rule.
    """

    id: str
    purpose: str
    when: Mapping[str, Pattern]
    action: Action
    unless: Mapping[str, Pattern] = field(default_factory=dict)
    concludes: tuple[str, ...] = ()
    reads_all: tuple[str, ...] = ()
    emits: tuple[str, ...] = ()
    citations: tuple[str, ...] = ()
    #: derived by the rule set (`RuleSet.__post_init__`): the parameters the rule uses
    parameters: tuple[str, ...] = field(default=(), init=False, compare=False)
    #: derived by the rule set: the patient attributes the rule's decision rests on
    reads_patient: tuple[str, ...] = field(default=(), init=False, compare=False)

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

    @property
    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        return (*sorted(self.when.items()), *sorted(self.unless.items()))


def _code_strings(fn: Callable[..., Any], package: str) -> set[str]:
    """Every string constant an action can reach: its code (nested functions included), the
    functions of the rule set's own package it calls, the values it closes over, and the
    module-level constants of the rule set it names. Used to find the parameters and fact fields
    an action reads, so nobody has to declare them."""
    out: set[str] = set()
    seen: set[int] = set()
    stack: list[Any] = [fn]

    def strings(v: Any) -> None:
        if isinstance(v, str):
            out.add(v)
        elif isinstance(v, (tuple, list, frozenset, set)):
            for x in v:
                strings(x)
        elif isinstance(v, Mapping):
            for k, x in v.items():
                strings(k)
                strings(x)

    def ours(v: Any) -> bool:
        return callable(v) and str(getattr(v, "__module__", "") or "").split(".")[0] == package

    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        code = getattr(f, "__code__", None)
        if code is None:
            continue
        codes = [code]
        while codes:
            c = codes.pop()
            for k in c.co_consts:
                if hasattr(k, "co_code"):
                    codes.append(k)
                else:
                    strings(k)
            for name in c.co_names:
                g = f.__globals__.get(name)
                if ours(g):
                    stack.append(g)
                elif isinstance(g, (str, tuple, list, frozenset, Mapping)):
                    strings(g)
        for cell in f.__closure__ or ():
            try:
                v = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if ours(v):
                stack.append(v)
            else:
                strings(v)
    return out


# ---------------------------------------------------------------- knowledge


def intervention_label(ruleset: RuleSet | None, code: str) -> str:
    """The rule set's label for an intervention code ('metatarsal_pad' -> 'Metatarsal pad')."""
    spec = ruleset.interventions.get(code) if ruleset is not None else None
    return spec.label if spec is not None else code.replace("_", " ")


def code_label(ruleset: RuleSet | None, code: str) -> str:
    """The rule set's label for any other code (a flag, a finding)."""
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


@dataclass(frozen=True)
class Override:
    """A site's value for a parameter, with why and who."""

    value: Any
    reason: str
    set_by: str


@dataclass(frozen=True)
class Parameter:
    """A named threshold or constant, with where it comes from and the values a site may set."""

    name: str
    value: Any
    unit: str
    source: str
    note: str
    #: bounds a site may set a number within (inclusive); `allowed`: the items a list may hold
    min: float | None = None
    max: float | None = None
    allowed: tuple[Any, ...] | None = None
    #: when the value and its source were last reviewed
    reviewed: _dt.date | None = None
    #: the rule set's own value, when a site has overridden it
    default: Any = None
    override: Override | None = None

    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed for this parameter (None when it is)."""
        if isinstance(self.value, bool) or isinstance(value, bool):
            if type(value) is not type(self.value):
                return f"must be {type(self.value).__name__}"
            return None
        if isinstance(self.value, (int, float)):
            if not isinstance(value, (int, float)):
                return "must be a number"
            if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
                return f"{value} is outside the allowed range {self.min}-{self.max} {self.unit}"
            return None
        if isinstance(self.value, list):
            if not isinstance(value, list) or not value:
                return "must be a non-empty list"
            bad = [v for v in value if self.allowed is not None and v not in self.allowed]
            if bad:
                return "holds " + ", ".join(map(str, bad)) + f" (allowed: {', '.join(map(str, self.allowed or ()))})"
            return None
        if type(value) is not type(self.value):
            return f"must be {type(self.value).__name__}"
        if self.allowed is not None and value not in self.allowed:
            return f"must be one of {', '.join(map(str, self.allowed))}"
        return None

    @property
    def settable(self) -> bool:
        """Whether a site may set it (bounds or allowed values are declared)."""
        return self.min is not None or self.max is not None or self.allowed is not None


@dataclass(frozen=True)
class Site:
    """A clinic's parameter values (see engine.kernel.site)."""

    name: str
    overrides: Mapping[str, Override]
    source: str = ""


Level = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Finding:
    """One result of a check: its level, which check, and what to do about it."""

    level: Level
    check: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"level": self.level, "check": self.check, "message": self.message}

    def __str__(self) -> str:
        return f"{self.level}: [{self.check}] {self.message}"


def _grade_problems(ev: Evidence | None) -> list[str]:
    if ev is None:
        return ["no evidence grade"]
    out = []  # the SORT grade and the certainty are checked by the model (closed lists of values)
    if not ev.directness.strip():
        out.append("no directness")
    if not ev.citations:
        out.append("no citation")
    return out


# ---------------------------------------------------------------- what may change


@dataclass(frozen=True, order=True)
class Step:
    """One declared change of a patient's facts: its kind, what it applies to, and how far.

    `(kind, subject)` is its slot: a change set holds at most one step per slot. The meaning of
    `subject` and `amount` belongs to the rule set (an item's code, a number of days...)."""

    kind: str
    subject: str = ""
    amount: float = 0

    @property
    def slot(self) -> tuple[str, str]:
        return (self.kind, self.subject)


@dataclass(frozen=True)
class ChangeState:
    """A patient after a set of steps, with the engine's result for it (see `ChangeSpec`).

    `original` is the patient as given; `patient` the changed copy; `wait` how long the steps take
    (in the rule set's own unit of time; 0 when nothing waits); `result` the engine's result for
    `patient` (None when the changed patient is not valid input)."""

    ruleset: RuleSet
    original: Mapping[str, Any]
    steps: tuple[Step, ...]
    patient: Mapping[str, Any]
    wait: float
    result: Any


@dataclass(frozen=True)
class ChangeKind:
    """A kind of change the rule set declares possible: the patient attributes it may touch
    (as `RuleSet.fact_sources` names them, e.g. 'a.b' or 'a') and the steps it
    proposes from a state (`propose(state) -> steps`, each of this kind). `once`: a change set
    holds at most one step of this kind (otherwise one per subject)."""

    name: str
    fields: tuple[str, ...]
    propose: Callable[[ChangeState], Iterable[Step]]
    #: at most one step of this kind in a change set (else one per subject)
    once: bool = False


@dataclass(frozen=True)
class ChangeSpec:
    """What may change for a patient, for the "what would change this decision" search
    (`engine.kernel.changes`).

    `categories`: the withheld interventions of these categories are searched for.
    `kinds`: the changeable facts; nothing else is ever changed.
    `apply(ruleset, original, steps) -> (patient, wait)`: the changed patient, built from the
    original and the set of steps (the same set in any order gives the same patient).
    `describe(state) -> str`: the change set in a clinician's words; `edits(state) -> [dict]`: the
    changed facts as data ({"field": ..., "to": ...}). The search runs at most `budget` engine
    runs per patient, keeps change sets of at most `max_changes` steps and returns at most
    `alternatives` of them per intervention."""

    categories: tuple[str, ...]
    kinds: tuple[ChangeKind, ...]
    apply: Callable[[RuleSet, Mapping[str, Any], tuple[Step, ...]], tuple[dict[str, Any], float]]
    describe: Callable[[ChangeState], str]
    edits: Callable[[ChangeState], list[dict[str, Any]]]
    max_changes: int = 3
    alternatives: int = 3
    budget: int = 300


#: A year, for `RuleSet.check`'s review-date warning.
REVIEW_INTERVAL = _dt.timedelta(days=365)


@dataclass(frozen=True)
class RuleSet:
    """Everything the engine needs to triage: the rules and the knowledge they use.

    `patient_model` validates the input; `to_facts(patient)` turns it into flat facts.
    `categories` orders and titles the categories of recommendations (what to act on first
    comes first); `fact_sources` says which patient attribute each field of each input fact
    comes from (`{"pain": {"duration_weeks": "pain.duration_weeks", "*": "pain"}}`; `"*"` is the
    attribute behind the fact as a whole), so the rule set can say what each rule reads.
    `flags(patient)` gives the codes the result lists as its flags (CONTRACT.md calls them
    `red_flags`); `wording` holds the phrases the views use for the rule set's own notions.
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
    flags: Callable[[Any], list[str]]
    categories: Mapping[str, str] = field(default_factory=dict)
    #: categories whose recommendations need no evidence grade
    ungraded_categories: tuple[str, ...] = ()
    fact_sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    attributes: Mapping[str, Any] = field(default_factory=dict)
    #: human labels for codes (flags, findings) used when rendering
    labels: Mapping[str, str] = field(default_factory=dict)
    #: phrases for the views: e.g. {"flags_title": "Red flags", "flags_stop": "..."}
    wording: Mapping[str, str] = field(default_factory=dict)
    #: citations the rule set's data tables use outside rules and grades ({table: citation ids}),
    #: e.g. the sources a rule adds to a grade at run time: checked to resolve, counted as cited
    table_citations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    site: Site | None = None
    #: the digest of the rule files alone (equal to `digest` without a site)
    base_digest: str = ""
    #: what may change for a patient, for the "what would change this decision" search (None: no search)
    changes: ChangeSpec | None = None

    def __post_init__(self) -> None:
        if not self.base_digest:
            object.__setattr__(self, "base_digest", self.digest)
        self._derive()

    # -------------------------------------------------------- derived knowledge

    def _derive(self) -> None:
        """Record, on each rule, the parameters it uses and the patient attributes it reads."""
        names = set(self.parameters)
        producers: dict[str, list[Rule]] = {}
        for r in self.rules:
            for t in r.concludes:
                producers.setdefault(t, []).append(r)
        direct: dict[str, set[str]] = {}
        for r in self.rules:
            package = str(getattr(r.action, "__module__", "") or "").split(".")[0]
            s = _code_strings(r.action, package) if package not in ("", "engine") else set()
            pattern_params = {n for _, p in r.patterns for n in p.params}
            object.__setattr__(r, "parameters", tuple(sorted(pattern_params | (s & names))))
            direct[r.id] = self._direct_reads(r, s)
        # transitive: a rule reads what the producers of the findings it matches read
        memo: dict[str, set[str]] = {}

        def reads(rule: Rule, path: frozenset[str]) -> set[str]:
            if rule.id in memo:
                return memo[rule.id]
            out = set(direct[rule.id])
            for t in {*rule.reads, *rule.negates, *rule.reads_all}:
                for p in producers.get(t, []):
                    if p.id not in path:
                        out |= reads(p, path | {p.id})
            memo[rule.id] = out
            return out

        for r in self.rules:
            object.__setattr__(r, "reads_patient", tuple(sorted(reads(r, frozenset({r.id})))))

    def _direct_reads(self, r: Rule, action_strings: set[str]) -> set[str]:
        out: set[str] = set()
        pattern_types: dict[str, set[str]] = {}
        for _, p in r.patterns:
            pattern_types.setdefault(p.type, set()).update(n for n, _ in p.tests if n != "key")
        for t in r.reads_all:
            pattern_types.setdefault(t, set())
        for t, tested in pattern_types.items():
            src = self.fact_sources.get(t)
            if src is None:
                continue
            fields = {f for f in src if f != "*"}
            used = (tested | (action_strings & fields)) & fields
            if used:
                out.update(src[f] for f in used)
            elif "*" in src:
                out.add(src["*"])
        return out

    @cached_property
    def parameter_values(self) -> dict[str, Any]:
        return {name: p.value for name, p in self.parameters.items()}

    @cached_property
    def resolved(self) -> dict[str, tuple[dict[str, Pattern], dict[str, Pattern]]]:
        """Each rule's patterns with this rule set's parameter values: {id: (when, unless)}."""
        values = self.parameter_values
        return {
            r.id: (
                {a: p.resolve(values) for a, p in r.when.items()},
                {a: p.resolve(values) for a, p in r.unless.items()},
            )
            for r in self.rules
        }

    @cached_property
    def _rules_by_id(self) -> dict[str, Rule]:
        out: dict[str, Rule] = {}
        for r in self.rules:
            out.setdefault(r.id, r)  # a duplicated id (which check() reports) finds the first, as before
        return out

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id; `KeyError` when there is none."""
        try:
            return self._rules_by_id[rule_id]
        except KeyError:
            raise KeyError(rule_id) from None

    def category_title(self, category: str) -> str:
        return self.categories.get(category, category.replace("_", " "))

    def word(self, key: str, default: str = "") -> str:
        return str(self.wording.get(key, default))

    # -------------------------------------------------------- sites

    def with_site(self, site: Site | None) -> RuleSet:
        """This rule set with a site's parameter values (checked against each parameter's bounds).

        The digest then covers the site's values too, so a result says exactly which values made it.
        """
        if site is None or not site.overrides:
            return self if site is None else dataclasses.replace(self, site=site)
        params = dict(self.parameters)
        for name, ov in sorted(site.overrides.items()):
            p = params.get(name)
            if p is None:
                raise RuleSetError(
                    f"site parameter {name!r} is not a parameter of {self.name} (known: {', '.join(sorted(params))})"
                )
            if not p.settable:
                raise RuleSetError(f"site parameter {name!r} cannot be set by a site (no bounds are declared for it)")
            problem = p.problem(ov.value)
            if problem:
                raise RuleSetError(f"site parameter {name!r}: {problem}")
            params[name] = dataclasses.replace(p, value=ov.value, default=p.value, override=ov)
        stamp = json.dumps(
            {"rules": self.base_digest, "site": {n: o.value for n, o in sorted(site.overrides.items())}},
            sort_keys=True,
            separators=(",", ":"),
        )
        return dataclasses.replace(
            self,
            parameters=params,
            site=site,
            digest=hashlib.sha256(stamp.encode()).hexdigest(),
            base_digest=self.base_digest,
        )

    # -------------------------------------------------------- the one consistency check

    def check(self, today: _dt.date | None = None) -> list[Finding]:
        """Every static consistency finding of the rule set, graded: an error means it must not be
        loaded; a warning is a gap to close; a note is for information."""
        out: list[Finding] = []

        def add(level: Level, check: str, message: str) -> None:
            out.append(Finding(level, check, message))

        ids = [r.id for r in self.rules]
        for rid in sorted({i for i in ids if ids.count(i) > 1}):
            add("error", "ids", f"rule id {rid} is used by {ids.count(rid)} rules; each id must be unique")
        cited: set[str] = set()
        for r in self.rules:
            for cid in r.citations:
                cited.add(cid)
                if cid not in self.citations:
                    add("error", "citations", f"rule {r.id} cites {cid!r}, which is not in the citation library")
        for code, spec in self.interventions.items():
            if self.categories and spec.category not in self.categories:
                add(
                    "error",
                    "interventions",
                    f"intervention {code}: category {spec.category!r} is not one of {', '.join(self.categories)}",
                )
            for what, ev in _grades(spec):
                for cid in ev.citations if ev is not None else []:
                    cited.add(cid)
                    if cid not in self.citations:
                        add(
                            "error",
                            "citations",
                            f"intervention {code}: its {what} cites {cid!r}, which is not in the citation library",
                        )
        for table, ids_ in sorted(self.table_citations.items()):
            for cid in ids_:
                cited.add(cid)
                if cid not in self.citations:
                    add("error", "citations", f"{table} cites {cid!r}, which is not in the citation library")
        for cid in sorted(set(self.citations) - cited):
            add("note", "citations", f"citation {cid} is in the library but cited by no rule or grade")
        emitted: dict[str, list[str]] = {}
        for r in self.rules:
            for code in r.emits:
                emitted.setdefault(code, []).append(r.id)
        for code, rule_ids in sorted(emitted.items()):
            emitted_spec = self.interventions.get(code)
            if emitted_spec is None:
                add(
                    "error",
                    "interventions",
                    f"rules {', '.join(rule_ids)} emit {code!r}, which is not a defined intervention",
                )
                continue
            if emitted_spec.category in self.ungraded_categories:
                continue
            for what, ev in _grades(emitted_spec):
                for problem in _grade_problems(ev):
                    add(
                        "error",
                        "grades",
                        f"intervention {code} (emitted by {', '.join(rule_ids)}): its {what} has "
                        f"{problem}; every recommendation needs SORT, certainty, directness and a citation",
                    )
        used: set[str] = set()
        for r in self.rules:
            for _, pattern in r.patterns:
                for name in pattern.params:
                    used.add(name)
                    if name not in self.parameters:
                        add("error", "parameters", f"rule {r.id} uses parameter {name!r}, which is not defined")
            used.update(r.parameters)
        today = today or _dt.date.today()
        for name, p in sorted(self.parameters.items()):
            missing = [what for what, text in (("source", p.source), ("note", p.note)) if not str(text or "").strip()]
            if missing:
                add(
                    "error",
                    "parameters",
                    f"parameter {name} has no {' and no '.join(missing)}: say where the value "
                    "comes from ('project parameter, not evidence' is an honest source) and what it means",
                )
            if not str(p.unit or "").strip():
                add("warning", "parameters", f"parameter {name} has no unit")
            own = p.problem(p.value) if p.settable else None
            if own:
                add("error", "parameters", f"parameter {name}: its own value {own}")
            if p.reviewed is None:
                add("warning", "parameters", f"parameter {name} has no reviewed date")
            elif today - p.reviewed > REVIEW_INTERVAL:
                add(
                    "warning",
                    "parameters",
                    f"parameter {name} was last reviewed on {p.reviewed.isoformat()}, more "
                    "than a year ago: review its value and source",
                )
        for name in sorted(set(self.parameters) - used):
            add("note", "parameters", f"parameter {name} is used by no rule")
        if self.changes is not None:
            self._check_changes(add)
        return out

    def _check_changes(self, add: Callable[[Level, str, str], None]) -> None:
        spec = self.changes
        assert spec is not None
        for c in spec.categories:
            if self.categories and c not in self.categories:
                add(
                    "error",
                    "changes",
                    f"the change search names category {c!r}, which is not one of {', '.join(self.categories)}",
                )
        names = [k.name for k in spec.kinds]
        for n in sorted({n for n in names if names.count(n) > 1}):
            add("error", "changes", f"kind of change {n!r} is declared {names.count(n)} times")
        read = {a for src in self.fact_sources.values() for a in src.values()}
        for k in spec.kinds:
            for f in k.fields:
                if not any(fields_overlap(f, a) for a in read):
                    add("warning", "changes", f"kind of change {k.name!r} touches {f!r}, which no fact is made from")

    def errors(self) -> list[Finding]:
        return [f for f in self.check() if f.level == "error"]


def _grades(spec: InterventionSpec) -> list[tuple[str, Evidence | None]]:
    """An intervention's grade and each of its variants, named as a finding names them."""
    return [("grade", spec.evidence), *((f"grade variant {k!r}", v) for k, v in spec.evidence_variants.items())]


def fields_overlap(a: str, b: str) -> bool:
    """Whether two patient attributes overlap: the same, or one a part of the other ('a' and 'a.b')."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
