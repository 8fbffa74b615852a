"""Which MCP servers a SPEC names, and the names their tools get: no server is started here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tooldag.errors import ConfigError
from tooldag.mcp.config import ServerConfig, is_mcp_config, servers_of
from tooldag.mcp.names import MAX_NAME, server_prefix, tool_name
from tooldag.registry import Tool


def _config(tmp_path: Path, servers: object, name: str = "mcp.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"mcpServers": servers}))
    return str(path)


# -- mcp: specs


def test_a_stdio_spec_is_split_like_a_shell_command_line() -> None:
    (server,) = servers_of("mcp:stdio:uvx mcp-server-git --repository '/my repo'")
    assert (server.command, server.args) == ("uvx", ("mcp-server-git", "--repository", "/my repo"))
    assert server.name == "mcp-server-git" and server.prefix == "git"


@pytest.mark.parametrize(
    ("spec", "prefix"),
    [
        ("mcp:stdio:python -m mcp_server_time --local-timezone UTC", "time"),
        ("mcp:stdio:npx -y @modelcontextprotocol/server-filesystem /tmp", "filesystem"),
        ("mcp:stdio:node build/weather-server.js", "weather"),
        ("mcp:stdio:/opt/bin/github-mcp-server stdio", "github"),
        ("mcp:stdio:python -c 'print(1)'", "python"),
        ("mcp:http://127.0.0.1:8765/mcp", "local_8765"),
        ("mcp:https://api.example.com/mcp", "example"),
        ("mcp:clock=stdio:python -m mcp_server_time", "clock"),
        ("mcp:docs=https://mcp.example.com/mcp", "docs"),
    ],
)
def test_a_spec_names_its_server_for_the_tool_prefix(spec: str, prefix: str) -> None:
    (server,) = servers_of(spec)
    assert server.prefix == prefix


def test_python_is_the_python_that_runs_tooldag() -> None:
    # So that a server installed beside tooldag is found with or without its venv active.
    (server,) = servers_of("mcp:stdio:python -m mcp_server_time")
    assert server.command == sys.executable
    (other,) = servers_of("mcp:stdio:/usr/bin/python3.11 -m mcp_server_time")
    assert other.command == "/usr/bin/python3.11"


def test_an_http_spec_is_a_streamable_http_server() -> None:
    (server,) = servers_of("mcp:http://127.0.0.1:8765/mcp")
    assert server.url == "http://127.0.0.1:8765/mcp" and server.command is None


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("mcp:", "mcp:stdio:COMMAND"),
        ("mcp:stdio:", "no command after 'stdio:'"),
        ("mcp:stdio:python -m 'unclosed", "cannot split the command line"),
        ("mcp:sse://host/sse", "mcp:http://127.0.0.1:PORT/mcp"),
    ],
)
def test_a_bad_spec_says_what_a_good_one_looks_like(spec: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        servers_of(spec)


# -- host config files


def test_a_host_config_names_stdio_and_http_servers(tmp_path: Path) -> None:
    spec = _config(
        tmp_path,
        {
            "git": {"command": "uvx", "args": ["mcp-server-git"], "env": {"GIT_DIR": "/r"}},
            "docs": {"type": "http", "url": "https://docs.example/mcp", "headers": {"X-K": "1"}},
            "off": {"command": "never", "disabled": True},
            "slow": {"command": "slow-server", "timeout": 2.5, "cwd": "/srv"},
        },
    )
    git, docs, slow = servers_of(spec)
    assert (git.name, git.command, git.args, dict(git.env or {})) == (
        "git",
        "uvx",
        ("mcp-server-git",),
        {"GIT_DIR": "/r"},
    )
    assert (docs.url, dict(docs.headers or {})) == ("https://docs.example/mcp", {"X-K": "1"})
    assert (slow.timeout, slow.cwd) == (2.5, "/srv")


def test_a_config_reads_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GH_TOKEN", "s3cret")
    monkeypatch.delenv("GH_HOST", raising=False)
    spec = _config(
        tmp_path,
        {
            "gh": {
                "url": "https://${GH_HOST:-api.example}/mcp",
                "headers": {"Authorization": "Bearer ${GH_TOKEN}"},
            }
        },
    )
    (server,) = servers_of(spec)
    assert server.url == "https://api.example/mcp"
    assert dict(server.headers or {}) == {"Authorization": "Bearer s3cret"}
    # Where a server is, in messages, never shows its headers or environment.
    assert "s3cret" not in server.describe() and "s3cret" not in repr(servers_of(spec)[0].name)


def test_an_unset_variable_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    spec = _config(tmp_path, {"x": {"command": "srv", "env": {"K": "${NOT_SET_ANYWHERE}"}}})
    with pytest.raises(ConfigError, match=r"mcpServers\.x\.env\.K reads \$\{NOT_SET_ANYWHERE\}"):
        servers_of(spec)


@pytest.mark.parametrize(
    ("servers", "says"),
    [
        ({"x": {"url": "http://h/sse", "type": "sse"}}, "SSE transport is not supported"),
        ({"x": {"command": "a", "url": "http://h/mcp"}}, "a command or a url, not both"),
        ({"x": {"command": "a", "autoApprove": []}}, "unknown key"),
        ({"x": {"args": ["a"]}}, 'a server is {"command"'),
        ({"x": {"url": "ftp://h"}}, "http:// or https://"),
        ({"x": {"command": "a", "args": "b"}}, "args must be a list"),
        ({"x": {"command": "a", "timeout": "5"}}, "timeout must be a number"),
        ({"x": {"command": "a", "disabled": True}}, "no enabled server"),
        ({"my.git": {"command": "a"}, "my_git": {"command": "b"}}, "would both prefix"),
    ],
)
def test_a_bad_config_entry_is_one_clear_error(tmp_path: Path, servers: object, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        servers_of(_config(tmp_path, servers))


def test_a_config_file_is_told_from_a_tools_file_by_its_content(tmp_path: Path) -> None:
    assert is_mcp_config(Path(_config(tmp_path, {"x": {"command": "a"}})))
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "t", "description": "d"}]))
    assert not is_mcp_config(tools)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert not is_mcp_config(broken) and not is_mcp_config(tmp_path / "missing.json")


def test_a_server_needs_exactly_one_way_to_reach_it() -> None:
    with pytest.raises(ConfigError, match="give a command"):
        ServerConfig("x")
    with pytest.raises(ConfigError, match="timeout must be a positive"):
        ServerConfig("x", command="a", timeout=0)


# -- names


@pytest.mark.parametrize(
    ("prefix", "original", "expected"),
    [
        ("git", "status", "git__status"),
        ("fs", "read.file", "fs__read_file"),
        ("fs", "repo/search", "fs__repo_search"),
        ("fs", "naïve name", "fs__na_ve_name"),
        ("fs", "9lives", "fs__9lives"),
    ],
)
def test_mcp_tool_names_become_openai_function_names(
    prefix: str, original: str, expected: str
) -> None:
    assert tool_name(prefix, original) == expected


def test_long_and_clashing_names_are_cut_and_told_apart_stably() -> None:
    long = "x" * 100
    name = tool_name("server", long)
    assert len(name) == MAX_NAME and name == tool_name("server", long)
    assert tool_name("server", long + "y") != name
    first = tool_name("fs", "read.file")
    second = tool_name("fs", "read/file", taken={first})
    assert second != first and second.startswith("fs__read_file_")


@pytest.mark.parametrize(
    "original", ["a.b", "a/b/c", "-x", "x" * 200, "名前", "", "   ", "__init__"]
)
def test_every_mapped_name_is_a_valid_tool_name(original: str) -> None:
    for prefix in (server_prefix("mcp_server_time"), server_prefix("9-server"), "_"):
        name = tool_name(prefix, original)
        Tool(name=name, description="", parameters={})  # raises on an invalid name


def test_server_prefixes_drop_the_packaging_words() -> None:
    assert server_prefix("mcp-server-fetch") == "fetch"
    assert server_prefix("@modelcontextprotocol/server-git") == "git"
    assert server_prefix("weather_mcp") == "weather"
    assert server_prefix("git") == "git"
    assert len(server_prefix("a" * 80)) <= 24
