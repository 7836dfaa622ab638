"""`guestgraph serve` as a newcomer runs it: embedded PostgreSQL, migrations, graceful stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests import services

pytestmark = pytest.mark.e2e


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGRAPH_")}
    env["GUESTGRAPH_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-m", "api", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(port: int, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become ready")


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and any(str(data_dir) in part for part in cmdline):
            found.append(proc)
    return found


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return output


def test_serve_starts_embedded_postgres_reuses_it_and_stops_it(tmp_path: Path) -> None:
    port = services.free_port()
    first = _start(tmp_path, port)
    try:
        _wait_ready(port, first)
        created = httpx.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": "{ __typename }"}, timeout=5
        )
        assert created.json() == {"data": {"__typename": "Query"}}
    finally:
        log = _stop(first)
    assert first.returncode == 0, log
    assert "(embedded)" in log
    assert "broker: in-process (single process only)" in log
    assert _postgres_processes(tmp_path) == []

    second = _start(tmp_path, port)
    try:
        _wait_ready(port, second)
    finally:
        log = _stop(second)
    assert second.returncode == 0, log
    # the data folder was reused, not initialised again
    assert (tmp_path / "postgres" / "PG_VERSION").exists()
    assert _postgres_processes(tmp_path) == []
