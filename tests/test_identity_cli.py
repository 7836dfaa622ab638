"""`guestgraph identity split / merge / history`, run as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from domain.identity import CustomerRecord
from domain.model import Source
from readmodel import identity


async def guestgraph(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_")}
    env["GUESTGRAPH_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_split_merge_and_history_from_the_command_line(
    engine: AsyncEngine, database_url: str
) -> None:
    async with engine.begin() as conn:
        first = await identity.link_record(
            conn,
            CustomerRecord(source=Source.SQUARE, external_id="sq-1", email="a@x.com"),
            actor="t",
        )
        await identity.link_record(
            conn,
            CustomerRecord(source=Source.HUBSPOT, external_id="hs-1", email="a@x.com"),
            actor="t",
        )
    customer = first.customer_id

    code, out, err = await guestgraph(
        database_url, "identity", "split", str(customer), "hubspot:hs-1"
    )
    assert code == 0, err
    assert f"from customer {customer} into new customer" in out
    new_id = int(out.strip().rsplit(" ", 1)[-1])

    code, out, err = await guestgraph(database_url, "identity", "merge", str(customer), str(new_id))
    assert code == 1 and "split apart" in err

    code, out, err = await guestgraph(database_url, "identity", "history", str(new_id))
    assert code == 0, err
    shown = json.loads(out)
    assert shown["identities"][0]["external_id"] == "hs-1"
    assert [e["action"] for e in shown["history"]] == ["link", "split"]

    code, out, err = await guestgraph(database_url, "identity", "split", str(customer), "nosuch")
    assert code == 2 and "SOURCE:EXTERNAL_ID" in err
