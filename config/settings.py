"""The one pydantic-settings class (env prefix B40_), read only by composition roots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_DIR = Path(__file__).resolve().parent
REFERENCE_DIR = CONFIG_DIR / "reference"
DEFAULT_CONFIG_FILE = CONFIG_DIR / "b40.toml"


class Settings(BaseSettings):
    """Every knob of the system. Environment variables win over `config/b40.toml`."""

    model_config = SettingsConfigDict(
        env_prefix="B40_", toml_file=DEFAULT_CONFIG_FILE, extra="ignore"
    )

    # PostgreSQL in production ("postgresql://user@host:port/db"); SQLite file by default.
    database_url: str = "sqlite:///var/b40.db"
    # Unset means the embedded default: an in-process transport instead of Redis.
    redis_url: str | None = None
    # Prefix of every Redis key we write, so several deployments (and test runs) share a server.
    redis_prefix: str = "b40"
    admin_token: str | None = None
    # Demo data: None = only on the embedded default; True/False force it.
    demo: bool | None = None
    # ETA model: eta_hours = readiness_hours + distance_km * route_factor / deploy_speed_kmh.
    route_factor_air: float = 1.0
    route_factor_road: float = 1.3
    # Lender cover: flag a plan that leaves a donor city with no unit of a capability within
    # this ETA (readiness + travel, the core's formula) when it had one before.
    cover_eta_hours: float = 12.0
    max_body_bytes: int = 1_048_576
    idempotency_ttl_hours: int = 24
    base_url: str = "http://127.0.0.1:8000"
    # Live board (docs/board.md): idle heartbeat below common 30-60 s proxy timeouts; events a
    # board may be behind before it gets `resync` and is closed; how often a hub compares
    # itself with the log and the relay polls it (both only matter when a wake-up was lost).
    board_heartbeat_seconds: float = 20.0
    board_buffer_events: int = 2_000
    board_check_seconds: float = 1.0
    relay_poll_seconds: float = 1.0
    # Alerts to duty officers (docs/alerts.md). Unset SMTP / SMS gateway: e-mails and texts
    # land as files in outbox_dir (the embedded default's inbox).
    # Webhooks go to public addresses only (SSRF); true only for test rigs with local sinks.
    webhook_allow_private: bool = False
    smtp_url: str | None = None  # smtp://user:pass@host:port[?starttls=1] or smtps://...
    sms_gateway_url: str | None = None
    outbox_dir: str = "var/outbox"
    # Signs webhook bodies and acknowledgement links; unset: a random key kept in var/.
    alert_signing_secret: str | None = None
    alert_rules_file: str = str(CONFIG_DIR / "alert_rules.toml")
    alert_mail_from: str = "B40 Alerts <alerts@b40.local>"
    alert_cap_sender: str = "alerts@b40.local"
    alert_cap_radius_km: float = 10.0
    # Planner: woken by every commit; this tick runs the timed rules and catches lost jobs.
    alert_pipeline: bool = True
    alert_tick_seconds: float = 15.0
    # Delivery: retries with backoff; a job is killed after its timeout and its lease (longer)
    # then lets a fresh attempt in; a delivery still undone this long after is enqueued again.
    alert_retry_intervals: list[int] = [5, 30, 120, 600]
    alert_job_timeout_seconds: int = 30
    alert_lease_seconds: float = 60.0
    alert_redeliver_after_seconds: float = 90.0
    alert_ack_link_hours: float = 72.0
    # Rate limits (docs/security.md): writes per token, failed authentications per client
    # address. Far above what a coordinator or a city's integration needs in a crisis; they
    # stop a runaway script or a token-guessing client before the database feels it.
    rate_limit_enabled: bool = True
    rate_limit_writes_per_second: float = 20.0
    rate_limit_write_burst: int = 200
    rate_limit_auth_failures_per_minute: float = 10.0
    rate_limit_auth_failure_burst: int = 10
    # Observability (docs/operations.md): JSON logs to stderr; /metrics needs this bearer token
    # when set (Prometheus `authorization`), is open when unset (serve it on a private port).
    log_level: str = "INFO"
    log_json: bool = True
    metrics_token: str | None = None

    @field_validator("database_url")
    @classmethod
    def _choose_driver(cls, value: str) -> str:
        # Cities hand us the standard libpq form; we pick the driver (psycopg 3).
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator(
        "redis_url",
        "admin_token",
        "smtp_url",
        "sms_gateway_url",
        "alert_signing_secret",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_embedded(self) -> bool:
        """The one-command default: SQLite and no Redis server."""
        return self.is_sqlite and self.redis_url is None

    @property
    def demo_enabled(self) -> bool:
        return self.is_embedded if self.demo is None else self.demo

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit arguments, then B40_* environment, then config/b40.toml.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def route_factors(settings: Settings) -> dict[str, float]:
    return {"air": settings.route_factor_air, "road": settings.route_factor_road}


__all__ = ["Settings", "Field", "route_factors", "REFERENCE_DIR"]
