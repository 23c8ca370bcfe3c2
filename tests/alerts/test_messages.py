"""Signed acknowledgement links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.messages import ack_link, ack_link_valid, ack_signature

NOW = datetime(2026, 8, 3, 12, tzinfo=UTC)
LATER = int((NOW + timedelta(hours=1)).timestamp())


def test_a_link_is_valid_until_it_expires() -> None:
    signature = ack_signature("secret", 7, LATER)
    assert ack_link_valid("secret", 7, LATER, signature, NOW)
    assert not ack_link_valid("secret", 7, LATER, signature, NOW + timedelta(hours=2))
    assert f"e={LATER}&s={signature}" in ack_link(
        "http://b40", "secret", 7, NOW + timedelta(hours=1)
    )


@pytest.mark.parametrize(
    "forged",
    ["A" * 22, "é" * 22, "\udcff" * 22, "", "x"],
)
def test_forged_or_odd_signatures_are_refused_not_crashed(forged: str) -> None:
    assert ack_link_valid("secret", 7, LATER, forged, NOW) is False


def test_a_signature_is_bound_to_its_alert_and_secret() -> None:
    signature = ack_signature("secret", 7, LATER)
    assert not ack_link_valid("secret", 8, LATER, signature, NOW)
    assert not ack_link_valid("other", 7, LATER, signature, NOW)
