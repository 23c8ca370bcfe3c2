"""The `b40` command: serve, db upgrade, seed, user add."""

from __future__ import annotations

from typing import Annotated

import typer

from config.settings import Settings
from server.domain.model import Role

cli = typer.Typer(
    help="B40 Mutual Aid: crisis coordination and mutual-aid dispatch.", no_args_is_help=True
)
db_cli = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
user_cli = typer.Typer(help="Users and tokens.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(user_cli, name="user")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
) -> None:
    """Run the API and the board as one uvicorn process."""
    import uvicorn

    from server.app import create_app
    from server.db.migrate import NotMigrated

    settings = Settings()
    try:
        app = create_app(settings)
    except NotMigrated as error:
        typer.secho(f"b40: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from error
    where = "embedded SQLite" if settings.is_sqlite else "PostgreSQL"
    typer.echo(f"b40: serving the board on http://{host}:{port}/ ({where})")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)


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


def main() -> None:
    cli(prog_name="b40")


if __name__ == "__main__":
    main()
