"""The documents in docs/queries.md and docs/graphql.md are valid against the schema."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import parse, validate

from resolvers.schema import schema

DOCS = Path(__file__).resolve().parent.parent / "docs"


def documents() -> list[tuple[str, str]]:
    found = []
    for name in ("queries.md", "graphql.md"):
        text = (DOCS / name).read_text()
        for n, block in enumerate(re.findall(r"```graphql\n(.*?)```", text, re.S)):
            found.append((f"{name}#{n}", block))
    return found


def test_the_query_guide_has_ten_or_more_documents() -> None:
    assert len([d for d in documents() if d[0].startswith("queries.md")]) >= 10


@pytest.mark.parametrize(("where", "document"), documents(), ids=[d[0] for d in documents()])
def test_documented_queries_validate_against_the_schema(where: str, document: str) -> None:
    errors = validate(schema._schema, parse(document))
    assert errors == [], f"{where}: {errors}"
