"""SSRF: webhook URLs pointing inward are refused at registration and again at delivery."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from alerts.channels import ChannelError, Outgoing
from alerts.channels.targets import UnsafeTarget, check_webhook_target
from alerts.channels.webhook import WebhookSender
from tests.factories import Api, make_api


def resolver(*addresses: str) -> Any:
    def resolve(host: str, port: int) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


def unresolvable(host: str, port: int) -> list[tuple[Any, ...]]:
    raise socket.gaierror("no such name")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1.2.3:8080/hook",
        "http://10.0.0.7/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://intranet/hook",
        "ftp://93.184.216.34/hook",
    ],
)
def test_inward_targets_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_webhook_target(
            url, allow_private=False, require_resolution=False, resolve=unresolvable
        )


def test_public_targets_pass_and_names_are_checked_after_resolving() -> None:
    check_webhook_target("https://93.184.216.34/hook", allow_private=False, require_resolution=True)
    check_webhook_target(
        "https://hooks.example.org/b40",
        allow_private=False,
        require_resolution=True,
        resolve=resolver("93.184.216.34"),
    )
    with pytest.raises(UnsafeTarget, match="10.1.2.3"):
        check_webhook_target(
            "https://rebound.example.org/b40",
            allow_private=False,
            require_resolution=True,
            resolve=resolver("93.184.216.34", "10.1.2.3"),
        )
    # Unknown at registration (DNS down): accepted then, checked again at delivery.
    check_webhook_target(
        "https://later.example.org/b40",
        allow_private=False,
        require_resolution=False,
        resolve=unresolvable,
    )
    with pytest.raises(UnsafeTarget, match="does not resolve"):
        check_webhook_target(
            "https://later.example.org/b40",
            allow_private=False,
            require_resolution=True,
            resolve=unresolvable,
        )


def test_a_test_rig_may_allow_local_sinks() -> None:
    check_webhook_target("http://127.0.0.1:9999/sink", allow_private=True, require_resolution=True)


def test_delivery_refuses_an_inward_target_without_sending() -> None:
    sender = WebhookSender("secret")
    outgoing = Outgoing(
        alert_id=1,
        channel="webhook",
        address="http://169.254.169.254/latest",
        idempotency_key="k",
        subject="s",
        text="t",
        sms="t",
    )
    with pytest.raises(ChannelError, match="refused"):
        sender.send(outgoing)


def test_registration_names_the_field(database_url: str) -> None:
    api, client = make_api(database_url)
    with client:
        api.user("athens", "city_operator", "athens")
        registration_refuses_inward_webhooks(api)


def registration_refuses_inward_webhooks(api: Api) -> None:
    for url in ("http://127.0.0.1:8080/x", "http://169.254.169.254/", "http://localhost/x"):
        response = api.post(
            "athens", "/api/v1/duty-officers", {"city": "athens", "name": "o", "webhook_url": url}
        )
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "webhook_url"
    ok = api.post(
        "athens",
        "/api/v1/duty-officers",
        {"city": "athens", "name": "o", "webhook_url": "https://93.184.216.34/b40"},
    )
    assert ok.status_code == 201, ok.text
