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


def test_every_type_and_field_has_a_description() -> None:
    from graphql import GraphQLInputObjectType, GraphQLInterfaceType, GraphQLObjectType

    missing = []
    for name, graphql_type in schema._schema.type_map.items():
        kinds = GraphQLObjectType | GraphQLInputObjectType | GraphQLInterfaceType
        if name.startswith("__") or not isinstance(graphql_type, kinds):
            continue
        definition = (graphql_type.extensions or {}).get("strawberry-definition")
        module = getattr(getattr(definition, "origin", None), "__module__", "")
        if module.startswith("resolvers.live"):
            continue  # the live helper's subscription types are checked by its own tests
        if not graphql_type.description and name not in ("Query", "Mutation", "Subscription"):
            missing.append(name)
        missing += [f"{name}.{f}" for f, d in graphql_type.fields.items() if not d.description]
    assert missing == []
