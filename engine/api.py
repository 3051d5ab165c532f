"""The facade rule authors import from: everything a rule set needs, nothing more."""

from engine.kernel.errors import RuleSetError
from engine.kernel.loader import digest_of
from engine.kernel.models import Evidence, StrictModel
from engine.kernel.rulebase import (
    Context,
    Finding,
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
    param,
)

__all__ = [
    "Context",
    "Evidence",
    "Finding",
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
    "param",
]
