"""``DATABASE_URL`` picks the backend; a PostgreSQL server that cannot be reached is a
configuration error that never shows the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigurationError
from bot.storage import PostgresStore, SqliteStore, store_from_url


def test_sqlite_urls_make_a_sqlite_store() -> None:
    store = store_from_url("sqlite:///data/bananabot.db")
    assert isinstance(store, SqliteStore) and store.path == Path("data/bananabot.db")
    absolute = store_from_url("sqlite:////var/lib/bananabot.db")
    assert isinstance(absolute, SqliteStore) and absolute.path == Path("/var/lib/bananabot.db")


async def test_a_non_exclusive_url_store_opens_beside_the_serving_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    async with store_from_url(url) as serving, store_from_url(url, exclusive=False) as tool:
        assert await tool.ledger_totals() == await serving.ledger_totals() == {}
        with pytest.raises(ConfigurationError):
            await store_from_url(url).open()


@pytest.mark.parametrize(
    "url",
    ["postgresql://bot:pw@db.internal:5432/bananabot", "postgres://db.internal/bananabot"],
)
def test_postgres_urls_make_a_postgres_store(url: str) -> None:
    store = store_from_url(url)
    assert isinstance(store, PostgresStore)
    assert (store.dsn, store.schema) == (url, None)


@pytest.mark.parametrize("url", ["mysql://db/bananabot", "bananabot.db", "sqlite:///"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        store_from_url(url)
    assert "DATABASE_URL" in caught.value.message or "sqlite" in caught.value.message


def test_an_unknown_scheme_names_both_backends() -> None:
    with pytest.raises(ConfigurationError) as caught:
        store_from_url("mysql://db/bananabot")
    assert "sqlite:///" in caught.value.message and "postgresql://" in caught.value.message


async def test_an_unreachable_server_is_a_configuration_error_without_the_password() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    store = PostgresStore("postgresql://bot:s3cret-pw@127.0.0.1:1/bananabot", min_size=1)
    with pytest.raises(ConfigurationError) as caught:
        await store.open()
    message = caught.value.message
    assert message.startswith("cannot connect to PostgreSQL at 127.0.0.1:1/bananabot: ")
    assert "s3cret-pw" not in message
    await store.close()  # nothing open: harmless


def test_a_blank_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://db/x", schema=" ")
