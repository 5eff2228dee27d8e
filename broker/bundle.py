"""A gateway's installer bundle (`gumei gateway bundle`): everything one gateway needs, nothing else.

Written into one new directory, to be copied onto the gateway's `/etc/gumei` (or `--install-dir`):

| file | what | mode |
|---|---|---|
| `gateway.toml` | its config: site, broker URL and files, queue, and its devices from the registry (the scales' categories and capacities; a health hut's instruments and their characteristics) | 0644 |
| `ca.crt` | the CA that signed the broker's certificate | 0644 |
| `mqtt-password` | its own broker password, one line | 0600 |
| `mqtt-password.next` | its staged next password, while a rotation is staged (`gumei broker rotate --stage`) | 0600 |
| `<site>.crt`, `<site>.key` | its client certificate, when the broker was generated with `--client-certs` | 0644 / 0600 |
| `district.key` | the district key, only for a health hut or a station with a card reader (`cards`) | 0600 |
| `INSTALL.txt` | a one-page install sheet, Chinese and English, with the `check-config` command | 0644 |

The config names the wiring the registry does not know (serial ports, Modbus addresses, Bluetooth
addresses) with the usual defaults, each marked `# SET` for the installer; `gumei edge
check-config` validates the result on the gateway. The config is validated here by the same
models the gateway loads (`edge.config`), so a bundle never carries a config its gateway refuses.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from broker.generate import pending_rotations
from cloud.registry import Registry, Site
from edge.config import GatewayConfig, HutConfig
from runtime.system import ServiceError, write_private

# The characteristics each instrument type is read through (edge/ble/decode.py).
CHARACTERISTICS = {
    "blood_pressure": ["2a35"],
    "body_composition": ["2a9d", "2a9c"],
    "body_temperature": ["2a1c"],
    "blood_glucose": ["2a18", "2a34"],
    "pulse_oximetry": ["2a5e"],
}


def _q(value: str) -> str:
    """A TOML basic string (ids, paths and URLs: JSON's escaping is TOML's for these)."""
    return json.dumps(value, ensure_ascii=False)


def _waste_devices(site: Site, cards: bool, install: Path) -> list[str]:
    lines: list[str] = []
    if cards:
        lines += [
            "",
            "[cards]                                # the resident card reader (docs/edge.md)",
            f"district_key_file = {_q(str(install / 'district.key'))}",
            'reader_port = "/dev/ttyACM0"          # SET: the card reader\'s serial port',
        ]
    serial = modbus = 0
    for d in site.devices:
        if d.retired:
            continue
        lines += ["", "[[devices]]", f"id = {_q(d.id)}", f"category = {_q(str(d.category))}"]
        if d.interface == "modbus":
            lines += [
                'interface = "modbus"',
                f'host = "192.168.10.{21 + modbus}"          # SET: the transmitter\'s address',
            ]
            modbus += 1
        else:
            lines += [
                'interface = "serial"',
                f'port = "/dev/ttyUSB{serial}"              # SET: the indicator\'s serial port',
            ]
            serial += 1
        if d.capacity_kg is not None:
            lines.append(f"capacity_kg = {d.capacity_kg:g}")
    return lines


def _hut_section(site: Site, install: Path) -> list[str]:
    lines = [
        "",
        "[hut]",
        f"district_key_file = {_q(str(install / 'district.key'))}",
        "",
        "[hut.card_reader]",
        f"id = {_q(site.id + '-CARD')}",
        'transport = "serial"',
        'port = "/dev/ttyACM0"                  # SET: the card reader\'s serial port',
    ]
    serial = 1  # ttyUSB0 is left to whatever else; the station is on its own adapter
    for i, d in enumerate(x for x in site.devices if not x.retired):
        lines += ["", "[[hut.instruments]]", f"id = {_q(d.id)}"]
        if d.interface == "serial":  # a height/weight station's RS-232 line
            lines += [
                'transport = "serial"',
                f'port = "/dev/ttyUSB{serial}"              # SET: the station\'s serial port',
            ]
            serial += 1
        elif d.interface == "manual":  # the staff's entry terminal on the hut's network
            lines += [
                'transport = "socket"',
                'host = "192.168.10.21"                # SET: the entry terminal\'s address',
                "port = 7031",
            ]
        else:
            chars = ", ".join(_q(c) for c in CHARACTERISTICS.get(str(d.type), []))
            lines += [
                'transport = "ble"',
                f'address = "00:00:00:00:00:{i + 1:02X}"       # SET: bluetoothctl devices',
                f"characteristics = [{chars}]",
            ]
    return lines


def gateway_toml(
    site: Site,
    broker_url: str,
    install: Path,
    cards: bool,
    client_cert: bool,
    queue_dir: Path = Path("/var/lib/gumei-edge"),
) -> str:
    """The gateway's config text for this site, with its devices from the registry."""
    lines = [
        f"# {site.id} ({site.name}): written by `gumei gateway bundle` from the site registry.",
        "# Lines marked SET name wiring the registry does not know: check them, then run",
        f"#   gumei edge check-config --config {install / 'gateway.toml'}",
        f"site = {_q(site.id)}",
        "",
        "[broker]",
        f"url = {_q(broker_url)}",
        f"ca_file = {_q(str(install / 'ca.crt'))}",
        f"credentials_file = {_q(str(install / 'mqtt-password'))}",
    ]
    if client_cert:
        lines += [
            f"cert_file = {_q(str(install / (site.id + '.crt')))}",
            f"key_file = {_q(str(install / (site.id + '.key')))}",
        ]
    lines += ["", "[queue]", f"path = {_q(str(queue_dir / 'queue.db'))}"]
    if site.kind == "health":
        lines += _hut_section(site, install)
    else:
        lines += _waste_devices(site, cards, install)
    return "\n".join(lines) + "\n"


INSTALL_SHEET = """\
{site} 网关安装单 / gateway install sheet
================================================

站点 Site: {site} — {name} (area {area}, {kind})
生成 Made by: gumei gateway bundle; 本目录只含本网关的凭据 / this folder holds this gateway's credentials only.

1. 复制到网关 Copy onto the gateway (as root):
     install -d -m 0750 {install}; install -d -m 0750 {queue_dir}
     install -m 0644 gateway.toml ca.crt {install}/
     install -m 0600 {secrets} {install}/
2. 按现场接线修改标有 SET 的行 / Edit the lines marked SET to the site's wiring
   (serial ports, Modbus addresses, Bluetooth addresses).
3. 检查配置 Check the config (it reads every file it names):
     gumei edge check-config --config {install}/gateway.toml
4. 启动服务 Start the service:
     systemctl enable --now {unit}
5. 交付后销毁本目录副本 / Destroy other copies of this folder after the install:
   它含有本网关的密码{key_note}. It holds this gateway's password{key_note_en}.

密码轮换 Password rotation, no downtime: the operator stages a new password
(`gumei broker rotate {site} --stage`) and makes a new bundle; install its mqtt-password.next
beside mqtt-password (0600, no restart). When the broker switches (--commit, or the grace time),
the gateway uses the staged password by itself and makes it its mqtt-password.
"""


@dataclass(frozen=True)
class Bundle:
    """What was written."""

    out: Path
    files: tuple[str, ...]


def write_bundle(
    out: Path,
    registry: Registry,
    site_id: str,
    broker_dir: Path,
    broker_url: str,
    install: Path = Path("/etc/gumei"),
    district_key: Path | None = None,
    cards: bool = False,
    queue_dir: Path = Path("/var/lib/gumei-edge"),
) -> Bundle:
    """Write one gateway's bundle into out (a new or empty directory); one-line ServiceError otherwise."""
    site = registry.site(site_id)
    if site is None:
        raise ServiceError(f"no site {site_id} in the registry")
    if site.retired:
        raise ServiceError(f"site {site_id} is retired: it has no broker identity")
    if site.kind not in ("waste", "health"):
        raise ServiceError(
            f"{site_id} is a {site.kind}: its config is written by hand from "
            "config/weighbridge.sample.toml (docs/weighbridge.md); no bundle yet"
        )
    needs_key = site.kind == "health" or cards
    if needs_key and district_key is None:
        raise ServiceError(
            f"{site_id} pseudonymizes resident cards: give --district-key (the district key file)"
        )
    if not needs_key and district_key is not None:
        raise ServiceError(
            f"{site_id} has no card reader: it gets no district key (add --cards if it has one)"
        )
    secrets_path = broker_dir / "secrets" / "mqtt.json"
    try:
        passwords = json.loads(secrets_path.read_text())
    except OSError as exc:
        raise ServiceError(f"cannot read {secrets_path}: {exc.strerror or exc}") from None
    if site_id not in passwords:
        raise ServiceError(
            f"{site_id} has no broker password in {secrets_path}: run gumei broker sync first"
        )
    ca = broker_dir / "tls" / "ca.crt"
    if not ca.exists():
        raise ServiceError(f"no {ca}: run gumei broker gen --out {broker_dir} first")
    if out.exists() and any(out.iterdir()):
        raise ServiceError(f"{out} is not empty: a bundle goes into a new directory")
    certs = broker_dir / "tls" / "clients"
    client_cert = (certs / f"{site_id}.crt").exists()
    text = gateway_toml(site, broker_url, install, cards, client_cert, queue_dir)
    model = HutConfig if site.kind == "health" else GatewayConfig
    model.model_validate(tomllib.loads(text))  # the gateway's own models: never a refused config

    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = ["gateway.toml", "ca.crt", "mqtt-password"]
    (out / "gateway.toml").write_text(text, encoding="utf-8")
    shutil.copyfile(ca, out / "ca.crt")
    write_private(out / "mqtt-password", passwords[site_id] + "\n")
    secret_files = ["mqtt-password"]
    if client_cert:
        shutil.copyfile(certs / f"{site_id}.crt", out / f"{site_id}.crt")
        write_private(out / f"{site_id}.key", (certs / f"{site_id}.key").read_text())
        files += [f"{site_id}.crt", f"{site_id}.key"]
        secret_files.append(f"{site_id}.key")
    staged = pending_rotations(broker_dir).get(site_id)
    if staged is not None:  # a staged rotation: the gateway switches when the broker does
        write_private(out / "mqtt-password.next", staged["password"] + "\n")
        files.append("mqtt-password.next")
        secret_files.append("mqtt-password.next")
    if district_key is not None:
        write_private(out / "district.key", district_key.read_text())
        files.append("district.key")
        secret_files.append("district.key")
    sheet = INSTALL_SHEET.format(
        site=site_id,
        name=site.name,
        area=site.area,
        kind="health hut 健康小屋" if site.kind == "health" else "waste station 投放点",
        install=install,
        queue_dir=queue_dir,
        secrets=" ".join(secret_files),
        unit="gumei-hut" if site.kind == "health" else "gumei-edge",
        key_note="和社区密钥" if district_key is not None else "",
        key_note_en=" and the district key" if district_key is not None else "",
    )
    (out / "INSTALL.txt").write_text(sheet, encoding="utf-8")
    files.append("INSTALL.txt")
    return Bundle(out, tuple(files))
