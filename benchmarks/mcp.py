"""MCP benchmarks: what a call through an MCP server costs, and whether parallel calls overlap.

    .venv/bin/python benchmarks/mcp.py [--calls 200] [--repeat 3]

1. Per-call overhead. A chain of ``--calls`` steps (each reads the previous one's output) calls an
   ``echo`` tool: a plain ``@tool``, the same tool on an MCP server in process (the protocol, no
   transport), over stdio (the fixture server, tests/fixtures/mcp_server.py, as a subprocess)
   and over streamable HTTP (the same server on 127.0.0.1). Per call is (chain - one step) /
   (calls - 1): the session's start and close, paid once per run, is left out, and shown apart.
2. Parallel calls on one server. Eight steps call a 100 ms ``nap`` on one stdio server, after a
   first step that opens the session; the wall is from the first nap's start to the last one's
   end (goal: close to 100 ms, not 800 ms). The same eight naps as a chain are the serial figure.

Each figure is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on the import path, and this file is named
# mcp.py: without this, `import mcp` would import the benchmark instead of the MCP SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from tooldag.execution.executor import Executor  # noqa: E402
from tooldag.plan import Plan  # noqa: E402
from tooldag.registry import Tool, ToolRegistry, tool  # noqa: E402
from tooldag.registry.loading import load_registry  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mcp_server.py"


@tool(side_effects=False)
async def echo(x: int) -> dict[str, int]:
    """Answer x."""
    return {"x": x}


def chain(tool_name: str, calls: int) -> Plan:
    steps = [{"id": "s0", "tool": tool_name, "args": {"x": 0}}]
    steps += [
        {"id": f"s{i}", "tool": tool_name, "args": {"x": f"$s{i - 1}.x"}} for i in range(1, calls)
    ]
    return Plan.model_validate({"goal": "chain", "steps": steps})


async def wall(registry: ToolRegistry, plan: Plan) -> float:
    started = time.perf_counter()
    result = await Executor(registry, max_concurrency=64).run(plan)
    took = time.perf_counter() - started
    if result.status.value != "succeeded":
        raise SystemExit(f"benchmark run failed: {result.error}")
    return took


def best(repeat: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeat))


def per_call(registry: ToolRegistry, name: str, calls: int, repeat: int) -> tuple[float, float]:
    """(seconds per call, seconds of a one-step run) for ``name``."""
    one = best(repeat, lambda: asyncio.run(wall(registry, chain(name, 1))))
    many = best(repeat, lambda: asyncio.run(wall(registry, chain(name, calls))))
    return max(0.0, many - one) / (calls - 1), one


def in_process_server() -> list[Tool]:
    from mcp.server.mcpserver import MCPServer

    from tooldag.mcp import mcp_tools

    app: MCPServer[Any] = MCPServer("inproc", log_level="WARNING")

    @app.tool()
    def echo(x: int) -> dict[str, int]:
        """Answer x."""
        return {"x": x}

    return mcp_tools(app)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_server(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(FIXTURE), ".", "--http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:  # until it listens
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the HTTP fixture server did not start")
        time.sleep(0.05)


def parallel_naps(registry: ToolRegistry, parallel: bool) -> float:
    """The wall of eight 100 ms naps (from the first start to the last end), session open."""
    after = "open" if parallel else None
    steps: list[dict[str, Any]] = [{"id": "open", "tool": "fixture__echo", "args": {"x": 0}}]
    for i in range(8):
        previous = after if parallel else (f"n{i - 1}" if i else "open")
        steps.append(
            {"id": f"n{i}", "tool": "fixture__nap", "args": {"ms": 100}, "depends_on": [previous]}
        )
    plan = Plan.model_validate({"goal": "naps", "steps": steps})
    result = asyncio.run(Executor(registry, max_concurrency=64).run(plan))
    naps = [result.steps[f"n{i}"] for i in range(8)]
    if any(r.started_at is None or r.finished_at is None for r in naps):
        raise SystemExit(f"benchmark run failed: {result.error}")
    return max(r.finished_at or 0.0 for r in naps) - min(r.started_at or 0.0 for r in naps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    calls, repeat = args.calls, args.repeat

    started = time.perf_counter()
    import mcp  # noqa: F401  (what the first MCP spec costs a process)

    print(f"import mcp: {time.perf_counter() - started:.2f} s (once per process, on first use)")
    stdio = load_registry([f"mcp:fixture=stdio:{sys.executable} {FIXTURE} ."])
    port = free_port()
    server = http_server(port)
    try:
        http = load_registry([f"mcp:fixture=http://127.0.0.1:{port}/mcp"])
        rows = [
            ("plain @tool", ToolRegistry([echo]), "echo"),
            ("MCP in process", ToolRegistry(in_process_server()), "inproc__echo"),
            ("MCP over stdio", stdio, "fixture__echo"),
            ("MCP over HTTP", http, "fixture__echo"),
        ]
        print(f"\nper-call overhead: a chain of {calls} echo calls, best of {repeat}")
        print(f"{'tool':<16} {'per call':>10} {'x plain':>8} {'one-step run':>14}")
        base = None
        for label, registry, name in rows:
            each, one = per_call(registry, name, calls, repeat)
            base = base or each
            print(f"{label:<16} {each * 1e6:>7.0f} us {each / base:>7.0f}x {one * 1e3:>11.1f} ms")
    finally:
        server.terminate()
        server.wait(timeout=30)

    print("\n8 calls of a 100 ms MCP tool on one stdio server (session already open)")
    together = [parallel_naps(stdio, parallel=True) for _ in range(repeat)]
    serial = parallel_naps(stdio, parallel=False)
    low, mid = min(together) * 1e3, statistics.median(together) * 1e3
    print(f"parallel steps: {low:.0f} ms (median {mid:.0f} ms; goal ~100 ms)")
    print(f"as a chain:     {serial * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
