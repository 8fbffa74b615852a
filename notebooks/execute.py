"""Run the walkthroughs and write each one's ``.ipynb``, outputs included, beside its source.

The ``NN_name.py`` files (jupytext's percent format) are the sources; each ``.ipynb`` is derived
from one of them. After editing a source (or to refresh the outputs)::

    python notebooks/execute.py                   # every notebook
    python notebooks/execute.py 03_parallel_dags  # one

Each notebook runs offline (against the fake OpenAI-compatible server it starts), in a kernel of
this interpreter, from a temporary working directory, so nothing lands in the repository but the
``.ipynb`` files. ``tests/test_notebooks.py`` executes them the same way and checks the pairs.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import sys
import tempfile
from pathlib import Path

import jupytext
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbformat import NotebookNode
from PIL import Image

__all__ = ["SOURCES", "execute", "main", "read_source"]

HERE = Path(__file__).resolve().parent
SOURCES = sorted(HERE.glob("[0-9][0-9]_*.py"))
KERNEL = "tooldag-notebooks"
CELL_TIMEOUT = 60  # seconds; every cell takes well under one
# The fake server listens on an ephemeral port, written as one placeholder so that outputs diff.
FAKE_PORT = re.compile(r"(?<=127\.0\.0\.1:)\d+")


def read_source(source: Path) -> NotebookNode:
    """The notebook that ``source`` describes, with cell ids that depend only on cell order."""
    nb: NotebookNode = jupytext.read(source)
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index:02d}"
    return nb


async def execute(source: Path, workdir: Path) -> NotebookNode:
    """Run ``source`` top to bottom with ``workdir`` as its working directory; a cell that raises
    raises here (``nbclient.exceptions.CellExecutionError``) with its traceback."""
    nb = read_source(source)
    # A kernelspec for this interpreter, whatever kernels the machine has installed (a user's
    # ``python3`` kernel may be another Python without tooldag).
    write_kernel_spec(workdir / "kernels" / KERNEL)
    specs = KernelSpecManager(kernel_dirs=[str(workdir / "kernels")])
    kernel = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=specs)
    client = NotebookClient(
        nb,
        km=kernel,
        timeout=CELL_TIMEOUT,
        record_timing=False,  # no timestamps in the committed cells
        coalesce_streams=True,  # one output per stream, however the kernel chunked it
        resources={"metadata": {"path": str(workdir)}},
    )
    env = {
        **os.environ,
        "IPYTHONDIR": str(workdir / "ipython"),  # history and profile stay out of the home
        "TOOLDAG_HOME": str(workdir / "tooldag"),
        "PYTHONHASHSEED": "0",  # sets print in the same order on every run
    }
    try:
        # nbclient leaves a kernel it was handed running unless told to clean it up.
        await client.async_execute(env=env, cleanup_kc=True)
    finally:
        if kernel.has_kernel:
            await kernel.shutdown_kernel(now=True)
    _make_portable(nb)
    return nb


def _make_portable(nb: NotebookNode) -> None:
    """Leave out what names this machine or this run's port, and store charts compactly."""
    nb.metadata.get("language_info", {}).pop("version", None)  # this interpreter's patch level
    nb.metadata.kernelspec = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for key, value in output.get("data", {}).items():
                if key == "image/png":
                    output.data[key] = _palette_png(value)
                elif isinstance(value, str):
                    output.data[key] = FAKE_PORT.sub("PORT", value)
            if "text" in output:
                output.text = FAKE_PORT.sub("PORT", output.text)


def _palette_png(encoded: str) -> str:
    """The chart in a 256-colour palette: a third of the bytes, and no visible difference."""
    image = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image).convert("RGB")
    buffer = io.BytesIO()
    flat.quantize(colors=256).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def main(argv: list[str] | None = None) -> int:
    names = sys.argv[1:] if argv is None else argv
    sources = [s for s in SOURCES if not names or s.stem in names]
    unknown = set(names) - {s.stem for s in sources}
    if unknown:
        print(f"no such notebook: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    for source in sources:
        with tempfile.TemporaryDirectory(prefix="tooldag-notebook-") as workdir:
            nb = asyncio.run(execute(source, Path(workdir)))
        target = source.with_suffix(".ipynb")
        jupytext.write(nb, target)
        print(f"wrote {target.relative_to(HERE.parent)} ({target.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
