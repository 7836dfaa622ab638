"""GET /console: the support console page, its assets, and the GraphQL it sends."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from graphql import parse, validate

from resolvers.schema import schema

STATIC = Path(__file__).parents[1] / "api" / "console" / "static"


async def test_the_console_page_loads_with_its_pinned_client(client: httpx.AsyncClient) -> None:
    page = await client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "support console" in page.text
    scripts = re.findall(r'<script src="([^"]+)"', page.text)
    assert scripts == ["/console/static/graphql-ws-6.4.2.min.js", "/console/static/console.js"]
    for src in scripts:
        asset = await client.get(src)
        assert asset.status_code == 200
        assert "javascript" in asset.headers["content-type"]


def _documents() -> list[str]:
    source = (STATIC / "console.js").read_text()
    return re.findall(r"/\* GraphQL \*/ `([^`]*)`", source)


@pytest.mark.parametrize("document", _documents())
def test_the_console_uses_only_the_public_schema(document: str) -> None:
    errors = validate(schema._schema, parse(document))
    assert errors == []


def test_the_console_sends_its_four_documents() -> None:
    names = [re.search(r"(query|subscription) (\w+)", d).group(2) for d in _documents()]  # type: ignore[union-attr]
    assert names == ["ConsoleStores", "ConsoleStoreFeed", "ConsoleCustomer", "ConsoleCustomerFeed"]
