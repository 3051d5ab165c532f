"""The forefoot pain pathway (../shared/CLINICAL.md, rule set 1.2) as forward-chaining rules, by stage:

    findings  -> safety -> first line -> LDN -> PRF -> surgery

Each module holds the rules of one stage, every rule written out with its id as a literal
(`grep -rn RULE-ID rules/` finds it). Rules conclude named facts that later rules match; the
engine orders them into strata, so a blocking fact always exists before its absence is tested,
whatever order the rules are written in.
"""

from __future__ import annotations

from engine.api import Rule

from . import findings, first_line, ldn, prf, safety, surgery

RULES: tuple[Rule, ...] = (*findings.RULES, *safety.RULES, *first_line.RULES, *ldn.RULES, *prf.RULES, *surgery.RULES)

__all__ = ["RULES"]
