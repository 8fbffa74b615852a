"""Web pack: fetch a page as readable text, search and read Wikipedia.

``http_get`` is the one tool here that goes wherever a plan says, so it guards against being
turned on the machine's own network (SSRF): only http/https, every address the host resolves to
must be public (an IPv4 address carried in IPv6, mapped, 6to4 or NAT64, is judged as that IPv4
address; IPv4-compatible, IPv4-translated and site-local IPv6 are never public), redirects are
followed by hand and re-checked at each hop, and the connection is pinned to the checked
address (Host header and TLS SNI keep the original name), so a DNS answer that changes between
the check and the connect cannot slip through.

Configuration (read at call time):

- ``TOOLDAG_HTTP_TIMEOUT``: seconds per connect/read, default 15 (also used by wikipedia tools);
- ``TOOLDAG_HTTP_MAX_BYTES``: the most of a body ``http_get`` reads, default 2000000;
- ``TOOLDAG_HTTP_ALLOW_PRIVATE``: 1 lets ``http_get`` reach private, loopback and link-local
  addresses (an intranet, a local test server). Default 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, TransientToolError
from tooldag.registry import RetryPolicy, Tool, tool

from ._common import (
    USER_AGENT,
    env_bool,
    env_int,
    fetch_json,
    html_to_text,
    http_timeout,
    raise_for_http_status,
    raise_for_transport_error,
    truncate,
)

__all__ = [
    "HttpPage",
    "WikipediaHit",
    "WikipediaPage",
    "WikipediaSearch",
    "http_get",
    "wikipedia_page",
    "wikipedia_search",
]

_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml+xml")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Network reads are worth a few patient retries: a slow or rate-limited API usually recovers.
_NETWORK_RETRY = RetryPolicy(attempts=3, initial_backoff=1.0, max_backoff=10.0)


def _web_tool(
    egress: bool | list[str], destination: list[str]
) -> Callable[[Callable[..., Any]], Tool]:
    """The web tools' metadata: read-only, and what they return is third-party text;
    ``destination`` the arguments that choose where the request goes (none: always Wikipedia)."""
    return tool(
        category="search",
        side_effects=False,
        idempotent=True,
        timeout=60.0,
        retry=_NETWORK_RETRY,
        reads_private=False,
        egress=egress,
        untrusted_output=True,
        metadata={"destination": destination},
    )


class HttpPage(TypedDict):
    """A fetched page as text."""

    url: Annotated[str, Field(description="The final URL, after redirects")]
    status: int
    content_type: str
    title: Annotated[str | None, Field(description="The HTML <title>, if any")]
    text: Annotated[str, Field(description="Readable text (HTML reduced to its text)")]
    truncated: Annotated[bool, Field(description="True if the body or the text was cut short")]


# --------------------------------------------------------------------------- address checks


# What Python 3.11's is_global misses among IPv6 forms that carry an IPv4 address (the stdlib
# already handles IPv4-mapped ::ffff:0:0/96, 6to4 2002::/16 and, as non-global, Teredo
# 2001::/32): the NAT64 well-known prefix is judged by the IPv4 address it reaches (an
# IPv6-only network's DNS64 answers public sites with it), and these never lead anywhere public.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_NEVER_PUBLIC = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (::7f00:1), deprecated by RFC 4291
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (::ffff:0:7f00:1), RFC 2765
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # NAT64 for local use only, RFC 8215
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 address leads to, else None."""
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.ipv4_mapped or ip.sixtofour


def _is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address tunnelled in IPv6 is judged as the IPv4 address it reaches.
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _is_public(embedded)
        # fec0::/10: site-local, deprecated by RFC 3879 but still routed inside some networks.
        if ip.is_site_local or any(ip in network for network in _NEVER_PUBLIC):
            return False
    return ip.is_global and not ip.is_multicast


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
    except socket.gaierror as exc:
        if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise PermanentToolError(f"no such host {host!r}; check the URL") from None
        raise TransientToolError(f"could not resolve {host!r} ({exc}); try again later") from None
    seen: dict[IPAddress, None] = {}
    for info in infos:
        seen.setdefault(ipaddress.ip_address(str(info[4][0]).split("%")[0]), None)
    return list(seen)


async def _checked_addresses(url: httpx.URL) -> list[IPAddress]:
    if url.scheme not in ("http", "https"):
        raise PermanentToolError(
            f"http_get only fetches http:// and https:// URLs, not {url.scheme or 'no scheme'!r}"
        )
    if not url.host:
        raise PermanentToolError(f"{url} has no host; give a full URL like https://example.com/")
    host = url.raw_host.decode("ascii")
    addresses = await _resolve(host, url.port or (443 if url.scheme == "https" else 80))
    if not addresses:
        raise PermanentToolError(f"{url.host!r} has no address; check the URL")
    if not env_bool("TOOLDAG_HTTP_ALLOW_PRIVATE"):
        blocked = [ip for ip in addresses if not _is_public(ip)]
        if blocked:
            raise PermanentToolError(
                f"refusing {url.host}: it resolves to the non-public address {blocked[0]} "
                "(private, loopback or link-local); set TOOLDAG_HTTP_ALLOW_PRIVATE=1 to allow it"
            )
    return addresses


def _pinned_request(client: httpx.AsyncClient, url: httpx.URL, ip: IPAddress) -> httpx.Request:
    """A GET of ``url`` that connects to ``ip`` while naming the original host to the server."""
    host = url.raw_host.decode("ascii")  # IDNA-encoded: headers and SNI are ASCII
    host_header = f"[{host}]" if ":" in host else host
    if url.port is not None:
        host_header = f"{host_header}:{url.port}"
    extensions: dict[str, Any] = {"sni_hostname": host} if url.scheme == "https" else {}
    return client.build_request(
        "GET",
        url.copy_with(host=str(ip)),
        headers={"Host": host_header},
        extensions=extensions,
    )


# --------------------------------------------------------------------------- http_get


async def _send_pinned(
    client: httpx.AsyncClient, url: httpx.URL, addresses: list[IPAddress]
) -> httpx.Response:
    last: httpx.ConnectError | None = None
    for ip in addresses:
        try:
            return await client.send(_pinned_request(client, url, ip), stream=True)
        except httpx.ConnectError as exc:  # try the host's next address, as a browser would
            last = exc
    assert last is not None
    raise last


def _is_text(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return (
        not media
        or media.startswith(_TEXT_TYPES)
        or media.endswith(("+json", "+xml"))
        or media == "application/javascript"
    )


async def _read_capped(response: httpx.Response, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether there was more."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        room = cap - total
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks), False


@dataclass(frozen=True, slots=True)
class _Hop:
    """One request of http_get: a redirect (``location``) or a text body."""

    status: int
    location: str | None = None
    content_type: str = ""
    body: bytes = b""
    cut: bool = False
    encoding: str = "utf-8"


async def _fetch_once(url: httpx.URL, cap: int, timeout: float) -> _Hop:
    addresses = await _checked_addresses(url)
    # A client per hop: a pooled connection (and its TLS session, verified for one host name)
    # must never carry a request for another host that happens to share the address.
    # trust_env=False: a proxy would connect on our behalf and make the address check meaningless.
    async with httpx.AsyncClient(
        timeout=timeout, trust_env=False, headers={"User-Agent": USER_AGENT}
    ) as client:
        try:
            response = await _send_pinned(client, url, addresses)
        except httpx.HTTPError as exc:
            raise_for_transport_error(exc, url.host, timeout)
        try:
            location = response.headers.get("location")
            if response.status_code in _REDIRECTS and location:
                return _Hop(response.status_code, location=location)
            raise_for_http_status(response, url.host)
            content_type = response.headers.get("content-type", "")
            if not _is_text(content_type):
                raise PermanentToolError(
                    f"{url} is {content_type.split(';')[0]}, not text; http_get only reads "
                    "text and HTML pages"
                )
            try:
                body, cut = await _read_capped(response, cap)
            except httpx.HTTPError as exc:
                raise_for_transport_error(exc, url.host, timeout)
            encoding = response.charset_encoding or "utf-8"
            return _Hop(response.status_code, None, content_type, body, cut, encoding)
        finally:
            await response.aclose()


# The whole URL, query string included, goes to a host the plan chooses.
@_web_tool(egress=["url"], destination=["url"])
async def http_get(
    url: Annotated[str, Field(min_length=1, max_length=4096)],
    max_chars: Annotated[int, Field(ge=100, le=200_000)] = 20_000,
) -> HttpPage:
    """Fetch a web page (http/https) and return its readable text; HTML is reduced to its text.

    Args:
        url: The full URL, e.g. "https://example.com/page".
        max_chars: The most characters of text to return.
    """
    timeout = http_timeout()
    cap = env_int("TOOLDAG_HTTP_MAX_BYTES", 2_000_000, minimum=1024)
    try:
        current = httpx.URL(url.strip())
    except httpx.InvalidURL as exc:
        raise PermanentToolError(f"{url!r} is not a valid URL ({exc})") from None
    for _ in range(_MAX_REDIRECTS + 1):
        hop = await _fetch_once(current, cap, timeout)
        if hop.location is None:
            break
        current = current.join(hop.location)
    else:
        raise PermanentToolError(
            f"{url} redirected more than {_MAX_REDIRECTS} times; give the final URL"
        )
    try:
        raw = hop.body.decode(hop.encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        raw = hop.body.decode("utf-8", errors="replace")
    title: str | None = None
    looks_html = not hop.content_type and "<html" in raw[:1000].lower()
    if "html" in hop.content_type.lower() or looks_html:
        title, raw = html_to_text(raw)
    text, text_cut = truncate(raw, max_chars)
    return HttpPage(
        url=str(current),
        status=hop.status,
        content_type=hop.content_type,
        title=title,
        text=text,
        truncated=hop.cut or text_cut,
    )


# --------------------------------------------------------------------------- Wikipedia

Language = Annotated[
    str,
    Field(
        pattern=r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$|^simple$",
        description='Wikipedia language code, e.g. "en", "de", "simple"',
    ),
]


class WikipediaHit(TypedDict):
    title: str
    url: str
    snippet: Annotated[str, Field(description="Plain-text excerpt around the match")]
    pageid: int
    word_count: int


class WikipediaSearch(TypedDict):
    query: str
    total_hits: int
    results: list[WikipediaHit]


class WikipediaPage(TypedDict):
    title: str
    pageid: int
    url: str
    text: Annotated[str, Field(description='Plain text, sections marked "== Heading =="')]
    truncated: bool
    redirected_from: str | None
    disambiguation: Annotated[
        bool, Field(description="True if this page only lists other pages of the same name")
    ]


def _api(language: str) -> str:
    return f"https://{language}.wikipedia.org/w/api.php"


def _page_url(language: str, title: str) -> str:
    return f"https://{language}.wikipedia.org/wiki/{quote(title.replace(' ', '_'), safe=':/()')}"


async def _wikipedia(language: str, params: dict[str, Any]) -> dict[str, Any]:
    timeout = http_timeout()
    service = f"Wikipedia ({language})"
    async with httpx.AsyncClient(timeout=timeout, headers={"User-Agent": USER_AGENT}) as client:
        data = await fetch_json(
            client, _api(language), {**params, "format": "json", "formatversion": 2}, service
        )
    if not isinstance(data, dict):
        raise TransientToolError(f"{service} sent an unexpected answer; try again later")
    error = data.get("error")
    if isinstance(error, dict):
        code = str(error.get("code", ""))
        info = str(error.get("info", "unknown error"))[:300]
        if code in ("maxlag", "ratelimited", "readonly", "internal_api_error_DBQueryError"):
            raise TransientToolError(f"{service} is busy ({code}: {info}); try again later")
        raise PermanentToolError(f"{service} rejected the request ({code}: {info})")
    query = data.get("query")
    return query if isinstance(query, dict) else {}


@_web_tool(egress=True, destination=[])  # every argument is a parameter of the request to Wikipedia
async def wikipedia_search(
    query: Annotated[str, Field(min_length=1, max_length=300)],
    limit: Annotated[int, Field(ge=1, le=20)] = 5,
    language: Language = "en",
) -> WikipediaSearch:
    """Search Wikipedia articles; returns titles, URLs and snippets. Read one with wikipedia_page.

    Args:
        query: What to search for, e.g. "Ada Lovelace".
        limit: How many results to return.
        language: Wikipedia language code.
    """
    result = await _wikipedia(
        language,
        {"action": "query", "list": "search", "srsearch": query, "srlimit": limit, "utf8": 1},
    )
    hits: list[WikipediaHit] = []
    for item in result.get("search") or []:
        if not isinstance(item, dict) or not isinstance(item.get("title"), str):
            continue
        _, snippet = html_to_text(str(item.get("snippet", "")))
        hits.append(
            WikipediaHit(
                title=item["title"],
                url=_page_url(language, item["title"]),
                snippet=snippet.replace("\n", " "),
                pageid=int(item.get("pageid", 0)),
                word_count=int(item.get("wordcount", 0)),
            )
        )
    info = result.get("searchinfo")
    total = info.get("totalhits") if isinstance(info, dict) else None
    return WikipediaSearch(
        query=query, total_hits=int(total) if isinstance(total, int) else len(hits), results=hits
    )


@_web_tool(egress=["title", "language"], destination=[])  # max_chars only cuts the answer here
async def wikipedia_page(
    title: Annotated[str, Field(min_length=1, max_length=300)],
    language: Language = "en",
    max_chars: Annotated[int, Field(ge=100, le=200_000)] = 20_000,
) -> WikipediaPage:
    """The plain text of a Wikipedia article, by title (redirects are followed).

    Args:
        title: The article title, e.g. "Ada Lovelace" (wikipedia_search finds titles).
        language: Wikipedia language code.
        max_chars: The most characters of text to return.
    """
    result = await _wikipedia(
        language,
        {
            "action": "query",
            "prop": "extracts|info|pageprops",
            "explaintext": 1,
            "inprop": "url",
            "ppprop": "disambiguation",
            "redirects": 1,
            "titles": title,
        },
    )
    pages = result.get("pages")
    page = pages[0] if isinstance(pages, list) and pages and isinstance(pages[0], dict) else None
    if page is None:
        raise TransientToolError(f"Wikipedia ({language}) sent no page for {title!r}; try again")
    if page.get("invalid"):
        reason = page.get("invalidreason", "it is not a valid title")
        raise PermanentToolError(f"{title!r} cannot be a Wikipedia title ({reason}); fix it")
    if page.get("missing"):
        raise PermanentToolError(
            f"Wikipedia ({language}) has no article titled {title!r}; "
            "find the exact title with wikipedia_search"
        )
    redirects = result.get("redirects")
    redirected_from = None
    if isinstance(redirects, list) and redirects and isinstance(redirects[0], dict):
        redirected_from = str(redirects[0].get("from", "")) or None
    page_title = str(page.get("title", title))
    text, cut = truncate(str(page.get("extract") or "").strip(), max_chars)
    props = page.get("pageprops")
    return WikipediaPage(
        title=page_title,
        pageid=int(page.get("pageid", 0)),
        url=str(page.get("fullurl") or _page_url(language, page_title)),
        text=text,
        truncated=cut,
        redirected_from=redirected_from,
        disambiguation=isinstance(props, dict) and "disambiguation" in props,
    )


TOOLS = [http_get, wikipedia_search, wikipedia_page]
