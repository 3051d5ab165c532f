"""Hypothesis strategies for valid patients (CONTRACT.md input), and the project's hypothesis profiles.

Every code of every list is reachable; numbers are drawn from the pathway's boundaries (trial 6,
persistent 12, recalcitrant 24 weeks and the values just below them, DN4 3/4/5, BMI around 25) as
well as from ordinary ranges; lists run from empty to full. Medications are drawn from the
test oracle (tests/data/drugs_oracle.toml, kept apart from the engine's vocabulary) in random letter
case, alone and in combination products; structured medications (stopped N days ago) as well.

Profiles: `ci` (the default: a fixed seed, a small budget) and `long` (many more examples, a fresh
seed each run), selected with the environment variable HYPOTHESIS_PROFILE:

    HYPOTHESIS_PROFILE=long python -m pytest -q tests/test_properties.py tests/test_fuzz.py
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, get_args

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from rules import vocabulary as V

# ------------------------------------------------------------------ profiles

settings.register_profile(
    "ci",
    derandomize=True,  # a fixed seed: CI is reproducible
    database=None,  # nothing written into the working tree
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],  # no slow 'explain'
)
settings.register_profile(
    "long",
    derandomize=False,
    database=None,
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ------------------------------------------------------------------ vocabulary

ROOT = Path(__file__).resolve().parents[1]
DRUGS = tomllib.loads((ROOT / "tests" / "data" / "drugs_oracle.toml").read_text(encoding="utf-8"))

SEXES = get_args(V.Sex)
SIDES = get_args(V.Side)
RESPONSES = get_args(V.Response)
DN4_ITEMS = get_args(V.DN4Item)
TREATMENTS = get_args(V.TreatmentCode)
EXAM_FINDINGS = get_args(V.ExamFinding)
COMORBIDITIES = get_args(V.Comorbidity)
RED_FLAGS = get_args(V.RedFlag)

OPIOIDS: tuple[str, ...] = tuple(DRUGS["opioid_agonist"]["names"] + DRUGS["opioid_partial_agonist"]["names"])
ANTAGONISTS: tuple[str, ...] = tuple(DRUGS["opioid_antagonist"]["names"])
NON_OPIOIDS: tuple[str, ...] = tuple(DRUGS["non_opioid"]["names"])
#: Names in no list: the engine must call them unrecognised, never assume they are not opioids.
UNLISTED = ("zz-herbal-tea", "Vitamin Q", "fictitol 10 mg", "compound X cream", "Étoposidé", "草药")

#: The pathway's week boundaries and the values just below them.
WEEK_BOUNDARIES = (0, 5.9, 6, 11.9, 12, 23.9, 24)
OPIOID_CONDITIONS = ("opioid_use_disorder", "long_term_opioid_use")
#: naltrexone needs this many opioid-free days (rules/parameters.toml opioid_free_days)
OPIOID_FREE_DAYS = 10
LIVER_STOPS = ("acute_hepatitis", "liver_failure")


def _opioid_pattern(name: str) -> re.Pattern[str]:
    # An independent oracle (not rules.facts): the name as a whole word of the lower-cased text,
    # any run of other characters standing for a space inside multi-word names. A name is not
    # glued to letters ("xtramadol"), nor a number in it to more digits ("tylenol 30").
    body = r"[^a-z0-9]+".join(re.escape(w) for w in name.split())
    before = r"(?<![0-9])" if name[0].isdigit() else r"(?<![a-z])"
    after = r"(?![0-9])" if name[-1].isdigit() else r"(?![a-z])"
    return re.compile(before + body + after)


_OPIOID_PATTERNS = tuple(_opioid_pattern(n) for n in OPIOIDS)


def names_opioid(medication: str) -> bool:
    """True when the free-text medication contains a name from the opioid lists of the oracle."""
    text = medication.lower()
    return any(p.search(text) for p in _OPIOID_PATTERNS)


def _current(m: str | dict[str, Any]) -> str | None:
    """The name of a medication that counts now: a string, or one stopped under the opioid-free days."""
    if isinstance(m, str):
        return m
    if m.get("status") == "stopped" and m.get("stopped_days_ago", 0) >= OPIOID_FREE_DAYS:
        return None
    return m.get("name")


def opioid_exposed(patient: dict[str, Any]) -> bool:
    """The test's own view of opioid exposure: an opioid medication (taken now or stopped under the
    opioid-free days), opioid use disorder or long-term opioid use."""
    names = [n for n in map(_current, patient.get("medications", [])) if n]
    return any(names_opioid(n) for n in names) or bool(set(OPIOID_CONDITIONS) & set(patient.get("comorbidities", [])))


_HOLD_PATTERNS = tuple(_opioid_pattern(n) for n in (*ANTAGONISTS, *UNLISTED))


def holds_ldn(medication: str | dict[str, Any]) -> bool:
    """A medication that holds LDN back without being an opioid: an antagonist or a drug for
    opioid-induced constipation (possible opioid use), naltrexone, or a name no list knows."""
    name = _current(medication)
    if not name:
        return False
    text = name.lower()
    return name in UNLISTED or any(p.search(text) for p in _HOLD_PATTERNS)


def liver_stop(patient: dict[str, Any]) -> bool:
    return bool(set(LIVER_STOPS) & set(patient.get("comorbidities", [])))


# ------------------------------------------------------------------ pieces


def random_case(text: str) -> st.SearchStrategy[str]:
    """`text` with each letter independently upper or lower case."""
    return st.lists(st.booleans(), min_size=len(text), max_size=len(text)).map(
        lambda ups: "".join(c.upper() if u else c.lower() for c, u in zip(text, ups, strict=False))
    )


SEPARATORS = ("/", " / ", " + ", "-", " with ", " and ", ", ")
STRENGTHS = ("", " 5 mg", " 50mg", " 10/325", " ER", " SR 20 mg", " patch 5 mcg/h", " (PRN)")

opioid_names = st.sampled_from(sorted(OPIOIDS))
other_names = st.sampled_from(NON_OPIOIDS + ANTAGONISTS)


@st.composite
def opioid_medication(draw) -> str:
    """An opioid as a clinic might type it: random case, maybe a strength, maybe combined."""
    name = draw(random_case(draw(opioid_names)))
    if draw(st.booleans()):
        other = draw(random_case(draw(other_names)))
        sep = draw(st.sampled_from(SEPARATORS))
        name = f"{name}{sep}{other}" if draw(st.booleans()) else f"{other}{sep}{name}"
    return name + draw(st.sampled_from(STRENGTHS))


non_opioid_medication = st.one_of(
    other_names.flatmap(random_case).flatmap(lambda n: st.sampled_from(STRENGTHS).map(lambda s: n + s)),
    st.sampled_from(UNLISTED),
)


@st.composite
def stopped_medication(draw) -> dict[str, Any]:
    """A medication recorded as stopped, with the days since (around the 10 opioid-free days)."""
    name = draw(st.one_of(opioid_medication(), non_opioid_medication))
    days = draw(st.one_of(st.sampled_from((0, 2, 9, 9.9, 10, 11, 30)), st.integers(0, 400)))
    return {"name": name, "status": "stopped", "stopped_days_ago": days}


medication = st.one_of(opioid_medication(), non_opioid_medication, stopped_medication())


def weeks(upper: float = 520) -> st.SearchStrategy[float]:
    return st.one_of(
        st.sampled_from(WEEK_BOUNDARIES),
        st.floats(min_value=0, max_value=upper, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 1)),
        st.integers(min_value=0, max_value=int(upper)),
    )


def codes(values: tuple[str, ...], max_size: int | None = None) -> st.SearchStrategy[list[str]]:
    """A list of distinct codes: empty, some, or every code."""
    return st.one_of(
        st.lists(st.sampled_from(values), unique=True, max_size=max_size or len(values)),
        st.just(list(values)[: max_size or len(values)]),
    )


@st.composite
def dn4_features(draw) -> list[str]:
    """DN4 items, the cutoff neighbourhood (3, 4, 5 items) drawn as often as any other count."""
    n = draw(st.one_of(st.sampled_from((0, 3, 4, 5, 10)), st.integers(0, 10)))
    return draw(st.permutations(DN4_ITEMS))[:n]


@st.composite
def prior_treatments(draw, treatments: tuple[str, ...] = TREATMENTS) -> list[dict[str, Any]]:
    chosen = draw(codes(treatments))
    return [{"treatment": t, "weeks": draw(weeks(260)), "response": draw(st.sampled_from(RESPONSES))} for t in chosen]


@st.composite
def body(draw) -> dict[str, Any]:
    """Weight and height: absent, one of them, ordinary, or a BMI just around 25."""
    kind = draw(st.sampled_from(("none", "weight_only", "height_only", "ordinary", "bmi_25")))
    if kind == "none":
        return {}
    height = draw(st.floats(min_value=120, max_value=210).map(lambda x: round(x, 1)))
    if kind == "height_only":
        return {"height_cm": height}
    if kind == "bmi_25":
        bmi = draw(st.sampled_from((24.9, 24.94, 24.95, 24.96, 25.0, 25.04, 25.05, 25.1)))
        weight = round(bmi * (height / 100) ** 2, 2)
    else:
        weight = draw(st.floats(min_value=30, max_value=250).map(lambda x: round(x, 1)))
    return {"weight_kg": weight} if kind == "weight_only" else {"weight_kg": weight, "height_cm": height}


patient_ids = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


# ------------------------------------------------------------------ patients


@st.composite
def patients(
    draw,
    *,
    medications: st.SearchStrategy[list[Any]] | None = None,
    red_flags: st.SearchStrategy[list[str]] | None = None,
    comorbidities: st.SearchStrategy[list[str]] | None = None,
) -> dict[str, Any]:
    """Any valid patient, as the JSON dict a clinic would send."""
    age = draw(st.one_of(st.sampled_from((0, 17, 18, 120)), st.integers(0, 120)))
    sex = draw(st.sampled_from(SEXES))
    duration = draw(weeks(520))
    duration = min(duration, (age + 1) * 52)  # a pain cannot outlast the patient
    pain: dict[str, Any] = {
        "site": "forefoot",
        "duration_weeks": duration,
        "neuropathic_features": draw(dn4_features()),
    }
    if draw(st.booleans()):
        pain["side"] = draw(st.sampled_from(SIDES))
    if draw(st.booleans()):
        pain["severity"] = draw(st.integers(0, 10))
    assessed = draw(st.sampled_from((None, True, False)))
    if assessed is not None:
        pain["dn4_assessed"] = assessed
    p: dict[str, Any] = {
        "id": draw(patient_ids),
        "age": age,
        "sex": sex,
        **draw(body()),
        "pain": pain,
        "prior_treatments": draw(prior_treatments()),
        "exam_findings": draw(codes(EXAM_FINDINGS)),
        "comorbidities": draw(comorbidities if comorbidities is not None else codes(COMORBIDITIES)),
        "medications": draw(medications if medications is not None else st.lists(medication, max_size=8)),
        "red_flags": draw(red_flags if red_flags is not None else codes(RED_FLAGS)),
    }
    for field in ("pregnant", "breastfeeding"):
        value = draw(st.sampled_from((None, True, False)))
        if value is not None and not (field == "pregnant" and value and sex == "male"):
            p[field] = value
    return p


@st.composite
def ldn_candidates(draw, medications: st.SearchStrategy[list[str]]) -> dict[str, Any]:
    """A patient on the LDN path: persistent pain (≥ 12 weeks after a failed adequate first-line
    trial), a DN4 of 4 or more, no red flag, LDN never tried; comorbidities without opioid use
    disorder or liver failure, so whether LDN is offered turns on the medications."""
    p = draw(
        patients(
            medications=medications,
            red_flags=st.just([]),
            comorbidities=codes(tuple(c for c in COMORBIDITIES if c not in OPIOID_CONDITIONS + LIVER_STOPS)),
        )
    )
    p["age"] = max(p["age"], 18)
    p["pain"]["duration_weeks"] = draw(
        st.one_of(st.sampled_from((12, 23.9, 24)), st.floats(12, 520).map(lambda x: round(x, 1)))
    )
    p["pain"]["neuropathic_features"] = draw(st.permutations(DN4_ITEMS))[: draw(st.integers(4, 10))]
    first_line = tuple(t for t in TREATMENTS if t in V.FIRST_LINE)
    trial = {
        "treatment": draw(st.sampled_from(first_line)),
        "weeks": draw(st.sampled_from((6, 8, 12, 30))),
        "response": draw(st.sampled_from(("none", "partial", "worsened"))),
    }
    p["prior_treatments"] = [
        t for t in p["prior_treatments"] if t["treatment"] not in (trial["treatment"], "low_dose_naltrexone")
    ] + [trial]
    return p


def full_patient() -> dict[str, Any]:
    """Every list full: every code once, and many medications."""
    return {
        "id": "full",
        "age": 60,
        "sex": "female",
        "weight_kg": 80,
        "height_cm": 170,
        "pain": {
            "site": "forefoot",
            "side": "both",
            "duration_weeks": 52,
            "severity": 8,
            "neuropathic_features": list(DN4_ITEMS),
            "dn4_assessed": True,
        },
        "prior_treatments": [{"treatment": t, "weeks": 24, "response": "none"} for t in TREATMENTS],
        "exam_findings": list(EXAM_FINDINGS),
        "comorbidities": list(COMORBIDITIES),
        "medications": list(NON_OPIOIDS[:25]) + list(OPIOIDS[:24]),
        "red_flags": list(RED_FLAGS),
        "pregnant": False,
        "breastfeeding": False,
    }


def empty_patient() -> dict[str, Any]:
    """Only what is required; every list empty."""
    return {"id": "empty", "age": 40, "pain": {"duration_weeks": 0}}


def any_patient() -> st.SearchStrategy[dict[str, Any]]:
    """Any valid patient, with the LDN path (which a random patient rarely reaches: persistent,
    neuropathic, no red flag, no opioid) drawn about half the time."""
    return st.one_of(
        patients(),
        ldn_candidates(st.lists(non_opioid_medication, max_size=6)),
        ldn_candidates(st.lists(medication, max_size=6)),
    )


some_red_flags = st.lists(st.sampled_from(RED_FLAGS), unique=True, min_size=1)


def flagged_patient() -> st.SearchStrategy[dict[str, Any]]:
    """A valid patient with at least one red flag, including patients otherwise on the LDN,
    interventional or surgical path."""
    return st.one_of(
        patients(red_flags=some_red_flags),
        st.tuples(any_patient(), some_red_flags).map(lambda pf: {**pf[0], "red_flags": pf[1]}),
    )
