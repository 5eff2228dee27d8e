"""Typed gateway config (one TOML file per gateway), validated with one clear line per mistake.

The site id decides the kind: `WS-…` is a waste station (`GatewayConfig`), `HH-…` a health hut
(`HutConfig`), `WB-…` a weighbridge (`WeighbridgeConfig`). All share the broker, queue and publish
sections.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract import Category, Subcategory, device_belongs
from contract.models import ID_PATTERN, PLACE_PATTERN, PLATE_PATTERN
from edge.ble.decode import DECODERS, GLUCOSE_CONTEXT, normalize_uuid
from edge.deposits import DetectorParams
from edge.errors import ConfigError
from edge.health_session import CARD_TAP_UUID, DEFAULT_TIMEOUT_S
from runtime.mqtt import MqttEndpoint

Identifier = Annotated[str, Field(pattern=ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialDevice(_Strict):
    """A weighing indicator on a serial line (A&D-style ASCII frames)."""

    id: Identifier
    category: Category
    interface: Literal["serial"]
    port: str = Field(min_length=1)  # /dev/ttyUSB0, or a pyserial URL (loop://, rfc2217://…)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    checksum: bool = False  # two hex digits of XOR before CR LF
    terminator: Literal["crlf", "cr"] = "crlf"
    silence_s: float = Field(5.0, gt=0, le=600)
    capacity_kg: float | None = Field(None, gt=0, le=10_000)  # for fill_pct in the status


class ModbusDevice(_Strict):
    """A Modbus TCP load-cell transmitter (register map in docs/scales.md)."""

    id: Identifier
    category: Category
    interface: Literal["modbus"]
    host: str = Field(min_length=1)
    port: int = Field(502, ge=1, le=65535)
    unit: int = Field(1, ge=0, le=247)
    poll_s: float = Field(0.2, gt=0, le=60)
    capacity_kg: float | None = Field(None, gt=0, le=10_000)


Device = Annotated[SerialDevice | ModbusDevice, Field(discriminator="interface")]


class BrokerConfig(_Strict):
    """Where the broker is; the MQTT username is the site id, the password is in a 0600 file."""

    url: str  # mqtts://host:8883 (TLS) or mqtt://host:1883 (loopback tests only)
    ca_file: Path | None = None
    credentials_file: Path
    keepalive_s: int = Field(
        30, ge=5, le=3600
    )  # the MQTT client id is the site id (the broker binds it)
    # a client certificate, for a broker generated with --client-certs (both, or neither)
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtts://host:8883 (or mqtt://host:1883)")
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError("has a bad port number") from None
        return v

    @model_validator(mode="after")
    def _tls_needs_ca(self) -> BrokerConfig:
        if urlsplit(self.url).scheme == "mqtts" and self.ca_file is None:
            raise ValueError(
                "ca_file is required for mqtts:// (the CA that signed the broker's certificate)"
            )
        if urlsplit(self.url).scheme == "mqtt" and self.ca_file is not None:
            raise ValueError("ca_file given but url is mqtt:// (use mqtts:// for TLS)")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "cert_file and key_file go together (a client certificate and its key)"
            )
        if self.cert_file is not None and urlsplit(self.url).scheme != "mqtts":
            raise ValueError("a client certificate needs mqtts:// (TLS)")
        return self

    def endpoint(self, site: str, password: str) -> MqttEndpoint:
        """This broker with a gateway's credentials (username = client id = site id)."""
        return MqttEndpoint(
            host=self.host,
            port=self.port,
            username=site,
            password=password,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            keepalive_s=self.keepalive_s,
        )

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


class QueueConfig(_Strict):
    """The durable local queue: file, bounds, how long acknowledged entries are kept for a replay."""

    path: Path
    max_items: int = Field(1_000_000, ge=1)
    max_mb: int = Field(512, ge=1)
    keep_acked_s: float = Field(120.0, ge=0)


class PublishConfig(_Strict):
    """Delivery tuning (defaults follow docs/edge.md)."""

    status_interval_s: float = Field(60.0, ge=1, le=3600)
    backoff_min_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(30.0, gt=0, le=3600)
    replay_window_s: float = Field(60.0, ge=0, le=3600)
    replay_delay_s: float = Field(10.0, ge=0, le=3600)
    batch_max: int = Field(1000, ge=1, le=1000)
    max_inflight: int = Field(16, ge=1, le=1000)

    @model_validator(mode="after")
    def _backoff(self) -> PublishConfig:
        if self.backoff_max_s < self.backoff_min_s:
            raise ValueError("backoff_max_s must be >= backoff_min_s")
        return self


class DetectorConfig(_Strict):
    """Deposit detector parameters (docs/scales.md §4)."""

    settle_samples: int = Field(3, ge=1, le=100)
    tolerance_kg: float = Field(0.02, ge=0)
    min_deposit_kg: float = Field(0.04, gt=0)
    empty_min_kg: float = Field(2.0, gt=0)
    platform_empty_kg: float = Field(1.0, ge=0)
    max_deposit_kg: float = Field(60.0, gt=0, le=500)  # the contract caps net_kg at 500

    @model_validator(mode="after")
    def _consistent(self) -> DetectorConfig:
        self.params()
        return self

    def params(self) -> DetectorParams:
        """The detector's own parameter object."""
        return DetectorParams(**self.model_dump())


class CardsConfig(_Strict):
    """Resident card taps: the district key (hex, 0600) and the tap-to-deposit window."""

    district_key_file: Path
    window_s: float = Field(60.0, gt=0, le=3600)
    reader_port: str | None = None  # a serial card reader sending one card number per line


class GatewayConfig(_Strict):
    """Everything one gateway agent needs; built once in main() and passed down."""

    site: Identifier
    broker: BrokerConfig
    queue: QueueConfig
    devices: Annotated[list[Device], Field(min_length=1, max_length=64)]
    detector: DetectorConfig = DetectorConfig()
    publish: PublishConfig = PublishConfig()
    cards: CardsConfig | None = None
    log_stats_s: float = Field(300.0, ge=1)

    @model_validator(mode="after")
    def _devices(self) -> GatewayConfig:
        seen: set[str] = set()
        ports: set[str] = set()
        for i, d in enumerate(self.devices):
            if not device_belongs(d.id, self.site):
                raise ValueError(
                    f"devices[{i}].id {d.id!r} must start with the site id {self.site}-"
                )
            if d.id in seen:
                raise ValueError(f"devices[{i}].id {d.id!r} is listed twice")
            seen.add(d.id)
            where = d.port if isinstance(d, SerialDevice) else f"{d.host}:{d.port}/{d.unit}"
            if where in ports:
                raise ValueError(f"devices[{i}] uses {where} like another device")
            ports.add(where)
        if not self.site.startswith("WS-"):
            raise ValueError(
                f"site {self.site!r}: a waste-station gateway's site id starts with WS-"
            )
        return self

    def endpoint(self, password: str) -> MqttEndpoint:
        """The broker endpoint with this gateway's credentials."""
        return self.broker.endpoint(self.site, password)


MAC_PATTERN = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
SUPPORTED_CHARACTERISTICS = frozenset([*DECODERS, GLUCOSE_CONTEXT])


def _characteristic(v: str) -> str:
    try:
        uuid = normalize_uuid(v)
    except ValueError:
        raise ValueError(
            f"{v!r} is not a characteristic UUID (e.g. 2a35 or a full 128-bit UUID)"
        ) from None
    return uuid


class BleDevice(_Strict):
    """A Bluetooth LE device: BlueZ address and the characteristics whose notifications it reads."""

    id: Identifier
    transport: Literal["ble"]
    address: Annotated[str, Field(pattern=MAC_PATTERN)]  # AA:BB:CC:DD:EE:FF (bluetoothctl devices)
    characteristics: list[str] = []  # 16-bit short forms ("2a35") or full UUIDs
    connect_timeout_s: float = Field(20.0, gt=0, le=120)

    @field_validator("characteristics")
    @classmethod
    def _uuids(cls, v: list[str]) -> list[str]:
        return [_characteristic(u) for u in v]


class SocketDevice(_Strict):
    """A simulated device (firmware_sim, tests, demo) speaking the framed-socket transport."""

    id: Identifier
    transport: Literal["socket"]
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class SerialCardReader(_Strict):
    """A card reader on a serial line sending one card number per line."""

    id: Identifier
    transport: Literal["serial"]
    port: str = Field(min_length=1)
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600


class SerialStation(_Strict):
    """A height/weight station (身高体重秤) on a serial line printing one ASCII frame per
    measurement (edge/height_weight.py)."""

    id: Identifier
    transport: Literal["serial"]
    port: str = Field(min_length=1)  # /dev/ttyUSB0, or a pyserial URL
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600


Instrument = Annotated[BleDevice | SocketDevice | SerialStation, Field(discriminator="transport")]
CardReader = Annotated[
    BleDevice | SocketDevice | SerialCardReader, Field(discriminator="transport")
]


class HutSection(_Strict):
    """The health hut: district key, resident sessions, the card reader and the instruments."""

    district_key_file: Path  # hex, at least 16 bytes, chmod 600
    session_timeout_s: float = Field(DEFAULT_TIMEOUT_S, gt=0, le=3600)
    flush_after_s: float = Field(3.0, gt=0, le=600)  # a quiet device releases a held reading
    card_reader: CardReader
    instruments: Annotated[list[Instrument], Field(min_length=1, max_length=32)]

    @model_validator(mode="after")
    def _characteristics(self) -> HutSection:
        for i, d in enumerate(self.instruments):
            if isinstance(d, BleDevice):
                if not d.characteristics:
                    raise ValueError(
                        f"instruments[{i}].characteristics: list the measurement characteristics "
                        '(e.g. ["2a35"] for blood pressure)'
                    )
                for u in d.characteristics:
                    if u not in SUPPORTED_CHARACTERISTICS:
                        raise ValueError(
                            f"instruments[{i}].characteristics: {u} has no decoder "
                            "(supported: 2a35, 2a9d, 2a9c, 2a1c, 2a18, 2a34, 2a5e)"
                        )
        return self

    def card_characteristics(self) -> list[str]:
        """What a BLE card reader is subscribed to (the project's card characteristic by default)."""
        r = self.card_reader
        return (r.characteristics or [CARD_TAP_UUID]) if isinstance(r, BleDevice) else []


class HutConfig(_Strict):
    """Everything one health-hut gateway needs; built once in main() and passed down."""

    site: Identifier
    broker: BrokerConfig
    queue: QueueConfig
    hut: HutSection
    publish: PublishConfig = PublishConfig()
    log_stats_s: float = Field(300.0, ge=1)

    @model_validator(mode="after")
    def _devices(self) -> HutConfig:
        if not self.site.startswith("HH-"):
            raise ValueError(f"site {self.site!r}: a health hut's site id starts with HH-")
        seen: set[str] = set()
        where: set[str] = set()
        for name, d in [
            ("hut.card_reader", self.hut.card_reader),
            *((f"hut.instruments[{i}]", d) for i, d in enumerate(self.hut.instruments)),
        ]:
            if not device_belongs(d.id, self.site):
                raise ValueError(f"{name}.id {d.id!r} must start with the site id {self.site}-")
            if d.id in seen:
                raise ValueError(f"{name}.id {d.id!r} is listed twice")
            seen.add(d.id)
            at = (
                d.address
                if isinstance(d, BleDevice)
                else d.port
                if isinstance(d, SerialCardReader | SerialStation)
                else f"{d.host}:{d.port}"
            )
            if at in where:
                raise ValueError(f"{name} uses {at} like another device")
            where.add(at)
        return self

    def endpoint(self, password: str) -> MqttEndpoint:
        """The broker endpoint with this gateway's credentials."""
        return self.broker.endpoint(self.site, password)


PlateKey = Annotated[str, Field(pattern=PLATE_PATTERN)]


class CardEntry(_Strict):
    """What an IC card issued to a truck stands for: its plate and its usual load and route."""

    plate: PlateKey
    category: Category
    subcategory: Subcategory | None = None
    source_area: Identifier
    destination: Annotated[str, Field(pattern=PLACE_PATTERN)] | None = None
    tare: Literal["weigh", "stored"] = "weigh"

    @model_validator(mode="after")
    def _an_entry(self) -> CardEntry:
        if (self.category == Category.RECYCLABLE) != (self.subcategory is not None):
            raise ValueError("subcategory is required for recyclable and only for recyclable")
        return self


class WeighbridgeSection(_Strict):
    """The truck scale: its XK3190 indicator, the stable-weight detector, tickets, operator input."""

    id: Identifier  # the indicator's device id, WB-…-B1
    port: str = Field(min_length=1)  # /dev/ttyUSB0 or a pyserial URL
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    mode: Literal["tf0", "eq"] = "tf0"  # continuous output: tF=0 STX frames, or '=' frames
    unit: Literal["kg", "t"] = "kg"  # the indicator's display unit (not in the frames)
    silence_s: float = Field(5.0, gt=0, le=600)
    min_truck_kg: int = Field(1000, gt=0, le=200_000)
    empty_kg: int = Field(200, ge=0, le=200_000)
    band_kg: int = Field(20, ge=0, le=1000)  # max - min of a stable window (one division)
    stable_s: float = Field(3.0, gt=0, le=60)
    max_gap_s: float = Field(1.5, gt=0, le=60)
    tare_timeout_h: float = Field(4.0, gt=0, le=72)
    entry_timeout_min: float = Field(15.0, gt=0, le=24 * 60)
    operator_input: Path  # JSON lines appended by the operator console / card reader bridge
    state_file: Path  # open grosses and stored tares, rewritten atomically on each change
    stored_tares_kg: dict[PlateKey, Annotated[int, Field(gt=0, le=200_000)]] = {}
    cards: dict[Annotated[str, Field(pattern=r"^[0-9A-Za-z]{4,32}$")], CardEntry] = {}

    @model_validator(mode="after")
    def _thresholds(self) -> WeighbridgeSection:
        if self.empty_kg >= self.min_truck_kg:
            raise ValueError("empty_kg must be below min_truck_kg")
        return self


class WeighbridgeConfig(_Strict):
    """Everything one weighbridge gateway needs (site WB-…)."""

    site: Identifier
    broker: BrokerConfig
    queue: QueueConfig
    weighbridge: WeighbridgeSection
    publish: PublishConfig = PublishConfig()
    log_stats_s: float = Field(300.0, ge=1)

    @model_validator(mode="after")
    def _ids(self) -> WeighbridgeConfig:
        if not self.site.startswith("WB-"):
            raise ValueError(f"site {self.site!r}: a weighbridge's site id starts with WB-")
        if not device_belongs(self.weighbridge.id, self.site):
            raise ValueError(
                f"weighbridge.id {self.weighbridge.id!r} must start with the site id {self.site}-"
            )
        return self

    def endpoint(self, password: str) -> MqttEndpoint:
        """The broker endpoint with this gateway's credentials (username = client id = site id)."""
        b = self.broker
        return MqttEndpoint(
            host=b.host,
            port=b.port,
            username=self.site,
            password=password,
            ca_file=b.ca_file,
            keepalive_s=b.keepalive_s,
        )


AnyGatewayConfig = GatewayConfig | HutConfig | WeighbridgeConfig


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("serial", "modbus", "ble", "socket"):
            continue  # the discriminator's branch name says nothing to the user
        else:
            out += ("." if out else "") + part
    return out


def _or(tags: str) -> str:
    """ "'a', 'b', 'c'" -> "'a', 'b' or 'c'"."""
    head, _, last = tags.rpartition(", ")
    return f"{head} or {last}" if head else last


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        where = _where(err["loc"])
        if err["type"] == "missing":
            msg = "missing (required)"
        elif err["type"] == "extra_forbidden":
            msg = "unknown setting (misspelt?)"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tag = str(err.get("ctx", {}).get("discriminator", "interface")).strip("'")
            default = "'serial', 'modbus'" if tag == "interface" else "'ble', 'socket', 'serial'"
            tags = _or(str(err.get("ctx", {}).get("expected_tags", default)))
            msg = (
                f"{tag} must be {tags}"
                if err["type"] == "union_tag_invalid"
                else f"{tag} missing: {tags}"
            )
        elif err["type"] == "string_pattern_mismatch" and where.endswith("address"):
            msg = "must be a Bluetooth address like A4:C1:38:00:00:01"
        elif err["type"] == "string_pattern_mismatch":
            msg = "must be 1-64 letters, digits, '-' or '_' (e.g. WS-0101-S1)"
        msg = msg.replace("Input should be", "must be")
        lines.append(f"{where}: {msg}" if where else msg)
    return lines


def load_config(path: str | Path) -> AnyGatewayConfig:
    """Parse and validate a gateway TOML file (`HH-…` site: a health hut; `WB-…` a weighbridge;
    else a waste station)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    site = data.get("site")
    model: type[AnyGatewayConfig] = GatewayConfig
    if isinstance(site, str) and site.startswith("HH-"):
        model = HutConfig
    elif (isinstance(site, str) and site.startswith("WB-")) or "weighbridge" in data:
        model = WeighbridgeConfig  # a [weighbridge] section: say what is wrong with the site id
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(f"{p}: {line}" for line in _describe(exc))) from None


def read_secret(path: Path, what: str) -> str:
    """A one-line secret from a file only its owner may read."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{what} {path} is readable by others; chmod 600 it")
    if not text or "\n" in text:
        raise ConfigError(f"{what} {path} must hold exactly one line")
    return text


def staged_password_file(path: Path) -> Path:
    """Where a rotation stages the next password, beside the password file (edge/credentials.py)."""
    return path.with_name(path.name + ".next")


def check_files(cfg: AnyGatewayConfig) -> list[str]:
    """Problems with the files the config names (secrets, CA, queue directory, key), one line each."""
    problems = []
    try:
        read_secret(cfg.broker.credentials_file, "broker.credentials_file")
    except ConfigError as exc:
        problems.append(str(exc))
    staged = staged_password_file(cfg.broker.credentials_file)
    if staged.exists():
        try:
            read_secret(staged, "staged next password")
        except ConfigError as exc:
            problems.append(str(exc))
    if cfg.broker.ca_file is not None and not cfg.broker.ca_file.is_file():
        problems.append(f"broker.ca_file {cfg.broker.ca_file}: no such file")
    if cfg.broker.cert_file is not None and not cfg.broker.cert_file.is_file():
        problems.append(f"broker.cert_file {cfg.broker.cert_file}: no such file")
    if cfg.broker.key_file is not None:
        key = cfg.broker.key_file
        if not key.is_file():
            problems.append(f"broker.key_file {key}: no such file")
        elif os.name == "posix" and key.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(f"broker.key_file {key} is readable by others; chmod 600 it")
    dirs = [("queue.path", cfg.queue.path.parent)]
    if isinstance(cfg, WeighbridgeConfig):
        dirs.append(("weighbridge.state_file", cfg.weighbridge.state_file.parent))
    for what, qdir in dirs:
        if not qdir.is_dir():
            problems.append(f"{what}: directory {qdir} does not exist")
        elif not os.access(qdir, os.W_OK):
            problems.append(f"{what}: directory {qdir} is not writable by this user")
    if isinstance(cfg, WeighbridgeConfig):
        return problems
    from edge.card import load_district_key

    key_file, what = (
        (cfg.hut.district_key_file, "hut.district_key_file")
        if isinstance(cfg, HutConfig)
        else (cfg.cards.district_key_file, "cards.district_key_file")
        if cfg.cards
        else (None, "")
    )
    if key_file is not None:
        try:
            load_district_key(key_file)
        except ConfigError as exc:
            problems.append(f"{what}: {exc}")
    if isinstance(cfg, HutConfig) and any(
        isinstance(d, BleDevice) for d in (cfg.hut.card_reader, *cfg.hut.instruments)
    ):
        import importlib.util

        if importlib.util.find_spec("bleak") is None:
            problems.append(
                "hut: Bluetooth devices configured but bleak is not installed: pip install '.[ble]'"
            )
    return problems


def describe(cfg: AnyGatewayConfig) -> str:
    """One line saying what a valid config runs."""
    if isinstance(cfg, WeighbridgeConfig):
        w = cfg.weighbridge
        return (
            f"site {cfg.site} (weighbridge), indicator {w.id} on {w.port} ({w.mode}, {w.unit}), "
            f"broker {cfg.broker.url}"
        )
    if isinstance(cfg, HutConfig):
        return (
            f"site {cfg.site} (health hut), {len(cfg.hut.instruments)} instruments and card reader "
            f"{cfg.hut.card_reader.id}, broker {cfg.broker.url}"
        )
    return f"site {cfg.site}, {len(cfg.devices)} devices, broker {cfg.broker.url}"
