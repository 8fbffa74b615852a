"""Mail pack: send a plain-text email over SMTP, to one recipient.

``send_email`` takes exactly one address in ``to``, parsed strictly (a dot-atom address,
optionally with a display name that holds no address), and gives it to the server as the whole
envelope: the message goes where the plan says and nowhere else. A line break in any header
field (the recipient, the subject, ``TOOLDAG_SMTP_FROM``) is refused, since it would let the
text add headers (``Bcc:``) or recipients of its own.

Sending mail cannot be undone, so ``send_email`` declares side effects and no compensation (the
REPL asks before running it). With a :class:`ToolContext` (the executor and the registry pass
one) the Message-ID is derived from its idempotency key (run and step ids), so a step that runs
again after a crash sends a message that mail systems can recognise as the same one; a plain
function call without one gets a fresh Message-ID.

Configuration (read at call time; nothing is sent until ``TOOLDAG_SMTP_HOST`` is set):

- ``TOOLDAG_SMTP_HOST``: the server, e.g. ``smtp.example.com``;
- ``TOOLDAG_SMTP_PORT``: default 465 with SSL, 587 with STARTTLS, else 25;
- ``TOOLDAG_SMTP_SSL``: 1 for implicit TLS (SMTPS); default 1 when the port is 465;
- ``TOOLDAG_SMTP_STARTTLS``: 1 to upgrade with STARTTLS; default 1 when the port is 587;
- ``TOOLDAG_SMTP_USER`` / ``TOOLDAG_SMTP_PASSWORD``: log in when the user is set (refused over
  an unencrypted connection, except to a loopback server);
- ``TOOLDAG_SMTP_FROM``: the sender address; default the user, if it is an address;
- ``TOOLDAG_SMTP_TIMEOUT``: seconds, default 30.

The password is never logged, printed or put in an error message.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from typing import Annotated

from pydantic import Field
from typing_extensions import TypedDict

from tooldag.errors import PermanentToolError, TransientToolError
from tooldag.registry import RetryPolicy, ToolContext, tool

from ._common import env_bool, env_float, env_int

__all__ = ["EmailSent", "SmtpSettings", "send_email"]


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    ssl: bool
    starttls: bool
    sender: str
    timeout: float
    user: str | None = None
    # repr=False: a settings object that ends up in a log or traceback must not show the secret.
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> SmtpSettings:
        host = os.environ.get("TOOLDAG_SMTP_HOST", "").strip()
        if not host:
            raise PermanentToolError(
                "email is not configured: set TOOLDAG_SMTP_HOST (and TOOLDAG_SMTP_PORT, "
                "TOOLDAG_SMTP_USER, TOOLDAG_SMTP_PASSWORD, TOOLDAG_SMTP_FROM as needed)"
            )
        raw_port = os.environ.get("TOOLDAG_SMTP_PORT", "").strip()
        port_hint = int(raw_port) if raw_port.isdigit() else None
        use_ssl = env_bool("TOOLDAG_SMTP_SSL", port_hint == 465)
        starttls = env_bool("TOOLDAG_SMTP_STARTTLS", port_hint == 587)
        if use_ssl and starttls:
            raise PermanentToolError(
                "TOOLDAG_SMTP_SSL and TOOLDAG_SMTP_STARTTLS are both on; set only one"
            )
        port = env_int("TOOLDAG_SMTP_PORT", 465 if use_ssl else 587 if starttls else 25, minimum=1)
        user = os.environ.get("TOOLDAG_SMTP_USER") or None
        sender = os.environ.get("TOOLDAG_SMTP_FROM") or (user if user and "@" in user else "")
        _one_line("sender (TOOLDAG_SMTP_FROM)", sender)
        if "@" not in parseaddr(sender)[1]:
            raise PermanentToolError(
                "no sender address: set TOOLDAG_SMTP_FROM (e.g. bot@example.com)"
            )
        return cls(
            host=host,
            port=port,
            ssl=use_ssl,
            starttls=starttls,
            sender=sender,
            timeout=env_float("TOOLDAG_SMTP_TIMEOUT", 30.0, minimum=0.1),
            user=user,
            password=os.environ.get("TOOLDAG_SMTP_PASSWORD") or None,
        )

    @property
    def envelope_sender(self) -> str:
        """The bare address of ``sender`` ("Bot <bot@example.com>" -> "bot@example.com")."""
        return parseaddr(self.sender)[1]

    @property
    def encrypted(self) -> bool:
        return self.ssl or self.starttls

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class EmailSent(TypedDict):
    message_id: str
    sender: str
    recipients: Annotated[list[str], Field(description="The addresses the server accepted")]
    refused: Annotated[list[str], Field(description="Addresses the server refused")]


# A dot-atom local part and a dotted host name: what an address in a plan needs, and nothing
# that a lax parser could read as a second address (quotes, comments, routes, groups).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_ADDRESS = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+"
_BARE = re.compile(_ADDRESS)
# A display name may not hold what would make it read as an address or a list of them.
_NAMED = re.compile(rf"([^<>@,;:\"()\\]*?)\s*<({_ADDRESS})>")
_ONE_ADDRESS_HINT = (
    "give one address like 'ann@example.com' or 'Ann <ann@example.com>' (send_email sends to "
    "exactly one recipient: use one send_email step per recipient)"
)


def _one_line(field_name: str, value: str) -> None:
    """Refuse a line break (or other control character) in what becomes a header."""
    if "\r" in value or "\n" in value:
        raise PermanentToolError(
            f"the {field_name} must be a single line: remove the line breaks (CR/LF), which "
            "would let it add headers or recipients of its own"
        )
    if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in value):
        raise PermanentToolError(f"the {field_name} contains a control character; remove it")


def _recipient(to: str) -> tuple[str, str]:
    """The (display name, address) of ``to``, which must name exactly one address.

    Strict on purpose: the address here is the message's whole envelope, so it must be the one
    a reader of the plan sees; ``"ann@x.org" <eve@y.org>`` or ``ann@x.org <eve@y.org>`` are
    refused rather than sent to Eve.
    """
    _one_line("recipient (to)", to)
    text = to.strip()
    if "," in text or ";" in text or len([a for _, a in getaddresses([text]) if a]) > 1:
        raise PermanentToolError(f"{to!r} holds more than one address; {_ONE_ADDRESS_HINT}")
    if _BARE.fullmatch(text):
        return "", text
    named = _NAMED.fullmatch(text)
    if named is None:
        raise PermanentToolError(f"{to!r} is not an email address; {_ONE_ADDRESS_HINT}")
    return named.group(1).strip(), named.group(2)


def _message(
    settings: SmtpSettings,
    to: tuple[str, str],
    subject: str,
    body: str,
    ctx: ToolContext | None,
) -> EmailMessage:
    domain = settings.envelope_sender.rpartition("@")[2] or "tooldag.invalid"
    if ctx is not None:
        digest = hashlib.sha256(ctx.idempotency_key.encode("utf-8")).hexdigest()[:32]
        message_id = f"<{digest}@{domain}>"
    else:
        message_id = make_msgid(domain=domain)
    msg = EmailMessage()
    try:
        msg["From"] = settings.sender
        msg["To"] = formataddr(to)
        msg["Subject"] = subject
    except (ValueError, IndexError) as exc:
        raise PermanentToolError(
            f"cannot build the message headers ({exc}); check TOOLDAG_SMTP_FROM and the subject"
        ) from None
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id
    msg.set_content(body)
    return msg


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if settings.ssl:
        return smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    client = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    if settings.starttls:
        try:
            client.starttls(context=context)
        except BaseException:
            client.close()
            raise
    return client


def _send(settings: SmtpSettings, msg: EmailMessage, to: str) -> dict[str, tuple[int, bytes]]:
    client = _connect(settings)
    try:
        if settings.user:
            client.login(settings.user, settings.password or "")
        # The envelope is given, never read from the headers: exactly this one recipient.
        return client.send_message(msg, from_addr=settings.envelope_sender, to_addrs=[to])
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            # The message is already accepted (or the error above matters more): a failed
            # goodbye must not turn a delivered email into a failed, retried step.
            client.close()


def _classify(exc: Exception, settings: SmtpSettings) -> PermanentToolError | TransientToolError:
    where = f"the SMTP server {settings.host}:{settings.port}"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return PermanentToolError(
            f"{where} refused the login (code {exc.smtp_code}); check TOOLDAG_SMTP_USER and "
            "TOOLDAG_SMTP_PASSWORD"
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(sorted(exc.recipients))
        return PermanentToolError(f"{where} refused every recipient ({refused}); check them")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return PermanentToolError(
            f"{where} refused the sender {settings.sender} (code {exc.smtp_code}); "
            "check TOOLDAG_SMTP_FROM"
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentToolError(
            f"{where} does not support what was asked ({exc}); check TOOLDAG_SMTP_STARTTLS/_SSL"
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        raw = exc.smtp_error
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        if 400 <= exc.smtp_code < 500:
            return TransientToolError(f"{where} said try later ({exc.smtp_code} {text})")
        return PermanentToolError(f"{where} rejected the message ({exc.smtp_code} {text})")
    if isinstance(exc, ssl.SSLError):
        return PermanentToolError(
            f"TLS with {where} failed ({exc.reason or exc}); check TOOLDAG_SMTP_SSL/_STARTTLS "
            "and the port"
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError | ConnectionError):
        return TransientToolError(
            f"{where} is unreachable or hung up ({type(exc).__name__}); try again later"
        )
    if isinstance(exc, OSError):
        return TransientToolError(f"could not talk to {where} ({exc.strerror or exc}); try again")
    return PermanentToolError(f"sending through {where} failed ({type(exc).__name__}: {exc})")


@tool(
    category="communication",
    side_effects=True,
    idempotent=False,
    timeout=120.0,
    # One more try at most: a connection lost after the server accepted the message would
    # otherwise mean duplicates.
    retry=RetryPolicy(attempts=2, initial_backoff=2.0, max_backoff=10.0),
    reads_private=True,  # the output names the user's own sender address
    egress=True,  # recipient, subject and body all leave
    untrusted_output=False,
    metadata={"destination": ["to"]},  # the envelope recipient; the body goes where it goes
)
def send_email(
    to: Annotated[str, Field(min_length=3, max_length=320)],
    subject: Annotated[str, Field(max_length=500)],
    body: Annotated[str, Field(max_length=500_000)],
    ctx: ToolContext | None = None,
) -> EmailSent:
    """Send a plain-text email to one recipient (cannot be undone).

    Args:
        to: Exactly one address: "ann@example.com" or "Ann <ann@example.com>" (one
            send_email step per recipient).
        subject: The subject line (one line).
        body: The plain-text body.
    """
    _one_line("subject", subject)
    name, address = _recipient(to)
    settings = SmtpSettings.from_env()
    if settings.user and not settings.encrypted and not settings.loopback:
        raise PermanentToolError(
            f"refusing to send the SMTP password to {settings.host} unencrypted: set "
            "TOOLDAG_SMTP_STARTTLS=1 or TOOLDAG_SMTP_SSL=1"
        )
    msg = _message(settings, (name, address), subject, body, ctx)
    try:
        refused = _send(settings, msg, address)
    except (smtplib.SMTPException, OSError) as exc:
        raise _classify(exc, settings) from None
    return EmailSent(
        message_id=str(msg["Message-ID"]),
        sender=settings.sender,
        recipients=[address],  # had the server refused it, send_message would have raised
        refused=sorted(refused),
    )


TOOLS = [send_email]
