"""``guestgraph clients``: register, list, revoke and rotate API clients; trust documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from api.ratelimit import parse_limit
from domain.viewer import Role
from readmodel import clients as client_store
from readmodel import scoping
from readmodel.database import create_engine

app = typer.Typer(help="Registered API clients (OAuth 2.0 client credentials).")

T = TypeVar("T")
ROLES = [r.value for r in Role if r is not Role.ANONYMOUS]


def _run(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    from api.cli import _settings, resolve_database_url

    settings = _settings()
    url = resolve_database_url(settings)

    async def main() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="a name people recognise, e.g. 'Acme delivery'"),
    role: str = typer.Option(..., "--role", help=f"one of {', '.join(ROLES)}"),
    scope: list[str] = typer.Option([], "--scope", help="a scope; repeat for several"),
    store: list[str] = typer.Option(
        [], "--store", help="partner store: API id or SOURCE:external_id; repeat"
    ),
    rate_limit: str | None = typer.Option(None, "--rate-limit", help="e.g. '600/minute'"),
    trusted_only: bool = typer.Option(
        False, "--trusted-documents-only", help="only registered operations may run"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Register a client and print its id and secret. The secret is shown only this once."""
    if role not in ROLES:
        raise _fail(f"--role must be one of {', '.join(ROLES)}")
    if rate_limit is not None:
        try:
            parse_limit(rate_limit)
        except ValueError:
            raise _fail("--rate-limit must look like '600/minute'") from None
    scopes = [part for s in scope for part in s.split()]

    async def work(engine: AsyncEngine) -> client_store.CreatedClient:
        store_ids = await scoping.resolve_store_refs(engine, store) if store else frozenset()
        if len(store_ids) < len(set(store)):
            raise _fail("some --store values match no store")
        return await client_store.create_client(
            engine,
            name=name,
            role=Role(role),
            scopes=scopes,
            store_ids=sorted(store_ids),
            rate_limit=rate_limit,
            trusted_documents_only=trusted_only,
        )

    created = _run(work)
    if as_json:
        typer.echo(json.dumps({"client_id": created.client.id, "client_secret": created.secret}))
        return
    console = Console()
    console.print(f"client_id:     [bold]{created.client.id}[/bold]")
    console.print(f"client_secret: [bold]{created.secret}[/bold]")
    console.print("Store the secret now: it is not shown again.", style="yellow")


@app.command("list")
def list_command(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every registered client (never their secrets)."""
    found = _run(client_store.list_clients)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "client_id": c.id,
                        "name": c.name,
                        "role": c.role.value,
                        "scopes": list(c.scopes),
                        "stores": list(c.store_ids),
                        "rate_limit": c.rate_limit,
                        "trusted_documents_only": c.trusted_documents_only,
                        "revoked": c.is_revoked,
                    }
                    for c in found
                ]
            )
        )
        return
    table = Table("client id", "name", "role", "scopes", "stores", "rate limit", "status")
    for c in found:
        table.add_row(
            c.id,
            c.name,
            c.role.value,
            " ".join(c.scopes),
            " ".join(str(s) for s in c.store_ids),
            c.rate_limit or "default",
            "revoked" if c.is_revoked else "active",
        )
    Console().print(table)


@app.command("revoke")
def revoke(client_id: str = typer.Argument(...)) -> None:
    """Revoke a client: no new tokens, and its current tokens stop working within seconds."""
    try:
        _run(lambda engine: client_store.revoke_client(engine, client_id))
    except client_store.ClientNotFound:
        raise _fail(f"no client {client_id}") from None
    typer.echo(f"revoked {client_id}")


@app.command("rotate")
def rotate(
    client_id: str = typer.Argument(...),
    grace_hours: float = typer.Option(24.0, "--grace-hours", min=0, help="old secret validity"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """A new secret (shown once); the old one keeps working for the grace period."""
    grace = timedelta(hours=grace_hours)
    try:
        created = _run(lambda engine: client_store.rotate_secret(engine, client_id, grace=grace))
    except client_store.ClientNotFound:
        raise _fail(f"no client {client_id}") from None
    if as_json:
        typer.echo(json.dumps({"client_id": client_id, "client_secret": created.secret}))
        return
    typer.echo(f"client_secret: {created.secret}")
    typer.echo(f"The previous secret stays valid for {grace_hours:g} hours.")


@app.command("trust")
def trust(
    client_id: str = typer.Argument(...),
    document: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    name: str | None = typer.Option(None, "--name", help="operation name, for people"),
) -> None:
    """Add a GraphQL document to the client's allow-list (trusted documents); prints its
    sha256, which the client may send as extensions.persistedQuery.sha256Hash."""
    text = document.read_text(encoding="utf-8")
    try:
        digest = _run(
            lambda engine: client_store.trust_document(engine, client_id, text, name=name)
        )
    except client_store.ClientNotFound:
        raise _fail(f"no client {client_id}") from None
    typer.echo(digest)
