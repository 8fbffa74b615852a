"""What tooldag has learnt about each endpoint, kept across processes: the output mode ``auto``
found to work, whether the configured model is listed by ``/v1/models``, and the server's context
window when it could be known (from ``tooldag doctor``, ``/v1/models`` or a context-length error).

One small JSON file, ``$TOOLDAG_HOME/endpoints.json`` (else in the user data directory), written
atomically and readable by its owner alone. An endpoint is keyed by its *redacted* base URL and
the model name (:func:`endpoint_key`): no key or password is ever written. It is a cache: a lost or
unreadable file only costs a probe again, and ``tooldag doctor`` rewrites an endpoint's entry.

>>> key = endpoint_key("http://me:sk-1@localhost:8080/v1", "qwen")
>>> key
'http://***@localhost:8080/v1 qwen'
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import platformdirs

from .._files import write_private

__all__ = [
    "EndpointMemory",
    "MAX_ENDPOINTS",
    "endpoint_key",
    "is_local_url",
    "memory_path",
    "redact_url",
]

log = logging.getLogger("tooldag.llm")

# The fake server of tests and `tooldag demo` is a new endpoint (a new port) on every start: keep
# the most recently used entries only, so the file cannot grow without bound.
MAX_ENDPOINTS = 64
_FORMAT = 1
# Query parameters that carry credentials on some gateways (``?api-key=...``, ``?token=...``).
_SECRET_PARAMS = ("key", "token", "secret", "password", "auth", "sig")


def redact_url(url: str) -> str:
    """``url`` fit to show: a user name and password (``http://user:KEY@host/v1``, which httpx
    sends as Basic auth) and credential-like query values become ``***``.

    >>> redact_url("http://me:sk-123@localhost:8080/v1?api-key=abc&v=1")
    'http://***@localhost:8080/v1?api-key=***&v=1'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    if not parts.netloc and "@" in url:  # no scheme: whatever stands before "@" may be a key
        return "***@" + url.rpartition("@")[2]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, "***" if any(s in k.lower() for s in _SECRET_PARAMS) else v) for k, v in pairs],
            safe="*",
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def memory_path() -> Path:
    """``$TOOLDAG_HOME/endpoints.json``, else ``endpoints.json`` in the user's data directory."""
    home = os.environ.get("TOOLDAG_HOME")
    base = Path(home).expanduser() if home else Path(platformdirs.user_data_dir("tooldag"))
    return base / "endpoints.json"


def endpoint_key(base_url: str, model: str) -> str:
    """The memory key of an endpoint: its base URL with credentials redacted, and the model."""
    return f"{redact_url(base_url.rstrip('/'))} {model}"


def is_local_url(url: str) -> bool:
    """True for a loopback or private-network host (``localhost``, ``127.0.0.1``, ``::1``,
    ``10/8``, ``172.16/12``, ``192.168/16``, ``*.local``): a server of one's own, likely slow
    (a CPU) and grammar-based (llama.cpp, Ollama, vLLM), rather than a hosted API."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if host in ("localhost", "host.docker.internal") or host.endswith((".localhost", ".local")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


# Entries this process could not write (a read-only home): still remembered for the process.
_UNSAVED: dict[tuple[str, str], dict[str, Any]] = {}


class EndpointMemory:
    """Read and update the endpoint memory file (``path``: default :func:`memory_path`, looked
    up at each use so that a changed ``TOOLDAG_HOME`` takes effect)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path if self._path is not None else memory_path()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.debug("ignoring the unreadable endpoint memory %s: %s", self.path, exc)
            return {}
        endpoints = data.get("endpoints") if isinstance(data, dict) else None
        if not isinstance(endpoints, dict):
            return {}
        return {k: v for k, v in endpoints.items() if isinstance(v, dict)}

    def get(self, key: str) -> dict[str, Any]:
        """What is known of endpoint ``key`` (an empty dict when nothing is)."""
        entry = dict(self._read().get(key, {}))
        entry.update(_UNSAVED.get((str(self.path), key), {}))
        return entry

    def update(self, key: str, **fields: Any) -> None:
        """Merge ``fields`` into the entry of ``key`` (a value of ``None`` removes that field)."""
        path = self.path
        endpoints = self._read()
        entry = {**endpoints.pop(key, {}), **_UNSAVED.get((str(path), key), {})}
        for name, value in fields.items():
            if value is None:
                entry.pop(name, None)
            else:
                entry[name] = value
        entry["updated"] = round(time.time(), 3)
        endpoints[key] = entry  # last: the most recently used entry is the newest in the file
        while len(endpoints) > MAX_ENDPOINTS:
            oldest = min(endpoints, key=lambda k: float(endpoints[k].get("updated", 0)))
            del endpoints[oldest]
        text = json.dumps({"format": _FORMAT, "endpoints": endpoints}, indent=1, sort_keys=True)
        try:
            write_private(path, text + "\n")
        except OSError as exc:
            log.debug("cannot write the endpoint memory %s: %s", path, exc)
            _UNSAVED[(str(path), key)] = entry
        else:
            _UNSAVED.pop((str(path), key), None)

    def forget(self, key: str) -> None:
        """Drop what is known of endpoint ``key``."""
        path = self.path
        _UNSAVED.pop((str(path), key), None)
        endpoints = self._read()
        if endpoints.pop(key, None) is None:
            return
        text = json.dumps({"format": _FORMAT, "endpoints": endpoints}, indent=1, sort_keys=True)
        try:
            write_private(path, text + "\n")
        except OSError as exc:
            log.debug("cannot write the endpoint memory %s: %s", path, exc)
