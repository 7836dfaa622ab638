"""Typed access to untrusted JSON: every failure names the field path that was wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from domain.money import InvalidAmount, to_minor_units


class ParseError(ValueError):
    """A payload that cannot be mapped. ``path`` names the offending field (``data.object.id``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class Node:
    """A JSON value plus where it sits in the payload.

    The path is kept as the parent node and this node's key, and spelled out only when
    asked for (for a ParseError): mapping a valid payload never builds it."""

    __slots__ = ("_key", "_parent", "value")

    def __init__(self, value: Any, path: str | int = "", parent: Node | None = None) -> None:
        """``path``: the root's path; for a child (``parent`` given), its key or index."""
        self.value = value
        self._key = path
        self._parent = parent

    @property
    def path(self) -> str:
        """Where this value sits: ``data.object.line_items[0].name``."""
        keys: list[str | int] = []
        node = self
        while node._parent is not None:
            keys.append(node._key)
            node = node._parent
        path = str(node._key)
        for key in reversed(keys):
            path = _join(path, key)
        return path

    def has(self, key: str) -> bool:
        value = self.value
        if not isinstance(value, dict):
            raise ParseError(self.path, "expected an object")
        return value.get(key) is not None

    def get(self, key: str) -> Node:
        """The child ``key``; missing or null is an error."""
        value = self.value
        if not isinstance(value, dict):
            raise ParseError(self.path, "expected an object")
        child = value.get(key)
        if child is None:
            raise ParseError(_join(self.path, key), "is required")
        return Node(child, key, self)

    def opt(self, key: str) -> Node | None:
        value = self.value
        if not isinstance(value, dict):
            raise ParseError(self.path, "expected an object")
        child = value.get(key)
        return None if child is None else Node(child, key, self)

    def get_text(self, key: str) -> str:
        """``get(key).text()``, without a child node unless it is an error."""
        value = self.value
        if isinstance(value, dict):
            child = value.get(key)
            if type(child) is str:
                text = child.strip()
                if text:
                    return text
        return self.get(key).text()

    def opt_text(self, key: str) -> str | None:
        """The child ``key`` as text; missing, null or blank is None."""
        value = self.value
        if not isinstance(value, dict):
            raise ParseError(self.path, "expected an object")
        child = value.get(key)
        if child is None:
            return None
        if type(child) is str:
            return child.strip() or None
        node = Node(child, key, self)
        if isinstance(child, str) and not child.strip():
            return None
        return node.text()

    def opt_int(self, key: str) -> int | None:
        child = self.opt(key)
        return None if child is None else child.integer()

    def opt_timestamp(self, key: str) -> datetime | None:
        child = self.opt(key)
        return None if child is None else child.timestamp()

    def children(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise ParseError(self.path, "expected an array")
        return [Node(v, i, self) for i, v in enumerate(self.value)]

    def array(self, key: str) -> list[Node]:
        child = self.opt(key)
        return [] if child is None else child.children()

    def text(self) -> str:
        value = self.value
        if type(value) is str:
            text = value.strip()
        elif isinstance(value, bool) or not isinstance(value, str | int):
            raise ParseError(self.path, "expected a string")
        else:
            text = str(value).strip()
        if not text:
            raise ParseError(self.path, "must not be empty")
        return text

    def integer(self) -> int:
        value = self.value
        if isinstance(value, bool):
            raise ParseError(self.path, "expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ParseError(self.path, "expected an integer")

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise ParseError(self.path, "expected true or false")
        return self.value

    def number(self) -> Decimal:
        value = self.value
        if type(value) is float or type(value) is int:  # str() of these has no blanks
            result = Decimal(str(value))
            if not result.is_finite():
                raise ParseError(self.path, "expected a finite number")
            return result
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ParseError(self.path, "expected a number")
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ParseError(self.path, "expected a number") from None
        if not result.is_finite():
            raise ParseError(self.path, "expected a finite number")
        return result

    def minor_units(self, currency: str) -> int:
        """A decimal major-unit amount in minor units (half-even)."""
        try:
            return to_minor_units(self.number(), currency)
        except InvalidAmount as exc:
            raise ParseError(self.path, str(exc)) from None

    def timestamp(self) -> datetime:
        """RFC 3339 / ISO 8601 text (``Z`` or ``+0000`` offsets) or epoch milliseconds."""
        value = self.value
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        text = self.text()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        try:
            return parse_timestamp(text)
        except ParseError as exc:  # the path is spelled out only now
            raise ParseError(self.path, exc.message) from None


def parse_timestamp(text: str, path: str = "") -> datetime:
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    # Toast writes offsets as +0000; Python 3.11 accepts that. Trim nanoseconds to micro.
    if "." in cleaned:
        head, _, tail = cleaned.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        frac, rest = tail[:digits], tail[digits:]
        cleaned = f"{head}.{frac[:6].ljust(6, '0')}{rest}" if frac else head + rest
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ParseError(path, f"not a timestamp: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def currency_code(node: Node) -> str:
    code = node.text().upper()
    if len(code) != 3 or not code.isalpha():
        raise ParseError(node.path, f"not an ISO 4217 currency: {code!r}")
    return code


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
