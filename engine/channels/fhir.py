"""FHIR R4 Bundle in, the rule set's patient input out: generic machinery driven by a mapping table.

The engine knows no clinical term here either. Which code means what, which patient field it
fills, how conflicting values are settled and what an unmappable value blocks all come from the
rule set's mapping table: by convention `<ruleset package>.fhir.FHIR_MAPPING` (for the default
rule set, rules/fhir_map.toml). This module only knows FHIR: Bundles, resources, codings,
statuses, dates, searches and UCUM quantities.

    mapped = FhirMapper(load_mapping()).map(bundle_dict)     # -> Mapped(patient, unknowns, ...)
    result = triage_bundle(triager, bundle_dict)             # same Triager.triage as JSON input

The mapping works on the parsed JSON (dicts and lists) and checks the type of exactly the
elements it reads: a wrong type is an `InputError` naming the element by its place in the
Bundle (`Bundle.entry[3].resource (Condition).code.coding[0].code`), never its value. Elements
it does not read are not checked; full validation with fhir.resources (its R4B models, which
read the R4 resources used here) is available as `strict=True` (the CLI's `--strict-fhir`): it
costs milliseconds per Bundle, the mapping alone tens of microseconds.

Ages and durations are computed against a reference date taken from the Bundle (timestamp, else
meta.lastUpdated) or given explicitly, never from the clock: the same Bundle always gives the
same patient. What cannot be mapped is reported as an unknown, in words a clinician reads and
with what it blocks; a failed search is reported as a record section not retrieved, never as
"none". A Bundle outside the rule set's scope is `NotApplicable` before anything else is checked.
"""

from __future__ import annotations

import calendar
import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.kernel.errors import FieldProblem, InputError, RuleSetError
from engine.kernel.inputs import MAX_PROBLEMS
from engine.kernel.loader import ruleset_module_name
from engine.kernel.models import Result, Unknown

#: The resource types this module reads; any other valid resource in a Bundle is named as not read.
READ_TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationStatement",
    "MedicationRequest",
    "Procedure",
    "Medication",
)
_SUBJECT_TYPES = frozenset(("Condition", "Observation", "MedicationStatement", "MedicationRequest", "Procedure"))
#: Resource types of FHIR R4 and R4B (a Bundle entry of another type is refused).
RESOURCE_TYPES = frozenset(
    [
        "Account",
        "ActivityDefinition",
        "AdministrableProductDefinition",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "AppointmentResponse",
        "AuditEvent",
        "Basic",
        "Binary",
        "BiologicallyDerivedProduct",
        "BodyStructure",
        "Bundle",
        "CapabilityStatement",
        "CarePlan",
        "CareTeam",
        "CatalogEntry",
        "ChargeItem",
        "ChargeItemDefinition",
        "Citation",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "ClinicalUseDefinition",
        "CodeSystem",
        "Communication",
        "CommunicationRequest",
        "CompartmentDefinition",
        "Composition",
        "ConceptMap",
        "Condition",
        "Consent",
        "Contract",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceDefinition",
        "DeviceMetric",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "EffectEvidenceSynthesis",
        "Encounter",
        "Endpoint",
        "EnrollmentRequest",
        "EnrollmentResponse",
        "EpisodeOfCare",
        "EventDefinition",
        "Evidence",
        "EvidenceReport",
        "EvidenceVariable",
        "ExampleScenario",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "GraphDefinition",
        "Group",
        "GuidanceResponse",
        "HealthcareService",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "ImplementationGuide",
        "Ingredient",
        "InsurancePlan",
        "Invoice",
        "Library",
        "Linkage",
        "List",
        "Location",
        "ManufacturedItemDefinition",
        "Measure",
        "MeasureReport",
        "Media",
        "Medication",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationKnowledge",
        "MedicationRequest",
        "MedicationStatement",
        "MedicinalProduct",
        "MedicinalProductAuthorization",
        "MedicinalProductContraindication",
        "MedicinalProductDefinition",
        "MedicinalProductIndication",
        "MedicinalProductIngredient",
        "MedicinalProductInteraction",
        "MedicinalProductManufactured",
        "MedicinalProductPackaged",
        "MedicinalProductPharmaceutical",
        "MedicinalProductUndesirableEffect",
        "MessageDefinition",
        "MessageHeader",
        "MolecularSequence",
        "NamingSystem",
        "NutritionOrder",
        "NutritionProduct",
        "Observation",
        "ObservationDefinition",
        "OperationDefinition",
        "OperationOutcome",
        "Organization",
        "OrganizationAffiliation",
        "PackagedProductDefinition",
        "Parameters",
        "Patient",
        "PaymentNotice",
        "PaymentReconciliation",
        "Person",
        "PlanDefinition",
        "Practitioner",
        "PractitionerRole",
        "Procedure",
        "Provenance",
        "Questionnaire",
        "QuestionnaireResponse",
        "RegulatedAuthorization",
        "RelatedPerson",
        "RequestGroup",
        "ResearchDefinition",
        "ResearchElementDefinition",
        "ResearchStudy",
        "ResearchSubject",
        "RiskAssessment",
        "RiskEvidenceSynthesis",
        "Schedule",
        "SearchParameter",
        "ServiceRequest",
        "Slot",
        "Specimen",
        "SpecimenDefinition",
        "StructureDefinition",
        "StructureMap",
        "Subscription",
        "SubscriptionStatus",
        "SubscriptionTopic",
        "Substance",
        "SubstanceDefinition",
        "SubstanceNucleicAcid",
        "SubstancePolymer",
        "SubstanceProtein",
        "SubstanceReferenceInformation",
        "SubstanceSourceMaterial",
        "SubstanceSpecification",
        "SupplyDelivery",
        "SupplyRequest",
        "Task",
        "TerminologyCapabilities",
        "TestReport",
        "TestScript",
        "ValueSet",
        "VerificationResult",
        "VisionPrescription",
    ]
)
#: UCUM units of a FHIR Age or Duration this module converts, in days (a month as 31 and a year as
#: 366 days: longest, so a supply or an onset age is never read as ending earlier than it may).
_UCUM_DAYS = {"d": 1, "wk": 7, "mo": 31, "a": 366}
_FAILED_SEVERITIES = ("error", "fatal")


class NotApplicable(InputError):
    """The Bundle is a valid patient record, but outside the rule set's scope (e.g. no forefoot pain).

    The CLI refuses it like any input error (exit 2); the CDS Hooks service answers with no cards.
    """


# ------------------------------------------------------------------ the mapping table, validated


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnknownSpec(_Table):
    """A code the table recognises but whose meaning leaves a patient field unknown."""

    field: str
    reason: str = Field(min_length=1, description="what the clinician should know or do, in words")


class CodeRow(_Table):
    """One code of a code system, what it maps to, and where the code was checked."""

    system: str = Field(description="alias of a code system in [systems]")
    code: str = Field(min_length=1)
    match: Literal["exact", "prefix"] = Field(default="exact", description="prefix: ICD-10-style hierarchy")
    to: dict[str, Any] = Field(default_factory=dict, description="patient field -> value")
    onset: str | None = Field(default=None, description="patient field that gets the weeks since onset")
    value: Any = Field(default=None, description="the value a medication/procedure/outcome code stands for")
    name: str | None = Field(default=None, description="generic medication name")
    unknown: UnknownSpec | None = Field(default=None, description="recognised, but leaves this field unknown")
    current_weeks: float | None = Field(
        default=None, gt=0, description="a Condition dated longer ago than this (no end) is not current"
    )
    source: str = Field(min_length=1, description="where the code was checked")
    note: str = Field(default="", description="why the row reads the code as it does")


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
    label: str | None = Field(default=None, description="how the field is named in the unknowns")


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


class MedicationKeys(_Table):
    name: str
    rxnorm: str
    status: str
    stopped_days_ago: str


class MedicationSpec(_Table):
    field: str
    rxnorm: str = Field(description="alias of the code system whose code is passed on as the drug's code")
    keys: MedicationKeys
    active: str
    stopped: str
    max_name: int = Field(gt=0)
    statement_active: list[str]
    statement_stopped: list[str]
    statement_ignored: list[str]
    request_active: list[str]
    request_stopped: list[str]
    request_ignored: list[str]
    codes: list[CodeRow] = Field(default_factory=list)


class ProcedureSpec(_Table):
    field: str
    code_key: str
    weeks_key: str
    outcome_key: str
    counted: list[str]
    ignored: list[str]
    since_done: list[str] = Field(default_factory=list, description="one-off procedures: weeks since done")
    round: int | None = None
    codes: list[CodeRow] = Field(default_factory=list)
    outcomes: list[CodeRow] = Field(default_factory=list)


class SearchSpec(_Table):
    what: str
    sections: list[str] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=list)


class FailedSearchSpec(_Table):
    field: str
    types: dict[str, SearchSpec]


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
    system_names: dict[str, str] = Field(default_factory=dict)
    patient: PatientSpec
    scope: ScopeSpec
    status: StatusSpec
    failed_searches: FailedSearchSpec
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
            named = list(r.to) + ([r.onset] if r.onset else []) + ([r.unknown.field] if r.unknown else [])
            for f in named:
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
        for alias in self.system_names:
            if alias not in self.systems:
                out.append(f"system_names: unknown code system alias {alias!r}")
        if self.medications.rxnorm not in self.systems:
            out.append(f"medications.rxnorm: unknown code system alias {self.medications.rxnorm!r}")
        for rtype, spec in self.failed_searches.types.items():
            if rtype not in RESOURCE_TYPES:
                out.append(f"failed_searches.types: {rtype!r} is not a FHIR resource type")
            for f in (*spec.sections, *spec.fields):
                if f not in self.fields:
                    out.append(f"failed_searches.types.{rtype}: field {f!r} has no [fields] entry")
        for name in (
            self.scope.field,
            self.medications.field,
            self.procedures.field,
            self.failed_searches.field,
            *(g.field for g in self.groups.values()),
        ):
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
    name = ruleset_module_name(module)
    try:
        mod = importlib.import_module(f"{name}.fhir")
    except ImportError as exc:
        raise RuleSetError(f"rule set {name!r} has no FHIR mapping (module {name}.fhir): {exc}") from exc
    table = getattr(mod, "FHIR_MAPPING", None)
    if not isinstance(table, Mapping):
        raise RuleSetError(f"module {name}.fhir has no FHIR_MAPPING table")
    return mapping_from(table)


# ------------------------------------------------------------------ full validation (strict mode)


def _model_class(resource_type: str) -> type | None:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        cls = get_fhir_model_class(resource_type)
    except Exception:  # noqa: BLE001 - an unknown name raises KeyError or ValueError
        return None
    return cls if getattr(cls, "get_resource_type", None) and cls.has_resource_base() else None


def _entry_label(names: list[str] | None, i: int) -> str:
    return names[i] if names is not None and i < len(names) else f"Bundle.entry[{i}]"


def _entry_resource(
    entry: Any, label: str, probs: list[FieldProblem], known: Callable[[str], bool] = RESOURCE_TYPES.__contains__
) -> tuple[dict[str, Any], str] | None:
    """The resource of one Bundle entry and its type; None when the entry has no resource, or when
    it is malformed (the problem, named by `label`, is added to `probs`). `known` says which
    resource types are FHIR resources."""
    if not isinstance(entry, dict):
        probs.append(FieldProblem(label, "must be a JSON object", "a Bundle entry"))
        return None
    res = entry.get("resource")
    if res is None:
        return None
    if not isinstance(res, dict):
        probs.append(FieldProblem(f"{label}.resource", "must be a JSON object", "a FHIR resource"))
        return None
    rtype = res.get("resourceType")
    if not isinstance(rtype, str) or not known(rtype):
        if isinstance(rtype, str) and rtype in RESOURCE_TYPES:
            # an R4 type that R4B dropped: fhir.resources' R4B models (the strict mode) cannot check it
            problem = (
                f"{rtype} is a FHIR R4 resource type that the full validation (fhir.resources' R4B models) cannot check",
                "the Bundle without --strict-fhir (the mapping reads it as it is), or without this entry",
            )
        else:
            problem = ("not a FHIR R4 resource type", ", ".join(READ_TYPES) + ", or another FHIR resource")
        probs.append(FieldProblem(f"{label}.resource.resourceType", *problem))
        return None
    return res, rtype


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
    """Validate a parsed JSON document as a FHIR R4 Bundle with fhir.resources (the strict mode).

    Returns the fhir.resources Bundle; raises `InputError` naming each bad element by its place.
    Milliseconds per Bundle: the mapping itself does not need it (`FhirMapper.map(strict=True)`).
    """
    from fhir.resources.R4B.bundle import Bundle

    entries = _document_entries(data)
    problems: list[FieldProblem] = []
    for i, entry in enumerate(entries):
        _entry_resource(entry, _entry_label(names, i), problems, lambda t: _model_class(t) is not None)
    if problems:
        raise InputError(problems)
    try:
        return Bundle.model_validate(data)
    except ValidationError as exc:
        out = []
        for err in exc.errors(include_input=False, include_url=False)[:MAX_PROBLEMS]:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown element"
            elif err["type"] == "missing":
                msg = "required element is missing"
            out.append(FieldProblem(_loc_path(tuple(err["loc"]), entries, names), msg, "FHIR R4"))
        raise InputError(out) from None
    except Exception as exc:  # noqa: BLE001 - fhir.resources raises other errors on odd shapes
        raise InputError(
            [FieldProblem("Bundle", f"not a valid FHIR R4 Bundle ({type(exc).__name__})", "FHIR R4")]
        ) from None


def _document_entries(data: Any) -> list[Any]:
    """The entry array of a Bundle document; `InputError` when the document is not a Bundle."""
    if not isinstance(data, dict):
        raise InputError([FieldProblem("(document)", "a FHIR input must be a JSON object", "one FHIR R4 Bundle")])
    if data.get("resourceType") != "Bundle":
        raise InputError([FieldProblem("resourceType", "a FHIR input must be a Bundle", "Bundle")])
    entries = data.get("entry", [])
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise InputError([FieldProblem("Bundle.entry", "must be an array", "an array of entries")])
    return entries


# ------------------------------------------------------------------ reading JSON, checking the types read

_KIND = {
    str: "a string",
    dict: "a JSON object",
    list: "an array",
    bool: "true or false",
    int: "an integer",
    float: "a number",
}


def _get(obj: Mapping[str, Any] | None, key: str, kind: type, where: str, probs: list[FieldProblem] | None) -> Any:
    """obj[key] when it has the FHIR JSON type `kind`; None when absent. A wrong type is a problem
    (named by its path, never its value) when `probs` is given, and silently None otherwise."""
    if obj is None:
        return None
    v = obj.get(key)
    if v is None or type(v) is kind:  # the fast path: JSON gives exactly str, dict, list, bool, int, float
        return v
    if kind is int:
        ok = type(v) is int
    elif kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, kind)
    if ok:
        return v
    if probs is not None:
        probs.append(FieldProblem(f"{where}.{key}", f"must be {_KIND[kind]}", "FHIR R4"))
    return None


def _items(
    obj: Mapping[str, Any] | None, key: str, where: str, probs: list[FieldProblem] | None
) -> Iterable[tuple[int, dict[str, Any]]]:
    """(index, element) of an array of JSON objects; a non-object element is a problem."""
    arr = _get(obj, key, list, where, probs)
    if not arr:
        return ()
    if all(type(v) is dict for v in arr):
        return enumerate(arr)
    out = []
    for i, v in enumerate(arr):
        if isinstance(v, dict):
            out.append((i, v))
        elif probs is not None:
            probs.append(FieldProblem(f"{where}.{key}[{i}]", "must be a JSON object", "FHIR R4"))
    return out


def _codings(concept: dict[str, Any] | None, where: str, probs: list[FieldProblem] | None) -> list[tuple[str, str]]:
    """(system, code) of each coding of a CodeableConcept that has a code."""
    out: list[tuple[str, str]] = []
    for i, c in _items(concept, "coding", where, probs):
        cw = f"{where}.coding[{i}]"
        code = _get(c, "code", str, cw, probs)
        system = _get(c, "system", str, cw, probs)
        if code and code.strip():
            out.append((system or "", code.strip()))
    return out


def _status_code(concept: dict[str, Any] | None, where: str, probs: list[FieldProblem] | None) -> str | None:
    """The first code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    codings = _codings(concept, where, probs)
    return codings[0][1] if codings else None


_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?")


@dataclass(slots=True, frozen=True)
class _When:
    """A FHIR date, dateTime or instant as written: the days it may be, and an instant to order by."""

    earliest: date
    latest: date
    precision: Literal["year", "month", "day", "time"]
    moment: datetime | None  # None for a partial date: it cannot be ordered against others


@lru_cache(maxsize=4096)
def _parse_when(text: str) -> _When | None:
    """A FHIR date/dateTime/instant as written, or None (the same strings recur: cached)."""
    try:
        m = _DATE.fullmatch(text)
        if m:
            y, mo, d = m.group(1), m.group(2), m.group(3)
            if d is not None:
                day = date(int(y), int(mo), int(d))
                return _When(day, day, "day", datetime(day.year, day.month, day.day, tzinfo=UTC))
            if mo is not None:
                last = calendar.monthrange(int(y), int(mo))[1]
                return _When(date(int(y), int(mo), 1), date(int(y), int(mo), last), "month", None)
            return _When(date(int(y), 1, 1), date(int(y), 12, 31), "year", None)
        m = _DATETIME.fullmatch(text)
        if m:
            y, mo, d, hh, mm, ss, frac, tz = m.groups()
            if tz is None or tz == "Z":
                tzinfo = UTC
            else:
                sign = 1 if tz[0] == "+" else -1
                tzinfo = timezone(sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6])))
            micro = int((frac or ".0")[1:7].ljust(6, "0"))
            moment = datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss or 0), micro, tzinfo=tzinfo)
            day = moment.date()
            return _When(day, day, "time", moment)
    except ValueError:  # 2024-02-30, 25:00
        return None
    return None


def _when(obj: Mapping[str, Any] | None, key: str, where: str, probs: list[FieldProblem] | None) -> _When | None:
    text = _get(obj, key, str, where, probs)
    if text is None:
        return None
    w = _parse_when(text)
    if w is None and probs is not None:
        probs.append(
            FieldProblem(
                f"{where}.{key}",
                "is not a FHIR date or dateTime",
                "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz",
            )
        )
    return w


def _number(
    obj: Mapping[str, Any] | None, key: str, where: str, probs: list[FieldProblem] | None
) -> float | int | None:
    return _get(obj, key, float, where, probs)


def _weeks(start: date, end: date, digits: int | None) -> float:
    weeks = (end - start).days / 7
    return round(weeks, digits) if digits is not None else weeks


def _add_ucum(day: date, value: float, unit: str) -> date:
    """`day` plus `value` UCUM `unit` (a, mo: calendar arithmetic; wk, d: days); the last date of
    the calendar when that lies beyond it (later than any reference date)."""
    try:
        if unit in ("a", "mo") and float(value).is_integer():
            months = int(value) * (12 if unit == "a" else 1)
            y, m = divmod(day.month - 1 + months, 12)
            year, month = day.year + y, m + 1
            return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
        return day + timedelta(days=float(value) * _UCUM_DAYS[unit])
    except (OverflowError, ValueError):
        return date.max


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _norm_prefix(code: str) -> str:
    return code.replace(".", "").replace(" ", "").upper()


def is_failed_search(resource: Mapping[str, Any]) -> bool:
    """True when a search result (a CDS Hooks prefetch item, or a Bundle inside a Bundle) failed.

    Failed: an OperationOutcome where a Bundle or resource was expected; a Bundle whose entries
    are all OperationOutcome (search mode `outcome`), at least one; or a Bundle with an
    OperationOutcome reporting an `error` or `fatal` issue (a partial result is not the whole
    record either). A failed search must never be read as "none".
    """
    if not isinstance(resource, Mapping):
        return False
    rtype = resource.get("resourceType")
    if rtype == "OperationOutcome":
        return True
    if rtype != "Bundle":
        return False
    entries = resource.get("entry")
    if not isinstance(entries, list) or not entries:
        return False
    outcomes, others = [], 0
    for e in entries:
        res = e.get("resource") if isinstance(e, Mapping) else None
        if isinstance(res, Mapping) and res.get("resourceType") == "OperationOutcome":
            outcomes.append(res)
        else:
            others += 1
    if outcomes and not others:
        return True
    return any(_reports_error(o) for o in outcomes)


def _reports_error(outcome: Mapping[str, Any]) -> bool:
    issues = outcome.get("issue")
    return isinstance(issues, list) and any(
        isinstance(i, Mapping) and i.get("severity") in _FAILED_SEVERITIES for i in issues
    )


def _searched_type(bundle: Mapping[str, Any]) -> str | None:
    """The resource type a searchset Bundle searched, from its `self` link (None when not said)."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, Mapping) and link.get("relation") == "self" and isinstance(link.get("url"), str):
            path = link["url"].split("?", 1)[0].rstrip("/")
            rtype = path.rsplit("/", 1)[-1]
            return rtype if rtype in RESOURCE_TYPES else None
    return None


# ------------------------------------------------------------------ finding table rows by code


class _CodeIndex:
    """Finds the table rows a list of codings matches (exact codes, or ICD-style prefixes)."""

    def __init__(self, rows: Iterable[CodeRow], systems: Mapping[str, str]):
        self.exact: dict[tuple[str, str], list[CodeRow]] = {}
        self.prefix: dict[str, dict[str, list[CodeRow]]] = {}
        for r in rows:
            url = systems[r.system]
            if r.match == "prefix":
                self.prefix.setdefault(url, {}).setdefault(_norm_prefix(r.code), []).append(r)
            else:
                self.exact.setdefault((url, r.code), []).append(r)

    def find(self, codings: Iterable[tuple[str, str]]) -> list[CodeRow]:
        found: list[CodeRow] = []
        for system, code in codings:
            found.extend(self.exact.get((system, code), ()))
            by_prefix = self.prefix.get(system)
            if by_prefix:
                norm = _norm_prefix(code)
                for n in range(1, len(norm) + 1):
                    rows = by_prefix.get(norm[:n])
                    if rows:
                        found.extend(rows)
        if len(found) < 2:
            return found
        return list({id(r): r for r in found}.values())  # each row once, in the order found


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


@dataclass(slots=True)
class _Entry:
    label: str  # "Bundle.entry[3].resource (Condition)": for input errors, never for unknowns
    res: dict[str, Any]
    rtype: str
    url: str | None


class _Collector:
    def __init__(self, mapping: FhirMapping):
        self.m = mapping
        self.values: dict[str, list[_Candidate]] = {}
        self.items: dict[str, dict[Any, tuple[Any, str]]] = {}
        self.objects: dict[str, dict[str, list[tuple[dict[str, Any], str]]]] = {}
        self.answered: dict[str, set[str]] = {}
        self.unknowns: dict[tuple[str, str], dict[str, Any]] = {}
        self.unused: dict[str, int] = {}

    def unknown(self, fld: str, reason: str) -> None:
        """An unknown in words a clinician reads (never a Bundle path), each once."""
        key = (f"fhir:{fld}", reason)
        if key not in self.unknowns:
            spec = self.m.fields.get(fld)
            self.unknowns[key] = {
                "fact": key[0],
                "reason": reason,
                "blocks": list(spec.blocks) if spec else [],
                "rule": self.m.table.rule,
            }

    def not_used(self, what: str) -> None:
        self.unused[what] = self.unused.get(what, 0) + 1

    def add(self, fld: str, value: Any, where: str, when: datetime | None = None) -> None:
        if self.m.fields[fld].policy == "list":
            self.add_item(fld, value, value, where)
        else:
            self.values.setdefault(fld, []).append(_Candidate(value, when, where))

    def add_item(self, fld: str, key: Any, value: Any, where: str) -> None:
        self.items.setdefault(fld, {}).setdefault(key, (value, where))

    def add_object(self, fld: str, key: str, obj: dict[str, Any], where: str) -> None:
        self.objects.setdefault(fld, {}).setdefault(key, []).append((obj, where))

    def final_unknowns(self) -> list[dict[str, Any]]:
        for what, n in self.unused.items():
            reason = f"{what} was not used" if n == 1 else f"{what} was not used ({n} resources)"
            self.unknowns.setdefault(
                ("fhir:unused", reason),
                {"fact": "fhir:unused", "reason": reason, "blocks": [], "rule": self.m.table.rule},
            )
        return [self.unknowns[k] for k in sorted(self.unknowns)]


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for p in parts[:-1]:
        doc = doc.setdefault(p, {})
    doc[parts[-1]] = value


def _reference_matches(target: str | None, patient_refs: set[str], patient_id: str) -> bool:
    if not target:
        return True  # an identifier- or display-only reference: nothing to contradict
    if target in patient_refs:
        return True
    return target.endswith(f"/Patient/{patient_id}") or target.split("/_history/")[0] in patient_refs


@dataclass
class _Run:
    """The state of one `FhirMapper.map` call."""

    ref_day: date
    probs: list[FieldProblem]
    col: _Collector
    birth: tuple[date, date] | None = None
    medications: dict[str, dict[str, Any]] = field(default_factory=dict)
    referenced: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _ObservationValue:
    """The value[x] of an Observation, its types checked whether or not the code is mapped."""

    integer: int | None
    quantity: float | int | None
    unit: str | None
    unit_system: str | None
    boolean: bool | None
    codings: list[tuple[str, str]]

    @classmethod
    def read(cls, res: dict[str, Any], where: str, probs: list[FieldProblem]) -> _ObservationValue:
        q = _get(res, "valueQuantity", dict, where, probs)
        qw = f"{where}.valueQuantity"
        return cls(
            _get(res, "valueInteger", int, where, probs),
            _number(q, "value", qw, probs),
            _get(q, "code", str, qw, probs),
            _get(q, "system", str, qw, probs),
            _get(res, "valueBoolean", bool, where, probs),
            _codings(_get(res, "valueCodeableConcept", dict, where, probs), f"{where}.valueCodeableConcept", probs),
        )


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
        self._answers = {
            name: {(s[k.split("|", 1)[0]], k.split("|", 1)[1]): v for k, v in table.items()}
            for name, table in mapping.answers.items()
        }
        self._group_size = {g: sum(1 for r in mapping.observations if r.group == g) for g in mapping.groups}
        self._system_label = {s[alias]: label for alias, label in mapping.system_names.items()}
        self._rxnorm = s[mapping.medications.rxnorm]
        self._ucum = s.get("ucum")
        self._scope_rows = {id(r) for r in mapping.conditions if mapping.scope.field in r.to}

    # -------------------------------------------------------------- entry point

    def map(self, data: Any, as_of: date | None = None, names: list[str] | None = None, strict: bool = False) -> Mapped:
        """The patient input of a Bundle (parsed JSON), or `InputError`/`NotApplicable`.

        `strict`: validate the whole Bundle with fhir.resources first (milliseconds; the default
        checks the types of the elements the mapping reads).
        """
        raw = _document_entries(data)
        entries, failed, structure = self._entries(raw, names)
        self._require_scope(entries, failed)  # before any other check: out of scope is not an error
        if structure:
            raise InputError(structure[:MAX_PROBLEMS])
        if strict:
            parse_bundle(data, names)
        m = self.mapping
        probs: list[FieldProblem] = []
        ref_day = as_of
        if ref_day is None:
            stamp = _when(data, "timestamp", "Bundle", probs)
            meta = _get(data, "meta", dict, "Bundle", probs)
            updated = _when(meta, "lastUpdated", "Bundle.meta", probs)
            for w in (stamp, updated):
                if w is not None and w.precision in ("day", "time"):
                    ref_day = w.earliest
                    break
        if probs:
            raise InputError(probs)
        if ref_day is None:
            raise InputError(
                [
                    FieldProblem(
                        "Bundle.timestamp",
                        "no reference date for ages and durations",
                        "Bundle.timestamp or Bundle.meta.lastUpdated, or an explicit as-of date",
                    )
                ]
            )
        run = _Run(ref_day=ref_day, probs=probs, col=_Collector(m))
        patient: dict[str, Any] = {}
        provenance: dict[str, str] = {}

        pats = [e for e in entries if e.rtype == "Patient"]
        if len(pats) != 1:
            raise InputError(
                [FieldProblem("Bundle.entry", f"holds {len(pats)} Patient resources", "exactly one Patient")]
            )
        pid = self._patient(pats[0], run, patient, provenance)
        prefs = {f"Patient/{pid}"} | ({pats[0].url} if pats[0].url else set())

        for e in entries:
            if e.rtype == "Medication":
                mid = _get(e.res, "id", str, e.label, probs)
                if mid:
                    run.medications[f"Medication/{mid}"] = e.res
                if e.url:
                    run.medications[e.url] = e.res
        col = run.col
        others: dict[str, int] = {}
        for e in entries:
            rtype = e.rtype
            if rtype in _SUBJECT_TYPES:
                subject = _get(e.res, "subject", dict, e.label, probs)
                target = _get(subject, "reference", str, f"{e.label}.subject", probs)
                if not _reference_matches(target, prefs, pid):
                    raise InputError(
                        [
                            FieldProblem(
                                f"{e.label}.subject",
                                "refers to another patient than the Bundle's Patient",
                                "one patient per Bundle",
                            )
                        ]
                    )
                if rtype == "Condition":
                    self._condition(e, run)
                elif rtype == "Observation":
                    self._observation(e, run)
                elif rtype == "Procedure":
                    self._procedure(e, run)
                else:
                    self._medication(e, run)
            elif rtype not in ("Patient", "Medication"):
                others[rtype] = others.get(rtype, 0) + 1
        if probs:
            raise InputError(probs[:MAX_PROBLEMS])
        for e in entries:
            if e.rtype == "Medication" and id(e.res) not in run.referenced:
                codings = _codings(_get(e.res, "code", dict, e.label, None), "", None)
                col.not_used(
                    f"a Medication {self._coded(codings)}, to which no medication statement or request refers,"
                )
        for rtype, _n in sorted(others.items()):
            col.not_used(
                f"{_a(rtype)} resource (this table reads {', '.join(t for t in READ_TYPES if t != 'Medication')})"
            )
        self._failed(failed, col, patient)
        self._settle(col, patient, provenance)
        return Mapped(patient=patient, unknowns=col.final_unknowns(), provenance=provenance, reference_date=ref_day)

    # -------------------------------------------------------------- entries, failed searches, scope

    def _entries(
        self, raw: list[Any], names: list[str] | None
    ) -> tuple[list[_Entry], list[tuple[str | None, str]], list[FieldProblem]]:
        """The resources of the Bundle (a nested Bundle's flattened one level), its failed
        searches (resource type searched, or None when not said), and structural problems."""
        entries: list[_Entry] = []
        failed: list[tuple[str | None, str]] = []
        probs: list[FieldProblem] = []
        seen: set[tuple[str, str]] = set()

        def take(entry: Any, label: str, nested: bool) -> None:
            found = _entry_resource(entry, label, probs)
            if found is None:
                return
            res, rtype = found
            where = f"{label}.resource ({rtype})"
            if rtype == "OperationOutcome":
                if _reports_error(res):
                    failed.append((None, where))
                return
            if rtype == "Bundle":
                if nested:
                    entries.append(_Entry(where, res, "Bundle (nested twice)", None))
                    return
                if is_failed_search(res):
                    failed.append((_searched_type(res), where))
                sub = res.get("entry")
                if isinstance(sub, list):
                    for j, s in enumerate(sub):
                        if (
                            isinstance(s, dict)
                            and isinstance(s.get("resource"), dict)
                            and s["resource"].get("resourceType") == "OperationOutcome"
                        ):
                            continue  # the search's own outcome: judged above
                        take(s, f"{label}.resource.entry[{j}]", True)
                elif sub is not None:
                    probs.append(FieldProblem(f"{where}.entry", "must be an array", "an array of entries"))
                return
            rid = res.get("id")
            if isinstance(rid, str):
                if (rtype, rid) in seen:
                    return  # the same resource twice (an _include): read once
                seen.add((rtype, rid))
            url = entry.get("fullUrl")
            entries.append(_Entry(where, res, rtype, url if isinstance(url, str) else None))

        for i, entry in enumerate(raw):
            take(entry, _entry_label(names, i), False)
        return entries, failed, probs

    def _require_scope(self, entries: list[_Entry], failed: list[tuple[str | None, str]]) -> None:
        """`NotApplicable` unless a current Condition puts the patient in scope (read leniently:
        this answer comes before any other check)."""
        st = self.mapping.status
        for e in entries:
            if e.rtype != "Condition":
                continue
            rows = self._conditions.find(_codings(_get(e.res, "code", dict, "", None), "", None))
            if not any(id(r) in self._scope_rows for r in rows):
                continue
            verification = _status_code(_get(e.res, "verificationStatus", dict, "", None), "", None)
            clinical = _status_code(_get(e.res, "clinicalStatus", dict, "", None), "", None)
            if verification in st.condition_ignored or (clinical is not None and clinical not in st.condition_current):
                continue
            return
        m = self.mapping
        lost = [where for rtype, where in failed if rtype in (None, "Condition")]
        if lost:
            raise InputError(
                [
                    FieldProblem(
                        lost[0],
                        "the Condition search failed (OperationOutcome): whether the patient "
                        "is in scope (" + m.scope.message.removeprefix("no ") + ") cannot be known",
                        "a Condition search that succeeded",
                    )
                ]
            )
        raise NotApplicable(
            [FieldProblem(m.scope.field, m.scope.message, "a Bundle for a patient in scope of this rule set")]
        )

    def _failed(self, failed: list[tuple[str | None, str]], col: _Collector, patient: dict[str, Any]) -> None:
        spec = self.mapping.failed_searches
        sections: set[str] = set()
        for rtype, _ in failed:
            if rtype is None:
                kinds = [
                    (s, "a search failed (OperationOutcome) without saying which, so every search counts as failed: ")
                    for s in spec.types.values()
                ]
            elif rtype in spec.types:
                s = spec.types[rtype]
                kinds = [(s, f"the {s.what} search failed (OperationOutcome): ")]
            else:
                continue  # e.g. the Patient: its absence is an input error of its own
            for s, lead in kinds:
                for f in (*s.sections, *s.fields):
                    col.unknown(f, lead + f"{self._label(f)} unknown")
                sections.update(s.sections)
        if sections:
            _set_path(patient, spec.field, sorted(sections))

    # -------------------------------------------------------------- words for the unknowns

    def _label(self, fld: str) -> str:
        spec = self.mapping.fields.get(fld)
        return (spec.label if spec and spec.label else fld).replace("_", " ")

    def _system(self, url: str) -> str:
        return self._system_label.get(url) or (f"code system {_clip(url, 80)}" if url else "no code system")

    def _coded(self, codings: list[tuple[str, str]]) -> str:
        if not codings:
            return "with no code"
        shown = " / ".join(f"{self._system(s)} {_clip(c, 40)}" for s, c in codings[:3])
        return "coded " + shown + (f" (and {len(codings) - 3} more codings)" if len(codings) > 3 else "")

    # -------------------------------------------------------------- Patient

    def _patient(self, e: _Entry, run: _Run, patient: dict[str, Any], prov: dict[str, str]) -> str:
        spec, where, probs = self.mapping.patient, e.label, run.probs
        pid = _get(e.res, "id", str, where, probs)
        born = _when(e.res, "birthDate", where, probs)
        gender = _get(e.res, "gender", str, where, probs)
        if probs:
            raise InputError(probs)
        if not pid:
            raise InputError([FieldProblem(f"{where}.id", "the Patient has no id", "a Patient.id")])
        _set_path(patient, spec.id, pid)
        prov[spec.id] = f"{where}.id"
        if born is None:
            raise InputError(
                [
                    FieldProblem(
                        f"{where}.birthDate", "the Patient has no birthDate, so no age", "a birthDate (YYYY-MM-DD)"
                    )
                ]
            )
        ref_day = run.ref_day
        if born.earliest > ref_day:
            raise InputError([FieldProblem(f"{where}.birthDate", "is after the reference date", "a past date")])
        ages = {_age(born.earliest, ref_day), _age(min(born.latest, ref_day), ref_day)}
        if len(ages) != 1:
            raise InputError(
                [
                    FieldProblem(
                        f"{where}.birthDate",
                        "is partial and leaves the age uncertain at the reference date",
                        "a full birthDate (YYYY-MM-DD)",
                    )
                ]
            )
        run.birth = (born.earliest, min(born.latest, ref_day))
        _set_path(patient, spec.age, ages.pop())
        prov[spec.age] = f"{where}.birthDate"
        if gender is not None:
            sex = spec.gender.get(gender)
            if sex is None:
                raise InputError(
                    [
                        FieldProblem(
                            f"{where}.gender", "is not an administrative gender of FHIR R4", ", ".join(spec.gender)
                        )
                    ]
                )
            _set_path(patient, spec.sex, sex)
            prov[spec.sex] = f"{where}.gender"
        return pid

    # -------------------------------------------------------------- Condition

    def _condition(self, e: _Entry, run: _Run) -> None:
        res, where, probs, col = e.res, e.label, run.probs, run.col
        codings = _codings(_get(res, "code", dict, where, probs), f"{where}.code", probs)
        st = self.mapping.status
        verification = _status_code(
            _get(res, "verificationStatus", dict, where, probs), f"{where}.verificationStatus", probs
        )
        clinical = _status_code(_get(res, "clinicalStatus", dict, where, probs), f"{where}.clinicalStatus", probs)
        recorded = _when(res, "recordedDate", where, probs)
        onset = self._onset_elements(res, where, probs)
        if verification == "entered-in-error":
            return
        rows = self._conditions.find(codings)
        desc = f"a Condition {self._coded(codings)}"
        if not rows:
            col.not_used(desc)
            return
        if verification in st.condition_ignored or (clinical is not None and clinical in st.condition_past):
            return
        suspected = verification in st.condition_suspected
        unclear = clinical is not None and clinical not in st.condition_current
        first = onset[0] or recorded
        when = first.moment if first else None
        for row in rows:
            if unclear:
                for fld in (*row.to, *([row.unknown.field] if row.unknown else [])):
                    col.unknown(fld, f"{desc} has a clinical status this table does not know: it was not counted")
                continue
            if row.current_weeks is not None:
                dated = self._onset(onset, recorded, run)[0]
                if dated is not None and (run.ref_day - dated).days > row.current_weeks * 7:
                    for fld in row.to:
                        col.unknown(
                            fld,
                            f"{desc} is dated more than {row.current_weeks:g} weeks ago and has no end: "
                            f"not taken as current, so {self._label(fld)} is unknown",
                        )
                    continue
            if row.unknown is not None:
                col.unknown(row.unknown.field, row.unknown.reason)
            for fld, value in row.to.items():
                spec = self.mapping.fields[fld]
                if suspected and spec.suspected == "unknown":
                    col.unknown(
                        fld,
                        f"{desc} is recorded as {verification}, not confirmed: it was not counted as "
                        f"{str(value).replace('_', ' ')}",
                    )
                else:
                    col.add(fld, value, f"{where}.code", when)
            if row.onset:
                late = self._onset_after_reference(res, onset, recorded, run)
                if late is not None:
                    element, reason, allowed = late
                    probs.append(FieldProblem(f"{where}.{element}", reason, allowed))
                    continue
                day, note = self._onset(onset, recorded, run)
                if day is not None and day <= run.ref_day:
                    col.add(
                        row.onset, _weeks(day, run.ref_day, self.mapping.fields[row.onset].round), f"{where}.onset[x]"
                    )
                    if note:
                        col.unknown(row.onset, f"{desc}: {note}")

    def _onset_elements(
        self, res: dict[str, Any], where: str, probs: list[FieldProblem]
    ) -> tuple[_When | None, tuple[float | None, str | None, str | None] | None]:
        """onsetDateTime (else onsetPeriod.start), and onsetAge as (value, UCUM code, system)."""
        w = _when(res, "onsetDateTime", where, probs)
        start = _when(_get(res, "onsetPeriod", dict, where, probs), "start", f"{where}.onsetPeriod", probs)
        age = _get(res, "onsetAge", dict, where, probs)
        aw = f"{where}.onsetAge"
        age_parts = (
            (_number(age, "value", aw, probs), _get(age, "code", str, aw, probs), _get(age, "system", str, aw, probs))
            if age is not None
            else None
        )
        return w or start, age_parts

    def _readable_age(self, age: tuple[float | None, str | None, str | None]) -> tuple[float, str] | None:
        """An onsetAge's (value, UCUM unit) when this table can read it (a, mo, wk or d), else None."""
        value, unit, system = age
        if value is not None and value >= 0 and unit in _UCUM_DAYS and (not system or system == self._ucum):
            return value, unit
        return None

    def _onset_after_reference(
        self,
        res: dict[str, Any],
        onset: tuple[_When | None, tuple[float | None, str | None, str | None] | None],
        recorded: _When | None,
        run: _Run,
    ) -> tuple[str, str, str] | None:
        """(element, problem, allowed) when the element the pain's onset would be read from puts it
        after the reference date: an entry error, never read as a duration of 0 weeks."""
        ref_day = run.ref_day
        w, age = onset
        if w is not None:
            if w.earliest <= ref_day:
                return None
            written = res.get("onsetDateTime")
            element = "onsetDateTime" if type(written) is str and _parse_when(written) == w else "onsetPeriod.start"
            return element, "is after the reference date: the pain cannot have begun then", "a date on or before it"
        read = self._readable_age(age) if age is not None else None
        if read is not None and run.birth is not None:  # as `_onset`: else the recorded date is read
            if _add_ucum(run.birth[0], *read) <= ref_day:  # even from the earliest possible birth date
                return None
            return (
                "onsetAge",
                "is older than the patient at the reference date: the pain cannot have begun then",
                "an age the patient has reached",
            )
        if recorded is not None and recorded.earliest > ref_day:
            return "recordedDate", "is after the reference date (the onset is read from it)", "a date on or before it"
        return None

    def _onset(
        self,
        onset: tuple[_When | None, tuple[float | None, str | None, str | None] | None],
        recorded: _When | None,
        run: _Run,
    ) -> tuple[date | None, str | None]:
        """The latest day the condition may have begun, and a note when that is a conservative reading.

        onsetDateTime, else onsetPeriod.start, else onsetAge (with the birth date), else recordedDate.
        The latest possible day gives the shortest duration: nothing escalates early.
        """
        lead = "the pain is counted from the {} (the shortest possible duration), so nothing escalates early"
        w, age = onset
        if w is not None:
            if w.precision in ("day", "time"):
                return w.earliest, None
            span = "year" if w.precision == "year" else "month"
            return min(w.latest, run.ref_day), f"onset recorded to the {span} only; " + lead.format(
                f"last day of that {span}"
            )
        unreadable = ""
        if age is not None:
            read = self._readable_age(age)
            if read is not None and run.birth is not None:
                value, unit = read
                last = (
                    _add_ucum(run.birth[1], value + 1, unit) - timedelta(days=1)
                    if float(value).is_integer()
                    else _add_ucum(run.birth[1], value, unit)
                )
                return min(last, run.ref_day), "onset given as an age; " + lead.format("last day of that age")
            unreadable = "an onset age this table cannot read (UCUM a, mo, wk or d); "
        if recorded is not None:
            return min(recorded.latest, run.ref_day), (
                unreadable + "no onset date; " + lead.format("day it was recorded")
            )
        return None, None

    # -------------------------------------------------------------- Observation

    def _observation(self, e: _Entry, run: _Run) -> None:
        res, where, probs, col = e.res, e.label, run.probs, run.col
        codings = _codings(_get(res, "code", dict, where, probs), f"{where}.code", probs)
        status = _get(res, "status", str, where, probs)
        period = _get(res, "effectivePeriod", dict, where, probs)
        w = (
            _when(res, "effectiveDateTime", where, probs)
            or _when(res, "effectiveInstant", where, probs)
            or _when(period, "end", f"{where}.effectivePeriod", probs)
            or _when(period, "start", f"{where}.effectivePeriod", probs)
        )
        value = _ObservationValue.read(res, where, probs)
        if status == "entered-in-error":
            return
        rows = self._observations.find(codings)
        desc = f"an Observation {self._coded(codings)}"
        if not rows:
            col.not_used(desc)
            return
        st = self.mapping.status
        if status in st.observation_ignored:
            return
        when = w.moment if w else None
        for row in rows:
            if status not in st.observation_final:
                col.unknown(row.field, f"{desc} is not final: it was not used")
                continue
            self._observation_value(value, row, where, desc, when, run)

    def _observation_value(
        self, ov: _ObservationValue, row: ObservationRow, where: str, desc: str, when: datetime | None, run: _Run
    ) -> None:
        col = run.col
        spec = self.mapping.fields[row.field]
        if row.kind == "integer":
            v = ov.integer
            if v is None:
                n = ov.quantity
                v = int(n) if n is not None and float(n).is_integer() else None
            if v is not None:
                col.add(row.field, v, f"{where}.value[x]", when)
            else:
                col.unknown(row.field, f"{desc} has no whole-number value: it was not used")
        elif row.kind == "quantity":
            n, unit, system = ov.quantity, ov.unit, ov.unit_system
            if n is None:
                col.unknown(row.field, f"{desc} has no quantity value: it was not used")
                return
            if unit not in row.units or (system and system != self._ucum):
                col.unknown(
                    row.field,
                    f"{desc} has a unit this table does not convert (UCUM {', '.join(row.units)}): it was not used",
                )
                return
            value = float(n) * row.units[unit]
            if spec.round is not None:
                value = round(value, spec.round)
            col.add(row.field, value, f"{where}.valueQuantity", when)
        else:
            answer = self._answer(ov, row)
            if answer is _NO_ANSWER:
                col.unknown(
                    row.field, f"{desc} has no value, or a coded answer outside the mapping table: it was not used"
                )
                return
            if row.group is not None and answer != "unknown":
                col.answered.setdefault(row.group, set()).add(row.code)
            if row.kind == "presence":
                if answer is True:
                    col.add(row.field, row.value, f"{where}.value[x]", when)
            elif answer != "unknown":
                col.add(row.field, answer, f"{where}.value[x]", when)

    def _answer(self, ov: _ObservationValue, row: ObservationRow) -> Any:
        if ov.boolean is not None:
            return ov.boolean
        table = self._answers.get(row.answers or "", {})
        for coding in ov.codings:
            if coding in table:
                return table[coding]
        return _NO_ANSWER

    # -------------------------------------------------------------- medications

    def _medication(self, e: _Entry, run: _Run) -> None:
        res, where, probs, col = e.res, e.label, run.probs, run.col
        spec = self.mapping.medications
        rtype = e.rtype
        statement = rtype == "MedicationStatement"
        active, stopped, ignored = (
            (spec.statement_active, spec.statement_stopped, spec.statement_ignored)
            if statement
            else (spec.request_active, spec.request_stopped, spec.request_ignored)
        )
        status = _get(res, "status", str, where, probs)
        end, supply, partial = self._medication_end(res, statement, where, probs)
        concept = _get(res, "medicationCodeableConcept", dict, where, probs)
        path = f"{where}.medicationCodeableConcept"
        ref_display = None
        if concept is None:
            ref = _get(res, "medicationReference", dict, where, probs)
            path = f"{where}.medicationReference"
            target = _get(ref, "reference", str, path, probs)
            ref_display = _get(ref, "display", str, path, probs)
            med = None
            if target and target.startswith("#"):
                for _i, c in _items(res, "contained", where, probs):
                    if c.get("resourceType") == "Medication" and c.get("id") == target[1:]:
                        med = c
                        break
            elif target:
                med = run.medications.get(target) or run.medications.get(target.split("/_history/")[0])
            if med is not None:
                run.referenced.add(id(med))
                concept = _get(med, "code", dict, f"{path} -> Medication", probs)
                path = f"{path} -> Medication.code"
        name, rxnorm = self._drug(concept, ref_display, path, run)
        if status in ignored:
            return
        if concept is None and name is None and path.endswith("medicationReference"):
            col.unknown(
                spec.field,
                f"{_a(rtype)} refers to a medication that is not in the Bundle and gives no "
                "name: it was not checked for opioid content",
            )
            return
        desc = (
            f"{_a(rtype)} for {_clip(name)}" if name else f"{_a(rtype)} coded RxNorm {rxnorm}" if rxnorm else _a(rtype)
        )
        if name is None and rxnorm is None:
            col.unknown(spec.field, f"{desc} has no name and no RxNorm code: it was not checked for opioid content")
            return
        if status not in active and status not in stopped:
            col.unknown(
                spec.field,
                f"{desc} has a status this table does not know: it was not passed on, so it was "
                "not checked for opioid content",
            )
            return
        if end is not None:
            end = _add_ucum(end, supply, "d")
        days: int | None = None
        if status in active:
            if end is not None and end < run.ref_day:
                days = (run.ref_day - end).days
        elif end is not None:
            days = max(0, (run.ref_day - end).days)
        else:
            days = 0
            col.unknown(
                spec.field,
                f"{desc} is {status} with no end date: it is counted as stopped today (recently enough to count)",
            )
        if days is not None and partial:
            col.unknown(
                spec.field, f"{desc} ended on a partial date: its latest possible day is taken (the most recent stop)"
            )
        keys = spec.keys
        obj: dict[str, Any] = {}
        if name is not None:
            obj[keys.name] = name
        if rxnorm is not None:
            obj[keys.rxnorm] = rxnorm
        obj[keys.status] = spec.active if days is None else spec.stopped
        if days is not None:
            obj[keys.stopped_days_ago] = days
        col.add_item(spec.field, (name or "", rxnorm or "", days if days is not None else -1), obj, path)

    def _drug(
        self, concept: dict[str, Any] | None, ref_display: str | None, where: str, run: _Run
    ) -> tuple[str | None, str | None]:
        """(name as written, RxNorm code) of a medication concept; nothing classified here."""
        probs, spec = run.probs, self.mapping.medications
        text = _get(concept, "text", str, where, probs)
        display, rx_first, rx_chosen, codings = None, None, None, []
        for i, c in _items(concept, "coding", where, probs):
            cw = f"{where}.coding[{i}]"
            code = _get(c, "code", str, cw, probs)
            system = _get(c, "system", str, cw, probs)
            shown = _get(c, "display", str, cw, probs)
            selected = _get(c, "userSelected", bool, cw, probs)
            if display is None and shown and shown.strip():
                display = shown
            if not (code and code.strip()):
                continue
            codings.append((system or "", code.strip()))
            if system == self._rxnorm:
                if re.fullmatch(r"[0-9]{1,10}", code.strip()):
                    rx_first = rx_first or code.strip()
                    if selected and rx_chosen is None:
                        rx_chosen = code.strip()
                else:
                    run.col.unknown(spec.field, "an RxNorm code that is not an RxNorm concept id (digits) was not used")
        table_name = next((r.name for r in self._medications.find(codings) if r.name), None)
        name = next((n for n in (text, display, ref_display, table_name) if n and n.strip()), None)
        if name is not None:
            name = " ".join(re.sub(r"[\x00-\x1f\x7f]", " ", name).split())
            if len(name) > spec.max_name:
                run.col.unknown(
                    spec.field,
                    f"a medication name longer than {spec.max_name} characters was shortened to its first characters",
                )
                name = name[: spec.max_name].rstrip()
        return name or None, rx_chosen or rx_first

    def _medication_end(
        self, res: dict[str, Any], statement: bool, where: str, probs: list[FieldProblem]
    ) -> tuple[date | None, int, bool]:
        """(last day taken, extra supply days, whether the end date was partial)."""
        if statement:
            period = _get(res, "effectivePeriod", dict, where, probs)
            w = _when(period, "end", f"{where}.effectivePeriod", probs)
            return (w.latest if w else None), 0, bool(w and w.precision in ("year", "month"))
        dr = _get(res, "dispenseRequest", dict, where, probs)
        dw = f"{where}.dispenseRequest"
        w = _when(_get(dr, "validityPeriod", dict, dw, probs), "end", f"{dw}.validityPeriod", probs)
        supply = _get(dr, "expectedSupplyDuration", dict, dw, probs)
        days = 0
        if supply is not None:
            value = _number(supply, "value", f"{dw}.expectedSupplyDuration", probs)
            unit = _get(supply, "code", str, f"{dw}.expectedSupplyDuration", probs)
            if value is not None and value > 0 and unit in _UCUM_DAYS:
                days = int(-(-value * _UCUM_DAYS[unit] // 1))
        return (w.latest if w else None), days, bool(w and w.precision in ("year", "month"))

    # -------------------------------------------------------------- Procedure

    def _procedure(self, e: _Entry, run: _Run) -> None:
        res, where, probs, col = e.res, e.label, run.probs, run.col
        spec = self.mapping.procedures
        codings = _codings(_get(res, "code", dict, where, probs), f"{where}.code", probs)
        status = _get(res, "status", str, where, probs)
        period = _get(res, "performedPeriod", dict, where, probs)
        start = _when(period, "start", f"{where}.performedPeriod", probs)
        end = _when(period, "end", f"{where}.performedPeriod", probs)
        done = _when(res, "performedDateTime", where, probs)
        outcome = _codings(_get(res, "outcome", dict, where, probs), f"{where}.outcome", probs)
        if status == "entered-in-error":
            return
        rows = self._procedures.find(codings)
        desc = f"a Procedure {self._coded(codings)}"
        if not rows:
            col.not_used(desc)
            return
        if status in spec.ignored:
            return
        if status not in spec.counted:
            col.unknown(spec.field, f"{desc} has status {status}, not a treatment that was tried: it was not counted")
            return
        outcomes = {r.value for r in self._outcomes.find(outcome)}
        if len(outcomes) != 1:
            col.unknown(
                spec.field,
                f"{desc} has no outcome coded with the table's response codes (SNOMED CT "
                "procedure outcome or this project's): it was not counted",
            )
            return
        response = next(iter(outcomes))
        for row in rows:
            if row.value in spec.since_done:
                w = done or end or start
                if w is None:
                    col.unknown(
                        spec.field,
                        f"{desc} has no date (performedDateTime or performedPeriod): weeks since it "
                        "was done are unknown; it was not counted",
                    )
                    continue
                day = min(w.latest, run.ref_day)
                if w.precision in ("year", "month"):
                    col.unknown(
                        spec.field,
                        f"{desc} is dated to the {w.precision} only: the latest possible day is "
                        "taken (the shortest time since it was done)",
                    )
                weeks = _weeks(day, run.ref_day, spec.round)
            else:
                first = start.latest if start else None
                last = (
                    end.earliest
                    if end
                    else (run.ref_day if period is not None and status == "in-progress" and start is not None else None)
                )
                if first is None or last is None or last < first:
                    col.unknown(
                        spec.field,
                        f"{desc} has no complete performedPeriod (start and end dates), so no trial "
                        "length: it was not counted",
                    )
                    continue
                if (start and start.precision in ("year", "month")) or (end and end.precision in ("year", "month")):
                    col.unknown(spec.field, f"{desc} has partial dates: the shortest trial they allow is counted")
                weeks = _weeks(first, min(last, run.ref_day), spec.round)
            obj = {spec.code_key: row.value, spec.weeks_key: weeks, spec.outcome_key: response}
            col.add_object(spec.field, str(row.value), obj, where)

    # -------------------------------------------------------------- settling values

    def _settle(self, col: _Collector, patient: dict[str, Any], prov: dict[str, str]) -> None:
        m = self.mapping
        for fld, items in col.items.items():
            ordered = [items[k] for k in sorted(items)]
            _set_path(patient, fld, [v for v, _ in ordered])
            for i, (_, where) in enumerate(ordered):
                prov[f"{fld}[{i}]"] = where
        for fld, by_key in col.objects.items():
            kept = []
            for key in sorted(by_key):
                found = by_key[key]
                if len(found) > 1:
                    col.unknown(
                        fld,
                        f"{str(key).replace('_', ' ')} is recorded {len(found)} times: give one Procedure "
                        "for the whole trial. It was not counted",
                    )
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
        col.unknown(
            fld,
            f"{len(cands)} resources give different values for {self._label(fld)} and the table cannot "
            "settle them: none was used",
        )
        return None


_NO_ANSWER = object()


def _key(value: Any) -> Any:
    return (type(value) is bool, value)


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# ------------------------------------------------------------------ triage


def _translate(exc: InputError, provenance: Mapping[str, str]) -> InputError:
    """The patient model's problems, re-labelled with the FHIR element each value came from."""
    out = []
    for p in exc.problems:
        best = ""
        for key in provenance:
            if (p.field == key or p.field.startswith(key + ".") or p.field.startswith(key + "[")) and len(key) > len(
                best
            ):
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
    name = ruleset_module_name(module)
    if name not in _mappers:
        _mappers[name] = FhirMapper(load_mapping(name))
    return _mappers[name]


def triage_bundle(
    triager: Any,
    data: Any,
    as_of: date | None = None,
    mapper: FhirMapper | None = None,
    names: list[str] | None = None,
    strict: bool = False,
) -> Result:
    """Triage the patient of a FHIR R4 Bundle (parsed JSON) with the same `Triager.triage` as JSON input.

    `strict`: validate the whole Bundle with fhir.resources first (see `FhirMapper.map`).
    """
    mapper = mapper or default_mapper()
    return triage_mapped(triager, mapper.map(data, as_of=as_of, names=names, strict=strict))


def triage_mapped(triager: Any, mapped: Mapped) -> Result:
    """Triage the patient a Bundle was mapped to, with the mapping's unknowns; input errors name the
    Bundle's elements the values came from."""
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
#: The resource type each prefetch key searches.
PREFETCH_TYPES = {
    "patient": "Patient",
    "conditions": "Condition",
    "observations": "Observation",
    "medicationStatements": "MedicationStatement",
    "medicationRequests": "MedicationRequest",
    "procedures": "Procedure",
}


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
    Its timestamp is the latest timestamp or meta.lastUpdated of the prefetched Bundles. A failed
    search (`is_failed_search`: an OperationOutcome instead of the result, or a searchset of only
    or of erroneous outcomes) is kept as a searchset Bundle entry whose `self` link names the
    resource type searched, so that the mapper reports what it leaves unknown instead of "none".
    """
    entries: list[dict[str, Any]] = []
    names: list[str] = []
    seen: set[tuple[str, str]] = set()
    stamps: list[str] = []
    for key in PREFETCH_KEYS:
        item = prefetch.get(key)
        if not isinstance(item, dict):
            raise InputError(
                [
                    FieldProblem(
                        f"prefetch.{key}",
                        "must be a FHIR resource or Bundle (a JSON object)",
                        "a FHIR resource or searchset Bundle",
                    )
                ]
            )
        if is_failed_search(item):
            outcomes = (
                [item]
                if item.get("resourceType") == "OperationOutcome"
                else [
                    e["resource"]
                    for e in item.get("entry", [])
                    if isinstance(e, dict)
                    and isinstance(e.get("resource"), dict)
                    and e["resource"].get("resourceType") == "OperationOutcome"
                ]
            )
            entries.append(
                {
                    "resource": {
                        "resourceType": "Bundle",
                        "type": "searchset",
                        "link": [{"relation": "self", "url": PREFETCH_TYPES[key]}],
                        "entry": [{"resource": o, "search": {"mode": "outcome"}} for o in outcomes],
                    }
                }
            )
            names.append(f"prefetch.{key}")
            if item.get("resourceType") == "OperationOutcome":
                continue
        if item.get("resourceType") == "Bundle":
            for stamp in (
                item.get("timestamp"),
                (item.get("meta") or {}).get("lastUpdated") if isinstance(item.get("meta"), dict) else None,
            ):
                if isinstance(stamp, str):
                    stamps.append(stamp)
            raw = item.get("entry") or []
            if not isinstance(raw, list):
                raise InputError([FieldProblem(f"prefetch.{key}.entry", "must be an array", "an array of entries")])
            for i, e in enumerate(raw):
                if not isinstance(e, dict):
                    raise InputError(
                        [FieldProblem(f"prefetch.{key}.entry[{i}]", "must be a JSON object", "a Bundle entry")]
                    )
                search = e.get("search")
                res = e.get("resource")
                if (isinstance(search, dict) and search.get("mode") == "outcome") or (
                    isinstance(res, dict) and res.get("resourceType") == "OperationOutcome"
                ):
                    continue  # a search outcome: judged by is_failed_search above
                if (
                    isinstance(res, dict)
                    and isinstance(res.get("id"), str)
                    and isinstance(res.get("resourceType"), str)
                ):
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
