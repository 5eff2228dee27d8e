"""`gumei dashboards generate|push|render`: malformed arguments are refused without a trace, push reads
InfluxDB settings from the cloud config and Grafana's from options or GUMEI_GRAFANA_*, and push failures
are one line (against the Grafana API stand-in, tests/support/grafana_stub.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from matplotlib import ft2font
from matplotlib.font_manager import findfont
from typer.testing import CliRunner

from dashboards import generate as gen
from dashboards.influxql import DATASOURCE_UID
from dashboards.render import _text
from devstack.services import free_port
from gumei.cli import app
from tests.support.common import PROJECT, gumei
from tests.support.grafana_stub import GrafanaStub

TOKEN = "glsa_cli_token"


@pytest.fixture
def grafana() -> Iterator[GrafanaStub]:
    stub = GrafanaStub(TOKEN)
    stub.start()
    yield stub
    stub.stop()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cloud.toml"
    path.write_text(
        "[influx]\nurl = 'http://influx.internal:8086'\ndatabase = 'gumei_prod'\nauth = 'basic'\n"
        "[influx.grafana]\nusername = 'grafana_reader'\npassword = 'r3ader'\n"
    )  # Grafana's own read-only user
    return path


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["dashboards", "push", "--url", "grafana:3000", "--token", "t"],
            "not an http:// or https:// URL",
        ),
        (["dashboards", "push", "--url", "http://grafana:3000", "--token", "  "], "empty token"),
        (["dashboards", "push", "--url", "http://grafana:3000"], "--token"),
        (
            [
                "dashboards",
                "push",
                "--url",
                "http://grafana:3000",
                "--token",
                "t",
                "--timeout",
                "0",
            ],
            "greater than 0",
        ),
        (
            [
                "dashboards",
                "push",
                "--url",
                "http://grafana:3000",
                "--token",
                "t",
                "--timeout",
                "soon",
            ],
            "--timeout",
        ),
        (["dashboards", "render", "--var", "station"], "NAME=VALUE"),
        (["dashboards", "render", "--var", "=WS-0101"], "NAME=VALUE"),
        (["dashboards", "render", "--from", "2025-02-30"], "2025-02-30"),
        (
            ["dashboards", "render", "--from", "2025-03-02", "--to", "2025-03-01"],
            "--to is not after --from",
        ),
        (["dashboards", "generate", "--no-such-option"], "--no-such-option"),
        (["dashboards", "nonsense"], "nonsense"),
    ],
)
def test_malformed_arguments_are_refused(args: list[str], fragment: str) -> None:
    result = CliRunner().invoke(
        app, args, env={"GUMEI_GRAFANA_URL": None, "GUMEI_GRAFANA_TOKEN": None}
    )
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.replace("│", " ").split())  # rich draws the error in a box
    assert fragment in flat, flat
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_push_reads_influx_from_the_config_and_grafana_from_the_environment(
    grafana: GrafanaStub, config: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONWARNINGS": "ignore",
        "GUMEI_GRAFANA_URL": grafana.url,
        "GUMEI_GRAFANA_TOKEN": TOKEN,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "gumei.cli", "dashboards", "push", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=PROJECT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "data source: created" in proc.stdout and proc.stdout.count(": created") == 2 + len(
        gen.BUILDERS
    )
    ds = grafana.datasources[DATASOURCE_UID]
    assert (ds["url"], ds["user"], ds["jsonData"]["dbName"]) == (
        "http://influx.internal:8086",
        "grafana_reader",
        "gumei_prod",
    )
    assert grafana.secrets[DATASOURCE_UID] == {"password": "r3ader"}
    assert {e["dashboard"]["uid"] for e in grafana.dashboards.values()} == {
        d["uid"] for d in gen.load().values()
    }
    # options win over the environment; --influx-url is how Grafana reaches InfluxDB
    again = gumei(
        "dashboards",
        "push",
        "--config",
        str(config),
        "--url",
        grafana.url,
        "--token",
        TOKEN,
        "--influx-url",
        "http://10.0.0.5:8086",
    )
    assert "data source: updated" in again.stdout and again.stdout.count(": unchanged") == 1 + len(
        gen.BUILDERS
    )
    assert grafana.datasources[DATASOURCE_UID]["url"] == "http://10.0.0.5:8086"


def test_bad_token_is_one_line(grafana: GrafanaStub, config: Path) -> None:
    proc = gumei(
        "dashboards",
        "push",
        "--config",
        str(config),
        "--url",
        grafana.url,
        "--token",
        "glsa_wrong",
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.count("\n") == 1
        and proc.stderr.startswith("gumei: error: Grafana at ")
        and "refused the token" in proc.stderr
    )
    assert "glsa_wrong" not in proc.stderr + proc.stdout


def test_nothing_listening_is_one_line(config: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = gumei(
        "dashboards", "push", "--config", str(config), "--url", url, "--token", TOKEN, check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        f"gumei: error: cannot reach Grafana at {url}"
    )


def test_generate_into_other_folders_equals_the_committed_files(tmp_path: Path) -> None:
    out = gumei(
        "dashboards",
        "generate",
        "--out",
        str(tmp_path / "json"),
        "--provisioning",
        str(tmp_path / "prov"),
        "--gazetteer",
        str(tmp_path / "gaz" / "sites.json"),
    ).stdout.split()
    assert {Path(p).name for p in out} >= {f"{n}.json" for n in gen.BUILDERS} | {"sites.json"}
    for name in gen.BUILDERS:
        assert (tmp_path / "json" / f"{name}.json").read_text(encoding="utf-8") == (
            gen.JSON_DIR / f"{name}.json"
        ).read_text(encoding="utf-8")
    assert json.loads((tmp_path / "gaz" / "sites.json").read_text(encoding="utf-8")) == json.loads(
        gen.GAZETTEER_PATH.read_text(encoding="utf-8")
    )
    for committed in gen.PROVISIONING_DIR.rglob("*.yaml"):
        assert (
            tmp_path / "prov" / committed.relative_to(gen.PROVISIONING_DIR)
        ).read_text() == committed.read_text()


def _labels(doc: dict) -> list[str]:
    """Every text render draws from a dashboard: titles, aliases and display-name overrides."""
    out = [doc["title"]]
    for p in doc.get("panels", []):
        out.append(p.get("title", ""))
        out += [t["alias"] for t in p.get("targets", []) if t.get("alias")]
        out += [
            prop["value"]
            for o in p.get("fieldConfig", {}).get("overrides", [])
            for prop in o["properties"]
            if prop["id"] == "displayName"
        ]
    return out


def test_without_a_cjk_font_every_label_has_glyphs_in_dejavu_sans() -> None:
    """Without fonts-wqy-microhei, render keeps only the English half of each label; that half must be
    drawable with matplotlib's bundled DejaVu Sans (no missing-glyph boxes, no warnings)."""
    charmap = set(ft2font.FT2Font(findfont("DejaVu Sans")).get_charmap())
    for name, doc in gen.load().items():
        for label in _labels(doc):
            text = _text(label, False)
            assert text.strip(), f"{name}: {label!r} has no English half"
            missing = {c for c in text if ord(c) not in charmap and not c.isspace()}
            assert not missing, f"{name}: {label!r} needs a CJK font for {missing}"
