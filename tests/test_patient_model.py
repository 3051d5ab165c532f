"""The strict patient model: what is accepted and what is rejected, with field paths."""

from __future__ import annotations

import pytest

from engine import InputError, default_triager


def base(**kw):
    p = {"id": "x", "age": 50, "pain": {"duration_weeks": 10}}
    p.update(kw)
    return p


def problems(data):
    with pytest.raises(InputError) as exc:
        default_triager().triage(data)
    return {p.field: p for p in exc.value.problems}


def test_a_minimal_patient_is_accepted_and_its_gaps_are_listed_as_unknown():
    r = default_triager().triage(base())
    assert {u.fact for u in r.unknowns} >= {"bmi", "dn4"}


def test_booleans_are_not_numbers():
    assert "age" in problems(base(age=True))


def test_floats_are_not_integers_for_age():
    assert "age" in problems(base(age=50.5))


def test_infinity_is_rejected():
    assert "weight_kg" in problems(base(weight_kg=float("inf"), height_cm=170))


def test_a_treatment_listed_twice_is_rejected():
    p = base(
        prior_treatments=[
            {"treatment": "insoles", "weeks": 6, "response": "none"},
            {"treatment": "insoles", "weeks": 2, "response": "partial"},
        ]
    )
    assert "prior_treatments" in problems(p)


def test_a_code_listed_twice_is_rejected():
    assert "red_flags" in problems(base(red_flags=["acute_trauma", "acute_trauma"]))


def test_pregnancy_with_male_sex_is_rejected_as_inconsistent():
    assert "(document)" in problems(base(sex="male", pregnant=True))


def test_pain_longer_than_the_patient_has_lived_is_rejected():
    assert "(document)" in problems(base(age=1, pain={"duration_weeks": 500}))


def test_the_json_schema_is_published():
    schema = default_triager().patient_model.model_json_schema()
    assert schema["additionalProperties"] is False
    assert "duration_weeks" in schema["$defs"]["Pain"]["properties"]


def test_error_messages_never_echo_values():
    with pytest.raises(InputError) as exc:
        default_triager().triage(base(id="Jane Q Patient 1961-04-02", age="Jane Q Patient 1961-04-02"))
    assert "Jane" not in str(exc.value)


def test_a_value_json_does_not_allow_is_named_by_its_field() -> None:
    """NaN in pain.severity says pain.severity, not (document): the parser's finds name the field too."""
    from engine.kernel.inputs import parse_json

    with pytest.raises(InputError) as exc:
        parse_json(b'{"id": "x", "age": 40, "pain": {"duration_weeks": 3, "severity": NaN}}')
    assert [p.field for p in exc.value.problems] == ["pain.severity"]
    with pytest.raises(InputError) as exc:
        parse_json(
            b'{"id": "x", "age": 40, "medications": ["a", {"name": "b", "name": "c"}], "pain": {"duration_weeks": -Infinity}}'
        )
    assert [p.field for p in exc.value.problems] == ["medications[1].name", "pain.duration_weeks"]
