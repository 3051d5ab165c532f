"""The pure function at the heart of the engine: patient in, result out."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from .errors import InferenceError, InputError
from .inference import Collected, Engine
from .inputs import parse_json, validate
from .loader import load_ruleset
from .models import (
    CATEGORY_ORDER,
    KIND_ORDER,
    NotRecommended,
    Recommendation,
    Result,
    RulesetInfo,
    TraceEntry,
    Unknown,
)
from .rulebase import RuleSet


def build_result(ruleset: RuleSet, patient: BaseModel, out: Collected) -> Result:
    """Order and check what inference concluded, and attach the citations it rests on."""
    rank = {code: i for i, code in enumerate(ruleset.interventions)}
    recs = sorted((Recommendation(**r) for r in out.recommendations.values()),
                  key=lambda r: (CATEGORY_ORDER.index(r.category), rank[r.intervention]))
    withheld = sorted((NotRecommended(**n) for n in out.withheld.values()),
                      key=lambda n: (rank[n.intervention], KIND_ORDER.index(n.kind), n.rule))
    both = {r.intervention for r in recs} & {n.intervention for n in withheld}
    if both:
        raise InferenceError("(invariant)", "recommended and not recommended at once: " + ", ".join(sorted(both)))
    cited: set[str] = set()
    for r in recs:
        if r.evidence is not None:
            cited.update(r.evidence.citations)
    fired = set(out.fired)
    for rule in ruleset.rules:
        if rule.id in fired:
            cited.update(rule.citations)
    return Result(
        patient_id=ruleset.patient_id(patient),
        ruleset=RulesetInfo(name=ruleset.name, version=ruleset.version, digest=ruleset.digest),
        red_flags=sorted(ruleset.red_flags(patient)),
        recommendations=recs,
        not_recommended=withheld,
        unknowns=[Unknown(**u) for _, u in sorted(out.unknowns.items())],
        trace=[TraceEntry(**t) for t in out.trace],
        citations={cid: dict(ruleset.citations[cid]) for cid in sorted(cited)},
    )


class Triager:
    """A loaded rule set, ready to triage many patients; safe to share between threads.

    Load it once in a long-running script: `t = Triager(); t.triage(patient_dict)`.
    """

    def __init__(self, ruleset: RuleSet | None = None):
        self.ruleset = ruleset if ruleset is not None else load_ruleset()
        self.engine = Engine(self.ruleset)

    @property
    def patient_model(self) -> type[BaseModel]:
        return self.ruleset.patient_model

    def validate(self, patient: Any) -> BaseModel:
        """A validated patient, or `InputError` naming each bad field."""
        return validate(self.ruleset.patient_model, patient)

    def triage(self, patient: Any) -> Result:
        """Triage one patient given as a dict (parsed JSON) or a validated patient model."""
        p = self.validate(patient)
        out = self.engine.run(self.ruleset.to_facts(p))
        return build_result(self.ruleset, p, out)

    def triage_json(self, data: bytes | str) -> Result:
        """Triage one patient given as JSON text or bytes."""
        return self.triage(parse_json(data))

    def triage_many(self, patients: Iterable[Any]) -> Iterator[Result | InputError]:
        """Triage each patient in turn, yielding a result or the `InputError` that rejected it.

        One bad patient never stops the others; results come in input order.
        """
        for p in patients:
            try:
                yield self.triage_json(p) if isinstance(p, (bytes, str)) else self.triage(p)
            except InputError as exc:
                yield exc


_default: Triager | None = None
_default_lock = threading.Lock()


def default_triager() -> Triager:
    """The process-wide triager for the default rule set, created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Triager()
    return _default


def triage(patient: Any) -> Result:
    """Triage one patient (dict or model) with the default rule set. Thread-safe."""
    return default_triager().triage(patient)


def triage_many(patients: Iterable[Any]) -> Iterator[Result | InputError]:
    """Stream results (or input errors) for many patients with the default rule set."""
    return default_triager().triage_many(patients)
