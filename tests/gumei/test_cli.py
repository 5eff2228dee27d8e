"""The `gumei` command line and config files: malformed input gives one clear line, never a trace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud.settings import SettingsError, load_settings
from tests.support.common import gumei


@pytest.mark.parametrize(
    ("toml", "fragment"),
    [
        ("[influx\n", "Expected ']'"),
        ("[influx]\nurl = 3\n", "influx.url"),
        ("[influx]\nauth = 'kerberos'\n", "influx.auth"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("nonsense = 1\n", "nonsense"),
        ("aggregate_interval_s = 0\n", "aggregate_interval_s"),
        ("environment = 'production'\n", "production needs InfluxDB auth"),
    ],
)
def test_bad_config_files(tmp_path: Path, toml: str, fragment: str) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text("[influx]\nurl = 'http://file:8086'\ndatabase = 'fromfile'\n")
    monkeypatch.setenv("GUMEI_INFLUX__URL", "http://env:8086")
    s = load_settings(path)
    assert (s.influx.url, s.influx.database) == ("http://env:8086", "fromfile")


def test_missing_config_file_is_one_line() -> None:
    proc = gumei("aggregate", "run", "--config", "/nonexistent/cloud.toml", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "gumei: error: config file /nonexistent/cloud.toml does not exist"


def test_bad_config_via_cli_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text("[influx]\nurl = 3\n")
    proc = gumei("ingest", "--config", str(path), check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "influx.url" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["aggregate", "backfill", "2025-02-30", "2025-03-01"],
        ["aggregate", "backfill", "2025-03-02", "2025-03-01"],
        ["sim", "fleet", "--port", "notaport", "--secrets", "x.json"],
        ["token", "create", "--role", "operator"],
        ["no-such-command"],
    ],
)
def test_bad_arguments_are_refused_without_a_trace(args: list[str]) -> None:
    proc = gumei(*args, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_role_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(f"tokens = '{tmp_path / 'tokens.json'}'\n")
    proc = gumei(
        "token", "create", "--role", "root", "--name", "x", "--config", str(path), check=False
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == "gumei: error: role must be one of operator, health, admin, inspector"
    )


def test_token_lifecycle_via_cli(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(f"tokens = '{tmp_path / 'tokens.json'}'\n")
    token = gumei(
        "token", "create", "--role", "health", "--name", "nurse", "--config", str(path)
    ).stdout.strip()
    token_id = token.split("_")[1]
    assert token not in (tmp_path / "tokens.json").read_text()  # stored hashed
    listing = gumei("token", "list", "--config", str(path)).stdout
    assert f"{token_id}\thealth\tnurse\tactive" in listing
    gumei("token", "revoke", token_id, "--config", str(path))
    assert "revoked" in gumei("token", "list", "--config", str(path)).stdout
    bad = gumei("token", "revoke", "ffff", "--config", str(path), check=False)
    assert bad.returncode == 2 and "no token with id ffff" in bad.stderr


def test_sim_fleet_with_unreadable_secrets(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{broken")
    proc = gumei(
        "sim", "fleet", "--port", "1883", "--secrets", str(tmp_path / "s.json"), check=False
    )
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_a_command_whose_extra_is_missing_says_which_to_install(tmp_path: Path) -> None:
    """A base install (no [render] extra): `gumei dashboards render` names the extra, no trace."""
    hidden = tmp_path / "hide" / "matplotlib"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    proc = gumei("dashboards", "render", check=False, env={"PYTHONPATH": str(tmp_path / "hide")})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "gumei: error: this command needs matplotlib, which is in the optional extra [render]: "
        "pip install 'gumei-iot[render]'"
    )


@pytest.mark.parametrize(
    ("transfer", "fragment"),
    [
        ("WS-0101", "WS-0101 is not a weighbridge"),  # a station has a password, is no weighbridge
        ("WB-99", "no password for the weighbridge WB-99"),
        ("'; DROP", "is not a weighbridge"),  # not in the registry at all
    ],
)
def test_sim_fleet_transfer_must_be_a_registered_weighbridge(
    tmp_path: Path, transfer: str, fragment: str
) -> None:
    """`gumei sim fleet --transfer`: anything but a weighbridge of the registry with a password is
    one clear error before any connection."""
    from cloud import registry as registry_mod

    reg = registry_mod.load()
    secrets = tmp_path / "mqtt.json"
    secrets.write_text(
        json.dumps({s.id: "pw" for s in reg.sites if s.kind == "waste"} | {"'; DROP": "pw"})
    )
    proc = gumei(
        "sim",
        "fleet",
        "--port",
        "1",
        "--secrets",
        str(secrets),
        "--transfer",
        transfer,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert fragment in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr
