"""Shared fixtures: the seed's weather -> outfit tools, loaded the way ``--tools`` loads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tooldag.registry import ToolRegistry
from tooldag.registry.loading import load_tools

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def examples_dir() -> Path:
    return EXAMPLES


@pytest.fixture
def weather_registry() -> ToolRegistry:
    """get_weather -> {location, temp, condition}, recommend_outfit -> {outfit}, send_alert."""
    return ToolRegistry(load_tools(str(EXAMPLES / "weather_tools.py")))


@pytest.fixture(autouse=True)
def _private_tooldag_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test (and the subprocesses it starts) gets its own $TOOLDAG_HOME: the endpoint
    memory that the LLM client writes there never reaches the user's data directory, and no test
    sees what another one learnt."""
    home = tmp_path_factory.mktemp("tooldag-home")
    monkeypatch.setenv("TOOLDAG_HOME", str(home))
    return home
