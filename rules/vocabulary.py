"""The code lists of the forefoot pain rule set (CONTRACT.md), one place for all of them."""

from typing import Literal, get_args

Sex = Literal["female", "male", "other", "unknown"]
Site = Literal["forefoot"]
Side = Literal["left", "right", "both"]
Response = Literal["none", "partial", "resolved", "worsened", "not_tolerated"]

DN4Item = Literal[
    "burning",
    "painful_cold",
    "electric_shocks",
    "tingling",
    "pins_and_needles",
    "numbness",
    "itching",
    "hypoesthesia_to_touch",
    "hypoesthesia_to_pinprick",
    "brush_allodynia",
]
DN4_ITEMS: tuple[str, ...] = get_args(DN4Item)
#: The three examination items of the DN4 (the other seven are the interview).
DN4_EXAM_ITEMS = ("hypoesthesia_to_touch", "hypoesthesia_to_pinprick", "brush_allodynia")

FIRST_LINE = (
    "footwear_modification",
    "metatarsal_pad",
    "insoles",
    "calf_stretching",
    "activity_modification",
    "weight_management",
    "callus_debridement",
)
ADJUNCT = ("low_dose_naltrexone",)
INTERVENTIONAL = ("pulsed_radiofrequency",)
SURGICAL = ("gastrocnemius_recession", "plantar_plate_repair", "tendon_transfer")
ESCALATIONS = ADJUNCT + INTERVENTIONAL + SURGICAL

TreatmentCode = Literal[
    "footwear_modification",
    "metatarsal_pad",
    "insoles",
    "calf_stretching",
    "activity_modification",
    "weight_management",
    "callus_debridement",
    "low_dose_naltrexone",
    "pulsed_radiofrequency",
    "gastrocnemius_recession",
    "plantar_plate_repair",
    "tendon_transfer",
]

ExamFinding = Literal[
    "plantar_callus",
    "gastrocnemius_tightness",
    "plantar_plate_instability",
    "flexible_toe_deformity",
    "rigid_toe_deformity",
    "interdigital_neuroma_signs",
    "hallux_valgus",
    "pes_cavus",
    "metatarsal_head_tenderness",
]

Comorbidity = Literal[
    "rheumatoid_arthritis",
    "diabetes",
    "peripheral_neuropathy",
    "fibromyalgia",
    "acute_hepatitis",
    "liver_failure",
    "hepatic_impairment",
    "opioid_use_disorder",
    "long_term_opioid_use",
    "chronic_kidney_disease",
    "peripheral_arterial_disease",
    "gout",
    "osteoarthritis",
]

RedFlag = Literal[
    "suspected_stress_fracture",
    "suspected_infection",
    "suspected_charcot",
    "critical_ischemia",
    "suspected_tumor",
    "acute_trauma",
    "foot_ulcer",
]

MedicationStatus = Literal["active", "stopped"]

#: Parts of the record a source could not retrieve (a failed FHIR search): their empty lists are
#: unknown, never "none".
RecordSection = Literal[
    "medications",
    "comorbidities",
    "red_flags",
    "prior_treatments",
    "exam_findings",
    "pain.neuropathic_features",
]

#: One-off procedures: for these, a prior treatment's `weeks` is the time since it was done.
PROCEDURES = INTERVENTIONAL + SURGICAL
