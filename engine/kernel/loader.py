"""Finding and fingerprinting a rule set. The engine imports a rule set by module name only."""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

from engine.kernel.errors import RuleSetError
from engine.kernel.rulebase import RuleSet

#: The rule-set package the engine loads unless told otherwise (`CDS_RULESET` overrides it).
DEFAULT_RULESET_MODULE = "rules"
_DIGESTED_SUFFIXES = (".py", ".toml", ".json")


def digest_of(package_dir: str | os.PathLike[str]) -> str:
    """sha256 over the rule set's files (paths and contents, in sorted order).

    Changes when, and only when, a `.py` or `.toml` file of the package changes, is added,
    removed or renamed.
    """
    root = Path(package_dir)
    h = hashlib.sha256()
    for path in sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix in _DIGESTED_SUFFIXES and "__pycache__" not in p.parts
    ):
        rel = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        h.update(len(rel).to_bytes(4, "big") + rel + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def ruleset_module_name(module: str | None = None) -> str:
    """`module`, else `$CDS_RULESET`, else the default rule-set package."""
    return module or os.environ.get("CDS_RULESET") or DEFAULT_RULESET_MODULE


def load_ruleset(module: str | None = None) -> RuleSet:
    """Import `module` (default: `$CDS_RULESET` or 'rules') and return its `RULESET`."""
    name = ruleset_module_name(module)
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        raise RuleSetError(f"rule set module {name!r} could not be imported: {exc}") from exc
    ruleset = getattr(mod, "RULESET", None)
    if not isinstance(ruleset, RuleSet):
        raise RuleSetError(f"module {name!r} has no RULESET (an engine.api.RuleSet)")
    return ruleset
