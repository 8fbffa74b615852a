"""What every run of an executor shares: the registry, the bus, limits, timeouts, the output cap,
the gate, the step runner.

:class:`RunOptions` is built once by :class:`~tooldag.execution.executor.Executor` (which is where
its arguments are checked) and handed, frozen, to each run and each saga ledger, so that the
scheduler and the saga read their settings without knowing the executor.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..events import EventBus
from ..registry.registry import ToolRegistry
from .gate import Gate
from .runners import StepRunner

__all__ = ["RunOptions"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """The settings of an executor's runs; a bad value raises :class:`ConfigError`."""

    registry: ToolRegistry
    bus: EventBus
    max_concurrency: int
    tool_limits: Mapping[str, int]
    fail_fast: bool
    default_timeout: float | None
    max_output_bytes: int
    gate: Gate | None = None
    runner: StepRunner[Any] | None = None
    """Where tool calls go (None: this process); see :mod:`~tooldag.execution.runners`."""

    def __post_init__(self) -> None:
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise ConfigError(
                f"max_concurrency must be a whole number >= 1, not {self.max_concurrency!r}"
            )
        for name, limit in self.tool_limits.items():
            if not isinstance(limit, int) or limit < 1:
                raise ConfigError(
                    f"tool_limits[{name!r}] must be a whole number >= 1, not {limit!r}"
                )
        if self.default_timeout is not None and self.default_timeout <= 0:
            raise ConfigError(
                f"default_timeout must be positive or None, not {self.default_timeout!r}"
            )
        if self.max_output_bytes < 1:
            raise ConfigError(f"max_output_bytes must be positive, not {self.max_output_bytes!r}")
        if self.gate is not None and not callable(self.gate):
            raise ConfigError(f"gate must be a callable gate(step, args), not {self.gate!r}")
        if self.runner is not None and not isinstance(self.runner, StepRunner):
            raise ConfigError(
                f"runner= takes a StepRunner (e.g. DaskRunner('tcp://host:8786')), not "
                f"{type(self.runner).__name__}"
            )
        # A copy behind a read-only view: the caller's dict may change, these options may not.
        object.__setattr__(self, "tool_limits", types.MappingProxyType(dict(self.tool_limits)))
