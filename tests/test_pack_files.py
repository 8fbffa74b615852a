"""The files pack: confinement to the workspace (traversal, absolute paths, symlink attacks),
reading, writing with an undo, listing."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tooldag.packs.files import PRIVATE_DIR

from packs_fixtures import pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError
from tooldag.execution.executor import Executor
from tooldag.plan.parse import parse_plan
from tooldag.plan.refs import resolve
from tooldag.registry import ToolContext
from tooldag.result import StepStatus

registry = pack_registry("files")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("top secret", encoding="utf-8")
    monkeypatch.setenv("TOOLDAG_WORKSPACE", str(root))
    return root


def compensate(step_args: dict[str, Any], output: dict[str, Any]) -> dict[str, Any]:
    """Run write_file's declared compensation as the executor would: resolve its references
    against the step's own args and output, then call the compensating tool."""
    comp = registry.get("write_file").compensate
    assert comp is not None
    args = resolve(comp.args, {"args": step_args, "output": output})
    result: dict[str, Any] = registry.execute(comp.tool, **args)
    return result


def test_read_file_returns_text_and_size(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("héllo\nworld\n", encoding="utf-8")
    out = registry.execute("read_file", path="notes.txt")
    assert out == {"path": "notes.txt", "content": "héllo\nworld\n", "size": 13, "truncated": False}


def test_read_file_truncates_to_max_chars(workspace: Path) -> None:
    (workspace / "long.txt").write_text("x" * 500, encoding="utf-8")
    out = registry.execute("read_file", path="long.txt", max_chars=100)
    assert out["content"] == "x" * 100 and out["truncated"] is True and out["size"] == 500


@pytest.mark.parametrize(
    "path", ["../secret.txt", "sub/../../secret.txt", "./../secret.txt", "..", "a/b/../../.."]
)
def test_traversal_out_of_the_workspace_is_refused(workspace: Path, path: str) -> None:
    (workspace / "sub").mkdir()
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("read_file", path=path)
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("write_file", path=path, content="pwned")
    assert (workspace.parent / "secret.txt").read_text(encoding="utf-8") == "top secret"


@pytest.mark.parametrize("tool", ["read_file", "write_file", "list_files"])
def test_absolute_paths_are_refused(workspace: Path, tool: str) -> None:
    secret = str(workspace.parent / "secret.txt")
    args: dict[str, Any] = {"content": "pwned"} if tool == "write_file" else {}
    key = "directory" if tool == "list_files" else "path"
    with pytest.raises(PermanentToolError, match="absolute path"):
        registry.execute(tool, **{key: secret}, **args)
    with pytest.raises(PermanentToolError, match="absolute path"):
        registry.execute(tool, **{key: "~/.ssh/id_rsa"}, **args)


def test_a_path_inside_the_workspace_with_dotdot_is_fine(workspace: Path) -> None:
    (workspace / "a").mkdir()
    (workspace / "b.txt").write_text("ok", encoding="utf-8")
    assert registry.execute("read_file", path="a/../b.txt")["content"] == "ok"


def test_a_symlinked_file_leading_out_is_refused(workspace: Path) -> None:
    (workspace / "link.txt").symlink_to(workspace.parent / "secret.txt")
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("read_file", path="link.txt")
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("write_file", path="link.txt", content="pwned")
    assert (workspace.parent / "secret.txt").read_text(encoding="utf-8") == "top secret"


def test_a_symlinked_directory_leading_out_is_refused(workspace: Path) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    (outside / "data.txt").write_text("outside", encoding="utf-8")
    (workspace / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("read_file", path="escape/data.txt")
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("write_file", path="escape/new.txt", content="pwned")
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("list_files", directory="escape")
    assert not (outside / "new.txt").exists()


def test_a_dangling_symlink_pointing_out_cannot_be_written_through(workspace: Path) -> None:
    target = workspace.parent / "created-by-attack.txt"
    (workspace / "dangling").symlink_to(target)
    with pytest.raises(PermanentToolError, match="outside the workspace"):
        registry.execute("write_file", path="dangling", content="pwned")
    assert not target.exists()


def test_a_symlink_inside_the_workspace_is_followed(workspace: Path) -> None:
    (workspace / "real.txt").write_text("real", encoding="utf-8")
    (workspace / "alias.txt").symlink_to(workspace / "real.txt")
    assert registry.execute("read_file", path="alias.txt")["content"] == "real"


def test_the_workspace_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLDAG_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.txt").write_text("here", encoding="utf-8")
    assert registry.execute("read_file", path="here.txt")["content"] == "here"


def test_a_missing_workspace_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_WORKSPACE", str(tmp_path / "nope"))
    with pytest.raises(PermanentToolError, match="TOOLDAG_WORKSPACE"):
        registry.execute("list_files")


def test_reading_a_missing_file_points_to_list_files(workspace: Path) -> None:
    with pytest.raises(PermanentToolError, match="list_files"):
        registry.execute("read_file", path="nothing.txt")


def test_binary_files_are_refused_as_not_text(workspace: Path) -> None:
    (workspace / "blob.bin").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(PermanentToolError, match="not a UTF-8 text file"):
        registry.execute("read_file", path="blob.bin")
    with pytest.raises(PermanentToolError, match="not a UTF-8 text file"):
        registry.execute("write_file", path="blob.bin", content="text")
    assert (workspace / "blob.bin").read_bytes() == b"\xff\xfe\x00\x01"


# --------------------------------------------------------------------------- special files

posix_only = pytest.mark.skipif(
    sys.platform == "win32" or not hasattr(os, "mkfifo"), reason="FIFOs and /dev are POSIX"
)


def raised_within(seconds: float, call: Callable[[], object], fifo: Path) -> BaseException | None:
    """What ``call`` raised (None if it returned), failing the test if it is still running after
    ``seconds``: a tool that opens ``fifo`` blocks until the other end is opened too."""
    done = threading.Event()
    outcome: list[BaseException | None] = [None]

    def target() -> None:
        try:
            call()
        except BaseException as exc:
            outcome[0] = exc
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    if not done.wait(seconds):
        # Opening both ends at once never blocks; it releases the stuck open so the thread ends.
        os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))
        pytest.fail(f"the tool was still blocked on the FIFO {fifo.name} after {seconds}s")
    return outcome[0]


@posix_only
@pytest.mark.parametrize(
    ("tool", "extra"),
    [
        ("read_file", {}),
        ("write_file", {"content": "x"}),
        ("restore_file", {"existed": True, "previous_content": "x"}),
    ],
)
def test_a_fifo_is_refused_at_once_without_being_opened(
    workspace: Path, tool: str, extra: dict[str, Any]
) -> None:
    fifo = workspace / "pipe"
    os.mkfifo(fifo)
    error = raised_within(5.0, lambda: registry.execute(tool, path="pipe", **extra), fifo)
    assert isinstance(error, PermanentToolError)
    assert "'pipe' is a named pipe (FIFO), not a regular file" in str(error)
    assert not (workspace / PRIVATE_DIR).exists()  # refused before write_file kept a stash


@posix_only
def test_read_file_refuses_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    # /dev as the workspace puts a real device inside it without needing mknod. /dev/null
    # (read as an empty file without the check) rather than /dev/zero, which would be read
    # until memory ran out.
    monkeypatch.setenv("TOOLDAG_WORKSPACE", "/dev")
    with pytest.raises(PermanentToolError, match="'null' is a character device"):
        registry.execute("read_file", path="null")


def test_read_file_refuses_a_directory_with_a_clear_error(workspace: Path) -> None:
    (workspace / "sub").mkdir()
    with pytest.raises(PermanentToolError, match="'sub' is a directory, not a regular file"):
        registry.execute("read_file", path="sub")


@posix_only
def test_list_files_lists_a_fifo_as_other(workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    (workspace / "a.txt").write_text("a", encoding="utf-8")
    out = registry.execute("list_files")
    assert out["entries"] == [
        {"path": "a.txt", "type": "file", "size": 1},
        {"path": "pipe", "type": "other", "size": None},
    ]


def test_write_file_creates_a_file_and_its_compensation_removes_it(workspace: Path) -> None:
    args = {"path": "reports/2024/summary.md", "content": "# Summary\n"}
    out = registry.execute("write_file", **args)
    assert out == {
        "path": "reports/2024/summary.md",
        "bytes_written": 10,
        "existed": False,
        "previous_content": None,
        "created_dirs": ["reports", "reports/2024"],
        "repeated": False,
    }
    assert (workspace / "reports/2024/summary.md").read_text(encoding="utf-8") == "# Summary\n"
    assert compensate(args, out) == {"path": "reports/2024/summary.md", "action": "removed"}
    # The directories it made are gone too; only the stash of originals stays (pruned by age).
    assert [p.name for p in workspace.iterdir()] == [PRIVATE_DIR]


def test_write_file_replaces_a_file_and_its_compensation_restores_it(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("original", encoding="utf-8")
    args = {"path": "notes.txt", "content": "replaced"}
    out = registry.execute("write_file", **args)
    assert out["existed"] is True and out["previous_content"] == "original"
    assert (workspace / "notes.txt").read_text(encoding="utf-8") == "replaced"
    assert compensate(args, out)["action"] == "restored"
    assert (workspace / "notes.txt").read_text(encoding="utf-8") == "original"


def test_restore_file_is_safe_to_run_twice(workspace: Path) -> None:
    (workspace / "keep").mkdir()
    (workspace / "keep" / "other.txt").write_text("keep me", encoding="utf-8")
    args = {"path": "keep/new.txt", "content": "new"}
    out = registry.execute("write_file", **args)
    assert compensate(args, out)["action"] == "removed"
    assert compensate(args, out)["action"] == "unchanged"
    assert (workspace / "keep" / "other.txt").read_text(encoding="utf-8") == "keep me"


def test_restore_file_keeps_a_created_directory_that_is_no_longer_empty(workspace: Path) -> None:
    args = {"path": "new/a.txt", "content": "a"}
    out = registry.execute("write_file", **args)
    (workspace / "new" / "b.txt").write_text("written by someone else", encoding="utf-8")
    compensate(args, out)
    assert sorted(p.name for p in (workspace / "new").iterdir()) == ["b.txt"]


# --------------------------------------------------------------------------- re-runs (stash)


def test_a_rerun_with_the_same_key_reports_and_restores_the_true_original(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("original", encoding="utf-8")
    args = {"path": "notes.txt", "content": "new"}
    ctx = ToolContext(run_id="run1", step_id="write")
    first = registry.execute("write_file", **args, ctx=ctx)
    # The process dies before the output is recorded; the resumed run calls the step again.
    second = registry.execute("write_file", **args, ctx=ToolContext("run1", "write", attempt=2))
    assert first["repeated"] is False and second["repeated"] is True
    assert second["existed"] is True and second["previous_content"] == "original"
    assert compensate(args, second)["action"] == "restored"
    assert (workspace / "notes.txt").read_text(encoding="utf-8") == "original"


def test_a_rerun_of_a_write_that_created_the_file_still_removes_it_and_its_dirs(
    workspace: Path,
) -> None:
    args = {"path": "out/deep/new.txt", "content": "x"}
    ctx = ToolContext(run_id="run1", step_id="write")
    registry.execute("write_file", **args, ctx=ctx)
    again = registry.execute("write_file", **args, ctx=ctx)
    assert again["existed"] is False and again["previous_content"] is None
    assert again["created_dirs"] == ["out", "out/deep"]
    assert compensate(args, again)["action"] == "removed"
    assert not (workspace / "out").exists()


def test_another_step_writing_the_same_file_sees_the_first_steps_content(
    workspace: Path,
) -> None:
    (workspace / "notes.txt").write_text("original", encoding="utf-8")
    registry.execute("write_file", path="notes.txt", content="one", ctx=ToolContext("r", "a"))
    out = registry.execute("write_file", path="notes.txt", content="two", ctx=ToolContext("r", "b"))
    assert out["previous_content"] == "one" and out["repeated"] is False


def test_the_same_key_with_other_content_is_a_new_write_not_a_rerun(workspace: Path) -> None:
    # Every direct registry call of write_file shares one key; only a true repeat reuses it.
    (workspace / "notes.txt").write_text("original", encoding="utf-8")
    registry.execute("write_file", path="notes.txt", content="one")
    out = registry.execute("write_file", path="notes.txt", content="two")
    assert out["previous_content"] == "one" and out["repeated"] is False


def test_the_stash_is_hidden_from_list_files_and_refused_to_the_tools(workspace: Path) -> None:
    registry.execute("write_file", path="a.txt", content="a", ctx=ToolContext("r", "s"))
    assert (workspace / PRIVATE_DIR / "stash").is_dir()
    listed = registry.execute("list_files", pattern="*", recursive=True)
    assert [e["path"] for e in listed["entries"]] == ["a.txt"]
    (stashed,) = (workspace / PRIVATE_DIR / "stash").iterdir()
    inside = f"{PRIVATE_DIR}/stash/{stashed.name}"
    for tool, extra in [("read_file", {}), ("write_file", {"content": "forged"})]:
        with pytest.raises(PermanentToolError, match="own records"):
            registry.execute(tool, path=inside, **extra)
    with pytest.raises(PermanentToolError, match="own records"):
        registry.execute("list_files", directory=PRIVATE_DIR)
    (workspace / "alias").symlink_to(workspace / PRIVATE_DIR, target_is_directory=True)
    with pytest.raises(PermanentToolError, match="own records"):
        registry.execute("read_file", path=f"alias/stash/{stashed.name}")


def test_stash_entries_older_than_a_week_are_pruned(workspace: Path) -> None:
    registry.execute("write_file", path="old.txt", content="a", ctx=ToolContext("r", "old"))
    (old,) = (workspace / PRIVATE_DIR / "stash").iterdir()
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(old, (eight_days_ago, eight_days_ago))
    registry.execute("write_file", path="new.txt", content="b", ctx=ToolContext("r", "new"))
    remaining = list((workspace / PRIVATE_DIR / "stash").iterdir())
    assert len(remaining) == 1 and remaining[0] != old


def test_write_file_metadata_declares_side_effects_and_its_undo() -> None:
    write = registry.get("write_file")
    assert write.side_effects is True and write.compensate is not None
    assert write.compensate.tool == "restore_file" and "restore_file" in registry
    assert registry.get("restore_file").metadata.get("compensation_only") is True


def test_write_file_refuses_a_directory_target(workspace: Path) -> None:
    (workspace / "dir").mkdir()
    with pytest.raises(PermanentToolError, match="directory"):
        registry.execute("write_file", path="dir", content="x")


def test_list_files_lists_sorted_entries_with_types_and_sizes(workspace: Path) -> None:
    (workspace / "b.csv").write_text("1,2\n", encoding="utf-8")
    (workspace / "a.txt").write_text("a", encoding="utf-8")
    (workspace / "sub").mkdir()
    (workspace / "sub" / "c.csv").write_text("3", encoding="utf-8")
    out = registry.execute("list_files")
    assert out == {
        "directory": ".",
        "entries": [
            {"path": "a.txt", "type": "file", "size": 1},
            {"path": "b.csv", "type": "file", "size": 4},
            {"path": "sub", "type": "dir", "size": None},
        ],
        "truncated": False,
    }
    deep = registry.execute("list_files", pattern="*.csv", recursive=True)
    assert [e["path"] for e in deep["entries"]] == ["b.csv", "sub/c.csv"]


def test_list_files_does_not_enter_a_symlinked_directory_leading_out(workspace: Path) -> None:
    outside = workspace.parent / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("private", encoding="utf-8")
    (workspace / "escape").symlink_to(outside, target_is_directory=True)
    out = registry.execute("list_files", recursive=True)
    assert out["entries"] == [{"path": "escape", "type": "symlink", "size": None}]


def test_list_files_caps_the_number_of_entries(workspace: Path) -> None:
    for i in range(5):
        (workspace / f"f{i}.txt").write_text("", encoding="utf-8")
    out = registry.execute("list_files", max_entries=3)
    assert [e["path"] for e in out["entries"]] == ["f0.txt", "f1.txt", "f2.txt"]
    assert out["truncated"] is True


def test_bad_arguments_are_refused_by_the_schema(workspace: Path) -> None:
    with pytest.raises(ToolArgumentError, match="path"):
        registry.execute("read_file", path="")
    with pytest.raises(ToolArgumentError, match="max_entries"):
        registry.execute("list_files", max_entries=0)


async def test_an_abandoned_run_puts_back_what_write_file_replaced(workspace: Path) -> None:
    (workspace / "notes.txt").write_text("original", encoding="utf-8")
    plan = parse_plan(
        {
            "goal": "overwrite notes, then fail",
            "steps": [
                {
                    "id": "write",
                    "tool": "write_file",
                    "args": {"path": "notes.txt", "content": "new"},
                },
                {
                    "id": "fresh",
                    "tool": "write_file",
                    "args": {"path": "out/new.txt", "content": "x"},
                },
                {
                    "id": "boom",
                    "tool": "read_file",
                    "args": {"path": "missing.txt"},
                    "depends_on": ["write", "fresh"],
                },
            ],
        }
    )
    result = await Executor(registry).run(plan)
    assert result.steps["boom"].status is StepStatus.FAILED
    assert result.steps["write"].status is StepStatus.COMPENSATED
    assert result.steps["fresh"].status is StepStatus.COMPENSATED
    assert (workspace / "notes.txt").read_text(encoding="utf-8") == "original"
    assert not (workspace / "out").exists()
