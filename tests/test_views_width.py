"""The terminal views fit 80 and 120 columns: tool names, step ids and statuses are never cut,
descriptions and details give way (one line, ``…``), and plain lines wrap between words.

Every view is drawn on a rich console of the width in question that records what it wrote (a
terminal, so that lines are wrapped by rich as on a real one) and the text is read back.
"""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console, RenderableType

from tooldag.errors import PermanentToolError
from tooldag.execution.executor import Executor
from tooldag.issues import Issue
from tooldag.observe.monitor import Monitor
from tooldag.plan import Plan
from tooldag.registry import ToolRegistry, tool
from tooldag.result import RunResult
from tooldag.ui import views
from tooldag.ui.cli.common import print_issues
from tooldag.ui.repl import fit_toolbar

WIDTHS = [80, 120]
RUN_ID = "ee37818df885"  # as long as a real one
LONG_ERROR = (
    "the upstream service answered 503 Service Unavailable three times in a row; try again "
    "in a few minutes or check its status page"
)
SKIP_REASON = "condition not met: $weather.temp < 0 (got 18)"


@tool(side_effects=False, category="computation")
def wait_seconds(seconds: float) -> float:
    """Wait a number of seconds, then say how long it waited: the tool to watch the live view
    of a run move with, and to try Ctrl-C on a run that takes a while, on any terminal."""
    return seconds


@tool(side_effects=False, category="data")
def get_weather(location: str) -> dict[str, object]:
    """Current weather for a place: temperature in degrees Celsius, the condition, the wind
    speed in kilometres an hour and today's range, from a service that needs no key."""
    return {"location": location, "temp": 18}


@tool(side_effects=True, category="communication")
def send_alert(message: str, severity: str = "low") -> bool:
    """Send an alert to the on-call channel; it cannot be undone once it has been sent."""
    return True


@tool(side_effects=False, category="computation")
def explode(reason: str) -> str:
    """Fail with the reason given."""
    raise PermanentToolError(reason)


REGISTRY = ToolRegistry([wait_seconds, get_weather, send_alert, explode])
PLAN = Plan.model_validate(
    {
        "goal": "the weather, a pause, an alert when freezing",
        "steps": [
            {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
            {"id": "pause", "tool": "wait_seconds", "args": {"seconds": 0}},
            {
                "id": "alert",
                "tool": "send_alert",
                "args": {"message": "Freezing in ${weather.location}!"},
                "when": {"ref": "$weather.temp", "op": "<", "value": 0},
            },
            {"id": "boom", "tool": "explode", "args": {"reason": LONG_ERROR}},
            {"id": "after_boom", "tool": "get_weather", "args": {"location": "$boom"}},
        ],
    }
)
NAMES = {
    "weather": ("get_weather", "succeeded"),
    "pause": ("wait_seconds", "succeeded"),
    "alert": ("send_alert", "skipped"),
    "boom": ("explode", "failed"),
    "after_boom": ("get_weather", "blocked"),
}


def screen(width: int) -> Console:
    return Console(
        file=io.StringIO(), width=width, record=True, force_terminal=True, color_system=None
    )


def draw(renderable: RenderableType, width: int) -> str:
    console = screen(width)
    console.print(renderable)
    return console.export_text()


def words(text: str) -> list[str]:
    """The words of ``text`` (table rules and bars left out)."""
    return re.findall(r"[^\s│┃━╇·█…]+", text)


async def run(plan: Plan = PLAN) -> tuple[Monitor, RunResult]:
    executor = Executor(REGISTRY)
    monitor = Monitor(executor.bus)
    result = await executor.run(plan, run_id=RUN_ID)
    return monitor, result


def assert_rows_whole(text: str, width: int) -> None:
    """Each step is one line holding its id, its tool and its status whole."""
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    for step, (tool_name, status) in NAMES.items():
        rows = [line for line in lines if re.match(rf"{step} +│", line)]
        assert len(rows) == 1, (step, text)
        assert re.search(rf"│ {tool_name} +│ {status} +│", rows[0]), rows[0]


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_live_table_keeps_names_and_statuses_whole_and_cuts_details(
    width: int,
) -> None:
    monitor, _ = await run()
    text = draw(views.progress_view(monitor, RUN_ID, width=width), width)
    assert_rows_whole(text, width)
    boom = next(line for line in text.splitlines() if line.startswith("boom "))
    # The error is cut on its one line, never wrapped onto the next ones.
    assert boom.rstrip().endswith("…") or boom.rstrip().endswith("page")
    assert "$weather.tem\n" not in text and "\np < 0" not in text


@pytest.mark.parametrize("width", WIDTHS)
async def test_the_end_of_a_run_says_each_error_once_whole_between_words(width: int) -> None:
    monitor, result = await run()
    console = screen(width)
    views.print_result(console, result, monitor)
    text = console.export_text()
    assert_rows_whole(text, width)
    flat = " ".join(text.split())
    # Below the table, in full, once: not also cut short in it.
    assert flat.count(LONG_ERROR) == 1 and flat.count(SKIP_REASON) == 1
    assert "details" not in text  # nothing left for the column: it is left out
    # Wrapped between words: every word of the messages is a word of the screen.
    shown = set(words(text))
    assert set(words(LONG_ERROR)) <= shown and set(words(SKIP_REASON)) <= shown


async def test_the_end_of_a_big_failed_run_explains_a_few_steps_and_counts_the_rest() -> None:
    steps = [{"id": "boom", "tool": "explode", "args": {"reason": "no"}}]
    steps += [
        {"id": f"b{i}", "tool": "get_weather", "args": {"location": "$boom"}} for i in range(35)
    ]
    monitor, result = await run(Plan.model_validate({"steps": steps}))
    console = screen(120)
    views.print_result(console, result, monitor)
    lines = console.export_text().splitlines()
    blocked = [line for line in lines if line.startswith("⊘ b")]
    assert blocked == [f"⊘ b{i} blocked: needs boom (failed)" for i in range(10)]
    assert "⊘ … and 25 more blocked (--json lists every step)" in lines
    assert "✗ boom: PermanentToolError: no" in lines
    assert lines[-1].startswith("failed in ") and "(1 failed, 35 blocked)" in lines[-1]


async def test_an_empty_details_column_takes_no_room() -> None:
    plan = Plan.model_validate(
        {"steps": [{"id": "pause", "tool": "wait_seconds", "args": {"seconds": 1}}]}
    )
    monitor, _ = await run(plan)
    text = draw(views.progress_view(monitor, RUN_ID, width=80), 80)
    assert "details" not in text and "wait_seconds" in text
    # The title runs on past the narrow table rather than wrap onto a second line.
    assert re.search(rf"^run {RUN_ID} · succeeded · [\d.]+s · up to 1 at once *$", text, re.M)


async def test_a_line_off_a_terminal_stays_whole() -> None:
    monitor, result = await run()
    console = Console(file=io.StringIO(), width=80, record=True, color_system=None)
    views.print_result(console, result, monitor)
    assert f"✗ boom: PermanentToolError: {LONG_ERROR}\n" in console.export_text()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_tools_table_keeps_names_whole_and_descriptions_on_one_line(width: int) -> None:
    text = draw(views.tools_table(REGISTRY), width)
    lines = text.splitlines()
    assert all(len(line.rstrip()) <= width for line in lines)
    for name in ("wait_seconds", "get_weather", "send_alert", "explode"):
        row = next(line for line in lines if line.startswith(f"{name} "))
        assert ("side effects" if name == "send_alert" else "read-only") in row
    if width >= 120:
        assert re.search(r"^wait_seconds +computation +read-only +seconds ", text, re.M)
    # A description gives way on its own line: cut, never wrapped onto the next.
    row = next(line for line in lines if line.startswith("wait_seconds "))
    assert row.rstrip().endswith("…")
    assert len(lines) == 1 + len(REGISTRY) + 1  # header, one line a tool, the caption
    assert "tooldag tools --json" in lines[-1]


@pytest.mark.parametrize(
    ("width", "expected"),
    [
        (120, "model m · approve side-effects · policy ask · Ctrl-C cancels a run · Ctrl-D exits"),
        (80, "model m · approve side-effects · policy ask · Ctrl-C cancel · Ctrl-D exit"),
        (66, "model m · approve side-effects · policy ask · ^C cancel · ^D exit"),
        (50, "model m · approve side-effects · policy ask"),
        (30, "model m · approve side-effect…"),
    ],
)
def test_the_bottom_bar_fits_the_terminal(width: int, expected: str) -> None:
    parts = ["model m", "approve side-effects", "policy ask"]
    assert fit_toolbar(parts, width) == expected
    assert len(expected) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_validation_issues_wrap_between_words(width: int) -> None:
    issue = Issue(
        "unknown_tool",
        f"step uses tool 'get_wether', which the registry does not hold; {LONG_ERROR}",
        step="weather",
        path="steps[0].tool",
        hint=f"use one of the tools listed by `tooldag tools` ({SKIP_REASON})",
    )
    console = screen(width)
    print_issues(console, [issue])
    text = console.export_text()
    assert all(len(line.rstrip()) <= width for line in text.splitlines())
    assert len(text.splitlines()) > 2  # it did wrap
    # Every word of the message and the hint is a word of the screen: none was cut in two.
    shown = set(words(text))
    assert set(words(issue.message)) <= shown and set(words(issue.hint or "")) <= shown
