"""The rule set's data files, loaded: parameters, interventions and the citation library."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine.api import Evidence, InterventionSpec, Parameter, RuleSetError

HERE = Path(__file__).parent


def _load(name: str) -> dict[str, Any]:
    return tomllib.loads((HERE / name).read_text(encoding="utf-8"))


def _parameter(name: str, v: dict[str, Any]) -> Parameter:
    allowed = v.get("allowed")
    return Parameter(
        name=name,
        value=v["value"],
        unit=v["unit"],
        source=v["source"],
        note=v["note"],
        min=v.get("min"),
        max=v.get("max"),
        allowed=tuple(allowed) if allowed is not None else None,
        reviewed=v.get("reviewed"),
    )


PARAMETERS: dict[str, Parameter] = {name: _parameter(name, v) for name, v in _load("parameters.toml").items()}

CITATIONS: dict[str, dict[str, Any]] = {cid: dict(v) for cid, v in _load("citations.toml").items()}

#: Each red flag: label, action, who to, how fast, the basis and its citations (red_flags.toml).
RED_FLAGS: dict[str, dict[str, Any]] = {code: dict(v) for code, v in _load("red_flags.toml").items()}
for _code, _flag in RED_FLAGS.items():
    if not {"summary", "label", "action", "who", "when", "basis", "citations"} <= set(_flag):
        raise RuleSetError(f"red_flags.toml: {_code} needs summary, label, action, who, when, basis and citations")


def _spec(code: str, v: dict[str, Any]) -> InterventionSpec:
    ev = v.get("evidence")
    return InterventionSpec(
        code=code,
        label=v["label"],
        category=v["category"],
        strength=v["strength"],
        evidence=Evidence(**ev) if ev else None,
        details=dict(v.get("details", {})),
        show=tuple(v.get("show", ())),
    )


INTERVENTIONS: dict[str, InterventionSpec] = {code: _spec(code, v) for code, v in _load("interventions.toml").items()}
