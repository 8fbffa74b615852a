"""Data pack: read-only SQL queries on SQLite files in the workspace.

Three locks keep ``sqlite_query`` read-only, each enough alone: the file is opened with the URI
``mode=ro``, the connection is ``PRAGMA query_only``, and an authorizer allows only reading
(no ATTACH, which could open files outside the workspace, no PRAGMA, no writes).

Bounded in time and memory, each limit read from the environment at call time:

- ``TOOLDAG_SQLITE_TIMEOUT`` (seconds, default 10): a query still running then is interrupted
  (``Connection.interrupt`` from a timer, backed by SQLite's progress handler and a look at the
  clock between rows); also how long it waits for a database another process has locked;
- ``TOOLDAG_SQLITE_MAX_BYTES`` (default 2000000): the most the rows may add up to (text in
  UTF-8 bytes, BLOBs as their base64 text), counted row by row as they are read, so an
  oversized result stops at the row that crosses the line. It is also SQLite's length limit
  for any one string or BLOB, so no value larger than a whole result is ever built (nor read:
  a query that touches a longer stored value is refused too; raise the limit for such data);
- ``TOOLDAG_SQLITE_MAX_ROWS`` (default 10000): the most rows a query returns, whatever its
  ``max_rows`` (the result is then ``truncated``).

Past the time or byte limit the query fails with an error that says how to narrow it. Known
limit: a row is counted once SQLite has built it, so one row of many long computed values
(``SELECT hex(zeroblob(999999)), hex(zeroblob(999999)), ...``) briefly holds up to its column
count times the byte limit before it is refused; SQLite has no per-connection memory cap.

The database path is relative to the workspace (``TOOLDAG_WORKSPACE``, as for the files pack).
"""

from __future__ import annotations

import base64
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, ToolError, TransientToolError
from tooldag.registry import RetryPolicy, tool

from ._common import env_float, env_int, workspace_path, workspace_root

__all__ = ["QueryResult", "sqlite_query"]

Value = int | float | str | None

# Reading a table, running a function and a recursive CTE are all a SELECT needs.
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
# How often (in SQLite bytecode instructions) the progress handler looks at the clock.
_PROGRESS_STEPS = 1_000
_READ_ONLY_HINT = (
    "sqlite_query is read-only: use a single SELECT (or WITH ... SELECT) statement; "
    "INSERT, UPDATE, DELETE, CREATE, DROP, ATTACH and PRAGMA are refused"
)


class QueryResult(TypedDict):
    """Rows of a query, each a mapping of column name to value."""

    columns: Annotated[list[str], Field(description="Column names, in order (made unique)")]
    rows: Annotated[
        list[dict[str, Value]],
        Field(description="One object per row; BLOBs are base64 text"),
    ]
    row_count: Annotated[int, Field(description="How many rows are returned")]
    truncated: Annotated[
        bool,
        Field(description="True if the query had more rows than max_rows (or the configured cap)"),
    ]


def _authorizer(action: int, *_: Any) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


def _unique(names: list[str]) -> list[str]:
    """Column names made unique, so ``SELECT a.id, b.id`` keeps both (``id``, ``id_2``)."""
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, n = name, 1
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


def _value(value: Any) -> Value:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, int | float | str) or value is None:
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class _Limits:
    """How far one query may go, from the environment (read at call time)."""

    timeout: float
    max_bytes: int
    max_rows: int

    @classmethod
    def from_env(cls) -> _Limits:
        return cls(
            timeout=env_float("TOOLDAG_SQLITE_TIMEOUT", 10.0, minimum=0.001),
            max_bytes=env_int("TOOLDAG_SQLITE_MAX_BYTES", 2_000_000, minimum=1024),
            max_rows=env_int("TOOLDAG_SQLITE_MAX_ROWS", 10_000, minimum=1),
        )


def _open(path: Path, rel: str, limits: _Limits) -> sqlite3.Connection:
    if not path.is_file():
        raise PermanentToolError(
            f"{rel!r} is not a file in the workspace; list_files shows what is there"
        )
    uri = f"{path.as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=limits.timeout, check_same_thread=False)
    except sqlite3.Error as exc:
        raise PermanentToolError(f"cannot open {rel!r} as an SQLite database ({exc})") from None
    conn.execute("PRAGMA query_only = ON")
    # No string or BLOB, stored, computed or in between, may grow past what the whole result
    # may hold: SQLite refuses it the moment it is built, before it takes the memory.
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limits.max_bytes)
    conn.set_authorizer(_authorizer)
    return conn


def _size(value: Value) -> int:
    """About what ``value`` adds to the result: text in UTF-8 bytes, a number 8, null 4."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    return 4 if value is None else 8


def _too_big(limits: _Limits, rows: int | None = None) -> PermanentToolError:
    """The error for a result (its first ``rows`` rows) or a single value past ``max_bytes``."""
    limit = f"{limits.max_bytes} bytes (TOOLDAG_SQLITE_MAX_BYTES)"
    if rows is None:
        return PermanentToolError(
            f"a single value in the query is over {limit}; return part of it with "
            "substr(column, 1, 200) or its length(column) instead, or build smaller values "
            "(a database that stores longer values needs a higher TOOLDAG_SQLITE_MAX_BYTES)"
        )
    return PermanentToolError(
        f"the query's result is too big: the first {rows} rows are over {limit}; narrow it: "
        "select only the columns you need, add a WHERE or a smaller LIMIT, aggregate (COUNT, "
        "SUM, GROUP BY), or shorten long values with substr(column, 1, 200)"
    )


def _too_slow(limits: _Limits) -> PermanentToolError:
    return PermanentToolError(
        f"the query ran longer than {limits.timeout:g}s (TOOLDAG_SQLITE_TIMEOUT) and was "
        "stopped; narrow it with a WHERE or a LIMIT, or aggregate fewer rows"
    )


def _classify(exc: sqlite3.Error, rel: str, limits: _Limits, timed_out: bool) -> ToolError:
    message = str(exc)
    lowered = message.lower()
    # First: waiting for a lock takes the whole timeout too, and is worth a retry.
    if "locked" in lowered or "busy" in lowered:
        return TransientToolError(f"{rel!r} is locked by another writer; try again shortly")
    if timed_out or "interrupted" in lowered:
        return _too_slow(limits)
    if "too big" in lowered:  # SQLITE_LIMIT_LENGTH: a string or BLOB past max_bytes
        return _too_big(limits)
    if any(word in lowered for word in ("not authorized", "authorization denied", "readonly")):
        return PermanentToolError(f"{_READ_ONLY_HINT} ({message})")
    if "not a database" in lowered or "malformed" in lowered:
        return PermanentToolError(f"{rel!r} is not a usable SQLite database ({message})")
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in lowered:
        return PermanentToolError(f"send one statement at a time ({message})")
    if isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError):
        return PermanentToolError(f"the query failed: {message}; fix the SQL")
    return PermanentToolError(f"the query failed ({type(exc).__name__}: {message})")


class _Deadline:
    """Stops the connection's statement once ``timeout`` seconds have passed, and closes it.

    Two ways, because neither is enough alone. SQLite's progress handler looks at the clock
    every ``_PROGRESS_STEPS`` bytecode instructions, which misses a query of few but slow
    instructions (``hex()`` of a 50 MB BLOB, the audit's 33 s). A timer thread calls
    :meth:`sqlite3.Connection.interrupt`, which SQLite honours after the instruction at hand,
    but does nothing if it fires before the statement starts. A lock keeps the timer off a
    closed connection (interrupting one is undefined in SQLite).
    """

    def __init__(self, conn: sqlite3.Connection, timeout: float) -> None:
        self._conn = conn
        self._at = monotonic() + timeout
        self._lock = threading.Lock()
        self._closed = False
        self.passed = False
        conn.set_progress_handler(self._progress, _PROGRESS_STEPS)
        self._timer = threading.Timer(timeout, self._interrupt)
        self._timer.daemon = True
        self._timer.start()

    def _progress(self) -> int:
        return 1 if self.check() else 0  # non-zero interrupts the statement

    def check(self) -> bool:
        self.passed = self.passed or monotonic() > self._at
        return self.passed

    def _interrupt(self) -> None:
        with self._lock:
            if not self._closed:
                self.passed = True
                self._conn.interrupt()

    def close(self) -> None:
        """Stop the timer and close the connection; the timer never touches it afterwards."""
        self._timer.cancel()
        with self._lock:
            self._closed = True
            self._conn.close()


def _collect(
    cursor: sqlite3.Cursor,
    columns: list[str],
    max_rows: int,
    limits: _Limits,
    deadline: _Deadline,
) -> tuple[list[dict[str, Value]], bool]:
    """The first ``max_rows`` rows and whether there were more, read one row at a time and
    counted as they come, so a result past ``max_bytes`` stops at the row that crossed it."""
    per_row = sum(len(name) + 4 for name in columns)  # each row repeats the names as keys
    total = 0
    rows: list[dict[str, Value]] = []
    for raw in cursor:
        if len(rows) == max_rows:
            return rows, True
        values = [_value(v) for v in raw]
        total += per_row + sum(map(_size, values))
        if total > limits.max_bytes:
            raise _too_big(limits, len(rows) + 1)
        if deadline.check():  # the time spent here, between SQLite's steps, counts too
            raise _too_slow(limits)
        rows.append(dict(zip(columns, values, strict=True)))
    return rows, False


@tool(
    category="data",
    runner="local",  # the database file is on this machine, not on a Dask worker
    side_effects=False,
    idempotent=True,
    timeout=60.0,
    retry=RetryPolicy(attempts=3, initial_backoff=0.5, max_backoff=5.0),
    reads_private=True,
    egress=False,
    untrusted_output=True,  # rows may hold text anyone wrote (messages, reviews, comments)
)
def sqlite_query(
    database: Annotated[str, Field(min_length=1, max_length=1024)],
    sql: Annotated[str, Field(min_length=1, max_length=20_000)],
    params: list[int | float | str | None] | None = None,
    max_rows: Annotated[int, Field(ge=1, le=10_000)] = 200,
) -> QueryResult:
    """Run one read-only SQL query (SELECT) on an SQLite file in the workspace.

    Tip: "SELECT name FROM sqlite_master WHERE type='table'" lists the tables.

    Args:
        database: The SQLite file, relative to the workspace, e.g. "sales.db".
        sql: One SELECT statement; use ? placeholders for values.
        params: Values for the ? placeholders, in order.
        max_rows: The most rows to return.
    """
    limits = _Limits.from_env()
    root = workspace_root()
    path = workspace_path(database, root=root)
    rel = path.relative_to(root).as_posix()
    conn = _open(path, rel, limits)
    deadline = _Deadline(conn, limits.timeout)
    try:
        cursor = conn.execute(sql, params or [])
        if cursor.description is None:  # not a query: nothing to read (and nothing was written)
            raise PermanentToolError(_READ_ONLY_HINT)
        columns = _unique([str(d[0]) for d in cursor.description])
        rows, truncated = _collect(
            cursor, columns, min(max_rows, limits.max_rows), limits, deadline
        )
    except sqlite3.Error as exc:
        raise _classify(exc, rel, limits, deadline.passed) from None
    finally:
        deadline.close()
    return QueryResult(columns=columns, rows=rows, row_count=len(rows), truncated=truncated)


TOOLS = [sqlite_query]
