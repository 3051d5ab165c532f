"""The vendored durable-rules is upstream 2.0.28 plus our patch, and it is the build installed.

third_party/README.md says what the patch changes and why. Upstream's file hashes were taken from
the PyPI source distribution (durable_rules-2.0.28.tar.gz); the test reverses the patch on a copy
of the tracked files and checks every file against them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIRD = ROOT / "third_party"
VENDORED = THIRD / "durable_rules"
PATCH = THIRD / "durable_rules-forefoot.patch"
UPSTREAM = THIRD / "durable_rules-2.0.28.sha256"


def _upstream_hashes() -> dict[str, str]:
    out = {}
    for line in UPSTREAM.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        out[name] = digest
    return out


def _tracked() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "--", "third_party/durable_rules"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    prefix = "third_party/durable_rules/"
    return sorted(name[len(prefix) :] for name in listed)


def test_the_vendored_tree_holds_exactly_the_upstream_files():
    assert _tracked() == sorted(_upstream_hashes())


def test_reversing_the_patch_gives_upstream_byte_for_byte(tmp_path):
    copy = tmp_path / "durable_rules"
    for name in _tracked():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(VENDORED / name, copy / name)
    subprocess.run(["git", "apply", "-R", str(PATCH)], cwd=copy, check=True)
    got = {name: hashlib.sha256((copy / name).read_bytes()).hexdigest() for name in _upstream_hashes()}
    assert got == _upstream_hashes()


def test_the_patch_touches_only_what_third_party_readme_names():
    touched = sorted(
        line.split()[1].removeprefix("b/") for line in PATCH.read_text().splitlines() if line.startswith("+++ ")
    )
    assert touched == [
        "setup.py",
        "src/rules/events.c",
        "src/rules/rete.c",
        "src/rules/rete.h",
        "src/rules/rules.h",
        "src/rules/state.c",
        "src/rules/state.h",
        "src/rulespy/rules.c",
    ]
    readme = (THIRD / "README.md").read_text()
    for name in touched:
        assert f"`{name}`" in readme


_EDGE = """
import json, sys
import durable_rules_engine as d
n = int(sys.argv[1])
h = d.create_ruleset("edge", json.dumps({"r": {"all": [{"m": {"$and": [{"type": "x"}, {"k0": 0}]}}], "pri": 1}}))
fact = {"type": "x", **{f"k{i}": i for i in range(n - 3)}, "id": "f1", "sid": "s"}
assert len(fact) == n
try:
    code, state = d.assert_fact(h, json.dumps(fact))
except Exception as e:
    print("refused", e)
else:
    started = d.start_action_for_state(h, state)
    print("fired", len(json.loads(started[1])["r"]["m"]))
    d.complete_and_start_action(h, state)
    d.delete_state(h, "s")
"""


def _python(code: str, *args: str, pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    """`code` run by this interpreter from the project root, with `pythonpath` (a durable-rules build)
    as its only PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def _edge(n: int) -> str:
    done = _python(_EDGE, str(n))
    assert done.returncode == 0, f"durable-rules crashed on a fact of {n} properties (exit {done.returncode})"
    return done.stdout.strip()


def test_the_installed_build_takes_every_fact_the_wrapper_sends_and_refuses_128_properties():
    """The installed module was compiled with the patched header (MAX_OBJECT_PROPERTIES 128): a fact
    as wide as the wrapper allows fires with every property; 127 still does; 128 is refused with
    durable-rules' own error, not a crash. Upstream takes 128."""
    from engine.kernel.inference import MAX_FACT_PROPERTIES

    assert _edge(MAX_FACT_PROPERTIES) == f"fired {MAX_FACT_PROPERTIES}"
    assert _edge(127) == "fired 127"
    assert _edge(128).startswith("refused") and "302" in _edge(128)


_MATCHES = """
import json
import durable_rules_engine as d
rules = {"r": {"all": [{"a": {"$and": [{"type:x": 1}, {"v": 5}]}}, {"b": {"type:y": 1}}], "pri": 1}}
for on in (None, 0, 1):
    h = d.create_ruleset(f"m{on}", json.dumps(rules))
    if on is not None:
        d.set_id_matches(h, on)
    d.assert_fact(h, json.dumps({"id": "f1", "sid": "s", "type:x": 1, "v": 5, "q": "a \\"quoted\\" } text"}))
    code, state = d.assert_fact(h, json.dumps({"id": 7, "sid": "s", "type:y": 1}))
    print(json.dumps(json.loads(d.start_action_for_state(h, state)[1])))
    code, state = d.assert_fact(h, json.dumps({"sid": "s", "type:y": 1}))  # durable-rules makes its id up
    print(json.dumps(json.loads(d.complete_and_start_action(h, state))))
"""


def test_the_vendored_build_names_matched_facts_by_id_only_when_asked():
    """`set_id_matches(handle, 1)` (the engine turns it on: the wrapper reads only ids from a match):
    each matched fact is written as {"id": ...}, the id as the string durable-rules keys it by, even
    for an id that was a number or one it made up. Off, and by default, a match is upstream's, every
    fact whole: the build stays durable-rules for any other user of it."""
    done = _python(_MATCHES)
    assert done.returncode == 0, done.stderr[-2000:]
    default, default_made_up, off, off_made_up, on, on_made_up = (json.loads(line) for line in done.stdout.splitlines())
    whole = {
        "r": {
            "a": {"id": "f1", "sid": "s", "type:x": 1, "v": 5, "q": 'a "quoted" } text'},
            "b": {"id": 7, "sid": "s", "type:y": 1},
        }
    }
    assert default == off == whole
    assert default_made_up == off_made_up and off_made_up["r"]["b"]["sid"] == "s" and "id" not in off_made_up["r"]["b"]
    assert on == {"r": {"a": {"id": "f1"}, "b": {"id": "7"}}}
    assert on_made_up["r"]["a"] == {"id": "f1"} and set(on_made_up["r"]["b"]) == {"id"}
    assert on_made_up["r"]["b"]["id"].startswith("$")


def test_the_engine_reads_matches_of_ids_only_on_the_vendored_build():
    """Every match the engine drains on this build carries fact ids only; the results are the same
    as from whole facts (upstream: the slow test below)."""
    from engine import Triager
    from engine.kernel import inference

    assert inference.ID_MATCHES is True
    seen: list[str] = []
    real, most = inference._loads, inference._MAX_MATCHES
    inference._loads = lambda text: (seen.append(text), real(text))[1]
    inference._MAX_MATCHES = 0  # every text parsed, none kept
    try:
        Triager().triage(json.loads((ROOT / "tests" / "examples" / "neuropathic-persistent.json").read_text()))
    finally:
        inference._loads, inference._MAX_MATCHES = real, most
    assert len(seen) > 10
    for text in seen:
        ((_, match),) = json.loads(text).items()
        assert all(set(fact) == {"id"} for fact in match.values()), text


_SCAN = """
import json
import durable_rules_engine as d
rules = {f"r{i}": {"all": [{"m": {f"type:t{i}": 1}}], "pri": i} for i in range(1, 6)}
h = d.create_ruleset("scan", json.dumps(rules))
fired = []
def fact(i, t):
    return json.dumps({"id": f"f{i}", "sid": "s", f"type:t{t}": 1})
code, state = d.assert_fact(h, fact(1, 4))
msg = d.start_action_for_state(h, state)[1]
while msg:
    ((rule, _),) = json.loads(msg).items()
    fired.append(rule)
    if rule == "r4":  # while r4 runs, facts for a rule before it and one after it arrive
        d.assert_fact(h, fact(2, 5))
        d.assert_fact(h, fact(3, 2))
    if rule == "r2":
        d.assert_fact(h, fact(4, 1))
    msg = d.complete_and_start_action(h, state)
fired.append("|")
code, state = d.assert_fact(h, fact(5, 3))  # after the agenda drained: found again
started = d.start_action_for_state(h, state)
msg = started[1] if started else None
while msg:
    fired.append(next(iter(json.loads(msg))))
    msg = d.complete_and_start_action(h, state)
print(" ".join(fired))
"""


def test_the_next_action_is_the_first_pending_one_in_rule_order():
    """The vendored build starts its search for the next action at the first one that may have a
    result (`firstPendingAction`), not at the first rule: a result added for an earlier rule while a
    later one runs is still found first, and so is one added after the agenda drained. The order is
    upstream's (the slow test below runs the same script on upstream 2.0.28)."""
    done = _python(_SCAN)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["r4", "r2", "r1", "r5", "|", "r3"]


_ARGS = """
import json
import durable_rules_engine as d
h = d.create_ruleset("args", json.dumps({"r": {"all": [{"m": {"type:x": 1}}], "pri": 1}}))
out = []
def show(name, *args):
    try:
        r = getattr(d, name)(*args)
        out.append(f"{name} -> {type(r).__name__} {r!r}" if not isinstance(r, tuple) else f"{name} -> {[type(v).__name__ for v in r]}")
    except Exception as e:
        out.append(f"{name} !! {type(e).__name__}")
fact = json.dumps({"id": "f1", "sid": "s", "type:x": 1})
show("assert_fact", h, fact)
code, state = d.assert_fact(h, json.dumps({"id": "f2", "sid": "s", "type:x": 1}))
show("start_action_for_state", h, state)
show("complete_and_start_action", h, state)
show("complete_and_start_action", h, state)
show("assert_facts", h, "[" + json.dumps({"id": "f3", "sid": "s", "type:x": 1}) + "]")
show("retract_facts", h, "[" + json.dumps({"id": "f3", "sid": "s"}) + "]")
for name in ("assert_fact", "assert_facts", "retract_facts"):
    show(name, h, fact.encode())          # bytes, not str
    show(name, h, fact + "\\0")            # an embedded NUL
    show(name, str(h), fact)              # the handle as text
    show(name, h)                         # too few
    show(name, h, fact, 1)                # too many
for name in ("start_action_for_state", "complete_and_start_action"):
    show(name, h, "1")
    show(name, h)
    show(name, h, state, 1)
    show(name, 1.5, state)
print("\\n".join(out))
"""


def test_the_hot_calls_take_and_give_what_upstream_takes_and_gives():
    """assert_fact, assert_facts, retract_facts, start_action_for_state and complete_and_start_action
    read their arguments without a format string on the vendored build (METH_FASTCALL): the same
    values come back (a pair of integers, a pair of texts, a text or None), and every argument
    upstream refuses (bytes, an embedded NUL, a handle as text or a float, too few, too many) is
    refused with durable-rules' own error. The slow test below runs the same script on upstream."""
    done = _python(_ARGS)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[:6] == [
        "assert_fact -> ['int', 'int']",
        "start_action_for_state -> ['str', 'str']",
        'complete_and_start_action -> str \'{"r":{"m":{"id": "f1", "sid": "s", "type:x": 1}}}\'',
        "complete_and_start_action -> NoneType None",
        "assert_facts -> ['int', 'int']",
        "retract_facts -> ['int', 'int']",
    ]
    assert len(lines) == 6 + 15 + 8 and all(line.endswith("!! error") for line in lines[6:])


def test_on_the_vendored_build_the_engine_keeps_its_state_nodes_by_default():
    """The build says its retraction is bounded, and only then does `Engine` keep state nodes by
    default (upstream: see the slow test below)."""
    from engine import Triager
    from engine.kernel import inference

    assert inference.BOUNDED_RETRACTION is True
    t = Triager()
    assert t.engine.reuse_states is True
    from tests.conftest import load_example
    from tests.test_soak import EXAMPLES

    for name in EXAMPLES:
        t.triage(load_example(name))
    assert t.engine.states_created == 1  # one state node served every patient
    assert t.engine.fallbacks == 0
    assert t.engine.kept_states() == 1
    assert Triager(t.ruleset).engine.reuse_states is True
    from engine.kernel.inference import Engine

    assert Engine(t.ruleset, reuse_states=False).reuse_states is False


def test_the_installed_durable_rules_is_the_vendored_build():
    setup = (VENDORED / "setup.py").read_text()
    want = setup.split("version = '", 1)[1].split("'", 1)[0]
    assert want.startswith("2.0.28+forefoot.")
    assert version("durable_rules") == want, (
        "the installed durable-rules is not the vendored build: install with "
        "`python -m pip install ./third_party/durable_rules -e .` (the README's commands)"
    )


_DIGEST = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import durable_rules_engine
from bench.cohort import cohort
from engine import Triager
from tests.conftest import load_example
from tests.test_soak import EXAMPLES
t = Triager()
h = hashlib.sha256()
patients = list(cohort(int(sys.argv[2]))) + [load_example(e) for e in EXAMPLES]
for p in patients:
    r = t.triage(p)
    h.update(r.__pydantic_serializer__.to_json(r) + b"\\n")
print(durable_rules_engine.__file__, len(patients), h.hexdigest())
"""


@pytest.mark.slow
def test_the_vendored_build_decides_exactly_as_upstream(tmp_path):
    """Every result, trace included, byte for byte, on 2,005 patients: upstream 2.0.28 (rebuilt from
    the vendored source with the patch reversed, as the benchmark's baseline is; state nodes deleted
    after every triage) against the installed vendored build (state nodes kept). Measured once on
    20,005 as well (third_party/README.md)."""
    from bench.run import durable_build

    old_tree = tmp_path / "a tree without third_party"
    old_tree.mkdir()
    what, upstream = durable_build("upstream", old_tree, tmp_path)
    assert what.startswith("upstream 2.0.28")

    def digest(pythonpath: str | None) -> list[str]:
        done = _python(_DIGEST, str(ROOT), "2000", pythonpath=pythonpath)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()

    lifecycle = _python(
        "from engine import Triager; from engine.kernel import inference; "
        "print(inference.BOUNDED_RETRACTION, Triager().engine.reuse_states)",
        pythonpath=str(upstream),
    )
    assert lifecycle.stdout.split() == ["False", "False"], lifecycle.stderr[-2000:]  # upstream: deleted every triage

    args = _python(_ARGS, pythonpath=str(upstream))
    assert args.returncode == 0 and args.stdout == _python(_ARGS).stdout, args.stderr[-2000:]
    scan = _python(_SCAN, pythonpath=str(upstream))
    assert scan.returncode == 0 and scan.stdout == _python(_SCAN).stdout, scan.stderr[-2000:]

    up = digest(str(upstream))
    ours = digest(None)
    assert up[0].startswith(str(upstream)) and not ours[0].startswith(str(upstream))
    assert up[1] == ours[1] == "2005"
    assert up[2] == ours[2]
