"""Tools for the viewer's tests, loaded with ``--tools`` by the subprocesses of the browser
tests: one that waits until the test writes to a FIFO (so a step stays running exactly as long
as the test wants, with no timing), one that fails until a file exists, a quick one, and a
booking that is undone when its run is cancelled. Files live in ``$TOOLDAG_TEST_GATES``."""

from __future__ import annotations

import os
from pathlib import Path

from tooldag.errors import PermanentToolError
from tooldag.registry import Compensation, tool

GATES_ENV = "TOOLDAG_TEST_GATES"


def _gates() -> Path:
    return Path(os.environ[GATES_ENV])


@tool(side_effects=False, timeout=600)
def wait_gate(gate: str) -> str:
    """Wait until the test writes to the FIFO ``gate``; returns what it wrote."""
    with (_gates() / gate).open() as fifo:  # opening a FIFO blocks until a writer opens it
        return fifo.read().strip()


@tool(side_effects=False)
def quick(n: int) -> int:
    """Return ``n``."""
    return n


@tool(side_effects=False)
def needs_flag(flag: str) -> str:
    """Fail until the file ``flag`` exists."""
    if not (_gates() / flag).exists():
        raise PermanentToolError(f"{flag} is not there yet")
    return f"{flag} found"


@tool(compensate=Compensation("unbook", {"ref": "$output.ref"}))
def book(name: str) -> dict[str, str]:
    """Book ``name`` (undone by unbook)."""
    (_gates() / f"booked-{name}").write_text(name)
    return {"ref": name}


@tool
def unbook(ref: str) -> dict[str, str]:
    """Undo a booking."""
    (_gates() / f"unbooked-{ref}").write_text(ref)
    return {"unbooked": ref}
