"""The embedded default (no Redis, no SMTP): the same jobs run in-process, e-mails land in the
outbox folder."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from server.app import create_app
from tests.factories import Api, make_settings
from tests.workers.conftest import wait_for


def test_embedded_default_writes_alerts_to_the_outbox(sqlite_url: str, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    settings = make_settings(sqlite_url, outbox_dir=str(outbox), alert_tick_seconds=0.2)
    assert settings.is_embedded
    with TestClient(create_app(settings, prepare=False)) as client:
        api = Api(client=client, tokens={"admin": "test-admin-token"})
        api.user("sofia", "city_operator", "sofia")
        api.user("athens", "city_operator", "athens")
        api.ok(
            api.post(
                "sofia", "/api/v1/resources", {"capability": "FF_HELICOPTER", "callsign": "S-1"}
            ),
            201,
        )
        officer = {
            "city": "sofia",
            "name": "duty",
            "email": "duty@sofia.example",
            "phone": "+359888000000",
        }
        api.ok(api.post("sofia", "/api/v1/duty-officers", officer), 201)
        incident = api.ok(
            api.post(
                "athens",
                "/api/v1/incidents",
                {
                    "kind": "wildfire",
                    "title": "Demo fire",
                    "lat": 38.1,
                    "lon": 23.7,
                    "severity": "high",
                },
            ),
            201,
        )
        body = {
            "incident_id": incident["id"],
            "priority": "high",
            "items": [{"capability": "FF_HELICOPTER", "quantity": 1}],
        }
        api.ok(api.post("athens", "/api/v1/requests", body), 201)
        wait_for(
            lambda: (
                api.ok(api.get("admin", "/api/v1/alerts"))["items"][0]["status"] == "sent"
                if api.ok(api.get("admin", "/api/v1/alerts"))["items"]
                else False
            ),
            "alert sent",
        )
        [alert] = api.ok(api.get("admin", "/api/v1/alerts"))["items"]
        mail = wait_for(lambda: list(outbox.glob("*.eml")), "an e-mail in the outbox")
        assert [p.name for p in mail] == [f"alert-{alert['id']}-email.eml"]
        text = mail[0].read_text()
        assert "Demo fire" in text
        assert "/ack-link?e=" in text
        wait_for(lambda: (outbox / f"alert-{alert['id']}-sms.sms.txt").exists(), "the SMS file")
