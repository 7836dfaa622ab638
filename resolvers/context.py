"""The per-request context: everything a resolver may use, created fresh per operation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from domain.viewer import ANONYMOUS, Viewer
from readmodel.hub import InProcessHub
from resolvers.loaders import Loaders

DEFAULT_LOCALE = "en_US"


@dataclass
class Context:
    engine: AsyncEngine
    hub: InProcessHub
    request: Request | WebSocket | None = None
    response: Response | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    viewer: Viewer = ANONYMOUS
    """Who is asking; set by the auth layer before execution (api/auth.py)."""
    read_engine: AsyncEngine | None = None
    """Autocommit engine for reads (``create_read_engine``); ``engine`` when unset."""

    @property
    def reader(self) -> AsyncEngine:
        """The engine every read-model query of this request uses."""
        return self.read_engine or self.engine

    @property
    def store_scope(self) -> frozenset[int] | None:
        """Row scope for read-model queries: ``None`` = every store."""
        return self.viewer.store_ids

    @cached_property
    def loaders(self) -> Loaders:
        """This request's DataLoaders, created on first use (after the viewer is known)."""
        return Loaders(self.reader, self.store_scope)

    def reset_loaders(self) -> None:
        """Forget every loaded row: a mutation committed, later fields must see its effect."""
        self.__dict__.pop("loaders", None)

    @cached_property
    def locale(self) -> str:
        """Display locale for money: the first known language of Accept-Language, else en_US."""
        from resolvers.money import known_locale

        header = self.request.headers.get("accept-language", "") if self.request else ""
        for part in header.split(",")[:8]:
            tag = part.split(";")[0].strip()
            if tag and tag != "*" and (name := known_locale(tag[:35])):
                return name
        return DEFAULT_LOCALE


Info: TypeAlias = StrawberryInfo[Context, None]
