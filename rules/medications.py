"""Medication classification for naltrexone safety: which medicines are opioids.

Naltrexone is contraindicated with ANY opioid (it blocks analgesia and precipitates withdrawal),
so missing an opioid is the worst failure here, and an unknown medicine never passes as "not an
opioid". `classify(name, rxnorm)` gives one of DRUG_CLASSES with what matched and where the match
comes from.

The vocabulary (rules/data/):
- opioid_vocabulary.json, generated from the CDC opioid value sets by
  `python -m rules.tools.build_opioid_vocabulary`: every RxNorm code with its class, the
  ingredients and the US brands;
- opioid_names_extra.toml: UK/EU/AU brands, British compound names, opioid ingredients marketed
  outside the US, antagonists, drugs for opioid-induced constipation, naltrexone;
- non_opioids.toml: known non-opioids by therapeutic class;
- medication_words.toml and the salts of ingredient_classes.toml: words that name no drug.

Rules:
1. An RxNorm code in the opioid vocabulary decides by itself; a name that says something more
   dangerous still wins. A code outside it proves nothing (the CDC sets list opioids).
2. Otherwise names decide. A name matches case-insensitively as whole words ("ms contin",
   "co codamol", "tylenol 3"); an opioid ingredient also matches inside a longer word when the rest
   of the word is declared chemical prefixes ("benzhydrocodone", "ethylmorphine"), never otherwise
   ("apomorphine" is a known non-opioid). The most dangerous class matched anywhere wins
   (CLASS_PRIORITY): a combination product with any opioid is an opioid.
3. Naltrexone is full dose, low dose or dose unknown from the brand or the dose written with it
   (at most `low_dose_max_mg`, 5 mg, is low dose).
4. A name is non_opioid only when every word of it is explained: recognised names, numbers, units,
   forms, routes, directions, salts. "paracetamol / Zapainex" is unrecognised, not non_opioid. A
   name matching nothing is unrecognised.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"

DRUG_CLASSES = (
    "opioid_agonist",
    "opioid_partial_agonist",
    "opioid_antagonist",  # antagonist = naloxone/nalmefene on their own
    "opioid_induced_constipation",
    "naltrexone_full_dose",
    "naltrexone_low_dose",
    "naltrexone_dose_unknown",
    "non_opioid",
    "unrecognised",
)
#: Most dangerous for naltrexone first: the class of a name is the first of these it matches.
#: An unrecognised word outranks only the classes that would let LDN go ahead.
CLASS_PRIORITY = (
    "opioid_agonist",
    "opioid_partial_agonist",
    "naltrexone_full_dose",
    "opioid_antagonist",
    "opioid_induced_constipation",
    "naltrexone_dose_unknown",
    "unrecognised",
    "naltrexone_low_dose",
    "non_opioid",
)
OPIOID_CLASSES = ("opioid_agonist", "opioid_partial_agonist")
NALTREXONE_CLASSES = ("naltrexone_full_dose", "naltrexone_low_dose", "naltrexone_dose_unknown")
#: Names longer than this are not read (unrecognised); RxNorm displays run to a few hundred.
MAX_NAME_CHARS = 10_000

#: Each class's place in CLASS_PRIORITY (0: most dangerous for naltrexone).
CLASS_RANK = {cls: i for i, cls in enumerate(CLASS_PRIORITY)}
#: A name ending in a number ("Tylenol 3") does not match when one of these follows the number:
#: "acetaminophen 3 g a day" is a dose, not Tylenol No. 3.
_UNITS_AFTER_NUMBER = frozenset(
    {
        "mg",
        "mgs",
        "milligram",
        "milligrams",
        "g",
        "gm",
        "gram",
        "grams",
        "mcg",
        "ug",
        "microgram",
        "micrograms",
        "ml",
        "mls",
        "kg",
        "l",
        "iu",
        "units",
        "unit",
    }
)
_NAME_CLASSES = frozenset(DRUG_CLASSES) | {"naltrexone"}  # "naltrexone": the dose decides


@dataclass(frozen=True)
class Classification:
    drug_class: str  # one of DRUG_CLASSES
    matched: tuple[
        str, ...
    ]  # what matched: ingredient/brand names as written in the vocabulary, and/or "RxNorm 835605"
    source: str  # one short line saying where the match comes from
    dose_mg: float | None = None  # for naltrexone: the dose read from the name, when stated


class VocabularyError(Exception):
    """The medication vocabulary files contradict themselves (raised when they are loaded)."""


def normalise_medication(name: str) -> str:
    """Lower case, every run of other characters one space, letters and digits kept apart:
    'Oxycodone/APAP 5-325mg' -> 'oxycodone apap 5 325 mg'; 'Tylenol #3' -> 'tylenol 3'.
    Cached like `classify` (a clinic's medication lists repeat the same few hundred strings)."""
    if len(name) > _CACHED_CHARS:
        return _normalise_medication(name)
    return _normalised(name)


_SPLIT_LETTERS_DIGITS = re.compile(r"(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _normalise_medication(name: str) -> str:
    text = _SPLIT_LETTERS_DIGITS.sub(" ", name.casefold())
    return " ".join(_NOT_ALNUM.sub(" ", text).split())


_normalised = lru_cache(maxsize=16384)(_normalise_medication)


def _fold(text: str) -> str:
    """Accents off ('Codéine' -> 'Codeine'), so that normalising does not split words."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _key(name: str) -> tuple[str, ...]:
    return tuple(normalise_medication(_fold(name)).split())


@dataclass(frozen=True)
class _Entry:
    name: str  # as written in the vocabulary
    drug_class: str  # a DRUG_CLASS, or "naltrexone"
    source: str  # "<name>: <source>"
    kind: str  # ingredient | brand | compound | abbreviation | withheld | non_opioid


class _Vocabulary:
    def __init__(self) -> None:
        self.phrases: dict[tuple[str, ...], _Entry] = {}
        self.origin: dict[tuple[str, ...], str] = {}
        self.filler: set[tuple[str, ...]] = set()
        self.rxnorm: dict[str, tuple[str, str]] = {}
        self.disorders: frozenset[tuple[str, str]] = frozenset()
        self.prefixes: tuple[str, ...] = ()
        self.stems: dict[str, _Entry] = {}
        self.low_dose_max_mg = 5.0

    # -------------------------------------------------------------- building
    def add(self, name: str, drug_class: str, source: str, kind: str, origin: str) -> None:
        if drug_class not in _NAME_CLASSES:
            raise VocabularyError(f"{origin}: {name!r} has unknown class {drug_class!r}")
        key = _key(name)
        if not key:
            raise VocabularyError(f"{origin}: empty name {name!r}")
        old = self.phrases.get(key)
        if old is not None:
            if old.drug_class != drug_class:
                raise VocabularyError(
                    f"{name!r} is {drug_class} in {origin} but {old.drug_class} ({old.name!r}) in {self.origin[key]}"
                )
            return  # the first source stays (the value sets are loaded first)
        self.phrases[key] = _Entry(name, drug_class, f"{name}: {source}", kind)
        self.origin[key] = origin

    def index(self) -> None:
        lengths: dict[str, set[int]] = {}
        for key in self.phrases:
            lengths.setdefault(key[0], set()).add(len(key))
        self.lengths = {t: tuple(sorted(ls, reverse=True)) for t, ls in lengths.items()}
        flengths: dict[str, set[int]] = {}
        for key in self.filler:
            flengths.setdefault(key[0], set()).add(len(key))
        self.filler_lengths = {t: tuple(sorted(ls, reverse=True)) for t, ls in flengths.items()}
        self.stems = {
            key[0]: e
            for key, e in self.phrases.items()
            if len(key) == 1 and e.kind == "ingredient" and e.drug_class in OPIOID_CLASSES and len(key[0]) >= 5
        }
        self._check()

    def _check(self) -> None:
        for key, e in self.phrases.items():
            if len(key) == 1 and e.drug_class not in OPIOID_CLASSES:
                hit = self.prefixed(key[0])
                if hit is not None:
                    raise VocabularyError(
                        f"{e.name!r} ({e.drug_class}, {self.origin[key]}) would read as "
                        f"{hit[0].name} after the prefix {hit[1]!r}: fix the names or the prefixes"
                    )
        for key in self.filler:
            e = self.phrases.get(key)
            if e is not None and e.drug_class != "non_opioid":
                raise VocabularyError(f"medication word {' '.join(key)!r} is also the {e.drug_class} name {e.name!r}")

    def prefixed(self, word: str) -> tuple[_Entry, str] | None:
        """(opioid ingredient, prefixes) when `word` is declared chemical prefixes + an opioid ingredient."""
        return _prefixed(self, word)


def _prefixed(v: _Vocabulary, word: str, depth: int = 0) -> tuple[_Entry, str] | None:
    if depth > 4:
        return None
    for p in v.prefixes:
        if word.startswith(p) and len(word) > len(p):
            rest = word[len(p) :]
            if rest in v.stems:
                return v.stems[rest], p
            deeper = _prefixed(v, rest, depth + 1)
            if deeper is not None:
                return deeper[0], p + "-" + deeper[1]
    return None


def _toml(name: str) -> dict[str, Any]:
    return tomllib.loads((DATA / name).read_text(encoding="utf-8"))


_KIND_LABEL = {
    "opioid_agonist": "opioid agonist",
    "opioid_partial_agonist": "opioid partial agonist",
    "opioid_antagonist": "opioid antagonist",
    "naltrexone": "naltrexone (dose decides)",
    "non_opioid": "non-opioid co-ingredient",
}


@lru_cache(maxsize=1)
def _vocabulary() -> _Vocabulary:
    v = _Vocabulary()
    generated = json.loads((DATA / "opioid_vocabulary.json").read_text(encoding="utf-8"))
    table = _toml("ingredient_classes.toml")
    v.low_dose_max_mg = float(table["naltrexone"]["low_dose_max_mg"])
    v.prefixes = tuple(sorted(table["prefixes"]["words"], key=len, reverse=True))
    for code, e in generated["rxnorm"].items():
        sets = e["value_sets"]
        v.rxnorm[code] = (
            e["drug_class"],
            f"RxNorm {code}: CDC value set{'s' if len(sets) > 1 else ''} {', '.join(sets)}",
        )
    for name, e in sorted(generated["ingredients"].items()):
        cls = e["ingredient_class"]
        v.add(
            name,
            cls,
            f"{_KIND_LABEL[cls]} in the CDC opioid value sets ({e['source']})",
            "ingredient",
            "opioid_vocabulary.json",
        )
    for brand, e in sorted(generated["brands"].items()):
        v.add(
            brand,
            e["drug_class"],
            f"US brand of {' / '.join(e['ingredients'])} (CDC opioid value sets, RxNorm)",
            "brand",
            "opioid_vocabulary.json",
        )
    extra = _toml("opioid_names_extra.toml")
    for group in extra["group"]:
        for name in group["names"]:
            v.add(name, group["class"], group["source"], group["kind"], "opioid_names_extra.toml")
    for key, section in _toml("non_opioids.toml").items():
        label = f"non-opioid: {section['title']} ({section['source']})"
        for name in [*section["names"], *section["brands"]]:
            v.add(name, "non_opioid", label, "non_opioid", f"non_opioids.toml [{key}]")
    words = _toml("medication_words.toml")
    for section in words.values():
        v.filler.update(_key(w) for w in section["words"])
    v.filler.update(_key(w) for w in table["salts"]["words"])
    v.filler.discard(())
    v.disorders = frozenset((d["system"], d["code"]) for d in generated["disorders"])
    v.index()
    return v


# ------------------------------------------------------------------ naltrexone dose

_NUM = r"(\d+(?:[.,]\d+)?)"
_UNIT = r"(mg|mgs|milligrams?|mcg|micrograms?|ug|µg|μg)"
_GAP = r"(?:[\s:=(),\-]|hydrochloride|hcl|\(?ldn\)?|low|dose|tablets?|tabs?|capsules?|caps?|oral|compounded|liquid|solution)*?"
_DOSE_AFTER = re.compile(
    r"(?:(?<![a-z])naltrexone|\bldn\b)" + _GAP + _NUM + r"(?:\s*(?:-|–|to)\s*" + _NUM + r")?\s*" + _UNIT + r"(?![a-z])"
)
_DOSE_BEFORE = re.compile(r"(?<![\d.,])" + _NUM + r"\s*" + _UNIT + r"\s+(?:of\s+)?(?:naltrexone|ldn)(?![a-z])")
_PRODUCT_NUMBER = re.compile(r"#\s*\d")


def _mg(number: str, unit: str) -> float:
    value = float(number.replace(",", "."))
    return value / 1000.0 if unit.startswith(("mc", "micro", "u", "µ", "μ")) else value


def _naltrexone_doses(text: str) -> list[float]:
    doses = []
    for m in _DOSE_AFTER.finditer(text):
        unit = m.group(3)
        doses += [_mg(n, unit) for n in (m.group(1), m.group(2)) if n]
    for m in _DOSE_BEFORE.finditer(text):
        doses.append(_mg(m.group(1), m.group(2)))
    return doses


def _naltrexone(hits: list[_Entry], names: Iterable[_Entry], raw: str, low_max: float) -> Classification:
    """The naltrexone class of a name that mentions naltrexone (`hits`: its naltrexone entries)."""
    matched = tuple(dict.fromkeys(e.name for e in hits))
    doses = _naltrexone_doses(raw)
    dose = max(doses) if doses else None
    full = [e for e in hits if e.drug_class == "naltrexone_full_dose"]
    if dose is not None and dose > low_max:
        return Classification(
            "naltrexone_full_dose",
            matched,
            f"naltrexone {dose:g} mg: more than {low_max:g} mg is full-dose naltrexone",
            dose,
        )
    if full:
        return Classification("naltrexone_full_dose", matched, full[0].source, dose)
    if dose is not None:
        return Classification(
            "naltrexone_low_dose",
            matched,
            f"naltrexone {dose:g} mg: at most {low_max:g} mg is low-dose naltrexone (LDN)",
            dose,
        )
    if any(e.name.casefold() == "bupropion" for e in names):
        return Classification(
            "naltrexone_full_dose",
            matched,
            "naltrexone with bupropion and no dose (Contrave, Mysimba): full-dose naltrexone",
            dose,
        )
    low = [e for e in hits if e.drug_class == "naltrexone_low_dose"]
    if low:
        return Classification("naltrexone_low_dose", matched, low[0].source, None)
    return Classification(
        "naltrexone_dose_unknown",
        matched,
        "naltrexone with no dose stated: low dose (LDN, at most "
        f"{low_max:g} mg) and full dose (50 mg) cannot be told apart",
        None,
    )


# ------------------------------------------------------------------ names


def _classify_name(name: str) -> Classification:
    v = _vocabulary()
    folded = _fold(name)
    tokens = normalise_medication(folded).split()
    if not tokens:
        return Classification("unrecognised", (), "no medication name (no letters or digits)")
    n = len(tokens)
    explained = [False] * n
    found: list[tuple[int, _Entry, str]] = []  # (position, entry, source line)
    for i, tok in enumerate(tokens):
        for length in v.lengths.get(tok, ()):
            if i + length <= n:
                key = tuple(tokens[i : i + length])
                e = v.phrases.get(key)
                if e is not None:
                    if key[-1].isdigit() and i + length < n and tokens[i + length] in _UNITS_AFTER_NUMBER:
                        continue
                    found.append((i, e, e.source))
                    for j in range(i, i + length):
                        explained[j] = True
        if not explained[i] and (tok,) not in v.phrases and len(tok) > 5 and tok.isalpha():
            hit = v.prefixed(tok)
            if hit is not None:
                stem, prefix = hit
                found.append(
                    (
                        i,
                        stem,
                        f"{tok}: {stem.name} after the chemical prefix {prefix}- "
                        f"(ingredient_classes.toml); {stem.source.split(': ', 1)[1]}",
                    )
                )
                explained[i] = True
    for i, tok in enumerate(tokens):
        if explained[i]:
            continue
        if tok.isdigit():
            explained[i] = True
            continue
        for length in v.filler_lengths.get(tok, ()):
            if i + length <= n and tuple(tokens[i : i + length]) in v.filler:
                for j in range(i, i + length):
                    explained[j] = True
                break
    entries = [e for _, e, _ in found]
    candidates: list[Classification] = []
    by_class: dict[str, list[tuple[_Entry, str]]] = {}
    for _, e, src in found:
        by_class.setdefault(e.drug_class, []).append((e, src))
    naltrexone_hits = [
        e for e in entries if e.drug_class in ("naltrexone", "naltrexone_full_dose", "naltrexone_low_dose")
    ]
    if naltrexone_hits:
        candidates.append(_naltrexone(naltrexone_hits, entries, folded.casefold(), v.low_dose_max_mg))
    for cls, hits in by_class.items():
        if cls in ("naltrexone", "naltrexone_full_dose", "naltrexone_low_dose"):
            continue
        names = tuple(dict.fromkeys(e.name for e, _ in hits))
        candidates.append(Classification(cls, names, hits[0][1]))
    residue = [tokens[i] for i in range(n) if not explained[i]]
    if residue:
        words = ", ".join(f"'{w}'" for w in dict.fromkeys(residue))
        if candidates:
            candidates.append(
                Classification(
                    "unrecognised",
                    (),
                    f"unrecognised word{'s' if len(residue) > 1 else ''} "
                    f"{words} beside the recognised names: confirm it is not an opioid",
                )
            )
        else:
            return Classification(
                "unrecognised",
                (),
                f"not in the medication vocabulary (unrecognised: {words}): confirm it is not an opioid",
            )
    if not candidates:
        return Classification("unrecognised", (), "only dose, form or direction words: no medicine named")
    best = min(candidates, key=lambda c: CLASS_RANK[c.drug_class])
    if best.drug_class in ("non_opioid", "naltrexone_low_dose") and _PRODUCT_NUMBER.search(folded):
        best = Classification(
            "unrecognised",
            (),
            "a product number ('#3') with no numbered product in the vocabulary: "
            "numbered products such as 'Tylenol #3' contain codeine; confirm it is not an opioid",
        )
    matched = tuple(
        dict.fromkeys(x for c in sorted(candidates, key=lambda c: CLASS_RANK[c.drug_class]) for x in c.matched)
    )
    return Classification(
        best.drug_class, matched, best.source, best.dose_mg if best.drug_class in NALTREXONE_CLASSES else None
    )


# ------------------------------------------------------------------ the API


def classify(name: str | None, rxnorm: str | None = None) -> Classification:
    """The drug class of a medication, from its RxNorm code and/or its name (see the module docstring).
    Cached on (name, rxnorm); names longer than _CACHED_CHARS are classified afresh each time."""
    code = None if rxnorm is None else str(rxnorm)
    if name is not None and len(name) > _CACHED_CHARS:
        return _classify.__wrapped__(name, code)
    return _classify(name, code)


_CACHED_CHARS = 2_000  # bounds the cache's memory: 16384 entries of at most this many characters


@lru_cache(maxsize=16384)
def _classify(name: str | None, rxnorm: str | None) -> Classification:
    v = _vocabulary()
    code = (rxnorm or "").strip()
    text = (name or "").strip()
    if len(text) > MAX_NAME_CHARS:
        return Classification("unrecognised", (), f"medication name longer than {MAX_NAME_CHARS} characters: not read")
    by_name = _classify_name(text) if text else None
    by_code = v.rxnorm.get(code) if code else None
    if by_code is not None:
        cls, source = by_code
        ref = f"RxNorm {code}"
        if by_name is not None and CLASS_RANK[by_name.drug_class] < CLASS_RANK[cls]:
            return Classification(
                by_name.drug_class,
                (ref, *by_name.matched),
                f"{by_name.source} (the name outranks {ref}, which is {cls})",
                by_name.dose_mg,
            )
        extra = by_name.matched if by_name is not None else ()
        return Classification(cls, tuple(dict.fromkeys((ref, *extra))), source)
    if by_name is None:
        if code:
            return Classification(
                "unrecognised",
                (),
                f"RxNorm {code} is not in the CDC opioid value sets, which list "
                "opioids: not proven non-opioid, and no name was given",
            )
        return Classification("unrecognised", (), "no medication name or code")
    if by_name.drug_class == "unrecognised" and code:
        return Classification(
            "unrecognised",
            by_name.matched,
            f"RxNorm {code} is not in the CDC opioid value sets (not proven non-opioid); {by_name.source}",
        )
    return by_name


def is_opioid_misuse_code(system: str, code: str) -> bool:
    """True for a SNOMED CT or ICD-10-CM code of the CDC opioid misuse and dependence value set."""
    return (system, code) in _vocabulary().disorders


def opioid_misuse_codes() -> frozenset[tuple[str, str]]:
    """(system, code) of every SNOMED CT and ICD-10-CM code of the CDC opioid misuse value set."""
    return _vocabulary().disorders


__all__ = [
    "CLASS_PRIORITY",
    "DRUG_CLASSES",
    "NALTREXONE_CLASSES",
    "OPIOID_CLASSES",
    "Classification",
    "VocabularyError",
    "classify",
    "is_opioid_misuse_code",
    "normalise_medication",
    "opioid_misuse_codes",
]
