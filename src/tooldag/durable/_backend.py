"""What the run store asks of a database: one connection, write transactions, liveness, dialect.

:class:`~tooldag.durable.store.RunStore` holds every rule of the journal (which rows an event
writes, how a claim decides, what a read returns) in SQL both databases speak, with ``?``
parameters; a :class:`Backend` supplies the rest. Two exist: SQLite
(:mod:`~tooldag.durable._sqlite`: one file, ``BEGIN IMMEDIATE``, the owner's process probed in
``/proc``) and PostgreSQL (:mod:`~tooldag.durable._postgres`: psycopg 3, advisory locks, a lease
renewed in the database). The store serialises every use of a backend with its own lock.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

from ._liveness import forget_live, is_live, mark_live
from ._migrations import Migration

__all__ = ["Backend", "Connection", "Cursor", "Owner", "is_database_url", "redact_url"]

Owner = tuple[int, str, str | None]
"""(pid, host, token) of the process that runs a run, as its row records it."""


def is_database_url(path: object) -> bool:
    """Whether ``path`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return isinstance(path, str) and path.startswith(("postgresql://", "postgres://"))


_PASSWORD_IN_AUTHORITY = re.compile(r"^(postgres(?:ql)?://[^:/@?#]*):[^@/?#]*@")
_PASSWORD_IN_QUERY = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: how messages and listings name a store."""
    return _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_AUTHORITY.sub(r"\1:***@", url))


class Cursor(Protocol):
    """What a statement gives back: rows (indexable by position and by column name), a count."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A DB-API connection as far as the journal uses one: ``execute`` with ``?`` parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


class Backend(ABC):
    """One connection to one store, and what differs between databases.

    ``path`` names the store in messages (never with a password); ``key`` tells stores apart in
    this process's set of runs it executes (:mod:`~tooldag.durable._liveness`).
    """

    dialect: ClassVar[str]
    path: str
    key: str
    errors: tuple[type[Exception], ...]
    """What a failing database call raises (turned into StoreError by the store)."""
    gone_because: ClassVar[str] = "is gone"
    """How a run's owner is known to be gone, after "process P on H"."""
    begin_hint: ClassVar[str]
    """What to do when a write transaction cannot start."""
    write_hint: ClassVar[str]
    """What to do when a write fails half way."""
    # The owner process's clock reads of "now" for the lease: None where there is no lease.
    now_sql: ClassVar[str] = "NULL"
    # Ties of created_at (two runs in one clock tick) in the order they were made: runs.key
    # counts up.
    newest_first: ClassVar[str] = "r.created_at DESC, r.key DESC"
    schema_version_ddl: ClassVar[str]

    @property
    @abstractmethod
    def conn(self) -> Connection:
        """The connection (reopened first, where the backend can, if it was lost)."""

    @abstractmethod
    def begin(self) -> None:
        """Start a write transaction."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    def advice(self, exc: BaseException) -> str:
        """What to do after a write failed with ``exc``."""
        return self.write_hint

    @abstractmethod
    def statements(self, migration: Migration) -> tuple[str, ...]:
        """The migration's statements in this database's dialect."""

    # -- serialising writers (inside a write transaction)
    def lock_schema(self) -> None:
        """Hold off other processes migrating the same store until the transaction ends."""
        return None  # SQLite needs nothing here

    def lock_run(self, run_id: str) -> None:
        """Hold off other processes claiming ``run_id`` until the transaction ends."""
        return None  # SQLite needs nothing here

    def try_lock_run(self, run_id: str) -> bool:
        """Like :meth:`lock_run`, but False at once if another process holds it."""
        self.lock_run(run_id)
        return True

    # -- liveness: who runs a run, and is it still there
    @abstractmethod
    def owner(self) -> Owner:
        """This process as a run row records its owner."""

    def owned(self, db: Connection, run_id: str) -> None:
        """In the transaction that makes this process ``run_id``'s owner (a claim, its
        ``run_started``): whatever else ownership needs written (a lease)."""
        return None  # SQLite needs nothing here

    def started(self, run_id: str) -> None:
        """This process executes ``run_id`` from now on (the transaction is committed)."""
        mark_live(self.key, run_id)

    def stopped(self, run_id: str) -> None:
        """This process no longer executes ``run_id`` (it finished, or its executor died)."""
        forget_live(self.key, run_id)

    def check_owner(self, run_id: str) -> None:
        """Raise StoreError if another process took ``run_id`` over from this one."""
        return None  # SQLite needs nothing here

    def executes_here(self, run_id: str) -> bool:
        return is_live(self.key, run_id)

    @abstractmethod
    def gone(self, row: Any) -> bool:
        """Whether the owner of the run ``row`` (stored as running) is gone: the run reads as
        interrupted. ``row`` has the runs columns and ``db_now`` (:attr:`now_sql`)."""
