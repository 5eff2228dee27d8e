"""The audit trail of per-resident health data: one record per access (whatever the outcome), none lost
under concurrency, admin-only reading, bulk access flagged, never a raw card number."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cloud.audit import AuditLog, parse_since, utc_iso
from tests.support.api_process import api_process
from tests.support.common import gumei
from tests.support.health import DAY, pseudonym, seed_resident

CARD = "6222021234567890123"  # a card number someone types into a URL by mistake


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---- the file, without the API ----------------------------------------------------------------


def _append_many(path: str, worker: int, n: int) -> None:
    log = AuditLog(Path(path), bulk_residents=1000)
    for i in range(n):
        log.append(
            {
                "event": "access",
                "token_id": f"w{worker}",
                "resident": f"r-{worker:016x}{i:016x}",
                "status": 200,
            }
        )


def test_appends_from_several_processes_are_whole_lines_and_none_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 100)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = [
        r for r in records(path) if r["event"] == "access"
    ]  # json.loads of every line: none torn
    assert len(recs) == 400
    assert {(r["token_id"], r["resident"]) for r in recs} == {
        (f"w{w}", f"r-{w:016x}{i:016x}") for w in range(4) for i in range(100)
    }
    assert path.stat().st_mode & 0o077 == 0


def test_bulk_access_is_flagged_once_per_window_across_processes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.jsonl"
    now = [1_800_000_000.0]
    a = AuditLog(path, bulk_residents=3, bulk_window_s=3600, clock=lambda: now[0])
    b = AuditLog(
        path, bulk_residents=3, bulk_window_s=3600, clock=lambda: now[0]
    )  # another API process
    people = [pseudonym() for _ in range(6)]
    for i, r in enumerate(people[:3]):
        (a if i % 2 else b).append(
            {"event": "access", "token_id": "t1", "resident": r, "status": 200}
        )
    a.append(
        {"event": "access", "token_id": "t1", "resident": people[0], "status": 200}
    )  # same one again
    a.append(
        {"event": "access", "token_id": "t2", "resident": people[3], "status": 200}
    )  # another token
    a.append(
        {"event": "access", "token_id": "t1", "resident": people[4], "status": 403}
    )  # not a read
    assert not [r for r in records(path) if r["event"] == "bulk_access"]
    with caplog.at_level("WARNING", logger="gumei.audit"):
        written = a.append(
            {"event": "access", "token_id": "t1", "resident": people[5], "status": 200}
        )
    assert [w["event"] for w in written] == ["access", "bulk_access"]
    assert written[1]["residents"] == 4 and written[1]["threshold"] == 3
    assert len([m for m in caplog.messages if "bulk access" in m]) == 1
    b.append(
        {"event": "access", "token_id": "t1", "resident": pseudonym(), "status": 200}
    )  # b sees a's flag: not again
    assert len([r for r in records(path) if r["event"] == "bulk_access"]) == 1
    now[0] += 3601  # the window rolled on: the old reads no longer count
    b.append({"event": "access", "token_id": "t1", "resident": pseudonym(), "status": 200})
    assert len([r for r in records(path) if r["event"] == "bulk_access"]) == 1


def test_prune_removes_only_what_is_older_than_the_retention_and_records_itself(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    now = [1_700_000_000.0]
    log = AuditLog(path, retention_days=30, clock=lambda: now[0])
    for _ in range(5):
        log.append({"event": "access", "token_id": "old", "status": 200})
    now[0] += 20 * 86_400
    log.append({"event": "access", "token_id": "new", "status": 200})
    assert log.prune() == 0 and len(records(path)) == 6  # nothing old enough: untouched, no record
    now[0] += 15 * 86_400
    assert log.prune() == 5
    recs = records(path)
    assert [r.get("token_id") for r in recs] == ["new", None]
    assert (
        recs[-1]["event"] == "prune"
        and recs[-1]["removed"] == 5
        and recs[-1]["before"] == utc_iso(now[0] - 30 * 86_400)
    )
    assert path.stat().st_mode & 0o077 == 0


def test_read_filters_and_since() -> None:
    assert parse_since("7d", 1_000_000.0) == 1_000_000.0 - 7 * 86_400
    assert parse_since("2026-01-01", 0) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()
    with pytest.raises(ValueError, match="since must be like"):
        parse_since("last week", 0)


# ---- the real API process ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def audit_file(stack) -> Path:
    return stack.root / "audit.jsonl"  # default: beside the token store


@pytest.fixture(scope="module")
def tokens(stack) -> dict[str, str]:
    store = stack.tokens()
    return {
        role: store.create(f"audit test {role}", role) for role in ("operator", "health", "admin")
    }


@pytest.fixture(scope="module")
def seeded(influx) -> str:
    """A resident with three blood-pressure readings on DAY."""
    return seed_resident(influx)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_access_is_recorded_whatever_its_outcome(api_url, tokens, seeded, audit_file):
    base = f"/api/v1/health/residents/{seeded}"
    params = {"start": DAY, "end": DAY}
    with httpx.Client(base_url=api_url, timeout=30) as http:
        before = len(records(audit_file))
        got = [
            http.get(base + "/observations", params=params, headers=auth(tokens["health"])),
            http.get(base + "/fhir", params=params, headers=auth(tokens["health"])),
            http.get(base + "/observations", params=params),
            http.get(
                base + "/observations", params=params, headers=auth("gm_0123456789ab_" + "x" * 43)
            ),
            http.get(base + "/observations", params=params, headers=auth(tokens["operator"])),
            http.get(base + "/observations", params=params, headers=auth(tokens["admin"])),
            http.get(
                base + "/observations",
                params={"start": DAY, "end": CARD},
                headers=auth(tokens["health"]),
            ),
            http.get(base + "/nothing-here", headers=auth(tokens["health"])),
            http.get(
                f"/api/v1/health/residents/{CARD}/observations",
                params=params,
                headers=auth(tokens["health"]),
            ),
        ]
    assert [r.status_code for r in got] == [200, 200, 401, 401, 403, 403, 422, 404, 422]
    assert len(got[0].json()["observations"]) == 3
    new = records(audit_file)[before:]
    health_id = tokens["health"].split("_")[1]
    mine = [r for r in new if r.get("client") == "127.0.0.1" and r["event"] == "access"]
    assert [r["status"] for r in mine] == [200, 200, 401, 401, 403, 403, 422, 404, 422]
    ok = mine[0]
    assert (
        ok["token_id"] == health_id
        and ok["token_name"] == "audit test health"
        and ok["role"] == "health"
    )
    assert (
        ok["route"] == "/api/v1/health/residents/{resident}/observations" and ok["method"] == "GET"
    )
    assert (ok["resident"], ok["start"], ok["end"], ok["records"]) == (seeded, DAY, DAY, 3)
    assert dt.datetime.fromisoformat(ok["time"]).tzinfo is not None
    assert mine[1]["route"].endswith("/fhir") and mine[1]["records"] == 3
    assert mine[2]["token_id"] is None and mine[2]["role"] is None
    assert mine[3]["token_id"] == "0123456789ab" and mine[3]["role"] is None
    assert [(m["role"], m["token_id"]) for m in mine[4:6]] == [
        ("operator", tokens["operator"].split("_")[1]),
        ("admin", tokens["admin"].split("_")[1]),
    ]
    assert mine[4]["records"] is None
    assert mine[8]["resident"] == "invalid"
    text = audit_file.read_text()
    assert CARD not in text and CARD[:8] not in text  # only pseudonyms, never a card number
    assert not any(t.split("_", 2)[2] in text for t in tokens.values())  # never a secret


def test_no_record_is_lost_under_concurrent_requests(api_url, tokens, audit_file):
    people = [pseudonym() for _ in range(50)]
    with httpx.Client(
        base_url=api_url, timeout=60, limits=httpx.Limits(max_connections=50)
    ) as http:

        def one(resident: str) -> int:
            r = http.get(
                f"/api/v1/health/residents/{resident}/observations",
                params={"start": DAY, "end": DAY},
                headers=auth(tokens["health"]),
            )
            return r.status_code

        with ThreadPoolExecutor(50) as pool:
            assert list(pool.map(one, people)) == [200] * 50
    recs = [r for r in records(audit_file) if r.get("resident") in set(people)]
    assert sorted(r["resident"] for r in recs) == sorted(people)
    assert all(r["status"] == 200 and r["records"] == 0 for r in recs)


def test_only_admins_read_the_trail(api_url, tokens, seeded, cloud_config):
    with httpx.Client(base_url=api_url, timeout=30) as http:
        http.get(
            f"/api/v1/health/residents/{seeded}/observations",
            params={"start": DAY, "end": DAY},
            headers=auth(tokens["health"]),
        )
        for role in ("operator", "health"):
            assert http.get("/api/v1/admin/audit", headers=auth(tokens[role])).status_code == 403
        assert http.get("/api/v1/admin/audit").status_code == 401
        health_id = tokens["health"].split("_")[1]
        r = http.get(
            "/api/v1/admin/audit",
            params={"since": "1h", "token": health_id, "resident": seeded, "limit": 1},
            headers=auth(tokens["admin"]),
        )
        assert r.status_code == 200, r.text
        (rec,) = r.json()["records"]
        assert rec["resident"] == seeded and rec["token_id"] == health_id
        bad = http.get(
            "/api/v1/admin/audit", params={"since": "yesterday"}, headers=auth(tokens["admin"])
        )
        assert bad.status_code == 422 and "since must be like" in bad.json()["detail"]
    out = gumei(
        "audit", "list", "--config", str(cloud_config), "--resident", seeded, "--since", "1d"
    )  # on the cloud host
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert lines and all(x["resident"] == seeded for x in lines)


@pytest.fixture(scope="module")
def bulk_api(stack, cloud_config) -> Iterator[str]:
    """A second API process on the same files with a bulk threshold of 3 residents."""
    with api_process(stack, cloud_config, "api-bulk", {"GUMEI_AUDIT_BULK_RESIDENTS": "3"}) as url:
        yield url


def test_bulk_access_is_flagged_and_logged(bulk_api, stack, audit_file):
    token = stack.tokens().create("bulk reader", "health")
    token_id = token.split("_")[1]
    with httpx.Client(base_url=bulk_api, timeout=30, headers=auth(token)) as http:
        for _ in range(5):
            assert (
                http.get(
                    f"/api/v1/health/residents/{pseudonym()}/fhir",
                    params={"start": DAY, "end": DAY},
                ).status_code
                == 200
            )
    flags = [
        r for r in records(audit_file) if r["event"] == "bulk_access" and r["token_id"] == token_id
    ]
    assert (
        len(flags) == 1 and flags[0]["residents"] == 4 and flags[0]["token_name"] == "bulk reader"
    )
    logged = (stack.root / "logs" / "api-bulk.log").read_text()
    assert logged.count(f"bulk access: token {token_id}") == 1


def test_tokens_made_and_revoked_are_recorded(api_url, tokens, stack, cloud_config, audit_file):
    made = gumei(
        "token", "create", "--role", "health", "--name", "Dr Li", "--config", str(cloud_config)
    ).stdout.strip()
    made_id = made.split("_")[1]
    gumei("token", "revoke", made_id, "--config", str(cloud_config))
    admin = auth(tokens["admin"])
    over_api = httpx.post(
        api_url + "/api/v1/admin/tokens", json={"name": "desk", "role": "operator"}, headers=admin
    ).json()["id"]
    assert (
        httpx.delete(api_url + f"/api/v1/admin/tokens/{over_api}", headers=admin).status_code == 204
    )
    about = {
        r["subject_token"]: r
        for r in records(audit_file)
        if r.get("subject_token") == made_id and r["event"] == "token_created"
    }
    assert about[made_id]["role"] == "health" and about[made_id]["by"].startswith("cli:")
    events = [
        (r["event"], r.get("by", r.get("token_id")))
        for r in records(audit_file)
        if r.get("subject_token") == over_api
    ]
    assert events == [
        ("token_created", tokens["admin"].split("_")[1]),
        ("token_revoked", tokens["admin"].split("_")[1]),
    ]
    assert (
        made not in audit_file.read_text() and made.split("_", 2)[2] not in audit_file.read_text()
    )


def test_no_audit_record_no_data(stack, cloud_config, tmp_path):
    """When the audit file cannot be written, a per-resident route answers 503, not the data."""
    path = tmp_path / "audit.jsonl"
    env = {"GUMEI_AUDIT_LOG": str(path)}
    with api_process(stack, cloud_config, "api-noaudit", env) as url:
        token = stack.tokens().create("audit broken", "health")

        def get():
            return httpx.get(
                f"{url}/api/v1/health/residents/{pseudonym()}/observations",
                params={"start": DAY, "end": DAY},
                headers=auth(token),
            )

        assert get().status_code == 200 and len(records(path)) == 1
        path.unlink()
        path.mkdir()  # the file can no longer be opened for writing
        r = get()
        assert r.status_code == 503 and r.json() == {
            "detail": "audit log unavailable; try again later"
        }
        assert "answering 503" in stack.log_of("api-noaudit")


def test_the_resident_report_and_ws365_export_are_audited(api_url, tokens, seeded, audit_file):
    base = f"/api/v1/health/residents/{seeded}"
    with httpx.Client(base_url=api_url, timeout=60) as http:
        before = len(records(audit_file))
        got = [
            http.get(base + "/report", params={"end": DAY}, headers=auth(tokens["health"])),
            http.get(base + "/report.png", params={"end": DAY}, headers=auth(tokens["health"])),
            http.get(base + "/report", params={"end": DAY}, headers=auth(tokens["operator"])),
            http.get(
                base + "/ws365.csv",
                params={"start": DAY, "end": DAY},
                headers=auth(tokens["health"]),
            ),
        ]
    assert [r.status_code for r in got] == [200, 200, 403, 200]
    mine = [
        r
        for r in records(audit_file)[before:]
        if r.get("client") == "127.0.0.1" and r["event"] == "access"
    ]
    assert [(r["route"], r["status"], r["records"]) for r in mine] == [
        ("/api/v1/health/residents/{resident}/report", 200, 3),
        ("/api/v1/health/residents/{resident}/report.png", 200, 3),
        ("/api/v1/health/residents/{resident}/report", 403, None),
        ("/api/v1/health/residents/{resident}/ws365.csv", 200, 3),
    ]
    assert all(r["resident"] == seeded for r in mine)
