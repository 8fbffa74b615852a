"""Where an egress step sends its data: its destination, and the destinations the user allows.

A tool says which of its arguments choose the destination with ``metadata={"destination":
[...]}``: ``["url"]`` for ``http_get`` (the host of the URL), ``["to"]`` for ``send_email`` (the
recipient), ``[]`` for a tool that always talks to the same service (Wikipedia, Open-Meteo). A
tool that says nothing may send anywhere, by any egress argument.

:class:`EgressAllowList` holds the destinations the user trusts with their data
(``TOOLDAG_EGRESS_ALLOW="api.example.org,*.corp.com,@corp.com"``): a host, a host and its
subdomains (``*.corp.com``), a mail domain (``@corp.com``) or one address (``ann@corp.com``). It
lifts a data-flow finding into a step only when every destination argument of that step is
literal in the plan as far as the destination goes: ``"https://api.example.org/?q=${f.text}"``
names its host, ``"https://${f.host}/"`` or ``"$f.url"`` do not, and a host that a reference
could extend (``"https://api.example.org${f.path}"``) does not count as named either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..plan.model import Step
from ..plan.refs import Template, parse_string
from ..registry.registry import Tool

__all__ = [
    "ALLOW_ENV",
    "EgressAllowList",
    "destination_arguments",
    "literal_destination",
    "sends_to",
]

ALLOW_ENV = "TOOLDAG_EGRESS_ALLOW"
"""The environment variable that holds the allow-list, entries separated by commas."""

# A host as a URL names it: letters, digits, dots and dashes, or a bracketed IPv6 address. What
# else urlsplit lets through (a backslash, a percent sign) is never taken as a known host.
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")
_ADDRESS = re.compile(r"[^@\s]+@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


def destination_arguments(tool: Tool) -> frozenset[str] | None:
    """The arguments of ``tool`` that choose where it sends; empty for a fixed destination;
    ``None`` when the tool does not say (then any egress argument may)."""
    declared = tool.metadata.get("destination")
    if declared is None:
        return None
    if isinstance(declared, str):
        return frozenset({declared})
    if isinstance(declared, Iterable) and not isinstance(declared, Mapping):
        names = list(declared)
        if all(isinstance(n, str) for n in names):
            return frozenset(names)
    return None  # a malformed declaration is no declaration: the safe reading


def _literal_prefix(value: Any) -> tuple[str, bool] | None:
    """The literal text a string argument starts with, and whether that is all of it."""
    if not isinstance(value, str):
        return None
    parsed = parse_string(value) if "$" in value else value
    if isinstance(parsed, str):
        return parsed, True
    if isinstance(parsed, Template):
        head = parsed.parts[0]
        return (head, False) if isinstance(head, str) else ("", False)
    return None  # a whole-value reference or a malformed one: nothing is literal


def literal_destination(value: Any) -> tuple[str, str] | None:
    """``("host", "api.example.org")`` or ``("mail", "ann@corp.com")`` when ``value`` names its
    destination literally; ``None`` when a reference could change it."""
    prefix = _literal_prefix(value)
    if prefix is None:
        return None
    text, whole = prefix
    if "://" in text:
        scheme_end = text.index("://") + 3
        rest = text[scheme_end:]
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=-1)
        if end < 0 and not whole:
            return None  # the authority runs on into a reference
        authority = text[: scheme_end + (end if end >= 0 else len(rest))]
        try:
            host = (urlsplit(authority).hostname or "").lower()
        except ValueError:
            return None
        return ("host", host) if _HOST.fullmatch(host) else None
    if not whole:
        return None
    addresses = [a.lower() for _, a in getaddresses([text]) if a]
    if len(addresses) != 1 or not _ADDRESS.fullmatch(addresses[0]):
        return None
    return "mail", addresses[0]


def sends_to(tool: Tool, args: Mapping[str, Any]) -> list[str]:
    """Where a step of ``tool`` with these (resolved) arguments sends: ``host x.example``,
    ``mail ann@corp.com`` (every address its destination arguments hold, as a mail library
    reads them); empty when the tool does not say or the value is no URL or address."""
    out: list[str] = []
    for name in sorted(destination_arguments(tool) or ()):
        value = args.get(name)
        if not isinstance(value, str):
            continue
        if "://" in value:
            found = literal_destination(value.replace("$", "$$"))
            if found is not None:
                out.append(f"{found[0]} {found[1]}")
            continue
        out.extend(f"mail {a}" for _, a in getaddresses([value]) if a)
    return out


@dataclass(frozen=True, slots=True)
class EgressAllowList:
    """Destinations trusted with the user's data; empty allows nothing."""

    hosts: frozenset[str] = frozenset()
    suffixes: frozenset[str] = frozenset()
    mail_domains: frozenset[str] = frozenset()
    addresses: frozenset[str] = frozenset()

    @classmethod
    def parse(
        cls, entries: str | Iterable[str], *, where: str = "the egress allow-list"
    ) -> EgressAllowList:
        """From ``"host, *.domain, @mail.domain, user@mail.domain"`` or a list of entries."""
        items = entries.split(",") if isinstance(entries, str) else list(entries)
        hosts: set[str] = set()
        suffixes: set[str] = set()
        domains: set[str] = set()
        addresses: set[str] = set()
        for raw in items:
            entry = str(raw).strip().lower()
            if not entry:
                continue
            if entry.startswith("@") and _HOST.fullmatch(entry[1:]):
                domains.add(entry[1:])
            elif "@" in entry and _ADDRESS.fullmatch(entry):
                addresses.add(entry)
            elif entry.startswith("*.") and _HOST.fullmatch(entry[2:]):
                suffixes.add(entry[2:])
            elif _HOST.fullmatch(entry):
                hosts.add(entry)
            else:
                raise ConfigError(
                    f"{where}: {raw.strip()!r} is not a destination; write a host "
                    "(api.example.org), a host and its subdomains (*.example.org), a mail "
                    "domain (@example.org) or an address (ann@example.org), comma-separated"
                )
        return cls(frozenset(hosts), frozenset(suffixes), frozenset(domains), frozenset(addresses))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EgressAllowList:
        """The allow-list in ``$TOOLDAG_EGRESS_ALLOW`` (empty when unset)."""
        env = os.environ if environ is None else environ
        return cls.parse(env.get(ALLOW_ENV, ""), where=ALLOW_ENV)

    def __bool__(self) -> bool:
        return bool(self.hosts or self.suffixes or self.mail_domains or self.addresses)

    def allows(self, kind: str, destination: str) -> bool:
        """Whether a destination (from :func:`literal_destination`) is on the list."""
        if kind == "host":
            labels = destination.split(".")
            parents = {".".join(labels[i:]) for i in range(len(labels))}
            return destination in self.hosts or bool(parents & self.suffixes)
        domain = destination.rpartition("@")[2]
        return destination in self.addresses or domain in self.mail_domains

    def allows_step(self, step: Step, tool: Tool) -> bool:
        """Whether everything ``step`` sends goes to allowed destinations, named literally."""
        names = destination_arguments(tool)
        if not self or not names:
            return False  # nothing allowed, or no destination that a list could name
        for name in names:
            found = literal_destination(step.args.get(name))
            if found is None or not self.allows(*found):
                return False
        return True
