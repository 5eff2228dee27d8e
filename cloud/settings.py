"""Typed settings of the cloud services, from a TOML file and GUMEI_* environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cloud.aggregate.targets import TargetRules
from cloud.auth import FailLimit, FailureLimits, FailWindowS, MaxClients
from cloud.influx import InfluxConfig
from cloud.influx_grants import SERVICES, Service
from cloud.ingest.options import DEFAULT_MAX_AGE_DAYS, WorkerOptions
from cloud.inspections.places import DEFAULT_PLACES
from cloud.ops.delivery import Subscriber
from cloud.registry import DEFAULT_PATH as DEFAULT_REGISTRY
from contract.errors import first_error
from runtime.mqtt import MqttEndpoint

# Each default is defined once, by the object the setting configures; the sections below refer to it.
_INFLUX = InfluxConfig()
_WORKER = WorkerOptions()
_RULES = TargetRules()
_LIMITS = FailureLimits()


class SettingsError(ValueError):
    """Settings that cannot be used (one line says which and why)."""


class InfluxCredential(BaseModel):
    """One service's own InfluxDB identity: user/password (1.x) or a scoped token (2.x/3.x)."""

    model_config = ConfigDict(extra="forbid")
    username: str = ""
    password: str = Field("", repr=False)
    token: str = Field("", repr=False)

    @property
    def is_set(self) -> bool:
        return bool(self.username or self.token)


class InfluxSettings(BaseModel):
    """InfluxDB connection: 1.x user/password, or 2.x/3.x token through the v1 API.

    username/password/token at the top are the administrator's (only `gumei influx grants --apply`
    and `gumei influx migrate-health` use them); each service connects with its own section
    ([influx.ingest], [influx.aggregate], [influx.api], [influx.grafana], [influx.ops]) and its grants
    (cloud/influx_grants.py). An unset section falls back to the top-level identity (upgrades only).
    """

    model_config = ConfigDict(extra="forbid")
    url: str = _INFLUX.url
    database: str = _INFLUX.database
    health_database: str = _INFLUX.health_database
    records_database: str = _INFLUX.records_database
    auth: Literal["none", "basic", "token"] = _INFLUX.auth
    username: str = _INFLUX.username
    password: str = Field(_INFLUX.password, repr=False)
    token: str = Field(_INFLUX.token, repr=False)
    retention_policy: str = _INFLUX.retention_policy
    gzip: bool | None = _INFLUX.gzip  # see InfluxConfig.gzip
    ingest: InfluxCredential = InfluxCredential()
    aggregate: InfluxCredential = InfluxCredential()
    api: InfluxCredential = InfluxCredential()
    grafana: InfluxCredential = InfluxCredential()
    ops: InfluxCredential = InfluxCredential()

    def credential(self, service: Service | None = None) -> InfluxCredential:
        """The identity `service` connects as (None: the administrator)."""
        own = getattr(self, service) if service is not None else None
        if isinstance(own, InfluxCredential) and own.is_set:
            return own
        return InfluxCredential(username=self.username, password=self.password, token=self.token)

    def config(self, service: Service | None = None) -> InfluxConfig:
        """The client configuration of `service` (None: the administrator)."""
        fields = self.model_dump(exclude=set[str](SERVICES))
        fields.update(self.credential(service).model_dump())
        return InfluxConfig(**fields)


class IngestSettings(BaseModel):
    """Tuning of an ingestion worker."""

    model_config = ConfigDict(extra="forbid")
    name: str = _WORKER.name
    group: str = _WORKER.group
    batch_readings: int = Field(_WORKER.batch_readings, ge=1, le=100_000)
    batch_ms: int = Field(_WORKER.batch_ms, ge=1, le=60_000)
    receive_maximum: int = Field(_WORKER.receive_maximum, ge=1, le=65_535)
    # Readings older than this are dead letters (`too_old`): replays after an outage are welcome,
    # rewriting history is not (docs/security.md).
    max_age_days: float = Field(DEFAULT_MAX_AGE_DAYS, gt=0, le=3650)
    # Written after each granted subscription, removed on stop: what waiters read (cloud.ingest.ready).
    ready_file: Path | None = _WORKER.ready_file

    def options(self) -> WorkerOptions:
        """The worker's WorkerOptions of this section (max_age_days goes to the planner)."""
        return WorkerOptions(**self.model_dump(exclude={"max_age_days"}))


class TargetSettings(BaseModel):
    """The plan's targets and the sorting standard (docs/aggregation.md explains each rule)."""

    model_config = ConfigDict(extra="forbid")
    recyclable_tonnes_per_day: float = Field(_RULES.recyclable_tonnes_per_day, gt=0)
    dry_change_pct: float = Field(_RULES.dry_change_pct, ge=-100, le=100)
    dry_window_days: int = Field(_RULES.dry_window_days, ge=1, le=366)
    dry_baseline_tonnes_per_day: float | None = Field(_RULES.dry_baseline_tonnes_per_day, gt=0)
    dry_year_coverage: float = Field(_RULES.dry_year_coverage, gt=0, le=1)
    sorting_pct: float = Field(_RULES.sorting_pct, ge=0, le=100)
    sorting_min_deposits: int = Field(_RULES.sorting_min_deposits, ge=1)
    sorting_min_wet_share: float = Field(_RULES.sorting_min_wet_share, ge=0, le=1)
    sorting_max_dry_share: float = Field(_RULES.sorting_max_dry_share, ge=0, le=1)
    sorting_max_hazardous_share: float = Field(_RULES.sorting_max_hazardous_share, ge=0, le=1)
    chain_window_h: float = Field(_RULES.chain_window_h, gt=0, le=24)
    inspection_window_days: int = Field(_RULES.inspection_window_days, ge=1, le=366)

    def rules(self) -> TargetRules:
        """The aggregator's TargetRules of this section."""
        return TargetRules(**self.model_dump())


class InspectionSettings(BaseModel):
    """On-site inspections (docs/inspections.md): the pass mark of 达标, the places file of units
    and public places, where photos are kept and how big they and the notes may be."""

    model_config = ConfigDict(extra="forbid")
    pass_score: int = Field(90, ge=0, le=100)  # 达标 needs score >= this and every 五有 item
    places: Path = DEFAULT_PLACES
    photo_dir: Path | None = None  # default: inspection-photos/ beside `tokens`
    photo_max_bytes: int = Field(2 * 1024 * 1024, ge=1024, le=20 * 1024 * 1024)
    notes_max_chars: int = Field(500, ge=0, le=4000)
    max_age_days: int = Field(
        366, ge=1, le=3660
    )  # an older check is refused (no rewriting history)


class OpsSettings(BaseModel):
    """The operations evaluator and its subscribers (docs/operations.md)."""

    model_config = ConfigDict(extra="forbid")
    interval_s: float = Field(60.0, ge=1, le=86_400)
    # gateway_offline's delay; 10 min in production, the demo (`gumei run`) sets 1 to show it
    offline_minutes: float = Field(10.0, gt=0, le=1440)
    subscribers: list[Subscriber] = []

    @field_validator("subscribers")
    @classmethod
    def _unique(cls, value: list[Subscriber]) -> list[Subscriber]:
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError("ops.subscribers: names must be unique")
        return value


class CloudSettings(BaseSettings):
    """Everything a cloud process needs; built once in main() and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="GUMEI_", env_nested_delimiter="__", extra="forbid"
    )

    environment: Literal["development", "production"] = "development"
    influx: InfluxSettings = InfluxSettings()
    mqtt: MqttEndpoint = MqttEndpoint()  # a worker connects as its ingest.name (worker_endpoint)
    ingest: IngestSettings = IngestSettings()
    registry: Path = DEFAULT_REGISTRY
    tokens: Path = Path("run/tokens.json")
    # the rows lane's period: a late reading's rows are corrected within one period and one run
    aggregate_interval_s: float = Field(1.0, ge=0.1, le=86_400)
    # the district's distinct residents: a whole-day scan in influxd, in their own lane
    aggregate_residents_interval_s: float = Field(60.0, ge=1, le=86_400)
    targets: TargetSettings = TargetSettings()
    inspections: InspectionSettings = InspectionSettings()
    ops: OpsSettings = OpsSettings()
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65_535)
    # API hardening (docs/security.md "API routes and roles", "Audit trail", "Behind a reverse proxy"):
    # peers (addresses or CIDR networks) whose X-Forwarded-For names the real client; [] = none.
    api_forwarded_allow_ips: list[str] = ["127.0.0.1", "::1"]
    api_max_rows: int = Field(100_000, ge=1, le=10_000_000)  # a bigger answer is a 422
    audit_log: Path | None = (
        None  # per-resident access records (JSON lines); default: audit.jsonl beside `tokens`
    )
    audit_retention_days: float = Field(1096.0, gt=0, le=36_600)  # 3 years
    audit_bulk_residents: int = Field(50, ge=1)  # one token reading more distinct residents ...
    audit_bulk_window_s: float = Field(
        3600.0, gt=0, le=86_400 * 31
    )  # ... within this rolling window is flagged

    @field_validator("api_forwarded_allow_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"api_forwarded_allow_ips: {item!r} is not an IP address or network"
                ) from None
        return value

    def audit_path(self) -> Path:
        """The audit log file: `audit_log`, or audit.jsonl in the token store's folder."""
        return self.audit_log or self.tokens.with_name("audit.jsonl")

    def photo_dir(self) -> Path:
        """Where inspection photos are kept: inspections.photo_dir, or beside the token store."""
        return self.inspections.photo_dir or self.tokens.with_name("inspection-photos")

    # operator-visible health aggregates hide any cell of fewer distinct residents (docs/health.md)
    health_min_residents: int = Field(5, ge=1, le=1000)
    # failed-authentication limits of the API (docs/security.md): GUMEI_AUTH_FAIL_LIMIT etc.
    auth_fail_limit: FailLimit = _LIMITS.fail_limit
    auth_fail_window_s: FailWindowS = _LIMITS.fail_window_s
    auth_max_clients: MaxClients = _LIMITS.max_clients

    def failure_limits(self) -> FailureLimits:
        """The API's failed-authentication limits."""
        return FailureLimits(
            fail_limit=self.auth_fail_limit,
            fail_window_s=self.auth_fail_window_s,
            max_clients=self.auth_max_clients,
        )

    @model_validator(mode="after")
    def _no_defaults_in_production(self) -> CloudSettings:
        if self.environment == "production":
            if self.influx.auth == "none":
                raise ValueError("production needs InfluxDB auth (influx.auth = basic or token)")
            if self.mqtt.ca_file is None:
                raise ValueError("production needs TLS to the broker (mqtt.ca_file)")
        return self

    def influx_config(self, service: Service) -> InfluxConfig:
        """How `service` reaches InfluxDB, as its own user; in production a missing section is an
        error, never a quiet fall-back to the administrator's identity."""
        if self.environment == "production" and not getattr(self.influx, service).is_set:
            raise SettingsError(
                f"production needs [influx.{service}] (the {service} service's own InfluxDB user "
                "or token; `gumei influx grants --print` creates them), not the administrator's"
            )
        return self.influx.config(service)

    def worker_endpoint(self) -> MqttEndpoint:
        """The broker identity of this ingestion worker: username = client id = ingest.name."""
        if self.mqtt.username not in (None, self.ingest.name):
            raise SettingsError(
                f"mqtt.username {self.mqtt.username!r} is not the worker name {self.ingest.name!r}: "
                "a worker connects as its name (ingest-1..N); drop mqtt.username"
            )
        if self.environment == "production" and not self.mqtt.password:
            raise SettingsError(
                f"production needs {self.ingest.name}'s broker password (GUMEI_MQTT__PASSWORD, "
                f"from /etc/gumei/ingest/{self.ingest.name}.env)"
            )
        return self.mqtt.model_copy(update={"username": self.ingest.name})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(path: Path | None = None) -> CloudSettings:
    """Settings from a TOML file (if given) overridden by GUMEI_* variables; one-line errors."""
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path} does not exist")

    class _FromFile(CloudSettings):
        model_config = SettingsConfigDict(
            env_prefix="GUMEI_", env_nested_delimiter="__", extra="forbid", toml_file=path
        )

    try:
        return CloudSettings.model_validate(_FromFile().model_dump())
    except ValidationError as exc:
        raise SettingsError(f"config {path or '(environment)'}: {first_error(exc)}") from None
    except ValueError as exc:  # TOML syntax errors
        raise SettingsError(f"config {path}: {str(exc).splitlines()[0]}") from None
