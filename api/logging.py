"""Logging set-up: one line per record, level from settings."""

from __future__ import annotations

import logging

from api.settings import LogLevel

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: LogLevel) -> None:
    logging.basicConfig(level=level.value, format=FORMAT, force=True)
    # SQLAlchemy and asyncpg are chatty at INFO; their warnings still show.
    logging.getLogger("sqlalchemy").setLevel(max(logging.WARNING, logging.getLevelName(level)))
