"""Relay connections over keyset windows: page-size rules, opaque cursors, ``PageInfo``.

Page size: ``first``/``last`` default to 20, at most 100; more, a negative number, or
``first`` with ``last`` is a ``BAD_USER_INPUT`` error. When ``last`` is given the page is
the ``last`` rows before ``before`` (or the end). Cursors are opaque: base64url of the
connection's name and the row's sort key; a cursor from another connection, or not one of
ours, is a ``BAD_USER_INPUT`` error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
import strawberry

from readmodel.queries import Window
from resolvers.errors import UserInputError

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_CURSOR_LENGTH = 200

T = TypeVar("T")


@strawberry.type(description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="One item of a page, with the cursor to continue from it.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Opaque; pass as `after` or `before`.")
    node: T


@strawberry.type(description="A page of a list: edges, page info and the total count.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many items the whole list has (all pages).")
    async def total_count(self) -> int:
        return await self.count()


def _encode_key_part(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(kind: str, key: Sequence[Any]) -> str:
    raw = orjson.dumps([kind, *(_encode_key_part(v) for v in key)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(
    cursor: str, kind: str, types: Sequence[type], *, argument: str
) -> tuple[Any, ...]:
    """The sort key in ``cursor``; raises UserInputError unless it is a ``kind`` cursor."""
    invalid = UserInputError(f"`{argument}` is not a valid cursor for this list", argument=argument)
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii"))
        parts = orjson.loads(raw)
    except (binascii.Error, UnicodeError, ValueError, orjson.JSONDecodeError):
        raise invalid from None
    if not isinstance(parts, list) or len(parts) != len(types) + 1 or parts[0] != kind:
        raise invalid
    key: list[Any] = []
    for value, expected in zip(parts[1:], types, strict=True):
        if expected is datetime and isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise invalid from None
            if parsed.tzinfo is None:
                raise invalid
            key.append(parsed)
        elif expected is int and isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:
                raise invalid
            key.append(value)
        else:
            raise invalid
    return tuple(key)


def _page_size(value: int | None, argument: str) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if value < 0 or value > MAX_PAGE_SIZE:
        raise UserInputError(
            f"`{argument}` must be between 0 and {MAX_PAGE_SIZE} (got {value})", argument=argument
        )
    return value


def window_of(
    kind: str,
    key_types: Sequence[type],
    *,
    first: int | None,
    after: str | None,
    last: int | None = None,
    before: str | None = None,
) -> Window:
    """The keyset window Relay's ``first/after/last/before`` ask for (raises UserInputError)."""
    backward = last is not None
    limit = _page_size(last, "last") if backward else _page_size(first, "first")
    return Window(
        limit=limit,
        after=None if after is None else decode_cursor(after, kind, key_types, argument="after"),
        before=(
            None if before is None else decode_cursor(before, kind, key_types, argument="before")
        ),
        backward=backward,
    )


R = TypeVar("R")
C = TypeVar("C", bound=Connection[Any])


def build_connection(
    connection: type[C],
    rows: Sequence[R],
    window: Window,
    *,
    kind: str,
    key_of: Callable[[R], Sequence[Any]],
    node_of: Callable[[R], Any],
    count: Callable[[], Awaitable[int]],
) -> C:
    """A connection from the up-to-``limit + 1`` rows a keyset query returned, in query order."""
    more = len(rows) > window.limit
    page = list(rows[: window.limit])
    if window.backward:
        page.reverse()
    edges = [Edge(cursor=encode_cursor(kind, key_of(row)), node=node_of(row)) for row in page]
    info = PageInfo(
        has_next_page=window.before is not None if window.backward else more,
        has_previous_page=more if window.backward else window.after is not None,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )
    return connection(edges=edges, page_info=info, count=count)
