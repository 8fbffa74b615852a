"""The canonical plan model: ``Plan``, ``Step`` and ``Condition``.

Everything after the lenient parser (:func:`tooldag.parse_plan`) sees only these models. See
DESIGN.md §2 "The plan" for the format; a short example:

>>> plan = Plan.model_validate({
...     "goal": "weather and outfit",
...     "steps": [
...         {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
...         {"id": "outfit", "tool": "recommend_outfit",
...          "args": {"temperature": "$weather.temp", "condition": "$weather.condition"}},
...     ],
...     "answer": "Wear ${outfit.outfit}.",
... })
>>> plan.dependencies()["outfit"]
('weather',)
"""

from __future__ import annotations

import json
from collections.abc import Container, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .refs import Ref, Template, iter_refs, may_hold_bare_ref, parse_string, read_bare_refs
from .svg import plan_svg

__all__ = ["BareReference", "CONDITION_OPS", "Condition", "Plan", "Step"]

# The seed's operators plus not_none and in.
CONDITION_OPS = ("==", "!=", "<", "<=", ">", ">=", "contains", "is_none", "not_none", "in")


class Condition(BaseModel):
    """``{"ref": "$weather.temp", "op": "<", "value": 0}``, or ``{"all": [...]}``,
    ``{"any": [...]}``, ``{"not": {...}}``. ``value`` may itself be a reference.

    The model accepts any shape so that a malformed condition becomes a ``bad_condition`` issue
    from the validator rather than a parse failure.
    """

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    ref: Any = None
    op: Any = None
    value: Any = None
    all_: list[Condition] | None = Field(default=None, alias="all")
    any_: list[Condition] | None = Field(default=None, alias="any")
    not_: Condition | None = Field(default=None, alias="not")

    def to_json(self) -> dict[str, Any]:
        if self.all_ is not None:
            return {"all": [c.to_json() for c in self.all_]}
        if self.any_ is not None:
            return {"any": [c.to_json() for c in self.any_]}
        if self.not_ is not None:
            return {"not": self.not_.to_json()}
        out: dict[str, Any] = {"ref": self.ref, "op": self.op}
        if self.op not in ("is_none", "not_none") or self.value is not None:
            out["value"] = self.value
        return out

    def iter_leaves(self) -> list[Condition]:
        """The comparison leaves of the condition tree."""
        if self.all_ is not None or self.any_ is not None:
            return [leaf for c in (self.all_ or self.any_ or []) for leaf in c.iter_leaves()]
        if self.not_ is not None:
            return self.not_.iter_leaves()
        return [self]


class Step(BaseModel):
    """One tool call. ``depends_on`` adds ordering-only edges to those derived from references."""

    model_config = ConfigDict(extra="forbid")

    id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    when: Condition | None = None
    timeout: float | None = None
    description: str | None = None

    def refs(self) -> list[Ref]:
        """Every well-formed reference in args and condition."""
        found = [r for r, _ in iter_refs(self.args) if isinstance(r, Ref)]
        if self.when is not None:
            for leaf in self.when.iter_leaves():
                for value in (leaf.ref, leaf.value):
                    found.extend(r for r, _ in iter_refs(value) if isinstance(r, Ref))
        return found

    def data_dependencies(self) -> list[str]:
        """Steps whose output this step reads (in args or ``when``), in first-seen order."""
        return list(dict.fromkeys(r.step for r in self.refs()))

    def dependencies(self) -> list[str]:
        """Data dependencies plus ``depends_on``, without duplicates."""
        return list(dict.fromkeys([*self.data_dependencies(), *self.depends_on]))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "tool": self.tool, "args": self.args}
        if self.depends_on:
            out["depends_on"] = list(self.depends_on)
        if self.when is not None:
            out["when"] = self.when.to_json()
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class BareReference:
    """A ``$step.path`` written inside text, which the plan reads as ``${step.path}``: ``owner``
    is the step whose argument or condition holds the text (None for the answer), ``path`` the
    JSON path of the text, ``ref`` the reference read (``"date_add.result"``)."""

    owner: str | None
    path: str
    ref: str


class Plan(BaseModel):
    """A goal, its steps (any order: the graph is in the references) and an answer template.

    Building a plan reads every ``$step.path`` written inside text, where ``step`` is a step of
    the plan, as ``${step.path}``: the text is rewritten once, here, so that everything after
    (validator, executor, views, the journal) reads the same plan. :attr:`bare_references` lists
    what was read, for the validator's warnings.
    """

    model_config = ConfigDict(extra="forbid")

    goal: str = ""
    steps: list[Step] = Field(default_factory=list)
    answer: str | None = None
    _bare: tuple[BareReference, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        self._bare = _read_bare_references(self)

    @property
    def bare_references(self) -> tuple[BareReference, ...]:
        """The ``$step.path`` written inside text that this plan read as ``${step.path}`` when it
        was built."""
        return self._bare

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def dependencies(self) -> dict[str, tuple[str, ...]]:
        """Step id -> the step ids it waits for (references and ``depends_on``)."""
        return {s.id: tuple(s.dependencies()) for s in self.steps}

    def answer_refs(self) -> list[Ref]:
        if not self.answer or "$" not in self.answer:
            return []
        parsed = parse_string(self.answer)
        if isinstance(parsed, Ref):
            return [parsed]
        if isinstance(parsed, Template):
            return list(parsed.refs)
        return []

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form (what ``parse_plan`` returns a model of)."""
        out: dict[str, Any] = {"goal": self.goal, "steps": [s.to_json() for s in self.steps]}
        if self.answer is not None:
            out["answer"] = self.answer
        return out

    def dumps(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_json(), indent=indent, ensure_ascii=False)

    def to_svg(self, statuses: Mapping[str, str] | None = None) -> str:
        """The plan's graph as an SVG picture (:mod:`tooldag.plan.svg`, as the web viewer draws
        it), boxes coloured by ``statuses`` (step id -> status word) when given."""
        return plan_svg(self, statuses)

    def _repr_svg_(self) -> str:
        """How a plan shows in Jupyter, VS Code and on GitHub: its graph, drawn inline (no
        script, no network)."""
        return self.to_svg()

    def _repr_html_(self) -> str:
        goal = f"<p><b>{escape(self.goal)}</b></p>" if self.goal else ""
        return f'<div class="tooldag-plan">{goal}{self.to_svg()}</div>'


class _BareReader:
    """Reads the bare references of one plan (:func:`~tooldag.plan.refs.read_bare_refs`) and
    records them. A plan of 100k steps is built in this pass too, so the common strings (no
    ``$``, only ``${...}``, a whole reference) cost one cheap test each, and the step ids and
    JSON paths are only made once a string needs them."""

    __slots__ = ("found", "ids", "plan")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.ids: Container[str] | None = None
        self.found: list[BareReference] = []

    def text(self, value: str, owner: str | None, path: str) -> str:
        if self.ids is None:
            self.ids = frozenset(s.id for s in self.plan.steps)
        read = read_bare_refs(value, self.ids)
        if read is None:
            return value
        self.found.extend(BareReference(owner, path, ref) for ref in read[1])
        return read[0]

    def value(self, value: Any, owner: str, path: str) -> Any:
        """``value`` (an argument or a condition operand) with its bare references read; the same
        object when there is none, else a new one (a caller's nested lists are never changed)."""
        if not _may_hold_bare(value):
            return value
        if type(value) is str:
            return self.text(value, owner, path)
        if type(value) is list:
            return [self.value(item, owner, f"{path}[{i}]") for i, item in enumerate(value)]
        return {k: self.value(v, owner, f"{path}.{k}") for k, v in value.items()}

    def condition(self, cond: Condition, owner: str, path: str) -> None:
        for key, items in (("all", cond.all_), ("any", cond.any_)):
            for i, sub in enumerate(items or ()):
                self.condition(sub, owner, f"{path}.{key}[{i}]")
        if cond.not_ is not None:
            self.condition(cond.not_, owner, f"{path}.not")
        if cond.value is not None:
            cond.value = self.value(cond.value, owner, f"{path}.value")


def _may_hold_bare(value: Any) -> bool:
    """Whether a string, or a string anywhere in a list or object, may hold a bare reference."""
    kind = type(value)
    if kind is str:
        return "$" in value and may_hold_bare_ref(value)
    if kind is list:
        return any(_may_hold_bare(item) for item in value)
    if kind is dict:
        return any(_may_hold_bare(item) for item in value.values())
    return False


def _read_bare_references(plan: Plan) -> tuple[BareReference, ...]:
    """Rewrite ``plan``'s bare references in place (see :class:`Plan`); return what was read."""
    reader: _BareReader | None = None
    for index, step in enumerate(plan.steps):
        args = step.args
        for name, value in args.items():
            kind = type(value)
            if kind is str:
                # may_hold_bare_ref, inlined: this runs once per argument of a plan.
                if "$" not in value:
                    continue
                dollars = value.count("$")
                if dollars == value.count("${") or (
                    dollars == 1 and value[0] == "$" and type(parse_string(value)) is Ref
                ):
                    continue
            elif kind is not list and kind is not dict:
                continue
            if _may_hold_bare(value):
                reader = reader or _BareReader(plan)
                new = reader.value(value, step.id, f"steps[{index}].args.{name}")
                if new != value:
                    step.args = args = {**args, name: new}
        if step.when is not None and _condition_may_hold_bare(step.when):
            reader = reader or _BareReader(plan)
            reader.condition(step.when, step.id, f"steps[{index}].when")
    if plan.answer and "$" in plan.answer and may_hold_bare_ref(plan.answer):
        reader = reader or _BareReader(plan)
        plan.answer = reader.text(plan.answer, None, "answer")
    return tuple(reader.found) if reader is not None else ()


def _condition_may_hold_bare(cond: Condition) -> bool:
    if cond.all_ is not None or cond.any_ is not None:
        return any(_condition_may_hold_bare(c) for c in cond.all_ or cond.any_ or ())
    if cond.not_ is not None:
        return _condition_may_hold_bare(cond.not_)
    return _may_hold_bare(cond.value)
