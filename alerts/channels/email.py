"""E-mail: SMTP (B40_SMTP_URL) in production, a local outbox folder in the embedded default."""

from __future__ import annotations

import os
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from alerts.channels import ChannelError, Outgoing

TIMEOUT_SECONDS = 20


def build_email(outgoing: Outgoing, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = outgoing.address
    message["Subject"] = outgoing.subject
    # The same alert always carries the same Message-ID, so a mail system that sees it twice
    # can tell it is one message.
    message["Message-ID"] = make_msgid(idstring=outgoing.idempotency_key, domain="b40.alerts")
    message["X-B40-Alert"] = str(outgoing.alert_id)
    message["X-B40-Idempotency-Key"] = outgoing.idempotency_key
    message.set_content(outgoing.text)
    return message


class SmtpMailer:
    """smtp://[user:password@]host[:port][?starttls=1] or smtps://... (implicit TLS)."""

    def __init__(self, url: str, sender: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("B40_SMTP_URL must start with smtp:// or smtps://")
        self.tls = parts.scheme == "smtps"
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (465 if self.tls else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender

    def send(self, outgoing: Outgoing) -> str:
        message = build_email(outgoing, self.sender)
        try:
            smtp: smtplib.SMTP
            if self.tls:
                smtp = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=TIMEOUT_SECONDS,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_SECONDS)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise ChannelError(f"smtp {self.host}:{self.port}: {error}") from error
        if refused:
            raise ChannelError(f"smtp refused {sorted(refused)}")
        return f"smtp {self.host}:{self.port} accepted {message['Message-ID']}"


class OutboxMailer:
    """Writes each e-mail as an .eml file: the demo's inbox. One file per alert, so a repeat
    overwrites instead of duplicating."""

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    def send(self, outgoing: Outgoing) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        message = build_email(outgoing, self.sender)
        message["Date"] = format_datetime_now()
        path = self.folder / f"{outgoing.idempotency_key}.eml"
        partial = path.with_suffix(".eml.partial")
        partial.write_bytes(message.as_bytes())
        os.replace(partial, path)  # atomic: a reader never sees half a message
        return f"outbox {path}"


def format_datetime_now() -> str:
    return format_datetime(datetime.now(UTC))
