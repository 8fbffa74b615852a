"""RunResult as people see it in Jupyter (``_repr_markdown_``), and what a status allows."""

from __future__ import annotations

from tooldag import ToolRegistry, parse_plan, run_plan, tool
from tooldag.result import RunStatus, new_run_id


@tool(side_effects=False)
def divide(a: float, b: float) -> dict[str, float]:
    """Divide a by b."""
    return {"q": a / b}


def test_markdown_shows_status_answer_and_one_row_per_step() -> None:
    plan = parse_plan(
        {
            "steps": [
                {"id": "ok", "tool": "divide", "args": {"a": 1, "b": 4}},
                {"id": "bad", "tool": "divide", "args": {"a": 1, "b": 0}},
                {"id": "after", "tool": "divide", "args": {"a": "$bad.q", "b": 1}},
            ],
            "answer": "a|b is ${ok.q}",
        }
    )
    result = run_plan(plan, ToolRegistry([divide]))
    text = result._repr_markdown_()
    lines = text.splitlines()
    assert lines[0].startswith(f"**run {result.run_id}: failed**")
    assert "> a\\|b is 0.25" in lines  # a pipe in the answer cannot break the table
    rows = [line for line in lines if line.startswith("| ") and "---" not in line][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["ok", "bad", "after"]
    assert "| failed | 1 |" in rows[1] and "ZeroDivisionError" in rows[1]
    assert "| blocked | 0 |" in rows[2] and "needs bad" in rows[2]


def test_a_run_can_be_resumed_when_pending_failed_paused_or_interrupted() -> None:
    resumable = {s for s in RunStatus if s.resumable}
    assert resumable == {"pending", "failed", "paused", "interrupted"}
    assert all(s.finished for s in resumable - {RunStatus.PENDING})


def test_a_new_run_id_is_twelve_fresh_hex_digits() -> None:
    ids = {new_run_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


def test_the_repr_of_a_big_run_counts_its_steps_instead_of_listing_them() -> None:
    plan = parse_plan(
        {"steps": [{"id": f"s{i}", "tool": "divide", "args": {"a": i, "b": 2}} for i in range(500)]}
    )
    result = run_plan(plan, ToolRegistry([divide]))
    text = repr(result)
    assert len(text) < 1_000, len(text)  # it listed every record and output: ~200 KB
    assert text.startswith(f"RunResult(run_id='{result.run_id}', status=<RunStatus.SUCCEEDED")
    assert "steps=<500 steps>, outputs=<500 outputs>, plans=<1 plan>" in text
    assert len(result.steps) == 500 and result.outputs["s3"] == {"q": 1.5}  # the values are there
