"""The viewer in a real browser: headless Chromium (the system's, driven by Playwright) on the
page of `tooldag ui`, while `tooldag exec` runs in another process.

A step is held running by a tool that waits on a FIFO the test writes to, so the page is seen
turning it from running to succeeded without a reload, with no timing. Also: resume from the
page, cancel from the page of `tooldag exec --ui` (which opens the page through $BROWSER), and
requests without the token. A screenshot of the run page is saved beside the test's files
(and in $TOOLDAG_TEST_ARTIFACTS when set).

These fail, never skip, without Chromium: `.ci/run` installs it (`apt-get install -y chromium`).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tooldag.durable.store import RunStore
from tooldag.result import RunStatus
from viewer_tools import GATES_ENV

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TOOLS = str(Path(__file__).with_name("viewer_tools.py"))
CHROMIUM = os.environ.get("TOOLDAG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# What a sandboxed CI machine needs (root, no GPU), and nothing that reaches the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT_MS = 30_000  # the longest the page may take to show a change (it takes a fraction)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed ({CHROMIUM} is missing): apt-get install -y chromium "
            "(.ci/run installs it), or point TOOLDAG_CHROMIUM at one"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("dialog", lambda dialog: dialog.accept())  # the cancel button asks first
    yield page
    context.close()


class Process:
    """A subprocess whose output lines are read as they come (threads), to wait for one."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tooldag", *args],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r}; saw {self.seen}") from None
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    def wait(self, timeout: float = 60) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    gates = tmp_path / "gates"
    gates.mkdir()
    out = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY")}
    out.update(TOOLDAG_HOME=str(tmp_path / "home"), **{GATES_ENV: str(gates)})
    return out


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def _first_run_id(store: str, timeout: float = 60) -> str:
    # The run's row is written when exec opens it; the held step keeps it running meanwhile.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(store).exists():
            with RunStore(store) as runs:
                listed = runs.list_runs()
            if listed:
                return listed[0].id
        time.sleep(0.05)
    raise AssertionError(f"no run appeared in {store}")


def start(processes: list[Process], env: dict[str, str], *args: str) -> Process:
    process = Process(list(args), env)
    processes.append(process)
    return process


def write_plan(tmp_path: Path, plan: dict[str, Any]) -> str:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    return str(path)


def release(fifo: Path, text: str = "go") -> None:
    """Write to the FIFO a held step reads (from a thread: opening it waits for the reader)."""

    def write() -> None:
        with fifo.open("w") as f:
            f.write(text)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(60)
    assert not writer.is_alive(), "the held step never opened its FIFO"


def read_fifo(fifo: Path) -> str:
    """What a process writes to ``fifo`` (from a thread: opening it waits for the writer)."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    reader.join(60)
    assert got, f"nothing was written to {fifo}"
    return got[0]


def run_status(page: Any, status: str) -> None:
    page.wait_for_selector(f'#run-status:text-is("{status}")')


def node(page: Any, step: str, status: str) -> Any:
    return page.wait_for_selector(
        f'#graph g.node[data-id="{step}"][data-status="{status}"]', state="attached"
    )


def save_screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    artifacts = os.environ.get("TOOLDAG_TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / name)
    return path


HELD = {
    "goal": "fetch two things, hold one, then finish",
    "steps": [
        {"id": "first", "tool": "quick", "args": {"n": 1}},
        {"id": "second", "tool": "quick", "args": {"n": 2}},
        {"id": "hold", "tool": "wait_gate", "args": {"gate": "release"}, "depends_on": ["first"]},
        {"id": "after", "tool": "quick", "args": {"n": 3}, "depends_on": ["hold", "second"]},
        {"id": "aside", "tool": "quick", "args": {"n": "$second"}},
    ],
}


# --------------------------------------------------------------------------- the tests


def test_the_page_shows_every_step_and_follows_a_run_in_another_process_live(
    page: Any, env: dict[str, str], processes: list[Process], tmp_path: Path
) -> None:
    store = str(tmp_path / "runs.sqlite3")
    fifo = Path(env[GATES_ENV]) / "release"
    os.mkfifo(fifo)
    ui = start(processes, env, "ui", "--store", store, "--tools", TOOLS)
    url = ui.expect(r"tooldag ui: (http://127\.0\.0\.1:\d+/\?token=\S+)").group(1)
    run = start(
        processes, env, "exec", write_plan(tmp_path, HELD), "--store", store, "--tools", TOOLS
    )
    run_id = _first_run_id(store)  # exec names a run only when it ends (or in its live view)

    page.goto(url.replace("/?", f"/runs/{run_id}?"))
    node(page, "hold", "running")
    ids = page.eval_on_selector_all("#graph g.node", "gs => gs.map(g => g.dataset.id)")
    assert sorted(ids) == sorted(s["id"] for s in HELD["steps"])
    rows = page.eval_on_selector_all("#steps tbody tr[data-id]", "rs => rs.map(r => r.dataset.id)")
    assert sorted(rows) == sorted(ids)
    assert page.text_content("#run-status") == "running"
    edges = page.eval_on_selector_all(
        "#graph path.edge", "ps => ps.map(p => p.dataset.source + '>' + p.dataset.target)"
    )
    assert sorted(edges) == ["first>hold", "hold>after", "second>after", "second>aside"]
    save_screenshot(page, tmp_path, "run-page-running.png")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads

    release(fifo)
    node(page, "hold", "succeeded")
    node(page, "after", "succeeded")
    run_status(page, "succeeded")
    assert page.evaluate("window.sameDocument") is True
    assert run.wait() == 0
    # The table and the timeline followed too: one bar per attempt of every step that ran.
    page.wait_for_function("() => document.querySelectorAll('#gantt rect.bar').length === 5")
    status_cell = page.text_content('#steps tbody tr[data-id="hold"] td:nth-child(3)')
    assert status_cell == "succeeded"
    page.click('#graph g.node[data-id="aside"]')
    page.wait_for_selector("#detail pre")
    detail = page.inner_text("#detail")
    assert '"n": 2' in detail and "null" not in detail  # the argument, resolved from second
    shot = save_screenshot(page, tmp_path, "run-page.png")
    assert shot.stat().st_size > 10_000


def test_resume_from_the_page_finishes_a_failed_run(
    page: Any, env: dict[str, str], processes: list[Process], tmp_path: Path
) -> None:
    store = str(tmp_path / "runs.sqlite3")
    plan = {
        "goal": "book, then check the flag",
        "steps": [
            {"id": "booking", "tool": "book", "args": {"name": "table"}},
            {
                "id": "check",
                "tool": "needs_flag",
                "args": {"flag": "ok"},
                "depends_on": ["booking"],
            },
        ],
    }
    failed = start(
        processes, env, "exec", write_plan(tmp_path, plan), "--store", store, "--tools", TOOLS
    )
    run_id = failed.expect(r"^run ([0-9a-f]{12})").group(1)
    assert failed.wait() == 1
    ui = start(processes, env, "ui", "--store", store, "--tools", TOOLS)
    url = ui.expect(r"tooldag ui: (http://\S+)").group(1)

    page.goto(url.replace("/?", f"/runs/{run_id}?"))
    node(page, "check", "failed")
    assert page.text_content("#run-status") == "failed"
    assert page.is_enabled("#resume")
    (Path(env[GATES_ENV]) / "ok").write_text("")
    page.click("#resume")
    node(page, "check", "succeeded")
    run_status(page, "succeeded")
    assert page.is_disabled("#resume")
    with RunStore(store) as runs:
        result = runs.load_result(run_id)
    assert result.status is RunStatus.SUCCEEDED
    assert result.steps["booking"].reused  # done before the failure: not booked twice


def test_cancel_on_the_page_that_exec_ui_opened_cancels_and_compensates_the_run(
    page: Any, env: dict[str, str], processes: list[Process], tmp_path: Path
) -> None:
    gates = Path(env[GATES_ENV])
    os.mkfifo(gates / "release")
    opened = tmp_path / "opened"
    os.mkfifo(opened)
    browser_script = tmp_path / "browser.sh"  # what $BROWSER runs: it hands the test the address
    browser_script.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser_script.chmod(0o755)
    plan = {
        "goal": "book, then wait",
        "steps": [
            {"id": "booking", "tool": "book", "args": {"name": "table"}},
            {
                "id": "hold",
                "tool": "wait_gate",
                "args": {"gate": "release"},
                "depends_on": ["booking"],
            },
        ],
    }
    run = start(
        processes,
        {**env, "BROWSER": str(browser_script)},
        "exec",
        write_plan(tmp_path, plan),
        "--store",
        str(tmp_path / "runs.sqlite3"),
        "--tools",
        TOOLS,
        "--ui",
    )
    url = run.expect(r"^viewer: (http://\S+/runs/[0-9a-f]{12}\?token=\S+)").group(1)
    assert read_fifo(opened).split() == [url]  # opened through $BROWSER

    page.goto(url)
    node(page, "hold", "running")
    page.click("#cancel")
    run_status(page, "cancelled")
    node(page, "booking", "compensated")
    assert run.wait() == 130
    assert (gates / "unbooked-table").exists()


def test_requests_without_the_token_are_refused(
    page: Any, env: dict[str, str], processes: list[Process], tmp_path: Path
) -> None:
    ui = start(processes, env, "ui", "--store", str(tmp_path / "runs.sqlite3"))
    url = ui.expect(r"tooldag ui: (http://\S+)").group(1)
    bare = url.split("?")[0]

    refused = page.goto(bare)
    assert refused is not None and refused.status == 403
    assert "token" in page.inner_text("body")
    assert page.goto(bare + "api/runs").status == 403  # type: ignore[union-attr]
    assert page.goto(url).status == 200  # type: ignore[union-attr]
    page.wait_for_selector("#runs tbody tr")  # the list loaded: the page's own requests pass
    # Another page cannot read the viewer's answers, even knowing the token: no CORS.
    page.goto("about:blank")
    outcome = page.evaluate(
        """async (address) => {
            try { await fetch(address); return "read"; } catch (e) { return "refused"; }
        }""",
        url.replace("/?", "/api/runs?"),
    )
    assert outcome == "refused"
