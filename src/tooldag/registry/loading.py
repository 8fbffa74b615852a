"""Loading tools from ``--tools`` specs and the built-in packs.

A SPEC is one of:

- a built-in pack name (``calc``, ``files``, ...: the modules of ``tooldag.packs``);
- a Python file (``path/to/tools.py``) or module (``pkg.mod``): every :class:`Tool` at its top level
  (``@tool`` functions) and every tool of a :class:`ToolRegistry` at its top level is registered;
  a module may instead list its tools in ``TOOLS``;
- a JSON file of schema-only tools (see :meth:`ToolRegistry.load_json`);
- a kind of SPEC that a package above this floor plugs in with :func:`add_tool_source`: the MCP
  client (:mod:`tooldag.mcp`) adds ``mcp:...`` specs and MCP host config files that way, so that
  this module, which every tool source shares, knows nothing of MCP.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType

from ..errors import ConfigError, TooldagError
from .registry import Tool, ToolRegistry

__all__ = [
    "ToolSource",
    "USER_MODULE_PREFIX",
    "add_tool_source",
    "builtin_packs",
    "load_registry",
    "load_tools",
    "tools_of_module",
]

USER_MODULE_PREFIX = "tooldag_user_tools_"
"""How the module of a ``--tools path.py`` file is named: a name nothing else can import (a step
runner on other machines sends such a module's code by value)."""

ToolSource = Callable[[str], "list[Tool] | None"]
"""A plugged-in kind of SPEC: the tools a SPEC names, or ``None`` when it is not of its kind."""

_SOURCES: list[ToolSource] = []


def add_tool_source(source: ToolSource) -> None:
    """Let ``source`` claim SPECs before the built-in kinds are tried (once per source).

    A ``TooldagError`` it raises is the spec's error, as for the built-in kinds."""
    if source not in _SOURCES:
        _SOURCES.append(source)


def builtin_packs() -> list[str]:
    """Names of the built-in tool packs (the modules of ``tooldag.packs``)."""
    packs = importlib.import_module("tooldag.packs")
    return sorted(
        m.name for m in pkgutil.iter_modules(packs.__path__) if not m.name.startswith("_")
    )


def tools_of_module(module: ModuleType) -> list[Tool]:
    declared = getattr(module, "TOOLS", None)
    if declared is not None:
        return list(declared)
    found: dict[str, Tool] = {}
    for value in vars(module).values():
        if isinstance(value, Tool):
            found.setdefault(value.name, value)
        elif isinstance(value, ToolRegistry):
            for t in value:
                found.setdefault(t.name, t)
    return list(found.values())


def _import_file(path: Path) -> ModuleType:
    name = f"{USER_MODULE_PREFIX}{abs(hash(path.resolve()))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except TooldagError:
        sys.modules.pop(name, None)
        raise
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_tools(spec: str, *, option: str = "tools=") -> list[Tool]:
    """The tools a single SPEC names (see the module docstring).

    Every failure is a :class:`ConfigError` naming the spec the way the caller was given it:
    ``option`` is the argument's name, ``tools=`` (a library argument: ``tools='x.py': no such
    file``) by default, ``--tools`` from the command line (``--tools x.py: no such file``). A bad
    spec is a usage error, whether the file is missing or one of its tools cannot be registered.
    """
    named = f"{option}{spec!r}" if option.endswith("=") else f"{option} {spec}"
    try:
        return _load_tools(spec)
    except ConfigError as exc:
        # Plugged-in sources (MCP) name the spec as the command line does; said once, here.
        message = str(exc).removeprefix(f"--tools {spec}: ")
        raise ConfigError(f"{named}: {message}") from exc
    except TooldagError as exc:
        raise ConfigError(f"{named}: {exc}") from exc


def _load_tools(spec: str) -> list[Tool]:
    for source in _SOURCES:
        claimed = source(spec)
        if claimed is not None:
            if not claimed:
                raise ConfigError("it offers no tools")
            return claimed
    path = Path(spec)
    if spec.endswith(".json"):
        if not path.is_file():
            raise ConfigError("no such file")
        tools = ToolRegistry().load_json(path)
        if not tools:
            raise ConfigError("the file lists no tools")
        return tools
    if spec.endswith(".py") or "/" in spec or "\\" in spec:
        if not path.is_file():
            raise ConfigError("no such file")
        tools = tools_of_module(_import_file(path))
    else:
        packs = builtin_packs()
        target = f"tooldag.packs.{spec}" if spec in packs else spec
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name and target.startswith(exc.name):
                hint = f"built-in packs: {', '.join(packs)}" if packs else "no built-in packs"
                raise ConfigError(
                    f"no such module or pack ({hint}; or give a path to a .py or .json file)"
                ) from None
            raise ConfigError(f"importing it failed: {exc}") from exc
        except TooldagError:
            raise
        except Exception as exc:
            raise ConfigError(f"importing it failed: {type(exc).__name__}: {exc}") from exc
        tools = tools_of_module(module)
    if not tools:
        raise ConfigError("no tools found (decorate functions with @tool, or list them in TOOLS)")
    return tools


def load_registry(specs: Iterable[str] | None = None, *, option: str = "tools=") -> ToolRegistry:
    """A registry of the tools the specs name; ``None`` means every built-in pack. ``option``
    names the argument in errors (:func:`load_tools`)."""
    registry = ToolRegistry()
    if specs is None:
        for pack in builtin_packs():
            registry.extend(load_tools(pack, option=option), replace=True)
        return registry
    for spec in specs:
        registry.extend(load_tools(spec, option=option), replace=True)
    return registry
