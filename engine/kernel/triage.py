"""The pure function at the heart of the engine: patient in, result out."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from engine.kernel.errors import InferenceError, InputError
from engine.kernel.inference import Collected, Engine
from engine.kernel.inputs import parse_json, validate
from engine.kernel.loader import load_ruleset
from engine.kernel.models import KIND_ORDER, Evidence, Result, RulesetInfo, SiteInfo, SiteValue
from engine.kernel.rulebase import RuleSet, Site
from engine.kernel.site import apply_site


def _json_data(value: Any) -> Any:
    """`value` as pydantic writes it in JSON mode (dates as ISO text, tuples as lists, ...)."""
    return to_jsonable_python(value)


@dataclass(frozen=True)
class _Order:
    """What `build_result` and `build_data` need from a rule set beyond the run itself, worked out once."""

    ruleset: RuleSet
    rank: dict[str, int]
    category_rank: dict[str, int]
    kind_rank: dict[str, int]
    rule_citations: dict[str, tuple[str, ...]]
    #: the same knowledge as JSON data (what `Result.model_dump(mode="json")` holds for it)
    info_data: dict[str, Any]
    citation_data: dict[str, Any]
    #: id() of each grade (Evidence) an intervention may be recommended with -> its JSON data
    evidence_data: dict[int, Any]
    #: the grades themselves, so that their ids stay theirs while this order lives
    grades: tuple[Any, ...]
    #: False when some piece of the rule set's knowledge is not JSON-ready as it stands (then
    #: `build_data` goes through the pydantic model for every patient)
    data_ready: bool

    @cached_property
    def info(self) -> RulesetInfo:
        """The result's stamp of the rule set (built on first use: the data path never needs the model)."""
        ruleset = self.ruleset
        site = None
        if ruleset.site is not None:
            site = SiteInfo(
                name=ruleset.site.name,
                parameters={
                    name: SiteValue(
                        value=p.value, default=p.default, reason=p.override.reason, set_by=p.override.set_by
                    )
                    for name, p in sorted(ruleset.parameters.items())
                    if p.override is not None
                },
            )
        return RulesetInfo(name=ruleset.name, version=ruleset.version, digest=ruleset.digest, site=site)

    @classmethod
    def of(cls, ruleset: RuleSet) -> _Order:
        if ruleset.site is None:  # what RulesetInfo(...).model_dump(mode="json") gives, without the model
            plain = {"name": ruleset.name, "version": ruleset.version, "digest": ruleset.digest}
            info_data: dict[str, Any] | None = plain if all(type(v) is str for v in plain.values()) else None
        else:
            info_data = None
        grades = tuple(
            ev
            for spec in ruleset.interventions.values()
            for ev in (spec.evidence, *spec.evidence_variants.values())
            if ev is not None
        )
        ready = all(
            type(spec.category) is str
            and type(spec.strength) is str
            and type(spec.details) is dict
            and all(type(k) is str for k in spec.details)
            for spec in ruleset.interventions.values()
        )
        ready = ready and all(
            type(cid) is str and all(type(k) is str for k in c) for cid, c in ruleset.citations.items()
        )
        try:
            citation_data = {cid: _json_data(dict(c)) for cid, c in ruleset.citations.items()}
            evidence_data = {id(ev): ev.model_dump(mode="json") for ev in grades}
        except Exception:  # noqa: BLE001 - not JSON-ready: every result goes through the model
            citation_data, evidence_data, ready = {}, {}, False
        order = cls(
            ruleset=ruleset,
            rank={code: i for i, code in enumerate(ruleset.interventions)},
            category_rank={c: i for i, c in enumerate(ruleset.categories)},
            kind_rank={k: i for i, k in enumerate(KIND_ORDER)},
            rule_citations={r.id: tuple(r.citations) for r in ruleset.rules},
            info_data=info_data or {},
            citation_data=citation_data,
            evidence_data=evidence_data,
            grades=grades,
            data_ready=ready,
        )
        if info_data is None:
            object.__setattr__(order, "info_data", order.info.model_dump(mode="json"))
        return order


def _check_kinds_and_categories(out: Collected, o: _Order) -> None:
    for n in out.withheld.values():
        if n["kind"] not in o.kind_rank:
            raise InferenceError(n["rule"], f"not-recommended kind {n['kind']!r} is not one of {', '.join(KIND_ORDER)}")
    for r in out.recommendations.values():
        if r["category"] not in o.category_rank:
            raise InferenceError(r["rule"], f"category {r['category']!r} is not a category of the rule set")


def _ordered(out: Collected, o: _Order) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Recommendations and withheld entries in result order, and the citation ids they rest on,
    after checking the run's invariants."""
    rank, kind_rank, category_rank = o.rank, o.kind_rank, o.category_rank
    try:  # sorting looks every kind and category up: one that is not the rule set's fails there
        recs = sorted(
            out.recommendations.values(), key=lambda r: (category_rank[r["category"]], rank[r["intervention"]])
        )
        withheld = sorted(
            out.withheld.values(), key=lambda n: (rank[n["intervention"]], kind_rank[n["kind"]], n["rule"])
        )
    except KeyError:
        _check_kinds_and_categories(out, o)  # names the entry, as checking first would have
        raise
    if out.withheld and not out.recommendations.keys().isdisjoint(n["intervention"] for n in withheld):
        both = set(out.recommendations) & {n["intervention"] for n in withheld}
        raise InferenceError("(invariant)", "recommended and not recommended at once: " + ", ".join(sorted(both)))
    cited: set[str] = set()
    rule_citations = o.rule_citations
    for rule_id in out.fired:
        cited.update(rule_citations[rule_id])
    for r in recs:
        ev = r["evidence"]
        if ev is not None:
            cited.update(ev.citations)
    return recs, withheld, sorted(cited)


def build_result(ruleset: RuleSet, patient: BaseModel, out: Collected, order: _Order | None = None) -> Result:
    """Order and check what inference concluded, and attach the citations it rests on.

    The result is validated as a whole, in one pass of pydantic-core (every field, nested
    entries included), rather than entry by entry: the same checks, at about 60% of the cost.
    `order` is the rule set's precomputed ordering (a `Triager` passes its own).
    """
    o = order if order is not None else _Order.of(ruleset)
    recs, withheld, cited = _ordered(out, o)
    return Result.model_validate(
        {
            "patient_id": ruleset.patient_id(patient),
            "ruleset": o.info,
            "red_flags": sorted(ruleset.flags(patient)),
            "recommendations": recs,
            "not_recommended": withheld,
            "unknowns": [u for _, u in sorted(out.unknowns.items())],
            "notices": [n for _, n in sorted(out.notices.items())],
            "trace": out.trace,
            "citations": {cid: ruleset.citations[cid] for cid in cited},  # validation copies each
        }
    )


def _strs(values: Any) -> bool:
    return type(values) is list and all(type(v) is str for v in values)


def _data_or_none(ruleset: RuleSet, patient: BaseModel, out: Collected, o: _Order) -> dict[str, Any] | None:
    """The result as JSON data, built directly from the run; None where a value is not exactly
    what the result model holds (a rule handed over something other than text, say): the caller
    then goes through the model, which validates (and coerces or rejects) it as the API does."""
    if not o.data_ready:
        return None
    recs, withheld, cited = _ordered(out, o)
    patient_id = ruleset.patient_id(patient)
    flags = sorted(ruleset.flags(patient))
    if type(patient_id) is not str or not _strs(flags):
        return None
    evidence_data = o.evidence_data
    rec_data = []
    for r in recs:
        ev = r["evidence"]
        details = r["details"]
        if not _strs(r["rationale"]) or type(details) is not dict or not all(type(k) is str for k in details):
            return None
        ev_data = None
        if ev is not None:
            ev_data = evidence_data.get(id(ev))
            if ev_data is None:  # a grade a rule added citations to (`recommend(citations=...)`)
                if type(ev) is not Evidence:
                    return None
                ev_data = ev.model_dump(mode="json")
        entry = {
            "intervention": r["intervention"],
            "category": r["category"],
            "strength": r["strength"],
            "evidence": ev_data,
            "details": _json_data(details),
            "rationale": r["rationale"],
            "rule": r["rule"],
        }
        review = r.get("review")
        if review is not None:
            weeks, text = review["weeks"], review["text"]
            if type(weeks) not in (int, float) or type(text) is not str or not math.isfinite(weeks):
                return None
            entry["review"] = {"weeks": float(weeks), "text": text}
        rec_data.append(entry)
    for n in withheld:
        if type(n["reason"]) is not str:
            return None
    unknowns = [u for _, u in sorted(out.unknowns.items())]
    for u in unknowns:
        if type(u["fact"]) is not str or type(u["reason"]) is not str or not _strs(u["blocks"]):
            return None
    notices = [n for _, n in sorted(out.notices.items())]
    for n in notices:
        if type(n["code"]) is not str or type(n["text"]) is not str or not _strs(n["affects"]):
            return None
    for e in out.trace:
        if not _strs(e["because"]):
            return None
    citation_data = o.citation_data
    return {
        "patient_id": patient_id,
        "ruleset": o.info_data,
        "red_flags": flags,
        "recommendations": rec_data,
        "not_recommended": withheld,
        "unknowns": unknowns,
        "notices": notices,
        "trace": out.trace,
        "citations": {cid: citation_data[cid] for cid in cited},
    }


def build_data(ruleset: RuleSet, patient: BaseModel, out: Collected, order: _Order | None = None) -> dict[str, Any]:
    """The result as JSON data: equal to `build_result(...).model_dump(mode="json")`, without
    building the model (the batch path; `tests/test_speed_result_json.py` holds them equal)."""
    o = order if order is not None else _Order.of(ruleset)
    data = _data_or_none(ruleset, patient, out, o)
    if data is None:
        return build_result(ruleset, patient, out, o).model_dump(mode="json")
    return data


#: orjson writes JSON data exactly as pydantic-core writes the model (compact, UTF-8, the same
#: number forms); anything that is not plain JSON data is refused, never converted its own way.
_DATA_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def data_json(data: dict[str, Any]) -> bytes:
    """Compact JSON of result data from `build_data`: byte for byte what
    `result.__pydantic_serializer__.to_json(result)` writes for the same result."""
    try:
        return orjson.dumps(data, option=_DATA_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: not plain JSON data (a lone surrogate, a huge int, ...)
        result = Result.model_validate(data)
        return result.__pydantic_serializer__.to_json(result)


class Triager:
    """A loaded rule set, ready to triage many patients; safe to share between threads.

    Load it once in a long-running script: `t = Triager(); t.triage(patient_dict)`.
    """

    def __init__(self, ruleset: RuleSet | None = None, site: Site | str | os.PathLike[str] | None = None):
        """`site`: a site configuration (a `Site` or a TOML path); None reads `$CDS_SITE` if it is set."""
        self.ruleset = apply_site(ruleset if ruleset is not None else load_ruleset(), site)
        self.engine = Engine(self.ruleset)
        self._order = _Order.of(self.ruleset)

    @property
    def patient_model(self) -> type[BaseModel]:
        return self.ruleset.patient_model

    def validate(self, patient: Any) -> BaseModel:
        """A validated patient, or `InputError` naming each bad field."""
        return validate(self.ruleset.patient_model, patient)

    def _run(self, patient: Any) -> tuple[BaseModel, Collected]:
        p = self.validate(patient)
        return p, self.engine.run(self.ruleset.to_facts(p))

    def triage(self, patient: Any) -> Result:
        """Triage one patient given as a dict (parsed JSON) or a validated patient model."""
        p, out = self._run(patient)
        return build_result(self.ruleset, p, out, self._order)

    def triage_run(self, patient: Any) -> tuple[Result, Collected]:
        """`triage(patient)`, and the run it was built from: every input and derived fact, for an
        explanation or the pathway picture."""
        p, out = self._run(patient)
        return build_result(self.ruleset, p, out, self._order), out

    def triage_json(self, data: bytes | str) -> Result:
        """Triage one patient given as JSON text or bytes."""
        return self.triage(parse_json(data))

    def triage_data(self, patient: Any) -> dict[str, Any]:
        """Triage one patient (dict, model, or JSON text or bytes) to the result as JSON data:
        `triage(patient).model_dump(mode="json")`, without building the model. `data_json(data)`
        writes it as `triage(patient)` would be written (the batch path)."""
        if isinstance(patient, (bytes, str)):
            patient = parse_json(patient)
        p, out = self._run(patient)
        return build_data(self.ruleset, p, out, self._order)

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


def _after_fork_in_child() -> None:
    # another thread may have been creating the default triager at the moment of the fork
    global _default_lock
    _default_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


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
