"""A CPU-bound pure-Python tool: what a thread pool cannot run in parallel (the GIL) and a Dask
cluster can. ``examples/crunch_plan.json`` fans it out 16 times (about 0.5 s of CPU each here):

    cd examples
    tooldag exec crunch_plan.json --tools crunch_tools.py --no-store
    tooldag exec crunch_plan.json --tools crunch_tools.py --no-store --dask local:2
"""

from __future__ import annotations

import os

from typing_extensions import TypedDict

from tooldag import tool


class Crunched(TypedDict):
    total: int
    pid: int


@tool(side_effects=False)
def crunch(n: int, seed: int = 0) -> Crunched:
    """Sum ``i * i % 7`` for ``n`` numbers from ``seed``, in pure Python (the GIL held throughout).

    Args:
        n: How many numbers (5,000,000 take about half a second).
        seed: The first number.
    """
    total = 0
    for i in range(seed, seed + n):
        total += i * i % 7
    return {"total": total, "pid": os.getpid()}
