"""The data pack: read-only queries on real SQLite files, write attempts refused."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from time import monotonic

import pytest

from packs_fixtures import make_sqlite, pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError, TransientToolError

registry = pack_registry("data")

SALES = """
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, total REAL, paid INTEGER,
                     note TEXT, receipt BLOB);
INSERT INTO orders VALUES (1, 'Ann', 19.5, 1, NULL, x'00ff');
INSERT INTO orders VALUES (2, 'Bob', 5.25, 0, 'late', NULL);
INSERT INTO orders VALUES (3, 'Ann', 30.0, 1, NULL, NULL);
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO customers VALUES (1, 'Ann'), (2, 'Bob');
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    monkeypatch.setenv("TOOLDAG_WORKSPACE", str(root))
    make_sqlite(root / "sales.db", SALES)
    return root


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_query_returns_typed_rows_with_column_names(workspace: Path) -> None:
    out = registry.execute(
        "sqlite_query",
        database="sales.db",
        sql="SELECT id, customer, total, paid, note, receipt FROM orders ORDER BY id LIMIT 2",
    )
    assert out["columns"] == ["id", "customer", "total", "paid", "note", "receipt"]
    assert out["rows"] == [
        {"id": 1, "customer": "Ann", "total": 19.5, "paid": 1, "note": None, "receipt": "AP8="},
        {"id": 2, "customer": "Bob", "total": 5.25, "paid": 0, "note": "late", "receipt": None},
    ]
    assert out["row_count"] == 2 and out["truncated"] is False


def test_aggregates_and_placeholders(workspace: Path) -> None:
    out = registry.execute(
        "sqlite_query",
        database="sales.db",
        sql="SELECT customer, SUM(total) AS spent FROM orders WHERE paid = ? GROUP BY customer",
        params=[1],
    )
    assert out["rows"] == [{"customer": "Ann", "spent": 49.5}]


def test_duplicate_column_names_are_made_unique(workspace: Path) -> None:
    out = registry.execute(
        "sqlite_query",
        database="sales.db",
        sql="SELECT o.id, c.id FROM orders o JOIN customers c ON c.name = o.customer "
        "ORDER BY o.id LIMIT 1",
    )
    assert out["columns"] == ["id", "id_2"] and out["rows"] == [{"id": 1, "id_2": 1}]


def test_rows_are_capped_and_the_cap_is_reported(workspace: Path) -> None:
    out = registry.execute(
        "sqlite_query", database="sales.db", sql="SELECT id FROM orders ORDER BY id", max_rows=2
    )
    assert [r["id"] for r in out["rows"]] == [1, 2] and out["truncated"] is True


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO orders (customer, total) VALUES ('Eve', 1)",
        "UPDATE orders SET total = 0",
        "DELETE FROM orders",
        "DROP TABLE orders",
        "CREATE TABLE evil (x)",
        "ALTER TABLE orders ADD COLUMN x",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA query_only = OFF",
        "VACUUM",
        "REINDEX",
        "BEGIN IMMEDIATE",
    ],
)
def test_write_attempts_are_refused_and_the_file_is_unchanged(workspace: Path, sql: str) -> None:
    before = digest(workspace / "sales.db")
    with pytest.raises(PermanentToolError, match="read-only"):
        registry.execute("sqlite_query", database="sales.db", sql=sql)
    assert digest(workspace / "sales.db") == before
    assert sorted(p.name for p in workspace.iterdir()) == ["sales.db"]  # no journal left behind


def test_attach_cannot_read_a_database_outside_the_workspace(workspace: Path) -> None:
    outside = make_sqlite(
        workspace.parent / "outside.db", "CREATE TABLE s (v); INSERT INTO s VALUES ('x');"
    )
    with pytest.raises(PermanentToolError, match="read-only"):
        registry.execute(
            "sqlite_query", database="sales.db", sql=f"ATTACH DATABASE '{outside}' AS o"
        )


def test_a_database_outside_the_workspace_is_refused(workspace: Path) -> None:
    make_sqlite(workspace.parent / "outside.db", "CREATE TABLE s (v);")
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("sqlite_query", database="../outside.db", sql="SELECT * FROM s")


def test_a_second_statement_is_refused(workspace: Path) -> None:
    with pytest.raises(PermanentToolError, match="one statement"):
        registry.execute("sqlite_query", database="sales.db", sql="SELECT 1; DELETE FROM orders")
    assert registry.execute(
        "sqlite_query", database="sales.db", sql="SELECT COUNT(*) AS n FROM orders"
    )["rows"] == [{"n": 3}]


def test_sql_errors_say_to_fix_the_sql(workspace: Path) -> None:
    with pytest.raises(PermanentToolError, match="no such table: nope; fix the SQL"):
        registry.execute("sqlite_query", database="sales.db", sql="SELECT * FROM nope")


def test_a_missing_database_points_to_list_files(workspace: Path) -> None:
    with pytest.raises(PermanentToolError, match="list_files"):
        registry.execute("sqlite_query", database="nope.db", sql="SELECT 1")
    assert not (workspace / "nope.db").exists()  # mode=ro never creates a file


def test_a_file_that_is_not_a_database_is_a_clear_error(workspace: Path) -> None:
    (workspace / "notes.db").write_text("just some text, not sqlite" * 100, encoding="utf-8")
    with pytest.raises(PermanentToolError, match="not a usable SQLite database"):
        registry.execute("sqlite_query", database="notes.db", sql="SELECT 1 FROM sqlite_master")


def test_a_runaway_query_is_interrupted(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLDAG_SQLITE_TIMEOUT", "0.05")
    endless = (
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT COUNT(*) FROM n"
    )
    with pytest.raises(PermanentToolError, match=r"ran longer than 0\.05s"):
        registry.execute("sqlite_query", database="sales.db", sql=endless)


def test_a_locked_database_is_transient(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLDAG_SQLITE_TIMEOUT", "0.05")
    db = workspace / "sales.db"
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("PRAGMA locking_mode = EXCLUSIVE")
        writer.execute("BEGIN EXCLUSIVE")
        with pytest.raises(TransientToolError, match="locked"):
            registry.execute("sqlite_query", database="sales.db", sql="SELECT 1 FROM orders")
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_arguments_are_validated_by_the_schema(workspace: Path) -> None:
    with pytest.raises(ToolArgumentError, match="max_rows"):
        registry.execute("sqlite_query", database="sales.db", sql="SELECT 1", max_rows=0)


def test_sqlite_query_is_read_only_and_typed() -> None:
    t = registry.get("sqlite_query")
    assert t.side_effects is False and t.idempotent is True and t.category == "data"
    assert t.output_schema is not None and "rows" in t.output_schema["properties"]


# --------------------------------------------------------------------------- limits

ENDLESS = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "


def test_a_value_past_the_byte_limit_is_refused_before_it_is_built(workspace: Path) -> None:
    # The audit's query (over one row here): a 100 MB string, then 9.6 GB over 50 rows.
    with pytest.raises(PermanentToolError) as caught:
        registry.execute(
            "sqlite_query", database="sales.db", sql="SELECT hex(zeroblob(50000000)) AS big"
        )
    message = str(caught.value)
    assert "a single value in the query is over 2000000 bytes (TOOLDAG_SQLITE_MAX_BYTES)" in message
    assert "substr(column, 1, 200)" in message


def test_a_result_past_the_byte_limit_stops_at_the_row_that_crosses_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Endless rows of 10 kB: a reader that fetched first and counted after would never stop
    # (or stop at the time limit); counting as rows arrive stops at the third.
    monkeypatch.setenv("TOOLDAG_SQLITE_MAX_BYTES", "25000")
    monkeypatch.setenv("TOOLDAG_SQLITE_TIMEOUT", "30")
    with pytest.raises(PermanentToolError, match=r"the first 3 rows are over 25000 bytes"):
        registry.execute(
            "sqlite_query",
            database="sales.db",
            sql=ENDLESS + "SELECT hex(zeroblob(5000)) AS chunk FROM n",
            max_rows=10_000,
        )


def test_a_result_within_the_byte_limit_is_returned_whole(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_SQLITE_MAX_BYTES", "25000")
    out = registry.execute(
        "sqlite_query",
        database="sales.db",
        sql=ENDLESS + "SELECT hex(zeroblob(5000)) AS chunk FROM n LIMIT 2",
    )
    assert out["row_count"] == 2 and len(out["rows"][0]["chunk"]) == 10_000


def test_the_row_limit_caps_max_rows(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLDAG_SQLITE_MAX_ROWS", "2")
    out = registry.execute(
        "sqlite_query", database="sales.db", sql="SELECT id FROM orders ORDER BY id", max_rows=100
    )
    assert [r["id"] for r in out["rows"]] == [1, 2] and out["truncated"] is True


def test_a_query_of_few_slow_instructions_is_stopped_at_its_deadline(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hundred hex() of a 20 MB BLOB (a raised byte limit allows them) summed into one row:
    # some 800 bytecode instructions, fewer than the thousand between two looks at the clock
    # by the progress handler, so only the interrupt stops it in time.
    monkeypatch.setenv("TOOLDAG_SQLITE_MAX_BYTES", "50000000")
    one = "SELECT length(hex(zeroblob(20000000))) AS v"
    started = monotonic()
    registry.execute("sqlite_query", database="sales.db", sql=one)
    each = monotonic() - started  # what one such instruction costs on this machine, now
    monkeypatch.setenv("TOOLDAG_SQLITE_TIMEOUT", "0.1")
    hundred = " UNION ALL ".join([one] * 100)
    started = monotonic()
    with pytest.raises(
        PermanentToolError, match=r"ran longer than 0\.1s \(TOOLDAG_SQLITE_TIMEOUT\)"
    ):
        registry.execute("sqlite_query", database="sales.db", sql=f"SELECT sum(v) FROM ({hundred})")
    # Stopped after the instruction at hand, not after all hundred.
    assert monotonic() - started < 0.1 + 30 * each


def test_a_query_of_many_quick_instructions_is_stopped_at_its_deadline(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_SQLITE_TIMEOUT", "0.2")
    with pytest.raises(PermanentToolError, match=r"ran longer than 0\.2s"):
        registry.execute("sqlite_query", database="sales.db", sql=ENDLESS + "SELECT sum(x) FROM n")


@pytest.mark.parametrize(
    ("name", "value"),
    [("TOOLDAG_SQLITE_MAX_BYTES", "100"), ("TOOLDAG_SQLITE_MAX_ROWS", "0"),
     ("TOOLDAG_SQLITE_MAX_BYTES", "lots")],
)  # fmt: skip
def test_a_bad_limit_setting_says_how_to_fix_it(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(PermanentToolError, match=name):
        registry.execute("sqlite_query", database="sales.db", sql="SELECT 1")
