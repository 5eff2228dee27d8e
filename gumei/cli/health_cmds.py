"""Health hut commands: `gumei sim health` (simulated hut through the real gateway loop to MQTT) and
`gumei health aggregate` (recompute health_daily for a range of days)."""

from __future__ import annotations

import datetime as dt
import json
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from contract.days import now_local
from gumei.cli.cloud_cmds import ConfigOpt

if TYPE_CHECKING:
    from staff.roster import Roster

health = typer.Typer(
    no_args_is_help=True,
    help="Smart health hut: daily statistics; the staff tool (worklist, contacted, close, lookup).",
)


def sim_health(
    port: Annotated[int, typer.Option(help="broker port")],
    secrets: Annotated[Path, typer.Option(help="JSON file of gateway passwords by site id")],
    district_key_file: Annotated[
        Path,
        typer.Option(help="district key (hex, chmod 600) the gateway pseudonymizes cards with"),
    ],
    host: Annotated[str, typer.Option(help="broker host")] = "127.0.0.1",
    ca_file: Annotated[Path | None, typer.Option(help="CA certificate: connect with TLS")] = None,
    site: Annotated[str, typer.Option(help="health hut site id")] = "HH-01",
    residents: Annotated[
        int, typer.Option(min=1, help="simulated residents in the neighbourhood")
    ] = 30,
    visits: Annotated[int, typer.Option(min=1, help="visits to simulate")] = 20,
    malformed_rate: Annotated[
        float, typer.Option(min=0, max=1, help="share of instrument readings sent malformed")
    ] = 0.05,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
    queue_file: Annotated[
        Path | None, typer.Option("--queue", help="durable queue file (default: a temp dir)")
    ] = None,
    delivery_timeout: Annotated[
        float, typer.Option(help="seconds to wait for the broker to acknowledge everything")
    ] = 30.0,
    stay: Annotated[
        bool,
        typer.Option(
            "--stay", help="after the visits, stay online (as a hut does) until SIGTERM/Ctrl-C"
        ),
    ] = False,
) -> None:
    """Simulated residents visit the hut; the gateway loop decodes, pseudonymizes and queues; the shared
    edge publisher delivers to the broker with the hut's own credentials."""
    from edge.ble.transport import SocketTransport
    from edge.card import load_district_key
    from edge.health_session import SessionTracker
    from edge.hut import HutAgent
    from edge.lifecycle import stop_on_signals
    from edge.publisher import Publisher
    from edge.queue import DurableQueue
    from firmware_sim.health import HealthHutSim, make_residents, measure
    from runtime.mqtt import MqttEndpoint

    try:
        password = json.loads(secrets.read_text())[site]
    except (OSError, ValueError, KeyError) as exc:
        raise typer.BadParameter(f"no password for {site} in {secrets}: {exc}") from None
    key = load_district_key(district_key_file)
    rng = random.Random(seed)
    people = make_residents(residents, seed)
    ep = MqttEndpoint(
        host=host,
        port=port,
        username=site,
        password=password,
        ca_file=ca_file,
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        DurableQueue.open(queue_file or Path(tmp) / "hut.db") as queue,
        HealthHutSim(site, seed, malformed_rate) as hut,
    ):
        publisher = Publisher(ep, site, "health", queue)
        publisher.start()
        sources = {d: SocketTransport(*addr) for d, addr in hut.endpoints().items()}
        agent = HutAgent(sources, hut.card_reader, SessionTracker(key), queue.put, publisher.notify)
        agent.start()
        try:
            if not hut.wait_connected():
                raise typer.BadParameter(
                    "the gateway loop could not connect to every simulated device"
                )

            def handled(n: int) -> None:
                if not agent.wait_for(lambda s: s.notifications >= n, 10):
                    raise typer.BadParameter(
                        f"the gateway loop handled {agent.stats.notifications} of {n} notifications"
                    )

            sent = 0
            with Progress() as bar:
                task = bar.add_task("visits", total=visits)
                for _ in range(visits):
                    resident = rng.choice(people)
                    hut.tap(
                        resident.card
                    )  # tap, and let the gateway open the session before measuring
                    sent += 1
                    handled(sent)
                    when = now_local()
                    sent += len(hut.visit(None, when, measure(resident, rng)).sent)
                    handled(sent)
                    agent.tracker.end()
                    bar.advance(task)
            agent.flush()
            waited = threading.Event()
            deadline = time.monotonic() + delivery_timeout
            while (
                len(queue) and time.monotonic() < deadline
            ):  # the publisher works in its own thread
                waited.wait(0.1)
            if stay:  # a real hut's gateway stays connected between visits (no offline alarm)
                typer.echo(f"hut {site}: {visits} visits delivered; staying online until stopped")
                stop_on_signals(waited)
                waited.clear()
                waited.wait()
        finally:
            agent.stop()
            publisher.stop()
        pending, published = len(queue), publisher.stats.entries_acked
    if pending:
        raise typer.BadParameter(
            f"{pending} measurement(s) still queued after {delivery_timeout:g} s: {publisher.stats.last_error}"
        )
    rejected = ", ".join(f"{k} {v}" for k, v in sorted(agent.stats.rejected.items())) or "none"
    typer.echo(
        f"hut {site}: {visits} visits, {agent.stats.measurements} measurements queued, {published} published; "
        f"frames rejected at the gateway: {rejected}"
    )


@health.command("aggregate")
def aggregate(
    start: Annotated[dt.datetime, typer.Argument(formats=["%Y-%m-%d"], help="first Shanghai day")],
    end: Annotated[
        dt.datetime, typer.Argument(formats=["%Y-%m-%d"], help="last Shanghai day (inclusive)")
    ],
    config: ConfigOpt = None,
) -> None:
    """Recompute health_daily for a range of days (the aggregator loop does touched days by itself)."""
    from cloud.days import number_of
    from cloud.health.daily import recompute_health_days
    from cloud.influx import InfluxClient
    from cloud.settings import load_settings

    if end < start:
        raise typer.BadParameter("end is before start")
    s = load_settings(config)
    with InfluxClient(s.influx_config("aggregate")) as influx:
        days = recompute_health_days(
            influx,
            range(number_of(start.date()), number_of(end.date()) + 1),
            s.health_min_residents,
        )
    typer.echo(f"health_daily: {len(days)} hut-day(s) written")


@health.command("triage-month")
def triage_month(
    residents: Annotated[
        int, typer.Option(min=1, max=100_000, help="residents of the neighbourhood")
    ] = 400,
    visits_per_day: Annotated[int, typer.Option(min=1, max=10_000, help="visits a day")] = 40,
    days: Annotated[int, typer.Option(min=1, max=366, help="days to simulate")] = 30,
    seed: Annotated[int, typer.Option(help="random seed")] = 1,
) -> None:
    """Triage one simulated month of hut visits (no services): measurements per tier, follow-ups."""
    from firmware_sim.health.month import report_lines, simulate_month

    for text in report_lines(simulate_month(residents, visits_per_day, days, seed)):
        typer.echo(text)


# -- the health staff's tool (staff/): runs on the family-doctor team's machine, not in the cloud ----

ApiOpt = Annotated[
    str, typer.Option("--api", envvar="GUMEI_STAFF_API", help="the cloud API's base URL")
]
TokenOpt = Annotated[
    Path,
    typer.Option(
        "--token-file", envvar="GUMEI_STAFF_TOKEN_FILE", help="health-role token (chmod 600)"
    ),
]
KeyOpt = Annotated[
    Path,
    typer.Option(
        "--district-key-file",
        envvar="GUMEI_STAFF_KEY_FILE",
        help="the district key (hex, chmod 600): pseudonyms are computed here",
    ),
]
RosterOpt = Annotated[
    Path,
    typer.Option(
        "--roster",
        envvar="GUMEI_STAFF_ROSTER",
        help="the team's roster CSV `card,name` (chmod 600; never uploaded)",
    ),
]


def _roster(key_file: Path, roster: Path) -> Roster:
    from contract.pseudonym import DistrictKeyError, load_district_key
    from staff.errors import StaffError
    from staff.roster import Roster

    try:
        key = load_district_key(key_file)
    except DistrictKeyError as exc:
        raise StaffError(str(exc)) from None
    return Roster.load(roster, key)


@health.command("worklist")
def staff_worklist(
    api: ApiOpt,
    token_file: TokenOpt,
    district_key_file: KeyOpt,
    roster: RosterOpt,
    status: Annotated[
        str,
        typer.Option(
            help="active (open, overdue, contacted), open, overdue, contacted, closed, all"
        ),
    ] = "active",
    reason: Annotated[str | None, typer.Option(help="one reason, e.g. hypertension")] = None,
) -> None:
    """The family-doctor follow-ups with residents' names from the local roster (staff machine)."""
    from staff.client import HealthApi, load_token
    from staff.view import worklist_lines

    people = _roster(district_key_file, roster)
    with HealthApi(api, load_token(token_file)) as client:
        rows = client.worklist(status, reason)
    for text in worklist_lines(rows, people) or ["no follow-ups"]:
        typer.echo(text)


@health.command("contacted")
def staff_contacted(
    followup: Annotated[
        str, typer.Argument(help="follow-up id (f-…, from `gumei health worklist`)")
    ],
    api: ApiOpt,
    token_file: TokenOpt,
) -> None:
    """Record that the resident of a follow-up was contacted."""
    from staff.client import HealthApi, load_token

    with HealthApi(api, load_token(token_file)) as client:
        f = client.contacted(followup)
    typer.echo(f"{f['id']}: {f['status']}")


@health.command("close")
def staff_close(
    followup: Annotated[str, typer.Argument(help="follow-up id (f-…)")],
    outcome: Annotated[
        str,
        typer.Option(
            help="seen_by_doctor, referred_to_hospital, normal_on_recheck, already_treated, declined, unreachable, moved_away"
        ),
    ],
    api: ApiOpt,
    token_file: TokenOpt,
) -> None:
    """Close a follow-up with its outcome (a fixed list: no free text reaches the cloud)."""
    from staff.client import HealthApi, load_token

    with HealthApi(api, load_token(token_file)) as client:
        f = client.close_followup(followup, outcome)
    typer.echo(f"{f['id']}: {f['status']} ({f['outcome']})")


@health.command("lookup")
def staff_lookup(
    api: ApiOpt,
    token_file: TokenOpt,
    district_key_file: KeyOpt,
    roster: RosterOpt,
    card: Annotated[
        str | None,
        typer.Option(
            help="card number (asked for, unechoed, when left out: keeps it out of shell history)"
        ),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=366, help="how many days of record")] = 90,
) -> None:
    """A resident's record and follow-ups by card number: pseudonymized here, only the pseudonym is sent."""
    from contract.days import today
    from staff.client import HealthApi, load_token
    from staff.view import NOT_ON_ROSTER, record_lines, worklist_lines

    people = _roster(district_key_file, roster)
    typed = card if card is not None else typer.prompt("card number", hide_input=True)
    pseudonym = people.pseudonym_of(typed)
    person = people.person(pseudonym)
    end = today()
    with HealthApi(api, load_token(token_file)) as client:
        record = client.observations(pseudonym, end - dt.timedelta(days=days - 1), end)
        followups = [f for f in client.worklist("all") if f["resident"] == pseudonym]
    typer.echo(f"{person.name if person else NOT_ON_ROSTER}  {pseudonym}")
    for text in record_lines(record) or [f"no measurements in the last {days} days"]:
        typer.echo(text)
    for text in worklist_lines(followups, people):
        typer.echo(text)


@health.command("report")
def staff_report(
    api: ApiOpt,
    token_file: TokenOpt,
    district_key_file: KeyOpt,
    roster: RosterOpt,
    out: Annotated[Path, typer.Option(help="where to write the report (HTML, or PNG with --png)")],
    card: Annotated[
        str | None,
        typer.Option(help="card number (asked for, unechoed, when left out)"),
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="last Shanghai day YYYY-MM-DD (default: today)")
    ] = None,
    months: Annotated[int, typer.Option(min=1, max=12, help="trend window in months")] = 3,
    png: Annotated[bool, typer.Option("--png", help="the PNG page instead of HTML")] = False,
) -> None:
    """The report a resident takes home, by card number, to print: pseudonymized here, only the
    pseudonym is sent; the file is written owner-only (it is personal health data)."""
    from contract.days import today
    from runtime.system import replace_durably
    from staff.client import HealthApi, load_token
    from staff.errors import StaffError

    try:
        last = dt.date.fromisoformat(end) if end is not None else today()
    except ValueError:
        raise StaffError(f"--end {(end or '')[:20]!r} is not a day YYYY-MM-DD") from None
    if not out.parent.is_dir():
        raise StaffError(f"--out: folder {out.parent} does not exist")
    people = _roster(district_key_file, roster)
    typed = card if card is not None else typer.prompt("card number", hide_input=True)
    pseudonym = people.pseudonym_of(typed)
    with HealthApi(api, load_token(token_file)) as client:
        data = client.report(pseudonym, last, months, png)
    replace_durably(out, data)
    person = people.person(pseudonym)
    typer.echo(f"{out}: report of {person.name if person else pseudonym} ({len(data)} bytes)")


def register(app: typer.Typer) -> None:
    """Add `gumei sim health` and `gumei health ...` to the main app."""
    from gumei.cli.sim_cmds import sim

    sim.command("health")(sim_health)
    app.add_typer(health, name="health")
