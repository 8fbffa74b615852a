"""What a run's steps share (``tooldag.execution.scope``): opened once on first use, closed with
the run, whatever way it ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tooldag import Plan, ToolRegistry, tool
from tooldag.execution.executor import Executor
from tooldag.execution.scope import RunScope, current_scope, run_scope
from tooldag.result import RunStatus

GATE = 5.0


class Conn:
    opened: list[Conn] = []

    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


async def opener() -> Conn:
    await asyncio.sleep(0)  # opening takes a moment: callers arrive while it goes
    conn = Conn()
    Conn.opened.append(conn)
    return conn


@pytest.fixture(autouse=True)
def fresh() -> None:
    Conn.opened = []


async def test_callers_share_one_opening_and_the_scope_closes_it() -> None:
    async with run_scope() as scope:
        first, second = await asyncio.gather(scope.get("k", opener), scope.get("k", opener))
        assert first is second and len(Conn.opened) == 1
        assert current_scope() is scope
    assert first.closed and current_scope() is None


async def test_a_failed_opening_is_forgotten_so_the_next_call_tries_again() -> None:
    calls = 0

    async def flaky() -> Conn:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("not yet")
        return await opener()

    scope = RunScope()
    with pytest.raises(ConnectionError):
        await scope.get("k", flaky)
    assert isinstance(await scope.get("k", flaky), Conn) and calls == 2
    await scope.aclose()


async def test_discard_closes_a_dead_resource_and_the_next_get_opens_anew() -> None:
    scope = RunScope()
    dead = await scope.get("k", opener)
    await scope.discard("k", dead)
    assert dead.closed
    fresh = await scope.get("k", opener)
    assert fresh is not dead
    await scope.discard("k", dead)  # not the current one any more: left alone
    assert not fresh.closed
    await scope.aclose()
    assert fresh.closed
    with pytest.raises(RuntimeError, match="run is over"):
        await scope.get("k", opener)


async def test_an_opening_still_under_way_is_cancelled_when_the_scope_closes() -> None:
    started = asyncio.Event()

    async def never() -> Conn:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    scope = RunScope()
    waiter = asyncio.ensure_future(scope.get("k", never))
    await asyncio.wait_for(started.wait(), GATE)
    await asyncio.wait_for(scope.aclose(), GATE)  # does not wait for the opening to finish
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_scope_inside_a_scope_is_the_outer_one() -> None:
    async with run_scope() as outer:
        conn = await outer.get("k", opener)
        async with run_scope() as inner:
            assert inner is outer
        assert not conn.closed  # the inner exit closes nothing
    assert conn.closed


def _plan(*steps: dict[str, Any]) -> Plan:
    return Plan.model_validate({"goal": "g", "steps": list(steps)})


async def test_every_execution_has_a_scope_closed_when_it_ends_even_failed() -> None:
    seen: list[RunScope | None] = []

    @tool(side_effects=False)
    async def use(fail: bool = False) -> int:
        """Open the shared connection."""
        seen.append(current_scope())
        await asyncio.get_running_loop().create_task(_get())
        if fail:
            raise ValueError("broken")
        return 1

    async def _get() -> None:
        scope = current_scope()
        assert scope is not None
        await scope.get("conn", opener)

    registry = ToolRegistry([use])
    ok = await Executor(registry).run(
        _plan({"id": "a", "tool": "use", "args": {}}, {"id": "b", "tool": "use", "args": {}})
    )
    failed = await Executor(registry).run(_plan({"id": "c", "tool": "use", "args": {"fail": True}}))
    assert ok.status is RunStatus.SUCCEEDED and failed.status is RunStatus.FAILED
    assert seen[0] is seen[1] and seen[2] is not seen[0]  # one scope per execution
    assert len(Conn.opened) == 2 and all(c.closed for c in Conn.opened)
