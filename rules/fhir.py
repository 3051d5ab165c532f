"""The FHIR R4 mapping table of this rule set (fhir_map.toml), for engine/channels/fhir.py.

The engine finds it by convention: the rule-set package's `fhir` module exposes `FHIR_MAPPING`.
The table is data, reviewed like parameters.toml; nothing here interprets it, except that the
table's [[code_lists]] are expanded here into Condition rows: a code list is a list of
{system, code, display} inside a JSON file of the rule set (the opioid misuse and dependence codes
come from the generated opioid vocabulary, rules/data/opioid_vocabulary.json, key "disorders",
rebuilt from the CDC value sets by `python -m rules.tools.build_opioid_vocabulary`), read by
`code_list`, the one reader. JSON files are part of the rule-set digest, so a new list changes it.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from engine.api import RuleSetError

from .knowledge import HERE


def code_list(path: Path, key: str | None = None) -> list[dict[str, str]]:
    """The codes of a JSON code list: a list of {system, code, display} (display may be empty), the
    whole file or the list under `key`.

    The one place such a list is read. `RuleSetError` when the file is not of that shape.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RuleSetError(f"code list {path.name} cannot be read: {exc}") from None
    if key is not None:
        if not isinstance(data, dict) or key not in data:
            raise RuleSetError(f"code list {path.name} has no key {key!r}")
        data = data[key]
    if not isinstance(data, list) or not data:
        raise RuleSetError(f"code list {path.name} must be a non-empty JSON list of {{system, code, display}}")
    out = []
    for i, item in enumerate(data):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("system"), str)
            and isinstance(item.get("code"), str)
            and item["code"].strip()
            and isinstance(item.get("display", ""), str)
        ):
            raise RuleSetError(f"code list {path.name}[{i}] is not an object with string system, code and display")
        out.append({"system": item["system"], "code": item["code"].strip(), "display": item.get("display", "")})
    return out


def _rows_from(entry: dict[str, Any], systems: dict[str, str]) -> list[dict[str, Any]]:
    """The [[conditions]] rows of one [[code_lists]] entry (ICD-10-CM by prefix, the table's convention)."""
    path = HERE / entry["file"]
    alias_of = {url: alias for alias, url in systems.items()}
    names = {"icd10cm": "ICD-10-CM", "snomed": "SNOMED CT"}
    rows = []
    for c in code_list(path, entry.get("key")):
        alias = alias_of.get(c["system"])
        if alias is None:
            raise RuleSetError(f"code list {entry['file']}: code system {c['system']} has no alias in [systems]")
        row = {
            "system": alias,
            "code": c["code"],
            "to": dict(entry["to"]),
            "source": f"{names.get(alias, alias)} {c['code']} {c['display']}; from {entry['source']}".replace(
                "  ", " "
            ),
        }
        if alias == "icd10cm":
            row["match"] = "prefix"
        if entry.get("note"):
            row["note"] = entry["note"]
        rows.append(row)
    return rows


def _mapping(table: dict[str, Any]) -> dict[str, Any]:
    lists = table.pop("code_lists", [])
    for entry in lists:
        table.setdefault("conditions", []).extend(_rows_from(entry, table["systems"]))
    return table


#: The parsed mapping table, code lists expanded (engine/channels/fhir.py validates its shape when it loads it).
FHIR_MAPPING: dict[str, Any] = _mapping(tomllib.loads((HERE / "fhir_map.toml").read_text(encoding="utf-8")))

__all__ = ["FHIR_MAPPING", "code_list"]
