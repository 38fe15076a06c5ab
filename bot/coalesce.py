"""Per-job update coalescing for chat deliveries: in order, throttled, latest state wins.

A chat adapter edits one message per job (Discord's deferred response, Slack's status
message). Editing on every update would hit rate limits and could arrive out of order, so
each job gets one sender task: progress goes out at most once per ``interval`` seconds, the
latest state replaces one not yet sent, and a state never goes backwards (no "queued" after
"generating", nothing after the result). Results and failures are sent at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from bot.models import JobUpdate

__all__ = ["UpdateCoalescer"]

_RANK: Final = {"queued": 0, "generating": 1, "done": 2, "failed": 2}
_TERMINAL: Final = 2
_FINISHED_REMEMBERED: Final = 10_000


@dataclass
class _Slot:
    rank: int = -1
    pending: JobUpdate | None = None
    last_sent: float = float("-inf")
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sender: asyncio.Task[None] | None = None


class UpdateCoalescer:
    """Feeds each job's updates to ``send`` through that job's own task.

    ``submit`` does no I/O (the worker awaits delivery): it records the job's latest state
    and wakes the job's sender. ``send`` must not raise for one job's failure to post (log
    it); an exception ends that job's sender.

    Args:
        send: posts one update (edits the job's message, uploads results, ...).
        platform: only updates of jobs from this platform are taken.
        interval: seconds between two progress sends of one job.
        first_delay: seconds before a job's first progress send (at most ``interval``);
            lets a burst of acknowledgements go first and quick jobs skip straight to the
            result. Defaults to none.
        monotonic: the clock, in seconds.
    """

    def __init__(
        self,
        send: Callable[[JobUpdate], Awaitable[None]],
        *,
        platform: str,
        interval: float = 2.0,
        first_delay: float = 0.0,
        monotonic: Callable[[], float],
    ) -> None:
        self._send = send
        self._platform = platform
        self._interval = interval
        self._first_delay = min(first_delay, interval)
        self._monotonic = monotonic
        self._slots: dict[str, _Slot] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def submit(self, update: JobUpdate) -> None:
        """Record the job's latest state and wake its sender; returns at once."""
        job = update.job
        if job.origin.platform != self._platform or self._closed or job.id in self._finished:
            return
        rank = _RANK[update.kind]
        slot = self._slots.get(job.id)
        if slot is None:
            slot = self._slots[job.id] = _Slot(
                last_sent=self._monotonic() - self._interval + self._first_delay
            )
        if rank < slot.rank or slot.rank == _TERMINAL:
            return
        slot.rank, slot.pending = rank, update
        slot.wake.set()
        if slot.sender is None or slot.sender.done():
            slot.sender = self.spawn(
                self._drain(job.id, slot), name=f"{self._platform}-send:{job.id}"
            )

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run ``coro`` as a task owned here (cancelled and awaited by :meth:`close`)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until every sender has finished (tests and shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, grace: float = 5.0) -> None:
        """Stop: drop progress at once, give results and failures being sent ``grace``
        seconds, then cancel every task and wait for them."""
        self._closed = True
        finishing = {slot.sender for slot in self._slots.values() if slot.rank == _TERMINAL}
        for task in self._tasks - finishing:
            task.cancel()
        if finishing := {task for task in finishing if task is not None}:
            await asyncio.wait(finishing, timeout=grace)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self, job_id: str, slot: _Slot) -> None:
        try:
            while (update := slot.pending) is not None:
                terminal = _RANK[update.kind] == _TERMINAL
                wait = slot.last_sent + self._interval - self._monotonic()
                if not terminal and wait > 0:
                    slot.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await slot.wake.wait()
                    continue  # the latest state (maybe the result) goes next
                slot.pending = None
                await self._send(update)
                if terminal:
                    break
                slot.last_sent = self._monotonic()
        finally:
            if slot.rank == _TERMINAL and slot.pending is None:
                self._slots.pop(job_id, None)
                self._finished[job_id] = None
                while len(self._finished) > _FINISHED_REMEMBERED:
                    self._finished.popitem(last=False)
