"""Property tests: random valid DAGs pass, random damage is always caught and never crashes, and
the data-flow analysis finds exactly what a brute-force walk of the graph finds.

"Never crashes" is checked strictly: ``validate`` turns an internal exception into a single
``bad_plan`` issue, so no test here accepts a ``bad_plan`` issue.
"""

from __future__ import annotations

import copy
import dataclasses
import string
from collections.abc import Callable
from typing import Any, TypedDict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tooldag.plan import CONDITION_OPS, Plan
from tooldag.plan.refs import Ref, iter_refs
from tooldag.registry import ToolRegistry, tool
from tooldag.validate.flows import flows
from tooldag.validate.validator import ISSUE_CODES, validate


class Number(TypedDict):
    value: float
    label: str


class Text(TypedDict):
    text: str
    length: int


@tool
def measure(x: float, y: float = 0.0) -> Number:
    """A number from numbers."""
    return {"value": x + y, "label": "sum"}


@tool
def describe(text: str, times: int = 1) -> Text:
    """Text from text."""
    return {"text": text * times, "length": len(text) * times}


@tool
def combine(amount: float, note: str, tags: list[str] | None = None) -> Number:
    """A number from a number and some text."""
    return {"value": amount, "label": note}


REGISTRY = ToolRegistry([measure, describe, combine])
# For each tool: its arguments and the JSON type each takes; which required.
ARGS = {
    "measure": ({"x": "number", "y": "number"}, {"x"}),
    "describe": ({"text": "string", "times": "integer"}, {"text"}),
    "combine": ({"amount": "number", "note": "string", "tags": "tags"}, {"amount", "note"}),
}
# Output fields by type, per tool.
OUTPUTS = {
    "measure": {"number": ["value"], "string": ["label"]},
    "describe": {"string": ["text"], "number": ["length"]},
    "combine": {"number": ["value"], "string": ["label"]},
}

# data.draw and a composite's draw both fit this.
Draw = Callable[[st.SearchStrategy[Any]], Any]
_ids = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


@st.composite
def valid_plans(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid plan: each step reads only earlier steps, then the list is shuffled."""
    ids = draw(st.lists(_ids, min_size=1, max_size=25, unique=True))
    steps: list[dict[str, Any]] = []
    for i, sid in enumerate(ids):
        tool_name = draw(st.sampled_from(sorted(ARGS)))
        params, required = ARGS[tool_name]
        args: dict[str, Any] = {}
        for name, kind in params.items():
            if name not in required and draw(st.booleans()):
                continue
            args[name] = draw(_value(kind, steps[:i]))
        step: dict[str, Any] = {"id": sid, "tool": tool_name, "args": args}
        if i and draw(st.booleans()):
            step["depends_on"] = draw(st.lists(st.sampled_from(ids[:i]), max_size=3, unique=True))
        if i and draw(st.integers(0, 4)) == 0:
            step["when"] = draw(_condition(steps[:i]))
        steps.append(step)
    shuffled = draw(st.permutations(steps))
    answer = None
    if draw(st.booleans()):
        last = steps[-1]
        field = OUTPUTS[last["tool"]]["string"][0]
        answer = f"Result: ${{{last['id']}.{field}}}"
    return {"goal": "random", "steps": list(shuffled), "answer": answer}


def _refs_of_type(kind: str, earlier: list[dict[str, Any]]) -> list[str]:
    key = "number" if kind in ("number", "integer") else "string"
    return [f"${s['id']}.{f}" for s in earlier for f in OUTPUTS[s["tool"]][key]]


def _value(kind: str, earlier: list[dict[str, Any]]) -> st.SearchStrategy[Any]:
    if kind == "tags":
        texts = _refs_of_type("string", earlier)
        item = st.text(string.ascii_letters, max_size=5)
        if texts:
            item = item | st.sampled_from(texts).map(lambda r: "tag ${" + r[1:] + "}")
        return st.lists(item, max_size=3)
    if kind == "integer":
        return st.integers(-5, 5)  # an integer output field is declared "number": no refs here
    literal: st.SearchStrategy[Any] = (
        st.floats(allow_nan=False, allow_infinity=False) | st.integers(-100, 100)
        if kind == "number"
        else st.text(string.printable.replace("$", ""), max_size=10)
    )
    refs = _refs_of_type(kind, earlier)
    if not refs:
        return literal
    options = [literal, st.sampled_from(refs)]
    if kind == "string":
        options.append(st.sampled_from(refs).map(lambda r: "about ${" + r[1:] + "} and more"))
    return st.one_of(options)


def _condition(earlier: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    numbers = _refs_of_type("number", earlier)
    texts = _refs_of_type("string", earlier)
    leaf = st.one_of(
        st.builds(
            lambda r, op, v: {"ref": r, "op": op, "value": v},
            st.sampled_from(numbers),
            st.sampled_from(["<", "<=", ">", ">=", "==", "!="]),
            st.integers(-10, 10),
        ),
        st.builds(
            lambda r, v: {"ref": r, "op": "in", "value": v},
            st.sampled_from(texts),
            st.lists(st.text(max_size=3), min_size=1, max_size=3),
        ),
        st.builds(lambda r: {"ref": r, "op": "not_none"}, st.sampled_from(texts + numbers)),
    )
    return st.recursive(
        leaf,
        lambda inner: (
            st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=3))
            | st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=3))
            | st.builds(lambda c: {"not": c}, inner)
        ),
        max_leaves=4,
    )


_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(valid_plans())
def test_random_valid_dags_have_no_issues(data: dict[str, Any]) -> None:
    assert validate(Plan.model_validate(data), REGISTRY) == []


# --------------------------------------------------------------------------- damage


def _pick(draw: Draw, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return steps[draw(st.integers(0, len(steps) - 1))]


def _break(draw: Draw, plan: dict[str, Any], how: str) -> None:
    """Damage ``plan`` so that it is invalid by construction."""
    steps = plan["steps"]
    step = _pick(draw, steps)
    # An earlier damage may have renamed the tool: any tool's argument names do then.
    params, required = ARGS.get(step["tool"], ARGS["measure"])
    if how == "unknown_tool":
        step["tool"] = draw(st.sampled_from(["get_weather", "measur", "describe2", "x"]))
    elif how == "duplicate_id":
        if len(steps) == 1:
            steps.append(copy.deepcopy(step))
        else:
            other = draw(st.sampled_from([s for s in steps if s is not step]))
            other["id"] = step["id"]
    elif how == "invalid_id":
        step["id"] = draw(st.sampled_from(["1" + step["id"], step["id"] + " x", "a-b", ""]))
    elif how == "unknown_step_ref":
        name = draw(st.sampled_from(sorted(params)))
        step["args"][name] = "$nowhere_" + step["id"] + ".value"
    elif how == "unknown_step_dep":
        step.setdefault("depends_on", []).append("nowhere_" + step["id"])
    elif how == "cycle":
        later = {s["id"] for s in steps} - {step["id"]}
        if later:
            other = draw(st.sampled_from(sorted(later)))
            target = next(s for s in steps if s["id"] == other)
            step.setdefault("depends_on", []).append(other)
            target.setdefault("depends_on", []).append(step["id"])
        else:
            step.setdefault("depends_on", []).append(step["id"])
    elif how == "self_reference":
        name = draw(st.sampled_from(sorted(params)))
        step["args"][name] = f"${step['id']}.value"
    elif how == "missing_argument":
        step["args"].pop(draw(st.sampled_from(sorted(required))), None)
    elif how == "unexpected_argument":
        step["args"]["surprise"] = draw(st.integers() | st.text(max_size=3))
    elif how == "type_mismatch":
        name = draw(st.sampled_from(sorted(required)))
        kind = params[name]
        step["args"][name] = "not a number" if kind == "number" else 42
    elif how == "unknown_field":
        others = [s for s in steps if s is not step]
        if others:
            other = draw(st.sampled_from(others))
            step["args"]["tags" if step["tool"] == "combine" else next(iter(sorted(params)))] = (
                f"${other['id']}.no_such_field"
            )
        else:
            step["args"]["surprise"] = 1
    elif how == "bad_reference":
        name = draw(st.sampled_from(sorted(params)))
        step["args"][name] = draw(st.sampled_from(["$x.", "a ${b", "${c d}", "$y["]))
    elif how == "bad_condition":
        others = [s for s in steps if s is not step]
        ref = f"${others[0]['id']}.value" if others else "not a ref"
        op = draw(st.sampled_from(["=>", "equals", "", "LT"]))
        step["when"] = {"ref": ref, "op": op, "value": 1}
    elif how == "empty_plan":
        plan["steps"] = []
        plan["answer"] = None
    else:  # pragma: no cover - the list below and this function must agree
        raise AssertionError(how)


_DAMAGE = [
    "unknown_tool",
    "duplicate_id",
    "invalid_id",
    "unknown_step_ref",
    "unknown_step_dep",
    "cycle",
    "self_reference",
    "missing_argument",
    "unexpected_argument",
    "type_mismatch",
    "unknown_field",
    "bad_reference",
    "bad_condition",
    "empty_plan",
]


@_SETTINGS
@given(valid_plans(), st.lists(st.sampled_from(_DAMAGE), min_size=1, max_size=3), st.data())
def test_plans_damaged_by_construction_always_get_an_issue(
    data: dict[str, Any], damage: list[str], draw: st.DataObject
) -> None:
    plan = copy.deepcopy(data)
    for how in damage:
        if plan["steps"]:
            _break(draw.draw, plan, how)
    issues = validate(Plan.model_validate(plan), REGISTRY)
    assert issues, f"no issue after {damage}"
    assert all(issue.code in ISSUE_CODES for issue in issues), issues


_junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(
        ["$", "$$", "${", "$a", "$a.b", "${a.b}", "$a[0]", '$a["k"]', "$1", "$a.0.x"]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=10,
)


@_SETTINGS
@given(valid_plans(), st.data())
def test_random_mutations_never_make_validate_crash(
    data: dict[str, Any], draw: st.DataObject
) -> None:
    plan = copy.deepcopy(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        step = _pick(draw.draw, plan["steps"])
        what = draw.draw(st.sampled_from(["arg", "args", "when", "deps", "tool", "answer"]))
        if what == "arg":
            step["args"][draw.draw(st.text(max_size=5))] = draw.draw(_junk)
        elif what == "args":
            step["args"] = draw.draw(st.dictionaries(st.text(max_size=5), _junk, max_size=3))
        elif what == "when":
            step["when"] = draw.draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "ref": _junk,
                        "op": st.sampled_from([*CONDITION_OPS, "??"]) | _junk,
                        "value": _junk,
                    },
                )
            )
        elif what == "deps":
            step["depends_on"] = draw.draw(st.lists(st.text(max_size=5), max_size=3))
        elif what == "tool":
            step["tool"] = draw.draw(st.text(max_size=8))
        else:
            plan["answer"] = draw.draw(
                st.text(max_size=20) | st.sampled_from(["${", "$x.y", "${q}"])
            )
    issues = validate(Plan.model_validate(plan), REGISTRY)
    assert all(issue.code != "bad_plan" for issue in issues), issues
    flows(Plan.model_validate(plan), TRUST)  # a best effort on an invalid plan, never a crash


# The same tools with capabilities: measure reads private data, describe returns untrusted text
# and sends its text, combine sends its note and tags.
TRUST = ToolRegistry(
    [
        dataclasses.replace(measure, reads_private=True, egress=frozenset()),
        dataclasses.replace(describe, untrusted_output=True, egress=frozenset({"text"})),
        dataclasses.replace(combine, egress=frozenset({"note", "tags"})),
    ]
)


def _brute_force_flows(plan: Plan) -> set[tuple[str, str, str]]:
    """(source, step, channel) for every source that reaches an egress channel, by walking
    every path back from each channel: quadratic, and obviously right. A source that reaches a
    step's egress arguments is not named again for its when or depends_on, nor for its
    depends_on when its when names it."""
    steps = {s.id: s for s in plan.steps}

    def named(value: Any) -> set[str]:
        return {r.step for r, _ in iter_refs(value) if isinstance(r, Ref)} & set(steps)

    inputs: dict[str, dict[str, set[str]]] = {}
    for s in plan.steps:
        channels = {f"args.{arg}": named(value) for arg, value in s.args.items()}
        leaves = s.when.iter_leaves() if s.when is not None else []
        channels["when"] = set().union(*(named(leaf.ref) | named(leaf.value) for leaf in leaves))
        channels["depends_on"] = set(s.depends_on) & set(steps)
        inputs[s.id] = {k: v - {s.id} for k, v in channels.items()}

    def ancestors(sid: str) -> set[str]:
        seen: set[str] = set()
        todo = [sid]
        while todo:
            for parent in set().union(*inputs[todo.pop()].values()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    found = set()
    for s in plan.steps:
        t = TRUST.get(s.tool)
        reported: set[str] = set()  # a control channel names only sources not named yet
        for channel, direct in inputs[s.id].items():  # the arguments first, then when, depends_on
            arg = channel.removeprefix("args.")
            if not t.egress or (channel.startswith("args.") and not t.is_egress(arg)):
                continue
            reached = {
                source
                for source in direct | set().union(*(ancestors(d) for d in direct))
                if TRUST.get(steps[source].tool).reads_private
                or TRUST.get(steps[source].tool).untrusted_output
            }
            if not channel.startswith("args."):
                reached -= reported
            reported |= reached
            found |= {(source, s.id, channel) for source in reached}
    return found


@_SETTINGS
@given(valid_plans())
def test_flows_are_exactly_the_paths_from_sources_to_egress(data: dict[str, Any]) -> None:
    plan = Plan.model_validate(data)
    got = {
        (f.source, f.step, f"args.{f.argument}" if f.channel == "data" else f.channel)
        for f in flows(plan, TRUST)
    }
    assert got == _brute_force_flows(plan)
