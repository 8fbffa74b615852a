"""The built-in packs load alone and all together, and every tool is fully described."""

from __future__ import annotations

import importlib
import json

import pytest

from tooldag.planning.plan_schema import plan_json_schema
from tooldag.planning.prompting import tool_line
from tooldag.registry import Tool
from tooldag.registry.loading import builtin_packs, load_registry, load_tools

PACKS = {
    "calc": {"calculate", "statistics"},
    "data": {"sqlite_query"},
    "files": {"read_file", "write_file", "list_files", "restore_file"},
    "mail": {"send_email"},
    "text": {"summarize", "extract"},
    "time": {"now", "convert_time", "date_add", "date_diff"},
    "weather": {"get_weather"},
    "web": {"http_get", "wikipedia_search", "wikipedia_page"},
}
READ_ONLY = {
    "calculate", "statistics", "sqlite_query", "read_file", "list_files", "summarize", "extract",
    "now", "convert_time", "date_add", "date_diff", "get_weather", "http_get",
    "wikipedia_search", "wikipedia_page",
}  # fmt: skip
# What each tool does with data: (reads_private, egress, untrusted_output); egress True is every
# argument. The README's table of packs says the same.
CAPABILITIES: dict[str, tuple[bool, bool | set[str], bool]] = {
    "http_get": (False, {"url"}, True),
    "wikipedia_search": (False, True, True),
    "wikipedia_page": (False, {"title", "language"}, True),
    "get_weather": (False, {"location"}, True),
    "read_file": (True, False, True),
    "write_file": (True, False, True),
    "restore_file": (False, False, False),
    "list_files": (True, False, False),
    "sqlite_query": (True, False, True),
    "send_email": (True, True, False),
    "calculate": (False, False, False),
    "statistics": (False, False, False),
    "summarize": (False, False, False),
    "extract": (False, False, False),
    "now": (False, False, False),
    "convert_time": (False, False, False),
    "date_add": (False, False, False),
    "date_diff": (False, False, False),
}


def test_the_builtin_packs_are_exactly_these() -> None:
    assert builtin_packs() == sorted(PACKS)


@pytest.mark.parametrize("pack", sorted(PACKS))
def test_each_pack_loads_alone(pack: str) -> None:
    assert {t.name for t in load_tools(pack)} == PACKS[pack]
    assert set(load_registry([pack]).names()) == PACKS[pack]


def test_all_packs_load_together_with_no_name_clashes() -> None:
    per_pack = [t.name for pack in builtin_packs() for t in load_tools(pack)]
    assert len(per_pack) == len(set(per_pack)), "two packs declare a tool of the same name"
    registry = load_registry(None)
    assert set(registry.names()) == set().union(*PACKS.values())
    assert len(registry) == len(per_pack)


def all_tools() -> list[Tool]:
    return list(load_registry(None))


@pytest.mark.parametrize("t", all_tools(), ids=lambda t: t.name)
def test_every_tool_is_fully_described(t: Tool) -> None:
    assert t.function is not None and t.description and not t.description.endswith(" ")
    assert t.output_schema is not None and t.output_schema.get("type") == "object"
    assert t.category and t.timeout is not None
    assert t.side_effects is (t.name not in READ_ONLY)
    for name, prop in t.properties.items():
        assert prop.get("description"), f"{t.name}.{name} has no description for the LLM"
    json.dumps(t.to_dict())  # the JSON form of `tooldag tools --json`
    assert t.openai_schema(strict=True)["function"]["strict"] is True
    assert tool_line(t).startswith(f"- {t.name}(")


def test_every_tool_declares_its_capabilities() -> None:
    registry = load_registry(None)
    assert set(CAPABILITIES) == set(registry.names())
    for name, (private, egress, untrusted) in CAPABILITIES.items():
        t = registry.get(name)
        declared = t.to_dict()
        assert declared["reads_private"] is private, name
        assert declared["untrusted_output"] is untrusted, name
        assert declared["egress"] == (sorted(egress) if isinstance(egress, set) else egress), name
        for arg in t.properties:
            assert t.is_egress(arg) is (egress is True or (egress is not False and arg in egress))


# The arguments that choose where an egress tool sends (none: a fixed service), as the README's
# table says; the allow-list and the untrusted-text rule of the flow analysis read them.
DESTINATIONS = {
    "http_get": {"url"},
    "wikipedia_search": set(),
    "wikipedia_page": set(),
    "get_weather": set(),
    "send_email": {"to"},
}


def test_every_egress_tool_says_what_chooses_its_destination() -> None:
    from tooldag.validate.egress import destination_arguments

    registry = load_registry(None)
    declared = {t.name: destination_arguments(t) for t in registry if t.egress}
    assert declared == DESTINATIONS
    assert all(destination_arguments(t) is None for t in registry if not t.egress)


def test_the_registry_of_all_packs_yields_a_plan_schema() -> None:
    schema = plan_json_schema(load_registry(None))
    assert "get_weather" in json.dumps(schema)


@pytest.mark.parametrize("pack", ["_common", *sorted(PACKS)])
def test_every_pack_module_declares_a_sorted_all(pack: str) -> None:
    module = importlib.import_module(f"tooldag.packs.{pack}")
    assert module.__doc__
    exported = list(module.__all__)
    assert exported == sorted(exported)
    assert all(hasattr(module, name) for name in exported)
