"""The web pack with respx (no test reaches the network): http_get's SSRF guard, size cap,
HTML to text and error classes; Wikipedia search and pages with realistic API bodies."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from packs_fixtures import fake_dns, pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError, TransientToolError

registry = pack_registry("web")

PUBLIC = "93.184.215.14"
PUBLIC_2 = "93.184.215.15"
NAT64_PUBLIC = "64:ff9b::5db8:d70e"  # PUBLIC through the NAT64 well-known prefix

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Example Domain</title>
<style>body { color: red }</style><script>var tracking = "ignore me";</script></head>
<body><div><h1>Example Domain</h1>
<p>This domain is for use in illustrative examples in documents.&nbsp;You may use it.</p>
<ul><li>First &amp; foremost</li><li>Second</li></ul>
<noscript>Enable JavaScript</noscript>
<p><a href="https://www.iana.org/domains/example">More information...</a></p></div></body></html>
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TOOLDAG_HTTP_ALLOW_PRIVATE", "TOOLDAG_HTTP_MAX_BYTES", "TOOLDAG_HTTP_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return fake_dns(
        monkeypatch,
        {
            "example.com": [PUBLIC],
            "xn--bcher-kva.example": [PUBLIC],
            "dual.example.com": [PUBLIC, PUBLIC_2],
            "internal.example.com": ["10.1.2.3"],
            "sneaky.example.com": [PUBLIC, "127.0.0.1"],
            "localhost": ["127.0.0.1", "::1"],
            # IPv6 answers that carry a private IPv4 address, or are site-local.
            "nat64-metadata.example.com": ["64:ff9b::a9fe:a9fe"],
            "compatible.example.com": ["::7f00:1"],
            "translated.example.com": ["::ffff:0:a00:1"],
            "site-local.example.com": ["fec0::1"],
            "nat64-public.example.com": [NAT64_PUBLIC],
        },
    )


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    # assert_all_mocked: a request nobody routed fails the test instead of leaving the machine.
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


# --------------------------------------------------------------------------- http_get


async def test_http_get_returns_readable_text_of_html(
    dns: list[str], router: respx.MockRouter
) -> None:
    router.get(f"https://{PUBLIC}/").respond(
        200, text=PAGE, headers={"content-type": "text/html; charset=UTF-8"}
    )
    out = await registry.aexecute("http_get", url="https://example.com/")
    assert out["title"] == "Example Domain"
    assert out["text"] == (
        "Example Domain\n"
        "This domain is for use in illustrative examples in documents. You may use it.\n"
        "- First & foremost\n- Second\nMore information..."
    )
    assert out["url"] == "https://example.com/" and out["status"] == 200
    assert out["truncated"] is False


async def test_http_get_connects_to_the_checked_address_under_the_original_name(
    dns: list[str], router: respx.MockRouter
) -> None:
    route = router.get(f"https://{PUBLIC}:8443/a?b=1").respond(200, text="ok")
    await registry.aexecute("http_get", url="https://example.com:8443/a?b=1")
    request = route.calls.last.request
    assert request.headers["host"] == "example.com:8443"
    assert request.extensions["sni_hostname"] == "example.com"
    assert dns == ["example.com"]


async def test_an_international_domain_name_is_sent_in_its_ascii_form(
    dns: list[str], router: respx.MockRouter
) -> None:
    route = router.get(f"https://{PUBLIC}/").respond(200, text="ok")
    await registry.aexecute("http_get", url="https://bücher.example/")
    request = route.calls.last.request
    assert request.headers["host"] == "xn--bcher-kva.example"
    assert request.extensions["sni_hostname"] == "xn--bcher-kva.example"


async def test_http_get_tries_the_next_address_when_one_refuses(
    dns: list[str], router: respx.MockRouter
) -> None:
    router.get(f"http://{PUBLIC}/").mock(side_effect=httpx.ConnectError("refused"))
    router.get(f"http://{PUBLIC_2}/").respond(200, text="second address")
    out = await registry.aexecute("http_get", url="http://dual.example.com/")
    assert out["text"] == "second address"


async def test_http_get_returns_plain_text_and_json_as_is(
    dns: list[str], router: respx.MockRouter
) -> None:
    router.get(f"https://{PUBLIC}/data.json").respond(200, json={"temp": 18, "city": "Paris"})
    router.get(f"https://{PUBLIC}/notes.txt").respond(200, text="<b>not html</b>")
    out = await registry.aexecute("http_get", url="https://example.com/data.json")
    assert out["text"] == '{"temp":18,"city":"Paris"}' and out["title"] is None
    out = await registry.aexecute("http_get", url="https://example.com/notes.txt")
    assert out["text"] == "<b>not html</b>"


async def test_http_get_caps_the_body_and_the_text(
    dns: list[str], router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_HTTP_MAX_BYTES", "2048")
    router.get(f"https://{PUBLIC}/big").respond(200, text="word " * 10_000)
    out = await registry.aexecute("http_get", url="https://example.com/big")
    assert out["truncated"] is True and len(out["text"]) <= 2048
    out = await registry.aexecute("http_get", url="https://example.com/big", max_chars=100)
    assert out["truncated"] is True and len(out["text"]) <= 100


async def test_http_get_survives_garbage_bytes(dns: list[str], router: respx.MockRouter) -> None:
    router.get(f"https://{PUBLIC}/").respond(
        200, content=b"<p>caf\xe9 \xff\xfe<<<</p><div", headers={"content-type": "text/html"}
    )
    out = await registry.aexecute("http_get", url="https://example.com/")
    assert out["text"].startswith("caf")


async def test_http_get_refuses_binary_content(dns: list[str], router: respx.MockRouter) -> None:
    router.get(f"https://{PUBLIC}/logo.png").respond(
        200, content=b"\x89PNG\r\n", headers={"content-type": "image/png"}
    )
    with pytest.raises(PermanentToolError, match="image/png, not text"):
        await registry.aexecute("http_get", url="https://example.com/logo.png")


@pytest.mark.parametrize(
    ("status", "headers", "error", "message"),
    [
        (404, {}, PermanentToolError, "404 Not Found"),
        (410, {}, PermanentToolError, "410 Gone"),
        (403, {}, PermanentToolError, "refused the request"),
        (500, {}, TransientToolError, "500 Internal Server Error; try again later"),
        (503, {}, TransientToolError, "503"),
        (429, {"retry-after": "7"}, TransientToolError, "retry after 7s"),
        (408, {}, TransientToolError, "408"),
    ],
)
async def test_http_get_classifies_error_statuses(
    dns: list[str],
    router: respx.MockRouter,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    router.get(f"https://{PUBLIC}/x").respond(status, text="<h1>error</h1>", headers=headers)
    with pytest.raises(error, match=message):
        await registry.aexecute("http_get", url="https://example.com/x")


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.ConnectError("down")]
)
async def test_http_get_timeouts_and_connection_errors_are_transient(
    dns: list[str], router: respx.MockRouter, exc: Exception
) -> None:
    router.get(f"https://{PUBLIC}/").mock(side_effect=exc)
    with pytest.raises(TransientToolError, match="try again"):
        await registry.aexecute("http_get", url="https://example.com/")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8080/admin",
        "http://localhost:8000/",
        "http://10.0.0.5/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://internal.example.com/",
        "http://sneaky.example.com/",
    ],
)
async def test_http_get_refuses_private_loopback_and_link_local_addresses(
    dns: list[str], router: respx.MockRouter, url: str
) -> None:
    catch_all = router.route().respond(200, text="internal secrets")
    with pytest.raises(PermanentToolError, match="TOOLDAG_HTTP_ALLOW_PRIVATE=1"):
        await registry.aexecute("http_get", url=url)
    assert not catch_all.called


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://[::7f00:1]/", "::7f00:1"),  # IPv4-compatible 127.0.0.1
        ("http://[::a00:1]/", "::a00:1"),  # IPv4-compatible 10.0.0.1
        ("http://[::808:808]/", "::808:808"),  # IPv4-compatible: deprecated, never public
        ("http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),  # NAT64 of 127.0.0.1
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", "64:ff9b::a9fe:a9fe"),  # 169.254.169.254
        ("http://[64:ff9b:1::808:808]/", "64:ff9b:1::808:808"),  # local-use NAT64 prefix
        ("http://[::ffff:0:7f00:1]/", "::ffff:0:7f00:1"),  # IPv4-translated 127.0.0.1
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),  # IPv4-mapped
        ("http://[2002:7f00:1::1]/", "2002:7f00:1::1"),  # 6to4 of 127.0.0.1
        ("http://[fec0::1]/", "fec0::1"),  # site-local
        ("http://[feff::1]/", "feff::1"),  # site-local, the top of fec0::/10
        ("http://nat64-metadata.example.com/", "64:ff9b::a9fe:a9fe"),
        ("http://compatible.example.com/", "::7f00:1"),
        ("http://translated.example.com/", "::ffff:0:a00:1"),
        ("http://site-local.example.com/", "fec0::1"),
    ],
)
async def test_http_get_refuses_ipv4_carried_in_ipv6_and_site_local_addresses(
    dns: list[str], router: respx.MockRouter, url: str, address: str
) -> None:
    catch_all = router.route().respond(200, text="internal secrets")
    with pytest.raises(PermanentToolError, match="TOOLDAG_HTTP_ALLOW_PRIVATE=1") as caught:
        await registry.aexecute("http_get", url=url)
    assert f"non-public address {address} " in str(caught.value)
    assert not catch_all.called


async def test_nat64_of_a_public_address_is_allowed(
    dns: list[str], router: respx.MockRouter
) -> None:
    # What an IPv6-only network's DNS64 answers for every IPv4-only site: it must keep working.
    route = router.get(f"http://[{NAT64_PUBLIC}]/").respond(200, text="ok")
    out = await registry.aexecute("http_get", url="http://nat64-public.example.com/")
    assert out["text"] == "ok" and route.called
    assert route.calls.last.request.headers["host"] == "nat64-public.example.com"


async def test_private_addresses_are_allowed_when_configured(
    dns: list[str], router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_HTTP_ALLOW_PRIVATE", "1")
    router.get("http://127.0.0.1:8000/health").respond(200, text="ok")
    out = await registry.aexecute("http_get", url="http://localhost:8000/health")
    assert out["text"] == "ok"


async def test_a_redirect_to_a_private_address_is_refused(
    dns: list[str], router: respx.MockRouter
) -> None:
    router.get(f"https://{PUBLIC}/go").respond(
        302, headers={"location": "http://169.254.169.254/latest/meta-data/iam"}
    )
    metadata = router.get("http://169.254.169.254/latest/meta-data/iam").respond(200, text="keys")
    with pytest.raises(PermanentToolError, match=r"169\.254\.169\.254"):
        await registry.aexecute("http_get", url="https://example.com/go")
    assert not metadata.called


async def test_redirects_are_followed_and_the_final_url_reported(
    dns: list[str], router: respx.MockRouter
) -> None:
    router.get(f"http://{PUBLIC}/old").respond(301, headers={"location": "https://example.com/new"})
    router.get(f"https://{PUBLIC}/new").respond(200, text="moved here")
    out = await registry.aexecute("http_get", url="http://example.com/old")
    assert out["url"] == "https://example.com/new" and out["text"] == "moved here"


async def test_a_redirect_loop_is_stopped(dns: list[str], router: respx.MockRouter) -> None:
    loop = router.get(f"https://{PUBLIC}/loop").respond(302, headers={"location": "/loop"})
    with pytest.raises(PermanentToolError, match="redirected more than 5 times"):
        await registry.aexecute("http_get", url="https://example.com/loop")
    assert loop.call_count == 6


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "only fetches http:// and https://"),
        ("ftp://example.com/file", "only fetches http:// and https://"),
        ("gopher://example.com/", "only fetches http:// and https://"),
        ("example.com/page", "http:// and https://"),
        ("http:///nohost", "no host"),
        ("http://nosuchhost.invalid/", "no such host"),
    ],
)
async def test_http_get_refuses_other_schemes_and_bad_urls(
    dns: list[str], router: respx.MockRouter, url: str, message: str
) -> None:
    with pytest.raises(PermanentToolError, match=message):
        await registry.aexecute("http_get", url=url)


# --------------------------------------------------------------------------- Wikipedia

API = "https://en.wikipedia.org/w/api.php"

SEARCH_BODY = {
    "batchcomplete": True,
    "continue": {"sroffset": 2, "continue": "-||"},
    "query": {
        "searchinfo": {"totalhits": 1203},
        "search": [
            {
                "ns": 0,
                "title": "Ada Lovelace",
                "pageid": 974,
                "size": 81022,
                "wordcount": 8940,
                "snippet": 'Augusta <span class="searchmatch">Ada</span> King, Countess of '
                '<span class="searchmatch">Lovelace</span> (née Byron; 10 December 1815 &ndash;',
                "timestamp": "2024-11-20T10:12:44Z",
            },
            {
                "ns": 0,
                "title": "Ada (programming language)",
                "pageid": 1242,
                "size": 62000,
                "wordcount": 6100,
                "snippet": '<span class="searchmatch">Ada</span> is a structured language',
                "timestamp": "2024-11-02T08:00:00Z",
            },
        ],
    },
}

PAGE_BODY = {
    "batchcomplete": True,
    "query": {
        "normalized": [{"fromencoded": False, "from": "ada lovelace", "to": "Ada lovelace"}],
        "redirects": [{"from": "Ada lovelace", "to": "Ada Lovelace"}],
        "pages": [
            {
                "pageid": 974,
                "ns": 0,
                "title": "Ada Lovelace",
                "contentmodel": "wikitext",
                "pagelanguage": "en",
                "fullurl": "https://en.wikipedia.org/wiki/Ada_Lovelace",
                "extract": "Augusta Ada King, Countess of Lovelace (née Byron; 10 December 1815 "
                "\u2013 27 November 1852) was an English mathematician and writer.\n\n\n"
                "== Biography ==\n\n\n=== Childhood ===\nLord Byron expected a boy.",
            }
        ],
    },
}


async def test_wikipedia_search_returns_titles_urls_and_plain_snippets(
    router: respx.MockRouter,
) -> None:
    route = router.get(API).respond(200, json=SEARCH_BODY)
    out = await registry.aexecute("wikipedia_search", query="Ada Lovelace", limit=2)
    assert out["total_hits"] == 1203
    assert out["results"][0] == {
        "title": "Ada Lovelace",
        "url": "https://en.wikipedia.org/wiki/Ada_Lovelace",
        "snippet": "Augusta Ada King, Countess of Lovelace (née Byron; 10 December 1815 \u2013",
        "pageid": 974,
        "word_count": 8940,
    }
    assert out["results"][1]["url"] == "https://en.wikipedia.org/wiki/Ada_(programming_language)"
    params = route.calls.last.request.url.params
    assert params["srsearch"] == "Ada Lovelace" and params["srlimit"] == "2"
    assert route.calls.last.request.headers["user-agent"].startswith("tooldag/")


async def test_wikipedia_search_with_no_hits_is_an_empty_list(router: respx.MockRouter) -> None:
    router.get(API).respond(
        200, json={"batchcomplete": True, "query": {"searchinfo": {"totalhits": 0}, "search": []}}
    )
    out = await registry.aexecute("wikipedia_search", query="qwxzjv")
    assert out == {"query": "qwxzjv", "total_hits": 0, "results": []}


async def test_wikipedia_page_follows_redirects_and_returns_plain_text(
    router: respx.MockRouter,
) -> None:
    route = router.get(API).respond(200, json=PAGE_BODY)
    out = await registry.aexecute("wikipedia_page", title="ada lovelace")
    assert out["title"] == "Ada Lovelace" and out["pageid"] == 974
    assert out["redirected_from"] == "Ada lovelace"
    assert out["url"] == "https://en.wikipedia.org/wiki/Ada_Lovelace"
    assert out["text"].startswith("Augusta Ada King") and "== Biography ==" in out["text"]
    assert out["disambiguation"] is False and out["truncated"] is False
    params = route.calls.last.request.url.params
    assert params["titles"] == "ada lovelace" and params["redirects"] == "1"


async def test_wikipedia_page_in_another_language(router: respx.MockRouter) -> None:
    route = router.get("https://de.wikipedia.org/w/api.php").respond(
        200,
        json={"query": {"pages": [{"pageid": 1, "ns": 0, "title": "Berlin", "extract": "Stadt"}]}},
    )
    out = await registry.aexecute("wikipedia_page", title="Berlin", language="de")
    assert out["url"] == "https://de.wikipedia.org/wiki/Berlin" and route.called


async def test_wikipedia_page_flags_disambiguation_pages(router: respx.MockRouter) -> None:
    page = {"pageid": 5, "ns": 0, "title": "Mercury", "extract": "Mercury may refer to:",
            "pageprops": {"disambiguation": ""}}  # fmt: skip
    router.get(API).respond(200, json={"query": {"pages": [page]}})
    out = await registry.aexecute("wikipedia_page", title="Mercury")
    assert out["disambiguation"] is True


async def test_a_missing_wikipedia_page_points_to_search(router: respx.MockRouter) -> None:
    router.get(API).respond(
        200,
        json={
            "batchcomplete": True,
            "query": {"pages": [{"ns": 0, "title": "Xyzzy Plugh", "missing": True}]},
        },
    )
    with pytest.raises(PermanentToolError, match="wikipedia_search"):
        await registry.aexecute("wikipedia_page", title="Xyzzy Plugh")


async def test_an_invalid_wikipedia_title_is_permanent(router: respx.MockRouter) -> None:
    page = {"title": "a|b", "invalidreason": "The requested page title contains invalid "
            "characters: \"|\".", "invalid": True}  # fmt: skip
    router.get(API).respond(200, json={"query": {"pages": [page]}})
    with pytest.raises(PermanentToolError, match="invalid characters"):
        await registry.aexecute("wikipedia_page", title="a|b")


@pytest.mark.parametrize(
    ("code", "error"),
    [("maxlag", TransientToolError), ("ratelimited", TransientToolError),
     ("badvalue", PermanentToolError)],
)  # fmt: skip
async def test_wikipedia_api_errors_are_classified(
    router: respx.MockRouter, code: str, error: type[Exception]
) -> None:
    router.get(API).respond(
        200,
        json={"error": {"code": code, "info": "Waiting for a database server: 5 seconds lagged."}},
    )
    with pytest.raises(error, match=code):
        await registry.aexecute("wikipedia_search", query="x")


@pytest.mark.parametrize(
    ("response", "error", "message"),
    [
        (httpx.Response(500, text="<html>Internal error</html>"), TransientToolError, "500"),
        (httpx.Response(502, text="Bad gateway"), TransientToolError, "502"),
        (httpx.Response(429, headers={"retry-after": "3"}), TransientToolError, "retry after 3s"),
        (httpx.Response(404, text="Not found"), PermanentToolError, "404"),
        (httpx.Response(400, json={"error": {"code": "badtitle", "info": "Bad title"}}),
         PermanentToolError, "Bad title"),
        (httpx.Response(200, text="<html><body>Wikimedia Error</body></html>",
                        headers={"content-type": "text/html"}), TransientToolError, "not JSON"),
        (httpx.Response(200, json=["not", "an", "object"]), TransientToolError, "unexpected"),
    ],
)  # fmt: skip
async def test_wikipedia_http_failures_and_garbage_are_classified(
    router: respx.MockRouter, response: httpx.Response, error: type[Exception], message: str
) -> None:
    router.get(API).mock(return_value=response)
    with pytest.raises(error, match=message):
        await registry.aexecute("wikipedia_page", title="Ada Lovelace")


async def test_a_wikipedia_timeout_is_transient(router: respx.MockRouter) -> None:
    router.get(API).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientToolError, match="did not answer"):
        await registry.aexecute("wikipedia_search", query="Ada")


@pytest.mark.parametrize("language", ["en.evil.com/x?", "EN", "e", "en/../", "en@evil"])
def test_the_wikipedia_language_cannot_change_the_host(language: str) -> None:
    with pytest.raises(ToolArgumentError, match="language"):
        registry.execute("wikipedia_search", query="x", language=language)


def test_web_tools_are_read_only_network_reads() -> None:
    for t in registry:
        assert t.side_effects is False and t.idempotent is True
        assert t.output_schema is not None and t.retry.attempts > 1
