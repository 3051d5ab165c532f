"""Issue 10, done when: no opioid-exposed patient of any form is offered LDN. Every RxNorm code of the
CDC opioid value sets (read from ../shared/data at test time, not a copied list), sent as a code only
and as its display only, withholds LDN from a patient who would otherwise be offered it, and the
reason names the drug or the code. The same holds through FHIR (a MedicationStatement coded only
by RxNorm, or naming only its display)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import default_triager
from tests.conftest import load_example

ROOT = Path(__file__).resolve().parents[1]
VALUESETS = ROOT.parent / "shared" / "data" / "opioid-value-sets"
MEDICATION_SETS = [p for p in sorted(VALUESETS.glob("*.json")) if p.name != "opioid-misuse-disorders.json"]
LDN = "low_dose_naltrexone"

pytestmark = pytest.mark.skipif(not VALUESETS.is_dir(), reason="../shared/data is not beside the repository")


def concepts() -> list[tuple[str, str]]:
    """(code, display) of every RxNorm concept of every medication value set, once each."""
    out: dict[str, str] = {}
    for path in MEDICATION_SETS:
        for c in json.loads(path.read_text(encoding="utf-8"))["expansion"]["contains"]:
            out[c["code"]] = c["display"]
    return sorted(out.items())


def candidate() -> dict:
    """The shared example offered LDN (persistent neuropathic pain, no opioid), with no medication."""
    p = load_example("neuropathic-persistent")
    p["medications"] = []
    assert default_triager().triage(p).recommended(LDN) is not None
    return p


@pytest.mark.parametrize("how", ["code only", "display only"])
def test_every_value_set_concept_withholds_ldn_and_the_reason_names_it(how: str) -> None:
    """762 concepts x 2 forms: LDN is never recommended; an opioid is contraindicated naming the code or
    the drug; a naloxone-only product (a rescue kit) holds LDN back until opioid use is checked."""
    triager = default_triager()
    base = candidate()
    failures = []
    codes = concepts()
    assert len(codes) > 700
    for code, display in codes:
        med = {"rxnorm": code} if how == "code only" else {"name": display}
        r = triager.triage({**base, "medications": [med]})
        withheld = r.withheld(LDN)
        if r.recommended(LDN) is not None or not withheld:
            failures.append((code, "offered"))
            continue
        named = code if how == "code only" else display[:60]
        if not any(named in n.reason for n in withheld):
            failures.append((code, [n.reason for n in withheld]))
    assert not failures, failures[:5]


def test_a_stopped_opioid_from_the_value_sets_withholds_ldn_for_10_days() -> None:
    """A value-set opioid stopped 9 days ago still contraindicates LDN; stopped 10 days ago it does not."""
    triager = default_triager()
    base = candidate()
    recent = triager.triage({**base, "medications": [{"rxnorm": "835605", "status": "stopped", "stopped_days_ago": 9}]})
    assert any(n.kind == "contraindicated" and "not before 1 day from now" in n.reason for n in recent.withheld(LDN))
    clear = triager.triage({**base, "medications": [{"rxnorm": "835605", "status": "stopped", "stopped_days_ago": 10}]})
    assert clear.recommended(LDN) is not None
