"""The walkthrough notebooks run top to bottom, offline, in a kernel of this very interpreter; the
committed files are exactly what ``notebooks/_build.py`` generates, without outputs, and small.

Each notebook is executed from a copy in a temporary directory (its working directory too), so
no output ever lands in the repository.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

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
    "01_quickstart": 1,
    "02_tools": 0,
    "03_parallel_dags": 3,
    "04_conditions_and_state": 2,
    "05_failures_and_replanning": 2,
    "06_monitoring": 2,
}
NOTEBOOK_TIMEOUT = 120.0  # seconds for a whole notebook; each runs in a few
CELL_TIMEOUT = 60
MAX_BYTES = 40_000  # committed without outputs, a notebook is text only
KERNEL = "tooldag-tests"


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "tooldag_notebooks_build", NOTEBOOKS / "_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec that launches this interpreter, whatever kernels the machine has installed
    (a user-level ``python3`` kernel may point at another Python without tooldag)."""
    root = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(root / KERNEL, overrides={"display_name": "tooldag tests"})
    return KernelSpecManager(kernel_dirs=[str(root)])


@pytest.mark.parametrize("name", NAMES)
async def test_notebook_runs_offline_from_top_to_bottom(
    name: str, tmp_path: Path, kernel_specs: KernelSpecManager
) -> None:
    copy = tmp_path / f"{name}.ipynb"
    shutil.copyfile(NOTEBOOKS / copy.name, copy)
    nb = nbformat.read(copy, as_version=4)
    kernel = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=kernel_specs)
    client = NotebookClient(
        nb, km=kernel, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(tmp_path)}}
    )
    # IPython's history and profile go to the temporary directory, not the user's home.
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    try:
        # A cell that raises (a failed assert included) fails the test with its traceback.
        # nbclient leaves a kernel it was handed running unless told to clean it up.
        await asyncio.wait_for(client.async_execute(env=env, cleanup_kc=True), NOTEBOOK_TIMEOUT)
    finally:
        if kernel.has_kernel:
            await kernel.shutdown_kernel(now=True)
    charts = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    assert len(charts) == CHARTS[name]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs_and_is_small(name: str) -> None:
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert [(c.outputs, c.execution_count) for c in code] == [([], None)] * len(code)
    assert path.stat().st_size < MAX_BYTES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_starts_the_fake_server_and_shows_how_to_use_a_real_model(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    assert "FakeLLMServer(" in code[0] and ".start()" in code[0]
    switch = next(source for source in code if "USE_REAL_MODEL" in source)
    assert "USE_REAL_MODEL = False" in switch and "LLMClient.from_env()" in switch


def test_committed_notebooks_are_what_the_generator_writes() -> None:
    expected = _load_builder().build()
    assert sorted(expected) == sorted(f"{name}.ipynb" for name in NAMES)
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(expected)
    stale = [
        filename
        for filename, text in expected.items()
        if (NOTEBOOKS / filename).read_text(encoding="utf-8") != text
    ]
    assert stale == [], "run `python notebooks/_build.py` and commit the notebooks"
