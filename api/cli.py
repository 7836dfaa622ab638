"""The ``guestgraph`` command line."""

from __future__ import annotations

import logging
import os
import sys

import typer

from api import ingest_cli
from api.logging import configure_logging
from api.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="guestgraph",
    help="GraphQL customer-intelligence API for restaurants, food delivery and retail.",
    no_args_is_help=True,
    add_completion=False,
)

log = logging.getLogger("guestgraph.cli")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    configure_logging(settings.log_level)
    return settings


def resolve_database_url(settings: Settings) -> str:
    """The configured database, or the embedded one started (or reused) now."""
    if settings.database_url:
        return settings.database_url
    from api.embedded import start_embedded_postgres

    return start_embedded_postgres(settings.data_dir)


def _migrate(database_url: str) -> None:
    from readmodel import migrations

    migrations.upgrade(database_url)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="TCP port"),
    workers: int = typer.Option(1, min=1, help="worker processes"),
    migrate: bool = typer.Option(True, "--migrate/--no-migrate", help="migrate first"),
) -> None:
    """Run the API (applies migrations first unless --no-migrate)."""
    settings = _settings()
    database_url = resolve_database_url(settings)
    if migrate:
        _migrate(database_url)
    run_server(settings, database_url, host=host, port=port, workers=workers)


def run_server(
    settings: Settings, database_url: str, *, host: str, port: int, workers: int
) -> None:
    import signal

    import uvicorn

    # uvicorn re-raises the signal that stopped it once it has shut down; make SIGTERM end
    # the process through SystemExit (like SIGINT does) so atexit hooks, which stop the
    # embedded PostgreSQL, still run.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if workers > 1 and not settings.redis_url:
        log.warning(
            "in-process fan-out with %d workers: every worker polls the change feed "
            "itself; set GUESTGRAPH_REDIS_URL to fan out through Redis",
            workers,
        )
    # Worker processes read settings from the environment: hand them the resolved URL.
    os.environ["GUESTGRAPH_DATABASE_URL"] = database_url
    if not settings.database_url:
        os.environ["GUESTGRAPH_DATABASE_IS_EMBEDDED"] = "1"
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.value.lower(),
        timeout_graceful_shutdown=10,
        ws_max_size=settings.ws_max_frame_bytes,  # live: oversized frames close with 1009
        # live frames are small JSON: compressing each one for every socket cost more CPU
        # than the whole fan-out (and a zlib context per socket); see docs/live.md
        ws_per_message_deflate=False,
        proxy_headers=False,
    )


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


@app.command("migrate")
def migrate_command() -> None:
    """Apply alembic migrations to the configured database."""
    settings = _settings()
    database_url = resolve_database_url(settings)
    _migrate(database_url)
    typer.echo("migrations applied")


@app.command("export-schema")
def export_schema_command() -> None:
    """Print the GraphQL SDL; schema.graphql in the repo must equal it."""
    from resolvers.schema import export_schema

    sys.stdout.write(export_schema())


from api.cli_clients import app as clients_app  # noqa: E402  (auth: api/cli_clients.py)

app.add_typer(clients_app, name="clients")

# --- identity ---
from api.cli_identity import app as identity_app  # noqa: E402 (after app: it is a sub-app)

app.add_typer(identity_app, name="identity")


# --- ingest: import, inbox list|replay, demo ---
ingest_cli.register(app)


def main() -> None:
    app()
