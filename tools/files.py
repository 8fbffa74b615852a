"""Files pack: read, write and list text files inside one workspace directory.

Every path is relative to the workspace (``TOOLDAG_WORKSPACE``, default the current directory)
and is resolved with symlinks followed before use, so ``..``, absolute paths and symlinks that
lead out are refused. ``write_file`` returns what it replaced, and its compensation
``restore_file`` puts that back (or removes the file it created), so an abandoned run leaves the
workspace as it found it.

A crashed run runs its in-flight step again (at-least-once), and that second ``write_file`` would
see its own first write as "what it replaced". So before changing anything, ``write_file`` keeps
what it found in a stash, ``.tooldag/stash/<sha256 of idempotency key and path>.json`` in the
workspace, and an attempt with the same key, path and content reports the stashed original
instead. The stash is hidden from ``list_files`` and refused to every files tool; entries older
than seven days are pruned on each write (a run resumed later than that reports the file as it
finds it).

Only regular files are read or written. A FIFO, device, socket or directory is refused before
it is opened (opening a FIFO blocks until a writer comes, and a thread cannot be stopped), and
again on the open descriptor in case one was swapped in; ``list_files`` lists such entries as
``"other"``.

Known limit: the check and the open are two system calls, so a process racing to swap a
directory for a symlink in between could escape; the guard is against mistaken or hostile
*plans*, not against hostile local processes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, TransientToolError
from tooldag.registry import Compensation, RetryPolicy, Tool, ToolContext, tool

from ._common import workspace_path, workspace_root

__all__ = [
    "FileContent",
    "FileEntry",
    "FileListing",
    "FileRestored",
    "FileWritten",
    "PRIVATE_DIR",
    "list_files",
    "read_file",
    "restore_file",
    "write_file",
]

# Beyond this a file is not something to hand an LLM, nor to keep a copy of in a run's journal.
MAX_FILE_BYTES = 1_000_000
_NO_RETRY = RetryPolicy(attempts=1)
# The workspace-relative home of the tools' own bookkeeping; no files tool reads or lists it.
PRIVATE_DIR = ".tooldag"
_STASH_TTL = 7 * 24 * 3600.0


def _workspace_tool(**capabilities: Any) -> Callable[[Callable[..., Any]], Tool]:
    """``@tool`` with what every files tool shares: it runs on this machine (the workspace is
    here, not on a Dask worker), is idempotent, sends nothing anywhere, has a 30 s deadline and is
    not retried (a failed file operation fails the same way again). Each tool states the rest
    (side effects, what it reads and returns) where it is defined."""
    return tool(
        category="file",
        runner="local",
        idempotent=True,
        timeout=30.0,
        retry=_NO_RETRY,
        egress=False,
        **capabilities,
    )


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


def _user_path(path: str, root: Path) -> Path:
    """``workspace_path``, also refusing the tools' private directory: a plan that could write a
    stash entry could choose what a later compensation "restores"."""
    target = workspace_path(path, root=root)
    if target.is_relative_to(root / PRIVATE_DIR):
        raise PermanentToolError(
            f"{path!r} is inside {PRIVATE_DIR}/, where tooldag keeps its own records; "
            "use another path"
        )
    return target


# Opening a FIFO blocks until a writer comes (a thread that can never be stopped), and opening
# a device may act on it; O_NONBLOCK makes such an open return at once, O_NOFOLLOW refuses a
# symlink swapped in after the path was resolved. Both are POSIX only; elsewhere they are 0.
_OPEN_FLAGS = (
    getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)
_SPECIAL_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_special(mode: int, rel: str) -> None:
    """Nothing for a regular file; a clear refusal for a directory, FIFO, device or socket."""
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _SPECIAL_KINDS if test(mode)), "not a regular file")
    raise PermanentToolError(
        f"{rel!r} is {kind}, not a regular file; the files tools only read and write regular "
        "text files (list_files shows what each entry is)"
    )


def _existing_mode(path: Path, rel: str, doing: str) -> int | None:
    """The mode of what is at ``path`` (symlinks followed), or None if nothing is there."""
    try:
        return path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(exc, rel, doing) from None


def _open_regular(path: Path, rel: str, flags: int) -> int:
    """A file descriptor of the regular file at ``path``, checked before and after the open.

    The check before means a FIFO or device is never opened at all; the one after (on the open
    descriptor) catches one swapped in between. The descriptor is blocking again on return.
    """
    mode = _existing_mode(path, rel, "open")
    if mode is not None:
        _refuse_special(mode, rel)
    fd = os.open(path, flags | _OPEN_FLAGS, 0o666)
    try:
        _refuse_special(os.fstat(fd).st_mode, rel)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_text(path: Path, rel: str) -> str:
    try:
        with os.fdopen(_open_regular(path, rel, os.O_RDONLY), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # Read one byte past the cap rather than trust the size: the file may be growing.
            data = b"" if size > MAX_FILE_BYTES else handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _os_error(exc, rel, "read") from None
    if size > MAX_FILE_BYTES or len(data) > MAX_FILE_BYTES:
        raise PermanentToolError(
            f"{rel!r} is {max(size, len(data))} bytes; the files tools handle text files up to "
            f"{MAX_FILE_BYTES} bytes"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PermanentToolError(
            f"{rel!r} is not a UTF-8 text file; the files tools only handle text"
        ) from None


def _write_bytes(path: Path, rel: str, data: bytes, doing: str) -> None:
    """Replace the content of the regular file at ``path`` (created if missing) with ``data``.

    Truncated only after the open proved it regular (``O_TRUNC`` would act before the check).
    """
    try:
        with os.fdopen(_open_regular(path, rel, os.O_WRONLY | os.O_CREAT), "wb") as handle:
            handle.truncate(0)
            handle.write(data)
    except OSError as exc:
        raise _os_error(exc, rel, doing) from None


# --------------------------------------------------------------------------- read


class FileContent(TypedDict):
    path: Annotated[str, Field(description="The path relative to the workspace")]
    content: str
    size: Annotated[int, Field(description="The file's size in bytes")]
    truncated: Annotated[bool, Field(description="True if content holds only the start")]


@_workspace_tool(
    side_effects=False,
    reads_private=True,
    untrusted_output=True,  # a workspace file may be a saved page or mail, written by anyone
)
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
    target = _user_path(path, root)
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
    repeated: Annotated[
        bool,
        Field(
            description="True if an earlier attempt of this step had already recorded what "
            "the file held (the step ran again after a crash); the fields above describe the "
            "workspace before that first attempt"
        ),
    ]


def _missing_parents(target: Path, root: Path) -> list[Path]:
    missing: list[Path] = []
    parent = target.parent
    while parent != root and not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return list(reversed(missing))


# --------------------------------------------------------------------------- stash


def _stash_dir(root: Path) -> Path:
    folder = root / PRIVATE_DIR / "stash"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        resolved = folder.resolve(strict=True)
    except OSError as exc:
        raise _os_error(exc, f"{PRIVATE_DIR}/stash", "create") from None
    if not resolved.is_relative_to(root):
        raise PermanentToolError(
            f"{PRIVATE_DIR}/ in the workspace leads outside it; remove that symlink"
        )
    return resolved


def _stash_file(root: Path, key: str, rel: str) -> Path:
    # The path is part of the name so that calls sharing a key (every direct registry call of
    # write_file does) but writing different files keep separate originals.
    digest = hashlib.sha256(f"{key}\0{rel}".encode()).hexdigest()
    return _stash_dir(root) / f"{digest}.json"


def _load_stash(entry: Path, key: str, rel: str, content_sha: str) -> dict[str, Any] | None:
    """The stashed record of an earlier attempt of this very write, or None.

    A record for the same key and path but other content is not a repeat (a crash re-runs a step
    with the same arguments): it is replaced. An unreadable record is ignored, as if absent.
    """
    try:
        record = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        isinstance(record, dict)
        and record.get("key") == key
        and record.get("path") == rel
        and record.get("content_sha256") == content_sha
        and isinstance(record.get("existed"), bool)
        and isinstance(record.get("previous_content"), str | None)
        and isinstance(record.get("created_dirs"), list)
    ):
        return record
    return None


def _save_stash(entry: Path, record: dict[str, Any]) -> None:
    """Write ``record`` so that a crash leaves either the whole new record or none of it."""
    folder = entry.parent
    _prune_stash(folder)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, ensure_ascii=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _os_error(exc, f"{PRIVATE_DIR}/stash", "write") from None


def _prune_stash(folder: Path) -> None:
    """Drop records (and temp files of killed writes) older than a week: one is only needed
    until its run ends, and a run is not resumed that late."""
    cutoff = time.time() - _STASH_TTL
    try:
        for item in folder.iterdir():
            try:
                if item.stat().st_mtime < cutoff:
                    item.unlink()
            except OSError:
                continue
    except OSError:
        return


# --------------------------------------------------------------------------- write / restore


@_workspace_tool(
    side_effects=True,
    reads_private=True,  # previous_content is what the file held
    untrusted_output=True,
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
    ctx: ToolContext | None = None,
) -> FileWritten:
    """Write a UTF-8 text file in the workspace, replacing it if it exists (parent directories
    are created). Undone by restore_file if the run is abandoned.

    Args:
        path: Relative to the workspace, e.g. "reports/summary.md".
        content: The full new text of the file.
    """
    root = workspace_root()
    target = _user_path(path, root)
    rel = _relative(target, root)
    # Before the stash and the read of the original: reading a FIFO would block for good.
    mode = _existing_mode(target, rel, "write")
    if mode is not None:
        _refuse_special(mode, rel)
    data = content.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise PermanentToolError(f"the content is over {MAX_FILE_BYTES} bytes; split it up")
    content_sha = hashlib.sha256(data).hexdigest()
    key = ctx.idempotency_key if ctx is not None else None
    stash = _stash_file(root, key, rel) if key is not None else None
    record = None
    if stash is not None and key is not None:
        record = _load_stash(stash, key, rel, content_sha)
    if record is not None:
        existed: bool = record["existed"]
        previous: str | None = record["previous_content"]
        created = [str(d) for d in record["created_dirs"]]
    else:
        existed = mode is not None
        previous = _read_text(target, rel) if existed else None
        created = [_relative(p, root) for p in _missing_parents(target, root)]
        if stash is not None:
            # Recorded before the file changes: a crash after this point re-runs the step, and
            # the re-run must report this original, not its own first write.
            _save_stash(
                stash,
                {
                    "key": key,
                    "path": rel,
                    "content_sha256": content_sha,
                    "existed": existed,
                    "previous_content": previous,
                    "created_dirs": created,
                },
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, rel, "write") from None
    _write_bytes(target, rel, data, "write")
    return FileWritten(
        path=rel,
        bytes_written=len(data),
        existed=existed,
        previous_content=previous,
        created_dirs=created,
        repeated=record is not None,
    )


class FileRestored(TypedDict):
    path: str
    action: Annotated[
        Literal["restored", "removed", "unchanged"],
        Field(description="What was done to put the workspace back"),
    ]


@_workspace_tool(
    side_effects=True,
    reads_private=False,  # only the path and what was done
    untrusted_output=False,
)
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
    target = _user_path(path, root)
    rel = _relative(target, root)
    try:
        if existed:
            if previous_content is None:
                raise PermanentToolError("existed=true needs previous_content to put back")
            _write_bytes(target, rel, previous_content.encode("utf-8"), "restore")
            action: Literal["restored", "removed", "unchanged"] = "restored"
        elif target.is_file() or target.is_symlink():
            target.unlink()
            action = "removed"
        else:
            action = "unchanged"
        for directory in reversed(created_dirs or []):
            folder = _user_path(directory, root)
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
    type: Annotated[
        Literal["file", "dir", "symlink", "other"],
        Field(description='"other" is a FIFO, device or socket, which read_file refuses'),
    ]
    size: Annotated[int | None, Field(description="Bytes, for files")]


class FileListing(TypedDict):
    directory: str
    entries: list[FileEntry]
    truncated: Annotated[bool, Field(description="True if there were more than max_entries")]


def _entry(path: Path, root: Path) -> FileEntry:
    rel = _relative(path, root)
    try:
        info = path.lstat()
    except OSError:  # gone since the directory was read
        return FileEntry(path=rel, type="file", size=None)
    if stat.S_ISLNK(info.st_mode):
        return FileEntry(path=rel, type="symlink", size=None)
    if stat.S_ISDIR(info.st_mode):
        return FileEntry(path=rel, type="dir", size=None)
    if stat.S_ISREG(info.st_mode):
        return FileEntry(path=rel, type="file", size=info.st_size)
    # A FIFO, device or socket: listed for what it is, so that no plan tries to read it.
    return FileEntry(path=rel, type="other", size=None)


@_workspace_tool(
    side_effects=False,
    reads_private=True,  # the names and sizes of the user's files
    untrusted_output=False,
)
def list_files(
    directory: Annotated[str, Field(min_length=1, max_length=1024)] = ".",
    pattern: Annotated[str, Field(min_length=1, max_length=200)] = "*",
    recursive: bool = False,
    max_entries: Annotated[int, Field(ge=1, le=10_000)] = 500,
) -> FileListing:
    """List the files and directories in a workspace directory, sorted by path (tooldag's own
    .tooldag directory is left out).

    Args:
        directory: Relative to the workspace; "." is the workspace itself.
        pattern: A shell-style pattern the names must match, e.g. "*.csv".
        recursive: Also list the contents of subdirectories (symlinked ones are not entered).
        max_entries: The most entries to return.
    """
    root = workspace_root()
    base = _user_path(directory, root)
    if not base.is_dir():
        raise PermanentToolError(
            f"{directory!r} is not a directory in the workspace; list '.' to see what is there"
        )
    found: list[Path] = []
    try:
        # os.walk(followlinks=False) never enters a symlinked directory, so a link pointing out
        # of the workspace cannot expose what lies beyond it.
        for current, dirs, files in os.walk(base, followlinks=False):
            here = Path(current)
            if here == root:
                # In place, so that os.walk does not descend into tooldag's own records either.
                dirs[:] = [d for d in dirs if d != PRIVATE_DIR]
                files = [f for f in files if f != PRIVATE_DIR]
            dirs.sort()
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
