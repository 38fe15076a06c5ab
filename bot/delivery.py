"""Routes job updates to the adapter a job came from; a failing adapter never fails a job.

Finished jobs go through the store's delivery outbox, so a result reaches its person even
when another process ran the job (``bananabot worker`` beside ``bananabot run``) or the
adapter was down when it finished: :class:`DeliveryPump` posts what is left undelivered,
and says "generating" for jobs another process is running.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta

from bot.budgets import tightest
from bot.interfaces import Delivery, DeliveryOutbox, JobReader, LedgerBook
from bot.models import Done, Failed, Generating, Job, JobStatus, JobUpdate
from bot.service import Clock, utcnow

__all__ = ["DeliveryPump", "DeliveryRouter", "outcome_of"]

log = logging.getLogger(__name__)

_TERMINAL_KINDS = frozenset({"done", "failed"})
_REMEMBERED = 10_000
"""Jobs whose last update a router remembers (the oldest are forgotten)."""


class DeliveryRouter:
    """A :class:`Delivery` that forwards each update to the delivery of ``origin.platform``.

    Adapters register themselves when the composition root starts them. Progress updates
    for a platform with no adapter here are dropped. A finished job's outcome is delivered
    at most once at a time across processes: with an ``outbox``, it is leased first and
    marked delivered after the adapter took it; one with no adapter here, or whose adapter
    failed, stays in the outbox for :class:`DeliveryPump` (here or in another process).

    Args:
        outbox: the store's delivery outbox; None delivers without bookkeeping.
        lease: seconds a process holds a finished job while delivering it.
    """

    def __init__(
        self,
        deliveries: Mapping[str, Delivery] | None = None,
        *,
        outbox: DeliveryOutbox | None = None,
        lease: float = 60.0,
        clock: Clock = utcnow,
    ) -> None:
        self._deliveries: dict[str, Delivery] = dict(deliveries or {})
        self._outbox = outbox
        self._lease = timedelta(seconds=lease)
        self._clock = clock
        self._passed: OrderedDict[str, str] = OrderedDict()  # job id -> last kind passed on

    @property
    def platforms(self) -> tuple[str, ...]:
        """Platforms with an adapter registered in this process."""
        return tuple(self._deliveries)

    def register(self, platform: str, delivery: Delivery) -> None:
        self._deliveries[platform] = delivery

    def unregister(self, platform: str) -> None:
        self._deliveries.pop(platform, None)

    def said_generating(self, job_id: str) -> bool:
        """Whether a "generating" (or a final) update for ``job_id`` went through here."""
        return job_id in self._passed

    async def on_update(self, update: JobUpdate) -> None:
        platform = update.job.origin.platform
        delivery = self._deliveries.get(platform)
        if delivery is None:
            log.debug(
                "no delivery for platform", extra={"platform": platform, "job": update.job.id}
            )
            return
        job_id, kind = update.job.id, update.kind
        if kind == "generating" and self._passed.get(job_id) in _TERMINAL_KINDS:
            return  # read as running before it ended: nothing goes out after the end
        if kind == "generating" or kind in _TERMINAL_KINDS:
            self._passed[job_id] = kind
            self._passed.move_to_end(job_id)
            if len(self._passed) > _REMEMBERED:
                self._passed.popitem(last=False)
        book = self._outbox is not None and update.kind in _TERMINAL_KINDS
        if book and not await self._lease_delivery(update.job):
            return
        try:
            await delivery.on_update(update)
        except Exception:
            log.exception(
                "delivery failed",
                extra={"platform": platform, "job": update.job.id, "kind": update.kind},
            )
            return  # the lease runs out and the pump tries again
        if book:
            assert self._outbox is not None
            try:
                await self._outbox.mark_delivered(update.job.id, self._clock())
            except Exception:
                log.exception("could not mark a job delivered", extra={"job": update.job.id})

    async def _lease_delivery(self, job: Job) -> bool:
        assert self._outbox is not None
        now = self._clock()
        try:
            return await self._outbox.lease_delivery(job.id, now, now + self._lease)
        except Exception:
            # Better twice than never: deliver without the bookkeeping.
            log.exception("could not lease a delivery", extra={"job": job.id})
            return True


async def outcome_of(job: Job, reader: JobReader, ledger: LedgerBook, now: datetime) -> JobUpdate:
    """The ``Done`` or ``Failed`` update of a finished job, rebuilt from the store.

    Raises:
        ValueError: the job has not finished.
    """
    if job.status is JobStatus.SUCCEEDED:
        images = await reader.get_results(job.id)
        usage = await ledger.usage(await ledger.caps_for(job.origin), now)
        return Done(job=job, images=tuple(images), budget_left=tightest(usage))
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return Failed(
            job=job,
            error_code=job.error_code or "failed",
            message=job.error_message or "",
            refunded_micros=job.estimate_micros,
        )
    raise ValueError(f"job {job.id} has not finished ({job.status.value})")


class DeliveryPump:
    """Delivers finished jobs the outbox still holds for this process's platforms: jobs
    another process ran, jobs that finished while their adapter was down, and deliveries
    that failed; and says "generating" once for each running job of those platforms whose
    worker is in another process (a worker's own updates reach only adapters in its
    process). Runs in every process with adapters.

    Args:
        interval: seconds between looks at the outbox.
    """

    def __init__(
        self,
        *,
        router: DeliveryRouter,
        outbox: DeliveryOutbox,
        reader: JobReader,
        ledger: LedgerBook,
        interval: float = 1.0,
        clock: Clock = utcnow,
    ) -> None:
        self._router = router
        self._outbox = outbox
        self._reader = reader
        self._ledger = ledger
        self._interval = interval
        self._clock = clock

    async def run(self) -> None:
        """Deliver until cancelled."""
        while True:
            try:
                await self.report_running()
                await self.deliver_pending()
            except Exception:
                log.exception("delivery pump failed")
            await asyncio.sleep(self._interval)

    async def report_running(self, limit: int = 1_000) -> int:
        """One pass: a ``Generating`` update for each running job of this process's
        platforms that this process has not yet said "generating" for. Returns how many."""
        platforms = set(self._router.platforms)
        if not platforms:
            return 0
        told = 0
        for job in await self._reader.jobs_in_status(JobStatus.RUNNING.value, limit):
            if job.origin.platform in platforms and not self._router.said_generating(job.id):
                await self._router.on_update(Generating(job=job, provider=job.provider))
                told += 1
        return told

    async def deliver_pending(self, limit: int = 100) -> int:
        """One pass: hand each undelivered finished job to its adapter. Returns how many
        were found (each is delivered unless another process took it meanwhile)."""
        platforms = self._router.platforms
        if not platforms:
            return 0
        jobs = await self._outbox.undelivered(platforms, self._clock(), limit)
        for job in jobs:
            update = await outcome_of(job, self._reader, self._ledger, self._clock())
            log.info("delivering a finished job", extra={"job": job.id, "kind": update.kind})
            await self._router.on_update(update)
        return len(jobs)
