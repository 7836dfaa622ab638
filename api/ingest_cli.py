"""CLI commands of ingestion: ``import``, ``inbox list|replay`` and ``demo``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from api.importer import DEFAULT_BATCH_SIZE, Summary
from api.ingestion import Outcome
from domain.model import InboxStatus
from readmodel.inbox import InboxRow

inbox_app = typer.Typer(help="Inspect and re-run stored source events.", no_args_is_help=True)
console = Console(stderr=True)


def _engine_url() -> str:
    from api.cli import _migrate, _settings, resolve_database_url

    url = resolve_database_url(_settings())
    _migrate(url)
    return url


def import_command(
    kind: str = typer.Argument(
        ...,
        help="square-orders, square-customers, toast-orders, hubspot-contacts or canonical",
    ),
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="NDJSON, JSON or CSV"),
    batch_size: int = typer.Option(DEFAULT_BATCH_SIZE, min=1, help="rows per transaction"),
    restart: bool = typer.Option(False, help="ignore the checkpoint of an earlier run"),
    writers: int | None = typer.Option(
        None,
        min=1,
        max=16,
        help="transactions writing side by side (default: 2 for order files, 1 otherwise)",
    ),
) -> None:
    """Backfill from an exported file: idempotent, resumable, with progress."""
    from api import importer

    if kind not in importer.KINDS:
        raise typer.BadParameter(f"one of {', '.join(importer.KINDS)}", param_hint="KIND")
    url = _engine_url()
    summary = asyncio.run(
        _import(url, kind, file, batch_size, restart, writers, file.stat().st_size)
    )
    console.print(
        f"applied {summary.applied}, duplicate {summary.duplicate}, "
        f"rejected {summary.rejected}, pending {summary.pending}"
        + (f", skipped {summary.skipped} (done by an earlier run)" if summary.skipped else "")
        + (f"; traits recomputed for {summary.traits_settled} customers")
    )
    for reason, n in sorted(summary.reasons.items(), key=lambda kv: -kv[1])[:20]:
        console.print(f"  rejected x{n}: {reason}")


async def _import(
    url: str,
    kind: str,
    file: Path,
    batch_size: int,
    restart: bool,
    writers: int | None,
    size: int,
) -> Summary:
    from api import importer
    from api.cli import _settings
    from readmodel.database import create_engine

    # one connection maps rows ahead (store currencies), one per writer
    engine = create_engine(url, pool_size=1 + (writers or importer.ORDER_WRITERS))
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows, {task.fields[rate]:.0f} rows/s"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{kind} {file.name}", total=size, rows=0, rate=0.0)
            loop = asyncio.get_running_loop()
            started = loop.time()

            def report(rows: int, offset: int) -> None:
                elapsed = max(loop.time() - started, 1e-6)
                progress.update(task, completed=offset, rows=rows, rate=rows / elapsed)

            summary = await importer.run_import(
                engine,
                file,
                kind,
                batch_size=batch_size,
                restart=restart,
                writers=writers,
                on_progress=report,
                policy=_settings().match_policy(),
            )
            progress.update(task, completed=size)
        return summary
    finally:
        await engine.dispose()


@inbox_app.command("list")
def inbox_list(
    status: InboxStatus | None = typer.Option(None, help="only rows with this status"),
    limit: int = typer.Option(50, min=1),
) -> None:
    """The newest stored events (with the reason for rejected ones)."""
    rows = asyncio.run(_list(_engine_url(), status, limit))
    table = Table("id", "source", "event id", "type", "status", "attempts", "received", "reason")
    for r in rows:
        table.add_row(
            str(r.id),
            r.source,
            r.event_id,
            r.event_type or "",
            r.status.value,
            str(r.attempts),
            r.received_at.isoformat(timespec="seconds"),
            (r.reason or "")[:120],
        )
    Console().print(table)


async def _list(url: str, status: InboxStatus | None, limit: int) -> list[InboxRow]:
    from readmodel import inbox
    from readmodel.database import create_engine

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            return list(await inbox.list_rows(conn, status=status, limit=limit))
    finally:
        await engine.dispose()


@inbox_app.command("replay")
def inbox_replay(
    row_id: int | None = typer.Argument(None, help="the inbox row id"),
    all_rejected: bool = typer.Option(False, "--all-rejected", help="every rejected row"),
) -> None:
    """Re-run stored events through today's mappers (after a fix)."""
    if (row_id is None) == (not all_rejected):
        raise typer.BadParameter("give one row id or --all-rejected")
    outcomes = asyncio.run(_replay(_engine_url(), row_id, all_rejected))
    for o in outcomes:
        typer.echo(f"{o.inbox_id}\t{o.event_id}\t{o.status}\t{o.reason or ''}")
    if any(o.status == "rejected" for o in outcomes):
        raise typer.Exit(code=1)


async def _replay(url: str, row_id: int | None, all_rejected: bool) -> list[Outcome]:
    from api.cli import _settings
    from api.ingestion import replay
    from readmodel import inbox
    from readmodel.database import create_engine

    engine = create_engine(url, pool_size=2)
    try:
        if all_rejected:
            async with engine.connect() as conn:
                ids = await inbox.ids_with_status(conn, InboxStatus.REJECTED)
        else:
            assert row_id is not None
            ids = [row_id]
        try:
            policy = _settings().match_policy()
            return [await replay(engine, i, actor="cli:inbox-replay", policy=policy) for i in ids]
        except LookupError as exc:
            raise typer.BadParameter(str(exc)) from None
    finally:
        await engine.dispose()


def register(app: typer.Typer) -> None:
    """Add ``import``, ``inbox`` and ``demo`` to the ``guestgraph`` command."""
    from api.demo import demo_command

    app.command("import")(import_command)
    app.add_typer(inbox_app, name="inbox")
    app.command("demo")(demo_command)
