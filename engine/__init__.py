"""A forward-chaining clinical decision-support engine on durable-rules.

    from engine import triage
    result = triage(patient_dict)          # -> engine.kernel.models.Result
    result.model_dump(mode="json")         # == `cli.py triage FILE --format json --no-changes`

    from engine import default_triager, what_would_change
    t = default_triager()
    result = what_would_change(t, patient_dict, t.triage(patient_dict))   # == `cli.py triage FILE --format json`

The engine knows no clinical terms: the rule set (by default the `rules` package) brings the
patient model, the facts, the rules and the evidence.
"""

from engine.kernel.changes import what_would_change
from engine.kernel.errors import EngineError, FieldProblem, InferenceError, InputError, RuleSetError
from engine.kernel.models import Change, NotRecommended, Recommendation, Result
from engine.kernel.triage import Triager, default_triager, triage, triage_many

__all__ = [
    "Change",
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
    "what_would_change",
]
