"""The FHIR R4 mapping table of this rule set (fhir_map.toml), for engine/channels/fhir.py.

The engine finds it by convention: the rule-set package's `fhir` module exposes `FHIR_MAPPING`.
The table is data, reviewed like parameters.toml; nothing here interprets it.
"""

from __future__ import annotations

import tomllib
from typing import Any

from .knowledge import HERE

#: The parsed mapping table (engine/channels/fhir.py validates its shape when it loads it).
FHIR_MAPPING: dict[str, Any] = tomllib.loads((HERE / "fhir_map.toml").read_text(encoding="utf-8"))

__all__ = ["FHIR_MAPPING"]
