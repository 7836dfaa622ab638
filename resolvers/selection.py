"""What the client selected below the current field (to prefetch only what is asked for)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from strawberry.types.nodes import SelectedField, Selection

from resolvers.context import Info


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, SelectedField):
            yield selection
        else:  # a fragment spread or inline fragment: look inside
            yield from _fields(selection.selections)


def selects(info: Info, *path: str) -> bool:
    """Whether the current field's selection reaches ``path`` (GraphQL names), through any
    fragments; ``@skip``/``@include`` are not evaluated (a prefetch too many is harmless)."""
    level = list(_fields(info.selected_fields))
    for name in path:
        level = [
            f for f in _fields(s for field in level for s in field.selections) if f.name == name
        ]
        if not level:
            return False
    return True
