"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` and ``pg_ctl`` in a temp dir.

:class:`TemporaryPostgres` starts a private server (its own data directory, a Unix socket in a
private directory, no TCP listener, trust authentication for its one user) and stops it and
deletes everything on :meth:`~TemporaryPostgres.stop`. PostgreSQL refuses to run as root, so under
root the server runs as ``nobody`` (its directories are given to that user); otherwise as the
caller. The binaries come from ``$TOOLDAG_PG_BIN``, else the newest ``/usr/lib/postgresql/*/bin``
(Debian's ``postgresql`` package), else ``pg_ctl`` on ``PATH``.

>>> with TemporaryPostgres() as pg:            # doctest: +SKIP
...     store = RunStore(pg.new_schema())     # a fresh, empty schema per call
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError

__all__ = ["TemporaryPostgres", "postgres_bin"]

_USER = "tooldag"


def postgres_bin() -> Path:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; ConfigError if none is found."""
    env = os.environ.get("TOOLDAG_PG_BIN")
    candidates = [Path(env)] if env else []
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise ConfigError(
        "no PostgreSQL server binaries (initdb, pg_ctl) found: install Debian's package "
        "(apt-get install -y postgresql) or set TOOLDAG_PG_BIN to their folder"
    )


class TemporaryPostgres:
    """A private PostgreSQL server in a temporary directory (see the module docstring).

    ``durable=False`` (for tests) turns off ``fsync`` and synchronous commits: the server is
    thrown away, so a power loss cannot hurt it, and tests run faster. Benchmarks that measure
    what a commit costs pass ``durable=True``.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.root: Path | None = None
        self.port = 0
        self.url = ""
        self._run_as: dict[str, Any] = {}

    # -- life cycle
    def start(self) -> str:
        """Create, start and return the URL of the server's database (``tooldag``)."""
        bindir = postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="tooldag-pg-"))
        data, sock = self.root / "data", self.root / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in (self.root, sock):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            self._run_as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        # A free-looking port: with no TCP listener it only names the socket file.
        self.port = 20000 + uuid.uuid4().int % 30000
        env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
        self._run(
            [str(bindir / "initdb"), "-D", str(data), "-U", _USER, "--auth=trust", "-E", "UTF8",
             "--no-instructions"],
            env,
        )  # fmt: skip
        settings = [
            "listen_addresses=''",
            f"unix_socket_directories='{sock}'",
            f"port={self.port}",
            "max_connections=100",
        ]
        if not self.durable:
            settings += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        options = " ".join(f"-c {s}" for s in settings)
        self._run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(self.root / "server.log"),
             "-o", options, "-w", "-t", "60", "start"],
            env,
        )  # fmt: skip
        base = f"postgresql://{_USER}@/%s?host={quote(str(sock))}&port={self.port}"
        import psycopg

        with psycopg.connect(base % "postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_USER}")
        self.url = base % _USER
        return self.url

    def stop(self) -> None:
        """Stop the server (at once: its data is thrown away) and delete its directory."""
        if self.root is None:
            return
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            env = {**os.environ, "LC_ALL": "C", "HOME": str(self.root)}
            cmd = [str(postgres_bin() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(cmd, env=env, capture_output=True, check=False, **self._run_as)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> TemporaryPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, cmd: list[str], env: dict[str, str]) -> None:
        done = subprocess.run(
            cmd, env=env, cwd=self.root, capture_output=True, text=True, check=False,
            **self._run_as,
        )  # fmt: skip
        if done.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise ConfigError(
                f"{Path(cmd[0]).name} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout).strip()} {tail}".strip()
            )

    # -- databases
    def new_schema(self) -> str:
        """A URL whose connections use a new, empty schema: one server, isolated stores."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}&options={quote(f'-csearch_path={name}')}"
