"""``prompts/`` and ``tools/`` must work from an installed wheel, not only from a checkout.

Builds the wheel from a copy of the tracked files (offline: no build isolation), installs it into
a scratch directory that shadows the editable install, and runs the CLI from there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# Subprocesses (ruff, mypy, pip, a wheel build): seconds each, so not in the inner loop.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A copy, so the build's scratch files (build/, *.egg-info) never land in the checkout.
    src = tmp_path_factory.mktemp("src") / "tooldag"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("tooldag-*.whl")
    return built


def test_wheel_contains_prompts_and_packs(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in (ROOT / "prompts").glob("*.j2"):
        assert f"tooldag/prompts/{template.name}" in names
    for pack in (ROOT / "tools").glob("*.py"):
        assert f"tooldag/packs/{pack.name}" in names
    assert "tooldag/py.typed" in names
    assert "tooldag/evaluation/sets/builtin.jsonl" in names  # tooldag eval's shipped goals
    # The web viewer's page loads nothing from elsewhere: its script and style ship here.
    static = ROOT / "src" / "tooldag" / "web" / "static"
    assert {p.name for p in static.iterdir()} >= {"run.html", "run.js", "viewer.css"}
    for asset in static.iterdir():
        assert f"tooldag/web/static/{asset.name}" in names


def test_installed_wheel_runs_the_cli(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [
            sys.executable,
            "-c",
            "import tooldag, tooldag.packs, tooldag.prompts; "
            "print(tooldag.__file__); print(tooldag.packs.__path__[0]); "
            "print(tooldag.prompts.__path__[0])",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert all(line.startswith(str(target)) for line in where), where
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tooldag",
            "validate",
            str(ROOT / "examples/weather_plan.json"),
            "--tools",
            str(ROOT / "examples/weather_tools.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "valid plan" in run.stdout
    tools = subprocess.run(
        [sys.executable, "-m", "tooldag", "tools", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert tools.returncode == 0, tools.stderr
