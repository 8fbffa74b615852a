"""The gate: a hook the executor consults just before it calls a step's tool.

``Executor(registry, gate=gate)`` calls ``gate(step, args)`` for every step that is about to run,
with ``args`` its arguments resolved (``${a.result}`` replaced by ``a``'s output and validated),
after its ``when`` held and before its first attempt. The gate answers with a :class:`Verdict`
(or a bool: ``True`` runs, ``False`` skips), directly or from a coroutine:

- ``run``: the step runs;
- ``skip``: the step does not run; it ends ``skipped``, its reason says it was not approved
  (:data:`REFUSED`), every step that waits for it (its references or its ``depends_on``) is
  skipped too, and the run goes on with the other branches;
- ``abort``: the step does not run and neither does anything else: running steps are cancelled,
  the rest is not started, and the run ends ``rejected`` (and, by default, compensated).

A gate that answers at once (a plain value) costs the step nothing. One that awaits (asks a
person) holds that step alone: what does not depend on it runs on meanwhile, and the questions
of one run are asked one at a time, never interleaved. A gate that raises fails its step, which
does not run.

A step skipped by a gate is remembered as refused in the run's records (:func:`refused_steps`),
so a resume does not quietly run it: :meth:`Executor.start` takes ``refused=`` those ids, and
without a gate to ask again they are skipped again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, TypeAlias

from ..errors import ConfigError
from ..plan.model import Step
from ..result import StepRecord, StepStatus

__all__ = ["Gate", "REFUSED", "Verdict", "refused_steps", "verdict_of"]

REFUSED = "not approved"
"""How the reason of a step that a gate refused begins."""


class Verdict(StrEnum):
    """What a gate says about a step that is about to run."""

    RUN = "run"
    SKIP = "skip"
    ABORT = "abort"


Gate: TypeAlias = Callable[[Step, dict[str, Any]], "Verdict | bool | Awaitable[Verdict | bool]"]
"""``gate(step, resolved_args)``: a :class:`Verdict` or a bool, or an awaitable of one."""


def verdict_of(answer: Any) -> Verdict:
    """A gate's answer as a :class:`Verdict` (``True`` runs, ``False`` or ``None`` skips)."""
    if isinstance(answer, Verdict):
        return answer
    if answer is None or isinstance(answer, bool):
        return Verdict.RUN if answer else Verdict.SKIP
    try:
        return Verdict(answer)
    except ValueError:
        raise ConfigError(
            f"a gate answered {answer!r}: answer True, False or a Verdict (run, skip, abort)"
        ) from None


def refused_steps(records: Mapping[str, StepRecord]) -> list[str]:
    """The ids of the steps a gate refused in a run with these records."""
    return [
        sid
        for sid, record in records.items()
        if record.status is StepStatus.SKIPPED and (record.reason or "").startswith(REFUSED)
    ]
