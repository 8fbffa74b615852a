"""What a tool may do with data: the trust metadata that the data-flow analysis reads.

Three capabilities sit beside ``side_effects`` on a :class:`~tooldag.registry.tool.Tool`:

- ``reads_private``: its output may hold the user's own data (files, databases, a mail inbox).
- ``egress``: which of its arguments leave the machine (a URL, a mail body): a frozen set of
  argument names, :data:`ALL_ARGUMENTS` for every argument, empty for none. Per argument because
  that is what makes the analysis precise: a file's content flowing into ``http_get.url`` leaks
  it; the same content flowing into ``write_file.path`` does not.
- ``untrusted_output``: its output may carry text that third parties wrote (web pages, emails,
  search results), and so instructions meant to hijack the run.

A tool that does not declare them gets :func:`default_capabilities`: what is safe to assume of
it. Kept apart from the ``Tool`` record because every tool source (``@tool``, ``register``, JSON,
MCP) shares these rules, and the MCP-style hints of :func:`capabilities_from_hints`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import RegistrationError

__all__ = [
    "ALL_ARGUMENTS",
    "capabilities_from_hints",
    "default_capabilities",
    "describe_egress",
    "egress_set",
]

# Every argument leaves the machine ("*" cannot be a JSON Schema property of a tool we register:
# pydantic fields and OpenAI parameters are identifiers).
ALL_ARGUMENTS: frozenset[str] = frozenset({"*"})
_NONE: frozenset[str] = frozenset()


def egress_set(value: Any, where: str) -> frozenset[str]:
    """``True`` (every argument), ``False`` (none) or argument names, as the stored set."""
    if value is True:
        return ALL_ARGUMENTS
    if value is False:
        return _NONE
    if isinstance(value, frozenset) and all(isinstance(v, str) for v in value):
        return value
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return frozenset(items)
    raise RegistrationError(
        f"{where}: 'egress' must be true (every argument leaves the machine), false (none does) "
        'or a list of argument names, e.g. ["url"]'
    )


def describe_egress(egress: frozenset[str]) -> bool | list[str]:
    """The JSON form of an egress set: ``true``, ``false`` or the sorted argument names."""
    if "*" in egress:
        return True
    return sorted(egress) if egress else False


def default_capabilities(*, remote: bool, side_effects: bool) -> dict[str, Any]:
    """What a tool that declares none of the three capabilities is taken to do.

    - A tool with no Python function (schema-only, MCP, ``--tools tools.json``) runs elsewhere,
      on code tooldag cannot see: its output may be private and untrusted, and every argument
      may leave.
    - A Python function is the user's own code. Read-only (``side_effects=False``), it is taken
      as local: no private output, no third-party text, nothing leaves (a read-only network tool
      must say ``egress=``, as ``http_get`` does). With side effects (``@tool``'s default), every
      argument may leave: acting on the world includes sending to it.
    """
    return {
        "reads_private": remote,
        "untrusted_output": remote,
        "egress": ALL_ARGUMENTS if remote or side_effects else _NONE,
    }


def capabilities_from_hints(annotations: Any, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata MCP-style ``annotations`` imply for what ``declared`` leaves unsaid.

    ``readOnlyHint`` (without ``destructiveHint``) means no side effects and safe to repeat;
    ``idempotentHint`` safe to repeat; ``openWorldHint`` (true unless the server says false, as
    in MCP) egress of every argument and untrusted output. Hints come from a server, so they are
    untrusted: they may only make a tool *less* trusted than its defaults. A server saying
    ``openWorldHint: false`` or ``readOnlyHint: true`` does not lift egress; only the user's own
    declaration (``"egress": false`` in the tools file) does.
    """
    if not isinstance(annotations, Mapping):
        return {}
    hints = {k: v for k, v in annotations.items() if isinstance(v, bool)}
    read_only = hints.get("readOnlyHint", False) and not hints.get("destructiveHint", False)
    implied: dict[str, Any] = {}
    if read_only:
        implied["side_effects"] = False
    if read_only or hints.get("idempotentHint", False):
        implied["idempotent"] = True
    if hints.get("openWorldHint", True):
        implied["egress"] = ALL_ARGUMENTS
        implied["untrusted_output"] = True
    return {k: v for k, v in implied.items() if k not in declared}
