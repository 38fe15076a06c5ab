"""Storage backends behind the core's store Protocols; chosen by ``DATABASE_URL``.

``sqlite:///bananabot.db`` serves one process; ``postgresql://user:pass@host/db`` serves
any number of bananabot processes sharing one database.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bot.errors import ConfigurationError
from bot.storage.base import Store
from bot.storage.postgres import PostgresStore
from bot.storage.sqlite import SqliteStore

__all__ = ["PostgresStore", "SqliteStore", "Store", "sqlite_path", "store_from_url"]

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL.

    Raises:
        ConfigurationError: for another scheme or an empty path.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("sqlite", "sqlite3"):
        raise ConfigurationError(f"not a sqlite URL: scheme {parts.scheme!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path == ":memory:":
        raise ConfigurationError("DATABASE_URL needs a file path, e.g. sqlite:///bananabot.db")
    return Path(path)


def store_from_url(url: str, *, exclusive: bool = True) -> Store:
    """The store for ``DATABASE_URL`` (not yet opened): a :class:`PostgresStore` for
    ``postgresql://`` / ``postgres://`` URLs, a :class:`SqliteStore` for ``sqlite:///``.

    Args:
        exclusive: for SQLite, refuse to open while another process has the file open
            (see :class:`SqliteStore`); False only for a short-lived tool that must work
            beside the serving process. PostgreSQL serves any number of processes.

    Raises:
        ConfigurationError: for a scheme this version does not support, or a sqlite URL
            without a file path.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("sqlite", "sqlite3"):
        return SqliteStore(sqlite_path(url), exclusive=exclusive)
    if scheme in _POSTGRES_SCHEMES:
        return PostgresStore(url)
    raise ConfigurationError(
        f"DATABASE_URL scheme {scheme!r} is not supported; use sqlite:///bananabot.db "
        "(one process) or postgresql://user:password@host/database (several)"
    )
