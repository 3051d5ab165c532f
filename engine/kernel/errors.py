"""Every failure the engine can report, one class each.

Each message says what was wrong, what was expected and how to fix it. None of them carries a
patient's values: they name fields, never what was typed into them.
"""

from __future__ import annotations

from dataclasses import dataclass


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One problem in the input: where (a field path), what, and what is allowed."""

    field: str
    problem: str
    allowed: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"field": self.field, "problem": self.problem}
        if self.allowed is not None:
            out["allowed"] = self.allowed
        return out

    def __str__(self) -> str:
        text = f"{self.field}: {self.problem}"
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


class InputError(EngineError):
    """The patient input was rejected: not JSON, too large, or not a valid patient.

    Carries one `FieldProblem` per problem found. The CLI maps it to exit code 2.
    """

    def __init__(self, problems: list[FieldProblem]):
        self.problems = list(problems)
        super().__init__(self.summary())

    def summary(self) -> str:
        lines = [str(p) for p in self.problems]
        head = "patient input rejected"
        return head + (": " + lines[0] if len(lines) == 1 else ":\n  " + "\n  ".join(lines))

    def as_dict(self) -> dict[str, object]:
        return {"type": "input_error", "problems": [p.as_dict() for p in self.problems]}


class RuleSetError(EngineError):
    """The rule set itself is inconsistent (found when it is loaded, before any patient)."""


class FactError(EngineError):
    """A fact would reach durable-rules in a shape known to crash it or to match wrongly.

    Raised by the wrapper before anything is sent to the C core; a rule-set bug, not bad input.
    """


class InferenceError(EngineError):
    """A rule failed while triaging: the triage fails closed, no partial result is returned."""

    def __init__(self, rule_id: str, detail: str):
        self.rule_id = rule_id
        super().__init__(
            f"rule {rule_id} failed during inference ({detail}); no result was produced. "
            "This is a rule-set defect: report it with the rule id."
        )


class SiteError(EngineError):
    """A site configuration file was rejected: it names the parameter (or key) and what is allowed.

    The CLI maps it to exit code 2, like bad patient input.
    """
