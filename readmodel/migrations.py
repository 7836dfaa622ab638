"""Alembic, driven from code: upgrade, current revision, head revision."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel.database import async_url

ALEMBIC_DIR = Path(__file__).resolve().parent.parent / "alembic"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    # ConfigParser interpolation: a literal % in a URL must be doubled.
    config.set_main_option(
        "sqlalchemy.url",
        async_url(database_url).render_as_string(hide_password=False).replace("%", "%%"),
    )
    return config


def head_revision() -> str:
    """The newest migration in the tree (read from files, no database needed)."""
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise RuntimeError("no alembic revisions found")
    return head


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``. Runs its own event loop: call it from sync code."""
    command.upgrade(alembic_config(database_url), revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None for a database alembic never touched."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return revision
