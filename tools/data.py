"""Data pack: read-only SQL queries on SQLite files in the workspace.

Three locks keep ``sqlite_query`` read-only, each enough alone: the file is opened with the URI
``mode=ro``, the connection is ``PRAGMA query_only``, and an authorizer allows only reading
(no ATTACH, which could open files outside the workspace, no PRAGMA, no writes). A runaway query
is interrupted after ``TOOLDAG_SQLITE_TIMEOUT`` seconds (default 10), which is also how long it
waits for a database another process has locked.

The database path is relative to the workspace (``TOOLDAG_WORKSPACE``, as for the files pack).
"""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from time import monotonic
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, ToolError, TransientToolError
from tooldag.registry import RetryPolicy, tool

from ._common import env_float, workspace_path, workspace_root

__all__ = ["QueryResult", "sqlite_query"]

Value = int | float | str | None

# Reading a table, running a function and a recursive CTE are all a SELECT needs.
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
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
    truncated: Annotated[bool, Field(description="True if the query had more than max_rows rows")]


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


def _open(path: Path, rel: str, timeout: float) -> sqlite3.Connection:
    if not path.is_file():
        raise PermanentToolError(
            f"{rel!r} is not a file in the workspace; list_files shows what is there"
        )
    uri = f"{path.as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)
    except sqlite3.Error as exc:
        raise PermanentToolError(f"cannot open {rel!r} as an SQLite database ({exc})") from None
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(_authorizer)
    return conn


def _classify(exc: sqlite3.Error, rel: str, timeout: float, timed_out: bool) -> ToolError:
    message = str(exc)
    lowered = message.lower()
    if timed_out or "interrupted" in lowered:
        return PermanentToolError(
            f"the query ran longer than {timeout:g}s and was stopped; add a LIMIT or a WHERE"
        )
    if any(word in lowered for word in ("not authorized", "authorization denied", "readonly")):
        return PermanentToolError(f"{_READ_ONLY_HINT} ({message})")
    if "locked" in lowered or "busy" in lowered:
        return TransientToolError(f"{rel!r} is locked by another writer; try again shortly")
    if "not a database" in lowered or "malformed" in lowered:
        return PermanentToolError(f"{rel!r} is not a usable SQLite database ({message})")
    if isinstance(exc, sqlite3.ProgrammingError) and "one statement" in lowered:
        return PermanentToolError(f"send one statement at a time ({message})")
    if isinstance(exc, sqlite3.OperationalError | sqlite3.ProgrammingError):
        return PermanentToolError(f"the query failed: {message}; fix the SQL")
    return PermanentToolError(f"the query failed ({type(exc).__name__}: {message})")


@tool(
    category="data",
    side_effects=False,
    idempotent=True,
    timeout=60.0,
    retry=RetryPolicy(attempts=3, initial_backoff=0.5, max_backoff=5.0),
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
    timeout = env_float("TOOLDAG_SQLITE_TIMEOUT", 10.0, minimum=0.001)
    root = workspace_root()
    path = workspace_path(database, root=root)
    rel = path.relative_to(root).as_posix()
    conn = _open(path, rel, timeout)
    deadline = monotonic() + timeout
    timed_out = False

    def past_deadline() -> int:
        nonlocal timed_out
        timed_out = monotonic() > deadline
        return 1 if timed_out else 0  # non-zero interrupts the statement

    conn.set_progress_handler(past_deadline, 10_000)
    try:
        cursor = conn.execute(sql, params or [])
        if cursor.description is None:  # not a query: nothing to read (and nothing was written)
            raise PermanentToolError(_READ_ONLY_HINT)
        columns = _unique([str(d[0]) for d in cursor.description])
        fetched = cursor.fetchmany(max_rows + 1)
    except sqlite3.Error as exc:
        raise _classify(exc, rel, timeout, timed_out) from None
    finally:
        conn.close()
    rows = [dict(zip(columns, map(_value, row), strict=True)) for row in fetched[:max_rows]]
    return QueryResult(
        columns=columns, rows=rows, row_count=len(rows), truncated=len(fetched) > max_rows
    )


TOOLS = [sqlite_query]
