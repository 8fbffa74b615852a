"""The code stays ruff-clean, formatted, and mypy-strict-clean (src/, the tool packs and the
notebooks' jupytext sources).

Run here, not only by hand, so that a clean clone's CI rejects a change that breaks them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Subprocesses (ruff, mypy, pip, a wheel build): seconds each, so not in the inner loop.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LINTED = ["src", "tests", "tools", "benchmarks", "examples", "notebooks"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_ruff_finds_nothing() -> None:
    done = _run("ruff", "check", "--no-cache", *LINTED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_applied() -> None:
    done = _run("ruff", "format", "--check", "--no-cache", *LINTED)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the three targets (fresh for each test session): tools and notebooks import
    # tooldag and the same third-party packages, which the first target has checked already.
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.mark.parametrize("target", ["src/tooldag", "tools", "notebooks"])
def test_mypy_strict_is_clean(target: str, mypy_cache: Path) -> None:
    # The packs are installed as tooldag.packs; mypy finds tooldag itself through MYPYPATH.
    done = _run(
        "mypy",
        "--strict",
        "--cache-dir",
        str(mypy_cache),
        target,
        env={"MYPYPATH": str(ROOT / "src")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
