"""FHIR R4 Bundle in, the rule set's patient input out: generic machinery driven by a mapping table.

The engine knows no clinical term here either. Which code means what, which patient field it
fills, how conflicting values are settled and what an unmappable value blocks all come from the
rule set's mapping table: by convention `<ruleset package>.fhir.FHIR_MAPPING` (for the default
rule set, rules/fhir_map.toml). This module only knows FHIR: Bundles, resources, codings,
statuses, dates and UCUM quantities.

    mapped = FhirMapper(load_mapping()).map(bundle_dict)     # -> Mapped(patient, unknowns, ...)
    result = triage_bundle(triager, bundle_dict)             # same Triager.triage as JSON input

Bundles are parsed and validated with fhir.resources (its R4B models, which read the R4
resources used here). Ages and durations are computed against a reference date taken from the
Bundle (timestamp, else meta.lastUpdated) or given explicitly, never from the clock: the same
Bundle always gives the same patient. What cannot be mapped is reported as an unknown with what
it blocks, or, when no patient can be built, refused with an `InputError` naming the resource by
its place in the Bundle (never by its id or values).
"""

from __future__ import annotations

import calendar
import importlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.kernel.errors import FieldProblem, InputError, RuleSetError
from engine.kernel.inputs import FHIR_MAX_BYTES, is_fhir  # noqa: F401 - is_fhir re-exported for callers of this module
from engine.kernel.loader import DEFAULT_RULESET_MODULE
from engine.kernel.models import Result, Unknown

#: The resource types this module reads; any other valid resource in a Bundle is ignored.
READ_TYPES = ("Patient", "Condition", "Observation", "MedicationStatement", "MedicationRequest", "Procedure",
              "Medication")
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


class NotApplicable(InputError):
    """The Bundle is a valid patient record, but outside the rule set's scope (e.g. no forefoot pain).

    The CLI refuses it like any input error (exit 2); the CDS Hooks service answers with no cards.
    """


# ------------------------------------------------------------------ the mapping table, validated


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeRow(_Table):
    """One code of a code system, what it maps to, and where the code comes from."""

    system: str = Field(description="alias of a code system in [systems]")
    code: str = Field(min_length=1)
    match: Literal["exact", "prefix"] = Field(default="exact", description="prefix: ICD-10-style hierarchy")
    to: dict[str, Any] = Field(default_factory=dict, description="patient field -> value")
    onset: str | None = Field(default=None, description="patient field that gets the weeks since onset")
    value: Any = Field(default=None, description="the value a medication/procedure/outcome code stands for")
    name: str | None = Field(default=None, description="generic medication name")
    source: str = Field(min_length=1, description="where the code comes from")


class ObservationRow(CodeRow):
    field: str
    kind: Literal["integer", "quantity", "coded", "presence"]
    units: dict[str, float] = Field(default_factory=dict, description="UCUM code -> factor to the field's unit")
    answers: str | None = Field(default=None, description="name of an [answers] table")
    group: str | None = None


class FieldSpec(_Table):
    policy: Literal["list", "same", "latest", "combine", "max"]
    blocks: list[str] = Field(default_factory=list)
    combine: dict[str, Any] = Field(default_factory=dict)
    suspected: Literal["count", "unknown"] = "unknown"
    round: int | None = None


class PatientSpec(_Table):
    id: str
    age: str
    sex: str
    gender: dict[str, str]


class StatusSpec(_Table):
    condition_current: list[str]
    condition_past: list[str]
    condition_ignored: list[str]
    condition_suspected: list[str]
    observation_final: list[str]
    observation_ignored: list[str]


class MedicationSpec(_Table):
    field: str
    statement_current: list[str]
    statement_ignored: list[str]
    request_current: list[str]
    request_ignored: list[str]
    codes: list[CodeRow] = Field(default_factory=list)


class ProcedureSpec(_Table):
    field: str
    code_key: str
    weeks_key: str
    outcome_key: str
    counted: list[str]
    ignored: list[str]
    round: int | None = None
    codes: list[CodeRow] = Field(default_factory=list)
    outcomes: list[CodeRow] = Field(default_factory=list)


class ServiceSpec(_Table):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    title: str
    description: str


class ScopeSpec(_Table):
    field: str
    message: str


class GroupSpec(_Table):
    field: str


class TableInfo(_Table):
    version: str
    rule: str
    note: str = ""


class FhirMapping(_Table):
    """The whole mapping table, checked for shape and internal consistency when loaded."""

    table: TableInfo
    service: ServiceSpec
    systems: dict[str, str]
    patient: PatientSpec
    scope: ScopeSpec
    status: StatusSpec
    fields: dict[str, FieldSpec]
    groups: dict[str, GroupSpec] = Field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    conditions: list[CodeRow] = Field(default_factory=list)
    observations: list[ObservationRow] = Field(default_factory=list)
    medications: MedicationSpec
    procedures: ProcedureSpec

    def problems(self) -> list[str]:
        """Internal inconsistencies of the table (unknown aliases, fields, answer tables)."""
        out: list[str] = []
        rows: list[tuple[str, CodeRow]] = [("conditions", r) for r in self.conditions]
        rows += [("observations", r) for r in self.observations]
        rows += [("medications.codes", r) for r in self.medications.codes]
        rows += [("procedures.codes", r) for r in self.procedures.codes]
        rows += [("procedures.outcomes", r) for r in self.procedures.outcomes]
        for where, r in rows:
            if r.system not in self.systems:
                out.append(f"{where} {r.code}: unknown code system alias {r.system!r}")
            for f in list(r.to) + ([r.onset] if r.onset else []):
                if f not in self.fields:
                    out.append(f"{where} {r.code}: field {f!r} has no [fields] entry")
        for r in self.observations:
            if r.field not in self.fields:
                out.append(f"observations {r.code}: field {r.field!r} has no [fields] entry")
            if r.kind in ("coded", "presence") and r.answers is not None and r.answers not in self.answers:
                out.append(f"observations {r.code}: unknown answers table {r.answers!r}")
            if r.kind == "quantity" and not r.units:
                out.append(f"observations {r.code}: a quantity needs units")
            if r.group is not None and r.group not in self.groups:
                out.append(f"observations {r.code}: unknown group {r.group!r}")
        for name, table in self.answers.items():
            for key in table:
                alias = key.split("|", 1)[0]
                if "|" not in key or alias not in self.systems:
                    out.append(f"answers.{name}: {key!r} is not 'alias|code' with a known alias")
        for name in (self.scope.field, self.medications.field, self.procedures.field,
                     *(g.field for g in self.groups.values())):
            if name not in self.fields:
                out.append(f"{name!r} has no [fields] entry")
        return out


def mapping_from(table: Mapping[str, Any]) -> FhirMapping:
    """A validated mapping from the parsed table; `RuleSetError` when the table is malformed."""
    try:
        mapping = FhirMapping.model_validate(dict(table))
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RuleSetError(f"FHIR mapping table is malformed at {loc}: {first['msg']}") from None
    bad = mapping.problems()
    if bad:
        raise RuleSetError("FHIR mapping table is inconsistent: " + "; ".join(bad))
    return mapping


def load_mapping(module: str | None = None) -> FhirMapping:
    """The mapping table of the rule-set package `module` (default: `$CDS_RULESET` or 'rules')."""
    name = module or os.environ.get("CDS_RULESET") or DEFAULT_RULESET_MODULE
    try:
        mod = importlib.import_module(f"{name}.fhir")
    except ImportError as exc:
        raise RuleSetError(f"rule set {name!r} has no FHIR mapping (module {name}.fhir): {exc}") from exc
    table = getattr(mod, "FHIR_MAPPING", None)
    if not isinstance(table, Mapping):
        raise RuleSetError(f"module {name}.fhir has no FHIR_MAPPING table")
    return mapping_from(table)


# ------------------------------------------------------------------ parsing and validating a Bundle


def _model_class(resource_type: str) -> type | None:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        cls = get_fhir_model_class(resource_type)
    except Exception:  # noqa: BLE001 - an unknown name raises KeyError or ValueError
        return None
    return cls if getattr(cls, "get_resource_type", None) and cls.has_resource_base() else None


def _entry_label(names: list[str] | None, i: int) -> str:
    return names[i] if names is not None and i < len(names) else f"Bundle.entry[{i}]"


def _loc_path(loc: tuple[Any, ...], entries: list[Any], names: list[str] | None) -> str:
    if len(loc) >= 2 and loc[0] == "entry" and isinstance(loc[1], int):
        i = loc[1]
        rest = list(loc[2:])
        rtype = ""
        if rest and rest[0] == "resource":
            rest = rest[1:]
            res = entries[i].get("resource") if i < len(entries) and isinstance(entries[i], dict) else None
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                rtype = f" ({res['resourceType']})"
            head = f"{_entry_label(names, i)}.resource{rtype}"
        else:
            head = _entry_label(names, i)
        return head + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest)
    return "Bundle" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)


def parse_bundle(data: Any, names: list[str] | None = None) -> Any:
    """Validate a parsed JSON document as a FHIR R4 Bundle with fhir.resources.

    Returns the fhir.resources Bundle; raises `InputError` naming each bad element by its place.
    """
    from fhir.resources.R4B.bundle import Bundle

    if not isinstance(data, dict):
        raise InputError([FieldProblem("(document)", "a FHIR input must be a JSON object", "one FHIR R4 Bundle")])
    if data.get("resourceType") != "Bundle":
        raise InputError([FieldProblem("resourceType", "a FHIR input must be a Bundle", "Bundle")])
    entries = data.get("entry", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise InputError([FieldProblem("Bundle.entry", "must be an array", "an array of entries")])
    problems: list[FieldProblem] = []
    for i, entry in enumerate(entries):
        label = _entry_label(names, i)
        if not isinstance(entry, dict):
            problems.append(FieldProblem(label, "must be a JSON object", "a Bundle entry"))
            continue
        res = entry.get("resource")
        if res is None:
            continue
        if not isinstance(res, dict):
            problems.append(FieldProblem(f"{label}.resource", "must be a JSON object", "a FHIR resource"))
            continue
        rtype = res.get("resourceType")
        if not isinstance(rtype, str) or _model_class(rtype) is None:
            problems.append(FieldProblem(f"{label}.resource.resourceType", "not a FHIR R4 resource type",
                                         ", ".join(READ_TYPES) + ", or another FHIR resource"))
    if problems:
        raise InputError(problems)
    try:
        return Bundle.model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_input=False, include_url=False)[:20]:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown element"
            elif err["type"] == "missing":
                msg = "required element is missing"
            out.append(FieldProblem(_loc_path(tuple(err["loc"]), entries, names), msg, "FHIR R4"))
        raise InputError(out) from None
    except Exception as exc:  # noqa: BLE001 - fhir.resources raises other errors on odd shapes
        raise InputError([FieldProblem("Bundle", f"not a valid FHIR R4 Bundle ({type(exc).__name__})",
                                       "FHIR R4")]) from None


# ------------------------------------------------------------------ small FHIR helpers


def _day(value: Any) -> date | None:
    """The calendar day of a FHIR date/dateTime/instant; None for a missing or partial one."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


def _moment(value: Any) -> datetime | None:
    """A comparable instant for a FHIR date/dateTime (a day counts as its UTC midnight)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _codings(concept: Any) -> list[tuple[str, str]]:
    out = []
    for c in (getattr(concept, "coding", None) or []):
        if c.code:
            out.append((c.system or "", str(c.code).strip()))
    return out


def _status_code(concept: Any) -> str | None:
    for c in (getattr(concept, "coding", None) or []):
        if c.code:
            return str(c.code)
    return None


def _norm_prefix(code: str) -> str:
    return code.replace(".", "").replace(" ", "").upper()


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (int, float)):
        return value
    return None


def _weeks(start: date, end: date, digits: int | None) -> float:
    weeks = (end - start).days / 7
    return round(weeks, digits) if digits is not None else weeks


class _CodeIndex:
    """Finds the table rows a CodeableConcept matches (exact codes, or ICD-style prefixes)."""

    def __init__(self, rows: Iterable[CodeRow], systems: Mapping[str, str]):
        self.exact: dict[tuple[str, str], list[CodeRow]] = {}
        self.prefix: dict[str, list[tuple[str, CodeRow]]] = {}
        for r in rows:
            url = systems[r.system]
            if r.match == "prefix":
                self.prefix.setdefault(url, []).append((_norm_prefix(r.code), r))
            else:
                self.exact.setdefault((url, r.code), []).append(r)

    def find(self, concept: Any) -> list[CodeRow]:
        found: list[CodeRow] = []
        for system, code in _codings(concept):
            found.extend(self.exact.get((system, code), []))
            norm = _norm_prefix(code)
            found.extend(r for p, r in self.prefix.get(system, []) if norm.startswith(p))
        unique: list[CodeRow] = []
        for r in found:
            if not any(r is u for u in unique):
                unique.append(r)
        return unique


# ------------------------------------------------------------------ mapping


@dataclass
class _Candidate:
    value: Any
    when: datetime | None
    where: str


@dataclass
class Mapped:
    """A patient built from a Bundle, what could not be mapped, and where each value came from."""

    patient: dict[str, Any]
    unknowns: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)
    reference_date: date | None = None


class _Collector:
    def __init__(self, mapping: FhirMapping):
        self.m = mapping
        self.values: dict[str, list[_Candidate]] = {}
        self.items: dict[str, dict[Any, str]] = {}
        self.objects: dict[str, dict[str, list[tuple[dict[str, Any], str]]]] = {}
        self.answered: dict[str, set[str]] = {}
        self.unknowns: list[dict[str, Any]] = []

    def unknown(self, fld: str, where: str, what: str) -> None:
        spec = self.m.fields.get(fld)
        self.unknowns.append({"fact": f"fhir:{fld}", "reason": f"{where}: {what}",
                              "blocks": list(spec.blocks) if spec else [], "rule": self.m.table.rule})

    def add(self, fld: str, value: Any, where: str, when: datetime | None = None) -> None:
        if self.m.fields[fld].policy == "list":
            self.items.setdefault(fld, {}).setdefault(value, where)
        else:
            self.values.setdefault(fld, []).append(_Candidate(value, when, where))

    def add_object(self, fld: str, key: str, obj: dict[str, Any], where: str) -> None:
        self.objects.setdefault(fld, {}).setdefault(key, []).append((obj, where))


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        doc = doc.setdefault(p, {})
    doc[parts[-1]] = value


def _reference_matches(ref: Any, patient_refs: set[str], patient_id: str) -> bool:
    target = getattr(ref, "reference", None) if ref is not None else None
    if not target:
        return True  # an identifier- or display-only reference: nothing to contradict
    target = str(target)
    if target in patient_refs:
        return True
    return target.endswith(f"/Patient/{patient_id}") or target.split("/_history/")[0] in patient_refs


class FhirMapper:
    """Maps one FHIR R4 Bundle to the rule set's patient input, as its mapping table says."""

    def __init__(self, mapping: FhirMapping):
        self.mapping = mapping
        s = mapping.systems
        self._conditions = _CodeIndex(mapping.conditions, s)
        self._observations = _CodeIndex(mapping.observations, s)
        self._medications = _CodeIndex(mapping.medications.codes, s)
        self._procedures = _CodeIndex(mapping.procedures.codes, s)
        self._outcomes = _CodeIndex(mapping.procedures.outcomes, s)
        self._answers = {name: {(s[k.split("|", 1)[0]], k.split("|", 1)[1]): v for k, v in table.items()}
                         for name, table in mapping.answers.items()}
        self._group_size = {g: sum(1 for r in mapping.observations if r.group == g) for g in mapping.groups}

    # -------------------------------------------------------------- entry point

    def map(self, data: Any, as_of: date | None = None, names: list[str] | None = None) -> Mapped:
        """The patient input of a Bundle (parsed JSON), or `InputError`/`NotApplicable`."""
        bundle = parse_bundle(data, names)
        entries = [(i, e.resource, e.fullUrl) for i, e in enumerate(bundle.entry or []) if e.resource is not None]
        ref_day = as_of or _day(bundle.timestamp) or _day(bundle.meta.lastUpdated if bundle.meta else None)
        if ref_day is None:
            raise InputError([FieldProblem("Bundle.timestamp", "no reference date for ages and durations",
                                           "Bundle.timestamp or Bundle.meta.lastUpdated, or an explicit as-of date")])
        label = {i: f"{_entry_label(names, i)}.resource ({r.get_resource_type()})" for i, r, _ in entries}
        m = self.mapping
        patient: dict[str, Any] = {}
        provenance: dict[str, str] = {}

        pats = [(i, r, url) for i, r, url in entries if r.get_resource_type() == "Patient"]
        if len(pats) != 1:
            raise InputError([FieldProblem("Bundle.entry", f"holds {len(pats)} Patient resources", "exactly one Patient")])
        pi, pres, purl = pats[0]
        self._patient(pres, label[pi], ref_day, patient, provenance)
        pid = str(pres.id)
        prefs = {f"Patient/{pid}"} | ({str(purl)} if purl else set())

        medications: dict[str, Any] = {}
        for i, r, url in entries:
            if r.get_resource_type() == "Medication":
                if r.id:
                    medications[f"Medication/{r.id}"] = r
                if url:
                    medications[str(url)] = r
        col = _Collector(m)
        for i, r, _ in entries:
            rtype = r.get_resource_type()
            if rtype not in ("Condition", "Observation", "MedicationStatement", "MedicationRequest", "Procedure"):
                continue
            subject = getattr(r, "subject", None)
            if not _reference_matches(subject, prefs, pid):
                raise InputError([FieldProblem(f"{label[i]}.subject", "refers to another patient than the Bundle's Patient",
                                               "one patient per Bundle")])
            if rtype == "Condition":
                self._condition(r, label[i], ref_day, col)
            elif rtype == "Observation":
                self._observation(r, label[i], col)
            elif rtype == "Procedure":
                self._procedure(r, label[i], ref_day, col)
            else:
                self._medication(r, rtype, label[i], medications, col)

        self._settle(col, patient, provenance)
        if _get_path(patient, m.scope.field) is None:
            raise NotApplicable([FieldProblem(m.scope.field, m.scope.message,
                                              "a Bundle for a patient in scope of this rule set")])
        unknowns = sorted(col.unknowns, key=lambda u: (u["fact"], u["reason"]))
        return Mapped(patient=patient, unknowns=unknowns, provenance=provenance, reference_date=ref_day)

    # -------------------------------------------------------------- Patient

    def _patient(self, res: Any, where: str, ref_day: date, patient: dict[str, Any], prov: dict[str, str]) -> None:
        spec = self.mapping.patient
        if not res.id:
            raise InputError([FieldProblem(f"{where}.id", "the Patient has no id", "a Patient.id")])
        _set_path(patient, spec.id, str(res.id))
        prov[spec.id] = f"{where}.id"
        born = res.birthDate
        if born is None:
            raise InputError([FieldProblem(f"{where}.birthDate", "the Patient has no birthDate, so no age",
                                           "a birthDate (YYYY-MM-DD)")])
        if isinstance(born, date):
            earliest = latest = born
        else:
            parts = [int(p) for p in str(born).split("-")]
            if len(parts) == 1:
                earliest, latest = date(parts[0], 1, 1), date(parts[0], 12, 31)
            else:
                last = calendar.monthrange(parts[0], parts[1])[1]
                earliest, latest = date(parts[0], parts[1], 1), date(parts[0], parts[1], last)
        if latest > ref_day and earliest > ref_day:
            raise InputError([FieldProblem(f"{where}.birthDate", "is after the reference date", "a past date")])
        ages = {_age(earliest, ref_day), _age(min(latest, ref_day), ref_day)}
        if len(ages) != 1:
            raise InputError([FieldProblem(f"{where}.birthDate", "is partial and leaves the age uncertain at the reference date",
                                           "a full birthDate (YYYY-MM-DD)")])
        _set_path(patient, spec.age, ages.pop())
        prov[spec.age] = f"{where}.birthDate"
        if res.gender is not None:
            sex = spec.gender.get(str(res.gender))
            if sex is None:
                raise InputError([FieldProblem(f"{where}.gender", "is not an administrative gender of FHIR R4",
                                               ", ".join(spec.gender))])
            _set_path(patient, spec.sex, sex)
            prov[spec.sex] = f"{where}.gender"

    # -------------------------------------------------------------- Condition

    def _condition(self, res: Any, where: str, ref_day: date, col: _Collector) -> None:
        rows = self._conditions.find(res.code)
        if not rows:
            return
        st = self.mapping.status
        verification = _status_code(res.verificationStatus)
        if verification in st.condition_ignored:
            return
        clinical = _status_code(res.clinicalStatus)
        if clinical is not None and clinical in st.condition_past:
            return
        suspected = verification in st.condition_suspected
        unclear = clinical is not None and clinical not in st.condition_current
        when = _moment(res.recordedDate) or _moment(res.onsetDateTime)
        for row in rows:
            for fld, value in row.to.items():
                spec = self.mapping.fields[fld]
                if unclear:
                    col.unknown(fld, f"{where}.clinicalStatus", "not a known clinical status; the condition was not counted")
                elif suspected and spec.suspected == "unknown":
                    col.unknown(fld, f"{where}.verificationStatus",
                                f"recorded as {verification}, not confirmed; it was not counted as {value}")
                else:
                    col.add(fld, value, f"{where}.code", when)
            if row.onset and not unclear:
                onset = res.onsetDateTime if res.onsetDateTime is not None else (
                    res.onsetPeriod.start if res.onsetPeriod is not None else None)
                day = _day(onset)
                if day is not None and day <= ref_day:
                    col.add(row.onset, _weeks(day, ref_day, self.mapping.fields[row.onset].round), f"{where}.onset[x]")

    # -------------------------------------------------------------- Observation

    def _observation(self, res: Any, where: str, col: _Collector) -> None:
        rows = self._observations.find(res.code)
        if not rows:
            return
        st = self.mapping.status
        status = str(res.status) if res.status else None
        when = (_moment(res.effectiveDateTime) or _moment(res.effectiveInstant)
                or (_moment(res.effectivePeriod.end) or _moment(res.effectivePeriod.start) if res.effectivePeriod else None))
        for row in rows:
            if status in st.observation_ignored:
                continue
            if status not in st.observation_final:
                col.unknown(row.field, f"{where}.status", "the observation is not final; it was not used")
                continue
            self._observation_value(res, row, where, when, col)

    def _observation_value(self, res: Any, row: ObservationRow, where: str, when: datetime | None,
                           col: _Collector) -> None:
        spec = self.mapping.fields[row.field]
        if row.kind == "integer":
            v = res.valueInteger if res.valueInteger is not None else (
                _number(res.valueQuantity.value) if res.valueQuantity is not None else None)
            if isinstance(v, int) and not isinstance(v, bool):
                col.add(row.field, v, f"{where}.value[x]", when)
            else:
                col.unknown(row.field, f"{where}.value[x]", "no whole-number value; it was not used")
        elif row.kind == "quantity":
            q = res.valueQuantity
            if q is None or _number(q.value) is None:
                col.unknown(row.field, f"{where}.valueQuantity", "no quantity value; it was not used")
                return
            unit = str(q.code) if q.code else None
            if unit not in row.units or (q.system and q.system != self.mapping.systems.get("ucum")):
                col.unknown(row.field, f"{where}.valueQuantity.code",
                            f"unit is not a UCUM code this table converts ({', '.join(row.units)}); it was not used")
                return
            value = float(_number(q.value)) * row.units[unit]
            if spec.round is not None:
                value = round(value, spec.round)
            col.add(row.field, value, f"{where}.valueQuantity", when)
        else:
            answer = self._answer(res, row)
            if answer is _NO_ANSWER:
                col.unknown(row.field, f"{where}.value[x]", "no value, or a coded answer outside the mapping table; it was not used")
                return
            if row.group is not None and answer != "unknown":
                col.answered.setdefault(row.group, set()).add(row.code)
            if row.kind == "presence":
                if answer is True:
                    col.add(row.field, row.value, f"{where}.value[x]", when)
            elif answer != "unknown":
                col.add(row.field, answer, f"{where}.value[x]", when)

    def _answer(self, res: Any, row: ObservationRow) -> Any:
        if res.valueBoolean is not None:
            return bool(res.valueBoolean)
        table = self._answers.get(row.answers or "", {})
        if res.valueCodeableConcept is not None:
            for coding in _codings(res.valueCodeableConcept):
                if coding in table:
                    return table[coding]
        return _NO_ANSWER

    # -------------------------------------------------------------- medications

    def _medication(self, res: Any, rtype: str, where: str, medications: Mapping[str, Any], col: _Collector) -> None:
        spec = self.mapping.medications
        current, ignored = ((spec.statement_current, spec.statement_ignored) if rtype == "MedicationStatement"
                            else (spec.request_current, spec.request_ignored))
        status = str(res.status) if res.status else None
        if status in ignored:
            return
        if status not in current:
            col.unknown(spec.field, f"{where}.status", "unknown medication status; not checked for opioid content")
            return
        concept, path = res.medicationCodeableConcept, f"{where}.medicationCodeableConcept"
        if concept is None and res.medicationReference is not None:
            ref = str(res.medicationReference.reference or "")
            path = f"{where}.medicationReference"
            med = None
            if ref.startswith("#"):
                med = next((c for c in (res.contained or []) if c.get_resource_type() == "Medication"
                            and c.id == ref[1:]), None)
            else:
                med = medications.get(ref) or medications.get(ref.split("/_history/")[0])
            concept = med.code if med is not None else None
            if med is None:
                col.unknown(spec.field, path, "the Medication it refers to is not in the Bundle; not checked for opioid content")
                return
        names = [r.name for r in self._medications.find(concept) if r.name]
        if names:
            for n in names:
                col.add(spec.field, n, path)
            return
        text = (getattr(concept, "text", None) or "").strip() if concept is not None else ""
        if not text and concept is not None:
            text = next((str(c.display).strip() for c in (concept.coding or []) if c.display), "")
        if text:
            col.add(spec.field, text, f"{path}.text")
        else:
            col.unknown(spec.field, path, "no code from the mapping table, no text and no display; not checked for opioid content")

    # -------------------------------------------------------------- Procedure

    def _procedure(self, res: Any, where: str, ref_day: date, col: _Collector) -> None:
        spec = self.mapping.procedures
        rows = self._procedures.find(res.code)
        if not rows:
            return
        status = str(res.status) if res.status else None
        if status in spec.ignored:
            return
        if status not in spec.counted:
            col.unknown(spec.field, f"{where}.status", f"status {status} is not a treatment that was tried; it was not counted")
            return
        period = res.performedPeriod
        start = _day(period.start) if period is not None else None
        end = _day(period.end) if period is not None else None
        if end is None and period is not None and period.end is None and status == "in-progress":
            end = ref_day
        if start is None or end is None or end < start:
            col.unknown(spec.field, f"{where}.performedPeriod",
                        "no complete performedPeriod (start and end dates), so no trial length; it was not counted")
            return
        outcomes = {r.value for r in self._outcomes.find(res.outcome)}
        if len(outcomes) != 1:
            col.unknown(spec.field, f"{where}.outcome",
                        "no outcome coded with the mapping table's response codes; it was not counted")
            return
        weeks = _weeks(start, end, spec.round)
        for row in rows:
            obj = {spec.code_key: row.value, spec.weeks_key: weeks, spec.outcome_key: next(iter(outcomes))}
            col.add_object(spec.field, str(row.value), obj, where)

    # -------------------------------------------------------------- settling values

    def _settle(self, col: _Collector, patient: dict[str, Any], prov: dict[str, str]) -> None:
        m = self.mapping
        for fld, items in col.items.items():
            ordered = sorted(items)
            _set_path(patient, fld, ordered)
            for i, v in enumerate(ordered):
                prov[f"{fld}[{i}]"] = items[v]
        for fld, by_key in col.objects.items():
            kept = []
            for key in sorted(by_key):
                found = by_key[key]
                if len(found) > 1:
                    col.unknown(fld, ", ".join(w for _, w in found),
                                f"the same treatment is recorded {len(found)} times; give one Procedure for the whole trial. "
                                "It was not counted")
                    continue
                kept.append(found[0])
            if kept:
                _set_path(patient, fld, [o for o, _ in kept])
                for i, (_, w) in enumerate(kept):
                    prov[f"{fld}[{i}]"] = w
        for group, spec in m.groups.items():
            if len(col.answered.get(group, ())) == self._group_size[group] > 0:
                col.add(spec.field, True, f"all {self._group_size[group]} {group} items answered")
        for fld, cands in col.values.items():
            settled = self._one(fld, cands, col)
            if settled is not None:
                _set_path(patient, fld, settled.value)
                prov[fld] = settled.where

    def _one(self, fld: str, cands: list[_Candidate], col: _Collector) -> _Candidate | None:
        spec = self.mapping.fields[fld]
        distinct = {_key(c.value) for c in cands}
        if len(distinct) == 1:
            return cands[0]
        if spec.policy == "max":
            return max(cands, key=lambda c: c.value)
        if spec.policy == "combine":
            joined = "+".join(sorted({str(c.value) for c in cands}))
            if joined in spec.combine:
                return _Candidate(spec.combine[joined], None, ", ".join(sorted({c.where for c in cands})))
        if spec.policy == "latest" and all(c.when is not None for c in cands):
            latest = max(c.when for c in cands)  # type: ignore[type-var]
            top = [c for c in cands if c.when == latest]
            if len({_key(c.value) for c in top}) == 1:
                return top[0]
        col.unknown(fld, ", ".join(sorted({c.where for c in cands})),
                    f"{len(cands)} resources give different values and this table cannot settle them ({spec.policy}); "
                    "none was used")
        return None


_NO_ANSWER = object()


def _key(value: Any) -> Any:
    return (type(value) is bool, value)


def _get_path(doc: Mapping[str, Any], path: str) -> Any:
    cur: Any = doc
    for p in path.split("."):
        if not isinstance(cur, Mapping) or p not in cur:
            return None
        cur = cur[p]
    return cur


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# ------------------------------------------------------------------ triage


def _translate(exc: InputError, provenance: Mapping[str, str]) -> InputError:
    """The patient model's problems, re-labelled with the FHIR element each value came from."""
    out = []
    for p in exc.problems:
        best = ""
        for key in provenance:
            if (p.field == key or p.field.startswith(key + ".") or p.field.startswith(key + "[")) and len(key) > len(best):
                best = key
        if best:
            out.append(FieldProblem(f"{provenance[best]} ({p.field})", p.problem, p.allowed))
        else:
            out.append(FieldProblem(f"(mapped patient) {p.field}", p.problem, p.allowed))
    return InputError(out)


def with_unknowns(result: Result, extra: Iterable[Mapping[str, Any]]) -> Result:
    """The result with the mapping's unknowns added (ordered by fact, then reason)."""
    extra = list(extra)
    if not extra:
        return result
    merged = sorted([*result.unknowns, *(Unknown(**u) for u in extra)], key=lambda u: (u.fact, u.reason))
    return result.model_copy(update={"unknowns": merged})


_mappers: dict[str, FhirMapper] = {}


def default_mapper(module: str | None = None) -> FhirMapper:
    """The mapper of the default (or named) rule set's table, built once per process."""
    name = module or os.environ.get("CDS_RULESET") or DEFAULT_RULESET_MODULE
    if name not in _mappers:
        _mappers[name] = FhirMapper(load_mapping(name))
    return _mappers[name]


def triage_bundle(triager: Any, data: Any, as_of: date | None = None, mapper: FhirMapper | None = None,
                  names: list[str] | None = None) -> Result:
    """Triage the patient of a FHIR R4 Bundle (parsed JSON) with the same `Triager.triage` as JSON input."""
    mapper = mapper or default_mapper()
    mapped = mapper.map(data, as_of=as_of, names=names)
    try:
        result = triager.triage(mapped.patient)
    except NotApplicable:
        raise
    except InputError as exc:
        raise _translate(exc, mapped.provenance) from None
    return with_unknowns(result, mapped.unknowns)


# ------------------------------------------------------------------ CDS Hooks prefetch

#: Prefetch keys of the CDS Hooks service, and the resource each must hold.
PREFETCH_KEYS = ("patient", "conditions", "observations", "medicationStatements", "medicationRequests", "procedures")


def prefetch_templates(mapping: FhirMapping) -> dict[str, str]:
    """FHIR query templates for the resources the mapping reads (observations filtered by code)."""
    codes = sorted({f"{mapping.systems[r.system]}|{r.code}" for r in mapping.observations})
    return {
        "patient": "Patient/{{context.patientId}}",
        "conditions": "Condition?patient={{context.patientId}}",
        "observations": "Observation?patient={{context.patientId}}&code=" + ",".join(codes),
        "medicationStatements": "MedicationStatement?patient={{context.patientId}}&_include=MedicationStatement:medication",
        "medicationRequests": "MedicationRequest?patient={{context.patientId}}&_include=MedicationRequest:medication",
        "procedures": "Procedure?patient={{context.patientId}}",
    }


def bundle_from_prefetch(prefetch: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One collection Bundle from CDS Hooks prefetch items (each a resource or a searchset Bundle).

    Returns the Bundle and, for each of its entries, where it came from ("prefetch.conditions.entry[2]").
    Its timestamp is the latest timestamp or meta.lastUpdated of the prefetched Bundles.
    """
    entries: list[dict[str, Any]] = []
    names: list[str] = []
    seen: set[tuple[str, str]] = set()
    stamps: list[str] = []
    for key in PREFETCH_KEYS:
        item = prefetch.get(key)
        if not isinstance(item, dict):
            raise InputError([FieldProblem(f"prefetch.{key}", "must be a FHIR resource or Bundle (a JSON object)",
                                           "a FHIR resource or searchset Bundle")])
        if item.get("resourceType") == "Bundle":
            for stamp in (item.get("timestamp"), (item.get("meta") or {}).get("lastUpdated")
                          if isinstance(item.get("meta"), dict) else None):
                if isinstance(stamp, str):
                    stamps.append(stamp)
            raw = item.get("entry") or []
            if not isinstance(raw, list):
                raise InputError([FieldProblem(f"prefetch.{key}.entry", "must be an array", "an array of entries")])
            for i, e in enumerate(raw):
                if not isinstance(e, dict):
                    raise InputError([FieldProblem(f"prefetch.{key}.entry[{i}]", "must be a JSON object", "a Bundle entry")])
                search = e.get("search")
                if isinstance(search, dict) and search.get("mode") == "outcome":
                    continue
                res = e.get("resource")
                if isinstance(res, dict) and isinstance(res.get("id"), str) and isinstance(res.get("resourceType"), str):
                    ident = (res["resourceType"], res["id"])
                    if ident in seen:
                        continue
                    seen.add(ident)
                entry = {"resource": res}
                if isinstance(e.get("fullUrl"), str):
                    entry["fullUrl"] = e["fullUrl"]
                entries.append(entry)
                names.append(f"prefetch.{key}.entry[{i}]")
        else:
            if isinstance(item.get("id"), str) and isinstance(item.get("resourceType"), str):
                seen.add((item["resourceType"], item["id"]))
            entries.append({"resource": item})
            names.append(f"prefetch.{key}")
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    latest = _latest_stamp(stamps)
    if latest is not None:
        bundle["timestamp"] = latest
    return bundle, names


def _latest_stamp(stamps: list[str]) -> str | None:
    best: tuple[datetime, str] | None = None
    for s in stamps:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", s):
            continue
        try:
            moment = datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            continue
        if best is None or moment > best[0]:
            best = (moment, s)
    return best[1] if best else None
