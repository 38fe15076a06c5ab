"""The whole store as one Protocol: what the composition root, the CLI and tests hold.

The core sees the store through the narrower seams in :mod:`bot.interfaces` (``JobQueue``,
``JobReader``, ``LedgerBook``, ``PolicyBook``); :class:`Store` is their union plus the
lifecycle and the invariant checks every backend (SQLite, PostgreSQL) provides.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, Self

from bot.interfaces import DeliveryOutbox, JobQueue, JobReader, LedgerBook, PolicyBook

__all__ = ["Store"]


class Store(JobQueue, JobReader, LedgerBook, PolicyBook, DeliveryOutbox, Protocol):
    """A storage backend: jobs, results, the append-only ledger, caps and policies.

    Use as an async context manager, or call :meth:`open` and :meth:`close`. Money is
    integer micro-dollars; every time in or out is timezone-aware (returned in UTC).
    """

    async def open(self) -> None:
        """Connect and apply pending migrations.

        Raises:
            bot.errors.ConfigurationError: the database cannot be used (e.g. a SQLite file
                another process holds, or a PostgreSQL server that refuses the connection).
        """
        ...

    async def close(self) -> None:
        """Release connections (and locks); safe to call twice."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def verify_totals(self, now: datetime) -> list[str]:
        """Every cap whose cached current-period totals differ from the ledger's sums, each
        described in one line; empty when the cache is true to the ledger."""
        ...

    async def ledger_totals(self) -> dict[str, int]:
        """The sum of every ledger kind (``reserve``, ``release``, ``charge``), micro-dollars."""
        ...
