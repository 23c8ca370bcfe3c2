"""Webhook: an HTTP POST of the alert as JSON, signed with HMAC-SHA256 over timestamp and body."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from alerts.channels import ChannelError, Outgoing
from alerts.channels.targets import UnsafeTarget, check_webhook_target

TIMEOUT_SECONDS = 15
SIGNATURE_HEADER = "X-B40-Signature"
TIMESTAMP_HEADER = "X-B40-Timestamp"
TOLERANCE_SECONDS = 300  # receivers refuse older timestamps: a captured request cannot be replayed


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, given: str, now: datetime) -> bool:
    """What a receiver checks: a fresh timestamp and a matching signature."""
    try:
        age = abs(now.timestamp() - int(timestamp))
    except ValueError:
        return False
    return age <= TOLERANCE_SECONDS and hmac.compare_digest(
        signature(secret, timestamp, body), given
    )


class WebhookSender:
    def __init__(
        self,
        secret: str,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        allow_private: bool = False,
    ) -> None:
        self.secret = secret
        self.allow_private = allow_private
        self.client = client or httpx.Client(timeout=TIMEOUT_SECONDS)
        self.clock = clock

    def send(self, outgoing: Outgoing) -> str:
        try:
            check_webhook_target(
                outgoing.address, allow_private=self.allow_private, require_resolution=True
            )
        except UnsafeTarget as error:
            raise ChannelError(f"webhook refused: {error}") from error
        body = json.dumps(outgoing.body, separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(self.clock().timestamp()))
        try:
            response = self.client.post(
                outgoing.address,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: timestamp,
                    SIGNATURE_HEADER: signature(self.secret, timestamp, body),
                    "Idempotency-Key": outgoing.idempotency_key,
                },
            )
        except httpx.HTTPError as error:
            raise ChannelError(f"webhook: {error}") from error
        if not response.is_success:
            raise ChannelError(f"webhook answered {response.status_code}")
        return f"webhook {response.status_code}"
