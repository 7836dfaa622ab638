"""schemathesis, GraphQL mode, against the exported SDL (``schema.graphql``): queries and
mutations generated from the schema, sent to a live production-mode server as an admin,
never get a server error. The number of examples is bounded so the suite stays fast."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import schemathesis.graphql
import uvicorn
from hypothesis import HealthCheck, settings

from api.app import create_app
from tests import services
from tests.security_support import make_token, security_settings

SDL = Path(__file__).resolve().parent.parent / "schema.graphql"
schema = schemathesis.graphql.from_path(str(SDL))
ADMIN = {"Authorization": f"Bearer {make_token(role='admin', lifetime_s=3600)}"}


@pytest.fixture(scope="module")
def live_url(database_url: str, redis_url: str) -> Iterator[str]:
    """The app under uvicorn in a thread of its own (its own event loop), for sync calls."""
    app_settings = security_settings(
        database_url,
        redis_url,
        f"gg-test-{uuid.uuid4().hex[:8]}:",
        rate_limit_client="100000/minute",
    )
    port = services.free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="schemathesis-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/graphql"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_generated_operations_never_get_a_server_error(
    case: schemathesis.Case, live_url: str
) -> None:
    response = case.call(url=live_url, headers=ADMIN)
    assert response.status_code < 500, response.text
    body = response.json()
    for error in body.get("errors", []):
        assert error["extensions"]["code"] != "INTERNAL", (case.body, error)
        assert "Traceback" not in error["message"]
