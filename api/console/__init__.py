"""``GET /console``: the support console, a static page over the public GraphQL API.

No build step: ``static/console.html`` and ``static/console.js`` are served as they are,
with a vendored, pinned ``graphql-ws`` client (``static/graphql-ws-6.4.2.min.js``, MIT).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


async def console_page(request: Request) -> Response:
    return FileResponse(STATIC / "console.html", media_type="text/html")


def console_routes() -> list[Any]:
    """The routes to add to the app: the page and its static files."""
    return [
        Route("/console", console_page, methods=["GET"]),
        Mount("/console/static", app=StaticFiles(directory=STATIC), name="console-static"),
    ]
