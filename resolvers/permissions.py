"""Who may see which field: the one permission mechanism, attached to fields and types.

Use on a field::

    email: str | None = strawberry.field(extensions=[pii("email")])
    @strawberry.field(extensions=[requires("orders:read")])
    async def orders(...): ...
    body: str | None = strawberry.field(extensions=[hidden_from_partners()])

or on every field of a type with ``@guarded(lambda: requires("customers:read"))``.

Rules:
- ``requires(scope)`` / ``requires_any(...)``: the caller holds the scope (admins hold every
  scope); otherwise the field is null with a ``FORBIDDEN`` error (a non-null field nulls its
  parent, as GraphQL does). Customer tokens never pass: they see data only through ``me``.
- ``authenticated()``: any caller with a valid token.
- ``pii(kind)``: ``email`` / ``phone`` are masked (``d***@example.com``,
  ``+1******0123``) unless the caller holds ``pii:read`` and is not a partner, or is the
  customer the value belongs to. Every unmasked read by a non-customer caller goes to the
  audit log (batched, off the query path).
- ``hidden_from_partners(fallback)``: partners get ``fallback`` (null, ``[]``), silently.
- ``roles(*roles)``: only these roles; others get null with a ``FORBIDDEN`` error.

Row scoping (which customers and orders exist for the caller at all) is not here: it is in
the read-model queries (``readmodel.scoping``), so a foreign row is never even loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from graphql import GraphQLError
from strawberry.extensions import FieldExtension

from domain.masking import PII_MASKS
from domain.viewer import Role, Viewer
from readmodel.audit import AuditLog

PII_READ_SCOPE = "pii:read"

T = TypeVar("T")


class PermissionDenied(GraphQLError):
    """A field the caller may not see: null, with a typed error in ``errors[]``."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, extensions={"code": "FORBIDDEN", "reason": reason})


def viewer_of(info: Any) -> Viewer:
    viewer = getattr(info.context, "viewer", None)
    if isinstance(viewer, Viewer):
        return viewer
    return Viewer(subject="anonymous", role=Role.ANONYMOUS)


def _audit_log_of(info: Any) -> AuditLog | None:
    request = getattr(info.context, "request", None)
    state = getattr(getattr(request, "app", None), "state", None)
    found = getattr(state, "audit_log", None)
    return found if isinstance(found, AuditLog) else None


class _Gate(FieldExtension):
    """A check before the resolver runs; subclasses say what happens on refusal."""

    def allowed(self, viewer: Viewer, source: Any) -> bool:
        raise NotImplementedError

    def refuse(self, info: Any) -> Any:
        raise NotImplementedError

    # positional-only, so a field argument named `source` or `info` cannot collide
    def resolve(  # type: ignore[override]
        self, next_: Callable[..., Any], source: Any, info: Any, /, **kwargs: Any
    ) -> Any:
        if not self.allowed(viewer_of(info), source):
            return self.refuse(info)
        return next_(source, info, **kwargs)

    async def resolve_async(  # type: ignore[override]
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, /, **kwargs: Any
    ) -> Any:
        if not self.allowed(viewer_of(info), source):
            return self.refuse(info)
        result = next_(source, info, **kwargs)
        return await result if inspect.isawaitable(result) else result


class RequiresScope(_Gate):
    """Any one of ``scopes``. Customer tokens never pass: they reach data through ``me``."""

    def __init__(self, *scopes: str) -> None:
        super().__init__()
        self.scopes = scopes

    def allowed(self, viewer: Viewer, source: Any) -> bool:
        if viewer.role in (Role.ANONYMOUS, Role.CUSTOMER):
            return False
        return any(viewer.has_scope(scope) for scope in self.scopes)

    def refuse(self, info: Any) -> Any:
        needed = " or ".join(self.scopes)
        raise PermissionDenied(f"'{info.field_name}' needs the scope {needed}.", reason="scope")


class Authenticated(_Gate):
    def allowed(self, viewer: Viewer, source: Any) -> bool:
        return not viewer.is_anonymous

    def refuse(self, info: Any) -> Any:
        raise PermissionDenied(f"'{info.field_name}' needs a token.", reason="anonymous")


class RequiresRole(_Gate):
    def __init__(self, roles: frozenset[Role]) -> None:
        super().__init__()
        self.roles = roles

    def allowed(self, viewer: Viewer, source: Any) -> bool:
        return viewer.role in self.roles

    def refuse(self, info: Any) -> Any:
        raise PermissionDenied(f"'{info.field_name}' is not available to you.", reason="role")


class HiddenFromPartners(_Gate):
    def __init__(self, fallback: Callable[[], Any]) -> None:
        super().__init__()
        self.fallback = fallback

    def allowed(self, viewer: Viewer, source: Any) -> bool:
        return viewer.role is not Role.PARTNER

    def refuse(self, info: Any) -> Any:
        return self.fallback()


def customer_id_of(source: Any) -> int | None:
    """The golden customer id of a resolved object (``db_id``, ``pk``, ``customer_id``
    or a numeric ``id``)."""
    for attribute in ("db_id", "pk", "customer_id", "id"):
        value = getattr(source, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def sees_pii(viewer: Viewer, customer_id: int | None) -> bool:
    """Unmasked PII: the person themselves, or a non-partner holding ``pii:read``."""
    if viewer.role is Role.CUSTOMER:
        return customer_id is not None and viewer.customer_id == customer_id
    if viewer.role in (Role.PARTNER, Role.ANONYMOUS):
        return False
    return viewer.has_scope(PII_READ_SCOPE)


class Pii(FieldExtension):
    def __init__(self, kind: str, customer_id: Callable[[Any], int | None]) -> None:
        super().__init__()
        if kind not in PII_MASKS:
            raise ValueError(f"unknown PII kind {kind!r}")
        self.kind = kind
        self.mask = PII_MASKS[kind]
        self.customer_id = customer_id

    def _shown(self, value: Any, source: Any, info: Any) -> Any:
        if value is None:
            return None
        viewer = viewer_of(info)
        customer_id = self.customer_id(source)
        if not sees_pii(viewer, customer_id):
            return self.mask(str(value))
        if viewer.role is not Role.CUSTOMER and customer_id is not None:
            audit = _audit_log_of(info)
            if audit is not None:
                audit.record(
                    actor=viewer.client_id or viewer.subject,
                    role=viewer.role.value,
                    customer_id=customer_id,
                    field=self.kind,
                    request_id=getattr(info.context, "request_id", ""),
                )
        return value

    # positional-only, so a field argument named `source` or `info` cannot collide
    def resolve(  # type: ignore[override]
        self, next_: Callable[..., Any], source: Any, info: Any, /, **kwargs: Any
    ) -> Any:
        return self._shown(next_(source, info, **kwargs), source, info)

    async def resolve_async(  # type: ignore[override]
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Any, /, **kwargs: Any
    ) -> Any:
        result = next_(source, info, **kwargs)
        value = await result if inspect.isawaitable(result) else result
        return self._shown(value, source, info)


def requires(scope: str) -> FieldExtension:
    return RequiresScope(scope)


def requires_any(*scopes: str) -> FieldExtension:
    return RequiresScope(*scopes)


def authenticated() -> FieldExtension:
    return Authenticated()


def roles(*allowed: Role) -> FieldExtension:
    return RequiresRole(frozenset(allowed))


def pii(kind: str, *, customer_id: Callable[[Any], int | None] = customer_id_of) -> FieldExtension:
    return Pii(kind, customer_id)


def hidden_from_partners(fallback: Callable[[], Any] = lambda: None) -> FieldExtension:
    return HiddenFromPartners(fallback)


def guarded(*extensions: Callable[[], FieldExtension]) -> Callable[[type[T]], type[T]]:
    """Class decorator (above ``@strawberry.type``): every field of the type gets these."""

    def decorate(cls: type[T]) -> type[T]:
        definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
        for field in definition.fields:
            field.extensions = [*(make() for make in extensions), *field.extensions]
        return cls

    return decorate
