"""Tools and the registry that holds them.

A tool is a name, a description, a JSON Schema for its arguments, optionally one for its output,
and optionally a Python callable (sync or async). Three ways to declare one:

>>> from tooldag import ToolRegistry, tool
>>> @tool(side_effects=False)
... def get_weather(location: str) -> dict:
...     '''Current weather for a place.
...
...     Args:
...         location: City name, e.g. "London".
...     '''
...     return {"location": location, "temp": 18, "condition": "rainy"}
>>> registry = ToolRegistry([get_weather])
>>> registry.execute("get_weather", location="London")["temp"]
18

The seed's explicit form ``registry.register(name=..., parameters_schema=Model, function=...)``
and schema-only tools (``registry.add_schema_tool(...)``, ``ToolRegistry.from_json(path)``) are the
other two. The types that define a tool (:class:`Tool`, :class:`ToolContext`, ...) live in
:mod:`tooldag.registry.tool` and are re-exported here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import inspect
import json
import re
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, get_type_hints, overload

import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter

from ..errors import ConfigError, RegistrationError, ToolArgumentError, ToolNotFoundError
from ._docstrings import parse_docstring
from ._typing import typeddict_compat
from .capabilities import capabilities_from_hints, egress_set

# The definition types live in tooldef; they are re-exported here, where users import them from.
from .tool import Compensation, RetryPolicy, Tool, ToolCategory, ToolContext

__all__ = [
    "Compensation",
    "RetryPolicy",
    "Tool",
    "ToolCategory",
    "ToolContext",
    "ToolRegistry",
    "tool",
]

# --------------------------------------------------------------------------- @tool


def _output_schema_for(annotation: Any, where: str) -> dict[str, Any] | None:
    if annotation in (inspect.Signature.empty, Any, None, type(None)):
        return None
    try:
        return TypeAdapter(typeddict_compat(annotation)).json_schema()
    except Exception as exc:
        raise RegistrationError(
            f"{where}: the return type {annotation!r} cannot be expressed in JSON Schema ({exc}); "
            "return a pydantic model, TypedDict, dataclass or plain JSON type"
        ) from None


def _function_tool(
    func: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    **meta: Any,
) -> Tool:
    if not callable(func):
        raise RegistrationError(f"@tool needs a function, got {type(func).__name__}")
    tool_name = name if name is not None else getattr(func, "__name__", None)
    if not isinstance(tool_name, str):
        raise RegistrationError(f"{func!r} has no __name__: pass @tool(name=...)")
    unknown = set(meta) - _TOOL_OPTIONS
    if unknown:
        raise RegistrationError(
            f"tool {tool_name!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"valid: name, description, {', '.join(sorted(_TOOL_OPTIONS))}"
        )
    summary, arg_docs = parse_docstring(func.__doc__)
    try:
        hints = get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
    except Exception as exc:
        raise RegistrationError(f"tool {tool_name!r}: cannot read its type hints ({exc})") from None
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise RegistrationError(
                f"tool {tool_name!r}: {star}{pname} cannot be described to an LLM; "
                "declare each argument explicitly"
            )
        annotation = typeddict_compat(hints.get(pname, Any))
        if _is_context(annotation):
            context_param = pname
            continue
        if pname.startswith("_"):
            raise RegistrationError(
                f"tool {tool_name!r}: argument {pname!r} starts with '_', which pydantic keeps "
                "private; rename it"
            )
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (
            annotation,
            pydantic.Field(default, description=arg_docs.get(pname) or None),
        )
    model_name = "".join(part.capitalize() for part in re.split(r"[_-]", tool_name)) + "Args"
    try:
        model = pydantic.create_model(
            model_name,
            __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        params = model.model_json_schema()
    except Exception as exc:
        raise RegistrationError(
            f"tool {tool_name!r}: a parameter type cannot be expressed in JSON Schema ({exc}); "
            "use str, int, float, bool, list, dict, Literal, Enum, TypedDict or a pydantic model"
        ) from None
    params.pop("title", None)
    for prop in params.get("properties", {}).values():
        prop.pop("title", None)
    output = _output_schema_for(hints.get("return", inspect.Signature.empty), f"tool {tool_name!r}")
    desc = description if description is not None else summary
    if not desc:
        desc = tool_name.replace("_", " ")
    return Tool(
        name=tool_name,
        description=desc,
        parameters=params,
        function=func,
        output_schema=output,
        args_model=model,
        context_param=context_param,
        **_meta_from_json(meta, tool_name),
    )


def _is_context(annotation: Any) -> bool:
    """``ToolContext`` or ``ToolContext | None``: filled in by the executor, hidden from the LLM."""
    if annotation is ToolContext:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args == [ToolContext]
    return False


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    func: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    category: str = ...,
    version: str = ...,
    side_effects: bool = ...,
    idempotent: bool = ...,
    timeout: float | None = ...,
    retry: RetryPolicy = ...,
    compensate: Compensation | None = ...,
    reads_private: bool = ...,
    egress: bool | Iterable[str] = ...,
    untrusted_output: bool = ...,
    metadata: dict[str, Any] = ...,
    runner: str | None = ...,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None, /, **options: Any
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a :class:`Tool` of a typed function: bare ``@tool`` or ``@tool(side_effects=False)``.

    The argument schema comes from the type hints (validated by pydantic), descriptions from the
    docstring, the output schema from the return annotation. A parameter annotated
    :class:`ToolContext` (or ``ToolContext | None``) is not shown to the LLM; the executor fills
    it in. ``reads_private``, ``egress`` (``True``, ``False`` or argument names) and
    ``untrusted_output`` say what the tool does with data (see
    :mod:`~tooldag.registry.capabilities`). ``runner`` says where its calls run (``"local"``,
    ``"dask"``; kept as ``metadata["placement"]``, see :mod:`~tooldag.execution.runners`).
    """
    if func is not None:
        return _function_tool(func, **options)

    def decorate(f: Callable[..., Any]) -> Tool:
        return _function_tool(f, **options)

    return decorate


# --------------------------------------------------------------------------- registry


def _check_schema(schema: Any, what: str, where: str) -> None:
    """RegistrationError unless ``schema`` is a valid JSON Schema (hand-written ones may not be)."""
    if schema is None:
        return
    import jsonschema

    if not isinstance(schema, dict):
        raise RegistrationError(
            f"{where}: {what} must be a JSON Schema object, not {type(schema).__name__}"
        )
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        at = "/".join(str(p) for p in exc.path)
        raise RegistrationError(
            f"{where}: {what} is not a valid JSON Schema ({exc.message}"
            f"{' at ' + at if at else ''}); fix it, e.g. "
            '{"type": "object", "properties": {"city": {"type": "string"}}}'
        ) from None


def _schema_of_model(model: Any, where: str) -> tuple[dict[str, Any], type[BaseModel] | None]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        try:
            return model.model_json_schema(), model
        except Exception as exc:
            raise RegistrationError(
                f"{where}: the model {model.__name__} cannot be expressed in JSON Schema ({exc})"
            ) from None
    if isinstance(model, dict):
        _check_schema(model, "parameters_schema", where)
        return model, None
    raise RegistrationError(
        f"{where}: parameters_schema must be a pydantic model class or a JSON Schema dict, "
        f"not {type(model).__name__}"
    )


class ToolRegistry:
    """The tools a planner may use and an executor may run, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add(t)

    # -- collection protocol
    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"<ToolRegistry {len(self)} tools>"

    def names(self) -> list[str]:
        return list(self._tools)

    def closest(self, name: str) -> str | None:
        """The registered name most like ``name`` (for "did you mean" hints)."""
        match = difflib.get_close_matches(name, self._tools, n=1, cutoff=0.6)
        if match:
            return match[0]
        lowered = {n.lower(): n for n in self._tools}
        return lowered.get(name.lower())

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            close = self.closest(name)
            raise ToolNotFoundError(name, f"did you mean {close}?" if close else None) from None

    # -- declaring tools
    def add(self, t: Tool, *, replace: bool = False) -> Tool:
        if not isinstance(t, Tool):
            raise RegistrationError(
                f"expected a Tool, got {type(t).__name__}; decorate it with @tool"
            )
        if t.name in self._tools and not replace:
            raise RegistrationError(
                f"a tool named {t.name!r} is already registered; pick another name or pass "
                "replace=True"
            )
        self._tools[t.name] = t
        return t

    def extend(self, tools: Iterable[Tool], *, replace: bool = False) -> None:
        for t in tools:
            self.add(t, replace=replace)

    def tool(self, func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        """Decorator: like :func:`tool`, and registers the result here."""
        if func is not None:
            return self.add(tool(func, **options))

        def decorate(f: Callable[..., Any]) -> Tool:
            return self.add(tool(f, **options))

        return decorate

    def register(
        self,
        name: str,
        description: str,
        parameters_schema: Any,
        function: Callable[..., Any] | None = None,
        category: str = ToolCategory.OTHER.value,
        version: str = "1.0.0",
        **meta: Any,
    ) -> Tool:
        """The seed's explicit form: a pydantic model (or JSON Schema dict) for the arguments."""
        params, model = _schema_of_model(parameters_schema, f"tool {name!r}")
        output = meta.pop("output_schema", None)
        if isinstance(output, dict):
            _check_schema(output, "output_schema", f"tool {name!r}")
        elif output is not None:
            output = _output_schema_for(output, f"tool {name!r}")
        elif output is None and function is not None:
            try:
                ret = get_type_hints(function).get("return", inspect.Signature.empty)
            except Exception:
                ret = inspect.Signature.empty
            output = _output_schema_for(ret, f"tool {name!r}")
        return self.add(
            Tool(
                name=name,
                description=description,
                parameters=params,
                function=function,
                output_schema=output,
                category=str(getattr(category, "value", category)),
                version=version,
                args_model=model,
                **_meta_from_json(meta, name),
            )
        )

    def add_schema_tool(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        output_schema: dict[str, Any] | None = None,
        **meta: Any,
    ) -> Tool:
        """A tool known only by its JSON Schema (remote/MCP tools, ``--tools tools.json``).

        MCP-style ``annotations`` (``readOnlyHint``, ``destructiveHint``, ``idempotentHint``,
        ``openWorldHint``) fill in the metadata the other keys leave out; they are kept in
        ``metadata``. Being a server's word, they never make a tool more trusted than the
        defaults (see :func:`~tooldag.registry.capabilities.capabilities_from_hints`).
        """
        meta = {**capabilities_from_hints(meta.get("annotations"), meta), **meta}
        if not isinstance(parameters, dict):
            raise RegistrationError(f"tool {name!r}: 'parameters' must be a JSON Schema object")
        _check_schema(parameters, "parameters", f"tool {name!r}")
        _check_schema(output_schema, "output_schema", f"tool {name!r}")
        return self.add(
            Tool(
                name=name,
                description=description,
                parameters=parameters,
                output_schema=output_schema,
                **_meta_from_json(meta, name),
            )
        )

    @classmethod
    def from_json(cls, source: str | Path | list[Any]) -> ToolRegistry:
        """Schema-only tools from a JSON file (or loaded list) of objects with ``name``,
        ``description``, ``parameters`` and optional ``output_schema`` and metadata keys."""
        registry = cls()
        registry.load_json(source)
        return registry

    def load_json(self, source: str | Path | list[Any]) -> list[Tool]:
        where = "tool list"
        if isinstance(source, str | Path):
            where = str(source)
            try:
                data = json.loads(Path(source).read_text(encoding="utf-8"))
            except OSError as exc:
                raise ConfigError(f"cannot read tools file {where}: {exc.strerror}") from None
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where} is not valid JSON: {exc}") from None
        else:
            data = source
        if isinstance(data, dict) and isinstance(data.get("tools"), list):
            data = data["tools"]
        if not isinstance(data, list):
            raise ConfigError(f"{where}: expected a JSON list of tool objects")
        added = []
        for i, item in enumerate(data):
            if isinstance(item, dict) and isinstance(item.get("function"), dict):
                item = item["function"]  # OpenAI's {"type": "function", "function": {...}}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ConfigError(f"{where}: item {i} must be an object with a 'name' string")
            item = dict(item)
            name = item.pop("name")
            description = item.pop("description", "") or ""
            params = _pop_first(item, ("parameters", "input_schema", "inputSchema"))
            if params is None:
                params = {"type": "object", "properties": {}}
            output = _pop_first(item, ("output_schema", "outputSchema"))
            item.pop("strict", None)
            item.pop("callable", None)  # written by Tool.to_dict: a schema-only tool is not
            try:
                added.append(self.add_schema_tool(name, str(description), params, output, **item))
            except RegistrationError as exc:
                raise ConfigError(f"{where}: item {i} ({name}): {exc}") from None
        return added

    # -- running
    def execute(self, name: str, **kwargs: Any) -> Any:
        """Validate arguments and call the tool synchronously (the seed's API).

        An async tool is run to completion; inside a running event loop use :meth:`aexecute`.
        """
        t, args = self._prepare(name, kwargs)
        assert t.function is not None
        if t.is_async:
            from .._sync import run_sync

            return run_sync(t.function(**args))
        return t.function(**args)

    async def aexecute(self, name: str, **kwargs: Any) -> Any:
        """Like :meth:`execute`, awaiting an async tool and running a sync one in a thread."""
        t, args = self._prepare(name, kwargs)
        assert t.function is not None
        if t.is_async:
            return await t.function(**args)
        return await asyncio.to_thread(t.function, **args)

    def _prepare(self, name: str, kwargs: dict[str, Any]) -> tuple[Tool, dict[str, Any]]:
        t = self.get(name)
        context = kwargs.pop(t.context_param, None) if t.context_param else None
        args = t.validate_args(kwargs)
        if t.function is None:
            raise ToolArgumentError(name, "schema-only tool: it has no Python function to call")
        if t.context_param:
            # A direct call is its own one-step run with a fresh id: two direct calls are two
            # different operations, and must not share an idempotency key (a mail tool derives
            # its Message-ID from it). Pass ``ctx=`` to repeat one on purpose.
            args[t.context_param] = context or ToolContext(
                run_id=f"direct-{uuid.uuid4().hex[:12]}", step_id=name
            )
        return t, args

    # -- exports
    def openai_tools(self, *, strict: bool = True) -> list[dict[str, Any]]:
        """Every tool in OpenAI's function-calling format."""
        return [t.openai_schema(strict=strict) for t in self]


_JSON_META = {
    "category",
    "version",
    "side_effects",
    "idempotent",
    "timeout",
    "retry",
    "compensate",
    "reads_private",
    "egress",
    "untrusted_output",
}
# What @tool and register take besides name and description: the same keys (``runner`` is
# ``placement`` under the name a decorator reads best with).
_TOOL_OPTIONS = frozenset({*_JSON_META, "metadata", "runner"})


def _pop_first(item: dict[str, Any], keys: tuple[str, ...]) -> Any:
    found = None
    for key in keys:
        value = item.pop(key, None)
        if found is None:
            found = value
    return found


def _meta_from_json(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """Tool metadata from JSON-ish values, checked: a wrong type is a RegistrationError that says
    which key and what it should be, not a TypeError from deep inside."""
    where = f"tool {name!r}"
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in meta.items():
        if key == "metadata":
            if not isinstance(value, dict):
                raise RegistrationError(f"{where}: 'metadata' must be an object")
            extra = {**value, **extra}
        elif key in ("runner", "placement"):
            if value is not None and (not isinstance(value, str) or not value):
                raise RegistrationError(
                    f"{where}: {key!r} names where the tool runs: 'local' or a runner's name "
                    "such as 'dask'"
                )
            if value is not None:
                extra["placement"] = value
        elif key not in _JSON_META:
            extra[key] = value
        elif key == "retry":
            out["retry"] = _retry_from(value, where)
        elif key == "compensate":
            out["compensate"] = _compensation_from(value, where)
        elif key == "egress":
            out[key] = egress_set(value, where)
        elif key in ("side_effects", "idempotent", "reads_private", "untrusted_output"):
            if not isinstance(value, bool):
                raise RegistrationError(f"{where}: {key!r} must be true or false")
            out[key] = value
        elif key == "timeout":
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise RegistrationError(f"{where}: 'timeout' must be a positive number of seconds")
            out[key] = None if value is None else float(value)
        else:  # category, version
            value = getattr(value, "value", value)
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise RegistrationError(f"{where}: {key!r} must be a string")
            out[key] = str(value)
    if extra:
        out["metadata"] = extra
    return out


def _retry_from(value: Any, where: str) -> RetryPolicy:
    if isinstance(value, RetryPolicy):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return RetryPolicy(attempts=value)
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(RetryPolicy)}
        unknown = set(value) - known
        if not unknown and all(
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
            for v in value.values()
        ):
            return RetryPolicy(**value)
    keys = ", ".join(f.name for f in dataclasses.fields(RetryPolicy))
    raise RegistrationError(
        f"{where}: 'retry' must be a number of attempts or an object with numeric keys ({keys})"
    )


def _compensation_from(value: Any, where: str) -> Compensation | None:
    if value is None or isinstance(value, Compensation):
        return value
    if isinstance(value, str):
        return Compensation(value)
    if isinstance(value, dict) and isinstance(value.get("tool"), str):
        args = value.get("args") or {}
        if isinstance(args, dict):
            return Compensation(value["tool"], dict(args))
    raise RegistrationError(
        f"{where}: 'compensate' must be a tool name or an object like "
        '{"tool": "release", "args": {"id": "$output.id"}}'
    )
