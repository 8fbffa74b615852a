"""The mail pack against a real SMTP server (aiosmtpd) on 127.0.0.1: plain, login, STARTTLS and
implicit TLS, refusals and failures classified, the password never shown."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import logging
import shutil
import smtplib
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from tooldag.packs.mail import SmtpSettings

from packs_fixtures import pack_registry
from tooldag.errors import PermanentToolError, ToolArgumentError, TransientToolError
from tooldag.execution.executor import Executor
from tooldag.execution.policy import PolicyGate, StepApproval
from tooldag.plan.parse import parse_plan
from tooldag.result import StepStatus

registry = pack_registry("mail")

USER = "bot@example.com"
PASSWORD = "s3cr3t-Pa55word-never-shown"


@dataclass
class Handler:
    """Records what the server received; scripted answers for RCPT and DATA."""

    messages: list[tuple[Envelope, Session]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    data_reply: str = "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_reply.startswith("250"):
            self.messages.append((envelope, session))
        return self.data_reply

    def only_message(self) -> tuple[Envelope, EmailMessage]:
        assert len(self.messages) == 1
        envelope, _ = self.messages[0]
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return envelope, parsed


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


async def serve(
    handler: Handler,
    monkeypatch: pytest.MonkeyPatch,
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    **smtp_options: Any,
) -> asyncio.Server:
    """An SMTP server on 127.0.0.1 (a free port), and the environment pointing at it."""
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname="mx.test",
            tls_context=None if implicit_tls else tls,
            authenticator=authenticator,
            **smtp_options,
        )

    server = await loop.create_server(factory, "127.0.0.1", 0, ssl=tls if implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TOOLDAG_SMTP_PORT", str(port))
    monkeypatch.setenv("TOOLDAG_SMTP_FROM", f"Tooldag Bot <{USER}>")
    monkeypatch.setenv("TOOLDAG_SMTP_TIMEOUT", "5")
    return server


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOST", "PORT", "USER", "PASSWORD", "STARTTLS", "SSL", "FROM", "TIMEOUT"):
        monkeypatch.delenv(f"TOOLDAG_SMTP_{name}", raising=False)


@pytest.fixture
async def handler(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Handler]:
    h = Handler()
    server = await serve(h, monkeypatch, auth_require_tls=False)
    yield h
    server.close()
    await server.wait_closed()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command line."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    cert, key = certificate
    # The client verifies the server against the default trust store; make it trust ours only.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("send_email opened a connection it should have refused to open")

    monkeypatch.setattr(smtplib, "SMTP", refuse)
    monkeypatch.setattr(smtplib, "SMTP_SSL", refuse)
    yield


@pytest.fixture
def configured_offline(monkeypatch: pytest.MonkeyPatch, no_connections: None) -> None:
    """A complete configuration, for a send that must be refused before it connects."""
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TOOLDAG_SMTP_FROM", USER)


# --------------------------------------------------------------------------- delivery


async def test_the_server_receives_the_recipient_headers_and_body(handler: Handler) -> None:
    out = await registry.aexecute(
        "send_email",
        to="Bob Smith <bob@example.net>",
        subject="Weather in Paris — 18 °C",
        body="Take a light jacket.\nSee you!\n",
    )
    envelope, msg = handler.only_message()
    assert envelope.mail_from == USER
    assert envelope.rcpt_tos == ["bob@example.net"]
    assert msg["From"] == f"Tooldag Bot <{USER}>"
    assert msg["To"] == "Bob Smith <bob@example.net>"
    assert msg["Subject"] == "Weather in Paris — 18 °C"
    assert msg["Message-ID"] == out["message_id"] and msg["Date"]
    assert msg.get_content().replace("\r\n", "\n") == "Take a light jacket.\nSee you!\n"
    assert out == {
        "message_id": out["message_id"],
        "sender": f"Tooldag Bot <{USER}>",
        "recipients": ["bob@example.net"],
        "refused": [],
    }


async def test_the_envelope_holds_exactly_the_one_address_of_to(handler: Handler) -> None:
    await registry.aexecute(
        "send_email",
        to="  Anne-Marie O'Neil <a.m+news@mail.example.co.uk> ",
        subject="Hi",
        body="x",
    )
    envelope, msg = handler.only_message()
    assert envelope.rcpt_tos == ["a.m+news@mail.example.co.uk"]
    assert msg["To"] == "Anne-Marie O'Neil <a.m+news@mail.example.co.uk>"
    assert [name for name in msg if name.lower() in ("cc", "bcc")] == []


async def test_the_approval_shows_the_envelope_the_server_then_receives(
    handler: Handler,
) -> None:
    asked: list[StepApproval] = []

    def approve(request: StepApproval) -> bool:
        asked.append(request)
        return True

    to = "Anne-Marie O'Neil <a.m+news@mail.example.co.uk>"
    plan = parse_plan(
        '{"steps": [{"id": "m", "tool": "send_email", "args": '
        f'{{"to": "{to}", "subject": "Hi", "body": "x"}}}}]}}'
    )
    gate = PolicyGate(registry, approve_step=approve)
    gate.prepare(plan)
    result = await Executor(registry, gate=gate).run(plan)
    assert result.steps["m"].status is StepStatus.SUCCEEDED
    envelope, _ = handler.only_message()
    assert [r.destinations for r in asked] == [("mail a.m+news@mail.example.co.uk",)]
    assert envelope.rcpt_tos == ["a.m+news@mail.example.co.uk"]


async def test_every_recipient_refused_is_permanent(handler: Handler) -> None:
    handler.refuse = {"ghost@example.org"}
    with pytest.raises(PermanentToolError, match="refused every recipient"):
        await registry.aexecute("send_email", to="ghost@example.org", subject="Hi", body="Hello")
    assert handler.messages == []


async def test_a_temporary_server_failure_is_transient(handler: Handler) -> None:
    handler.data_reply = "451 4.3.0 try again later"
    with pytest.raises(TransientToolError, match="451"):
        await registry.aexecute("send_email", to="ann@example.org", subject="Hi", body="Hello")


async def test_a_permanent_server_rejection_is_permanent(handler: Handler) -> None:
    handler.data_reply = "554 5.7.1 message rejected as spam"
    with pytest.raises(PermanentToolError, match="554"):
        await registry.aexecute("send_email", to="ann@example.org", subject="Hi", body="Hello")


async def test_through_the_executor_the_message_id_is_derived_from_run_and_step(
    handler: Handler,
) -> None:
    plan = parse_plan(
        {
            "goal": "mail",
            "steps": [
                {
                    "id": "mail",
                    "tool": "send_email",
                    "args": {"to": "ann@example.org", "subject": "Hi", "body": "Hello"},
                }
            ],
        }
    )
    result = await Executor(registry).run(plan, run_id="run42")
    assert result.steps["mail"].status is StepStatus.SUCCEEDED
    digest = hashlib.sha256(b"run42:mail").hexdigest()[:32]
    _, msg = handler.only_message()
    assert msg["Message-ID"] == f"<{digest}@example.com>"


async def test_without_a_context_each_message_gets_a_fresh_message_id(handler: Handler) -> None:
    send = registry.get("send_email")
    args = {"to": "ann@example.org", "subject": "Hi", "body": "Hello"}
    first = await asyncio.to_thread(send, **args)
    second = await asyncio.to_thread(send, **args)
    assert first["message_id"] != second["message_id"]
    received = [
        email.message_from_bytes(envelope.content, policy=email.policy.default)["Message-ID"]
        for envelope, _ in handler.messages
        if isinstance(envelope.content, bytes)
    ]
    assert received == [first["message_id"], second["message_id"]]


# --------------------------------------------------------------------------- login and TLS


async def test_login_with_the_configured_user_and_password(
    handler: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_USER", USER)
    monkeypatch.setenv("TOOLDAG_SMTP_PASSWORD", PASSWORD)
    await registry.aexecute("send_email", to="ann@example.org", subject="Hi", body="Hello")
    _, session = handler.messages[0]
    assert session.authenticated is True


async def test_a_wrong_password_is_permanent_and_never_shown(
    handler: Handler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + PASSWORD
    monkeypatch.setenv("TOOLDAG_SMTP_USER", USER)
    monkeypatch.setenv("TOOLDAG_SMTP_PASSWORD", wrong)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentToolError, match="TOOLDAG_SMTP_PASSWORD") as caught:
        await registry.aexecute("send_email", to="ann@example.org", subject="Hi", body="Hello")
    assert wrong not in str(caught.value) and wrong not in caplog.text
    assert handler.messages == []


def test_settings_repr_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("TOOLDAG_SMTP_PORT", "587")
    monkeypatch.setenv("TOOLDAG_SMTP_USER", USER)
    monkeypatch.setenv("TOOLDAG_SMTP_PASSWORD", PASSWORD)
    settings = SmtpSettings.from_env()
    assert settings.starttls is True and settings.ssl is False  # the port says so
    assert PASSWORD not in repr(settings)


async def test_starttls_upgrades_before_logging_in(
    server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Handler()
    server = await serve(h, monkeypatch, tls=server_tls, require_starttls=True)
    try:
        monkeypatch.setenv("TOOLDAG_SMTP_STARTTLS", "1")
        monkeypatch.setenv("TOOLDAG_SMTP_USER", USER)
        monkeypatch.setenv("TOOLDAG_SMTP_PASSWORD", PASSWORD)
        await registry.aexecute("send_email", to="ann@example.org", subject="TLS", body="sealed")
    finally:
        server.close()
        await server.wait_closed()
    _, session = h.messages[0]
    assert session.ssl is not None and session.authenticated is True
    assert h.only_message()[1]["Subject"] == "TLS"


async def test_implicit_tls(server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch) -> None:
    h = Handler()
    server = await serve(h, monkeypatch, tls=server_tls, implicit_tls=True)
    try:
        monkeypatch.setenv("TOOLDAG_SMTP_SSL", "1")
        await registry.aexecute("send_email", to="ann@example.org", subject="SSL", body="sealed")
    finally:
        server.close()
        await server.wait_closed()
    assert h.only_message()[1]["Subject"] == "SSL"


async def test_an_untrusted_certificate_is_a_permanent_tls_error(
    server_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    h = Handler()
    server = await serve(h, monkeypatch, tls=server_tls, implicit_tls=True)
    try:
        empty = tmp_path / "empty.pem"
        empty.write_text("", encoding="utf-8")
        monkeypatch.setenv("SSL_CERT_FILE", str(empty))
        monkeypatch.setenv("TOOLDAG_SMTP_SSL", "1")
        with pytest.raises(PermanentToolError, match="TLS"):
            await registry.aexecute("send_email", to="ann@example.org", subject="x", body="x")
    finally:
        server.close()
        await server.wait_closed()
    assert h.messages == []


async def test_starttls_asked_of_a_server_without_it_is_permanent(
    handler: Handler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_STARTTLS", "1")
    with pytest.raises(PermanentToolError, match="STARTTLS"):
        await registry.aexecute("send_email", to="ann@example.org", subject="x", body="x")
    assert handler.messages == []


def test_the_password_is_not_sent_unencrypted_to_a_remote_server(
    monkeypatch: pytest.MonkeyPatch, no_connections: None
) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("TOOLDAG_SMTP_PORT", "25")
    monkeypatch.setenv("TOOLDAG_SMTP_USER", USER)
    monkeypatch.setenv("TOOLDAG_SMTP_PASSWORD", PASSWORD)
    with pytest.raises(PermanentToolError, match="TOOLDAG_SMTP_STARTTLS=1") as caught:
        registry.execute("send_email", to="ann@example.org", subject="x", body="x")
    assert PASSWORD not in str(caught.value)


# --------------------------------------------------------------------------- config and input


def test_without_configuration_it_says_what_to_set(no_connections: None) -> None:
    with pytest.raises(PermanentToolError, match="TOOLDAG_SMTP_HOST"):
        registry.execute("send_email", to="ann@example.org", subject="x", body="x")


def test_without_a_sender_it_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, no_connections: None
) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "127.0.0.1")
    with pytest.raises(PermanentToolError, match="TOOLDAG_SMTP_FROM"):
        registry.execute("send_email", to="ann@example.org", subject="x", body="x")


def test_ssl_and_starttls_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, no_connections: None
) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TOOLDAG_SMTP_FROM", USER)
    monkeypatch.setenv("TOOLDAG_SMTP_SSL", "1")
    monkeypatch.setenv("TOOLDAG_SMTP_STARTTLS", "yes")
    with pytest.raises(PermanentToolError, match="set only one"):
        registry.execute("send_email", to="ann@example.org", subject="x", body="x")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"to": "not-an-address", "subject": "x", "body": "x"}, "not an email address"),
        (
            {"to": "ann@example.org", "subject": "x\nBcc: all@example.org", "body": "x"},
            "single line",
        ),
    ],
)
def test_bad_addresses_and_header_injection_are_refused(
    configured_offline: None, args: dict[str, str], message: str
) -> None:
    with pytest.raises(PermanentToolError, match=message):
        registry.execute("send_email", **args)


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("to", "ann@example.org\r\nBcc: eve@example.com"),
        ("to", "ann@example.org\nBcc: eve@example.com"),
        ("to", "Ann\r <ann@example.org>"),
        ("subject", "Hello\r\nBcc: eve@example.com"),
        ("subject", "Hello\rthere"),
    ],
)
def test_a_line_break_in_a_header_field_is_refused_before_connecting(
    configured_offline: None, field_name: str, value: str
) -> None:
    args = {
        "to": "ann@example.org",
        "subject": "x",
        "body": "line one\nline two",
        field_name: value,
    }
    with pytest.raises(PermanentToolError, match=r"must be a single line: remove the line breaks"):
        registry.execute("send_email", **args)


def test_a_line_break_in_the_configured_sender_is_refused(
    monkeypatch: pytest.MonkeyPatch, no_connections: None
) -> None:
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TOOLDAG_SMTP_FROM", f"{USER}\r\nBcc: eve@example.com")
    with pytest.raises(PermanentToolError, match=r"sender \(TOOLDAG_SMTP_FROM\) must be a single"):
        registry.execute("send_email", to="ann@example.org", subject="x", body="x")


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("ann@example.org, bob@example.net", "more than one address"),
        ("ann@example.org; bob@example.net", "more than one address"),
        ("<ann@example.org> <eve@example.com>", "more than one address"),
        # What a reader of the plan sees first is not where a lax parser would send it.
        ("ann@example.org <eve@example.com>", "more than one address"),
        ('"ann@example.org" <eve@example.com>', "not an email address"),
        ("ann@example.org (Ann) ", "not an email address"),
    ],
)
def test_to_takes_exactly_one_unambiguous_address(
    configured_offline: None, to: str, message: str
) -> None:
    with pytest.raises(PermanentToolError, match=message) as caught:
        registry.execute("send_email", to=to, subject="x", body="x")
    assert "use one send_email step per recipient" in str(caught.value)


def test_missing_arguments_are_caught_by_the_schema() -> None:
    with pytest.raises(ToolArgumentError, match="subject"):
        registry.execute("send_email", to="ann@example.org", body="x")


def test_an_unreachable_server_is_transient(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("TOOLDAG_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TOOLDAG_SMTP_PORT", str(port))
    monkeypatch.setenv("TOOLDAG_SMTP_FROM", USER)
    with pytest.raises(TransientToolError, match="try again"):
        registry.execute("send_email", to="ann@example.org", subject="x", body="x")


def test_send_email_is_side_effecting_and_has_no_undo() -> None:
    t = registry.get("send_email")
    assert t.side_effects is True and t.idempotent is False and t.compensate is None
    # The executor fills the context in; the LLM never sees it.
    assert t.context_param == "ctx" and "ctx" not in t.properties
    assert t.output_schema is not None and t.category == "communication"
