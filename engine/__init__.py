"""A forward-chaining clinical decision-support engine on durable-rules.

    from engine import triage
    result = triage(patient_dict)          # -> engine.kernel.models.Result
    result.model_dump(mode="json")         # == `cli.py triage FILE --format json`

The engine knows no clinical terms: the rule set (by default the `rules` package) brings the
patient model, the facts, the rules and the evidence.
"""

from engine.kernel.errors import EngineError, FieldProblem, InferenceError, InputError, RuleSetError
from engine.kernel.models import NotRecommended, Recommendation, Result
from engine.kernel.triage import Triager, default_triager, triage, triage_many

__all__ = [
    "EngineError",
    "FieldProblem",
    "InferenceError",
    "InputError",
    "NotRecommended",
    "Recommendation",
    "Result",
    "RuleSetError",
    "Triager",
    "default_triager",
    "triage",
    "triage_many",
]
