"""Files only their owner may read: the run store (tool outputs, plans, goals) and the chat
history hold the user's data, so they are created ``0600`` in directories created ``0700``.

SQLite gives a database's ``-wal`` and ``-shm`` files the database file's own permissions, so
creating the database file privately covers them too. Files and directories that exist already
are left as their owner set them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["private_dir", "private_file", "write_private"]


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) ``0700`` unless it exists."""
    if path.is_dir():
        return
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:  # mkdir applies ``mode`` to the last directory only
        os.chmod(created, 0o700)


def private_file(path: Path) -> None:
    """Create ``path`` empty and ``0600`` (its folder as :func:`private_dir`) unless it exists."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: written ``0600`` beside it, then renamed over
    it, so that a reader (another process) sees the old file or the new one, never half of one."""
    private_dir(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
