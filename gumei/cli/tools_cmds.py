"""Tools: contract schema export, registry checks, benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

schema = typer.Typer(no_args_is_help=True, help="The v1 wire contract.")


@schema.command("export")
def schema_export(
    out: Annotated[Path, typer.Option(help="directory")] = Path("docs/schema"),
) -> None:
    """Write the JSON Schema of every contract message."""
    from contract.schema import export

    for path in export(out):
        typer.echo(str(path))


bench = typer.Typer(
    no_args_is_help=True, help="Benchmarks that print figures and ratios measured in one run."
)


def register(app: typer.Typer) -> None:
    """Add the tool commands to the main app."""
    app.add_typer(schema, name="schema")
    app.add_typer(bench, name="bench")
    from gumei.cli import bench_ingest_cmd, quarantine_cmds  # ingestion (issue 5)

    bench_ingest_cmd.register(bench)
    quarantine_cmds.register(app)
    from gumei.cli import bench_aggregate_cmd  # daily tonnage and targets (issue 6)

    bench_aggregate_cmd.register(bench)
    from gumei.cli import edge_cmds  # scales accuracy and edge footprint (issue 3)

    edge_cmds.register_bench(bench)
    from gumei.cli import bench_ops_cmd  # the operations evaluator (issue 16)

    bench_ops_cmd.register(bench)
