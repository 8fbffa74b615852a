"""The walkthroughs: each ``notebooks/NN_name.py`` (jupytext percent format) is the source of the
``.ipynb`` beside it, committed with its outputs.

The sources run top to bottom, offline, in a kernel of this very interpreter, from a temporary
working directory (``notebooks/execute.py``, which also writes the committed files); every
``.ipynb`` holds exactly its source's cells, executed, and stays small.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType

import jupytext
import nbformat
import pytest
from nbformat import NotebookNode

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = [
    "01_quickstart",
    "02_tools",
    "03_parallel_dags",
    "04_conditions_and_state",
    "05_failures_and_replanning",
    "06_monitoring",
]
# How many matplotlib charts each notebook promises (02 is about schemas: tables, no charts).
CHARTS = {
    "01_quickstart": 0,
    "02_tools": 0,
    "03_parallel_dags": 2,
    "04_conditions_and_state": 1,
    "05_failures_and_replanning": 2,
    "06_monitoring": 2,
}
# How many plan graphs each shows as a picture: inline SVG (tooldag.plan.svg), which needs no
# script and no network, unlike Mermaid text (05 compares two plans in one matplotlib chart).
GRAPHS = {
    "01_quickstart": 1,
    "02_tools": 0,
    "03_parallel_dags": 1,
    "04_conditions_and_state": 1,
    "05_failures_and_replanning": 0,
    "06_monitoring": 1,
}
NOTEBOOK_TIMEOUT = 120.0  # seconds for a whole notebook; each runs in a few
MAX_BYTES = 150_000  # outputs included; the charts are most of it
FORMATS = "ipynb,py:percent"


def _load_executor() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tooldag_notebooks_execute", NOTEBOOKS / "execute.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


executor = _load_executor()


def _committed(name: str) -> NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _charts(nb: NotebookNode) -> int:
    return sum(
        "image/png" in output.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def _texts(nb: NotebookNode) -> list[str]:
    """Every text an output shows (charts left out: base64 may spell anything)."""
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.extend(v for k, v in output.get("data", {}).items() if k != "image/png")
    return [text if isinstance(text, str) else str(text) for text in texts]


def test_every_notebook_has_a_source_and_its_ipynb() -> None:
    assert [source.stem for source in executor.SOURCES] == NAMES
    assert sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
async def test_notebook_runs_offline_from_top_to_bottom(name: str, tmp_path: Path) -> None:
    # A cell that raises (a failed assert included) fails the test with its traceback.
    nb = await asyncio.wait_for(
        executor.execute(NOTEBOOKS / f"{name}.py", tmp_path), NOTEBOOK_TIMEOUT
    )
    assert _charts(nb) == CHARTS[name]
    assert not [text for text in _texts(nb) if str(tmp_path) in text]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_ipynb_holds_exactly_the_cells_of_its_source(name: str) -> None:
    source = NOTEBOOKS / f"{name}.py"
    expected = executor.read_source(source)
    committed = _committed(name)
    assert [(c.id, c.cell_type, c.source) for c in committed.cells] == [
        (c.id, c.cell_type, c.source) for c in expected.cells
    ], "the .ipynb is stale: run `python notebooks/execute.py` and commit both files"
    assert committed.metadata.jupytext.formats == expected.metadata.jupytext.formats == FORMATS
    # What `jupytext --sync` would write from the .ipynb is the source as committed, byte for
    # byte, so syncing from either side (or saving in Jupyter) changes nothing.
    assert jupytext.writes(committed, "py:percent") == source.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_its_outputs_and_is_small(name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = _committed(name)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    assert [o for cell in code for o in cell.outputs if o.output_type == "error"] == []
    assert _charts(nb) == CHARTS[name]
    assert path.stat().st_size < MAX_BYTES
    # Nothing that names the machine that ran it: no paths, no interpreter version, no timing.
    here = [str(p) + os.sep for p in (NOTEBOOKS.parent, Path.home(), tempfile.gettempdir())]
    assert [t for t in _texts(nb) if any(p in t for p in here)] == []
    assert "version" not in nb.metadata.language_info
    assert all("execution" not in cell.metadata for cell in code)


def _graphs(nb: NotebookNode) -> int:
    return sum(
        any("tooldag-dag" in str(output.get("data", {}).get(k, "")) for k in PICTURES)
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


PICTURES = ("text/html", "image/svg+xml")


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_shows_its_graphs_as_pictures_not_mermaid(name: str) -> None:
    nb = _committed(name)
    assert _graphs(nb) == GRAPHS[name]
    assert [t for t in _texts(nb) if "```mermaid" in t or "mermaid.js" in t] == []


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if GRAPHS[n]])
def test_the_html_export_has_each_graph_inline(name: str) -> None:
    # What nbconvert writes: the SVG in the page itself (a result's HTML) or as a data: image
    # (an SVG output), so the picture is there with no network.
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter().from_notebook_node(_committed(name))
    inline = re.findall(r'<svg[^>]*class="tooldag-dag"', html)
    images = [
        base64.b64decode(data).decode()
        for data in re.findall(r'<img[^>]* src="data:image/svg\+xml;base64,([^"]+)"', html)
    ]
    assert len(inline) + sum('class="tooldag-dag"' in svg for svg in images) == GRAPHS[name]
    assert "```mermaid" not in html


@pytest.mark.parametrize("name", NAMES)
def test_notebook_starts_the_fake_server_and_shows_how_to_use_a_real_model(name: str) -> None:
    nb = executor.read_source(NOTEBOOKS / f"{name}.py")
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert "FakeLLMServer(" in code[0] and ".start()" in code[0]
    switch = next(source for source in code if "USE_REAL_MODEL" in source)
    assert "USE_REAL_MODEL = False" in switch and "LLMClient.from_env()" in switch
