"""The facade rule authors import from: everything a rule set needs, nothing more."""

from .errors import RuleSetError
from .loader import digest_of
from .models import Evidence, StrictModel
from .rulebase import (
    Context,
    InterventionSpec,
    Parameter,
    Pattern,
    Rule,
    RuleSet,
    between,
    fact,
    ge,
    gt,
    has,
    le,
    lt,
    ne,
    one_of,
)

__all__ = [
    "Context",
    "Evidence",
    "InterventionSpec",
    "Parameter",
    "Pattern",
    "Rule",
    "RuleSet",
    "RuleSetError",
    "StrictModel",
    "between",
    "digest_of",
    "fact",
    "ge",
    "gt",
    "has",
    "le",
    "lt",
    "ne",
    "one_of",
]
