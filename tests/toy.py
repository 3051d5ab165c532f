"""A tiny rule set for testing the engine's durable-rules wrapper in isolation."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from engine.api import Evidence, InterventionSpec, Rule, RuleSet, StrictModel, fact, ge

TOY_EVIDENCE = Evidence(sort="C", certainty="low", directness="toy", citations=["toy-cite"])


class ToyPatient(StrictModel):
    id: str
    score: float = Field(ge=0)
    blocked: bool = False
    tags: list[str] = Field(default_factory=list)


def toy_facts(p: ToyPatient) -> list[dict[str, Any]]:
    facts: list[dict[str, Any]] = [{"type": "subject", "score": p.score}]
    if p.blocked:
        facts.append({"type": "blocker"})
    facts += [{"type": "tag", "key": t, "name": t} for t in sorted(set(p.tags))]
    return facts


def toy_ruleset(rules: list[Rule], interventions: tuple[str, ...] = ("treat", "other")) -> RuleSet:
    return RuleSet(
        name="toy",
        version="0",
        digest="0" * 64,
        rules=tuple(rules),
        interventions={
            c: InterventionSpec(code=c, label=c, category="first_line", strength="recommended", evidence=TOY_EVIDENCE)
            for c in interventions
        },
        citations={"toy-cite": {"title": "toy"}},
        parameters={},
        patient_model=ToyPatient,
        to_facts=toy_facts,
        patient_id=lambda p: p.id,
        flags=lambda p: [],
        categories={"first_line": "First line"},
        fact_sources={"subject": {"score": "score", "*": "score"}, "blocker": {"*": "blocked"}, "tag": {"*": "tags"}},
    )


def chain_rules() -> list[Rule]:
    """subject(score>=5) -> high; blocker -> block (derived late); high & not block -> treat."""

    def high(ctx):
        ctx.conclude("high", score=ctx.fact("s")["score"])

    def block(ctx):
        ctx.conclude("block")

    def treat(ctx):
        ctx.recommend("treat", ["high score"])

    def blocked(ctx):
        ctx.withhold("treat", "contraindicated", "blocked")

    return [
        Rule("TOY-HIGH", "high score", when={"s": fact("subject", score=ge(5))}, action=high, concludes=("high",)),
        Rule("TOY-BLOCK", "blocker", when={"b": fact("blocker")}, action=block, concludes=("block",)),
        Rule(
            "TOY-TREAT",
            "treat unless blocked",
            when={"h": fact("high")},
            unless={"x": fact("block")},
            action=treat,
            emits=("treat",),
        ),
        Rule(
            "TOY-BLOCKED",
            "say it is blocked",
            when={"h": fact("high"), "x": fact("block")},
            action=blocked,
            emits=("treat",),
        ),
    ]
