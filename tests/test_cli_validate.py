"""``tooldag validate``, ``tooldag tools`` and ``tooldag graph``: exit codes, output, bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tooldag.ui.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WEATHER_TOOLS = str(EXAMPLES / "weather_tools.py")
SEED_PLAN = str(EXAMPLES / "weather_plan.json")
CYCLE_PLAN = str(EXAMPLES / "cycle_plan.json")
TOOLDAG = Path(sys.executable).with_name("tooldag")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def flat(text: str) -> str:
    """Rich wraps long lines at the console width: compare text, not layout."""
    return " ".join(text.split())


def assert_one_clear_error(err: str, *words: str) -> None:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0], lines[0]


# --------------------------------------------------------------------------- validate


def test_seed_plan_is_valid_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", SEED_PLAN, "--tools", WEATHER_TOOLS)
    assert code == 0, out + err
    assert "valid plan, 3 step(s) over 3 tool(s)" in flat(out)
    assert err == ""


def test_cycle_is_printed_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", CYCLE_PLAN, "--tools", WEATHER_TOOLS)
    assert code == 1
    text = flat(out)
    assert "1 error(s)" in text
    assert "cycle: [weather] the steps depend on each other in a circle: " in text
    assert "weather -> outfit -> weather" in text


def test_json_output_has_exactly_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", CYCLE_PLAN, "--tools", WEATHER_TOOLS, "--json")
    assert code == 1
    data = json.loads(out)
    assert list(data) == ["valid", "issues"]
    assert data["valid"] is False
    (issue,) = data["issues"]
    assert list(issue) == ["code", "severity", "step", "path", "message", "hint"]
    assert issue["code"] == "cycle"
    assert issue["severity"] == "error"
    assert issue["step"] == "weather"
    assert issue["path"] == "steps[0]"
    assert "weather -> outfit -> weather" in issue["message"]

    code, out, _ = run(capsys, "validate", SEED_PLAN, "--tools", WEATHER_TOOLS, "--json")
    assert code == 0
    assert json.loads(out) == {"valid": True, "issues": []}


def test_several_issues_are_listed_with_hints(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            [
                {"id": "weather", "tool": "get_wether", "args": {"location": "Paris"}},
                {"id": "outfit", "tool": "recommend_outfit", "args": {"temperature": "warm"}},
            ]
        ),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", str(plan), "--tools", WEATHER_TOOLS)
    assert code == 1
    text = flat(out)
    assert "3 error(s)" in text
    assert "hint: did you mean get_weather?" in text
    assert "missing_argument" in text and "type_mismatch" in text


def test_unreadable_llm_reply_exits_2_with_issues_in_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reply = tmp_path / "reply.txt"
    reply.write_text('Sure! ```json\n{"steps": [{"id": "a", "tool": "get_weather", "ar', "utf-8")
    code, out, err = run(capsys, "validate", str(reply), "--tools", WEATHER_TOOLS, "--json")
    assert code == 2
    data = json.loads(out)
    assert data["valid"] is False
    assert [i["code"] for i in data["issues"]] == ["truncated_json"]
    assert list(data["issues"][0]) == ["code", "severity", "step", "path", "message", "hint"]
    assert "Traceback" not in err


def test_lenient_input_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = "Here you go:\n```\n" + (EXAMPLES / "weather_plan.json").read_text("utf-8") + "```"
    monkeypatch.setattr(sys, "stdin", io.StringIO(reply))
    code, out, _ = run(capsys, "validate", "-", "--tools", WEATHER_TOOLS)
    assert code == 0, out


def test_tools_from_a_json_file_of_schemas(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(
        json.dumps(
            [
                {
                    "name": "get_weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"location": {"type": "string"}},
                        "required": ["location"],
                    },
                    "output_schema": {
                        "type": "object",
                        "properties": {"temp": {"type": "number"}, "condition": {"type": "string"}},
                    },
                },
                {
                    "name": "recommend_outfit",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "temperature": {"type": "number"},
                            "condition": {"type": "string"},
                        },
                    },
                },
            ]
        ),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "validate", CYCLE_PLAN, "--tools", str(tools), "--json")
    assert code == 1
    codes = [i["code"] for i in json.loads(out)["issues"]]
    # get_weather's output has no "outfit" field (recommend_outfit declares no output here).
    assert codes == ["cycle"]


def test_tools_from_a_module_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_weather_tools.py").write_text(
        (EXAMPLES / "weather_tools.py").read_text("utf-8"), encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run(capsys, "validate", SEED_PLAN, "--tools", "my_weather_tools")
    assert code == 0, out


# --------------------------------------------------------------------------- tools and graph


def test_tools_json_lists_each_tool_with_its_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tools", "--tools", WEATHER_TOOLS, "--json")
    assert code == 0
    tools = {t["name"]: t for t in json.loads(out)}
    assert list(tools) == ["get_weather", "recommend_outfit", "send_alert"]
    weather = tools["get_weather"]
    assert weather["parameters"]["required"] == ["location"]
    assert weather["output_schema"]["properties"]["temp"] == {"title": "Temp", "type": "number"}
    assert weather["side_effects"] is False and weather["callable"] is True
    assert tools["send_alert"]["parameters"]["properties"]["severity"]["default"] == "low"


def test_tools_json_reads_back_as_a_tools_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(capsys, "tools", "--tools", WEATHER_TOOLS, "--json")
    assert code == 0
    exported = tmp_path / "tools.json"
    exported.write_text(out, encoding="utf-8")
    code, out, _ = run(capsys, "validate", CYCLE_PLAN, "--tools", str(exported), "--json")
    assert code == 1
    assert [i["code"] for i in json.loads(out)["issues"]] == ["cycle"]
    code, out, _ = run(capsys, "tools", "--tools", str(exported), "--json")
    again = {t["name"]: t for t in json.loads(out)}
    assert again["get_weather"]["output_schema"]["properties"]["temp"]["type"] == "number"
    assert again["get_weather"]["callable"] is False


def test_tools_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tools", "--tools", WEATHER_TOOLS)
    assert code == 0
    for name in ("get_weather", "recommend_outfit", "send_alert", "severity?"):
        assert name in out


def test_graph_prints_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "graph", SEED_PLAN)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    assert "    weather --> outfit" in lines
    assert "    weather --> alert" in lines
    assert '    alert{{"alert<br/><small>send_alert</small>"}}' in lines


def test_graph_node_ids_are_safe_and_distinct(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            [
                {"id": "a-b", "tool": "t"},
                {"id": "a_b", "tool": "t", "depends_on": ["a-b"]},
                {"id": "end", "tool": "t", "args": {"x": "$a_b"}},
            ]
        ),
        encoding="utf-8",
    )
    code, out, _ = run(capsys, "graph", str(plan))
    assert code == 0
    lines = out.splitlines()
    assert "    a_b -.-> a_b_1" in lines  # depends_on only: dotted
    assert "    a_b_1 --> s_end" in lines  # a reference: solid


def test_graph_of_an_unreadable_plan_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2", encoding="utf-8")
    code, out, err = run(capsys, "graph", str(bad))
    assert code == 2
    assert out == ""
    assert "truncated_json" in err and "Traceback" not in err


# --------------------------------------------------------------------------- bad input


def test_missing_plan_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path / "nope.json"), "--tools", WEATHER_TOOLS)
    assert code == 2
    assert_one_clear_error(err, "no such plan file")


def test_directory_as_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", str(tmp_path), "--tools", WEATHER_TOOLS)
    assert code == 2
    assert_one_clear_error(err, "is a directory")


def test_binary_file_as_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    binary = tmp_path / "plan.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    code, _, err = run(capsys, "validate", str(binary), "--tools", WEATHER_TOOLS)
    assert code == 2
    assert_one_clear_error(err, "not a UTF-8 text file")


class _EndlessStdin(io.RawIOBase):
    """A pipe that never ends (``yes | tooldag exec -``): counts what is read of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        buffer[:] = b"x" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


@pytest.mark.parametrize("where", ["file", "stdin"])
def test_a_plan_past_the_size_cap_is_refused_before_it_is_read_whole(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    where: str,
) -> None:
    monkeypatch.setenv("TOOLDAG_MAX_PLAN_BYTES", "1000")
    if where == "file":
        big = tmp_path / "plan.json"
        big.write_text('{"steps": []}' + " " * 5000, "utf-8")
        target = str(big)
    else:
        endless = _EndlessStdin()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(endless)))
        target = "-"
    code, _, err = run(capsys, "validate", target, "--tools", WEATHER_TOOLS)
    assert code == 2
    assert_one_clear_error(err, "more than 1,000 bytes", "TOOLDAG_MAX_PLAN_BYTES")
    if where == "stdin":
        assert endless.read_bytes < 100_000  # the cap, plus one buffer, not the whole pipe


def test_the_size_cap_is_a_plain_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_MAX_PLAN_BYTES", "lots")
    code, _, err = run(capsys, "validate", str(EXAMPLES / "weather_plan.json"))
    assert code == 2
    assert_one_clear_error(err, "TOOLDAG_MAX_PLAN_BYTES must be a whole number")
    monkeypatch.setenv("TOOLDAG_MAX_PLAN_BYTES", "100000")
    code, out, _ = run(
        capsys, "validate", str(EXAMPLES / "weather_plan.json"), "--tools", WEATHER_TOOLS
    )
    assert code == 0, out


@pytest.mark.parametrize(
    ("content", "code_name"),
    [
        ("{not json at all", "truncated_json"),
        ('{"steps": [1,, 2]}', "not_json"),
        ("42", "bad_plan"),
    ],
)
def test_plan_that_is_not_a_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, code_name: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "validate", str(plan), "--tools", WEATHER_TOOLS)
    assert code == 2
    assert f"{plan}: not a readable plan" in flat(out)
    assert code_name in out
    assert err == ""


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_such_module_xyz", ["--tools no_such_module_xyz", "no such module"]),
        ("missing/tools.py", ["--tools missing/tools.py", "no such file"]),
        ("missing.json", ["--tools missing.json", "no such file"]),
        ("json", ["--tools json", "no tools found"]),
    ],
)
def test_bad_tools_spec_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], spec: str, words: list[str]
) -> None:
    code, out, err = run(capsys, "validate", SEED_PLAN, "--tools", spec)
    assert code == 2
    assert out == ""
    assert_one_clear_error(err, *words)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("broken.py", "def oops(:\n", ["importing", "SyntaxError"]),
        ("raises.py", "raise RuntimeError('boom')\n", ["importing", "RuntimeError: boom"]),
        (
            "dup.py",
            "from tooldag import tool, ToolRegistry\n"
            "@tool\ndef a() -> int:\n    return 1\n"
            "r = ToolRegistry([a, a])\n",
            ["already registered"],
        ),
        ("tools.json", "[{", ["not valid JSON"]),
        (
            "tools.json",
            '[{"name": "x", "parameters": {"type": "object", "required": 1}}]',
            ["not a valid"],
        ),
        ("tools.json", "[]", ["lists no tools"]),
    ],
)
def test_bad_tools_file_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, content: str, words: list[str]
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    code, _, err = run(capsys, "tools", "--tools", str(path))
    assert code == 2
    assert_one_clear_error(err, *words)


# --------------------------------------------------------------------------- the real program


def _tooldag(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI")}
    return subprocess.run(
        [str(TOOLDAG), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=EXAMPLES.parent,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(not TOOLDAG.exists(), reason="the console script is not installed")
def test_installed_console_script_exit_codes() -> None:
    cycle = _tooldag("validate", "examples/cycle_plan.json", "--tools", "examples/weather_tools.py")
    assert cycle.returncode == 1, cycle.stderr
    assert "weather -> outfit -> weather" in flat(cycle.stdout)

    valid = _tooldag(
        "validate", "examples/weather_plan.json", "--tools", "examples/weather_tools.py", "--json"
    )
    assert valid.returncode == 0, valid.stderr
    assert json.loads(valid.stdout) == {"valid": True, "issues": []}

    missing = _tooldag("validate", "examples/nope.json", "--tools", "examples/weather_tools.py")
    assert missing.returncode == 2
    assert_one_clear_error(missing.stderr, "no such plan file")


# --------------------------------------------------------------------------- messages for people

CUT_PLAN = """{"goal": "Weather in London",
 "steps": [
   {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
   {"id": "outfit", "tool": "recommend_outfit",
"""

TRAILING_COMMA_PLAN = """{"goal": "Weather in London",
 "steps": [
   {"id": "weather", "tool": "get_weather", "args": {"location": "London"}},
 ]
}
"""


@pytest.mark.parametrize("command", ["validate", "exec"])
def test_a_plan_file_cut_off_is_told_to_a_person_not_to_the_llm(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(CUT_PLAN, encoding="utf-8")
    extra = ["--no-store"] if command == "exec" else []
    code, out, err = run(capsys, command, str(plan), "--tools", WEATHER_TOOLS, *extra)
    assert code == 2
    lines = (out + err).splitlines()
    assert lines[0] == f"{plan}: not a readable plan"
    assert lines[1] == (
        "  ✗ truncated_json: the file ends before the JSON is complete (line 4: 3 bracket(s) "
        "still open)"
    )
    # The hint on a line of its own, the same way in both commands.
    assert lines[2].startswith("      hint: close every [ and { that is opened")
    assert "reply" not in out + err and "send the" not in out + err


def test_a_repaired_trailing_comma_is_a_warning_of_validate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(TRAILING_COMMA_PLAN, encoding="utf-8")
    code, out, _ = run(capsys, "validate", str(plan), "--tools", WEATHER_TOOLS)
    assert code == 0
    assert "valid plan, 1 step(s) over 1 tool(s), 1 warning(s)" in flat(out)
    assert (
        "  ! repaired_json (warning): the JSON was read once repaired: a trailing comma dropped "
        "(line 3)"
    ) in out.splitlines()
    code, out, _ = run(capsys, "validate", str(plan), "--tools", WEATHER_TOOLS, "--json")
    assert code == 0
    [issue] = json.loads(out)["issues"]
    assert (issue["code"], issue["severity"]) == ("repaired_json", "warning")


def test_exec_shows_the_repair_and_runs_the_plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(TRAILING_COMMA_PLAN, encoding="utf-8")
    code, out, err = run(capsys, "exec", str(plan), "--tools", WEATHER_TOOLS, "--no-store")
    assert code == 0, out + err
    assert "! repaired_json (warning)" in err
    assert "1 succeeded" in flat(out)


# --------------------------------------------------------------------------- help


def test_version_and_commands_in_the_order_a_newcomer_needs_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("tooldag ")
    main([])
    out = capsys.readouterr().out
    order = ["demo", "chat", "run", "plan", "exec", "runs", "validate", "tools", "graph"]
    places = [out.index(f"\n    {name} ") for name in order]
    assert places == sorted(places)
    assert "  # see it work with no API key (scripted LLM answers)\n  tooldag demo\n\n" in out


@pytest.mark.parametrize("command", ["chat", "run"])
def test_chat_and_run_take_no_store(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--no-store" in capsys.readouterr().out
