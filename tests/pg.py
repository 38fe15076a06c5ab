"""A throwaway PostgreSQL schema per test, for tests that run bananabot processes on it.

The server is ``BANANABOT_TEST_POSTGRES_URL`` (default ``postgresql://127.0.0.1:5432/test``).
Where none answers, the test is skipped with the reason, unless ``BANANABOT_REQUIRE_POSTGRES=1``
(set by CI), where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

SERVER = os.environ.get("BANANABOT_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """Yield a ``DATABASE_URL`` whose ``search_path`` is a new, empty schema; drop it after.

    asyncpg passes unknown URL query parameters on as server settings, so every process
    given this URL works in that schema.
    """
    try:
        admin = await asyncpg.connect(SERVER, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        if os.environ.get("BANANABOT_REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"no PostgreSQL at {SERVER} ({type(exc).__name__}: {exc})")
    schema = f"bb_test_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in SERVER else "?"
        yield f"{SERVER}{separator}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
