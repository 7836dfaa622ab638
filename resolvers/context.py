"""The per-request context: everything a resolver may use, created fresh per operation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TypeAlias

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from domain.viewer import ANONYMOUS, Viewer
from readmodel.hub import Hub


@dataclass
class Context:
    engine: AsyncEngine
    hub: Hub
    request: Request | WebSocket | None = None
    response: Response | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    viewer: Viewer = ANONYMOUS
    """Who is asking; set by the auth layer before execution (api/auth.py)."""

    @property
    def store_scope(self) -> frozenset[int] | None:
        """Row scope for read-model queries: ``None`` = every store."""
        return self.viewer.store_ids


Info: TypeAlias = StrawberryInfo[Context, None]
