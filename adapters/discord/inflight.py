"""Requests in flight: entry points register their task, so shutdown can let them finish.

discord.py runs each interaction handler in a task of its own; ``tracked`` makes those tasks
ours to wait for (and cancel) when the adapter stops, instead of leaving them to hit a
closed store.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

__all__ = ["HasInFlight", "InFlight", "tracked"]

P = ParamSpec("P")


class InFlight:
    """The set of handler tasks running now."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for every task but the caller's, then cancel the rest."""
        active = [task for task in self.tasks if task is not asyncio.current_task()]
        if not active:
            return
        _, late = await asyncio.wait(active, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1.0)


class HasInFlight(Protocol):
    inflight: InFlight


S = TypeVar("S", bound=HasInFlight)


def tracked(
    method: Callable[Concatenate[S, P], Awaitable[None]],
) -> Callable[Concatenate[S, P], Awaitable[None]]:
    """Count the method's task in ``self.inflight`` while it runs."""

    @functools.wraps(method)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.inflight.tasks.add(task)
        try:
            await method(self, *args, **kwargs)
        finally:
            if task is not None:
                self.inflight.tasks.discard(task)

    return wrapper
