"""``tooldag chat | run | plan | demo`` as a person runs them: help, the no-LLM message, one-shot
runs against the fake OpenAI server (in a subprocess, over a real socket) and the offline demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tooldag.errors import LLMConfigError
from tooldag.llm.client import LLMClient
from tooldag.testing import ErrorReply, FakeLLMServer
from tooldag.ui.cli import main

_LLM_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT", "TOOLDAG_MODEL")

SUM_PLAN = {
    "goal": "add things",
    "steps": [{"id": "sum", "tool": "calculate", "args": {"expression": "17 * 3"}}],
    "answer": "17 * 3 = ${sum.result}",
}
WRITE_PLAN = {
    "goal": "write a file",
    "steps": [
        {"id": "save", "tool": "write_file", "args": {"path": "out.txt", "content": "hello"}}
    ],
    "answer": "wrote ${save.path}",
}


@pytest.fixture
def no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _LLM_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(rules={"add": SUM_PLAN, "write": WRITE_PLAN}) as fake:
        yield fake


def _tooldag(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in _LLM_VARS}
    return subprocess.run(
        [sys.executable, "-m", "tooldag", *args],
        env={**clean, "COLUMNS": "120", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("command", ["chat", "run", "plan", "demo"])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"tooldag {command}" in out


@pytest.mark.parametrize("argv", [["chat"], ["run", "what is 2 + 2"], ["plan", "what is 2 + 2"]])
def test_without_an_llm_each_command_says_how_to_configure_one_and_exits_2(
    argv: list[str], no_llm: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    with pytest.raises(LLMConfigError) as library:
        LLMClient.from_env(env={})
    assert err == f"error: {library.value}\n"  # the guidance is the library's, written once
    assert "OPENAI_API_KEY" in err
    assert "OPENAI_BASE_URL=http://localhost:11434/v1 TOOLDAG_MODEL=" in err  # Ollama
    assert "tooldag demo" in err
    assert "Traceback" not in err


def test_a_bad_llm_setting_is_one_clear_line(
    no_llm: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:11434")
    assert main(["plan", "anything"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: OPENAI_BASE_URL must be an http(s) URL")
    assert "\n" not in err


@pytest.mark.slow
def test_run_prints_the_plan_and_the_answer(server: FakeLLMServer, tmp_path: Path) -> None:
    env = {**server.env(), "TOOLDAG_HOME": str(tmp_path)}
    done = _tooldag("run", "add", "17", "and", "3", "--tools", "calc", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "plan · 1 step" in done.stderr and 'expression="17 * 3"' in done.stderr
    assert "answer: 17 * 3 = 51" in done.stdout
    assert "succeeded in" in done.stdout
    assert (tmp_path / "runs.sqlite3").exists()  # journalled in $TOOLDAG_HOME


@pytest.mark.slow
def test_run_json_prints_the_run_result(server: FakeLLMServer, tmp_path: Path) -> None:
    env = {**server.env(), "TOOLDAG_HOME": str(tmp_path)}
    done = _tooldag("run", "add 17 and 3", "--json", "--tools", "calc", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["answer"] == "17 * 3 = 51"
    assert result["usage"]["calls"] == 1


@pytest.mark.slow
def test_run_without_a_terminal_refuses_side_effects_unless_yes(
    server: FakeLLMServer, tmp_path: Path
) -> None:
    env = {**server.env(), "TOOLDAG_HOME": str(tmp_path), "TOOLDAG_WORKSPACE": str(tmp_path)}
    refused = _tooldag("run", "write it", "--tools", "files", env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "pass --yes" in refused.stderr
    assert "rejected" in refused.stdout
    assert not (tmp_path / "out.txt").exists()
    allowed = _tooldag("run", "write it", "--tools", "files", "--yes", env=env, cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert (tmp_path / "out.txt").read_text() == "hello"


@pytest.mark.slow
def test_plan_json_is_a_plan_exec_can_run(server: FakeLLMServer, tmp_path: Path) -> None:
    env = {**server.env(), "TOOLDAG_HOME": str(tmp_path)}
    planned = _tooldag("plan", "add things", "--json", "--tools", "calc", env=env, cwd=tmp_path)
    assert planned.returncode == 0, planned.stderr
    (tmp_path / "plan.json").write_text(planned.stdout)
    ran = _tooldag("exec", "plan.json", "--tools", "calc", env=env, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "17 * 3 = 51" in ran.stdout


@pytest.mark.slow
def test_demo_replays_the_scripted_goals_offline_and_exits_0(tmp_path: Path) -> None:
    # No LLM variables at all, and a dead proxy for any request that would leave the machine.
    dead = "http://127.0.0.1:9"
    env = {
        "TOOLDAG_HOME": str(tmp_path),
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "ALL_PROXY": dead,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    done = _tooldag("demo", env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "REPLAY: SCRIPTED LLM ANSWERS" in out
    assert "answer: East sold the most: 27100 of 77100 in all, 35.1% of all revenue." in out
    assert "allow write_file? y" in out and "answered automatically" in out
    assert "Saved report.md" in out
    assert "✗ todo failed" in out and "new plan (version 2)" in out
    assert "notes/todo.md does:\n- renew the office plants" in out
    assert out.count(" succeeded  ") >= 4  # /runs lists the four runs
    assert not (tmp_path / "runs.sqlite3").exists()  # the demo keeps to its temporary workspace


@pytest.mark.slow
def test_demo_interactive_takes_typed_goals(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tooldag", "demo", "--interactive"],
        input="Which region sold the most?\nsomething the script does not know\n/quit\n",
        env={**{k: v for k, v in os.environ.items() if k not in _LLM_VARS}, "COLUMNS": "120"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "answer: East sold the most" in done.stdout
    assert "knows only its own goals" in done.stdout  # an unknown goal gets an honest answer


@pytest.mark.slow
def test_run_and_plan_json_always_print_one_json_object(tmp_path: Path) -> None:
    # Scripts read stdout: a rejected plan or a failing LLM is still one JSON object there.
    unknown = {"steps": [{"id": "a", "tool": "no_such_tool", "args": {}}]}
    rules = {"denied": ErrorReply(401, "Incorrect API key provided")}
    with FakeLLMServer(rules=rules, default=unknown) as fake:  # re-asks get the same junk
        env = {**fake.env(), "TOOLDAG_HOME": str(tmp_path)}
        for command in ("run", "plan"):
            rejected = _tooldag(command, "junk", "--json", "--tools", "calc", env=env, cwd=tmp_path)
            assert rejected.returncode == 1, rejected.stderr
            body = json.loads(rejected.stdout)
            assert body["status"] == "rejected"
            assert "unknown_tool" in [i["code"] for i in body["issues"]]
            failed = _tooldag(command, "denied", "--json", "--tools", "calc", env=env, cwd=tmp_path)
            assert failed.returncode == 1
            body = json.loads(failed.stdout)
            assert body["status"] == "failed" and "401" in body["error"]
            assert failed.stderr.startswith("error: ")
