"""The `b40` command: serve, db upgrade, seed, user add, replay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from config.settings import Settings
from server.domain.model import Role

if TYPE_CHECKING:
    from server.domain.audit import ChainReport

cli = typer.Typer(
    help="B40 Mutual Aid: crisis coordination and mutual-aid dispatch.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
user_cli = typer.Typer(help="Users and tokens.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(user_cli, name="user")
audit_cli = typer.Typer(help="The audit trail (hash-chained event log).", no_args_is_help=True)
cli.add_typer(audit_cli, name="audit")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the API and the board as one uvicorn process."""
    import gc

    import uvicorn

    from config.logs import configure_logging
    from server.app import create_app
    from server.db.migrate import NotMigrated

    settings = Settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    try:
        app = create_app(settings)
    except NotMigrated as error:
        typer.secho(f"b40: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from error
    where = "embedded SQLite" if settings.is_sqlite else "PostgreSQL"
    typer.echo(f"b40: serving the board on http://{host}:{port}/ ({where})")
    # What start-up built (modules, the app, reference data) lives as long as the process:
    # keep it out of the cyclic collector, whose full passes over it paused the event loop
    # (and every board) for tenths of a second (docs/board.md).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,  # ours (config/logs.py): JSON lines with the request id
        access_log=False,  # b40.access logs each request with its route and duration
        timeout_graceful_shutdown=10,
    )


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Bring the schema (and reference data) up to date."""
    from server.db.migrate import upgrade

    settings = Settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"b40: database upgraded to {revision}")


@cli.command()
def seed() -> None:
    """Load or refresh the reference data (cities, capabilities, substitution rules)."""
    from server.db.engine import make_engine
    from server.db.reference import load_reference

    engine = make_engine(Settings().database_url)
    with engine.begin() as connection:
        load_reference(connection)
    typer.echo("b40: reference data loaded")


@user_cli.command("add")
def user_add(
    name: Annotated[str, typer.Option(help="Person or system the token is for.")],
    role: Annotated[
        Role, typer.Option(help="admin, coordinator, city_operator, duty_officer, observer")
    ],
    city: Annotated[
        str | None, typer.Option(help="City slug (required for city_operator).")
    ] = None,
) -> None:
    """Create a user and print its token (shown once)."""
    from server.db.engine import make_engine
    from server.db.unit_of_work import Database
    from server.domain.errors import DomainError
    from server.services.users import create_user

    database = Database(make_engine(Settings().database_url))
    try:
        view, token = database.run(lambda tx: create_user(tx, name=name, role=role, city=city))
    except DomainError as error:
        typer.secho(f"b40: {error.message}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from error
    typer.echo(f"user {view['id']} ({view['role']}{', ' + view['city'] if view['city'] else ''})")
    typer.echo(f"token: {token}")


@cli.command()
def replay(
    scenario: Annotated[str, typer.Argument(help="Scenario file (docs/scenario-format.md).")],
    speed: Annotated[
        float, typer.Option(help="Scenario seconds per real second: 60 = 1 h per minute.")
    ] = 60.0,
    api: Annotated[str, typer.Option(help="Base URL of the running system.")] = (
        "http://127.0.0.1:8000"
    ),
    token: Annotated[
        str | None, typer.Option(help="Admin token (default: B40_ADMIN_TOKEN).")
    ] = None,
    policy: Annotated[
        str, typer.Option(help="plan (network-wide allocation plan) or nearest (candidates).")
    ] = "plan",
    json_out: Annotated[
        str | None, typer.Option("--json", help="Also write the report as JSON to this file.")
    ] = None,
) -> None:
    """Replay a scenario as an exercise through the public API, then print the report."""
    import json
    import os

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from server.exercise.replay import POLICIES, ReplayError, run_replay
    from server.exercise.scenario import ScenarioError, load_scenario

    console = Console()
    admin_token = token or os.environ.get("B40_ADMIN_TOKEN") or Settings().admin_token
    if not admin_token:
        typer.secho("b40: give --token or set B40_ADMIN_TOKEN", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    if policy not in POLICIES:
        typer.secho(f"b40: --policy is one of {', '.join(POLICIES)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        loaded = load_scenario(scenario)
    except ScenarioError as error:
        typer.secho(f"b40: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from error
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} scenario h"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("setting up", total=1)

        def progress(hours: float, until: float, moment: str) -> None:
            bar.update(task, completed=hours, total=max(until, 1.0), description=moment)

        try:
            report = run_replay(
                loaded,
                api=api,
                token=admin_token,
                speed=speed,
                policy=policy,  # type: ignore[arg-type,unused-ignore]  # checked above
                progress=progress,
            )
        except ReplayError as error:
            typer.secho(f"b40: replay stopped: {error}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from error
    report.render(console)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as handle:
            json.dump(report.to_dict(), handle, indent=2)


@cli.command()
def worker(
    with_scheduler: Annotated[
        bool, typer.Option(help="Also run the RQ scheduler (retries, escalation timers).")
    ] = True,
    burst: Annotated[bool, typer.Option(help="Exit when the queue is empty.")] = False,
    simple: Annotated[
        bool, typer.Option(help="Run jobs in this process instead of a forked work-horse.")
    ] = False,
    planner: Annotated[
        bool, typer.Option(help="Also run the alert planner here (when no `b40 serve` does).")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default: generated).")] = None,
) -> None:
    """Deliver alerts: an RQ worker on the alert queue (needs B40_REDIS_URL)."""
    from workers.__main__ import run_worker

    run_worker(
        with_scheduler=with_scheduler, burst=burst, simple=simple, planner=planner, name=name
    )


@audit_cli.command("verify")
def audit_verify(
    file: Annotated[
        str | None,
        typer.Option(help="Verify an export (NDJSON from /api/v1/audit/export) instead."),
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first broken seq."""
    report: ChainReport
    if file is None:
        from server.db.engine import make_engine
        from server.db.unit_of_work import Database
        from server.services.audit import verify

        database = Database(make_engine(Settings().database_url))
        try:
            report = verify(database)
        finally:
            database.engine.dispose()
    else:
        report = _verify_file(file)
    if report.ok:
        typer.echo(f"b40: audit chain intact: {report.checked} events, head {report.head}")
        return
    typer.secho(
        f"b40: audit chain broken at seq {report.broken_seq}: {report.reason} "
        f"({report.checked} events before it hold)",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(1)


def _verify_file(path: str) -> ChainReport:
    import json

    from server.domain.audit import GENESIS, verify_chain

    with open(path, encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    if not records:
        return verify_chain([])
    first = records[0]
    # An export that starts after seq 0 is checked from its first prev_hash onwards.
    start = GENESIS if first["seq"] == 1 else first.get("prev_hash", "")
    return verify_chain(records, start_seq=int(first["seq"]), start_hash=start)


def main() -> None:
    cli(prog_name="b40")


if __name__ == "__main__":
    main()
