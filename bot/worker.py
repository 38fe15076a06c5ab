"""Workers: claim jobs fairly, run them on their provider, store results, settle or refund."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from bot.budgets import tightest
from bot.catalog import Catalog
from bot.errors import BananabotError, ProviderError, ProviderUnavailable
from bot.health import ProviderHealth
from bot.interfaces import (
    Delivery,
    GenerationResult,
    GenerationTask,
    JobQueue,
    JobReader,
    LedgerBook,
    MediaStore,
    Provider,
    ReferenceData,
    TaskIdCallback,
)
from bot.models import Done, Failed, Generating, Job, JobStatus, Queued, ResultImage
from bot.service import Clock, utcnow

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    """Runs queued jobs: one claim loop per provider, each with its own concurrency limit.

    Fairness comes from the store's claim order (round-robin between users). The job row is
    the truth: a job is marked running when claimed, its provider task id is stored before
    the provider does paid work, and it ends succeeded (settled to the provider's cost) or
    failed (refunded in full).

    Args:
        providers: name -> provider; a job runs on ``providers[job.provider]``.
        concurrency: name -> jobs at once on that provider (default 4).
        idle_poll: seconds between claims when idle and not woken (other processes' jobs).
        position_interval: seconds between queue-position updates to adapters.
        health: the providers' circuit breakers (shared with routing).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        jobs: JobQueue,
        reader: JobReader,
        ledger: LedgerBook,
        media: MediaStore,
        providers: Mapping[str, Provider],
        delivery: Delivery,
        concurrency: Mapping[str, int] | None = None,
        idle_poll: float = 1.0,
        position_interval: float = 1.0,
        health: ProviderHealth | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._catalog = catalog
        self._jobs = jobs
        self._reader = reader
        self._ledger = ledger
        self._media = media
        self._providers = dict(providers)
        self._delivery = delivery
        self._concurrency = {name: (concurrency or {}).get(name, 4) for name in self._providers}
        self._idle_poll = idle_poll
        self._position_interval = position_interval
        self._clock = clock
        self._health = health or ProviderHealth(self._providers)
        self.failover: Callable[[Job], Awaitable[str | None]] | None = None
        """Given a job its provider never received, queue it elsewhere (the service's
        ``reroute``); None: such jobs fail and are refunded."""
        self._wakeups = {name: asyncio.Event() for name in self._providers}
        self._positions_dirty = asyncio.Event()
        self._last_positions: dict[str, int] = {}
        self._claimed: set[str] = set()  # claimed since the position loop's last read

    @property
    def health(self) -> ProviderHealth:
        """The providers' circuit breakers (shared with routing)."""
        return self._health

    def wake(self) -> None:
        """Tell every claim loop that a job may be waiting (called by ``submit``)."""
        for event in self._wakeups.values():
            event.set()
        self._positions_dirty.set()

    async def run(self) -> None:
        """Recover jobs left running by a previous process, then work until cancelled."""
        async with asyncio.TaskGroup() as group:
            await self.recover(group)
            for name in self._providers:
                group.create_task(self._claim_loop(name, group), name=f"claim:{name}")
            group.create_task(self._position_loop(), name="positions")

    async def recover(self, group: asyncio.TaskGroup) -> None:
        """Resume running jobs after a restart: poll those with a task id, requeue the rest.

        A job with a provider task id is never resubmitted (that could charge twice); one
        without never reached its provider, so it goes back to the queue.
        """
        for job in await self._reader.jobs_in_status(JobStatus.RUNNING.value, limit=100_000):
            provider = self._providers.get(job.provider)
            if provider is None:
                await self._fail(
                    job, "provider_unavailable", f"provider {job.provider} is not configured"
                )
            elif job.provider_task_id and provider.capabilities.resumable:
                log.info("resuming job", extra={"job": job.id, "provider": job.provider})
                group.create_task(self.run_job(job), name=f"job:{job.id}")
            elif job.provider_task_id:
                await self._fail(
                    job, "provider_unavailable", "the job was interrupted and cannot be resumed"
                )
            else:
                await self._reader.requeue(job.id, self._clock())
        for job in await self._reader.jobs_in_status(JobStatus.QUEUED.value, limit=100_000):
            if job.provider not in self._providers:
                # Its provider was removed from the configuration: refund rather than hold
                # the person's money for a job nothing will ever run.
                await self._fail(
                    job, "provider_unavailable", f"provider {job.provider} is not configured"
                )
        self.wake()

    async def _claim_loop(self, name: str, group: asyncio.TaskGroup) -> None:
        slots = asyncio.Semaphore(self._concurrency[name])
        wakeup = self._wakeups[name]
        while True:
            await slots.acquire()
            wakeup.clear()
            if not self._health.may_claim(name):
                # The provider's breaker is open: its jobs wait (and stay refundable by a
                # cancel) instead of failing one after another.
                slots.release()
                await asyncio.sleep(
                    min(self._idle_poll, max(0.01, self._health.seconds_until_trial(name)))
                )
                continue
            try:
                job = await self._jobs.claim(name, self._clock())
            except Exception:
                slots.release()
                self._health.release_trial(name)
                log.exception("claim failed", extra={"provider": name})
                await asyncio.sleep(self._idle_poll)
                continue
            if job is None:
                slots.release()
                self._health.release_trial(name)
                try:
                    async with asyncio.timeout(self._idle_poll):
                        await wakeup.wait()
                except TimeoutError:
                    pass
                continue
            self._claimed.add(job.id)
            self._positions_dirty.set()
            group.create_task(self._run_and_release(job, slots), name=f"job:{job.id}")

    async def _run_and_release(self, job: Job, slots: asyncio.Semaphore) -> None:
        try:
            await self.run_job(job)
        except Exception:
            # The store failed mid-job: the row stays running with its task id, and the
            # next start resumes it by polling; one broken job must not stop the others.
            log.exception("job left running after a store error", extra={"job": job.id})
        finally:
            slots.release()

    async def run_job(self, job: Job) -> None:
        """Run one claimed job to a terminal state and deliver the outcome. Never raises
        (except cancellation, which leaves the job running for recovery)."""
        provider = self._providers[job.provider]
        await self._delivery.on_update(Generating(job=job, provider=job.provider))
        try:
            task = await self._task_for(job)
            if job.provider_task_id:
                result = await provider.resume(task, job.provider_task_id)
            else:
                result = await provider.generate(task, self._task_id_saver(job.id))
            images = await self._store_images(job, result)
        except BananabotError as exc:
            log.warning(
                "job failed",
                extra={
                    "job": job.id,
                    "provider": job.provider,
                    "code": exc.code,
                    "retryable": exc.retryable,
                    "status": exc.status if isinstance(exc, ProviderError) else None,
                },
            )
            self._health.record(job.provider, exc)
            if (
                isinstance(exc, ProviderUnavailable)
                and not exc.sent
                and self.failover is not None
                and await self.failover(job) is not None
            ):
                return
            await self._fail(job, exc.code, exc.message)
            return
        except Exception as exc:
            log.exception("job crashed", extra={"job": job.id, "provider": job.provider})
            await self._fail(job, "internal_error", f"internal error ({type(exc).__name__})")
            return
        self._health.record(job.provider, None)
        cost = self._cost(job, result, images)
        done = await self._jobs.finish(job.id, images, cost, self._clock(), result.notices)
        if done.status is not JobStatus.SUCCEEDED:
            return
        caps = await self._ledger.caps_for(done.origin)
        usage = await self._ledger.usage(caps, self._clock())
        log.info(
            "job succeeded",
            extra={
                "job": job.id,
                "provider": job.provider,
                "cost_micros": cost,
                "estimate_micros": job.estimate_micros,
                "images": len(images),
            },
        )
        await self._delivery.on_update(
            Done(job=done, images=tuple(images), budget_left=tightest(usage))
        )

    def _task_id_saver(self, job_id: str) -> TaskIdCallback:
        async def save(task_id: str) -> None:
            await self._jobs.set_task_id(job_id, task_id, self._clock())

        return save

    async def _task_for(self, job: Job) -> GenerationTask:
        size = self._catalog.resolve_size(job.request)
        references = []
        for ref in job.request.references:
            data = await self._media.get(ref.media_key)
            references.append(ReferenceData(data, ref.mime_type, ref.width, ref.height))
        return GenerationTask(job.id, job.request, size, tuple(references))

    async def _store_images(self, job: Job, result: GenerationResult) -> list[ResultImage]:
        images = []
        for index, generated in enumerate(result.images):
            stored = await self._media.put_image(generated.data)
            images.append(
                ResultImage(
                    job_id=job.id,
                    index=index,
                    media_key=stored.key,
                    mime_type=stored.mime_type,
                    width=stored.width,
                    height=stored.height,
                    seed=generated.seed,
                    cost_micros=generated.cost_micros or 0,
                    nsfw=generated.nsfw,
                    withheld=generated.nsfw and not job.origin.channel_nsfw,
                    provider_url=generated.provider_url,
                )
            )
        return images

    def _cost(self, job: Job, result: GenerationResult, images: list[ResultImage]) -> int:
        """The settlement: the provider-reported cost; the estimate if it reports none."""
        if result.cost_micros is not None:
            cost = result.cost_micros
        elif images and all(g.cost_micros is not None for g in result.images):
            cost = sum(g.cost_micros or 0 for g in result.images)
        else:
            cost = job.estimate_micros
        if cost > job.estimate_micros:
            log.warning(
                "provider cost above estimate",
                extra={"job": job.id, "cost_micros": cost, "estimate_micros": job.estimate_micros},
            )
        if images and all(i.cost_micros == 0 for i in images) and cost:
            share, rest = divmod(cost, len(images))
            images[:] = [
                i.model_copy(update={"cost_micros": share + (rest if i.index == 0 else 0)})
                for i in images
            ]
        return cost

    async def _fail(self, job: Job, code: str, message: str) -> None:
        failed = await self._jobs.fail(job.id, code, message, self._clock())
        await self._delivery.on_update(
            Failed(
                job=failed, error_code=code, message=message, refunded_micros=job.estimate_micros
            )
        )

    async def _position_loop(self) -> None:
        while True:
            await self._positions_dirty.wait()
            self._positions_dirty.clear()
            self._claimed.clear()
            try:
                queued = await self._reader.queue_positions(limit=200)
            except Exception:
                log.exception("queue positions failed")
                queued = []
            current = {job.id: position for job, position in queued}
            for job, position in queued:
                # A job claimed since the read began must not be told it is queued again.
                if job.id in self._claimed:
                    continue
                if self._last_positions.get(job.id) != position:
                    await self._delivery.on_update(Queued(job=job, position=position))
            self._last_positions = current
            await asyncio.sleep(self._position_interval)
