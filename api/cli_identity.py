"""``guestgraph identity``: undo and inspect identity resolution from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import orjson
import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.model import Source
from readmodel import identity
from readmodel.database import create_engine

app = typer.Typer(
    name="identity",
    help="Inspect, merge and split golden customers (see docs/identity.md).",
    no_args_is_help=True,
)

T = TypeVar("T")


def _run(work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    from api.cli import _settings, resolve_database_url

    url = resolve_database_url(_settings())

    async def main() -> T:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await work(conn)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except identity.IdentityError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None


def _identity(value: str) -> tuple[Source, str]:
    source, sep, external_id = value.partition(":")
    try:
        if not sep or not external_id:
            raise ValueError(value)
        return Source(source.upper()), external_id
    except ValueError:
        names = ", ".join(s.value for s in Source)
        raise typer.BadParameter(f"{value!r}: expected SOURCE:EXTERNAL_ID ({names})") from None


@app.command("split")
def split_command(
    customer_id: int = typer.Argument(..., help="the golden customer's database id"),
    identities: list[str] = typer.Argument(..., help="SOURCE:EXTERNAL_ID of each record to move"),
    actor: str = typer.Option("cli", help="who is splitting (recorded in the identity ledger)"),
) -> None:
    """Move the named source records to a new golden customer; print its id."""
    named = [_identity(v) for v in identities]
    new_id = _run(
        lambda conn: identity.split_customer(conn, customer_id, named, actor=f"cli:{actor}")
    )
    typer.echo(
        f"split {len(named)} identit{'y' if len(named) == 1 else 'ies'} "
        f"from customer {customer_id} into new customer {new_id}"
    )


@app.command("merge")
def merge_command(
    customer_id: int = typer.Argument(..., help="one golden customer's database id"),
    other_customer_id: int = typer.Argument(..., help="the other's"),
    force: bool = typer.Option(False, help="merge even customers a split separated"),
    actor: str = typer.Option("cli", help="who is merging (recorded in the identity ledger)"),
) -> None:
    """Merge two golden customers (the older survives); print the survivor's id."""
    survivor = _run(
        lambda conn: identity.merge_customers(
            conn, customer_id, other_customer_id, actor=f"cli:{actor}", force=force
        )
    )
    typer.echo(f"merged into customer {survivor}")


@app.command("history")
def history_command(
    customer_id: int = typer.Argument(..., help="the golden customer's database id"),
) -> None:
    """Print the customer's identities and identity ledger as JSON."""

    async def read(conn: AsyncConnection) -> dict[str, object]:
        current = await identity.canonical_customer_id(conn, customer_id)
        if current is None:
            raise identity.CustomerNotFound(customer_id)
        links = (await identity.identities_by_customer_ids(conn, [current]))[current]
        events = await identity.identity_history(conn, current)
        return {
            "customer_id": current,
            "identities": [
                {
                    "source": i.source.value,
                    "external_id": i.external_id,
                    "matched_by": i.matched_by,
                    "linked_at": i.linked_at.isoformat(),
                }
                for i in links
            ],
            "history": [
                {
                    "at": e.at.isoformat(),
                    "action": e.action,
                    "rule": e.rule,
                    "actor": e.actor,
                    "customer_id": e.customer_id,
                    "other_customer_id": e.other_customer_id,
                    "identity": f"{e.source.value}:{e.external_id}" if e.source else None,
                    "evidence": e.evidence,
                }
                for e in events
            ],
        }

    typer.echo(orjson.dumps(_run(read), option=orjson.OPT_INDENT_2).decode())
