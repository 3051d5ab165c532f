"""The medication classifier (rules/medications.py) and its generated vocabulary.

Naltrexone is contraindicated with any opioid: these tests hold the classifier to "never miss an
opioid, never pass an unknown as not an opioid". The CDC value sets are read from the shared files
at test time (../shared/data/opioid-value-sets), not from a copied list.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rules import facts, medications
from rules.medications import (
    CLASS_PRIORITY,
    DRUG_CLASSES,
    MAX_NAME_CHARS,
    OPIOID_CLASSES,
    Classification,
    VocabularyError,
    classify,
    is_opioid_misuse_code,
    normalise_medication,
    opioid_misuse_codes,
)
from rules.tools import build_opioid_vocabulary as builder

ROOT = Path(__file__).resolve().parents[1]
VALUESETS = ROOT.parent / "shared" / "data" / "opioid-value-sets"
VOCABULARY = ROOT / "rules" / "data" / "opioid_vocabulary.json"
TOP300 = ROOT / "tests" / "data" / "top300_drugs.txt"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

pytestmark = pytest.mark.skipif(
    not VALUESETS.is_dir(), reason="../shared/data/opioid-value-sets is not beside the repository"
)


def _valueset_files() -> list[Path]:
    return sorted(VALUESETS.glob("*.json")) if VALUESETS.is_dir() else []


def _concepts(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["expansion"]["contains"] if c["system"] == RXNORM]


MEDICATION_FILES = [p for p in _valueset_files() if _concepts(p)]


def _expected(path: Path, display: str) -> set[str]:
    """The classes a concept of this value set may have, decided from the file and the display text
    alone (independently of the vocabulary): naloxone on its own is the antagonist; a product with
    buprenorphine (or a mixed agonist-antagonist) is a partial agonist; methadone is an agonist."""
    text = display.lower()
    partial = any(w in text for w in ("buprenorphine", "pentazocine", "butorphanol", "meptazinol"))
    if path.stem == "naloxone-medications":
        return {"opioid_partial_agonist"} if partial else {"opioid_antagonist"}
    if path.stem == "buprenorphine-medications":
        return {"opioid_partial_agonist"}
    if path.stem == "methadone-medications":
        return {"opioid_agonist"}
    if partial and not any(w in text for w in ("morphine", "codeine", "oxycodone", "fentanyl", "tramadol")):
        return {"opioid_partial_agonist"}
    return {"opioid_agonist"}


# ------------------------------------------------------------------ every code of every value set


@pytest.mark.parametrize("path", MEDICATION_FILES, ids=lambda p: p.stem)
def test_every_rxnorm_code_classifies_by_code_alone(path: Path) -> None:
    """Every RxNorm code of every medication value set, sent without a name, gets its opioid or
    antagonist class, and the match names the code and the value set."""
    wrong = []
    for c in _concepts(path):
        r = classify(None, c["code"])
        if (
            r.drug_class not in _expected(path, c["display"])
            or f"RxNorm {c['code']}" not in r.matched
            or path.stem not in r.source
        ):
            wrong.append((c["code"], c["display"], r))
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("path", MEDICATION_FILES, ids=lambda p: p.stem)
def test_every_rxnorm_display_classifies_by_name_alone(path: Path) -> None:
    """Every display of every medication value set, as a name with no code, gets the same class as
    its code: the names in the displays are all known."""
    wrong = []
    for c in _concepts(path):
        by_name = classify(c["display"])
        if (
            by_name.drug_class not in _expected(path, c["display"])
            or by_name.drug_class != classify(None, c["code"]).drug_class
        ):
            wrong.append((c["code"], c["display"], by_name))
    assert not wrong, wrong[:5]


def test_value_sets_have_the_expected_size() -> None:
    """The shared files are the release the README describes (guards against reading an empty dir)."""
    codes = {c["code"] for p in MEDICATION_FILES for c in _concepts(p)}
    assert len(MEDICATION_FILES) == 8
    assert len(codes) == 762


def _brand(raw: str) -> str:
    raw = re.sub(r"\s+Reformulated\s+\w+\s+\d{4}$", "", raw)
    return re.sub(r"\s+\d+(\.\d+)?\s*(MG|MCG)$", "", raw).strip()


def test_every_bracketed_brand_classifies_on_its_own() -> None:
    """Each US brand in square brackets, alone, gets the class of its products (the most dangerous
    when a brand covers several), including the cleaned ones: 'Endodan', 'Subsys', 'Statuss Green'."""
    expected: dict[str, set[str]] = {}
    for path in MEDICATION_FILES:
        for c in _concepts(path):
            for raw in re.findall(r"\[([^\[\]]+)\]", c["display"]):
                expected.setdefault(_brand(raw), set()).update(_expected(path, c["display"]))
    assert {"Endodan", "Subsys", "Statuss Green", "Narcan", "Suboxone"} <= set(expected)
    wrong = {}
    for brand, classes in expected.items():
        want = min(classes, key=CLASS_PRIORITY.index)
        r = classify(brand)
        if r.drug_class != want:
            wrong[brand] = (want, r)
    assert not wrong, wrong
    assert classify("Endodan").drug_class == "opioid_agonist"
    assert classify("Narcan").drug_class == "opioid_antagonist"
    assert classify("Suboxone").drug_class == "opioid_partial_agonist"


def test_rxnorm_code_decides_but_a_more_dangerous_name_wins() -> None:
    """A code in the vocabulary decides whatever the name says, except that a name naming a more
    dangerous class wins (a naloxone code sent with the name 'oxycodone')."""
    assert classify("atorvastatin", "835605").drug_class == "opioid_agonist"
    assert classify("Ultram 50 mg", "835605").matched[:1] == ("RxNorm 835605",)
    narcan = "1725064"
    assert classify("Narcan", narcan).drug_class == "opioid_antagonist"
    r = classify("oxycodone", narcan)
    assert r.drug_class == "opioid_agonist" and "RxNorm 1725064" in r.matched


def test_unknown_code_and_unknown_name_are_unrecognised() -> None:
    """A code outside the CDC sets proves nothing (they list opioids): alone it is unrecognised; an
    unknown name is unrecognised; a known non-opioid name with an unknown code is non-opioid."""
    assert classify(None, "12345").drug_class == "unrecognised"
    assert classify("zorbaxinol 10 mg").drug_class == "unrecognised"
    assert classify("zorbaxinol", "12345").drug_class == "unrecognised"
    assert classify("atorvastatin 20 mg", "617310").drug_class == "non_opioid"
    assert classify(None).drug_class == "unrecognised"
    assert classify("").drug_class == "unrecognised"
    assert classify("  /  ").drug_class == "unrecognised"


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "name",
    [
        "co-codamol",
        "Co-Codamol 30/500",
        "cocodamol 8/500mg",
        "co-dydramol",
        "co-proxamol",
        "co-codaprin",
        "MST Continus 10mg",
        "MST",
        "Zomorph",
        "OxyNorm",
        "OxyContin",
        "Longtec",
        "Shortec",
        "Tramacet",
        "Zydol",
        "Zamadol SR",
        "Solpadeine",
        "Solpadol",
        "Kapake",
        "Tylex",
        "Zapain",
        "Migraleve",
        "Nurofen Plus",
        "Syndol",
        "Paramol",
        "DF118",
        "DHC Continus",
        "Sevredol",
        "Oramorph",
        "Filnarine SR",
        "MXL",
        "Morphgesic SR",
        "Matrifen",
        "Durogesic DTrans",
        "Fencino",
        "Physeptone",
        "Palladone",
        "Codipar",
        "Targinact",
        "Tramal",
        "Valoron N",
        "Targin",
        "Jurnista",
        "Hydal",
        "Contalgin",
        "Dipidolor",
        "Palexia SR",
        "Lomotil",
        "co-phenotrope",
        "dihydrocodeine",
        "diamorphine",
        "dipipanone",
        "pethidine",
        "tilidine",
        "piritramide",
        "nicomorphine",
        "ketobemidone",
        "dextropropoxyphene",
        "levomethadone",
        "papaveretum",
        "Dafalgan Codéine",
        "Tylenol #3",
        "Tylenol #4",
        "tylenol-4",
        "Tylenol No. 3",
        "Tylenol with Codeine",
        "MS Contin 30mg",
        "APAP #3",
        "hydrocodone/APAP 5/325",
        "Vicodin",
        "Percocet 5/325",
        "morphine sulfate ER",
        "tramadol 50 mg",
    ],
)
def test_opioid_agonist_names(name: str) -> None:
    """Non-US brands, compound names, ingredients marketed outside the US, and names with digits are
    opioid agonists."""
    r = classify(name)
    assert r.drug_class == "opioid_agonist", r
    assert r.matched and r.source


@pytest.mark.parametrize(
    "name",
    [
        "buprenorphine/naloxone",
        "Suboxone 8/2",
        "Subutex",
        "Temgesic",
        "Transtec",
        "BuTrans",
        "Norspan",
        "Espranor",
        "Buvidal",
        "Butec",
        "kratom",
        "mitragynine",
        "7-hydroxymitragynine",
        "Talwin",
        "nalbuphine",
        "butorphanol",
    ],
)
def test_partial_agonist_names(name: str) -> None:
    """Buprenorphine in any form (alone, with naloxone, patches, depots), kratom and mixed
    agonist-antagonists are partial agonists: opioid exposure."""
    assert classify(name).drug_class == "opioid_partial_agonist"


def _toml(name: str) -> dict:
    return tomllib.loads((ROOT / "rules" / "data" / name).read_text(encoding="utf-8"))


def test_every_hand_listed_opioid_name_classifies_on_its_own() -> None:
    """Each name of opioid_names_extra.toml, alone and in capitals, gets its group's class (the
    generic 'naltrexone' has no dose, so dose unknown; withheld names are unrecognised)."""
    wrong = {}
    for group in _toml("opioid_names_extra.toml")["group"]:
        want = "naltrexone_dose_unknown" if group["class"] == "naltrexone" else group["class"]
        for name in group["names"]:
            for written in (name, name.upper()):
                got = classify(written).drug_class
                if got != want:
                    wrong[written] = (want, got)
    assert not wrong, wrong


def test_every_listed_non_opioid_classifies_as_non_opioid() -> None:
    """Each name of non_opioids.toml, alone, is non_opioid: no listed non-opioid collides with an
    opioid name or leaves a word unexplained."""
    wrong = {}
    for key, section in _toml("non_opioids.toml").items():
        for name in [*section["names"], *section["brands"]]:
            got = classify(name)
            if got.drug_class != "non_opioid":
                wrong[name] = (key, got.drug_class, got.source)
    assert not wrong, wrong


def test_combination_with_any_opioid_is_an_opioid() -> None:
    """The most dangerous class anywhere in the name wins: an opioid with a non-opioid, or with
    naloxone, is an opioid."""
    assert classify("oxycodone/naloxone").drug_class == "opioid_agonist"
    assert classify("Targinact 10mg/5mg").drug_class == "opioid_agonist"
    assert classify("buprenorphine 8 mg / naloxone 2 mg").drug_class == "opioid_partial_agonist"
    assert classify("paracetamol 500mg + codeine 30mg").drug_class == "opioid_agonist"
    assert classify("Fioricet with Codeine").drug_class == "opioid_agonist"
    assert classify("Fioricet").drug_class == "non_opioid"
    assert classify("morphine / naltrexone ER (Embeda)").drug_class == "opioid_agonist"


def test_opioid_inside_a_longer_word_after_a_chemical_prefix() -> None:
    """benzhydrocodone, ethylmorphine, acetyldihydrocodeine and made-up prefix derivatives are read
    as the opioid they contain; apomorphine is a known non-opioid and morphine does not match in it."""
    assert classify("benzhydrocodone/APAP").drug_class == "opioid_agonist"
    assert classify("benzhydrocodone and acetaminophen 6.12/325").drug_class == "opioid_agonist"
    assert classify("ethylmorphine").drug_class == "opioid_agonist"
    r = classify("desmethyltramadol")  # not listed anywhere: found by prefix
    assert r.drug_class == "opioid_agonist" and r.matched == ("tramadol",) and "prefix" in r.source
    assert classify("norhydrocodone").drug_class == "opioid_agonist"
    assert classify("apomorphine").drug_class == "non_opioid"
    assert classify("Apomorphine 2 mg subcutaneous injection").drug_class == "non_opioid"
    assert classify("APO-go pen").drug_class == "non_opioid"
    assert "morphine" not in classify("apomorphine").matched
    assert classify("xyzmorphine").drug_class == "unrecognised"  # 'xyz' is not a declared prefix


def test_rescue_antagonist_and_constipation_drugs() -> None:
    """Naloxone or nalmefene alone is the antagonist class (it suggests opioid use); drugs for
    opioid-induced constipation are their own class."""
    for name in (
        "naloxone kit",
        "Naloxone 4 mg nasal spray",
        "Narcan",
        "Nyxoid",
        "Prenoxad",
        "Kloxxado",
        "Zimhi",
        "nalmefene",
        "Opvee",
        "Selincro",
    ):
        assert classify(name).drug_class == "opioid_antagonist", name
    for name in (
        "naloxegol",
        "Moventig",
        "Movantik",
        "methylnaltrexone",
        "Relistor",
        "naldemedine",
        "Symproic",
        "Rizmoic",
        "alvimopan",
        "Entereg",
    ):
        assert classify(name).drug_class == "opioid_induced_constipation", name


def test_samidorphan_is_an_antagonist() -> None:
    """Olanzapine/samidorphan (Lybalvi) contains an opioid antagonist."""
    assert classify("Lybalvi 10/10").drug_class == "opioid_antagonist"
    assert classify("olanzapine/samidorphan").drug_class == "opioid_antagonist"
    assert classify("olanzapine").drug_class == "non_opioid"


def test_naltrexone_full_dose() -> None:
    """50 mg tablets, the depot (Vivitrol), Revia and the bupropion combination are full dose."""
    r = classify("naltrexone 50 mg")
    assert (r.drug_class, r.dose_mg) == ("naltrexone_full_dose", 50.0)
    for name in (
        "Revia",
        "Vivitrol",
        "Depade",
        "Adepend",
        "Contrave",
        "Mysimba",
        "naltrexone/bupropion",
        "naltrexone hydrochloride 50 MG Oral Tablet",
        "naltrexone 380 mg IM monthly",
        "bupropion 90 mg / naltrexone 8 mg",
    ):
        assert classify(name).drug_class == "naltrexone_full_dose", name


def test_naltrexone_low_dose() -> None:
    """LDN, 'low dose naltrexone' and any naltrexone dose of at most 5 mg are low dose; the dose read
    is reported, the largest of a titration range."""
    r = classify("LDN 4.5 mg")
    assert (r.drug_class, r.dose_mg) == ("naltrexone_low_dose", 4.5)
    assert classify("low dose naltrexone").drug_class == "naltrexone_low_dose"
    assert classify("Low-dose naltrexone (LDN)").drug_class == "naltrexone_low_dose"
    assert classify("naltrexone 4.5mg at night").dose_mg == 4.5
    assert classify("naltrexone 1.5-4.5 mg").dose_mg == 4.5
    assert classify("naltrexone 3 mg").drug_class == "naltrexone_low_dose"
    assert classify("naltrexone 5 mg").drug_class == "naltrexone_low_dose"
    assert classify("4.5mg naltrexone").drug_class == "naltrexone_low_dose"
    assert classify("naltrexone 4,5 mg").dose_mg == 4.5
    assert classify("naltrexone 500 mcg").dose_mg == 0.5
    assert classify("naltrexone 6 mg").drug_class == "naltrexone_full_dose"
    assert classify("LDN 50 mg").drug_class == "naltrexone_full_dose"  # the dose wins over the label
    assert classify("naltrexone 4.5 mg + bupropion 150 mg").drug_class == "naltrexone_low_dose"  # a stated dose decides


def test_naltrexone_without_a_dose_is_dose_unknown() -> None:
    """'naltrexone' with no dose cannot be told low from full; another drug's dose is not read as
    naltrexone's."""
    r = classify("naltrexone")
    assert (r.drug_class, r.dose_mg) == ("naltrexone_dose_unknown", None)
    assert classify("Naltrexone Hydrochloride").drug_class == "naltrexone_dose_unknown"
    assert classify("LDN, ibuprofen 400 mg").drug_class == "naltrexone_low_dose"


@pytest.mark.parametrize(
    "name",
    [
        "Lipitor",
        "Zocor",
        "Crestor",
        "Norvasc",
        "Synthroid",
        "Eliquis",
        "Xarelto",
        "Januvia",
        "Jardiance",
        "Ozempic",
        "Lasix",
        "Zoloft",
        "Lexapro",
        "Prozac",
        "Neurontin",
        "Lyrica",
        "Advil",
        "Motrin",
        "Aleve",
        "Tylenol",
        "Panadol",
        "Calpol",
        "Nurofen",
        "Ventolin",
        "Symbicort",
        "Advair",
        "Flovent",
        "Singulair",
        "Plaquenil",
        "Humira",
        "metformin 500 mg ER tablet twice daily",
        "Atorvastatin 40mg nocte",
        "gabapentin 300mg TDS",
        "salbutamol inhaler 100 micrograms 2 puffs PRN",
        "fluticasone/salmeterol",
        "budesonide/formoterol",
        "loperamide 2 mg",
        "Imodium",
        "dextromethorphan",
        "Feminax Ultra",
        "Potassium chloride 20 mEq",
        "Vitamin D3 1000 IU daily",
        "Tylenol 500 mg",
        "apomorphine",
    ],
)
def test_non_opioid_names(name: str) -> None:
    """Common US and UK non-opioids, with doses and directions, are non_opioid."""
    r = classify(name)
    assert r.drug_class == "non_opioid", r
    assert r.matched


def test_an_unknown_word_beside_a_known_non_opioid_is_unrecognised() -> None:
    """A name is non-opioid only when every word is explained: an unknown word next to paracetamol
    may be an opioid brand, so the name is unrecognised and names the word."""
    r = classify("paracetamol / Zapainex")
    assert r.drug_class == "unrecognised" and "zapainex" in r.source
    assert classify("ibuprofen plus").drug_class == "unrecognised"
    assert classify("Feminax").drug_class == "unrecognised"  # once contained codeine: not listed
    assert classify("metformin #60").drug_class == "unrecognised"  # a '#N' product number


def test_a_number_then_a_unit_is_a_dose_not_a_product_number() -> None:
    """'Tylenol 3' is Tylenol with Codeine No. 3, but 'acetaminophen 3 g' is a dose of paracetamol."""
    assert classify("acetaminophen 3 g daily").drug_class == "non_opioid"
    assert classify("Tylenol 3").drug_class == "opioid_agonist"
    assert classify("Tylenol #3 300/30 mg").drug_class == "opioid_agonist"


def test_lofexidine_is_withheld() -> None:
    """Lofexidine is not an opioid but is taken during opioid withdrawal: it is never non-opioid."""
    r = classify("lofexidine 0.18 mg")
    assert r.drug_class == "unrecognised" and "withdrawal" in r.source


def test_long_rxnorm_style_display_classifies() -> None:
    """A 600-character RxNorm-style pack display classifies; names up to MAX_NAME_CHARS are read."""
    items = [
        f"{n} (buprenorphine {b} MG / naloxone {x} MG Sublingual Film [Suboxone])"
        for n, b, x in [(7, 2, 0.5), (7, 4, 1), (7, 8, 2), (14, 12, 3)] * 2
    ] + ["28 (buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet)"]
    display = "{" + " / ".join(items) + " } Pack [Suboxone Titration Pack]"
    assert 600 <= len(display) <= 700, len(display)
    assert classify(display).drug_class == "opioid_partial_agonist"
    atorva = "{" + " / ".join(["30 (atorvastatin 20 MG Oral Tablet [Lipitor])"] * 13) + " } Pack"
    assert len(atorva) > 600
    assert classify(atorva).drug_class == "non_opioid"
    hidden = "atorvastatin 20 MG Oral Tablet, " * 32 + "oxycodone 5 MG Oral Tablet"
    assert len(hidden) > 1000
    assert classify(hidden).drug_class == "opioid_agonist"
    assert classify("x" * (MAX_NAME_CHARS + 1)).drug_class == "unrecognised"


def test_normalise_medication_keeps_the_old_behaviour() -> None:
    """normalise_medication is rules.facts.normalise_medication: lower case, letters and digits
    apart, punctuation one space."""
    for name in ("Oxycodone/APAP 5-325mg", "Tylenol #3", "  MS-Contin  ", "co-codamol 30/500", "LDN4.5mg"):
        assert normalise_medication(name) == facts.normalise_medication(name)
    assert normalise_medication("Oxycodone/APAP 5-325mg") == "oxycodone apap 5 325 mg"


def test_normalise_medication_is_cached_and_long_names_bypass_the_cache() -> None:
    """Cached like classify (a clinic's lists repeat the same strings); a name past the cache's
    bound is normalised afresh, and both roads give the same text."""
    from rules import medications

    medications._normalised.cache_clear()
    assert normalise_medication("Zomorph 10 mg") == normalise_medication("Zomorph 10 mg") == "zomorph 10 mg"
    assert medications._normalised.cache_info().hits == 1
    long = "Morphine sulfate 10 MG Oral Tablet, " * 60
    assert len(long) > medications._CACHED_CHARS
    before = medications._normalised.cache_info().currsize
    assert normalise_medication(long) == medications._normalise_medication(long)
    assert normalise_medication(long).startswith("morphine sulfate 10 mg oral tablet morphine")
    assert medications._normalised.cache_info().currsize == before


def test_classification_shape() -> None:
    """The API: a frozen Classification with a class from DRUG_CLASSES, a tuple of matches, one
    source line, and dose_mg only for naltrexone."""
    r = classify("Zomorph 10 mg")
    assert isinstance(r, Classification) and r.drug_class in DRUG_CLASSES
    assert r.matched == ("Zomorph",) and r.source.startswith("Zomorph: ") and "\n" not in r.source
    assert r.dose_mg is None
    with pytest.raises(AttributeError):
        r.drug_class = "non_opioid"  # type: ignore[misc]
    assert set(CLASS_PRIORITY) == set(DRUG_CLASSES)
    assert CLASS_PRIORITY[:2] == OPIOID_CLASSES


@pytest.mark.parametrize("bad_name, message", [("Zomorph", "Zomorph"), ("benzmorphine", "morphine")])
def test_vocabulary_refuses_to_load_a_contradiction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_name: str, message: str
) -> None:
    """A non-opioid name that is also an opioid name, or that reads as an opioid after a chemical
    prefix, stops the vocabulary from loading: it can never hide an opioid."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "rules" / "data", data)
    path = data / "non_opioids.toml"
    path.write_text(
        path.read_text(encoding="utf-8") + f'\n[bad]\ntitle = "x"\nsource = "y"\nnames = ["{bad_name}"]\nbrands = []\n',
        encoding="utf-8",
    )
    monkeypatch.setattr(medications, "DATA", data)
    with pytest.raises(VocabularyError, match=message):
        medications._vocabulary.__wrapped__()


def test_opioid_misuse_codes() -> None:
    """The SNOMED CT and ICD-10-CM opioid misuse and dependence codes are in the vocabulary."""
    path = VALUESETS / "opioid-misuse-disorders.json"
    concepts = json.loads(path.read_text(encoding="utf-8"))["expansion"]["contains"]
    assert {(c["system"], c["code"]) for c in concepts} == opioid_misuse_codes()
    assert is_opioid_misuse_code("http://snomed.info/sct", "5602001")
    assert not is_opioid_misuse_code("http://snomed.info/sct", "38341003")


# ------------------------------------------------------------------ the top 300

OPIOIDS_IN_TOP300 = {
    "Hydrocodone Bitartrate; Acetaminophen": "opioid_agonist",
    "Tramadol Hydrochloride": "opioid_agonist",
    "Oxycodone Hydrochloride": "opioid_agonist",
    "Oxycodone Hydrochloride; Acetaminophen": "opioid_agonist",
    "Acetaminophen; Codeine Phosphate": "opioid_agonist",
    "Morphine Sulfate": "opioid_agonist",
    "Methadone Hydrochloride": "opioid_agonist",
    "Hydromorphone Hydrochloride": "opioid_agonist",
    "Fentanyl": "opioid_agonist",
    "Buprenorphine Hydrochloride; Naloxone Hydrochloride": "opioid_partial_agonist",
    "Buprenorphine": "opioid_partial_agonist",
    "Naloxone Hydrochloride": "opioid_antagonist",
    "Naltrexone Hydrochloride": "naltrexone_dose_unknown",
}


def test_top300_coverage() -> None:
    """Every opioid-related drug of the 300 most prescribed gets its class; every other entry is
    recognised as non_opioid (none unrecognised)."""
    names = [
        line.strip()
        for line in TOP300.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert len(names) == 300 and len(set(names)) == 300
    assert set(OPIOIDS_IN_TOP300) <= set(names)
    wrong = {}
    for name in names:
        want = OPIOIDS_IN_TOP300.get(name, "non_opioid")
        got = classify(name)
        if got.drug_class != want:
            wrong[name] = (want, got.drug_class, got.source)
    assert not wrong, wrong


def test_coverage_script_reports_the_figures() -> None:
    """`python -m rules.tools.vocabulary_coverage FILE` prints the recognised share, the opioids found
    and the unrecognised names."""
    out = subprocess.run(
        [sys.executable, "-m", "rules.tools.vocabulary_coverage", str(TOP300)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "recognised: 300/300 (100.0%)" in out
    assert "Tramadol Hydrochloride: opioid_agonist" in out
    assert "unrecognised: 0" in out


# ------------------------------------------------------------------ the generator


def test_generator_reproduces_the_committed_vocabulary() -> None:
    """Running the generator on the shared value sets gives the committed JSON byte for byte, and
    its header records each file's sha256 and concept count."""
    text = builder.build(VALUESETS)
    assert text.encode("utf-8") == VOCABULARY.read_bytes(), "run: python -m rules.tools.build_opioid_vocabulary"
    header = json.loads(text)["header"]
    for source in header["value_sets"]:
        path = VALUESETS / source["file"]
        assert source["sha256"] == builder.sha256_of(path)
        assert source["concepts"] == len(json.loads(path.read_text(encoding="utf-8"))["expansion"]["contains"])
    assert header["counts"]["rxnorm_codes"] == 762


def test_generator_command_line_check(tmp_path: Path) -> None:
    """The command line writes the same bytes to --output and `--check` passes on the committed file."""
    out = tmp_path / "vocab.json"
    run = subprocess.run(
        [sys.executable, "-m", "rules.tools.build_opioid_vocabulary", str(VALUESETS), "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert out.read_bytes() == VOCABULARY.read_bytes()
    check = subprocess.run(
        [sys.executable, "-m", "rules.tools.build_opioid_vocabulary", str(VALUESETS), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_generator_fails_on_an_unclassified_ingredient(tmp_path: Path) -> None:
    """A value set whose display holds an ingredient the table does not classify stops the build with
    a non-zero exit naming the ingredient and the code; nothing is written."""
    copy = tmp_path / "valuesets"
    shutil.copytree(VALUESETS, copy)
    path = copy / "methadone-medications.json"
    vs = json.loads(path.read_text(encoding="utf-8"))
    concept = vs["expansion"]["contains"][0]
    concept["display"] = "methadone hydrochloride 10 MG / zorbaxinol maleate 5 MG Oral Tablet"
    path.write_text(json.dumps(vs), encoding="utf-8")
    out = tmp_path / "vocab.json"
    run = subprocess.run(
        [sys.executable, "-m", "rules.tools.build_opioid_vocabulary", str(copy), "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode != 0
    assert "zorbaxinol" in run.stderr and concept["code"] in run.stderr
    assert not out.exists()


def test_generator_fails_on_an_unparsable_display(tmp_path: Path) -> None:
    """A display that is not RxNorm grammar (no strength) stops the build naming the code."""
    copy = tmp_path / "valuesets"
    shutil.copytree(VALUESETS, copy)
    path = copy / "naloxone-medications.json"
    vs = json.loads(path.read_text(encoding="utf-8"))
    vs["expansion"]["contains"][0]["display"] = "naloxone nasal spray"
    path.write_text(json.dumps(vs), encoding="utf-8")
    with pytest.raises(builder.VocabularyBuildError, match=vs["expansion"]["contains"][0]["code"]):
        builder.build(copy)


def test_display_grammar() -> None:
    """The parser strips qualifiers and salts and cleans brands."""
    salts = frozenset(builder.load_table()["salts"]["words"])
    comps, brands = builder.parse_display(
        "Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet [Oxycontin]", salts
    )
    assert comps == [("oxycodone", 10.0, "MG")] and brands == ["Oxycontin"]
    comps, brands = builder.parse_display(
        "aspirin 325 MG / oxycodone hydrochloride 4.84 MG Oral Tablet [Endodan Reformulated May 2009]", salts
    )
    assert [c[0] for c in comps] == ["aspirin", "oxycodone"] and brands == ["Endodan"]
    comps, brands = builder.parse_display(
        "{2 (fentanyl 0.6 MG/ACTUAT Mucosal Spray [Subsys]) } Pack [Subsys 1200 MCG]", salts
    )
    assert comps == [("fentanyl", 0.6, "MG/ACTUAT")] and brands == ["Subsys", "Subsys"]
    comps, _ = builder.parse_display("0.4 ML naloxone hydrochloride 5 MG/ML Auto-Injector", salts)
    assert comps == [("naloxone", 5.0, "MG/ML")]
    with pytest.raises(ValueError):
        builder.parse_display("naloxone nasal spray", salts)


def test_vocabulary_classes() -> None:
    """The generated vocabulary: naloxone-only products are antagonists, buprenorphine/naloxone
    partial agonists, morphine/naltrexone (Embeda) an agonist; brands take their products' class."""
    vocab = json.loads(VOCABULARY.read_text(encoding="utf-8"))
    assert vocab["rxnorm"]["1725064"]["drug_class"] == "opioid_antagonist"  # Narcan
    assert vocab["rxnorm"]["1010603"]["drug_class"] == "opioid_partial_agonist"  # Suboxone
    assert vocab["rxnorm"]["863845"]["drug_class"] == "opioid_agonist"  # morphine / naltrexone
    assert vocab["rxnorm"]["863845"]["ingredients"] == ["morphine", "naltrexone"]
    assert vocab["brands"]["Kloxxado"]["drug_class"] == "opioid_antagonist"
    assert vocab["brands"]["Zubsolv"]["drug_class"] == "opioid_partial_agonist"
    assert len(vocab["disorders"]) == 212
