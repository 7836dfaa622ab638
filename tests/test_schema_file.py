"""The committed schema.graphql is exactly what the code exports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from resolvers.schema import export_schema

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_equals_the_exported_schema() -> None:
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == export_schema(), (
        "schema.graphql is stale: run `guestgraph export-schema > schema.graphql`"
    )


def test_export_schema_command_prints_the_sdl() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api", "export-schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert result.stdout == export_schema()
