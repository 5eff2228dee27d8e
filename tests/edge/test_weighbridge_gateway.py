"""The weighbridge gateway's parts around the pure core: operator input (typed lines, card swipes,
garbage), the durable ticket book, the config with one-line errors, and the CLI commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contract import Category, Subcategory
from edge.config import load_config
from edge.errors import ConfigError
from edge.weighbridge.operator import MAX_LINE, OperatorInput, load_book, save_book
from edge.weighbridge.tickets import OperatorEntry, TicketBook, Weighing
from tests.support.common import gumei

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "weighbridge.sample.toml"
CARDS = {
    "0012345678": {
        "plate": "沪A12345",
        "category": "recyclable",
        "subcategory": "metal",
        "source_area": "A07",
        "tare": "stored",
    }
}


def test_operator_input_reads_only_new_complete_lines(tmp_path: Path) -> None:
    f = tmp_path / "op.jsonl"
    f.write_text('{"plate": "沪A00001", "category": "dry", "source_area": "A01"}\n')
    op = OperatorInput(f, CARDS)
    assert op.poll() == []  # what was there before the gateway started is not for this truck
    with f.open("a", encoding="utf-8") as w:
        w.write('{"plate": " 沪b00002 ", "category": "wet", "source_area": "A02"}\n{"card": "00123')
    [typed] = op.poll()
    assert typed.plate == "沪B00002" and typed.category is Category.WET  # normalised
    with f.open("a", encoding="utf-8") as w:
        w.write('45678"}\n')
    [swiped] = op.poll()
    assert (swiped.plate, swiped.plate_source, swiped.subcategory, swiped.tare) == (
        "沪A12345",
        "card",
        Subcategory.METAL,
        "stored",
    )


def test_operator_garbage_is_counted_and_skipped(tmp_path: Path) -> None:
    f = tmp_path / "op.jsonl"
    f.touch()
    op = OperatorInput(f, CARDS)
    op.poll()
    lines = [
        b"not json",
        b"\xff\xfe",
        b"[" * 4000,  # nested too deeply for json, under MAX_LINE
        b'{"card": "99999999"}',
        b'{"card": 12}',
        b'{"plate": "AB12345", "category": "dry", "source_area": "A01"}',
        b'{"plate": "\xe6\xb2\xaaA00003", "category": "dry", "source_area": "A01", "x": 1}',
        b'{"plate": "\xe6\xb2\xaaA00003", "category": "recyclable", "source_area": "A01"}',
        b'"' + b"x" * (MAX_LINE + 10) + b'"',
        b'{"plate": "\xe6\xb2\xaaA00004"}',
    ]
    f.write_bytes(b"\n".join(lines) + b"\n" + b"y" * (MAX_LINE + 1))
    [ok] = op.poll()
    assert ok.plate == "沪A00004"
    assert op.bad == {"not_json": 3, "unknown_card": 2, "invalid": 3, "too_long": 2}


def test_ticket_book_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "book.json"
    book = TicketBook(stored_tares={"沪A12345": 9_000_000})
    e = OperatorEntry(plate="沪C55555", category=Category.DRY, source_area="A03")
    book.weighed(Weighing(e, 14_000_000, 1000))
    save_book(state, book)
    again = load_book(state, TicketBook(stored_tares={"沪A12345": 1, "沪D1234挂": 5}))
    assert again.open == book.open
    assert again.stored_tares == {"沪A12345": 9_000_000, "沪D1234挂": 5}  # learned beats config
    [draft] = again.weighed(Weighing(OperatorEntry(plate="沪C55555"), 8_000_000, 5000))
    assert draft.net_g == 6_000_000  # type: ignore[union-attr]
    state.write_text('{"open": [{"entry": {"plate": 1}}]}')
    with pytest.raises(ConfigError, match="is damaged"):
        load_book(state, TicketBook())


def files_for(sample: Path, tmp_path: Path) -> Path:
    text = sample.read_text(encoding="utf-8")
    for old in ("/etc/gumei/mqtt-password", "/var/lib/gumei-edge/", "/etc/gumei/ca.crt"):
        new = {
            "/etc/gumei/mqtt-password": str(tmp_path / "pw"),
            "/var/lib/gumei-edge/": f"{tmp_path}/",
            "/etc/gumei/ca.crt": str(tmp_path / "ca.crt"),
        }[old]
        text = text.replace(old, new)
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "pw").chmod(0o600)
    (tmp_path / "ca.crt").write_text("x")
    out = tmp_path / "wb.toml"
    out.write_text(text, encoding="utf-8")
    return out


def test_sample_config_is_valid_and_checked_by_the_cli(tmp_path: Path) -> None:
    cfg = files_for(SAMPLE, tmp_path)
    assert load_config(cfg).site == "WB-01"
    r = gumei("edge", "check-config", "--config", str(cfg))
    assert "(weighbridge)" in r.stdout and "WB-01-B1" in r.stdout


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('site = "WB-01"', 'site = "WX-01"', "a weighbridge's site id starts with WB-"),
        ('id = "WB-01-B1"', 'id = "WB-02-B1"', "must start with the site id WB-01-"),
        ('mode = "tf0"', 'mode = "tf1"', "weighbridge.mode"),
        ("empty_kg = 200", "empty_kg = 2000", "empty_kg must be below min_truck_kg"),
        ('"沪A12345" = 9870', '"沪A12345" = -1', "weighbridge.stored_tares_kg"),
        ('subcategory = "paper", ', "", "subcategory is required"),
    ],
)
def test_config_mistakes_are_one_line_each(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    cfg = files_for(SAMPLE, tmp_path)
    text = cfg.read_text(encoding="utf-8")
    assert old in text
    cfg.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert message in str(err.value)
    r = gumei("edge", "check-config", "--config", str(cfg), check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_sim_weighbridge_command(tmp_path: Path) -> None:
    op = tmp_path / "op.jsonl"
    link = tmp_path / "ttyWB"
    r = gumei(
        "sim", "weighbridge", "--operator-file", str(op), "--trucks", "3", "--speed", "40",
        "--stored-every", "3", "--link", str(link),
    )  # fmt: skip
    out = r.stdout.splitlines()
    assert out[0].startswith("weighbridge: indicator on /dev/pts/")
    planned = [json.loads(x) for x in out if x.startswith("{")]
    assert len(planned) == 3 and all(p["net_g"] == p["gross_g"] - p["tare_g"] for p in planned)
    stored = json.loads(out[1].split("=", 1)[1])
    assert stored == {planned[2]["plate"]: planned[2]["tare_g"] // 1000}
    entries = [json.loads(x) for x in op.read_text(encoding="utf-8").splitlines()]
    assert len(entries) == 3 + 2  # three grosses, two tares (the third truck's tare is stored)
    assert not link.exists()
    bad = gumei("sim", "weighbridge", "--operator-file", str(op), "--mode", "x", check=False)
    assert bad.returncode != 0 and "--mode must be tf0 or eq" in bad.stderr
    assert shutil.which("true")  # the CLI ran as a user runs it (subprocess), not in-process
