"""The authorisation policy as data: every route x every identity -> the expected outcome.

Identities: the object under test belongs to an "owner" city (see OWNER); `own_operator` is
that city's operator, `other_operator` is the operator of an unrelated city. Token problems
(anonymous, unknown, tampered, expired, revoked) are 401 on every non-public route.
A meta-test fails when a route of the app has no row here.
"""

from __future__ import annotations

ALLOW = "allow"  # 2xx
DENY = "deny"  # 403

ROLES = ("admin", "coordinator", "own_operator", "other_operator", "duty_officer", "observer")
BAD_TOKENS = ("anonymous", "unknown", "tampered", "expired", "revoked")

READ = dict.fromkeys(ROLES, ALLOW)
ADMIN_ONLY = {r: (ALLOW if r == "admin" else DENY) for r in ROLES}
NETWORK_ONLY = {r: (ALLOW if r in ("admin", "coordinator") else DENY) for r in ROLES}
OWNER_WRITES = {
    r: (ALLOW if r in ("admin", "coordinator", "own_operator") else DENY) for r in ROLES
}

# Routes anyone may call: probes, the board's static page and the API description.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/"),
    ("GET", "/board"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    # Prometheus: open when B40_METRICS_TOKEN is unset (serve it on a private port), else it
    # needs that token, not an API token (tests/api/test_observability.py).
    ("GET", "/metrics"),
    # The link inside an alert message: authenticated by its HMAC signature and expiry, not a
    # bearer token (tests/alerts/test_alert_flow.py refuses a bad or expired signature).
    ("GET", "/api/v1/alerts/{alert_id}/ack-link"),
    ("POST", "/api/v1/alerts/{alert_id}/ack-link"),
}

NOT_OBSERVER = {r: (DENY if r == "observer" else ALLOW) for r in ROLES}
# Acknowledging: the alerted city's duty officers and operators, or a coordinator.
ACKNOWLEDGERS = {r: (DENY if r in ("other_operator", "observer") else ALLOW) for r in ROLES}
# Reports: network-wide roles, observers, and the cities involved (duty officer of the owner).
REPORT_READERS = {r: (DENY if r == "other_operator" else ALLOW) for r in ROLES}

# The board stream: every authenticated role may watch; bad tokens are refused before data
# (tests/api/test_authz.py::test_board_stream_follows_the_policy).
WEBSOCKETS: dict[tuple[str, str], dict[str, str]] = {("WS", "/ws/board"): READ}

POLICY: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/v1/cities"): READ,
    ("GET", "/api/v1/cities/{slug}"): READ,
    ("GET", "/api/v1/capabilities"): READ,
    ("GET", "/api/v1/cities/{slug}/reserves"): READ,
    ("PUT", "/api/v1/cities/{slug}/reserves/{capability}"): OWNER_WRITES,
    ("POST", "/api/v1/resources"): OWNER_WRITES,
    ("POST", "/api/v1/resources/bulk"): OWNER_WRITES,
    ("GET", "/api/v1/resources"): READ,
    ("GET", "/api/v1/resources/{resource_id}"): READ,
    ("POST", "/api/v1/resources/{resource_id}/status"): OWNER_WRITES,
    ("POST", "/api/v1/incidents"): OWNER_WRITES,
    ("GET", "/api/v1/incidents"): READ,
    ("GET", "/api/v1/incidents/{incident_id}"): READ,
    ("POST", "/api/v1/requests"): OWNER_WRITES,
    ("GET", "/api/v1/requests"): READ,
    ("GET", "/api/v1/requests/{request_id}"): READ,
    ("POST", "/api/v1/requests/{request_id}/cancel"): OWNER_WRITES,
    ("GET", "/api/v1/requests/{request_id}/candidates"): READ,
    ("POST", "/api/v1/offers"): OWNER_WRITES,  # owner: the donor city
    ("GET", "/api/v1/offers"): READ,
    ("GET", "/api/v1/offers/{offer_id}"): READ,
    ("POST", "/api/v1/offers/{offer_id}/accept"): OWNER_WRITES,  # owner: the requesting city
    ("POST", "/api/v1/offers/{offer_id}/decline"): OWNER_WRITES,  # owner: the requesting city
    ("POST", "/api/v1/offers/{offer_id}/withdraw"): OWNER_WRITES,  # owner: the donor city
    ("GET", "/api/v1/offers/{offer_id}/cover"): READ,  # lender cover of one offer
    ("POST", "/api/v1/allocations/plan"): NETWORK_ONLY,
    ("GET", "/api/v1/allocations/{plan_id}"): READ,
    ("POST", "/api/v1/allocations/{plan_id}/apply"): NETWORK_ONLY,
    ("POST", "/api/v1/dispatches"): NETWORK_ONLY,
    ("GET", "/api/v1/deployments"): READ,
    ("GET", "/api/v1/deployments/{deployment_id}"): READ,
    ("POST", "/api/v1/deployments/{deployment_id}/status"): OWNER_WRITES,  # donor or requester
    ("GET", "/api/v1/events"): READ,
    ("GET", "/api/v1/audit/export"): NETWORK_ONLY,  # the hash-chained audit trail, NDJSON
    ("POST", "/api/v1/users"): ADMIN_ONLY,
    ("GET", "/api/v1/users/me"): READ,
    ("POST", "/api/v1/users/{user_id}/revoke"): ADMIN_ONLY,
    ("POST", "/api/v1/duty-officers"): OWNER_WRITES,
    ("GET", "/api/v1/duty-officers"): NOT_OBSERVER,  # rosters hold contact details
    ("POST", "/api/v1/duty-officers/{officer_id}/active"): OWNER_WRITES,
    ("GET", "/api/v1/alerts"): READ,  # a city's people see their city's alerts
    ("GET", "/api/v1/alerts/{alert_id}"): READ,
    ("GET", "/api/v1/alerts/{alert_id}/cap"): READ,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): ACKNOWLEDGERS,
    ("GET", "/api/v1/incidents/{incident_id}/report"): REPORT_READERS,
}
