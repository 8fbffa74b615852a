"""Shared fixtures: the seed's weather -> outfit tools, loaded the way ``--tools`` loads them, and
the run store's backends (a SQLite file, a real PostgreSQL server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tooldag.registry import ToolRegistry
from tooldag.registry.loading import load_tools
from tooldag.testing.postgres import TemporaryPostgres

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


# --------------------------------------------------------------------------- run store backends
# A real PostgreSQL server (Debian's postgresql package; see tooldag.testing.postgres), started
# once per session when a test first asks for it and stopped at the end. Without the server's
# binaries the fixture errors: the PostgreSQL tests fail, they are never skipped.


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: TemporaryPostgres) -> str:
    """A fresh, empty schema of the session's server, as a store URL."""
    return postgres.new_schema()


BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a conformance test's store lives: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite3")
    return str(request.getfixturevalue("postgres_url"))
