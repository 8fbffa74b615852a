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
from collections.abc import Mapping
from html import escape
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .refs import Ref, Template, iter_refs, parse_string
from .svg import plan_svg

__all__ = ["CONDITION_OPS", "Condition", "Plan", "Step"]

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


class Plan(BaseModel):
    """A goal, its steps (any order: the graph is in the references) and an answer template."""

    model_config = ConfigDict(extra="forbid")

    goal: str = ""
    steps: list[Step] = Field(default_factory=list)
    answer: str | None = None

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
