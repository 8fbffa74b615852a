"""Helpers the built-in packs share: environment settings, HTTP error classification, readable
text from HTML and confinement of paths to the workspace.

Private to ``tooldag.packs`` (the leading underscore keeps it out of the pack list). Everything
here raises only :class:`~tooldag.errors.ToolError` subclasses, so a pack's failures are always
classified as transient (worth a retry) or permanent.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
from collections.abc import Iterator, Mapping
from html.parser import HTMLParser
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePath
from typing import Any, NoReturn

import httpx

from tooldag.errors import PermanentToolError, TransientToolError

__all__ = [
    "USER_AGENT",
    "env_bool",
    "env_float",
    "env_int",
    "fetch_json",
    "html_to_text",
    "http_timeout",
    "raise_for_http_status",
    "raise_for_transport_error",
    "truncate",
    "using_workspace",
    "workspace_path",
    "workspace_root",
]


def _package_version() -> str:
    try:
        return version("tooldag")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "0"


# Wikimedia's API policy asks every client to identify itself; Open-Meteo does not mind.
USER_AGENT = f"tooldag/{_package_version()} (+https://pypi.org/project/tooldag/)"

# --------------------------------------------------------------------------- environment

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise PermanentToolError(f"{name}={raw!r} is not a boolean: set it to 1 or 0")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise PermanentToolError(f"{name}={raw!r} must be a number of at least {minimum}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PermanentToolError(f"{name}={raw!r} must be a whole number") from None
    if value < minimum:
        raise PermanentToolError(f"{name}={raw!r} must be at least {minimum}")
    return value


def http_timeout() -> float:
    """Seconds an HTTP tool waits for each connect/read (``TOOLDAG_HTTP_TIMEOUT``, default 15)."""
    return env_float("TOOLDAG_HTTP_TIMEOUT", 15.0, minimum=0.1)


def truncate(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` cut to ``max_chars`` (at a word boundary if one is near), and whether it was cut."""
    if len(text) <= max_chars:
        return text, False
    room = max(0, max_chars - 2)  # the " …" marker counts towards the limit
    cut = text[:room]
    space = cut.rfind(" ", max(0, room - 200))
    if space > 0:
        cut = cut[:space]
    return cut.rstrip() + " …", True


# --------------------------------------------------------------------------- HTTP errors


def raise_for_transport_error(exc: httpx.HTTPError, service: str, timeout: float) -> NoReturn:
    """Re-raise an httpx failure as a classified ToolError (always raises)."""
    if isinstance(exc, httpx.TimeoutException):
        raise TransientToolError(
            f"{service} did not answer within {timeout:g}s; try again later"
        ) from exc
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        raise PermanentToolError(f"{service}: bad URL ({exc}); use an http:// or https:// URL")
    if isinstance(exc, httpx.TransportError):
        raise TransientToolError(
            f"could not reach {service} ({type(exc).__name__}: {exc or 'connection failed'}); "
            "check the network and try again"
        ) from exc
    raise PermanentToolError(f"{service}: request failed ({type(exc).__name__}: {exc})") from exc


def raise_for_http_status(response: httpx.Response, service: str, *, detail: str = "") -> None:
    """Nothing for 2xx; otherwise a ToolError: 408/429/5xx are transient, other 4xx permanent."""
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"{status} {response.reason_phrase}".strip()
    extra = f": {detail}" if detail else ""
    if status == 429:
        wait = response.headers.get("retry-after")
        when = f"after {wait}s" if wait and wait.isdigit() else "later"
        raise TransientToolError(f"{service} is rate limiting requests ({reason}); retry {when}")
    if status == 408 or status >= 500:
        raise TransientToolError(f"{service} failed with {reason}{extra}; try again later")
    if status in (404, 410):
        raise PermanentToolError(f"{service} has nothing at {response.url} ({reason}); check it")
    if 300 <= status < 400:
        raise PermanentToolError(f"{service} answered with an unexpected redirect ({reason})")
    raise PermanentToolError(f"{service} refused the request ({reason}){extra}")


async def fetch_json(
    client: httpx.AsyncClient, url: str, params: Mapping[str, Any], service: str
) -> Any:
    """GET ``url`` and decode its JSON body, with every failure classified.

    A 200 whose body is not JSON is treated as transient: it is what an overloaded CDN or a
    captive portal sends, and a later attempt usually gets the real answer.
    """
    timeout = client.timeout.read or 0.0
    try:
        response = await client.get(url, params=dict(params))
    except httpx.HTTPError as exc:
        raise_for_transport_error(exc, service, timeout)
    detail = ""
    if response.status_code >= 400:
        detail = _error_detail(response)
    raise_for_http_status(response, service, detail=detail)
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TransientToolError(
            f"{service} sent a response that is not JSON ({response.headers.get('content-type')}); "
            "try again later"
        ) from None


def _error_detail(response: httpx.Response) -> str:
    """The API's own words on a 4xx/5xx (Open-Meteo: ``reason``; MediaWiki: ``error.info``)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return ""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    for candidate in (body.get("reason"), error.get("info") if isinstance(error, dict) else None):
        if isinstance(candidate, str):
            return candidate[:300]
    return ""


# --------------------------------------------------------------------------- HTML to text

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "canvas", "iframe", "object"})
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "td", "th",
        "tr", "ul",
    }
)  # fmt: skip
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _BLOCK:
            self.parts.append("\n- " if tag == "li" else "\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in _BLOCK:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title_parts.append(data)
        else:
            self.parts.append(data)


def html_to_text(html: str) -> tuple[str | None, str]:
    """The ``<title>`` (or None) and the readable text of an HTML document.

    Scripts, styles and other non-text elements are dropped; block elements become line breaks.

    >>> html_to_text("<title>T</title><p>Hello <b>world</b></p><script>x()</script><p>Bye</p>")
    ('T', 'Hello world\\nBye')
    """
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).splitlines())
    text = "\n".join(line for line in lines if line and line != "-")
    title = _SPACES.sub(" ", "".join(parser.title_parts)).strip() or None
    return title, text


# --------------------------------------------------------------------------- workspace


# A workspace for the calls made in one context (an asyncio task and what it starts: the
# executor copies the context into the threads of sync tools). ``tooldag eval`` runs goals in
# parallel in one process, each in a temporary workspace of its own, which the process-wide
# environment variable cannot give.
_WORKSPACE: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "tooldag_workspace", default=None
)


@contextlib.contextmanager
def using_workspace(root: Path) -> Iterator[None]:
    """Confine the file and data tools called in this context (and the tasks and tool threads
    it starts) to ``root``, whatever ``TOOLDAG_WORKSPACE`` says."""
    token = _WORKSPACE.set(root)
    try:
        yield
    finally:
        _WORKSPACE.reset(token)


def workspace_root() -> Path:
    """The directory file tools are confined to: the one :func:`using_workspace` set for this
    context, else ``TOOLDAG_WORKSPACE``, else the current one."""
    override = _WORKSPACE.get()
    raw = str(override) if override is not None else os.environ.get("TOOLDAG_WORKSPACE")
    raw = raw or os.getcwd()
    root = Path(raw).expanduser()
    try:
        resolved = root.resolve(strict=True)
    except OSError:
        raise PermanentToolError(
            f"the workspace {raw} does not exist: create it or point TOOLDAG_WORKSPACE elsewhere"
        ) from None
    if not resolved.is_dir():
        raise PermanentToolError(f"the workspace {raw} is not a directory: fix TOOLDAG_WORKSPACE")
    return resolved


def workspace_path(path: str, *, root: Path | None = None) -> Path:
    """``path`` (relative to the workspace) resolved, symlinks followed, and proven to stay inside.

    Absolute paths are refused outright rather than re-rooted: an LLM that writes ``/etc/passwd``
    should learn the rule, not silently get a different file.
    """
    base = root if root is not None else workspace_root()
    if "\x00" in path:
        raise PermanentToolError("the path contains a NUL character; give a plain relative path")
    pure = PurePath(path)
    if pure.is_absolute() or pure.anchor or path.startswith("~"):
        raise PermanentToolError(
            f"{path!r} is an absolute path; give a path relative to the workspace "
            "(list_files shows what is there)"
        )
    resolved = (base / pure).resolve(strict=False)
    if not resolved.is_relative_to(base):
        raise PermanentToolError(
            f"{path!r} leads outside the workspace (through '..' or a symlink); "
            "only paths inside the workspace are allowed"
        )
    return resolved
