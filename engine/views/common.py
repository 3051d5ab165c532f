"""What every view needs from a rule set: category order and titles, with a fallback when a
result is shown without its rule set."""

from __future__ import annotations

from engine.kernel.models import Result
from engine.kernel.rulebase import RuleSet


def category_order(ruleset: RuleSet | None, result: Result) -> list[str]:
    """The rule set's category order; without a rule set, the order the result lists them in."""
    if ruleset is not None and ruleset.categories:
        return list(ruleset.categories)
    seen: list[str] = []
    for r in result.recommendations:
        if r.category not in seen:
            seen.append(r.category)
    return seen


def category_title(ruleset: RuleSet | None, category: str) -> str:
    return ruleset.category_title(category) if ruleset is not None else category.replace("_", " ").capitalize()
