"""Site configuration (issue 13): a clinic sets parameter values within declared bounds, each with a
reason and who set it; the digest and every result carry them; explain and `rules show` print the
site value beside the default; a bad site file exits 2 naming the parameter."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from engine import Triager
from engine.kernel.errors import SiteError
from engine.kernel.site import SITE_ENV, apply_site, load_site
from rules import RULESET

runner = CliRunner()

SITE = """[site]
name = "Example foot clinic"

[parameters.persistent_pain_weeks]
value = 10
reason = "local pathway: adjuncts reviewed from 10 weeks"
set_by = "Dr A. Example, clinical lead"
"""

#: 10 weeks of neuropathic pain after 8 weeks of a pad without benefit: persistent only from 10 weeks.
TEN_WEEKS = {
    "id": "site-10",
    "age": 54,
    "sex": "female",
    "pregnant": False,
    "pain": {"duration_weeks": 10, "neuropathic_features": ["burning", "tingling", "numbness", "itching"]},
    "prior_treatments": [{"treatment": "metatarsal_pad", "weeks": 8, "response": "none"}],
}


@pytest.fixture
def site_file(tmp_path: Path) -> Path:
    path = tmp_path / "clinic.toml"
    path.write_text(SITE, encoding="utf-8")
    return path


@pytest.fixture
def patient_file(tmp_path: Path) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(TEN_WEEKS), encoding="utf-8")
    return path


def test_a_site_persistent_threshold_of_10_weeks_changes_the_decision_for_a_10_week_patient(site_file: Path) -> None:
    """Default 12 weeks: LDN deferred; the site's 10 weeks: LDN may be considered."""
    default = Triager(site=None).triage(TEN_WEEKS) if not _env_site() else None
    assert default is not None and default.recommended("low_dose_naltrexone") is None
    site = Triager(site=site_file).triage(TEN_WEEKS)
    assert site.recommended("low_dose_naltrexone") is not None
    assert any("persistent pain: 10 weeks" in line for line in site.recommended("low_dose_naltrexone").rationale)


def _env_site() -> bool:
    import os

    return bool(os.environ.get(SITE_ENV))


def test_the_digest_and_the_result_carry_the_site_values(site_file: Path) -> None:
    """The site's digest differs from the rule files' own; the result names each value, its default,
    the reason and who set it."""
    result = Triager(site=site_file).triage(TEN_WEEKS)
    assert result.ruleset.digest != RULESET.digest
    assert result.ruleset.site is not None and result.ruleset.site.name == "Example foot clinic"
    value = result.ruleset.site.parameters["persistent_pain_weeks"]
    assert (value.value, value.default, value.set_by) == (10, 12, "Dr A. Example, clinical lead")
    assert "site" not in Triager(ruleset=RULESET).triage(TEN_WEEKS).model_dump(mode="json")["ruleset"]


def test_the_same_site_values_give_the_same_digest(site_file: Path, tmp_path: Path) -> None:
    """The digest depends on the values, not on the file's name or wording."""
    other = tmp_path / "other.toml"
    other.write_text(
        SITE.replace("Example foot clinic", "Another name").replace("local pathway", "why"), encoding="utf-8"
    )
    assert apply_site(RULESET, load_site(site_file)).digest == apply_site(RULESET, load_site(other)).digest


def test_the_environment_variable_sets_the_site_for_the_api(site_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$CDS_SITE: the API and the service read the site file when none is given."""
    monkeypatch.setenv(SITE_ENV, str(site_file))
    assert Triager().triage(TEN_WEEKS).recommended("low_dose_naltrexone") is not None


def test_the_cli_triage_takes_site(site_file: Path, patient_file: Path) -> None:
    res = runner.invoke(
        app, ["triage", str(patient_file), "--format", "json", "--no-changes", "--site", str(site_file)]
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["ruleset"]["site"]["parameters"]["persistent_pain_weeks"]["value"] == 10
    assert "low_dose_naltrexone" in [r["intervention"] for r in out["recommendations"]]


def test_explain_prints_the_site_value_beside_the_default(site_file: Path, patient_file: Path) -> None:
    res = runner.invoke(
        app, ["explain", str(patient_file), "-i", "low_dose_naltrexone", "--site", str(site_file), "-f", "json"]
    )
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    assert '"default": "12"' in text and '"value": "10"' in text and "local pathway" in text


def test_rules_show_prints_the_site_value_beside_the_default(site_file: Path) -> None:
    res = runner.invoke(app, ["rules", "show", "PERSISTENT", "--site", str(site_file), "-f", "json"])
    assert res.exit_code == 0, res.stderr
    param = next(p for p in json.loads(res.stdout)["parameters"] if p["name"] == "persistent_pain_weeks")
    assert param["value"] == "10" and param["site"]["default"] == "12"
    plain = runner.invoke(app, ["rules", "show", "PERSISTENT", "-f", "json"])
    assert "site" not in next(p for p in json.loads(plain.stdout)["parameters"] if p["name"] == "persistent_pain_weeks")


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda s: s.replace("value = 10", "value = 3"), "outside the allowed range 6-26"),
        (lambda s: s.replace("value = 10", 'value = "ten"'), "must be a number"),
        (lambda s: s.replace("persistent_pain_weeks]", "persistant_pain_weeks]"), "persistant_pain_weeks"),
        (lambda s: s.replace('set_by = "Dr A. Example, clinical lead"\n', ""), "set_by is missing"),
        (lambda s: s.replace('reason = "local pathway: adjuncts reviewed from 10 weeks"', 'reason = ""'), "reason"),
        (
            lambda s: s + '\n[parameters.dn4_items_total]\nvalue = 9\nreason = "x"\nset_by = "y"\n',
            "cannot be set by a site",
        ),
        (lambda s: s + "\n[extras]\nx = 1\n", "unknown table 'extras'"),
        (lambda s: "[parameters.persistent_pain_weeks\nvalue = 10", "not valid TOML"),
    ],
)
def test_a_bad_site_file_exits_2_naming_the_parameter(tmp_path: Path, patient_file: Path, change, expected) -> None:
    """Out of bounds, the wrong type, an unknown or unsettable parameter, no reason or author, bad
    TOML: exit 2 naming it, never a traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text(change(SITE), encoding="utf-8")
    res = runner.invoke(app, ["triage", str(patient_file), "--site", str(bad)])
    assert res.exit_code == 2, res.output
    assert expected in " ".join(res.stderr.split()), res.stderr
    assert "Traceback" not in res.stderr


def test_the_api_refuses_a_bad_site_with_a_site_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(SITE.replace("value = 10", "value = 60"), encoding="utf-8")
    with pytest.raises(SiteError, match="persistent_pain_weeks"):
        Triager(site=bad)


def test_every_settable_parameter_holds_its_own_default_within_its_bounds() -> None:
    """A parameter's own value lies within the bounds a site may choose from."""
    settable = [p for p in RULESET.parameters.values() if p.settable]
    assert len(settable) >= 10
    for p in settable:
        assert p.problem(p.value) is None, p.name


def test_a_review_date_older_than_a_year_is_a_warning() -> None:
    """`RuleSet.check` warns, naming the parameter, when its reviewed date is more than a year old."""
    later = max(p.reviewed for p in RULESET.parameters.values() if p.reviewed) + datetime.timedelta(days=400)
    findings = [f for f in RULESET.check(today=later) if f.check == "parameters" and f.level == "warning"]
    assert any("persistent_pain_weeks was last reviewed" in f.message for f in findings)
    assert not [f for f in RULESET.check() if "last reviewed" in f.message]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_batch_takes_site_in_this_process_and_in_its_workers(site_file: Path, tmp_path: Path, workers: str) -> None:
    """`batch --site`: every record is triaged with the site's values, whether in this process or in the workers."""
    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(json.dumps({**TEN_WEEKS, "id": f"p{i}"}) for i in range(6)) + "\n", encoding="utf-8")
    out = tmp_path / "out.ndjson"
    res = runner.invoke(app, ["batch", str(src), "--out", str(out), "--workers", workers, "--site", str(site_file)])
    assert res.exit_code == 0, res.stderr
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 6
    for r in lines:
        assert r["ruleset"]["site"]["parameters"]["persistent_pain_weeks"]["value"] == 10
        assert "low_dose_naltrexone" in [x["intervention"] for x in r["recommendations"]]
