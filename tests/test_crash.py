"""Crash tests with real processes: SIGKILL a durable run at many points, then resume it.

``crash_worker.py`` freezes at a chosen point and says so on stdout; the test reads that line (no
sleeps), kills the process with SIGKILL and resumes the run. Every step must have run exactly once,
except the steps in flight at the kill, which run at most twice; the outputs must be right and the
store intact. Both backends: with PostgreSQL the killed run reads as interrupted once its lease
(short here: ``TOOLDAG_STORE_LEASE``) runs out, which the test waits for.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from store_helpers import integrity, raw
from tooldag.durable.runner import resume
from tooldag.durable.store import INTERRUPTED, RunStore
from tooldag.execution.executor import run_plan
from tooldag.result import RunStatus
from tooldag.ui.cli import main as cli_main

# Real child processes killed with SIGKILL: the slow, honest depth of the crash tests.
pytestmark = [
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
    pytest.mark.slow,
]

WORKER_PATH = Path(__file__).with_name("crash_worker.py")


def _load_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tooldag_crash_worker", WORKER_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()

# Where to kill: every step in flight inside its tool, just before and just after its output is
# committed, and a few just after their start is journalled: 27 points.
POINTS = [
    *(
        (step, phase)
        for step in worker.STEPS
        for phase in ("tool", "before_commit", "after_commit")
    ),
    *((step, "started") for step in ("src", "join", "side")),
]
# What the kill point tests of the executor is the same whatever the store: SQLite takes every
# point, PostgreSQL (a second of process start-up and lease each) one per phase, on sync and async
# steps, a join and a step amid parallel work: enough to show its commits, claims and leases
# hold wherever the kill lands.
PG_POINTS = {
    ("left", "tool"),
    ("right2", "tool"),
    ("right", "before_commit"),
    ("join", "after_commit"),
    ("side", "started"),
}
CASES = [
    pytest.param(backend, step, phase, id=f"{backend}-{step}-{phase}")
    for backend in ("sqlite", "postgresql")
    for step, phase in POINTS
    if backend == "sqlite" or (step, phase) in PG_POINTS
]


@dataclass
class Snapshot:
    counts: Counter[str]  # tool calls so far
    statuses: dict[str, str]  # step rows in the store

    @property
    def committed(self) -> set[str]:
        return {s for s, st in self.statuses.items() if st == "succeeded"}


# With PostgreSQL, how long a killed worker's run still reads as running: short, for the test.
LEASE = "0.3"


class Scene:
    def __init__(self, tmp_path: Path, store: str) -> None:
        self.db = store
        self.counter = tmp_path / "calls.txt"
        self.counter.touch()
        self.env = {
            **os.environ,
            "TOOLDAG_CRASH_COUNTER": str(self.counter),
            "TOOLDAG_STORE_LEASE": LEASE,
        }

    def snapshot(self) -> Snapshot:
        counts = Counter(self.counter.read_text().split())
        with RunStore(self.db) as store:
            rows = raw(
                store,
                "SELECT step_id, s.status FROM steps s JOIN runs r ON r.key = s.run "
                "WHERE r.id = 'run'",
            )
        return Snapshot(counts, dict(rows))  # type: ignore[arg-type]

    def integrity(self) -> str:
        with RunStore(self.db) as store:
            return integrity(store)

    def interrupted(self) -> bool:
        """Wait (bounded) until the killed run reads as interrupted: at once with SQLite (its
        process is gone), when its lease has run out with PostgreSQL."""
        deadline = time.monotonic() + 30
        with RunStore(self.db) as store:
            while time.monotonic() < deadline:
                info = store.get_run("run")
                if info is not None and info.status == INTERRUPTED:
                    return True
                if store.backend == "sqlite":
                    return False  # the probe is immediate: no waiting can change it
                time.sleep(0.05)
        return False

    def kill_at(self, step: str, phase: str, *, resume: bool = False) -> Snapshot:
        """Run (or resume) the run in a new process and SIGKILL it at ``step``/``phase``."""
        cmd = [sys.executable, str(WORKER_PATH), str(self.db), "run", "--block", f"{step}:{phase}"]
        proc = subprocess.Popen(
            [*cmd, *(["--resume"] if resume else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != f"FROZEN {step} {phase}\n":
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the worker did not freeze at {step}:{phase}: {line}{out}\n{err}")
        proc.send_signal(signal.SIGKILL)
        proc.communicate()  # reaps it: a zombie would still look alive
        assert proc.returncode == -signal.SIGKILL
        return self.snapshot()


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    counter = tmp_path_factory.mktemp("reference") / "calls.txt"
    old = os.environ.get("TOOLDAG_CRASH_COUNTER")
    os.environ["TOOLDAG_CRASH_COUNTER"] = str(counter)
    try:
        result = run_plan(worker.PLAN, worker.registry())
    finally:
        if old is None:
            del os.environ["TOOLDAG_CRASH_COUNTER"]
        else:
            os.environ["TOOLDAG_CRASH_COUNTER"] = old
    assert result.ok
    return dict(result.outputs)


@pytest.mark.parametrize(("store_url", "step", "phase"), CASES, indirect=["store_url"])
def test_sigkill_then_resume_runs_each_step_once_and_the_in_flight_one_at_most_twice(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    expected: dict[str, int],
    step: str,
    phase: str,
    store_url: str,
) -> None:
    scene = Scene(tmp_path, store_url)
    at_kill = scene.kill_at(step, phase)

    assert scene.integrity() == "ok"
    assert scene.interrupted()
    assert all(n == 1 for n in at_kill.counts.values()), at_kill.counts
    assert at_kill.counts[step] == (0 if phase == "started" else 1)
    assert at_kill.statuses[step] == ("succeeded" if phase == "after_commit" else "running")

    monkeypatch.setenv("TOOLDAG_CRASH_COUNTER", str(scene.counter))
    with RunStore(scene.db) as store:
        result = resume("run", worker.registry(), store=store)
        assert store.get_run("run").status == "succeeded"  # type: ignore[union-attr]
    final = scene.snapshot().counts

    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == expected and result.answer == str(expected["tail"])
    assert {s for s, r in result.steps.items() if r.reused} == at_kill.committed
    for s in worker.STEPS:
        if s in at_kill.committed:
            assert final[s] == 1, f"{s} was committed at the kill but ran again"
        else:
            assert final[s] == at_kill.counts[s] + 1, f"{s} should run exactly once on resume"
    assert final[step] == (2 if phase in ("tool", "before_commit") else 1)
    assert scene.integrity() == "ok"


def test_a_run_killed_three_times_still_finishes_with_each_committed_step_run_once(
    tmp_path: Path, expected: dict[str, int], capsys: pytest.CaptureFixture[str], store_url: str
) -> None:
    scene = Scene(tmp_path, store_url)
    snapshots = [scene.kill_at("left", "tool")]
    assert scene.interrupted()

    # By hand, this is `tooldag runs list --status interrupted`.
    assert cli_main(["runs", "list", "--status", INTERRUPTED, "--store", str(scene.db)]) == 0
    assert "run" in capsys.readouterr().out

    snapshots.append(scene.kill_at("join", "before_commit", resume=True))
    assert scene.interrupted()
    snapshots.append(scene.kill_at("tail", "tool", resume=True))
    assert scene.interrupted()
    # The last resume is the CLI, in its own process, loading the tools from the worker file.
    cli = subprocess.run(
        [sys.executable, "-m", "tooldag", "runs", "resume", "run", "--store", str(scene.db),
         "--tools", str(WORKER_PATH), "--json"],
        capture_output=True, text=True, env=scene.env, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    snapshots.append(scene.snapshot())

    before: Counter[str] = Counter()
    committed: set[str] = set()
    for snap in snapshots:
        ran = snap.counts - before
        assert all(n == 1 for n in ran.values()), f"a step ran twice in one process: {ran}"
        assert not (set(ran) & committed), f"committed steps ran again: {set(ran) & committed}"
        committed |= snap.committed
        before = snap.counts
    assert snapshots[-1].counts["left"] == 2 and snapshots[-1].counts["tail"] == 2
    assert snapshots[-1].counts["join"] == 2
    with RunStore(scene.db) as store:
        stored = store.load_result("run")
    assert stored.status is RunStatus.SUCCEEDED and stored.outputs == expected
    assert scene.integrity() == "ok"
