"""Storage backends behind the core's store Protocols; chosen by ``DATABASE_URL``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bot.errors import ConfigurationError
from bot.storage.sqlite import SqliteStore

__all__ = ["SqliteStore", "sqlite_path", "store_from_url"]


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


def store_from_url(url: str) -> SqliteStore:
    """The store for ``DATABASE_URL`` (not yet opened).

    Raises:
        ConfigurationError: for a scheme this version does not support.
    """
    scheme = urlsplit(url).scheme
    if scheme in ("sqlite", "sqlite3"):
        return SqliteStore(sqlite_path(url))
    raise ConfigurationError(
        f"DATABASE_URL scheme {scheme!r} is not supported yet; use sqlite:///bananabot.db"
    )
