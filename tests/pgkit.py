"""The throw-away PostgreSQL server as a session fixture; skips LOUDLY, saying what is missing,
only where the server truly cannot start (scripts/bootstrap.sh --test installs it)."""

from __future__ import annotations

import pytest

from akkoord.archive.pgtemp import TempPostgres, Unavailable


@pytest.fixture(scope="session")
def pg_server():
    try:
        server = TempPostgres()
    except Unavailable as exc:
        pytest.skip(f"POSTGRESQL TESTS SKIPPED: {exc}")
    yield server
    server.stop()
