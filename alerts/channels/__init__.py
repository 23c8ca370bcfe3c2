"""Delivery channels: e-mail, SMS gateway, webhook. Each is a small adapter behind `Channel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One alert through one channel, fully rendered; the key lets a sink drop a repeat."""

    alert_id: int
    channel: str
    address: str
    idempotency_key: str
    subject: str
    text: str
    sms: str
    body: dict[str, Any] = field(default_factory=dict)


class ChannelError(Exception):
    """The sink refused or did not answer: worth retrying."""


class Channel(Protocol):
    def send(self, outgoing: Outgoing) -> str:
        """Hand the message over; return a short receipt. Raise ChannelError to retry."""
        ...
