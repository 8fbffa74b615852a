"""Goal sets: one goal a line (JSONL), each with its tools and what a right run looks like.

A row::

    {"id": "calc-percent",
     "goal": "What is 17% of 2,340?",
     "tools": ["calc"],
     "answer": {"number": 397.8, "tolerance": 0.01},
     "plan": {"steps": [{"id": "pct", "tool": "calculate",
                         "args": {"expression": "2340 * 17 / 100"}}],
              "answer": "${pct.result}"}}

- ``goal`` (required): the goal as a user would type it.
- ``tools``: ``--tools`` SPECs (a pack name, a ``.py`` or ``.json`` path) and/or tool objects
  in the JSON tools format (``name``, ``description``, ``parameters``...); default: every
  built-in pack.
- ``answer``: the expected answer, see :class:`~tooldag.evaluation.answers.Expected`.
- ``plan``: a gold plan (a tooldag plan; read leniently, as plans from an LLM are), the reference
  for node and edge F1.
- ``calls``: the expected tool calls, ``[{"tool": "calculate", "args": {...}}, ...]``, the
  reference for argument F1 (by default the gold plan's steps); a reference names a call by its
  ``id`` (``call0``, ``call1``... when it has none).
- ``files``: the goal's workspace, path -> content: text, or for a ``.db``/``.sqlite`` path a
  list of SQL statements that build it. Each goal runs in a new temporary directory holding
  just these files.
- ``execute``: false to only plan (no tool runs); by default a goal is planned only when one of
  its tools is schema-only (no Python function to run).
- ``id``, ``tags``: for the report.

Every mistake in a file is a :class:`~tooldag.errors.ConfigError` naming the file and line.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, PlanError, TooldagError
from ..plan.model import Plan
from ..plan.parse import parse_plan
from ..registry.loading import load_registry, load_tools
from ..registry.registry import ToolRegistry
from .answers import Expected

__all__ = [
    "BUILTIN_SET",
    "ExpectedCall",
    "Goal",
    "GoalRow",
    "build_workspace",
    "goal_from_row",
    "load_goals",
    "parse_goal_rows",
    "read_records",
]

BUILTIN_SET = "builtin.jsonl"
"""The goal set shipped with tooldag (``tooldag eval`` with no file)."""

_DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


class ExpectedCall(BaseModel):
    """One expected tool call."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class GoalRow(BaseModel):
    """One line of a goal file, as written."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    goal: str = Field(min_length=1)
    # Checked by goal_from_row, which says what is wrong in words (pydantic's messages for
    # unions name the union's member types).
    tools: Any = None
    answer: Expected | None = None
    plan: Any = None
    calls: list[ExpectedCall] | None = None
    files: dict[str, str | list[str]] = Field(default_factory=dict)
    execute: bool | None = None
    tags: list[str] = Field(default_factory=list)


@dataclass
class Goal:
    """A goal ready to run: its row, its tools, and the gold plans parsed."""

    id: str
    goal: str
    registry: ToolRegistry
    answer: Expected | None = None
    plan: Plan | None = None
    """The gold plan (node and edge F1)."""
    calls: Plan | None = None
    """The expected calls as a plan (argument F1): ``calls`` if given, else the gold plan."""
    files: dict[str, str | list[str]] = field(default_factory=dict)
    execute: bool = True
    tags: list[str] = field(default_factory=list)
    line: int = 0
    source: str = ""

    @property
    def egress_tools(self) -> list[str]:
        """The tools of this goal that send data off the machine (see ``tooldag eval``)."""
        return sorted(t.name for t in self.registry if t.egress)


def _one_line(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


_REGISTRY_CACHE: dict[str, ToolRegistry] = {}


def _registry(tools: Any) -> ToolRegistry:
    if tools is None:
        key = "\0builtin"
        if key not in _REGISTRY_CACHE:
            _REGISTRY_CACHE[key] = load_registry(None)
        return ToolRegistry(_REGISTRY_CACHE[key])
    specs = [tools] if isinstance(tools, str) else tools
    if not isinstance(specs, list) or not all(isinstance(i, str | dict) for i in specs):
        raise ConfigError(
            'tools: expected a list of --tools SPECs and tool objects, e.g. ["calc", "time"]'
        )
    registry = ToolRegistry()
    inline = [item for item in specs if isinstance(item, dict)]
    for item in specs:
        if isinstance(item, str):
            registry.extend(load_tools(item), replace=True)
    if inline:
        registry.extend(ToolRegistry().load_json(inline), replace=True)
    return registry


def _calls_plan(calls: list[ExpectedCall]) -> Plan:
    """The expected calls as a plan, each call a step named by its ``id`` (``call0``,
    ``call1``... by default), which references use."""
    steps = [
        {"id": c.id or f"call{i}", "tool": c.tool, "args": c.args} for i, c in enumerate(calls)
    ]
    return Plan.model_validate({"steps": steps})


def goal_from_row(row: GoalRow, *, line: int = 0, source: str = "", index: int = 0) -> Goal:
    """A :class:`Goal` from a row: tools loaded, gold plans parsed (errors are TooldagErrors)."""
    registry = _registry(row.tools)
    for rel, content in row.files.items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ConfigError(f"files: {rel!r} must be a path inside the workspace")
        if isinstance(content, list) and not rel.endswith(_DATABASE_SUFFIXES):
            raise ConfigError(
                f"files: {rel!r} is given SQL statements, which only build a database "
                f"(name it *{', *'.join(_DATABASE_SUFFIXES)})"
            )
    gold = None
    if row.plan is not None:
        if not isinstance(row.plan, dict | list):
            raise ConfigError('plan: expected a plan object, {"steps": [...], "answer": ...}')
        try:
            gold = parse_plan(row.plan)
        except PlanError as exc:
            detail = "; ".join(str(i) for i in exc.issues) or str(exc).splitlines()[0]
            raise ConfigError(f"plan: the gold plan is not a plan: {detail}") from None
        if not gold.goal:
            gold = gold.model_copy(update={"goal": row.goal})
    calls = _calls_plan(row.calls) if row.calls else gold
    schema_only = any(t.function is None for t in registry)
    execute = row.execute if row.execute is not None else not schema_only
    return Goal(
        id=row.id or f"goal-{index + 1}",
        goal=row.goal,
        registry=registry,
        answer=row.answer,
        plan=gold,
        calls=calls,
        files=dict(row.files),
        execute=execute,
        tags=list(row.tags),
        line=line,
        source=source,
    )


def read_records(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded JSON)`` for each record of a JSONL text, or of a JSON array (the
    whole text starting with ``[``: its items, all numbered line 1 ... n by position)."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source} line {exc.lineno}: not valid JSON ({exc.msg})") from None
        if isinstance(data, list):
            yield from enumerate(data, 1)
            return
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{source} line {number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                "a goal file holds one JSON object a line"
            ) from None


def parse_goal_rows(records: Iterable[tuple[int, Any]], source: str) -> list[Goal]:
    """Goals from decoded tooldag rows; a mistake names ``source`` and the line."""
    goals: list[Goal] = []
    seen: dict[str, int] = {}
    for number, data in records:
        where = f"{source} line {number}"
        if not isinstance(data, Mapping):
            raise ConfigError(f'{where}: expected a JSON object with a "goal", not {data!r:.40}')
        try:
            row = GoalRow.model_validate(data)
            goal = goal_from_row(row, line=number, source=source, index=len(goals))
        except pydantic.ValidationError as exc:
            raise ConfigError(f"{where}: {_one_line(exc)}") from None
        except TooldagError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if goal.id in seen:
            raise ConfigError(
                f"{where}: id {goal.id!r} is already used on line {seen[goal.id]}; ids are unique"
            )
        seen[goal.id] = number
        goals.append(goal)
    if not goals:
        raise ConfigError(f"{source} holds no goals")
    return goals


def load_goals(path: str | Path | None = None, *, format: str = "auto") -> list[Goal]:
    """The goals of a file (``None``: the shipped set). ``format`` is ``tooldag``, ``nestools``,
    ``nestful`` or ``auto`` (by the keys of the first record)."""
    from .importers import convert_records, detect_format

    if path is None:
        source = BUILTIN_SET
        shipped = resources.files("tooldag.evaluation").joinpath("sets", BUILTIN_SET)
        text = shipped.read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"no such goal file: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"{path} is a directory, not a goal file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not a UTF-8 text file") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    records = list(read_records(text, source))
    kind = detect_format(records, source) if format == "auto" else format
    if kind != "tooldag":
        records = list(convert_records(records, kind, source))
    return parse_goal_rows(records, source)


def build_workspace(root: Path, files: Mapping[str, str | list[str]]) -> None:
    """Lay out a goal's ``files`` under ``root``: text files, and SQLite databases built from
    their SQL statements."""
    for rel, content in files.items():
        target = (root / rel).resolve()
        if not target.is_relative_to(root.resolve()):
            raise ConfigError(f"files: {rel!r} leads outside the workspace; use a relative path")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, list):
            conn = sqlite3.connect(target)
            try:
                with conn:
                    for statement in content:
                        conn.execute(statement)
            except sqlite3.Error as exc:
                raise ConfigError(f"files: building {rel} failed: {exc}") from None
            finally:
                conn.close()
        else:
            target.write_text(content, encoding="utf-8")
