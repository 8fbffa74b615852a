"""RunResult as people see it in Jupyter (``_repr_markdown_``), and what a status allows."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import tooldag.result as result_module
from tooldag import ToolRegistry, parse_plan, run_plan, tool
from tooldag.result import RunResult, RunStatus, StepRecord, StepRecords, new_run_id


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


def _divisions(b: float = 0) -> RunResult:
    plan = parse_plan(
        {
            "steps": [
                {"id": "ok", "tool": "divide", "args": {"a": 1, "b": 4}},
                {"id": "bad", "tool": "divide", "args": {"a": 1, "b": b}},
            ]
        }
    )
    return run_plan(plan, ToolRegistry([divide]))


def test_a_runs_records_are_built_when_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = result_module.records_from_attributes

    def counting(source: Any) -> dict[str, StepRecord]:
        built.append(len(source))
        return real(source)

    monkeypatch.setattr(result_module, "records_from_attributes", counting)
    result = _divisions(b=2)  # a run that failed is compensated, which reads its records
    assert result.outputs == {"ok": {"q": 0.25}, "bad": {"q": 0.5}} and result.ok
    assert len(result.steps) == 2 and "bad" in result.steps
    assert built == []  # the answer, outputs, status, a count: no record built
    assert result.steps["bad"].args == {"a": 1, "b": 2}
    assert result.steps["ok"].output == {"q": 0.25}
    assert built == [2]  # once, all together


def test_step_records_are_a_dict_to_pydantic_pickle_and_their_readers() -> None:
    result = _divisions()
    steps = result.steps
    assert isinstance(steps, StepRecords)
    plain = {k: StepRecord.model_validate(v.model_dump()) for k, v in steps.items()}
    assert steps == plain and plain == dict(steps)
    assert list(steps) == ["ok", "bad"] and steps.get("nope") is None
    # Serialised, described and validated as dict[str, StepRecord].
    assert RunResult.model_validate_json(result.model_dump_json()) == result
    assert result.model_dump()["steps"]["bad"]["status"] == "failed"
    schema = RunResult.model_json_schema()["properties"]["steps"]
    assert schema["type"] == "object"
    assert schema["additionalProperties"] == {"$ref": "#/$defs/StepRecord"}
    again = RunResult(run_id="r", status=RunStatus.FAILED, steps=plain)
    assert isinstance(again.steps, StepRecords) and again.steps == steps
    copied = pickle.loads(pickle.dumps(result))
    assert copied == result and isinstance(copied.steps, StepRecords)
    assert copy.deepcopy(result).steps == steps
    # Changed like a dict (tests and callers build results by hand).
    steps["extra"] = StepRecord(id="extra", tool="divide")
    del steps["ok"]
    assert list(steps) == ["bad", "extra"]
