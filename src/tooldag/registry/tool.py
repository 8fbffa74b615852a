"""What a tool *is*: the :class:`Tool` record and the metadata types it carries.

Kept apart from :mod:`tooldag.registry.registry`, which builds tools (the ``@tool`` decorator, the
seed's ``register`` form, JSON loading) and holds them: these types are what the executor, validator
and planner read, and they need none of that machinery. The package, ``tooldag.registry``,
re-exports the public names, so ``from tooldag.registry import Tool`` is the import to use.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import pydantic
from pydantic import BaseModel

from ..errors import RegistrationError, ToolArgumentError
from .capabilities import ALL_ARGUMENTS, default_capabilities, describe_egress, egress_set
from .schemas import (
    inline_refs,
    json_types,
    strict_loses_meaning,
    strict_schema,
    takes_free_text,
    text_coercion,
)

__all__ = ["Compensation", "RetryPolicy", "Tool", "ToolCategory", "ToolContext"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

# The default of a capability a tool does not declare: resolved by ``Tool.__post_init__`` (see
# :func:`~tooldag.registry.capabilities.default_capabilities`), so a built tool always holds a
# real value. Typed ``Any`` so that the fields can keep their resolved types.
_UNDECLARED: Any = None


class ToolCategory(StrEnum):
    """The seed's categories; any string is accepted as a category too."""

    DATA = "data"
    COMPUTATION = "computation"
    COMMUNICATION = "communication"
    SEARCH = "search"
    FILE = "file"
    SYSTEM = "system"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently the executor retries a *transient* failure of this tool."""

    attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    jitter: float = 0.1


@dataclass(frozen=True, slots=True)
class Compensation:
    """The undo of a step: call ``tool`` with ``args``, where references ``$args.x`` and
    ``$output.y`` read the compensated step's own arguments and output.

    >>> Compensation("release_inventory", {"reservation_id": "$output.reservation_id"})
    Compensation(tool='release_inventory', args={'reservation_id': '$output.reservation_id'})
    """

    tool: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool may ask for by declaring a parameter annotated ``ToolContext`` (or
    ``ToolContext | None``).

    ``idempotency_key`` is ``"<run id>:<step id>"``: the same for every attempt and every resume of
    the step, so a tool with side effects can make a repeat harmless (the in-flight step of a
    crashed run runs again: at-least-once).
    """

    run_id: str
    step_id: str
    attempt: int = 1

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}:{self.step_id}"


@dataclass(eq=False)
class Tool:
    """A registered tool. Calling it calls the underlying function directly (no validation).

    ``reads_private``, ``egress`` (the argument names that leave the machine) and
    ``untrusted_output`` are the capabilities the data-flow analysis reads (see
    :mod:`~tooldag.registry.capabilities`); left out, they get its safe defaults.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any] | None = None
    output_schema: dict[str, Any] | None = None
    category: str = ToolCategory.OTHER.value
    version: str = "1.0.0"
    side_effects: bool = True
    idempotent: bool = False
    timeout: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    compensate: Compensation | None = None
    reads_private: bool = _UNDECLARED
    egress: frozenset[str] = _UNDECLARED
    untrusted_output: bool = _UNDECLARED
    args_model: type[BaseModel] | None = None
    context_param: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise RegistrationError(
                f"invalid tool name {self.name!r}: use letters, digits, '_' or '-', starting "
                "with a letter or '_', at most 64 characters (OpenAI's function-name rule)"
            )
        params = self.parameters or {"type": "object", "properties": {}}
        if (
            not isinstance(params, dict)
            or params.get("type", "object") != "object"
            or not isinstance(params.get("properties", {}), dict)
        ):
            raise RegistrationError(
                f"tool {self.name!r}: its parameters must be a JSON Schema of type 'object' with "
                '\'properties\', e.g. {"type": "object", "properties": {"city": {"type": '
                '"string"}}, "required": ["city"]}'
            )
        if self.output_schema is not None and not isinstance(self.output_schema, dict):
            raise RegistrationError(
                f"tool {self.name!r}: output_schema must be a JSON Schema object or null, not "
                f"{type(self.output_schema).__name__}"
            )
        self.parameters = inline_refs(params)
        if self.output_schema is not None:
            self.output_schema = inline_refs(self.output_schema)
        self._resolve_capabilities()

    def _resolve_capabilities(self) -> None:
        where = f"tool {self.name!r}"
        defaults = default_capabilities(
            remote=self.function is None, side_effects=bool(self.side_effects)
        )
        for key in ("reads_private", "untrusted_output"):
            value = getattr(self, key)
            if value is None:
                setattr(self, key, defaults[key])
            elif not isinstance(value, bool):
                raise RegistrationError(f"{where}: {key!r} must be true or false")
        if self.egress is None:
            self.egress = defaults["egress"]
            return
        self.egress = egress_set(self.egress, where)
        unknown = sorted(self.egress - ALL_ARGUMENTS - set(self.parameters.get("properties", {})))
        if unknown:
            raise RegistrationError(
                f"{where}: egress names {', '.join(map(repr, unknown))}, which "
                f"{'is not an argument' if len(unknown) == 1 else 'are not arguments'} of the "
                "tool; list argument names, or say egress=True for every argument"
            )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            raise ToolArgumentError(
                self.name, "schema-only tool: it has no Python function to call"
            )
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"

    @property
    def summary(self) -> str:
        """The description's first paragraph on one line (for tables and short listings)."""
        return " ".join(self.description.strip().split("\n\n", 1)[0].split())

    def is_egress(self, argument: str) -> bool:
        """Whether ``argument`` leaves the machine when this tool runs."""
        egress = self.egress
        return bool(egress) and ("*" in egress or argument in egress)

    @property
    def placement(self) -> str | None:
        """Where the executor runs this tool's calls (``metadata["placement"]``, set by
        ``@tool(runner=...)``): ``"local"`` (the driver process), a runner's name (``"dask"``),
        or None: the executor's runner (see :mod:`~tooldag.execution.runners`)."""
        value = self.metadata.get("placement")
        return value if isinstance(value, str) else None

    @property
    def is_async(self) -> bool:
        return self.function is not None and inspect.iscoroutinefunction(self.function)

    @cached_property
    def required(self) -> frozenset[str]:
        return frozenset(self.parameters.get("required", []))

    @cached_property
    def properties(self) -> dict[str, Any]:
        props = self.parameters.get("properties", {})
        return props if isinstance(props, dict) else {}

    @cached_property
    def text_params(self) -> dict[str, frozenset[str]]:
        """The parameters that take free text (:func:`~tooldag.registry.schemas.takes_free_text`),
        with the JSON types each accepts: a number or boolean given to one of them is passed as
        its JSON text."""
        return {
            name: frozenset(json_types(schema) or ())
            for name, schema in self.properties.items()
            if takes_free_text(schema)
        }

    @cached_property
    def _absent_if_null(self) -> frozenset[str]:
        """The optional parameters whose schema does not admit null (null there means absent):
        worked out once, as validate_args runs for every step."""
        return frozenset(
            name
            for name, schema in self.properties.items()
            if name not in self.required and not _admits_null(schema)
        )

    @cached_property
    def _schema_validator(self) -> Any:
        import jsonschema

        return jsonschema.Draft202012Validator(self.parameters)

    def validate_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Validate (and, for Python tools, convert) arguments; ToolArgumentError names the field.

        An optional argument sent as ``null`` counts as absent: OpenAI's strict mode makes optional
        properties nullable, so that is how a model in strict mode leaves one out. A number or
        boolean given to a parameter that takes free text is passed as its JSON text (``3.5`` ->
        ``"3.5"``, ``True`` -> ``"true"``; the validator warns of it as ``coerced_argument``).
        """
        absent_if_null = self._absent_if_null
        text_params = self.text_params
        if absent_if_null or text_params:  # else the arguments are validated as they are
            kept = {k: v for k, v in args.items() if not (v is None and k in absent_if_null)}
            for name, value in kept.items():
                accepted = text_params.get(name)
                if accepted is not None:
                    text = text_coercion(value, accepted)
                    if text is not None:
                        kept[name] = text
            args = kept
        if self.args_model is not None:
            try:
                # The model's validator itself: model_validate's Python wrapper costs as much
                # again on a run's every step.
                model = self.args_model.__pydantic_validator__.validate_python(args)
            except pydantic.ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"]) or None
                raise ToolArgumentError(self.name, err["msg"], field=loc) from None
            # Keep validated python values (nested models stay models, as the function expects):
            # a model's __dict__ holds its fields, in order (extras, never passed, live apart).
            return dict(model.__dict__)
        errors = sorted(
            self._schema_validator.iter_errors(dict(args)), key=lambda e: [str(p) for p in e.path]
        )
        if errors:
            first = errors[0]
            loc = ".".join(str(p) for p in first.absolute_path) or None
            if loc is None and first.validator in ("required", "additionalProperties"):
                # Top-level errors have an empty path; name the argument they are about.
                if first.validator == "required":
                    names = [n for n in first.validator_value if n not in args]
                else:
                    names = sorted(set(args) - set(self.properties))
                loc = names[0] if names else None
            raise ToolArgumentError(self.name, first.message, field=loc)
        return dict(args)

    def openai_schema(self, *, strict: bool = True) -> dict[str, Any]:
        """This tool in OpenAI's function-calling format (strict-mode compliant when ``strict``).

        Strict mode cannot express a free-form argument (``dict[str, Any]``, ``Any``): it would
        only let the model send ``{}``. Such a tool is exported non-strict instead of crippled.
        """
        strict = strict and not strict_loses_meaning(self.parameters)
        params = strict_schema(self.parameters) if strict else self.parameters
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": params,
        }
        if strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``tooldag tools --json``; :meth:`ToolRegistry.load_json` reads
        it back as a schema-only tool."""
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "output_schema": self.output_schema,
            "category": self.category,
            "version": self.version,
            "side_effects": self.side_effects,
            "idempotent": self.idempotent,
            "timeout": self.timeout,
            "retry": dataclasses.asdict(self.retry),
            "compensate": dataclasses.asdict(self.compensate) if self.compensate else None,
            "reads_private": self.reads_private,
            "egress": describe_egress(self.egress),
            "untrusted_output": self.untrusted_output,
            "metadata": self.metadata,
            "callable": self.function is not None,
        }


def _admits_null(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return True
    types = json_types(schema)
    return types is None or "null" in types
