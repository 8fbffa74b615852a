"""The one Ctrl-C wiring of the faces: the first Ctrl-C cancels the run and waits for what the
cancel does (compensation); a second aborts a command, and only says so in the REPL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from rich.console import Console

from tooldag.errors import RunStateError
from tooldag.ui.interrupts import CtrlC, cancellable


def recording() -> Console:
    return Console(width=80, record=True, color_system=None)


@pytest.mark.skipif(sys.platform == "win32", reason="no SIGINT handlers on Windows' loop")
async def test_the_first_ctrl_c_cancels_and_the_run_is_awaited_with_its_compensation() -> None:
    started, stop = asyncio.Event(), asyncio.Event()
    undone: list[str] = []

    async def work() -> str:
        started.set()
        await stop.wait()
        return "cancelled"

    async def cancel() -> None:  # like DurableExecutor.acancel_workflow: stops, then undoes
        stop.set()
        await asyncio.sleep(0)
        undone.append("compensated")

    async def press_ctrl_c() -> None:
        await started.wait()
        os.kill(os.getpid(), signal.SIGINT)

    console = recording()
    presser = asyncio.create_task(press_ctrl_c())
    assert await asyncio.wait_for(cancellable(console, work(), cancel), 10) == "cancelled"
    await presser
    assert undone == ["compensated"]  # run() returned after the cancel's own work was done
    assert "cancelling: undoing what ran (Ctrl-C again to abort)" in console.export_text()


async def test_a_second_ctrl_c_aborts_a_command() -> None:
    ctrl_c = CtrlC(recording())
    cancels: list[bool] = []
    never = asyncio.get_running_loop().create_future()
    running = asyncio.ensure_future(ctrl_c.run(never, lambda: cancels.append(True)))
    await asyncio.sleep(0)
    ctrl_c.interrupt()
    with pytest.raises(KeyboardInterrupt):
        ctrl_c.interrupt()
    assert cancels == [True]  # the cancel was called once
    running.cancel()


async def test_in_the_repl_a_second_ctrl_c_only_says_the_cancel_is_under_way() -> None:
    console = recording()
    ctrl_c = CtrlC(console, second_aborts=False)
    cancels: list[bool] = []
    done = asyncio.get_running_loop().create_future()
    running = asyncio.ensure_future(ctrl_c.run(done, lambda: cancels.append(True)))
    await asyncio.sleep(0)
    ctrl_c.interrupt()
    ctrl_c.interrupt()
    done.set_result("cancelled")
    assert await running == "cancelled"
    assert cancels == [True]
    screen = console.export_text()
    assert "cancelling: undoing what ran...\nstill cancelling: undoing what ran..." in screen


async def test_ctrl_c_while_nothing_runs_does_nothing() -> None:
    console = recording()
    ctrl_c = CtrlC(console)
    ctrl_c.interrupt()
    ctrl_c.interrupt()
    assert await ctrl_c.run(asyncio.sleep(0, "done"), lambda: None) == "done"
    ctrl_c.interrupt()
    assert console.export_text() == ""


async def test_a_cancel_that_fails_is_reported_and_the_run_goes_on() -> None:
    console = recording()
    ctrl_c = CtrlC(console)
    done = asyncio.get_running_loop().create_future()

    async def cancel() -> None:
        done.set_result("succeeded")
        raise RunStateError("run r1 already completed; start a new run id to run it again")

    running = asyncio.ensure_future(ctrl_c.run(done, cancel))
    await asyncio.sleep(0)
    ctrl_c.interrupt()
    assert await running == "succeeded"
    assert "could not cancel: run r1 already completed" in console.export_text()
