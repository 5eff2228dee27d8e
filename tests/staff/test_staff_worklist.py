"""The follow-up worklist on the real influxd and API, driven by the staff tool (`gumei health …`)
through a recording proxy: readings over several days -> the aggregator's health pass -> follow-ups
(one per resident and reason, overdue after the due day) -> contacted, closed; names come from the
local roster and no name or card number ever reaches the API (nor its audit log)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import os
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cloud import measurements as m
from cloud.health.followups import followup_id
from cloud.health.lines import health_line
from cloud.health.worklist import health_pass
from cloud.influx import InfluxClient
from contract import HealthMeasurement
from contract.days import day_start_ms, number_of, today
from contract.pseudonym import pseudonymize
from devstack.stack import LocalStack
from tests.support.common import gumei

DAYS = [dt.date(2022, 9, 13) + dt.timedelta(days=i) for i in range(3)]  # this test's own days
NAMES = {"zhang": "张伟", "li": "李娜", "wang": "王芳"}


@dataclasses.dataclass
class Recorded:
    """Every request the API received through the proxy: request line, headers, body (raw bytes)."""

    requests: list[bytes] = dataclasses.field(default_factory=list)


class _Proxy(http.server.ThreadingHTTPServer):
    upstream: str
    record: Recorded


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Proxy

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        raw = f"{self.command} {self.path}\n{self.headers}".encode() + body
        self.server.record.requests.append(raw)
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        r = httpx.request(
            self.command,
            self.server.upstream + self.path,
            headers=headers,
            content=body,
            timeout=30,
        )
        self.send_response(r.status_code)
        self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    do_GET = do_POST = _forward  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def proxy(api_url: str) -> Iterator[tuple[str, Recorded]]:
    server = _Proxy(("127.0.0.1", 0), _Handler)
    server.upstream, server.record = api_url, Recorded()
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.record
    server.shutdown()
    server.server_close()


@dataclasses.dataclass
class Team:
    """The staff machine's files and what the test knows about its residents."""

    env: dict[str, str]
    cards: dict[str, str]  # who -> card number
    pseudonyms: dict[str, str]  # who -> pseudonym
    roster: Path
    token: str


def _private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def team(
    stack: LocalStack, tmp_path_factory: pytest.TempPathFactory, proxy: tuple[str, Recorded]
) -> Team:
    d = tmp_path_factory.mktemp("staff")
    key = os.urandom(16)  # this test's own district: its pseudonyms exist nowhere else
    cards = {who: "C" + secrets.token_hex(6).upper() for who in NAMES}
    roster = _private(
        d / "roster.csv", "card,name\n" + "".join(f"{cards[w]},{NAMES[w]}\n" for w in NAMES)
    )
    token = stack.tokens().create("family doctor team 3", "health")
    env = {
        "GUMEI_STAFF_API": proxy[0],
        "GUMEI_STAFF_TOKEN_FILE": str(_private(d / "token", token + "\n")),
        "GUMEI_STAFF_KEY_FILE": str(_private(d / "district.key", key.hex())),
        "GUMEI_STAFF_ROSTER": str(roster),
    }
    return Team(env, cards, {w: pseudonymize(key, c) for w, c in cards.items()}, roster, token)


def _bp(
    resident: str, day: dt.date, hour: int, seq: int, sys_: float, dia: float
) -> HealthMeasurement:
    return HealthMeasurement.model_validate(
        {
            "device": "HH-01-BP",
            "seq": seq,
            "ts": day_start_ms(number_of(day)) + hour * 3_600_000,
            "resident": resident,
            "type": "blood_pressure",
            "values": {"systolic_mmhg": sys_, "diastolic_mmhg": dia},
        }
    )


def _glucose(resident: str, day: dt.date, seq: int, mmol: float, meal: str) -> HealthMeasurement:
    return HealthMeasurement.model_validate(
        {
            "device": "HH-01-GLU",
            "seq": seq,
            "ts": day_start_ms(number_of(day)) + 9 * 3_600_000,
            "resident": resident,
            "type": "blood_glucose",
            "values": {"glucose_mmol_l": mmol, "meal": meal},
        }
    )


@pytest.fixture(scope="module")
def passed(stack: LocalStack, team: Team) -> dict[str, int]:
    """Readings over three days written where ingestion puts them, then the health pass, twice."""
    z, li, w = (team.pseudonyms[k] for k in ("zhang", "li", "wang"))
    base = secrets.randbelow(10**9) * 100
    ms = [
        *(
            _bp(z, day, 9, base + i, 142, 88) for i, day in enumerate(DAYS)
        ),  # raised on 3 days: refer
        _glucose(z, DAYS[0], base + 10, 7.4, "fasting"),  # refer
        _bp(li, DAYS[1], 8, base + 20, 185, 95),  # urgent at once
        _bp(li, DAYS[1], 10, base + 21, 150, 90),  # same reason: attaches
        *(_bp(w, day, 9, base + 30 + i, 140, 80) for i, day in enumerate(DAYS[:2])),  # 2 days: none
        _glucose(w, DAYS[2], base + 40, 9.0, "random"),  # random, never the fasting cut-off: normal
    ]
    lines = "\n".join(health_line("HH-01", x) for x in ms).encode()
    with InfluxClient(stack.influx_config("ingest")) as ingest:
        ingest.write_lines(lines, db=ingest.health_db)
    with InfluxClient(stack.influx_config("aggregate")) as agg:
        first = health_pass(agg, [number_of(d) for d in DAYS], today(), k=5)
        again = health_pass(agg, [number_of(d) for d in DAYS[1:]], today(), k=5)  # reprocessing
        q = f'SELECT count("tier") FROM {m.HEALTH_FOLLOWUP.name} WHERE "resident" = \'{z}\' OR "resident" = \'{li}\' OR "resident" = \'{w}\''
        series = agg.query(q, db=agg.health_db)
        stored = int(series[0].values[0][1]) if series else 0
    return {"first": first, "again": again, "stored": stored}


def _api(
    api_url: str, path: str, token: str | None, method: str = "GET", **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, api_url + path, headers=headers, timeout=30, **kw)


def _mine(api_url: str, team: Team, status: str = "all") -> list[dict[str, Any]]:
    r = _api(api_url, "/api/v1/health/followups", team.token, params={"status": status})
    assert r.status_code == 200, r.text
    return [f for f in r.json()["followups"] if f["resident"] in team.pseudonyms.values()]


def test_one_followup_per_resident_and_reason_overdue_after_due(
    api_url: str, team: Team, passed: dict[str, int]
) -> None:
    # raised points: zhang 3 BP (the 3rd day's refers) + 1 glucose, li 2 BP, wang 2 BP (recheck:
    # they would join an open follow-up, open none); the second pass rewrote the same points
    assert passed["stored"] == 8 and passed["first"] == 8
    got = {(f["resident"], f["reason"]): f for f in _mine(api_url, team)}
    z, li = team.pseudonyms["zhang"], team.pseudonyms["li"]
    assert set(got) == {(z, "hypertension"), (z, "hyperglycaemia"), (li, "hypertension")}
    htn = got[(z, "hypertension")]
    assert (htn["tier"], htn["codes"], htn["readings"]) == ("refer", ["suspected_hypertension"], 1)
    assert htn["due"] == (DAYS[2] + dt.timedelta(days=14)).isoformat()
    urgent = got[(li, "hypertension")]
    assert (urgent["tier"], urgent["readings"], urgent["due"]) == ("urgent", 2, DAYS[1].isoformat())
    assert urgent["id"] == followup_id(li, "hypertension", 0)
    assert all(f["status"] == "overdue" for f in got.values())  # due days of 2022, today's clock


def test_roles_and_bad_input(
    api_url: str, team: Team, operator_token: str, passed: dict[str, int]
) -> None:
    assert _api(api_url, "/api/v1/health/followups", None).status_code == 401
    assert _api(api_url, "/api/v1/health/followups", operator_token).status_code == 403
    r = _api(api_url, "/api/v1/health/followups", team.token, params={"status": "gone"})
    assert r.status_code == 422
    r = _api(api_url, "/api/v1/health/followups", team.token, params={"reason": "x" * 500})
    assert r.status_code == 422
    fid = "f-" + "0" * 20
    assert (
        _api(api_url, f"/api/v1/health/followups/{fid}/contacted", team.token, "POST").status_code
        == 404
    )
    assert (
        _api(api_url, "/api/v1/health/followups/f-zz/contacted", team.token, "POST").status_code
        == 422
    )
    (f,) = [x for x in _mine(api_url, team) if x["reason"] == "hyperglycaemia"]
    for body in (
        {"outcome": "cured by magic"},
        {"outcome": "declined", "note": "Mr Zhang said no"},
        {},
    ):
        r = _api(
            api_url, f"/api/v1/health/followups/{f['id']}/close", team.token, "POST", json=body
        )
        assert r.status_code == 422, body  # fixed outcomes, no free text
    r = _api(
        api_url,
        f"/api/v1/health/followups/{f['id']}/close",
        operator_token,
        "POST",
        json={"outcome": "declined"},
    )
    assert r.status_code == 403
    r = _api(
        api_url,
        "/api/v1/health/followup-counts",
        operator_token,
        params={"start": "2022-09-01", "end": "2022-08-01"},
    )
    assert r.status_code == 422


def test_staff_tool_names_contacts_closes_and_looks_up(
    api_url: str, team: Team, passed: dict[str, int], proxy: tuple[str, Recorded], stack: LocalStack
) -> None:
    out = gumei("health", "worklist", "--status", "all", env=team.env).stdout
    mine = [line for line in out.splitlines() if any(n in line for n in NAMES.values())]
    assert (
        sum(NAMES["zhang"] in line for line in mine) == 2
        and sum(NAMES["li"] in line for line in mine) == 1
    )
    assert not any(NAMES["wang"] in line for line in mine)
    assert team.cards["li"] not in out and team.cards["li"][-4:] in out  # masked card numbers
    urgent = next(f for f in _mine(api_url, team) if f["tier"] == "urgent")
    assert (
        gumei("health", "contacted", urgent["id"], env=team.env).stdout.strip()
        == f"{urgent['id']}: contacted"
    )
    gumei("health", "contacted", urgent["id"], env=team.env)  # twice: no error, one event
    done = gumei("health", "close", urgent["id"], "--outcome", "referred_to_hospital", env=team.env)
    assert done.stdout.strip() == f"{urgent['id']}: closed (referred_to_hospital)"
    again = gumei(
        "health", "close", urgent["id"], "--outcome", "declined", env=team.env, check=False
    )
    assert again.returncode != 0 and "409" in again.stderr and "Traceback" not in again.stderr
    (closed,) = [f for f in _mine(api_url, team) if f["id"] == urgent["id"]]
    assert (closed["status"], closed["outcome"]) == ("closed", "referred_to_hospital")
    assert closed["contacted"] is not None
    # a card number typed at the staff machine finds the record; only its pseudonym goes out
    look = gumei(
        "health", "lookup", "--card", team.cards["zhang"], "--days", "366", env=team.env, timeout=60
    )
    assert NAMES["zhang"] in look.stdout and team.pseudonyms["zhang"] in look.stdout
    look = gumei(
        "health", "lookup", "--card", team.cards["zhang"], env=team.env
    )  # 2022 is > 90 days ago
    assert "no measurements in the last 90 days" in look.stdout and "hyperglycaemia" in look.stdout
    # nothing that identifies a person left this machine: not in any request, not in the audit log
    sent = b"\n".join(proxy[1].requests)
    assert sent and b"/api/v1/health/followups" in sent
    audit = (stack.root / "audit.jsonl").read_bytes()
    for who in NAMES:
        for secret in (team.cards[who], NAMES[who]):
            forms = {
                secret.encode(),
                urllib.parse.quote(secret).encode(),
                json.dumps(secret).encode(),
            }
            assert not any(f in sent or f in audit for f in forms), who
    # the worklist and the actions were audited, with the follow-up id and no resident identity
    records = [json.loads(x) for x in audit.splitlines()]
    assert any(r.get("followup") == urgent["id"] and r["status"] == 200 for r in records)


def test_staff_tool_errors_are_one_line(team: Team, tmp_path: Path) -> None:
    cases = [
        (("health", "contacted", "f-nothex"), "a follow-up id is f- and 20 hex digits"),
        (("health", "lookup", "--card", "12"), "a card number is 4-32 letters or digits"),
    ]
    loose = tmp_path / "roster.csv"
    loose.write_text(team.roster.read_text())
    loose.chmod(0o644)
    cases.append((("health", "worklist", "--roster", str(loose)), "readable by others; chmod 600"))
    bad = _private(tmp_path / "bad.csv", "name\n张伟\n")
    cases.append(
        (
            ("health", "worklist", "--roster", str(bad)),
            "needs a header line with the columns card,name",
        )
    )
    for args, message in cases:
        p = gumei(*args, env=team.env, check=False)
        assert p.returncode != 0 and message in p.stderr and "Traceback" not in p.stderr, (
            args,
            p.stderr,
        )
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not any(n in p.stderr for n in NAMES.values())


def test_operators_see_only_suppressed_counts(
    api_url: str, operator_token: str, passed: dict[str, int]
) -> None:
    day = today().isoformat()
    r = _api(
        api_url, "/api/v1/health/followup-counts", operator_token, params={"start": day, "end": day}
    )
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert r.json()["k"] == 5 and {x["state"] for x in rows} >= {"open", "overdue", "closed_week"}
    for x in rows:  # no pseudonym, no value: counts, or null when from fewer than k residents
        assert set(x) == {"date", "state", "reason", "followups", "suppressed"}
        assert (x["followups"] is None) == x["suppressed"]


def test_staff_tool_prints_a_resident_report_by_card(
    team: Team, passed: dict[str, int], proxy: tuple[str, Recorded], tmp_path: Path
) -> None:
    out = tmp_path / "zhang.html"
    done = gumei(
        "health", "report", "--card", team.cards["zhang"], "--end", str(DAYS[-1]),
        "--out", str(out), env=team.env, timeout=60,
    )  # fmt: skip
    assert NAMES["zhang"] in done.stdout  # the name is shown here, on the staff machine only
    page = out.read_text(encoding="utf-8")
    assert team.pseudonyms["zhang"] in page and "疑似高血压" in page  # raised on 3 days: refer
    assert NAMES["zhang"] not in page and team.cards["zhang"] not in page
    assert out.stat().st_mode & 0o077 == 0  # personal health data: owner-only
    sent = b"\n".join(proxy[1].requests)
    assert b"/report" in sent and team.cards["zhang"].encode() not in sent
    for args, says in [
        (("--end", "2022-13-01"), "--end '2022-13-01' is not a day YYYY-MM-DD"),
        (("--out", str(tmp_path / "nowhere" / "r.html")), "does not exist"),
    ]:
        base = ["health", "report", "--card", team.cards["zhang"], "--out", str(out)]
        bad = gumei(*base, *args, env=team.env, check=False)
        assert bad.returncode != 0 and says in bad.stderr and "Traceback" not in bad.stderr
