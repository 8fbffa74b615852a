"""Files pack: read, write and list text files inside one workspace directory.

Every path is relative to the workspace (``TOOLDAG_WORKSPACE``, default the current directory)
and is resolved with symlinks followed before use, so ``..``, absolute paths and symlinks that
lead out are refused. ``write_file`` returns what it replaced, and its compensation
``restore_file`` puts that back (or removes the file it created), so an abandoned run leaves the
workspace as it found it.

Known limit: the check and the open are two system calls, so a process racing to swap a
directory for a symlink in between could escape; the guard is against mistaken or hostile
*plans*, not against hostile local processes.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, TransientToolError
from tooldag.registry import Compensation, RetryPolicy, tool

from ._common import workspace_path, workspace_root

__all__ = [
    "FileContent",
    "FileEntry",
    "FileListing",
    "FileRestored",
    "FileWritten",
    "list_files",
    "read_file",
    "restore_file",
    "write_file",
]

# Beyond this a file is not something to hand an LLM, nor to keep a copy of in a run's journal.
MAX_FILE_BYTES = 1_000_000
_NO_RETRY = RetryPolicy(attempts=1)


def _os_error(exc: OSError, rel: str, doing: str) -> PermanentToolError | TransientToolError:
    """Classify an OSError: a busy or full disk may clear up, a missing or forbidden file won't."""
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return PermanentToolError(f"{rel!r} does not exist; list_files shows what is there")
    if isinstance(exc, IsADirectoryError):
        return PermanentToolError(f"{rel!r} is a directory, not a file")
    if isinstance(exc, NotADirectoryError):
        return PermanentToolError(f"a parent of {rel!r} is a file, not a directory")
    if isinstance(exc, PermissionError):
        return PermanentToolError(f"not allowed to {doing} {rel!r} ({reason})")
    return TransientToolError(f"could not {doing} {rel!r} ({reason}); try again")


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() or "."


def _read_text(path: Path, rel: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise PermanentToolError(
                f"{rel!r} is {size} bytes; the files tools handle text files up to "
                f"{MAX_FILE_BYTES} bytes"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _os_error(exc, rel, "read") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PermanentToolError(
            f"{rel!r} is not a UTF-8 text file; the files tools only handle text"
        ) from None


# --------------------------------------------------------------------------- read


class FileContent(TypedDict):
    path: Annotated[str, Field(description="The path relative to the workspace")]
    content: str
    size: Annotated[int, Field(description="The file's size in bytes")]
    truncated: Annotated[bool, Field(description="True if content holds only the start")]


@tool(category="file", side_effects=False, idempotent=True, timeout=30.0, retry=_NO_RETRY)
def read_file(
    path: Annotated[str, Field(min_length=1, max_length=1024)],
    max_chars: Annotated[int, Field(ge=1, le=MAX_FILE_BYTES)] = 100_000,
) -> FileContent:
    """Read a UTF-8 text file from the workspace.

    Args:
        path: Relative to the workspace, e.g. "notes/todo.txt".
        max_chars: The most characters to return.
    """
    root = workspace_root()
    target = workspace_path(path, root=root)
    rel = _relative(target, root)
    text = _read_text(target, rel)
    return FileContent(
        path=rel,
        content=text[:max_chars],
        size=len(text.encode("utf-8")),
        truncated=len(text) > max_chars,
    )


# --------------------------------------------------------------------------- write / restore


class FileWritten(TypedDict):
    path: Annotated[str, Field(description="The path relative to the workspace")]
    bytes_written: int
    existed: Annotated[bool, Field(description="True if the file was there before")]
    previous_content: Annotated[
        str | None, Field(description="What the file held before (None if it is new)")
    ]
    created_dirs: Annotated[
        list[str], Field(description="Directories created for it, outermost first")
    ]


def _missing_parents(target: Path, root: Path) -> list[Path]:
    missing: list[Path] = []
    parent = target.parent
    while parent != root and not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return list(reversed(missing))


@tool(
    category="file",
    side_effects=True,
    idempotent=True,
    timeout=30.0,
    retry=_NO_RETRY,
    compensate=Compensation(
        "restore_file",
        {
            "path": "$output.path",
            "existed": "$output.existed",
            "previous_content": "$output.previous_content",
            "created_dirs": "$output.created_dirs",
        },
    ),
)
def write_file(
    path: Annotated[str, Field(min_length=1, max_length=1024)],
    content: Annotated[str, Field(max_length=MAX_FILE_BYTES)],
) -> FileWritten:
    """Write a UTF-8 text file in the workspace, replacing it if it exists (parent directories
    are created). Undone by restore_file if the run is abandoned.

    Args:
        path: Relative to the workspace, e.g. "reports/summary.md".
        content: The full new text of the file.
    """
    root = workspace_root()
    target = workspace_path(path, root=root)
    rel = _relative(target, root)
    if target == root or target.is_dir():
        raise PermanentToolError(f"{path!r} is a directory; give a file path")
    existed = target.exists()
    previous = _read_text(target, rel) if existed else None
    data = content.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise PermanentToolError(f"the content is over {MAX_FILE_BYTES} bytes; split it up")
    parents = _missing_parents(target, root)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    except OSError as exc:
        raise _os_error(exc, rel, "write") from None
    return FileWritten(
        path=rel,
        bytes_written=len(data),
        existed=existed,
        previous_content=previous,
        created_dirs=[_relative(p, root) for p in parents],
    )


class FileRestored(TypedDict):
    path: str
    action: Annotated[
        Literal["restored", "removed", "unchanged"],
        Field(description="What was done to put the workspace back"),
    ]


@tool(category="file", side_effects=True, idempotent=True, timeout=30.0, retry=_NO_RETRY)
def restore_file(
    path: Annotated[str, Field(min_length=1, max_length=1024)],
    existed: bool,
    previous_content: str | None = None,
    created_dirs: list[str] | None = None,
) -> FileRestored:
    """Undo a write_file (its compensation): put back the previous content, or remove the file
    it created and the directories it made for it. Safe to run twice.

    Args:
        path: The path write_file reported.
        existed: write_file's "existed".
        previous_content: write_file's "previous_content".
        created_dirs: write_file's "created_dirs".
    """
    root = workspace_root()
    target = workspace_path(path, root=root)
    rel = _relative(target, root)
    try:
        if existed:
            if previous_content is None:
                raise PermanentToolError("existed=true needs previous_content to put back")
            target.write_bytes(previous_content.encode("utf-8"))
            action: Literal["restored", "removed", "unchanged"] = "restored"
        elif target.is_file() or target.is_symlink():
            target.unlink()
            action = "removed"
        else:
            action = "unchanged"
        for directory in reversed(created_dirs or []):
            folder = workspace_path(directory, root=root)
            if folder != root and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    except OSError as exc:
        raise _os_error(exc, rel, "restore") from None
    return FileRestored(path=rel, action=action)


# Not for planners to call directly; a planner may hide tools that carry this mark.
restore_file.metadata["compensation_only"] = True


# --------------------------------------------------------------------------- list


class FileEntry(TypedDict):
    path: Annotated[str, Field(description="Relative to the workspace")]
    type: Literal["file", "dir", "symlink"]
    size: Annotated[int | None, Field(description="Bytes, for files")]


class FileListing(TypedDict):
    directory: str
    entries: list[FileEntry]
    truncated: Annotated[bool, Field(description="True if there were more than max_entries")]


def _entry(path: Path, root: Path) -> FileEntry:
    rel = _relative(path, root)
    if path.is_symlink():
        return FileEntry(path=rel, type="symlink", size=None)
    if path.is_dir():
        return FileEntry(path=rel, type="dir", size=None)
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    return FileEntry(path=rel, type="file", size=size)


@tool(category="file", side_effects=False, idempotent=True, timeout=30.0, retry=_NO_RETRY)
def list_files(
    directory: Annotated[str, Field(min_length=1, max_length=1024)] = ".",
    pattern: Annotated[str, Field(min_length=1, max_length=200)] = "*",
    recursive: bool = False,
    max_entries: Annotated[int, Field(ge=1, le=10_000)] = 500,
) -> FileListing:
    """List the files and directories in a workspace directory, sorted by path.

    Args:
        directory: Relative to the workspace; "." is the workspace itself.
        pattern: A shell-style pattern the names must match, e.g. "*.csv".
        recursive: Also list the contents of subdirectories (symlinked ones are not entered).
        max_entries: The most entries to return.
    """
    root = workspace_root()
    base = workspace_path(directory, root=root)
    if not base.is_dir():
        raise PermanentToolError(
            f"{directory!r} is not a directory in the workspace; list '.' to see what is there"
        )
    found: list[Path] = []
    try:
        # os.walk(followlinks=False) never enters a symlinked directory, so a link pointing out
        # of the workspace cannot expose what lies beyond it.
        for current, dirs, files in os.walk(base, followlinks=False):
            dirs.sort()
            here = Path(current)
            found.extend(here / n for n in sorted(dirs + files) if fnmatch.fnmatch(n, pattern))
            if not recursive or len(found) > max_entries:
                break
    except OSError as exc:
        raise _os_error(exc, directory, "list") from None
    found.sort()
    return FileListing(
        directory=_relative(base, root),
        entries=[_entry(p, root) for p in found[:max_entries]],
        truncated=len(found) > max_entries,
    )


TOOLS = [read_file, write_file, list_files, restore_file]
