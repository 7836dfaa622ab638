"""The lean executor answers exactly what graphql-core's executor answers, data and errors.

Differential tests: the same document against the same objects through ``LeanExecutor`` and
through strawberry's stock executor must give equal results, including the errors a broken
value produces (non-null violations, values that do not serialize), and fields that carry
extensions (permission checks, PII masking) must never take the short path.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from resolvers.execution import LeanExecutor, mark_lean_fields
from resolvers.schema import schema as guestgraph_schema


@strawberry.enum
class Color(enum.Enum):
    RED = "RED"
    GREEN = "GREEN"


class Shout(FieldExtension):
    def resolve(self, next_: Any, source: Any, info: Any, **kwargs: Any) -> Any:
        return str(next_(source, info, **kwargs)).upper()


@strawberry.type
class Thing:
    name: str
    nickname: str | None
    color: Color
    count: int
    at: datetime
    secret: str = strawberry.field(extensions=[Shout()])

    @strawberry.field
    def greeting(self, punctuation: str = "!") -> str:
        return f"hello {self.name}{punctuation}"


GOOD = Thing(
    name="a",
    nickname=None,
    color=Color.GREEN,
    count=3,
    at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    secret="psst",
)
BROKEN: list[Any] = [
    Thing(name=None, nickname="n", color=Color.RED, count=1, at=GOOD.at, secret="s"),  # type: ignore[arg-type]
    Thing(name="b", nickname="n", color="PURPLE", count=1, at=GOOD.at, secret="s"),  # type: ignore[arg-type]
    Thing(name="c", nickname="n", color=Color.RED, count="many", at=GOOD.at, secret="s"),  # type: ignore[arg-type]
]


@strawberry.type
class Query:
    @strawberry.field
    def thing(self) -> Thing:
        return GOOD

    @strawberry.field
    def things(self) -> list[Thing | None]:
        return [GOOD, *BROKEN]


def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    lean = strawberry.Schema(query=Query, execution_context_class=LeanExecutor)
    mark_lean_fields(lean._schema)
    stock = strawberry.Schema(
        query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext
    )
    return lean, stock


def as_dict(result: Any) -> dict[str, Any]:
    return {
        "data": result.data,
        "errors": sorted(
            (e.message, tuple(e.path or ()), tuple((loc.line, loc.column) for loc in e.locations))
            for e in result.errors or []
        ),
    }


def test_only_basic_leaf_fields_are_marked() -> None:
    lean, _ = schemas()
    marked = {
        name
        for name, field in lean._schema.type_map["Thing"].fields.items()
        if getattr(field, "_guestgraph_lean_leaf", None)
    }
    # greeting has a resolver and arguments, secret an extension: graphql-core runs both
    assert marked == {"name", "nickname", "color", "count", "at"}


async def test_same_data_as_the_stock_executor() -> None:
    lean, stock = schemas()
    document = """
      query {
        thing { name nickname color count at secret greeting
                again: name  shout: greeting(punctuation: "?") __typename
                skipped: count @skip(if: true) }
      }
    """
    lean_result, stock_result = await lean.execute(document), await stock.execute(document)
    assert as_dict(lean_result) == as_dict(stock_result)
    assert lean_result.errors is None
    assert lean_result.data == {
        "thing": {
            "name": "a",
            "nickname": None,
            "color": "GREEN",
            "count": 3,
            "at": "2026-01-02T03:04:00+00:00",
            "secret": "PSST",
            "greeting": "hello a!",
            "again": "a",
            "shout": "hello a?",
            "__typename": "Thing",
        }
    }


async def test_same_errors_as_the_stock_executor() -> None:
    """A null in a non-null field, an enum value that is not one, an Int that is not one."""
    lean, stock = schemas()
    document = "query { things { name nickname color count } }"
    lean_result, stock_result = await lean.execute(document), await stock.execute(document)
    assert as_dict(lean_result) == as_dict(stock_result)
    assert lean_result.data == {
        "things": [{"name": "a", "nickname": None, "color": "GREEN", "count": 3}, None, None, None]
    }
    paths = sorted(tuple(e.path or ()) for e in lean_result.errors or [])
    assert paths == [("things", 1, "name"), ("things", 2, "color"), ("things", 3, "count")]


def test_pii_fields_of_the_real_schema_keep_their_extensions() -> None:
    """Masking and permission checks are field extensions: those fields are never short."""
    types = guestgraph_schema._schema.type_map
    for type_name, field_name in [("Customer", "email"), ("Customer", "phone")]:
        field = types[type_name].fields[field_name]  # type: ignore[union-attr]
        assert not getattr(field, "_guestgraph_lean_leaf", None), (type_name, field_name)
    order_status = types["Order"].fields["status"]  # type: ignore[union-attr]
    assert getattr(order_status, "_guestgraph_lean_leaf", None)
