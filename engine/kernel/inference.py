"""The one module that owns durable-rules 2.0.28.

Everything else sees `Engine.run(facts) -> Collected`: facts in, conclusions out, on the
caller's thread. The measured edges of durable-rules (../shared/DURABLE.md) are closed here:

* No background threads: the wrapper drives durable-rules' C core directly (`create_ruleset`,
  `assert_facts`, `start_action_for_state`, `complete_and_start_action`) and never creates a
  `durable.engine.Host`, whose two timer threads segfault under concurrency. Every action runs
  synchronously on the caller's thread, and the agenda is drained before `run` returns.
* No fact outlives a triage: each pooled session is its own durable ruleset with one constant
  session id, so a ruleset never holds more than one state node and session ids never collide
  (the 32-bit FNV hash and the 1024 cap). After a triage (once its agenda has drained) the state
  node is either kept or deleted. Kept (`Engine(..., reuse_states=True)`): every fact the triage
  asserted is retracted, gate facts first so that no rule can complete a match while the rest go,
  and the wrapper then proves the state empty (`start_action_for_state` offers no action and
  `get_facts` lists none). If that proof fails, any action offered is completed without running
  and the state is deleted (`Engine.fallbacks` counts it). The state is also deleted, after its
  agenda has drained, when a triage fails, and after `RECYCLE_AFTER` triages; the next triage
  creates it afresh. Deleted (`reuse_states=False`): the reference lifecycle that tests compare
  the kept one against, result for result and trace for trace.
  Which is the default depends on the durable-rules build (`BOUNDED_RETRACTION`): retracting takes
  a path of upstream durable-rules 2.0.28 that valgrind showed reading past a freed activation
  frame, with possible stray writes (`_RETRACT_SAFE_SLOTS`), and a clinical engine does not trade
  memory safety for speed, so on upstream the state is deleted after every triage. The vendored
  build (third_party/durable_rules, which the README installs) bounds that scan and says so
  (`durable_rules_engine.forefoot_bounded_retraction`); on it the state node is kept, which saves
  creating it (about a tenth of a triage).
* Threads and forks: each run borrows a whole session from the engine's pool, so threads never
  share one. A forked child (`os.register_at_fork`) starts with empty pools and fresh locks: a
  lock or a session another thread held at the moment of the fork is never inherited.
* Facts are small, flat and normalised (`normalise_fact`): no nesting, at most
  `MAX_FACT_PROPERTIES` leaves (253 segfault upstream; the vendored build refuses 128), floats
  rounded and never written in exponent form (which segfaults), non-ASCII kept as text (orjson
  writes UTF-8, as `ensure_ascii=False` does), fact ids assigned here from a fixed,
  collision-tested range. A match that durable-rules
  reports is resolved, by fact id, to the fact the wrapper sent: rules read our read-only copy,
  never durable's round-tripped one, and an id the wrapper never issued fails the triage.
* A fact's type travels to durable-rules as a property named after it (`type:<type>` = 1, see
  `type_marker`), not as the value of a `type` property: durable-rules hashes a node's children by
  property name only, so `type == X` patterns put the nodes of every fact type in one chain that
  each fact walked whole. Field names with that prefix are reserved (facts and patterns).
* An exception in an action is caught by the wrapper's own agenda loop (durable-rules' Python
  host would store it as a string and go on); the agenda is drained without running further
  actions, and the triage fails closed with `InferenceError`.
* Negation without retraction: rules are stratified from what they read and conclude. A stratum
  opens only after the previous one has drained, by asserting a gate fact that every rule of the
  stratum needs; a rule may negate only facts from earlier strata, so every blocking fact exists
  before any absence is tested, whatever order rules are defined and facts arrive in.
* Rule ids are ours: durable-rules is given our ids as rule names and our order as `pri`.
* A session in which no action ever started must not be deleted: durable-rules' createStateNode
  leaves the action context uninitialised and deleteStateNode frees it (an invalid free, found
  with valgrind: a segfault when no rule fires for a patient). Every new state node therefore
  starts with the wrapper's own `_session_open` rule: its fact (`$open`) is asserted first, the
  rule fires once, does nothing, and leaves the context initialised; the fact is then retracted.
  A kept state node is never new again, so the opening costs nothing per patient.
"""

from __future__ import annotations

import json
import math
import os
import threading
import weakref
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, cast

import durable_rules_engine as _dre
import orjson

from engine.kernel.errors import FactError, InferenceError, RuleSetError
from engine.kernel.rulebase import _RUNNING, Context, Pattern, Rule, RuleSet, Test

#: 253 properties (nested leaves counted) segfault upstream durable-rules; the vendored build
#: (third_party/README.md) refuses 128 with its own error. Keep far below both.
MAX_FACT_PROPERTIES = 64
#: Facts in one session, derived ones included. Ids f1..f{MAX_FACTS} are pinned collision-free by a test.
MAX_FACTS = 512
#: Floats beyond this magnitude would be written in exponent form by json.dumps.
MAX_ABS_NUMBER = 1e15
MAX_STRING = 256
_SID = "1"
_GATE_TYPE = "$gate"
_GATE_ALIAS = "stratum_gate"
_OPEN_RULE = "_session_open"  # not a valid rule-set id, so it can never collide with one
_OPEN_TYPE = "$open"
_OPEN_ALIAS = "session"
_INTERNAL = ("id", "sid")
#: The prefix of the property that carries a fact's type to durable-rules (`type_marker`): no
#: fact field and no pattern test may be named with it.
_MARKER = "type:"


# ---------------------------------------------------------------- facts


def _where(where: str, key: str | None) -> str:
    return where if key is None else f"fact {where}.{key}"


def _normalise_scalar(value: Any, where: str, key: str | None = None) -> Any:
    """`value` as it may be sent, or `FactError` naming `where` (with `key`: fact `where`.`key`).

    The location is formatted only when there is an error: this runs for every value of every fact.
    """
    kind = type(value)
    if kind is str:
        if len(value) > MAX_STRING:
            raise FactError(f"{_where(where, key)}: string longer than {MAX_STRING} characters")
        return value
    if kind is bool:
        return value
    if kind is int:
        if -(2**53) < value < 2**53:
            return value
        raise FactError(f"{_where(where, key)}: integer out of the safe range ±2^53")
    if kind is float:
        if not math.isfinite(value):
            raise FactError(f"{_where(where, key)}: NaN and infinity never match in durable-rules")
        if abs(value) >= MAX_ABS_NUMBER:
            raise FactError(f"{_where(where, key)}: magnitude ≥ {MAX_ABS_NUMBER:.0f} would be sent in exponent form")
        value = round(value, 4)
        if value.is_integer():
            return int(value)
        return value  # 1e-4 <= |value| < 1e15 after rounding: repr never uses an exponent
    raise FactError(
        f"{_where(where, key)}: {kind.__name__} is not allowed in a fact (str, int, float, bool or a list of them)"
    )


#: Keys already found to be names that are not reserved (bounded: a rule set has a small vocabulary).
_GOOD_KEYS: set[str] = set()
_SAFE_INT = 2**53


def _check_key(key: Any, ftype: str) -> None:
    if type(key) is not str or not key or key in _INTERNAL or key[0] == "$" or key.startswith(_MARKER):
        raise FactError(f"fact {ftype}: key {key!r} is reserved or not a name")
    if len(_GOOD_KEYS) < 4096:
        _GOOD_KEYS.add(key)


def normalise_fact(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Return a flat, bounded copy of `raw` that is safe to send to durable-rules.

    Raises `FactError` for nesting, unsafe numbers, reserved keys or too many properties.
    """
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise FactError("a fact must be a mapping")
    ftype = raw.get("type")
    if type(ftype) is not str or not ftype:
        raise FactError("a fact needs a non-empty string 'type'")
    if type(raw) is dict:
        out = raw.copy()
        items: Any = raw.items()
    else:  # a Mapping of another kind: its items, read once
        items = list(raw.items())
        out = dict(items)
    leaves = len(_INTERNAL) + len(items) + _normalise_into(out, ftype, items)
    if leaves > MAX_FACT_PROPERTIES:
        raise FactError(f"fact {ftype}: {leaves} properties with id and sid, at most {MAX_FACT_PROPERTIES}")
    return out


def _normalise_into(out: dict[str, Any], ftype: str, items: Any) -> int:
    """Check the (key, value) `items` of a fact of `ftype`, already copied into `out` in their
    order, and put in `out` the value each becomes where normalising changes it (a float, a list);
    return the leaves they add beyond one per item (a list of n values is n leaves, an empty one 1).

    Strings, integers and floats of at most four binary-exact decimals (every value of an
    ordinary fact) are checked inline; anything else goes through `_normalise_scalar`, which
    rounds floats and names the problem. One pass over the values, with no per-value copy: this
    runs for every fact of every triage (`tests/test_inference_paths.py` holds it to the
    value-by-value reading, `_normalise_reference`).
    """
    good = _GOOD_KEYS
    extra = 0
    for key, value in items:
        if key not in good:
            _check_key(key, ftype)
        kind = type(value)
        if kind is str:
            if len(value) > MAX_STRING:
                _normalise_scalar(value, ftype, key)  # raises
        elif kind is int:
            if not -_SAFE_INT < value < _SAFE_INT:
                _normalise_scalar(value, ftype, key)  # raises
        elif kind is list or kind is tuple:
            values = list(value)
            for v in values:
                if type(v) is not str or len(v) > MAX_STRING:
                    values = [
                        v if type(v) is str and len(v) <= MAX_STRING else _normalise_scalar(v, ftype, key)
                        for v in value
                    ]
                    break
            out[key] = values
            if len(values) > 1:
                extra += len(values) - 1
        elif kind is float and -MAX_ABS_NUMBER < value < MAX_ABS_NUMBER and (value * 16).is_integer():
            # n/16 has at most four decimals: round(value, 4) is value itself (no decimal conversion)
            out[key] = int(value) if value.is_integer() else value
        elif value is None:
            raise FactError(f"fact {ftype}.{key}: None is not allowed; leave the field out")
        else:
            out[key] = _normalise_scalar(value, ftype, key)
    return extra


def _normalise_fields(ftype: str, fields: dict[str, Any], key: Any) -> dict[str, Any]:
    """`normalise_fact({"type": ftype, **fields, "key": key})` (no "key" when it is None), without
    building that dict: a rule's `conclude(...)` arguments, which never hold "type" or "key" themselves."""
    if type(ftype) is not str or not ftype:
        raise FactError("a fact needs a non-empty string 'type'")
    out: dict[str, Any] = {"type": ftype, **fields}
    leaves = len(_INTERNAL) + 1 + len(fields) + _normalise_into(out, ftype, fields.items())
    if key is not None:
        out["key"] = key
        leaves += 1
        if type(key) is not str or len(key) > MAX_STRING:  # the usual key is checked inline
            leaves += _normalise_into(out, ftype, (("key", key),))
    if leaves > MAX_FACT_PROPERTIES:
        raise FactError(f"fact {ftype}: {leaves} properties with id and sid, at most {MAX_FACT_PROPERTIES}")
    return out


def fact_label(f: Mapping[str, Any]) -> str:
    """The trace label of a fact: 'type' or 'type:key'."""
    key = f.get("key")
    return f"{f['type']}:{key}" if key is not None else str(f["type"])


# ---------------------------------------------------------------- compiling


def _constant(value: Any, where: str) -> Any:
    """A rule constant, sent exactly as written or not at all (never silently rounded)."""
    try:
        out = _normalise_scalar(value, where)
    except FactError as exc:
        raise RuleSetError(str(exc)) from None
    if out != value:
        raise RuleSetError(f"{where}: {value!r} cannot be sent to durable-rules exactly (use at most 4 decimals)")
    return out


def _compile_test(name: str, test: Test) -> dict[str, Any]:
    if name.startswith(_MARKER):
        raise RuleSetError(f"a pattern tests {name!r}: field names beginning {_MARKER!r} are reserved")
    v = test.value
    if test.op == "==":
        return {name: _constant(v, name)}
    if test.op == "in":
        return {"$or": [{name: _constant(x, name)} for x in v]}
    if test.op == "between":
        low, high = v
        return {"$and": [{"$gte": {name: _constant(low, name)}}, {"$lte": {name: _constant(high, name)}}]}
    if test.op == "has":
        return {"$iany": {name: {"$i": _constant(v, name)}}}
    op = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}[test.op]
    return {op: {name: _constant(v, name)}}


def type_marker(ftype: str) -> str:
    """The property that tells durable-rules a fact's type: `type:<type>`, 1 (see `_compile_pattern`)."""
    return _MARKER + ftype


def _compile_pattern(p: Pattern) -> dict[str, Any]:
    # The type is tested as a property of its own name, not as the value of "type": durable-rules
    # hashes alpha nodes by property name only, so `type == X` nodes of every fact type share one
    # chain that each fact walks whole (a value comparison per type); `type:X == 1` nodes do not.
    parts = [{type_marker(p.type): 1}] + [_compile_test(n, t) for n, t in p.tests]
    return parts[0] if len(parts) == 1 else {"$and": parts}


def stratify(rules: tuple[Rule, ...]) -> dict[str, int]:
    """Give each rule a stratum: after every producer of what it negates or reads in aggregate,
    and no earlier than the producers of what it matches positively.

    Raises `RuleSetError` when a rule would have to negate a fact of its own stratum (a cycle
    through negation), which durable-rules cannot evaluate correctly.
    """
    producers: dict[str, list[Rule]] = {}
    for r in rules:
        for t in r.concludes:
            producers.setdefault(t, []).append(r)
    stratum = {r.id: 0 for r in rules}
    for _ in range(len(rules) + 1):
        changed = False
        for r in rules:
            need = 0
            for t in r.reads:
                need = max([need] + [stratum[p.id] for p in producers.get(t, [])])
            for t in set(r.negates) | set(r.reads_all):
                need = max([need] + [stratum[p.id] + 1 for p in producers.get(t, [])])
            if need > stratum[r.id]:
                stratum[r.id] = need
                changed = True
        if not changed:
            return stratum
    cyclic = sorted(r.id for r in rules if stratum[r.id] >= len(rules))
    raise RuleSetError("rules negate or aggregate facts they (indirectly) produce: " + ", ".join(cyclic))


@dataclass(frozen=True)
class CompiledRules:
    """The durable-rules definition of a rule set, and the order and strata of its rules."""

    definition: dict[str, Any]
    definition_json: str
    strata: dict[str, int]
    order: tuple[str, ...]
    n_strata: int
    #: fact type -> the fields some pattern tests: all of a fact that durable-rules is sent (the
    #: rules read the whole fact from the wrapper's copy, never from durable's)
    tested: dict[str, tuple[str, ...]] = field(default_factory=dict)


def compile_rules(ruleset: RuleSet) -> CompiledRules:
    """The durable-rules definition of `ruleset`, with its parameter values (a site's, if any).

    Rule ids are unique here: `RuleSet.check()` (run by `Engine` before compiling) says so.
    """
    ids = [r.id for r in ruleset.rules]
    resolved = ruleset.resolved
    for r in ruleset.rules:
        if _GATE_ALIAS in r.when or _GATE_ALIAS in r.unless:
            raise RuleSetError(f"rule {r.id}: alias {_GATE_ALIAS!r} is reserved")
        for p in (*r.when.values(), *r.unless.values()):
            if p.type in (_GATE_TYPE, _OPEN_TYPE):
                raise RuleSetError(f"rule {r.id}: fact type {p.type!r} is reserved")
    strata = stratify(ruleset.rules)
    # Definition order never matters: rules are ordered by (stratum, id).
    order = tuple(sorted(ids, key=lambda i: (strata[i], i)))
    if len(order) > 60000:
        raise RuleSetError("too many rules for durable-rules' 16-bit priority")
    by_id = {r.id: r for r in ruleset.rules}
    definition: dict[str, Any] = {_OPEN_RULE: {"all": [{_OPEN_ALIAS: {type_marker(_OPEN_TYPE): 1}}], "pri": 0}}
    for pri, rid in enumerate(order, start=1):
        r = by_id[rid]
        when, unless = resolved[rid]
        patterns = [{alias: _compile_pattern(p)} for alias, p in sorted(when.items())]
        # The gate after the rule's own patterns: a gate then joins only the rules some fact has
        # reached (first, it opened a frame for every rule of its stratum). Nothing fires before it.
        patterns += [{_GATE_ALIAS: {"$and": [{type_marker(_GATE_TYPE): 1}, {"stratum": strata[rid]}]}}]
        # Negations last: durable-rules never evaluates a $not before the positive patterns.
        patterns += [{f"{alias}$not": _compile_pattern(p)} for alias, p in sorted(unless.items())]
        definition[rid] = {"all": patterns, "pri": pri}
    text = json.dumps(definition, ensure_ascii=False, allow_nan=False)  # fails here, not in the C core
    tested: dict[str, set[str]] = {}
    for when, unless in resolved.values():
        for p in (*when.values(), *unless.values()):
            tested.setdefault(p.type, set()).update(name for name, _ in p.tests)
    return CompiledRules(
        definition,
        text,
        strata,
        order,
        max(strata.values(), default=0) + 1,
        {t: tuple(sorted(names)) for t, names in tested.items()},
    )


# ---------------------------------------------------------------- one session


class Collected:
    """What one inference run concluded, as plain data in firing order (the result models are
    built once, from this, by `engine.kernel.triage.build_result`).

    A plain class, not a dataclass: one is made per triage, and a dataclass costs a millisecond
    to define at every start of the CLI.
    """

    __slots__ = ("facts", "fired", "notices", "recommendations", "trace", "unknowns", "withheld")

    def __init__(self) -> None:
        self.facts: list[dict[str, Any]] = []
        self.recommendations: dict[str, dict[str, Any]] = {}
        self.withheld: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.unknowns: dict[str, dict[str, Any]] = {}
        self.notices: dict[str, dict[str, Any]] = {}
        self.trace: list[dict[str, Any]] = []
        self.fired: list[str] = []

    def __repr__(self) -> str:
        return f"Collected(fired={self.fired!r})"


def _described_tests(p: Pattern) -> tuple[tuple[str, str], ...]:
    """The tests of `p` worth a `because` line: comparisons, not equalities or the key."""
    return tuple((name, test.text) for name, test in p.tests if name != "key" and test.op != "==")


class _Plan:
    """What a firing of one rule needs, worked out once per engine instead of once per firing:
    its positive aliases in trace order with the comparisons to explain, its absence labels, and
    what it declares (as sets, for the checks every `conclude`, `param` and `recommend` makes)."""

    __slots__ = (
        "absent",
        "action",
        "concludes",
        "emits",
        "id",
        "parameters",
        "reads_all",
        "rule",
        "safe_firings",
        "values",
        "when",
    )

    def __init__(
        self,
        rule: Rule,
        when: tuple[tuple[str, tuple[tuple[str, str], ...]], ...],
        absent: tuple[str, ...],
        values: Mapping[str, Any],
    ):
        self.rule = rule
        self.id = rule.id
        self.action = rule.action
        self.when = when
        self.absent = absent
        self.concludes = frozenset(rule.concludes)
        self.reads_all = frozenset(rule.reads_all)
        self.emits = frozenset(rule.emits)
        self.parameters = frozenset(rule.parameters)
        #: the values of the parameters it uses (a rule set's values are fixed once it is loaded)
        self.values = {name: values[name] for name in rule.parameters if name in values}
        #: firings in one triage after which its facts may not be retracted (see _RETRACT_SAFE_SLOTS)
        self.safe_firings = _RETRACT_SAFE_SLOTS - len(when)


def _plans(ruleset: RuleSet) -> dict[str, _Plan]:
    plans = {}
    for r in ruleset.rules:
        when, unless = ruleset.resolved[r.id]
        plans[r.id] = _Plan(
            rule=r,
            when=tuple((alias, _described_tests(p)) for alias, p in sorted(when.items())),
            absent=tuple("absent:" + p.describe() for _, p in sorted(unless.items())),
            values=ruleset.parameter_values,
        )
    return plans


class _Run(Context):
    """The `Context` rules act through: one per session, pointed at each firing in turn.

    The running-rule context variable (`param()` inside an action) is set to it once per triage,
    not once per firing; between firings only the wrapper's own code runs.
    """

    __slots__ = ("_matched", "_plan", "_s", "because_lines", "concluded", "new_facts", "used", "values")

    def __init__(self, session: _Session):
        self._s = session
        self._plan: _Plan = cast(_Plan, None)  # pointed at each firing's plan before its action runs
        self._matched: dict[str, Mapping[str, Any]] = {}
        self.used: list[str] = []
        self.concluded: list[str] = []
        self.because_lines: list[str] = []
        self.new_facts: list[tuple[dict[str, Any], str]] = []
        self.values: Mapping[str, Any] = {}  # the running plan's parameter values, set per firing

    def fact(self, alias: str) -> Mapping[str, Any]:
        try:
            return self._matched[alias]
        except KeyError:
            raise KeyError(f"rule {self._plan.id} has no positive pattern {alias!r}") from None

    def all(self, type_: str) -> list[Mapping[str, Any]]:
        if type_ not in self._plan.reads_all:
            raise RuleSetError(f"rule {self._plan.id} reads all {type_!r} facts without declaring it in reads_all")
        known = self._s.by_type.get(type_, ())
        used = self.used
        for _, label in known:
            if label not in used:
                used.append(label)
        return [proxy for proxy, _ in known]

    def param(self, name: str) -> Any:
        try:
            return self._plan.values[name]
        except KeyError:
            pass
        if name not in self._plan.parameters:
            raise RuleSetError(
                f"rule {self._plan.id} uses parameter {name!r}, which the rule set did not find in "
                'its code: write param("name") with the name as a literal'
            )
        return self._s.values[name]

    def conclude(self, type_: str, key: str | None = None, **fields: Any) -> None:
        if type_ not in self._plan.concludes:
            raise RuleSetError(f"rule {self._plan.id} concludes {type_!r} without declaring it")
        if "type" in fields or "key" in fields:  # odd, but written as the dict it would make
            raw = {"type": type_, **fields}
            if key is not None:
                raw["key"] = key
            f = normalise_fact(raw)
            label = fact_label(f)
        else:
            f = _normalise_fields(type_, fields, key)
            # fact_label(f), without the call: the type and a key of text are sent as they are
            label = type_ if key is None else f"{type_}:{key}" if type(key) is str else fact_label(f)
        labels = self._s.labels
        if label in labels:
            return  # already known: conclusions are idempotent
        labels.add(label)
        self.concluded.append(label)
        self.new_facts.append((f, label))

    def _check_emit(self, intervention: str) -> None:
        if intervention not in self._plan.emits:
            raise RuleSetError(f"rule {self._plan.id} emits {intervention!r} without declaring it")

    def recommend(
        self,
        intervention: str,
        rationale: list[str],
        details: Mapping[str, Any] | None = None,
        evidence: str | None = None,
        review: tuple[float, str] | None = None,
        citations: list[str] | None = None,
    ) -> None:
        if intervention not in self._plan.emits:
            self._check_emit(intervention)  # raises
        spec = self._s.ruleset.interventions[intervention]
        ev = spec.evidence if evidence is None else spec.evidence_variants[evidence]
        if citations:
            library = self._s.ruleset.citations
            missing = [c for c in citations if c not in library]
            if missing or ev is None:
                raise RuleSetError(
                    f"rule {self._plan.id} cites {missing or citations} for {intervention}, which "
                    "is not in the citation library (or the intervention has no grade)"
                )
            ev = ev.model_copy(update={"citations": [*ev.citations, *(c for c in citations if c not in ev.citations)]})
        col = self._s.out
        rule_id = self._plan.id
        prior = col.recommendations.get(intervention)
        if prior is not None:
            if prior["rule"] != rule_id:
                raise RuleSetError(
                    f"rules {prior['rule']} and {rule_id} both recommend {intervention}; one rule must own it"
                )
            prior["rationale"].extend(x for x in rationale if x not in prior["rationale"])
        else:
            entry = {
                "intervention": intervention,
                "category": spec.category,
                "strength": spec.strength,
                "evidence": ev,
                "details": {**spec.details, **(details or {})},
                "rationale": list(rationale),
                "rule": rule_id,
            }
            if review is not None:
                weeks, text = review
                entry["review"] = {"weeks": weeks, "text": text}
            col.recommendations[intervention] = entry
        self.concluded.append(f"recommend:{intervention}")

    def withhold(self, intervention: str, kind: str, reason: str) -> None:
        if intervention not in self._plan.emits:
            self._check_emit(intervention)  # raises
        rule_id = self._plan.id
        key = (intervention, kind, rule_id)
        withheld = self._s.out.withheld
        prior = withheld.get(key)
        if prior is None:
            withheld[key] = {"intervention": intervention, "kind": kind, "reason": reason, "rule": rule_id}
        elif reason not in prior["reason"].split("; "):
            prior["reason"] += "; " + reason
        self.concluded.append(f"not_recommended:{intervention}:{kind}")

    def unknown(self, fact_name: str, reason: str, blocks: list[str]) -> None:
        """An unknown the pathway needs; named again by another rule, its blocks and reasons merge."""
        prior = self._s.out.unknowns.get(fact_name)
        if prior is None:
            self._s.out.unknowns[fact_name] = {
                "fact": fact_name,
                "reason": reason,
                "blocks": sorted(set(blocks)),
                "rule": self._plan.id,
            }
        else:
            prior["blocks"] = sorted(set(prior["blocks"]) | set(blocks))
            if reason not in prior["reason"].split("; "):
                prior["reason"] += "; " + reason
        self.concluded.append(f"unknown:{fact_name}")

    def notice(self, code: str, text: str, affects: list[str]) -> None:
        self._s.out.notices[code] = {"code": code, "text": text, "affects": sorted(affects), "rule": self._plan.id}
        self.concluded.append(f"notice:{code}")

    def because(self, text: str) -> None:
        self.because_lines.append(text)


#: KNOWN HAZARD (found with valgrind on this lifecycle; not closed). Retracting a fact walks every
#: frame it took part in. A completed activation's frame stays marked "dispatching" after it is
#: freed, and for such a frame durable-rules' deleteMessageFromFrame clears the retracted message's
#: slot without lowering the frame's count: from the second message of the frame on, it scans past
#: the frame's 16 slots for one more, two more, ... non-empty slots, reading whatever follows (and
#: writing two zero words wherever a word there equals the message's offset). Every activation has
#: the gate and at least one fact, so every triage takes this path. valgrind shows reads of
#: uninitialised memory in the rule's action-frame pool, and at the bound below (a rule with three
#: positive patterns firing four times) a read just past the end of the pool. The scan mostly ends
#: in the node after the frame (a never-used node starts with a non-empty word), but this cannot be
#: proved for frames of more than two facts. The bound below keeps every rule's frames in the first
#: nodes of its 8-node pool: a triage in which a rule fired more than 7 - (its positive patterns)
#: times is not retracted; its state is deleted after the agenda has drained, and the next triage
#: starts on a fresh state node. `Engine(..., reuse_states=False)` avoids retraction altogether.
#: The vendored build (third_party/durable_rules-forefoot.patch) stops the scan at the frame's 16th
#: slot: under valgrind, 2,000 patients on the kept lifecycle show no error in durable-rules' code
#: with it, against invalid reads in deleteMessageFromFrame within 150 with upstream 2.0.28. The
#: bound below stays all the same (defence in depth; on upstream the state is never kept).
_RETRACT_SAFE_SLOTS = 8 - 1  # = F + k - 1 <= 7 with k = 1 + positive patterns: firings <= 7 - positive patterns

_instance_counter = iter(range(1, 1 << 62))
_counter_lock = threading.Lock()

#: JSON tails that give a fact its id and the session id (`{...}` + tail), and the retraction of
#: each id: worked out once for the whole id range f1..f{MAX_FACTS}.
_FIDS = tuple(f"f{i}" for i in range(MAX_FACTS + 1))
_ID_TAILS = tuple(f',"id":"f{i}","sid":"{_SID}"}}' for i in range(MAX_FACTS + 1))
_RETRACTS = tuple(f'{{"id":"f{i}","sid":"{_SID}"}}' for i in range(MAX_FACTS + 1))
_OPEN_FACT = json.dumps({"id": "open", "sid": _SID, type_marker(_OPEN_TYPE): 1})
_OPEN_RETRACT = json.dumps({"id": "open", "sid": _SID})
_EMPTY = "[]"

_loads = orjson.loads
_orjson_dumps = orjson.dumps

#: Match texts an engine keeps once read (`Engine.matches`), with what they say: {text: (rule
#: id, its plan, ((alias, fact id, comparisons to explain), ...) in the plan's order)}. On the
#: vendored build a match names each fact by its id only, so its text is a function of the rule
#: and the fact ids (f1, f2, ... in assertion order): a few thousand texts cover a clinic's patients
#: (3,623 over 20,000 synthetic ones), and reading one again is a dict lookup, not a JSON parse.
#: Never changed once stored (the drain only reads them); bounded: texts beyond `_MAX_MATCHES`
#: are parsed every time. Whole-fact matches (upstream) are never stored.
_MAX_MATCHES = 8192


class _Session:
    """One durable-rules ruleset with one session id, used by one thread at a time.

    Its state node is deleted after every triage, or kept with `reuse_states` (see the module
    docstring): `fresh` says the next triage must create it.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self.ruleset = engine.ruleset
        self.values = engine.ruleset.parameter_values
        self._plans = engine.plans
        self._gates = engine.gates
        self._gate_retracts = engine.gate_retracts
        self._sending = engine.sending
        self._matches = engine.matches
        self._fewest_safe_firings = engine.fewest_safe_firings
        self._reuse = engine.reuse_states
        self._recycle_after = engine.recycle_after
        with _counter_lock:
            n = next(_instance_counter)
        self.name = f"{engine.ruleset.name}-{n}"
        self._handle = _dre.create_ruleset(self.name, engine.compiled.definition_json)
        #: whether matches name each fact by its id only (all the wrapper reads of them): their
        #: texts are then few, and kept once read (`Engine.matches`)
        self._id_matches = ID_MATCHES
        if self._id_matches:
            _dre.set_id_matches(self._handle, 1)
        self._ctx = _Run(self)
        self.fresh = True
        self.triages_on_state = 0
        self._reset()

    def _reset(self) -> None:
        self.out = Collected()
        #: fact type -> [(read-only view, label)] in assertion order
        self.by_type: dict[str, list[tuple[Mapping[str, Any], str]]] = {}
        #: our fact id -> (read-only view, label): durable's matches are resolved to the facts we sent
        self._known: dict[str, tuple[Mapping[str, Any], str]] = {}
        self.labels: set[str] = set()
        self._next_id = 0
        self.failure: tuple[str, str] | None = None
        self.interrupt: BaseException | None = None
        self.holds_state = False

    # ------------------------------------------------------------ facts

    def _register(self, f: dict[str, Any], label: str) -> str:
        """Give `f` the next fact id; return the JSON text to send."""
        n = self._next_id + 1
        if n > MAX_FACTS:
            raise FactError(f"more than {MAX_FACTS} facts in one triage")
        self._next_id = n
        entry = (MappingProxyType(f), label)
        self._known[_FIDS[n]] = entry
        self.out.facts.append(f)
        ftype = f["type"]
        of_type = self.by_type.get(ftype)
        if of_type is None:
            self.by_type[ftype] = [entry]
        else:
            of_type.append(entry)
        # durable-rules gets only what its patterns test: the rules read the whole fact from `entry`
        sending = self._sending.get(ftype)
        if sending is None:  # a type no pattern tests: its type alone
            sent = {type_marker(ftype): 1}
        else:
            marker, tested = sending
            sent = {marker: 1}
            for name in tested:
                if name in f:
                    sent[name] = f[name]
        # `{**sent, "id": ..., "sid": ...}` as JSON, without the copy (`sent` always has a member,
        # so its JSON ends in `}` after one)
        try:
            return _orjson_dumps(sent)[:-1].decode() + _ID_TAILS[n]
        except TypeError:  # orjson.JSONEncodeError: e.g. a lone surrogate in a string
            raise FactError(
                "a fact could not be serialised as UTF-8 JSON (a string holds an invalid character)"
            ) from None

    # ------------------------------------------------------------ the agenda

    def _drain(self, state_handle: int) -> None:
        """Run every pending action on this thread until the agenda is empty.

        After a failure the remaining actions are completed without running, so the agenda is
        always empty when this returns (and the state can be deleted safely).
        """
        started = _dre.start_action_for_state(self._handle, state_handle)
        if not started:
            return
        message = started[1]
        handle = self._handle
        plans = self._plans
        known = self._known
        run = self._ctx
        out = self.out
        fired = out.fired
        trace = out.trace
        complete = _dre.complete_and_start_action
        assert_fact = _dre.assert_fact
        register = self._register
        matches = self._matches
        keep = self._id_matches
        new_facts = run.new_facts = []  # what each firing concludes, asserted (and cleared) after it
        ok = self.failure is None and self.interrupt is None
        while message:
            if ok:
                rule_id = "(engine)"
                try:
                    read = matches.get(message)
                    if read is None:
                        ((rule_id, whole),) = _loads(message).items()
                        plan = plans.get(rule_id)
                        if plan is None:
                            if rule_id != _OPEN_RULE:  # the wrapper's own rule does nothing
                                raise KeyError(rule_id)
                            read = (rule_id, None, ())
                        else:
                            # each positive pattern's alias, the id of the fact it matched, and the
                            # comparisons to explain (an alias missing from the match: KeyError)
                            read = (
                                rule_id,
                                plan,
                                tuple((alias, whole[alias]["id"], described) for alias, described in plan.when),
                            )
                        if keep and len(matches) < _MAX_MATCHES:
                            matches[message] = read
                    rule_id, plan, when = read
                    if plan is not None:
                        matched: dict[str, Mapping[str, Any]] = {}
                        used: list[str] = []
                        because: list[str] = []
                        for alias, fid, described in when:
                            # The fact durable matched, as we sent it (an id we never handed out is a
                            # KeyError: fail closed).
                            proxy, label = known[fid]
                            matched[alias] = proxy
                            used.append(label)
                            if described:
                                for name, text in described:
                                    because.append(f"{label}.{name} {proxy.get(name)} {text}")
                        used += plan.absent
                        concluded: list[str] = []
                        run._plan = plan
                        run.values = plan.values
                        run._matched = matched
                        run.used = used
                        run.concluded = concluded
                        run.because_lines = because
                        plan.action(run)
                        fired.append(rule_id)
                        trace.append({"rule": rule_id, "used": used, "concluded": concluded, "because": because})
                        if new_facts:  # asserted one at a time, in the order concluded
                            for f, label in new_facts:
                                code, _ = assert_fact(handle, register(f, label))
                                if code == 2:
                                    raise FactError(
                                        f"durable-rules took fact {_FIDS[self._next_id]} for one it had already seen"
                                    )
                            new_facts.clear()
                except (KeyboardInterrupt, SystemExit) as exc:
                    self.interrupt = exc
                    ok = False
                except BaseException as exc:  # noqa: BLE001 - fail the triage closed, below
                    # Our own errors name rules and fact types; any other exception's text may carry a
                    # patient's value (KeyError('Jane')), so only its type is kept.
                    own = isinstance(exc, (RuleSetError, FactError))
                    self.failure = (rule_id, f"{type(exc).__name__}: {exc}" if own else type(exc).__name__)
                    ok = False
            message = complete(handle, state_handle)

    # ------------------------------------------------------------ the state node's lifecycle

    def _open(self) -> None:
        """Create the state node and initialise its action context (`_session_open` fires once)."""
        _code, state = _dre.assert_fact(self._handle, _OPEN_FACT)
        self._drain(state)
        _dre.retract_fact(self._handle, _OPEN_RETRACT)
        self.fresh = False
        self.triages_on_state = 0
        self.engine.states_created += 1

    def _delete(self) -> None:
        """Delete the state node (only ever after its agenda has drained)."""
        _dre.delete_state(self._handle, _SID)
        self.fresh = True

    def _clear(self, state_handle: int) -> None:
        """Retract every fact this triage asserted and prove that nothing is left to fire;
        otherwise complete whatever is left without running it and delete the state."""
        handle = self._handle
        ids = self._gate_retracts + _RETRACTS[1 : self._next_id + 1]
        code, _ = _dre.retract_facts(handle, "[" + ",".join(ids) + "]")
        started = _dre.start_action_for_state(handle, state_handle)
        if code == 0 and not started and _dre.get_facts(handle, _SID) == _EMPTY:
            return
        if started:
            message = started[1]
            while message:  # completed, never run
                message = _dre.complete_and_start_action(handle, state_handle)
        self.engine.fallbacks += 1
        self._delete()

    def _retraction_unsafe(self) -> bool:
        """Whether some rule fired too often for its facts to be retracted (see _RETRACT_SAFE_SLOTS)."""
        fired = self.out.fired
        # A rule fired n times accounts for n - 1 repeats; it is unsafe only when n - 1 reaches its
        # safe_firings, so fewer repeats than the smallest bound of any rule is safe (the common case).
        if len(fired) - len(set(fired)) < self._fewest_safe_firings:
            return False
        plans = self._plans
        return any(n > plans[rule_id].safe_firings for rule_id, n in Counter(fired).items() if n > 1)

    def run(self, facts: list[dict[str, Any]]) -> Collected:
        self._reset()
        normal = [normalise_fact(f) for f in facts]
        # fact_label(f) for each, without the calls (normalise_fact made every type a str)
        named = [f["type"] if (key := f.get("key")) is None else f"{f['type']}:{key}" for f in normal]
        labels = self.labels
        labels.update(named)
        if len(labels) != len(named):
            seen: set[str] = set()
            for label in named:
                if label in seen:
                    raise FactError(f"two input facts share the label {label!r}; give them distinct keys")
                seen.add(label)
        # a fact that cannot be sent fails here, before any state exists
        register = self._register
        texts = [register(f, label) for f, label in zip(normal, named, strict=True)]
        self.holds_state = True
        if self.fresh:
            self._open()
        token = _RUNNING.set(self._ctx)
        try:
            state = None
            if texts:
                # Nothing can fire yet (every rule waits for its stratum's gate): no drain until the first gate.
                code, state = _dre.assert_facts(self._handle, "[" + ",".join(texts) + "]")
                if code == 2:
                    raise FactError("durable-rules took an input fact for one it had already seen")
            for gate in self._gates:
                code, state = _dre.assert_fact(self._handle, gate)
                self._drain(state)
        finally:
            _RUNNING.reset(token)
        # Every agenda has drained (_drain returns only then): retracting or deleting is safe now.
        self.triages_on_state += 1
        if (
            self.failure is not None
            or self.interrupt is not None
            or not self._reuse
            or self.triages_on_state >= self._recycle_after
            or state is None
        ):
            self._delete()
        elif self._retraction_unsafe():
            self.engine.unsafe_to_retract += 1
            self._delete()
        else:
            self._clear(state)
        self.holds_state = False
        if self.interrupt is not None:
            raise self.interrupt
        if self.failure is not None:
            raise InferenceError(*self.failure)
        return self.out


# ---------------------------------------------------------------- the engine


_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child starts with fresh locks and empty session pools.

    Only the forking thread survives a fork: a lock another thread held at that moment would
    stay locked forever in the child, and a session it had borrowed would never come back.
    Sessions are created afresh in the child, on first use.
    """
    global _counter_lock
    _counter_lock = threading.Lock()
    for eng in list(_ENGINES):
        eng._idle = []
        eng._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)

#: Whether the installed durable-rules stops deleteMessageFromFrame's scan at a frame's last slot
#: (the vendored build says so; upstream 2.0.28 does not): the default lifecycle keeps state
#: nodes only then (`Engine(reuse_states=None)`).
BOUNDED_RETRACTION: bool = bool(getattr(_dre, "forefoot_bounded_retraction", 0))

#: Whether the installed durable-rules can hand out matches that name each fact by its id only
#: (`set_id_matches`, the vendored build; upstream 2.0.28 writes every matched fact out whole, and
#: the wrapper reads the same `{"alias": {"id": ...}}` from either).
ID_MATCHES: bool = hasattr(_dre, "set_id_matches")

#: Triages on one state node before it is deleted and created afresh (a bound on anything the C
#: core might keep per state; creating one costs about one triage).
RECYCLE_AFTER = 1000


class Engine:
    """A compiled rule set and a pool of durable-rules sessions, safe to share between threads.

    Each call to `run` borrows a session for its whole run, so one session id never serves two
    patients at once and no ruleset ever holds more than one state node.

    `reuse_states=True` keeps each session's state node and retracts the facts after a triage;
    `False` deletes it after every triage (pinned result for result against each other on 20,005
    patients). The default, None, keeps it only on a durable-rules build whose retraction is
    bounded (`BOUNDED_RETRACTION`, the vendored build): upstream's retraction path has a
    memory-safety hazard that valgrind exposed (see `_RETRACT_SAFE_SLOTS`).
    `recycle_after` bounds the triages one kept state node serves.
    """

    def __init__(self, ruleset: RuleSet, reuse_states: bool | None = None, recycle_after: int = RECYCLE_AFTER):
        errors = ruleset.errors()
        if errors:
            raise RuleSetError("rule set is inconsistent:\n  " + "\n  ".join(f.message for f in errors))
        if recycle_after < 1:
            raise ValueError("recycle_after must be at least 1")
        self.ruleset = ruleset
        self.reuse_states = BOUNDED_RETRACTION if reuse_states is None else reuse_states
        self.recycle_after = recycle_after
        self.compiled = compile_rules(ruleset)
        self.plans = _plans(ruleset)
        #: the stratum gate facts, serialised once, and their retractions
        self.gates = tuple(
            json.dumps({"id": f"g{s}", "sid": _SID, type_marker(_GATE_TYPE): 1, "stratum": s}, separators=(",", ":"))
            for s in range(self.compiled.n_strata)
        )
        self.gate_retracts = tuple(json.dumps({"id": f"g{s}", "sid": _SID}) for s in range(self.compiled.n_strata))
        #: fact type -> (its type marker, the fields its patterns test): what a session sends of a fact
        self.sending = {t: (type_marker(t), names) for t, names in self.compiled.tested.items()}
        #: the smallest `safe_firings` of any rule (see `_Session._retraction_unsafe`)
        self.fewest_safe_firings = min((p.safe_firings for p in self.plans.values()), default=1)
        #: match texts already read (see `_MAX_MATCHES`), shared by the engine's sessions
        self.matches: dict[str, tuple[str, _Plan | None, tuple[tuple[str, str, Any], ...]]] = {}
        self._idle: list[_Session] = []
        self._lock = threading.Lock()
        self.sessions_created = 0
        #: state nodes created (a kept state node serves many triages) and states deleted because
        #: the proof that a cleared state was empty failed (expected: never)
        self.states_created = 0
        self.fallbacks = 0
        #: triages whose state was deleted rather than cleared because a rule fired too often
        #: for retraction to stay inside durable-rules' own memory (see _RETRACT_SAFE_SLOTS)
        self.unsafe_to_retract = 0
        _ENGINES.add(self)
        self._release(self._new_session())  # fail at load time, not on the first patient

    def _new_session(self) -> _Session:
        s = _Session(self)
        self.sessions_created += 1
        return s

    def _acquire(self) -> _Session:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_session()

    def _release(self, s: _Session) -> None:
        with self._lock:
            self._idle.append(s)

    def _idle_sessions(self) -> list[_Session]:
        with self._lock:
            return list(self._idle)

    def live_sessions(self) -> int:
        """Idle sessions whose durable-rules state holds a fact right now (0 between triages:
        every fact a triage asserted has been retracted, or its state deleted)."""
        n = 0
        for s in self._idle_sessions():
            try:
                facts = _dre.get_facts(s._handle, _SID)
            except Exception:  # noqa: BLE001 - 'no such session' is the expected answer for a deleted state
                continue
            n += facts != _EMPTY
        return n

    def kept_states(self) -> int:
        """Idle sessions that keep an (empty) state node for their next triage."""
        n = 0
        for s in self._idle_sessions():
            try:
                _dre.get_state(s._handle, _SID)
                n += 1
            except Exception:  # noqa: BLE001 - 'no such session'
                pass
        return n

    def run(self, facts: list[dict[str, Any]]) -> Collected:
        session = self._acquire()
        try:
            return session.run(facts)
        finally:
            # A session whose run stopped part-way may still hold facts or pending actions:
            # never reuse or delete it (delete_state with pending actions segfaults); drop it.
            if not session.holds_state:
                self._release(session)
