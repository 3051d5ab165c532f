"""What would change a decision: for each withheld option, the nearest changes of the patient's
facts after which the engine recommends it, found by running the engine itself on changed copies
of the patient (never by a second reading of the rules).

    from engine import default_triager, what_would_change
    t = default_triager()
    result = what_would_change(t, patient_dict, t.triage(patient_dict))
    result.not_recommended[i].what_would_change    # [Change(text, edits), ...], [] or None

The rule set declares what may change (`RuleSet.changes`, a `ChangeSpec`): the categories of
withheld options to search for, and the kinds of change, each with the patient attributes it
touches and the steps it proposes from a state. Only declared changes are ever made, so a fact
the rule set does not declare changeable is never changed. This module knows no clinical term.

The search, for each withheld intervention of those categories (all of them one step deeper in
turn, so that a near answer for one is never starved of the budget by a far one for another):

* breadth first by the number of steps, at most `max_changes`, one step per slot (one per kind
  for a kind declared `once`);
* from a state it tries only the kinds that touch an attribute read by a rule that withholds the
  intervention there (`Rule.reads_patient`, derived by the rule set). A withholding rule that
  reads nothing any kind touches cannot be lifted: the state is a dead end;
* a changed state is searched further only if what withholds the intervention (its entries,
  rule, kind and reason) changed with the last step; and not at all from a state where some
  entry stays, but for its numbers (time passing), after every single step tried from it: that
  entry is taken as fixed (a heuristic: the answers it gives are still checked by the engine);
* steps of one kind and amount that leave the same entries are twins: the search goes on from
  the first only, and tries the others in place of it in the answers found;
* each changed patient is triaged once with `triager.triage` (cached by its set of steps and
  shared between interventions), at most `budget` runs per patient.

The answer for an intervention holds the step sets with the fewest steps after which it is
recommended, then the least wait (one per set of slots: the same changes later are not another
answer), at most `alternatives`, each as `Change(text, edits)` in the rule set's words.
`[]`: the search ended and nothing declared makes it an option (within the pathway, as the rule
set declares it). `None`: not searched, or cut short (by the budget or `max_changes`) before an
answer was found: nothing is claimed then. The same input gives the same answer: every order in
the search is fixed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from engine.kernel.errors import InputError
from engine.kernel.models import Change, NotRecommended, Result
from engine.kernel.rulebase import ChangeKind, ChangeSpec, ChangeState, RuleSet, Step, fields_overlap


class _OutOfBudget(Exception):
    pass


def _touches(fields: tuple[str, ...], reads: tuple[str, ...]) -> bool:
    """Whether a kind touching `fields` can change what a rule reading `reads` sees (an attribute
    and its parts overlap: 'a' and 'a.b')."""
    return any(fields_overlap(f, r) for f in fields for r in reads)


def _entries(result: Result, code: str) -> tuple[tuple[str, str, str], ...]:
    return tuple((n.rule, n.kind, n.reason) for n in result.not_recommended if n.intervention == code)


_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")


def _gist(entries: tuple[tuple[str, str, str], ...]) -> set[tuple[str, str, str]]:
    """The entries with their numbers blanked: time passing alone does not lift them."""
    return {(rule, kind, _NUMBER.sub("#", reason)) for rule, kind, reason in entries}


class _Search:
    """The states searched for one patient, shared by every intervention searched."""

    def __init__(self, triager: Any, spec: ChangeSpec, root: ChangeState, budget: int):
        self.triager = triager
        self.ruleset: RuleSet = triager.ruleset
        self.spec = spec
        self.root = root
        self.budget = budget
        self.runs = 0
        self.states: dict[tuple[Step, ...], ChangeState] = {(): root}
        self.reads = {r.id: tuple(r.reads_patient) for r in self.ruleset.rules}
        self.by_kind: dict[str, ChangeKind] = {k.name: k for k in spec.kinds}

    def state(self, parent: ChangeState, step: Step) -> ChangeState:
        return self.state_of(tuple(sorted((*parent.steps, step))))

    def state_of(self, steps: tuple[Step, ...]) -> ChangeState:
        """The patient after `steps` (sorted), triaged once (cached)."""
        known = self.states.get(steps)
        if known is not None:
            return known
        if self.runs >= self.budget:
            raise _OutOfBudget
        self.runs += 1
        patient, wait = self.spec.apply(self.ruleset, self.root.original, steps)
        try:
            result = self.triager.triage(patient)
        except InputError:  # a change the input model does not allow: not an answer
            result = None
        st = ChangeState(
            ruleset=self.ruleset, original=self.root.original, steps=steps, patient=patient, wait=wait, result=result
        )
        self.states[steps] = st
        return st

    def kinds_for(self, state: ChangeState, code: str) -> list[ChangeKind] | None:
        """The kinds that may lift what withholds `code` in `state`; None when something withholds it
        that no declared kind can change (a dead end)."""
        rules = list(dict.fromkeys(n.rule for n in state.result.not_recommended if n.intervention == code))
        if not rules:  # withheld by nothing that says so: every kind may matter
            return list(self.spec.kinds)
        out: list[ChangeKind] = []
        for rule in rules:
            reads = self.reads.get(rule, ())
            lifting = [k for k in self.spec.kinds if _touches(k.fields, reads)]
            if not lifting:
                return None
            out += [k for k in lifting if k not in out]
        return [k for k in self.spec.kinds if k in out]  # in the declared order

    def expand(self, target: _Target) -> None:
        """Search one more step deep for `target` (see the module docstring)."""
        code = target.code
        following: list[ChangeState] = []
        seen: set[tuple[Step, ...]] = set()
        for parent in target.frontier:
            kinds = self.kinds_for(parent, code)
            if kinds is None:
                continue
            used = {s.slot for s in parent.steps} | {(s.kind, "*") for s in parent.steps if self.by_kind[s.kind].once}
            before = _entries(parent.result, code)
            children: list[ChangeState] = []
            groups: dict[tuple[Any, ...], Step] = {}
            for kind in kinds:
                for step in kind.propose(parent):
                    if step.kind != kind.name or step.slot in used or (kind.name, "*") in used:
                        continue
                    child = self.state(parent, step)
                    if child.result is None:
                        continue
                    children.append(child)
                    if child.steps in seen:
                        continue
                    seen.add(child.steps)
                    if child.result.recommended(code) is not None:
                        target.found.append(child)
                    elif _entries(child.result, code) != before:
                        # steps of one kind and amount that leave the same entries are twins: the
                        # search goes on from the first only, the others are tried in its answers
                        key = (step.kind, step.amount, _entries(child.result, code))
                        first = groups.setdefault(key, step)
                        if first == step:
                            following.append(child)
                        elif step not in target.twins.setdefault(first, []):
                            target.twins[first].append(step)
            # an entry that no single step changes but for its numbers (time passing) is taken as
            # fixed: this branch ends here
            stuck = [e for e in _gist(before) if all(e in _gist(_entries(c.result, code)) for c in children)]
            if stuck:
                mine = {c.steps for c in children}
                following = [c for c in following if c.steps not in mine]
        target.frontier = following

    def answer(self, target: _Target) -> list[Change] | None:
        """The nearest change sets of `target` as Changes: [] when the search ended without one; None
        when it was cut (by the budget or the number of changes) before one was found."""
        if not target.found:
            return [] if target.ended else None
        found = list(target.found)
        for st in target.found:  # the same answer with a twin step in place of one of its steps
            for step in st.steps:
                for twin in target.twins.get(step, ()):
                    steps = tuple(sorted((*(s for s in st.steps if s != step), twin)))
                    if len({s.slot for s in steps}) < len(steps):
                        continue
                    try:
                        other = self.state_of(steps)
                    except _OutOfBudget:
                        break
                    if (
                        other.result is not None
                        and other.result.recommended(target.code) is not None
                        and other not in found
                    ):
                        found.append(other)
        best: dict[frozenset[tuple[str, str]], tuple[float, int, ChangeState]] = {}
        for i, st in enumerate(found):
            slots = frozenset(s.slot for s in st.steps)
            if slots not in best or (st.wait, i) < best[slots][:2]:
                best[slots] = (st.wait, i, st)
        out: list[Change] = []
        texts: set[str] = set()
        for _, _, st in sorted(best.values(), key=lambda b: (len(b[2].steps), b[0], b[1])):
            text = self.spec.describe(st)
            if text in texts:
                continue
            texts.add(text)
            out.append(Change(text=text, edits=self.spec.edits(st)))
            if len(out) >= self.spec.alternatives:
                break
        return out

    def run(self, codes: list[str]) -> dict[str, list[Change] | None]:
        """Every target one step deeper in turn, so that a near answer for one is never starved of
        the budget by a far one for another."""
        targets = [_Target(code, [self.root]) for code in codes]
        try:
            for _ in range(self.spec.max_changes):
                open_ = [t for t in targets if not t.found and t.frontier]
                if not open_:
                    break
                for t in open_:
                    self.expand(t)
        except _OutOfBudget:
            pass
        for t in targets:
            # the search for t ended: an answer, or no state left to go on from (not cut short)
            t.ended = bool(t.found) or not t.frontier
        return {t.code: self.answer(t) for t in targets}


@dataclass
class _Target:
    """The search for one withheld intervention: the states to go on from, and the answers."""

    code: str
    frontier: list[ChangeState]
    found: list[ChangeState] = field(default_factory=list)
    #: a step the search went on from -> the steps of the same effect it did not go on from
    twins: dict[Step, list[Step]] = field(default_factory=dict)
    ended: bool = False


def _as_dict(patient: Any) -> dict[str, Any]:
    if isinstance(patient, BaseModel):
        return patient.model_dump(mode="json", exclude_none=True)
    if not isinstance(patient, Mapping):
        raise TypeError("what_would_change needs the patient as a dict (CONTRACT.md JSON) or the rule set's model")
    return dict(patient)


def what_would_change(triager: Any, patient: Any, result: Result, *, budget: int | None = None) -> Result:
    """`result` with `what_would_change` set on each entry of every withheld intervention of the
    categories the rule set searches for (see the module docstring); the other entries are left
    as they are. `patient` is the patient `result` was made from (a dict, as given to `triage`);
    `budget` caps the engine runs for this patient (default: the rule set's). A rule set that
    declares no changes gets `result` back unchanged."""
    ruleset: RuleSet = triager.ruleset
    spec = ruleset.changes
    if spec is None:
        return result
    categories = set(spec.categories)
    targets = [
        code
        for code in dict.fromkeys(n.intervention for n in result.not_recommended)
        if code in ruleset.interventions
        and ruleset.interventions[code].category in categories
        and result.recommended(code) is None
    ]
    if not targets:
        return result
    root = ChangeState(
        ruleset=ruleset, original=_as_dict(patient), steps=(), patient=_as_dict(patient), wait=0, result=result
    )
    answers = _Search(triager, spec, root, spec.budget if budget is None else budget).run(targets)

    def found(intervention: str) -> list[Change] | None:
        answer = answers[intervention]
        return None if answer is None else list(answer)

    entries: list[NotRecommended] = [
        n.model_copy(update={"what_would_change": found(n.intervention)}) if n.intervention in answers else n
        for n in result.not_recommended
    ]
    return result.model_copy(update={"not_recommended": entries})


__all__ = ["what_would_change"]
