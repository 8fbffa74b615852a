"""Tools and the registry that holds them.

:mod:`~tooldag.registry.tool` defines a :class:`Tool` and its metadata, ``@tool`` builds one from
a typed function (descriptions from its docstring through docstring_parser,
:mod:`~tooldag.registry._docstrings`; TypedDict hints made pydantic-ready by
:mod:`~tooldag.registry._typing`),
:mod:`~tooldag.registry.schemas` holds the JSON Schema helpers shared with the validator, and
:mod:`~tooldag.registry.loading` turns ``--tools`` specs and the built-in packs into a registry.
"""

from .registry import (
    Compensation,
    RetryPolicy,
    Tool,
    ToolCategory,
    ToolContext,
    ToolRegistry,
    tool,
)

__all__ = [
    "Compensation",
    "RetryPolicy",
    "Tool",
    "ToolCategory",
    "ToolContext",
    "ToolRegistry",
    "tool",
]
