"""The viewer's HTTP side (httpx against the ASGI app, no socket): the token, the Host and
Origin checks and no CORS; the runs list, a run's snapshot and a step; resume and cancel; the
event stream's batches; the server on 127.0.0.1; and a page that names nothing elsewhere."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from tooldag.durable.runner import DurableExecutor
from tooldag.durable.store import RunStore
from tooldag.errors import ConfigError
from tooldag.events import Event, StepCompensated
from tooldag.llm.client import LLMClient
from tooldag.plan.model import Plan
from tooldag.registry import ToolRegistry
from tooldag.result import RunStatus
from tooldag.ui.cli import main
from tooldag.ui.repl import Chat
from tooldag.web.app import TOKEN_HEADER, Viewer, _follow, create_app
from tooldag.web.control import Controls
from tooldag.web.server import ViewerServer
from viewer_tools import GATES_ENV, book, needs_flag, quick, unbook, wait_gate

TOKEN = "test-token-0123456789"
PORT = 8123
BASE = f"http://127.0.0.1:{PORT}"
STATIC = Path(__file__).resolve().parents[1] / "src" / "tooldag" / "web" / "static"


def registry() -> ToolRegistry:
    return ToolRegistry([wait_gate, quick, needs_flag, book, unbook])


@pytest.fixture
def gates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "gates"
    folder.mkdir()
    monkeypatch.setenv(GATES_ENV, str(folder))
    return folder


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    with RunStore(tmp_path / "runs.sqlite3") as s:
        yield s


def run(store: RunStore, run_id: str, plan: dict[str, object]) -> RunStatus:
    runner = DurableExecutor(registry(), store=store)
    try:
        return runner.start(run_id, Plan.model_validate(plan)).status
    finally:
        runner.close()


GOOD = {
    "goal": "count to three",
    "steps": [
        {"id": "one", "tool": "quick", "args": {"n": 1}},
        {"id": "two", "tool": "quick", "args": {"n": "$one"}},
        {"id": "three", "tool": "quick", "args": {"n": "$two"}},
    ],
}
FLAGGED = {
    "goal": "book then check the flag",
    "steps": [
        {"id": "booking", "tool": "book", "args": {"name": "table"}},
        {"id": "check", "tool": "needs_flag", "args": {"flag": "ok"}, "depends_on": ["booking"]},
    ],
}


@pytest.fixture
def viewer(store: RunStore) -> Viewer:
    viewer = Viewer(store, Controls(store, registry), TOKEN)
    viewer.listen_on(PORT)
    return viewer


@pytest.fixture
async def client(viewer: Viewer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(viewer))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        yield c


def auth(**extra: str) -> dict[str, str]:
    return {TOKEN_HEADER: TOKEN, **extra}


# --------------------------------------------------------------------------- who may use it


@pytest.mark.parametrize(
    "path",
    ["/", "/runs/x", "/api/runs", "/api/runs/x", "/api/runs/x/stream", "/api/runs/x/steps/a"],
)
async def test_every_route_but_the_static_files_needs_the_token(
    client: httpx.AsyncClient, path: str
) -> None:
    refused = await client.get(path)
    assert refused.status_code == 403
    assert "token" in refused.text
    wrong = await client.get(path, headers={TOKEN_HEADER: TOKEN[:-1] + "X"})
    assert wrong.status_code == 403
    wrong = await client.get(path, params={"token": ""})
    assert wrong.status_code == 403


async def test_the_token_may_come_in_the_address_or_a_header(client: httpx.AsyncClient) -> None:
    assert (await client.get("/", params={"token": TOKEN})).status_code == 200
    assert (await client.get("/api/runs", headers=auth())).status_code == 200


async def test_static_files_need_no_token_and_are_served_from_the_package(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/static/run.js")
    assert response.status_code == 200
    assert response.text == (STATIC / "run.js").read_text(encoding="utf-8")
    assert "javascript" in response.headers["content-type"]


async def test_a_request_for_another_host_is_refused(client: httpx.AsyncClient) -> None:
    # A DNS-rebound name points at 127.0.0.1 but says its own Host.
    response = await client.get("/api/runs", headers=auth(host=f"evil.example:{PORT}"))
    assert response.status_code == 421
    ok = await client.get("/api/runs", headers=auth(host=f"localhost:{PORT}"))
    assert ok.status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://127.0.0.1:{PORT + 1}", "null"])
async def test_a_request_from_another_origin_is_refused_even_with_the_token(
    client: httpx.AsyncClient, origin: str
) -> None:
    assert (await client.get("/api/runs", headers=auth(origin=origin))).status_code == 403
    post = await client.post("/api/runs/x/cancel", headers=auth(origin=origin))
    assert post.status_code == 403


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_the_browsers_word_on_where_a_request_comes_from_counts(
    client: httpx.AsyncClient, site: str
) -> None:
    response = await client.get("/api/runs", headers=auth(**{"sec-fetch-site": site}))
    assert response.status_code == 403
    mine = await client.get("/api/runs", headers=auth(**{"sec-fetch-site": "same-origin"}))
    assert mine.status_code == 200


async def test_an_action_must_name_the_viewers_own_origin(
    client: httpx.AsyncClient, store: RunStore
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    bare = await client.post("/api/runs/r-good/cancel", headers=auth())
    assert bare.status_code == 403
    own = await client.post("/api/runs/r-good/cancel", headers=auth(origin=BASE))
    assert own.status_code == 409  # through the checks; a succeeded run cannot be cancelled


async def test_no_cors_and_every_answer_carries_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    for response in (
        await client.get("/api/runs", headers=auth(origin=BASE)),
        await client.options("/api/runs", headers=auth(origin=BASE)),
        await client.get("/api/runs"),
        await client.get("/static/viewer.css"),
    ):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert response.headers["referrer-policy"] == "no-referrer"


def test_the_page_loads_nothing_from_anywhere_else() -> None:
    for asset in STATIC.iterdir():
        text = asset.read_text(encoding="utf-8")
        urls = re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"')]*", text)
        assert [u for u in urls if "www.w3.org/2000/svg" not in u] == [], asset.name


# --------------------------------------------------------------------------- reading


async def test_the_runs_list_filters_by_status_and_searches_the_goals(
    client: httpx.AsyncClient, store: RunStore, gates: Path
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    assert run(store, "r-flag", FLAGGED) is RunStatus.FAILED

    every = (await client.get("/api/runs", headers=auth())).json()
    assert [r["id"] for r in every["runs"]] == ["r-flag", "r-good"]
    assert every["palette"]["succeeded"] == ["#c8f7c5", "#2e8b57"]
    failed = (await client.get("/api/runs", params={"status": "failed"}, headers=auth())).json()
    assert [(r["id"], r["resumable"], r["cancellable"]) for r in failed["runs"]] == [
        ("r-flag", True, True)
    ]
    found = (await client.get("/api/runs", params={"q": "COUNT three"}, headers=auth())).json()
    assert [r["id"] for r in found["runs"]] == ["r-good"]
    bad = await client.get("/api/runs", params={"status": "nope"}, headers=auth())
    assert bad.status_code == 400


async def test_a_runs_snapshot_has_its_graph_events_and_a_cursor(
    client: httpx.AsyncClient, store: RunStore
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    snap = (await client.get("/api/runs/r-good", headers=auth())).json()
    assert snap["run"]["status"] == "succeeded"
    (plan,) = snap["plans"]
    assert plan["steps"] == ["one", "two", "three"]
    assert plan["tools"] == ["quick"] * 3
    assert plan["edges"] == [["one", "two"], ["two", "three"]]
    assert all(f'data-id="{s}"' in plan["svg"] for s in plan["steps"])
    # Each step's story, in the journal's order: the page replays it.
    started = [e["step_id"] for e in snap["events"] if e["type"] == "step_started"]
    done = [e["step_id"] for e in snap["events"] if e["type"] == "step_succeeded"]
    assert started == done == ["one", "two", "three"]
    types = [e["type"] for e in snap["events"]]
    assert types[0] == "run_started" and types[-1] == "run_finished"
    assert snap["cursor"] == snap["events"][-1]["seq"]
    assert "output" not in repr(snap["events"])  # outputs stay out of the snapshot
    missing = await client.get("/api/runs/nope", headers=auth())
    assert missing.status_code == 404


async def test_a_replanned_run_has_every_plan_version_and_what_changed(
    client: httpx.AsyncClient, store: RunStore, gates: Path
) -> None:
    assert run(store, "r-two", FLAGGED) is RunStatus.FAILED
    second = {
        **FLAGGED,
        "steps": [FLAGGED["steps"][0], {"id": "other", "tool": "quick", "args": {"n": 1}}],
    }
    assert run(store, "r-two", second) is RunStatus.SUCCEEDED
    snap = (await client.get("/api/runs/r-two", headers=auth())).json()
    assert [p["version"] for p in snap["plans"]] == [1, 2]
    assert snap["plans"][1]["diff"] == {"added": ["other"], "removed": ["check"], "changed": []}


async def test_a_step_has_its_arguments_output_and_attempts(
    client: httpx.AsyncClient, store: RunStore
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    step = (await client.get("/api/runs/r-good/steps/two", headers=auth())).json()
    assert step["args"] == '{\n  "n": 1\n}'
    assert step["output"] == "1"
    assert '"$one"' in step["planned"]
    assert [e["type"] for e in step["events"]] == ["step_started", "step_succeeded"]
    assert (await client.get("/api/runs/r-good/steps/zzz", headers=auth())).status_code == 404


async def test_the_stream_sends_what_is_new_in_one_batch_per_read(
    viewer: Viewer, store: RunStore
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    events = store.events_since("r-good")
    viewer.poll_interval = 0.01
    stream = _follow(viewer, "r-good", events[1]["seq"])
    assert await anext(stream) == ": stream open\n\n"
    first = await anext(stream)
    assert first.startswith(f"id: {events[-1]['seq']}\nevent: batch\ndata: ")
    assert first.count('"seq"') == len(events) - 2  # everything after the cursor, at once
    store.record(Event(StepCompensated("unbook"), "r-good", "one"))
    second = await anext(stream)
    assert second.count('"seq"') == 1 and "step_compensated" in second
    viewer.stopping.set()
    with pytest.raises(StopAsyncIteration):
        while True:
            chunk = await anext(stream)
            assert chunk.startswith(":")  # nothing new: at most a keep-alive


async def test_the_stream_route_answers_as_an_event_stream(
    client: httpx.AsyncClient, viewer: Viewer, store: RunStore
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    viewer.stopping.set()  # so that the stream ends after its first read
    response = await client.get("/api/runs/r-good/stream", params={"token": TOKEN, "after": "0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == ": stream open\n\n"


# --------------------------------------------------------------------------- the buttons


async def test_resume_from_the_page_continues_a_failed_run_in_this_process(
    client: httpx.AsyncClient, viewer: Viewer, store: RunStore, gates: Path
) -> None:
    assert run(store, "r-flag", FLAGGED) is RunStatus.FAILED
    (gates / "ok").write_text("")
    response = await client.post("/api/runs/r-flag/resume", headers=auth(origin=BASE))
    assert response.status_code == 202, response.text
    tasks = list(viewer.controls._tasks.values())
    assert tasks
    await asyncio.gather(*tasks)
    result = store.load_result("r-flag")
    assert result.status is RunStatus.SUCCEEDED
    assert result.steps["booking"].reused  # done before: not run again
    again = await client.post("/api/runs/r-flag/resume", headers=auth(origin=BASE))
    assert again.status_code == 409
    assert "succeeded" in again.json()["error"]


async def test_resume_without_tools_says_where_to_get_them(store: RunStore, gates: Path) -> None:
    assert run(store, "r-flag", FLAGGED) is RunStatus.FAILED
    viewer = Viewer(store, Controls(store, None), TOKEN)
    viewer.listen_on(PORT)
    transport = httpx.ASGITransport(app=create_app(viewer))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        response = await c.post("/api/runs/r-flag/resume", headers=auth(origin=BASE))
    assert response.status_code == 409
    assert "--tools" in response.json()["error"]


async def test_cancel_compensates_a_stopped_run(
    client: httpx.AsyncClient, store: RunStore, gates: Path
) -> None:
    assert run(store, "r-flag", FLAGGED) is RunStatus.FAILED
    response = await client.post("/api/runs/r-flag/cancel", headers=auth(origin=BASE))
    assert response.status_code == 200, response.text
    assert response.json() == {"cancelled": "r-flag", "status": "cancelled"}
    assert (gates / "unbooked-table").exists()
    assert store.get_run("r-flag").status is RunStatus.CANCELLED  # type: ignore[union-attr]


async def test_cancel_of_a_run_going_elsewhere_says_where_to_stop_it(
    client: httpx.AsyncClient, store: RunStore
) -> None:
    store.claim("r-live", plan=Plan.model_validate(GOOD))  # running, in "another" executor
    try:
        response = await client.post("/api/runs/r-live/cancel", headers=auth(origin=BASE))
    finally:
        store.release("r-live")
    assert response.status_code == 409
    assert "stop it there" in response.json()["error"]


# --------------------------------------------------------------------------- the server


def test_the_server_listens_on_loopback_and_its_address_carries_the_token(
    tmp_path: Path,
) -> None:
    server = ViewerServer(str(tmp_path / "runs.sqlite3")).start()
    try:
        assert server.url().startswith(f"http://127.0.0.1:{server.port}/?token=")
        assert server.url("a b").startswith(f"http://127.0.0.1:{server.port}/runs/a%20b?token=")
        with httpx.Client() as http:
            assert http.get(server.url()).status_code == 200
            assert http.get(f"http://127.0.0.1:{server.port}/").status_code == 403
    finally:
        server.stop()


def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} is in use: pick another with --port"):
            ViewerServer(str(tmp_path / "runs.sqlite3"), port=port)


def test_the_cli_says_how_to_get_the_extra_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "tooldag.web.server", None)
    code = main(["ui", "--store", str(tmp_path / "runs.sqlite3"), "--tools", "calc"])
    assert code == 2
    assert "pip install 'tooldag[ui]'" in capsys.readouterr().err


async def test_the_repls_ui_opens_the_last_runs_page_in_one_viewer(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(store, "r-good", GOOD) is RunStatus.SUCCEEDED
    opened: list[str] = []
    monkeypatch.setattr("tooldag.web.server.open_browser", lambda url: not opened.append(url))
    screen = io.StringIO()
    llm = LLMClient.from_env(api_key="sk-test", env={})
    chat = Chat(Console(file=screen, width=300), registry(), llm, store=store)
    chat.last_result = store.load_result("r-good")
    try:
        await chat.command("/ui")
        (url,) = opened
        assert "/runs/r-good?token=" in url
        assert f"viewer: {url}" in screen.getvalue()
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).status_code == 200
        await chat.command("/ui r-other")  # the same viewer, another run's page
        assert opened[1].split("/runs/")[0] == url.split("/runs/")[0]
        assert opened[1].split("?")[0].endswith("/runs/r-other")
    finally:
        await chat.close()


def test_exec_ui_needs_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], examples_dir: Path
) -> None:
    plan = str(examples_dir / "weather_plan.json")
    tools = str(examples_dir / "weather_tools.py")
    assert main(["exec", plan, "--tools", tools, "--no-store", "--ui"]) == 2
    assert "--ui shows the run from the run store: leave out --no-store" in capsys.readouterr().err
