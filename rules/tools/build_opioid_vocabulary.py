"""Regenerate rules/data/opioid_vocabulary.json from the CDC opioid value sets.

    python -m rules.tools.build_opioid_vocabulary [VALUESET_DIR] [--output PATH] [--check]

VALUESET_DIR defaults to ../shared/data/opioid-value-sets beside the repository. Every `*.json`
FHIR ValueSet there is read: RxNorm concepts (medications) become `rxnorm` entries, SNOMED CT and
ICD-10-CM concepts (opioid misuse and dependence) are copied to `disorders`.

Each RxNorm display is parsed with the RxNorm display grammar:

    [qualifiers] component { " / " component } dose-form [ "[" Brand "]" ]
    component = ingredient [salt ...] STRENGTH UNIT
    qualifiers = "24 HR", "Abuse-Deterrent", "Matrix Delivery", a quantity ("0.4 ML", "80 ACTUAT")
    pack       = "{" N "(" clinical drug ")" { " / " N "(" clinical drug ")" } "}" "Pack" [ "[" Brand "]" ]

Every ingredient must be classified in rules/data/ingredient_classes.toml. When a display holds an
ingredient that table does not classify (a new release added one), the script stops with a
non-zero exit status naming the ingredient and a code, so nothing unknown is passed silently.
A product's class is the most dangerous class of its ingredients (agonist > partial agonist >
full-dose naltrexone > antagonist > ...); naltrexone's own class depends on its strength.

The output is deterministic (sorted keys, no clock time): the same inputs give the same bytes, and
its header records each source file with its sha256 and concept count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

from rules.medications import CLASS_PRIORITY

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "rules" / "data"
DEFAULT_VALUESETS = REPO.parent / "shared" / "data" / "opioid-value-sets"
DEFAULT_OUTPUT = DATA / "opioid_vocabulary.json"
INGREDIENT_TABLE = DATA / "ingredient_classes.toml"

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
DISORDER_SYSTEMS = {"http://snomed.info/sct": "SNOMED CT", "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM"}

#: Product classes, most dangerous for naltrexone first (the classifier's order, without the two
#: classes only a name can have). An ingredient of class "naltrexone" makes a naltrexone_low_dose or
#: naltrexone_full_dose product depending on its strength.
PRODUCT_CLASS_ORDER = tuple(c for c in CLASS_PRIORITY if c not in ("naltrexone_dose_unknown", "unrecognised"))
INGREDIENT_CLASSES = frozenset(PRODUCT_CLASS_ORDER) - {"naltrexone_full_dose", "naltrexone_low_dose"} | {"naltrexone"}

# Leading qualifiers of an RxNorm clinical drug name: a quantity ("0.4 ML", "80 ACTUAT"), a
# duration ("12 HR"), or a named qualifier. Anything else stays in the ingredient name and so
# fails the ingredient lookup (loudly), rather than being skipped.
_NAMED_QUALIFIERS = ("Abuse-Deterrent", "Matrix Delivery")
_QUALIFIER = re.compile(
    r"^(?:(?:"
    + "|".join(re.escape(q) for q in _NAMED_QUALIFIERS)
    + r"|\d+(?:\.\d+)? (?:HR|ML|ACTUAT|DAY|L|MG|GM|CM2))\s+)*"
)
_BRAND = re.compile(r"^(?P<body>.*?)\s*\[(?P<brand>[^\[\]]+)\]$")
_PACK = re.compile(r"^\{(?P<inner>.*)\}\s*Pack$")
_PACK_ITEM = re.compile(r"\d+ \((?P<drug>[^()]*)\)")
_COMPONENT = re.compile(r"^(?P<name>.+?) (?P<dose>\d+(?:\.\d+)?) (?P<unit>[A-Z]+(?:/[A-Z]+)?)(?: (?P<form>.+))?$")
# Brand-name decorations RxNorm adds: "Endodan Reformulated May 2009", "Subsys 1200 MCG".
_BRAND_NOISE = (
    re.compile(r"\s+Reformulated\s+[A-Z][a-z]+\s+\d{4}$"),
    re.compile(r"\s+\d+(?:\.\d+)?\s*(?:MG|MCG|ML|UNT|%)(?:/[A-Z]+)?$"),
    re.compile(r"\s+Pack$"),
)


class VocabularyBuildError(Exception):
    """A value set that cannot be turned into the vocabulary (the message says which code and why)."""


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_table(path: Path = INGREDIENT_TABLE) -> dict[str, Any]:
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    for name, entry in table["ingredients"].items():
        if entry.get("class") not in INGREDIENT_CLASSES:
            raise VocabularyBuildError(
                f"{path.name}: ingredient {name!r} has class {entry.get('class')!r}; "
                f"expected one of {sorted(INGREDIENT_CLASSES)}"
            )
        if not entry.get("source"):
            raise VocabularyBuildError(f"{path.name}: ingredient {name!r} has no source")
    return table


def clean_brand(brand: str) -> str:
    """'Endodan Reformulated May 2009' -> 'Endodan'; 'Subsys 1200 MCG' -> 'Subsys'."""
    out = brand.strip()
    changed = True
    while changed:
        changed = False
        for pattern in _BRAND_NOISE:
            new = pattern.sub("", out)
            if new != out and new:
                out, changed = new, True
    return out


def ingredient_name(raw: str, salts: frozenset[str]) -> str:
    """'oxycodone hydrochloride' -> 'oxycodone'; 'morphine sulfate liposomal' -> 'morphine'."""
    words = raw.split()
    while len(words) > 1 and words[-1] in salts:
        words.pop()
    return " ".join(words)


def parse_display(display: str, salts: frozenset[str]) -> tuple[list[tuple[str, float, str]], list[str]]:
    """([(ingredient, strength, unit)], [brand]) of one RxNorm display; raises ValueError if it does not parse."""
    brands: list[str] = []
    text = display.strip()
    m = _BRAND.match(text)
    if m:
        text, brand = m.group("body"), m.group("brand")
        brands.append(clean_brand(brand))
    pack = _PACK.match(text)
    if pack:
        drugs = [d.group("drug") for d in _PACK_ITEM.finditer(pack.group("inner"))]
        if not drugs:
            raise ValueError("a pack with no parsable items")
        components: list[tuple[str, float, str]] = []
        for drug in drugs:
            c, b = parse_display(drug, salts)
            components += c
            brands += b
        return components, brands
    body = _QUALIFIER.sub("", text)
    parts = body.split(" / ")
    components = []
    for i, part in enumerate(parts):
        c = _COMPONENT.match(part)
        if not c:
            raise ValueError(f"component {part!r} is not 'ingredient STRENGTH UNIT'")
        if c.group("form") and i != len(parts) - 1:
            raise ValueError(f"component {part!r} has a dose form before the last component")
        if i == len(parts) - 1 and not c.group("form"):
            raise ValueError("no dose form after the last component")
        components.append((ingredient_name(c.group("name"), salts), float(c.group("dose")), c.group("unit")))
    return components, brands


def product_class(components: list[tuple[str, float, str]], table: dict[str, Any]) -> str:
    low_max = float(table["naltrexone"]["low_dose_max_mg"])
    classes = []
    for name, dose, unit in components:
        cls = table["ingredients"][name]["class"]
        if cls == "naltrexone":
            cls = "naltrexone_low_dose" if unit == "MG" and dose <= low_max else "naltrexone_full_dose"
        classes.append(cls)
    return min(classes, key=PRODUCT_CLASS_ORDER.index)


def build(valueset_dir: Path, table_path: Path = INGREDIENT_TABLE) -> str:
    """The vocabulary JSON text for the value sets in `valueset_dir` (raises VocabularyBuildError)."""
    table = load_table(table_path)
    salts = frozenset(table["salts"]["words"])
    files = sorted(valueset_dir.glob("*.json"))
    if not files:
        raise VocabularyBuildError(f"no *.json value sets in {valueset_dir}")
    sources = []
    rxnorm: dict[str, dict[str, Any]] = {}
    disorders: dict[tuple[str, str], dict[str, str]] = {}
    for path in files:
        vs = json.loads(path.read_text(encoding="utf-8"))
        if vs.get("resourceType") != "ValueSet" or "expansion" not in vs:
            raise VocabularyBuildError(f"{path.name}: not a FHIR ValueSet with an expansion")
        contains = vs["expansion"].get("contains", [])
        vs_id = vs.get("id") or path.stem
        systems = sorted({c["system"] for c in contains})
        sources.append(
            {
                "file": path.name,
                "sha256": sha256_of(path),
                "concepts": len(contains),
                "id": vs_id,
                "title": vs.get("title", ""),
                "date": vs.get("date", ""),
                "expansion_timestamp": vs["expansion"].get("timestamp", ""),
                "systems": systems,
            }
        )
        for c in contains:
            system, code, display = c["system"], str(c["code"]), c.get("display", "")
            if system == RXNORM:
                entry = rxnorm.setdefault(code, {"display": display, "value_sets": []})
                if entry["display"] != display:
                    raise VocabularyBuildError(
                        f"RxNorm {code}: display differs between value sets "
                        f"({entry['display']!r} vs {display!r} in {path.name})"
                    )
                entry["value_sets"].append(vs_id)
            elif system in DISORDER_SYSTEMS:
                disorders[(system, code)] = {
                    "system": system,
                    "system_name": DISORDER_SYSTEMS[system],
                    "code": code,
                    "display": display,
                    "value_set": vs_id,
                }
            else:
                raise VocabularyBuildError(f"{path.name}: code {code} has an unexpected system {system!r}")

    ingredients: dict[str, dict[str, Any]] = {}
    brands: dict[str, dict[str, Any]] = {}
    for code in sorted(rxnorm, key=int):
        entry = rxnorm[code]
        try:
            components, brand_names = parse_display(entry["display"], salts)
        except ValueError as exc:
            raise VocabularyBuildError(f"RxNorm {code}: cannot parse display {entry['display']!r}: {exc}") from None
        names = list(dict.fromkeys(name for name, _, _ in components))
        for name in names:
            if name not in table["ingredients"]:
                hint = (
                    ""
                    if name[:1].islower()
                    else (
                        " (it does not start in lower case: if RxNorm added a new leading qualifier, "
                        "add it to _NAMED_QUALIFIERS in this script)"
                    )
                )
                raise VocabularyBuildError(
                    f"unclassified ingredient {name!r} in RxNorm {code} ({entry['display']!r}): "
                    f"add it to {table_path.name} with its class and source{hint}"
                )
        cls = product_class(components, table)
        entry.update(
            ingredients=names,
            drug_class=cls,
            brands=sorted(set(brand_names)),
            value_sets=sorted(set(entry["value_sets"])),
        )
        for name in names:
            ing = ingredients.setdefault(
                name,
                {
                    "ingredient_class": table["ingredients"][name]["class"],
                    "source": table["ingredients"][name]["source"],
                    "codes": 0,
                },
            )
            ing["codes"] += 1
        for brand in set(brand_names):
            b = brands.setdefault(brand, {"classes": set(), "ingredients": set(), "codes": []})
            b["classes"].add(cls)
            b["ingredients"].update(names)
            b["codes"].append(code)

    brand_out = {}
    for brand, b in brands.items():
        brand_out[brand] = {
            "drug_class": min(b["classes"], key=PRODUCT_CLASS_ORDER.index),
            "ingredients": sorted(b["ingredients"]),
            "codes": sorted(b["codes"], key=int),
        }
    out = {
        "header": {
            "what": "Opioid vocabulary generated from the CDC opioid value sets (CC0): every RxNorm concept with "
            "its ingredients and class, the ingredients, the US brands, and the opioid misuse and "
            "dependence codes. Do not edit by hand: run python -m rules.tools.build_opioid_vocabulary.",
            "generator": "rules/tools/build_opioid_vocabulary.py",
            "value_sets": sources,
            "ingredient_table": {"file": "rules/data/" + table_path.name, "sha256": sha256_of(table_path)},
            "counts": {
                "rxnorm_codes": len(rxnorm),
                "ingredients": len(ingredients),
                "brands": len(brand_out),
                "disorder_codes": len(disorders),
                "rxnorm_codes_by_class": dict(Counter(e["drug_class"] for e in rxnorm.values())),
            },
            "class_order": list(PRODUCT_CLASS_ORDER),
        },
        "rxnorm": rxnorm,
        "ingredients": ingredients,
        "brands": brand_out,
        "disorders": [disorders[k] for k in sorted(disorders)],
    }
    return json.dumps(out, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rules.tools.build_opioid_vocabulary", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "valueset_dir",
        nargs="?",
        type=Path,
        default=DEFAULT_VALUESETS,
        help=f"directory of FHIR ValueSet JSON files (default: {DEFAULT_VALUESETS})",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the output file differs")
    args = parser.parse_args(argv)
    try:
        text = build(args.valueset_dir)
    except (VocabularyBuildError, OSError, KeyError, json.JSONDecodeError) as exc:
        print(f"build_opioid_vocabulary: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m rules.tools.build_opioid_vocabulary", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    counts = json.loads(text)["header"]["counts"]
    print(
        f"wrote {args.output}: {counts['rxnorm_codes']} RxNorm codes, {counts['ingredients']} ingredients, "
        f"{counts['brands']} brands, {counts['disorder_codes']} disorder codes"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
