"""Web viewer benchmark: a 2,000-step run watched live in headless Chromium (prints figures).

    .venv/bin/python benchmarks/viewer.py [--steps 2000] [--width 100] [--work-ms 40]

A layered plan (``--width`` steps a row, each reading one or two steps of the row above) runs in
a ``tooldag exec`` subprocess, each step a short sleep (``--work-ms``), while ``tooldag ui`` (a
second subprocess) serves its page to Chromium, opened once the run is under way. Measured:

1. the server's side: laying out and drawing the 2,000-step graph (cold), and the snapshot
   request (cold: the drawing included; warm: cached);
2. first paint: from navigation to the page drawn (graph, table, timeline), and the browser's
   first contentful paint. Goal (issue 17): <= 2 s;
3. updates: how many batches the page got while the run went, how many events each held, and
   how long each redraw took (``performance.measure("tooldag-flush")`` in run.js), the longest
   one included: the page stays responsive when no redraw holds the main thread for long;
4. lag: from the run's end in the store to the page saying it succeeded.

Needs the ``ui`` extra, playwright and the system Chromium (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tooldag.durable.store import RunStore
from tooldag.plan import Plan
from tooldag.web.live import PlanCache, snapshot

CHROMIUM = os.environ.get("TOOLDAG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
TOOLS = '''
import time
from tooldag.registry import tool

@tool(side_effects=False)
def work(a: int = 0, b: int = 0, ms: float = 2.0) -> int:
    """Sleep ``ms`` milliseconds, return a number."""
    time.sleep(ms / 1000)
    return a + b + 1
'''


def layered(steps: int, width: int, work_ms: float) -> dict[str, Any]:
    plan = []
    for i in range(steps):
        row, col = divmod(i, width)
        args: dict[str, Any] = {"ms": work_ms}
        if row:
            above = (row - 1) * width
            args["a"] = f"$s{above + col}"
            if col % 3 == 0:
                args["b"] = f"$s{above + (col + 7) % width}"
        plan.append({"id": f"s{i}", "tool": "work", "args": args})
    return {"goal": f"{steps} steps in rows of {width}", "steps": plan}


class Lines:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        for stream in (proc.stdout, proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.queue.put(line)

    def expect(self, pattern: str, timeout: float = 120) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            line = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            found = re.search(pattern, line)
            if found:
                return found


def tooldag(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tooldag", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def server_side(plan: dict[str, Any], store_path: str, run_id: str) -> None:
    model = Plan.model_validate(plan)
    began = time.perf_counter()
    svg = model.to_svg()
    took = time.perf_counter() - began
    print(f"layout + SVG of {len(model.steps):,} steps: {took * 1000:.0f} ms ({len(svg):,} bytes)")
    with RunStore(store_path) as store:
        cache = PlanCache()
        for label in ("cold", "warm"):
            began = time.perf_counter()
            data = snapshot(store, run_id, cache)
            took = time.perf_counter() - began
            size = len(json.dumps(data))
            print(f"snapshot ({label}): {took * 1000:.0f} ms, {size:,} bytes of JSON")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--width", type=int, default=100)
    parser.add_argument("--work-ms", type=float, default=40.0)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="tooldag-bench-viewer-") as tmp:
        work = Path(tmp)
        (work / "tools.py").write_text(TOOLS)
        plan = layered(args.steps, args.width, args.work_ms)
        (work / "plan.json").write_text(json.dumps(plan))
        store_path = str(work / "runs.sqlite3")
        env = {**os.environ, "TOOLDAG_HOME": str(work)}
        env.pop("BROWSER", None)
        ui = tooldag("ui", "--store", store_path, env=env)
        url = Lines(ui).expect(r"tooldag ui: (http://\S+)").group(1)
        run = tooldag(
            "exec",
            str(work / "plan.json"),
            "--store",
            store_path,
            "--tools",
            str(work / "tools.py"),
            "--json",
            env=env,
        )
        run_id = Lines(run).expect(r"^run ([0-9a-f]{12})").group(1)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM,
                    args=[
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--no-first-run",
                        "--disable-quic",
                    ],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(300_000)
                # Open the page once the run is under way: some steps done, most to come.
                with RunStore(store_path) as store:
                    while True:
                        info = store.get_run(run_id)
                        if info is not None and info.step_counts.get("succeeded", 0) >= 50:
                            break
                        time.sleep(0.05)
                page.goto(url.replace("/?", f"/runs/{run_id}?"))
                page.wait_for_selector('body[data-loaded="1"]', state="attached")
                drawn = page.evaluate(
                    "() => performance.getEntriesByName('tooldag-drawn')[0].startTime"
                )
                fcp = page.evaluate(
                    "() => (performance.getEntriesByName('first-contentful-paint')[0]"
                    " || {}).startTime"
                )
                fetched = page.evaluate(
                    "() => performance.getEntriesByType('resource')"
                    ".filter(r => r.name.includes('/api/runs/') && !r.name.includes('stream'))"
                    ".map(r => [r.startTime, r.responseEnd])[0]"
                )
                nodes = page.eval_on_selector_all("#graph g.node", "gs => gs.length")
                print(
                    f"first paint: page drawn {drawn:.0f} ms after navigation (first "
                    f"contentful paint {fcp or 0:.0f} ms; the snapshot asked for at "
                    f"{fetched[0]:.0f} ms, in by {fetched[1]:.0f} ms), {nodes:,} boxes"
                )
                page.wait_for_selector('#run-status:text-is("succeeded")', state="attached")
                shown_at = time.time()
                assert run.wait(300) == 0
                with RunStore(store_path) as store:
                    info = store.get_run(run_id)
                    ended = info.finished_at if info and info.finished_at else shown_at
                seen_end = page.evaluate(
                    "() => (performance.getEntriesByName('tooldag-ended')[0] || {detail: {}})"
                    ".detail.at"
                )
                shown_at = seen_end or shown_at
                flushes = page.evaluate(
                    "() => performance.getEntriesByName('tooldag-flush').map("
                    "m => [m.duration, m.detail.events, m.detail.messages])"
                )
                browser.close()
            counts = [f[1] for f in flushes if f[1]]
            times = [f[0] for f in flushes if f[1]]
            print(
                f"updates: {len(counts)} redraws for {sum(counts):,} events "
                f"(median {statistics.median(counts):.0f} events a redraw, max {max(counts):,}); "
                f"redraw time median {statistics.median(times):.1f} ms, "
                f"p95 {sorted(times)[int(len(times) * 0.95)]:.1f} ms, max {max(times):.1f} ms"
            )
            print(
                f"lag: the page said succeeded {max(0.0, shown_at - ended) * 1000:.0f} ms after "
                "the store did (at most one poll, 250 ms, plus a redraw)"
            )
            server_side(plan, store_path, run_id)
            with httpx.Client() as http:
                began = time.perf_counter()
                http.get(url.replace("/?", f"/api/runs/{run_id}?")).raise_for_status()
                print(f"snapshot over HTTP (warm): {(time.perf_counter() - began) * 1000:.0f} ms")
        finally:
            for proc in (run, ui):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
