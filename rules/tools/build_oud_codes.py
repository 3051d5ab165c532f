"""Build rules/data/opioid_use_disorder_codes.json from the CDC opioid-misuse-disorders value set.

    python -m rules.tools.build_oud_codes [VALUESET_JSON]

VALUESET_JSON defaults to ../shared/data/opioid-value-sets/opioid-misuse-disorders.json (the CDC
Opioid Prescribing Support IG value set, CC0; see its README). The output is a JSON list of
{system, code, display}, one per concept of the value set's expansion (SNOMED CT and ICD-10-CM),
sorted by system then code: the format `rules.fhir.code_list` reads. The tool then writes the
file's sha256 into the matching [[code_lists]] entry of rules/fhir_map.toml, so that a changed
list changes the rule-set digest (which covers .toml and .py files, not .json).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parents[1]
OUTPUT = RULES / "data" / "opioid_use_disorder_codes.json"
TABLE = RULES / "fhir_map.toml"
DEFAULT_SOURCE = RULES.parents[1] / "shared" / "data" / "opioid-value-sets" / "opioid-misuse-disorders.json"


def codes_of(valueset: dict) -> list[dict[str, str]]:
    """The {system, code, display} of every concept in a ValueSet's expansion, sorted, each once."""
    contains = (valueset.get("expansion") or {}).get("contains")
    if valueset.get("resourceType") != "ValueSet" or not isinstance(contains, list) or not contains:
        raise ValueError("not a ValueSet with an expansion")
    seen, out = set(), []
    for c in contains:
        key = (c["system"], c["code"])
        if key not in seen:
            seen.add(key)
            out.append({"system": c["system"], "code": c["code"], "display": c.get("display", "")})
    return sorted(out, key=lambda c: (c["system"], c["code"]))


def render(codes: list[dict[str, str]]) -> str:
    return json.dumps(codes, indent=1, ensure_ascii=False) + "\n"


def record_digest(text: str, table: Path = TABLE, name: str = OUTPUT.name) -> str:
    """Write sha256 of `text` into the [[code_lists]] entry of `table` whose file is `name`."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    toml = table.read_text(encoding="utf-8")
    pattern = re.compile(r'(file = "data/' + re.escape(name) + r'"\n(?:[^\[\n][^\n]*\n)*?sha256 = ")[0-9a-f]*(")')
    new, n = pattern.subn(lambda m: m.group(1) + digest + m.group(2), toml)
    if n != 1:
        raise SystemExit(f"{table.name}: no [[code_lists]] entry with file = \"data/{name}\" and a sha256 line")
    table.write_text(new, encoding="utf-8")
    return digest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else DEFAULT_SOURCE
    codes = codes_of(json.loads(source.read_text(encoding="utf-8")))
    text = render(codes)
    OUTPUT.write_text(text, encoding="utf-8")
    digest = record_digest(text)
    systems = sorted({c["system"] for c in codes})
    print(f"wrote {OUTPUT.relative_to(RULES.parent)}: {len(codes)} codes ({', '.join(systems)}); sha256 {digest[:12]} "
          f"recorded in {TABLE.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
