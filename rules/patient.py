"""The patient as the forefoot pain rule set receives it (CONTRACT.md input), strictly validated."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.api import StrictModel

from .vocabulary import (
    DN4_EXAM_ITEMS,
    Comorbidity,
    DN4Item,
    ExamFinding,
    MedicationStatus,
    RecordSection,
    RedFlag,
    Response,
    Sex,
    Side,
    Site,
    TreatmentCode,
)

#: 100 years: longer durations are data-entry errors.
MAX_WEEKS = 5200.0
Weeks = Annotated[float, Field(ge=0, le=MAX_WEEKS, allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: RxNorm display names run past 200 characters; a name is data, not an attack (the document
#: size limit bounds the input as a whole).
MAX_MEDICATION_NAME = 1000
MedicationName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_MEDICATION_NAME, pattern=r"^[^\x00-\x1f\x7f]+$")
]
RxNormCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")]


def _unique(values: list, what: str) -> list:
    seen = set()
    for v in values:
        if v in seen:
            raise PydanticCustomError("duplicate_code", "{what} lists a code twice; give each once", {"what": what})
        seen.add(v)
    return values


class Pain(StrictModel):
    """The forefoot pain itself."""

    site: Site = Field(default="forefoot", description="where it hurts")
    side: Side | None = Field(default=None, description="left, right or both")
    duration_weeks: Weeks = Field(description="how long the pain has lasted, in weeks")
    severity: Annotated[int, Field(ge=0, le=10)] | None = Field(default=None, description="0-10 numeric rating scale")
    neuropathic_features: Annotated[list[DN4Item], Field(max_length=10)] = Field(
        default_factory=list, description="DN4 items present (7 interview, 3 examination items)"
    )
    dn4_assessed: bool | None = Field(
        default=None,
        description="true when the DN4 was assessed (an empty feature list then means 0/10, not 'not asked')",
    )

    dn4_examined: bool | None = Field(
        default=None,
        description="true when the DN4's three examination items were done too; false: the interview "
        "only (scored out of 7 against the interview cut-off)",
    )

    @field_validator("neuropathic_features")
    @classmethod
    def _dn4_unique(cls, v: list) -> list:
        return _unique(v, "neuropathic_features")

    @model_validator(mode="after")
    def _interview_only(self) -> Pain:
        if self.dn4_examined is False and set(DN4_EXAM_ITEMS) & set(self.neuropathic_features):
            raise PydanticCustomError(
                "dn4_examined_conflict",
                "pain.dn4_examined is false (interview only) but examination items are listed; "
                "set dn4_examined to true or remove the examination items",
            )
        return self


class PriorTreatment(StrictModel):
    """One intervention already tried, how long, and how it went."""

    treatment: TreatmentCode = Field(description="intervention code")
    weeks: Weeks = Field(
        description="how long it was tried, in weeks; for a one-off procedure (pulsed radiofrequency, surgery): "
        "weeks since it was done"
    )
    response: Response = Field(description="how the pain responded")


def _string_or_object(schema: dict) -> None:
    """The published schema says what the input accepts: a name as a string, or the object."""
    schema["items"] = {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_MEDICATION_NAME}, schema["items"]]}


class Medication(StrictModel):
    """One medication as an EHR or e-prescribing system writes it: a name, an RxNorm code, or both."""

    name: MedicationName | None = Field(default=None, description="the drug as written (any length up to 1,000)")
    rxnorm: RxNormCode | None = Field(default=None, description="RxNorm concept id (digits)")
    status: MedicationStatus = Field(default="active", description="active (taken now) or stopped")
    stopped_days_ago: Annotated[float, Field(ge=0, le=36500, allow_inf_nan=False)] | None = Field(
        default=None, description="days since it was stopped (required when status is stopped)"
    )

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: object) -> object:
        """A string is a current medication as written."""
        if isinstance(v, str):
            return {"name": v}
        if not isinstance(v, (dict, Medication)):
            raise PydanticCustomError(
                "medication_type",
                "a medication is a string (its name as written) or an object with name, rxnorm, status "
                "and stopped_days_ago",
            )
        return v

    @model_validator(mode="after")
    def _named_and_dated(self) -> Medication:
        if self.name is None and self.rxnorm is None:
            raise PydanticCustomError("medication_unnamed", "a medication needs a name, an rxnorm code, or both")
        if self.status == "stopped" and self.stopped_days_ago is None:
            raise PydanticCustomError(
                "stopped_without_days",
                "status is stopped but stopped_days_ago is missing; give the days since it was stopped",
            )
        if self.status == "active" and self.stopped_days_ago is not None:
            raise PydanticCustomError(
                "active_with_stop", "stopped_days_ago is given but status is active; set status to stopped"
            )
        return self


class Patient(StrictModel):
    """One patient with forefoot pain (metatarsalgia)."""

    id: Text = Field(description="the caller's identifier; echoed back as patient_id, never logged")
    age: Annotated[int, Field(ge=0, le=120)] = Field(description="age in years")
    sex: Sex = Field(default="unknown", description="female, male, other or unknown")
    weight_kg: Annotated[float, Field(ge=0.5, le=700, allow_inf_nan=False)] | None = Field(
        default=None, description="body weight in kg, 0.5-700 (BMI is derived from weight and height)"
    )
    height_cm: Annotated[float, Field(ge=20, le=300, allow_inf_nan=False)] | None = Field(
        default=None, description="height in cm, 20-300"
    )
    pain: Pain = Field(description="the pain")
    prior_treatments: Annotated[list[PriorTreatment], Field(max_length=30)] = Field(
        default_factory=list, description="treatments tried, one entry each"
    )
    exam_findings: Annotated[list[ExamFinding], Field(max_length=30)] = Field(
        default_factory=list, description="examination findings"
    )
    comorbidities: Annotated[list[Comorbidity], Field(max_length=30)] = Field(
        default_factory=list, description="relevant comorbidities"
    )
    medications: Annotated[list[Medication], Field(max_length=60)] = Field(
        default_factory=list,
        json_schema_extra=_string_or_object,
        description="medications: a string is a current medication as written; an object gives name, rxnorm, "
        "status and stopped_days_ago",
    )
    red_flags: Annotated[list[RedFlag], Field(max_length=7)] = Field(
        default_factory=list, description="red flags found"
    )
    pregnant: bool | None = Field(default=None, description="pregnant (omit when not known)")
    breastfeeding: bool | None = Field(default=None, description="breastfeeding (omit when not known)")
    not_retrieved: Annotated[list[RecordSection], Field(max_length=6)] = Field(
        default_factory=list,
        description="parts of the record the source could not retrieve (e.g. a failed FHIR search): what they "
        "would hold is unknown, not none",
    )

    @field_validator("exam_findings", "comorbidities", "red_flags", "not_retrieved")
    @classmethod
    def _codes_unique(cls, v: list, info) -> list:
        return _unique(v, info.field_name)

    @field_validator("prior_treatments")
    @classmethod
    def _one_entry_per_treatment(cls, v: list[PriorTreatment]) -> list[PriorTreatment]:
        seen = set()
        for t in v:
            if t.treatment in seen:
                raise PydanticCustomError(
                    "duplicate_treatment",
                    "a treatment is listed twice; give one entry per treatment with its total weeks and overall response",
                )
            seen.add(t.treatment)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Patient:
        if self.pregnant and self.sex == "male":
            raise PydanticCustomError("inconsistent_pregnancy", "pregnant is true but sex is male; check both fields")
        if self.pain.duration_weeks > (self.age + 1) * 52.18:
            raise PydanticCustomError(
                "duration_exceeds_age",
                "pain.duration_weeks is longer than the patient has been alive; check age and duration",
            )
        return self
