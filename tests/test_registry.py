"""The tool registry: @tool, the seed's register/execute, schema-only tools, registration errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
import typing_extensions
from pydantic import BaseModel, Field

from tooldag.errors import ConfigError, RegistrationError, ToolArgumentError, ToolNotFoundError
from tooldag.execution.executor import Executor
from tooldag.plan import Plan
from tooldag.registry import (
    Compensation,
    RetryPolicy,
    Tool,
    ToolCategory,
    ToolContext,
    ToolRegistry,
    tool,
)
from tooldag.registry.capabilities import ALL_ARGUMENTS, capabilities_from_hints

# --------------------------------------------------------------------------- @tool


def test_bare_decorator_makes_a_tool_that_still_calls_the_function() -> None:
    @tool
    def add(a: int, b: int = 2) -> int:
        """Add two numbers."""
        return a + b

    assert isinstance(add, Tool)
    assert add.name == "add"
    assert add.description == "Add two numbers."
    assert add(1) == 3
    assert add.parameters["required"] == ["a"]
    assert add.parameters["properties"]["b"]["default"] == 2
    assert add.output_schema == {"type": "integer"}


def test_decorator_options_set_name_description_and_metadata() -> None:
    policy = RetryPolicy(attempts=5)
    undo = Compensation("cancel_booking", {"booking_id": "$output.id"})

    @tool(
        name="book",
        description="Book a room.",
        side_effects=True,
        idempotent=True,
        timeout=3,
        retry=policy,
        compensate=undo,
        category=ToolCategory.COMMUNICATION,
        version="2.1.0",
    )
    def make_booking(room: str) -> dict[str, str]:
        """Ignored summary."""
        return {"id": room}

    assert make_booking.name == "book"
    assert make_booking.description == "Book a room."
    assert make_booking.idempotent and make_booking.side_effects
    assert make_booking.timeout == 3.0
    assert make_booking.retry is policy
    assert make_booking.compensate == undo
    assert make_booking.category == "communication"
    assert make_booking.version == "2.1.0"


def test_unknown_decorator_option_is_a_registration_error_listing_valid_ones() -> None:
    with pytest.raises(RegistrationError, match=r"unknown option.*side_effect.*valid:"):

        @tool(side_effect=False)  # type: ignore[call-overload, untyped-decorator]
        def f(x: int) -> int:
            return x


async def test_async_tool_is_detected_and_runs_through_execute_and_aexecute() -> None:
    @tool
    async def slow_double(x: int) -> int:
        """Double, later."""
        await asyncio.sleep(0)
        return 2 * x

    registry = ToolRegistry([slow_double])
    assert slow_double.is_async
    assert await registry.aexecute("slow_double", x=4) == 8
    # execute() works from inside a running loop too (it runs the coroutine on a helper thread).
    assert registry.execute("slow_double", x="5") == 10


def test_sync_tool_runs_in_a_thread_through_aexecute() -> None:
    @tool
    def double(x: int) -> int:
        return 2 * x

    assert not double.is_async
    assert asyncio.run(ToolRegistry([double]).aexecute("double", x=3)) == 6


def _google(location: str, units: str = "c") -> None:
    """Current weather.

    Looks it up in a service.

    Args:
        location (str): City name,
            e.g. "London".
        units: "c" or "f".

    Returns:
        The weather.
    """


def _sphinx(location: str, units: str = "c") -> None:
    """Current weather.

    :param str location: City name,
        e.g. "London".
    :type location: str
    :param units: "c" or "f".
    :returns: the weather
    :rtype: dict
    """


def _numpy(location: str, units: str = "c") -> None:
    """Current weather.

    Parameters
    ----------
    location : str
        City name,
        e.g. "London".
    units : {"c", "f"}, optional
        "c" or "f".

    Returns
    -------
    dict
        The weather.
    """


@pytest.mark.parametrize("func", [_google, _sphinx, _numpy], ids=["google", "sphinx", "numpy"])
def test_docstring_styles_give_the_same_descriptions(func: Any) -> None:
    made = tool(name="weather")(func)
    props = made.parameters["properties"]
    assert props["location"]["description"] == 'City name, e.g. "London".'
    assert props["units"]["description"] == '"c" or "f".'
    assert made.description.startswith("Current weather.")
    assert "Returns" not in made.description and ":param" not in made.description


# Docstring shapes the old hand-written parser read and docstring_parser alone misreads (or
# drops every description of): the adapter in tooldag.registry._docstrings keeps each working.
_DOCSTRING_SHAPES = {
    "google, Args: on the first line": """Args:
            x: The x.
            y: The y.
        """,
    "google, one item without its colon": """Point.

        Args:
            x: The x.
            oops no colon here
            y: The y.
        """,
    "google, Keyword Args and Other Parameters": """Point.

        Args:
            x: The x.

        Keyword Args:
            y: The y.

        Other Parameters:
            z: The z.
        """,
    "google, section titles in lower case": """Point.

        args:
            x: The x.

        keyword args:
            y: The y.
        """,
    "sphinx, types with spaces": """Point.

        :param int | None x: The x.
        :param dict[str, int] y: The y.
        """,
    "numpy, two names on one line": """Point.

        Parameters
        ----------
        x, y : float
            The coordinate.
        """,
    "numpy, See Also with roles": """Point.

        Parameters
        ----------
        x : float
            The x.

        See Also
        --------
        :meth:`Point.move`
        :meth:`Point.scale`
        """,
    "epydoc": """Point.

        @param x: The x.
        @param y: The y.
        """,
}
_SHAPE_ARGS = {
    "google, Args: on the first line": {"x": "The x.", "y": "The y."},
    "google, one item without its colon": {"x": "The x.", "y": "The y."},
    "google, Keyword Args and Other Parameters": {"x": "The x.", "y": "The y.", "z": "The z."},
    "google, section titles in lower case": {"x": "The x.", "y": "The y."},
    "sphinx, types with spaces": {"x": "The x.", "y": "The y."},
    "numpy, two names on one line": {"x": "The coordinate.", "y": "The coordinate."},
    "numpy, See Also with roles": {"x": "The x."},
    "epydoc": {"x": "The x.", "y": "The y."},
}


@pytest.mark.parametrize("shape", sorted(_DOCSTRING_SHAPES))
def test_argument_descriptions_are_read_from_every_docstring_shape(shape: str) -> None:
    def point(x: float, y: float = 0, z: float = 0) -> None:
        pass

    point.__doc__ = _DOCSTRING_SHAPES[shape]
    made = tool(point)
    described = {
        name: prop["description"]
        for name, prop in made.parameters["properties"].items()
        if "description" in prop
    }
    assert described == _SHAPE_ARGS[shape]
    expected = "" if shape.endswith("first line") else "Point."
    assert made.description == (expected or "point")


def test_sections_after_the_arguments_stay_out_of_the_description() -> None:
    @tool
    def point(x: float) -> None:
        """Point.

        More about points.

        Args:
            x: The x.

        Note:
            An aside that is not the tool's description.

        Returns:
            Nothing.
        """

    assert point.description == "Point.\n\nMore about points."


def test_function_without_docstring_gets_a_description_from_its_name() -> None:
    @tool
    def get_exchange_rate(base: str) -> float:
        return 1.0

    assert get_exchange_rate.description == "get exchange rate"
    assert "description" not in get_exchange_rate.parameters["properties"]["base"]


class WeatherModel(BaseModel):
    temp: float
    condition: str


class WeatherTD(typing_extensions.TypedDict):
    temp: float
    condition: str


class StdWeatherTD(typing.TypedDict):
    temp: float
    condition: str


@dataclasses.dataclass
class WeatherDC:
    temp: float
    condition: str


@pytest.mark.parametrize(
    "annotation",
    [WeatherModel, WeatherTD, StdWeatherTD, WeatherDC],
    ids=["pydantic", "typing_extensions.TypedDict", "typing.TypedDict", "dataclass"],
)
def test_output_schema_comes_from_the_return_annotation(annotation: Any) -> None:
    def weather(city: str) -> Any:
        raise NotImplementedError

    weather.__annotations__["return"] = annotation
    schema = tool(weather).output_schema
    assert schema is not None
    assert schema["type"] == "object"
    assert schema["properties"]["temp"]["type"] == "number"
    assert schema["properties"]["condition"]["type"] == "string"
    assert set(schema["required"]) == {"temp", "condition"}


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [(float, {"type": "number"}), (list[str], {"type": "array", "items": {"type": "string"}})],
)
def test_plain_return_types_give_plain_output_schemas(annotation: Any, expected: Any) -> None:
    def f() -> Any:
        raise NotImplementedError

    f.__annotations__["return"] = annotation
    assert tool(f).output_schema == expected


def test_no_return_annotation_or_any_means_no_output_schema() -> None:
    @tool
    def f(x: int):  # type: ignore[no-untyped-def]
        return x

    @tool
    def g(x: int) -> Any:
        return x

    assert f.output_schema is None and g.output_schema is None


class Address(BaseModel):
    street: str
    city: str


class Line(typing.TypedDict, total=False):
    sku: str
    qty: typing.Required[int]


class Item(typing.TypedDict):
    sku: Annotated[str, Field(description="stock keeping unit")]
    kind: Literal["a", "b"]


def test_nested_typing_typeddict_in_arguments_works_on_3_11() -> None:
    @tool
    def order(lines: list[Line], ship_to: Address | None = None) -> StdWeatherTD:
        return {"temp": 1.0, "condition": "ok"}

    props = order.parameters["properties"]
    item = props["lines"]["items"]
    assert item["required"] == ["qty"]
    assert set(item["properties"]) == {"sku", "qty"}
    # $defs are inlined: the schema is self-contained.
    assert "$defs" not in order.parameters
    assert ToolRegistry([order]).execute("order", lines=[{"qty": "2"}])["temp"] == 1.0


def test_tool_context_parameter_is_hidden_from_the_schema_and_filled_in() -> None:
    seen: list[ToolContext] = []

    @tool
    def send(message: str, ctx: ToolContext) -> str:
        seen.append(ctx)
        return message

    @tool
    def send_maybe(message: str, ctx: ToolContext | None = None) -> str:
        return message

    assert send.context_param == "ctx"
    assert send_maybe.context_param == "ctx"
    assert list(send.parameters["properties"]) == ["message"]
    assert list(send_maybe.parameters["properties"]) == ["message"]
    assert ToolRegistry([send]).execute("send", message="hi") == "hi"
    assert seen[0].step_id == "send" and seen[0].run_id.startswith("direct-")
    ToolRegistry([send]).execute("send", message="hi again")
    assert seen[1].idempotency_key != seen[0].idempotency_key  # two calls, two operations
    seen.clear()
    given = ToolContext(run_id="r1", step_id="s1", attempt=2)
    ToolRegistry([send]).execute("send", message="hi", ctx=given)
    assert seen[0] is given


async def test_an_optional_tool_context_parameter_is_the_context_in_every_spelling() -> None:
    # Optional lets a tool be called directly without a context; each spelling must still be
    # hidden from the LLM and filled in, directly and by the executor (tools/mail.py's case).
    seen: list[tuple[str, ToolContext | None]] = []

    @tool
    def optional_form(message: str, ctx: typing.Optional[ToolContext] = None) -> str:  # noqa: UP045
        seen.append(("optional_form", ctx))
        return message

    @tool
    def none_first(message: str, ctx: None | ToolContext = None) -> str:  # noqa: RUF036
        seen.append(("none_first", ctx))
        return message

    for made in (optional_form, none_first):
        assert made.context_param == "ctx"
        assert list(made.parameters["properties"]) == ["message"]
        assert list(made.openai_schema()["function"]["parameters"]["properties"]) == ["message"]
    registry = ToolRegistry([optional_form, none_first])
    registry.execute("optional_form", message="hi")
    registry.execute("none_first", message="hi")
    plan = Plan.model_validate(
        {"steps": [{"id": "a", "tool": "optional_form", "args": {"message": "hi"}}]}
    )
    result = await Executor(registry).run(plan, run_id="run-9")
    assert result.ok, result.error
    assert [(name, ctx.step_id) for name, ctx in seen[:2]] == [
        ("optional_form", "optional_form"),
        ("none_first", "none_first"),
    ]
    assert all(ctx.run_id.startswith("direct-") for _, ctx in seen[:2])
    assert seen[2] == ("optional_form", ToolContext("run-9", "a", 1))


# --------------------------------------------------------------------------- the seed's form


class WeatherArgs(BaseModel):
    location: str = Field(description="City name")
    days: int = 1


def get_weather(location: str, days: int = 1) -> dict[str, Any]:
    return {"location": location, "days": days, "temp": 18}


def test_seed_register_and_execute() -> None:
    registry = ToolRegistry()
    made = registry.register(
        name="get_weather",
        description="Current weather for a place.",
        category=ToolCategory.DATA,
        version="1.2.0",
        parameters_schema=WeatherArgs,
        function=get_weather,
    )
    assert made is registry.get("get_weather")
    assert made.category == "data" and made.version == "1.2.0"
    assert made.parameters["properties"]["location"]["description"] == "City name"
    assert registry.execute("get_weather", location="London", days="3") == {
        "location": "London",
        "days": 3,
        "temp": 18,
    }


def test_execute_names_the_tool_and_the_field_of_a_bad_argument() -> None:
    registry = ToolRegistry()
    registry.register(
        name="get_weather",
        description="Current weather.",
        parameters_schema=WeatherArgs,
        function=get_weather,
    )
    with pytest.raises(ToolArgumentError) as bad_type:
        registry.execute("get_weather", location="London", days="soon")
    assert bad_type.value.tool == "get_weather" and bad_type.value.field == "days"
    assert "get_weather.days" in str(bad_type.value)
    with pytest.raises(ToolArgumentError) as missing:
        registry.execute("get_weather", days=2)
    assert missing.value.field == "location"


def test_execute_of_an_unknown_tool_suggests_the_closest_name() -> None:
    registry = ToolRegistry()
    registry.register(name="get_weather", description="w", parameters_schema=WeatherArgs)
    with pytest.raises(ToolNotFoundError, match="did you mean get_weather"):
        registry.execute("get_wether", location="x")


def test_optional_argument_sent_as_null_counts_as_absent() -> None:
    @tool
    def search(query: str, limit: int = 5) -> list[str]:
        return [query] * limit

    # OpenAI strict mode makes optional properties nullable: null means "leave it out".
    assert ToolRegistry([search]).execute("search", query="q", limit=None) == ["q"] * 5


# --------------------------------------------------------------------------- schema-only tools

_SCHEMA_TOOL = {
    "name": "lookup_order",
    "description": "Find an order.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}, "verbose": {"type": "boolean"}},
        "required": ["order_id"],
    },
    "output_schema": {"type": "object", "properties": {"status": {"type": "string"}}},
    "side_effects": False,
    "retry": {"attempts": 2},
    "owner": "billing",
}


def test_schema_only_tool_validates_arguments_but_cannot_run() -> None:
    registry = ToolRegistry()
    made = registry.add_schema_tool(
        "lookup_order",
        "Find an order.",
        _SCHEMA_TOOL["parameters"],  # type: ignore[arg-type]
        output_schema={"type": "object", "properties": {"status": {"type": "string"}}},
        side_effects=False,
    )
    assert made.function is None and not made.side_effects
    assert made.validate_args({"order_id": "A1"}) == {"order_id": "A1"}
    with pytest.raises(ToolArgumentError) as missing:
        made.validate_args({"verbose": True})
    assert missing.value.field == "order_id"
    with pytest.raises(ToolArgumentError) as extra:
        registry.get("lookup_order").validate_args({"order_id": "A1", "verbose": "yes"})
    assert extra.value.field == "verbose"
    with pytest.raises(ToolArgumentError, match="schema-only"):
        registry.execute("lookup_order", order_id="A1")


def test_schema_only_tools_from_a_json_file(tmp_path: Path) -> None:
    second = {
        "type": "function",  # OpenAI's function-calling shape is read as well
        "function": {
            "name": "refund",
            "description": "Refund an order.",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
        },
    }
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([_SCHEMA_TOOL, second]), encoding="utf-8")
    registry = ToolRegistry.from_json(path)
    assert registry.names() == ["lookup_order", "refund"]
    lookup = registry.get("lookup_order")
    assert lookup.output_schema == _SCHEMA_TOOL["output_schema"]
    assert lookup.retry == RetryPolicy(attempts=2)
    assert lookup.metadata == {"owner": "billing"}
    assert not lookup.side_effects
    assert registry.get("refund").to_dict()["callable"] is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"name": "x"}', "expected a JSON list"),
        ('[{"description": "no name"}]', "item 0 must be an object with a 'name'"),
        ('[{"name": "x", "parameters": {"type": "array"}}]', "type 'object'"),
        ('[{"name": "x", "parameters": {"type": "object", "required": 3}}]', "not a valid JSON"),
        ('[{"name": "x", "output_schema": "text"}]', "output_schema must be a JSON Schema"),
        ('[{"name": "x", "retry": {"tries": 3}}]', "'retry' must be"),
        ('[{"name": "x", "side_effects": "no"}]', "'side_effects' must be true or false"),
        ('[{"name": "x", "reads_private": 1}]', "'reads_private' must be true or false"),
        ('[{"name": "x", "untrusted_output": "no"}]', "'untrusted_output' must be true or"),
        ('[{"name": "x", "egress": "url"}]', "'egress' must be true .* or a list of argument"),
        ('[{"name": "x", "egress": ["url"]}]', "egress names 'url', which is not an argument"),
        ('[{"name": "x"}, {"name": "x"}]', "already registered"),
        ('[{"name": "bad name"}]', "invalid tool name"),
    ],
)
def test_bad_tools_file_is_a_config_error_saying_what_is_wrong(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "tools.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        ToolRegistry.from_json(path)


# --------------------------------------------------------------------------- capabilities


def test_a_read_only_python_tool_declaring_nothing_is_local() -> None:
    @tool(side_effects=False)
    def lookup(key: str) -> str:
        return key

    assert (lookup.reads_private, lookup.egress, lookup.untrusted_output) == (
        False,
        frozenset(),
        False,
    )
    assert not lookup.is_egress("key")


def test_a_python_tool_with_side_effects_declaring_nothing_may_send_every_argument() -> None:
    @tool
    def post(channel: str, text: str) -> None:
        """Post a message."""

    assert post.egress == ALL_ARGUMENTS
    assert post.is_egress("channel") and post.is_egress("text")
    assert not post.reads_private and not post.untrusted_output


def test_a_tool_without_a_function_declaring_nothing_gets_the_conservative_defaults() -> None:
    registry = ToolRegistry()
    schema_only = registry.add_schema_tool(
        "lookup", "Look up.", {"type": "object", "properties": {"q": {"type": "string"}}},
        side_effects=False,
    )  # fmt: skip
    seed_style = registry.register("remote", "Remote.", WeatherArgs, side_effects=False)
    for made in (schema_only, seed_style):
        assert made.reads_private and made.untrusted_output
        assert made.egress == ALL_ARGUMENTS and made.is_egress("anything")


def test_the_decorator_declares_capabilities_and_egress_per_argument() -> None:
    @tool(side_effects=False, reads_private=True, untrusted_output=True, egress=["url"])
    def fetch(url: str, max_chars: int = 100) -> str:
        return url

    assert fetch.reads_private and fetch.untrusted_output
    assert fetch.egress == frozenset({"url"})
    assert fetch.is_egress("url") and not fetch.is_egress("max_chars")
    data = fetch.to_dict()
    assert (data["reads_private"], data["egress"], data["untrusted_output"]) == (
        True,
        ["url"],
        True,
    )

    @tool(egress=False)  # a side-effecting tool that keeps everything local (write_file)
    def save(path: str) -> None:
        """Save."""

    assert save.egress == frozenset() and save.to_dict()["egress"] is False

    @tool(side_effects=False, egress=True)
    def search(query: str, limit: int = 5) -> str:
        return query

    assert search.egress == ALL_ARGUMENTS and search.to_dict()["egress"] is True


def test_seed_register_declares_capabilities() -> None:
    registry = ToolRegistry()
    made = registry.register(
        "get_weather", "Weather.", WeatherArgs, function=get_weather, side_effects=False,
        reads_private=False, egress=("location",), untrusted_output=True,
    )  # fmt: skip
    assert made.egress == frozenset({"location"}) and made.untrusted_output
    assert not made.reads_private and not made.is_egress("days")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"egress": ["nope"]}, r"egress names 'nope', which is not an argument"),
        ({"egress": ["ctx", "url"]}, r"egress names 'ctx'"),  # the context is not an argument
        ({"egress": "url"}, r"'egress' must be true .* or a list of argument names"),
        ({"reads_private": "yes"}, r"'reads_private' must be true or false"),
    ],
)
def test_bad_capabilities_are_registration_errors(options: dict[str, Any], message: str) -> None:
    def fetch(url: str, ctx: ToolContext | None = None) -> str:
        return url

    with pytest.raises(RegistrationError, match=message):
        tool(fetch, **options)


def test_json_tools_declare_capabilities_and_keep_them_through_tools_json(tmp_path: Path) -> None:
    declared = {
        "name": "post",
        "parameters": {
            "type": "object",
            "properties": {"url": {"type": "string"}, "note": {"type": "string"}},
        },
        "reads_private": False,
        "egress": ["url"],
        "untrusted_output": False,
    }
    made = ToolRegistry.from_json([declared]).get("post")
    assert not made.reads_private and not made.untrusted_output
    assert made.is_egress("url") and not made.is_egress("note")
    path = tmp_path / "tools.json"  # what `tooldag tools --json` writes, read back
    path.write_text(json.dumps([made.to_dict()]), encoding="utf-8")
    again = ToolRegistry.from_json(path).get("post")
    assert (again.reads_private, again.egress, again.untrusted_output) == (
        False,
        frozenset({"url"}),
        False,
    )


_PARAMS = {"type": "object", "properties": {"q": {"type": "string"}}}


@pytest.mark.parametrize(
    ("annotations", "side_effects", "idempotent"),
    [
        ({}, True, False),  # MCP's defaults: not read-only, open world
        ({"readOnlyHint": True}, False, True),
        ({"readOnlyHint": True, "openWorldHint": False}, False, True),
        ({"readOnlyHint": True, "destructiveHint": True}, True, False),  # the tighter wins
        ({"destructiveHint": False, "idempotentHint": True}, True, True),
        ({"openWorldHint": True, "title": "Search"}, True, False),
        ({"readOnlyHint": "yes"}, True, False),  # not a boolean: ignored
    ],
)
def test_mcp_annotations_map_onto_metadata_and_never_lift_egress(
    annotations: dict[str, Any], side_effects: bool, idempotent: bool
) -> None:
    item = {"name": "search", "parameters": _PARAMS, "annotations": annotations}
    made = ToolRegistry.from_json([item]).get("search")
    assert (made.side_effects, made.idempotent) == (side_effects, idempotent)
    # A server's word never makes a tool more trusted: open world or not, read-only or not,
    # everything it is given may leave and what it returns may be private and untrusted.
    assert made.egress == ALL_ARGUMENTS
    assert made.reads_private and made.untrusted_output
    assert made.metadata["annotations"] == annotations


def test_declared_keys_win_over_annotations() -> None:
    item = {
        "name": "search",
        "parameters": _PARAMS,
        "annotations": {"readOnlyHint": True, "openWorldHint": True},
        "side_effects": True,
        "egress": False,
        "untrusted_output": False,
        "reads_private": False,
    }
    made = ToolRegistry.from_json([item]).get("search")
    assert made.side_effects and made.idempotent  # readOnlyHint still says repeatable
    assert (made.reads_private, made.egress, made.untrusted_output) == (False, frozenset(), False)


def test_capabilities_from_hints_fills_only_what_is_undeclared() -> None:
    hints = {"readOnlyHint": True, "openWorldHint": True}
    assert capabilities_from_hints(hints, {}) == {
        "side_effects": False,
        "idempotent": True,
        "egress": ALL_ARGUMENTS,
        "untrusted_output": True,
    }
    assert capabilities_from_hints(hints, {"egress": False, "side_effects": True}) == {
        "idempotent": True,
        "untrusted_output": True,
    }
    assert capabilities_from_hints({"openWorldHint": False}, {}) == {}
    assert capabilities_from_hints(None, {}) == {}


# --------------------------------------------------------------------------- registration errors


def test_duplicate_name_is_refused_unless_replace() -> None:
    @tool
    def ping() -> str:
        return "pong"

    registry = ToolRegistry([ping])
    with pytest.raises(RegistrationError, match="already registered"):
        registry.add(ping)
    registry.add(ping, replace=True)
    assert len(registry) == 1


@pytest.mark.parametrize("name", ["get weather", "1st", "x" * 65, "naïve", ""])
def test_invalid_tool_names_are_refused(name: str) -> None:
    def f() -> None:
        return None

    with pytest.raises(RegistrationError, match="invalid tool name"):
        tool(name=name)(f)


def test_parameter_type_that_json_schema_cannot_express_is_refused() -> None:
    with pytest.raises(RegistrationError, match="cannot be expressed in JSON Schema"):

        @tool
        def connect(sock: socket.socket) -> None:
            return None


@pytest.mark.parametrize("star", ["args", "kwargs"])
def test_star_args_and_kwargs_are_refused(star: str) -> None:
    def varargs(*args: int) -> None:
        return None

    def varkw(**kwargs: int) -> None:
        return None

    func = varargs if star == "args" else varkw
    prefix = "*" if star == "args" else "**"
    with pytest.raises(RegistrationError, match=rf"\{prefix}{star} cannot be described"):
        tool(func)


def test_seed_register_with_a_non_model_schema_is_refused() -> None:
    with pytest.raises(RegistrationError, match="pydantic model class or a JSON Schema"):
        ToolRegistry().register(name="x", description="x", parameters_schema=42)


# --------------------------------------------------------------------------- exports


def test_openai_tools_export_is_strict_function_calling_format() -> None:
    @tool
    def search(query: str, limit: int = 5) -> list[str]:
        """Search.

        Args:
            query: Words to look for.
            limit: At most this many.
        """
        return []

    (exported,) = ToolRegistry([search]).openai_tools()
    function = exported["function"]
    assert exported["type"] == "function"
    assert function["strict"] is True
    assert function["parameters"]["required"] == ["query", "limit"]
    assert function["parameters"]["properties"]["limit"]["type"] == ["integer", "null"]


def test_tool_with_a_free_form_argument_is_exported_non_strict() -> None:
    @tool
    def post(url: str, payload: dict[str, Any]) -> None:
        return None

    function = post.openai_schema()["function"]
    assert "strict" not in function
    assert function["parameters"]["properties"]["payload"]["additionalProperties"] is True


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the typing.TypedDict rebuild is 3.11-only")
def test_annotated_descriptions_survive_the_typeddict_rebuild() -> None:
    @tool
    def stock(item: Item) -> None:
        return None

    props = stock.parameters["properties"]["item"]["properties"]
    assert props["sku"]["description"] == "stock keeping unit"
    assert props["kind"]["enum"] == ["a", "b"]


def test_summary_is_the_first_paragraph_on_one_line() -> None:
    @tool
    def wrapped(x: int) -> int:
        """Double a number, the long way round,
        over two lines.

        More detail that listings leave out.
        """
        return 2 * x

    assert wrapped.summary == "Double a number, the long way round, over two lines."
