"""What only the PostgreSQL store has: the same schema as SQLite's, a lease instead of a process
probe, claims that hold across processes (hosts), fencing, and a URL that never shows its password.

Every process here is a real one on the session's real server (``tests/conftest.py``); the
behaviour both backends share is the conformance suite of ``test_store.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from store_helpers import orphan, raw, schema, start_together, wait_for
from tooldag.durable.store import INTERRUPTED, RunStore, redact_url
from tooldag.errors import RunStateError, StoreError
from tooldag.events import Event, RunStarted, StepStarted
from tooldag.plan import Plan
from tooldag.result import RunStatus
from tooldag.ui.cli import main as cli_main

PLAN = Plan.model_validate(
    {"goal": "g", "steps": [{"id": "a", "tool": "t", "args": {}}], "answer": "${a}"}
)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture
def store(postgres_url: str) -> Iterator[RunStore]:
    s = RunStore(postgres_url)
    yield s
    s.close()


def lease_of(store: RunStore, run_id: str) -> float | None:
    rows = raw(store, "SELECT lease_until FROM runs WHERE id = ?", run_id)
    return rows[0][0] if rows else None


# --------------------------------------------------------------------------- schema and URLs


def test_both_backends_build_the_same_schema_at_the_same_version(
    store: RunStore, tmp_path: Path
) -> None:
    with RunStore(tmp_path / "runs.sqlite3") as sqlite_store:
        assert schema(store) == schema(sqlite_store)
    assert schema(store)["versions"] == [1, 2, 3, 4]


def test_the_store_is_named_without_its_password(postgres_url: str) -> None:
    url = "postgresql://ann:s3cret@db.example:5432/runs?sslmode=require&password=other"
    assert (
        redact_url(url) == "postgresql://ann:***@db.example:5432/runs?sslmode=require&password=***"
    )
    assert redact_url("postgres://ann@db/runs") == "postgres://ann@db/runs"
    # A wrong password for the session's server (trust auth ignores it) stays out of the path.
    with RunStore(postgres_url.replace("tooldag@", "tooldag:hunter2@")) as s:
        assert "hunter2" not in s.path and "hunter2" not in repr(s) and s.backend == "postgresql"


def test_a_server_that_is_not_there_is_a_store_error_that_names_the_url(tmp_path: Path) -> None:
    url = f"postgresql://ann:s3cret@/runs?host={tmp_path}&port=1"
    with pytest.raises(
        StoreError, match=r"cannot open the run store postgresql://ann:\*\*\*@"
    ) as e:
        RunStore(url)
    assert "s3cret" not in str(e.value) and "--store, TOOLDAG_STORE" in str(e.value)


def test_tooldag_store_picks_the_default_store(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with RunStore(postgres_url) as s:
        s.claim("r1", plan=PLAN)
        s.release("r1")
    monkeypatch.setenv("TOOLDAG_STORE", postgres_url)
    with RunStore() as s:
        assert [r.id for r in s.list_runs()] == ["r1"]
    assert cli_main(["runs", "list", "--json"]) == 0
    assert '"r1"' in capsys.readouterr().out


def test_commits_are_as_durable_as_synchronous_says(postgres_url: str) -> None:
    # NORMAL, as SQLite's WAL NORMAL: a killed process loses nothing committed; FULL waits for
    # the disk at each commit.
    with RunStore(postgres_url) as normal, RunStore(postgres_url, synchronous="FULL") as full:
        assert raw(normal, "SHOW synchronous_commit") == [("off",)]
        assert raw(full, "SHOW synchronous_commit") == [("on",)]
    with pytest.raises(StoreError, match="use NORMAL, FULL or EXTRA"):
        RunStore(postgres_url, synchronous="sometimes")


# --------------------------------------------------------------------------- the lease


def test_a_claim_writes_a_lease_in_the_database_clock_and_release_ends_it(store: RunStore) -> None:
    store.claim("r1", plan=PLAN)
    (now,) = raw(store, "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")[0]
    lease = lease_of(store, "r1")
    assert lease is not None and now < lease <= now + store._db.lease  # type: ignore[attr-defined]
    store.release("r1")  # the executor died without finishing the run
    assert lease_of(store, "r1") is None
    with RunStore(store._db.url) as other:  # type: ignore[attr-defined]
        assert other.get_run("r1").status is RunStatus.INTERRUPTED  # type: ignore[union-attr]


def test_a_running_run_whose_lease_ran_out_reads_as_interrupted(store: RunStore) -> None:
    store.record(Event(RunStarted(PLAN, "g"), "r1"))
    assert store.get_run("r1").status is RunStatus.RUNNING  # type: ignore[union-attr]
    orphan(store)  # another process's run, whose lease ended at the epoch
    info = store.get_run("r1")
    assert info is not None and info.status is RunStatus.INTERRUPTED
    assert info.stored_status is RunStatus.RUNNING
    assert [r.id for r in store.list_runs(status=INTERRUPTED)] == ["r1"]
    # The same row with a lease a minute ahead is another live host's run.
    raw(store, "UPDATE runs SET lease_until = EXTRACT(EPOCH FROM clock_timestamp()) + 60")
    assert store.get_run("r1").status is RunStatus.RUNNING  # type: ignore[union-attr]
    with pytest.raises(RunStateError, match=r"already running \(process \d+ on "):
        store.claim("r1", allow={INTERRUPTED})


def test_a_claim_waits_no_longer_than_busy_timeout_for_another_claim(postgres_url: str) -> None:
    store = RunStore(postgres_url, busy_timeout=0.05)
    holder = psycopg.connect(postgres_url, autocommit=True)
    try:
        holder.execute("BEGIN")
        holder.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':r1', 0))"
        )
        with pytest.raises(StoreError, match=r"claim of run r1.*lock timeout.*busy_timeout"):
            store.claim("r1", plan=PLAN)
        holder.execute("ROLLBACK")
        assert store.claim("r1", plan=PLAN).status is RunStatus.RUNNING
    finally:
        holder.close()
        store.close()


def test_a_connection_the_server_dropped_fails_one_write_and_is_reopened(store: RunStore) -> None:
    store.record(Event(RunStarted(PLAN, "g"), "r1"))
    (pid,) = raw(store, "SELECT pg_backend_pid()")[0]
    with psycopg.connect(store._db.url, autocommit=True) as admin:  # type: ignore[attr-defined]
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreError, match="database server is up"):
        store.record(Event(StepStarted("t", {}), "r1", "a", attempt=1))
    store.record(Event(StepStarted("t", {}), "r1", "a", attempt=1))
    assert store.load_result("r1").steps["a"].attempts == 1


# --------------------------------------------------------------------------- other processes

OWNER = """
import sys, time
from tooldag.durable.store import RunStore
from tooldag.errors import StoreError
from tooldag.events import Event, StepStarted, StepSucceeded
from tooldag.plan import Plan

url, lease = sys.argv[1], float(sys.argv[2])
plan = Plan.model_validate({"goal": "g", "steps": [{"id": "a", "tool": "t", "args": {}}]})
store = RunStore(url, lease=lease)
store.claim("r1", plan=plan)
store.record(Event(StepStarted("t", {}), "r1", "a", attempt=1))
print("ready", flush=True)
sys.stdin.readline()  # here the test stops this process (SIGSTOP) and another takes the run over
deadline = time.monotonic() + 30
while time.monotonic() < deadline:  # the next renewal finds the run taken over
    try:
        store._db.check_owner("r1")
    except StoreError:
        break
    time.sleep(0.01)
try:
    store.record(Event(StepSucceeded(1), "r1", "a", attempt=1))
except StoreError as exc:
    print("refused:", exc, flush=True)
else:
    print("journalled", flush=True)
"""


@pytest.mark.slow
def test_a_host_cut_off_past_its_lease_loses_the_run_and_cannot_journal_it(
    store: RunStore, postgres_url: str
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, postgres_url, "1.5"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert owner.stdin is not None and owner.stdout is not None
    try:
        assert owner.stdout.readline() == "ready\n"
        first = lease_of(store, "r1")
        wait_for(lambda: (lease_of(store, "r1") or 0) > (first or 0), "a renewal of the lease")
        assert store.get_run("r1").status is RunStatus.RUNNING  # type: ignore[union-attr]
        with pytest.raises(RunStateError, match=f"process {owner.pid} on {socket.gethostname()}"):
            store.claim("r1", allow={INTERRUPTED})

        owner.send_signal(signal.SIGSTOP)  # hung, or cut off from the database
        wait_for(
            lambda: store.get_run("r1").status is RunStatus.INTERRUPTED,  # type: ignore[union-attr]
            "the lease to run out",
        )
        store.claim("r1", allow={INTERRUPTED})  # this process takes the run over
        owner.send_signal(signal.SIGCONT)
        owner.stdin.write("go\n")
        owner.stdin.flush()
        line = owner.stdout.readline()
    finally:
        owner.send_signal(signal.SIGCONT)
        owner.kill()
        owner.wait()
    assert line.startswith("refused: run r1 was taken over by process")
    assert f"process {os.getpid()} on" in line
    assert store.load_result("r1").steps["a"].status.value == "running"  # its write never landed


CLAIMER = """
import sys
from tooldag.durable.store import RunStore
from tooldag.errors import RunStateError

store = RunStore(sys.argv[1], lease=30)
print("ready", flush=True)
sys.stdin.readline()  # the barrier: both claim at once
try:
    store.claim("r1", allow={"interrupted"})
except RunStateError as exc:
    print("lost:", exc, flush=True)
else:
    print("won", flush=True)
sys.stdin.readline()  # the winner holds the run until the test is done
"""


@pytest.mark.slow
def test_of_two_processes_resuming_one_run_one_wins_and_the_other_is_told_who(
    store: RunStore, postgres_url: str
) -> None:
    store.claim("r1", plan=PLAN)
    store.release("r1")  # interrupted: its owner died
    procs = start_together([[CLAIMER, postgres_url]] * 2, ENV)
    try:
        answers = {p.pid: p.stdout.readline() for p in procs if p.stdout is not None}
    finally:
        for p in procs:
            p.communicate("done\n", timeout=30)
    winners = [pid for pid, line in answers.items() if line == "won\n"]
    assert len(winners) == 1, answers
    (loser,) = [line for line in answers.values() if line != "won\n"]
    assert loser.startswith("lost: run r1 is already running")
    assert f"(process {winners[0]} on {socket.gethostname()})" in loser
