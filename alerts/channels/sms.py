"""SMS through an HTTP gateway (B40_SMS_GATEWAY_URL): one JSON POST per message."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from alerts.channels import ChannelError, Outgoing

TIMEOUT_SECONDS = 15


class HttpSmsGateway:
    """POST {"to", "text", "reference"} with an Idempotency-Key header; 2xx means accepted.

    Most commercial gateways take this shape (or a form with the same three fields); an
    adapter for another one replaces this class only.
    """

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url
        self.client = client or httpx.Client(timeout=TIMEOUT_SECONDS)

    def send(self, outgoing: Outgoing) -> str:
        try:
            response = self.client.post(
                self.url,
                json={
                    "to": outgoing.address,
                    "text": outgoing.sms,
                    "reference": outgoing.idempotency_key,
                },
                headers={"Idempotency-Key": outgoing.idempotency_key},
            )
        except httpx.HTTPError as error:
            raise ChannelError(f"sms gateway: {error}") from error
        if not response.is_success:
            raise ChannelError(f"sms gateway answered {response.status_code}")
        return f"sms gateway {response.status_code}"


class OutboxSms:
    """The embedded default: each SMS is a text file in the outbox folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, outgoing: Outgoing) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{outgoing.idempotency_key}.sms.txt"
        partial = path.with_suffix(".partial")
        partial.write_text(f"To: {outgoing.address}\n\n{outgoing.sms}\n", encoding="utf-8")
        os.replace(partial, path)
        return f"outbox {path}"
