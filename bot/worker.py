"""Workers: claim jobs fairly, run them on their provider, store results, settle or refund."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from bot.budgets import tightest
from bot.catalog import Catalog
from bot.delivery import outcome_of
from bot.errors import (
    INTERRUPTED,
    PROVIDER_REMOVED,
    BananabotError,
    ProviderError,
    ProviderUnavailable,
)
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
    ReferenceLinks,
    TaskIdCallback,
    Telemetry,
)
from bot.models import Done, Generating, Job, JobStatus, Queued, ResultImage
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
        links: makes time-limited links to reference images for providers that take
            references only as URLs; without it such providers get the reference's own link
            (a Discord attachment) or refuse.
        telemetry: told how long each provider call took.
        lease: seconds after which a running job nobody touched is taken over (several
            processes on one store); None: one process owns the store, and every running
            job found at start is taken over.
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
        links: ReferenceLinks | None = None,
        telemetry: Telemetry | None = None,
        lease: float | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self._telemetry = telemetry
        self._lease = lease
        self._running: set[str] = set()
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._catalog = catalog
        self._links = links
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

    def stop_claiming(self) -> None:
        """Take no more jobs from the queue or from stopped processes; jobs already
        running go on to the end (the first half of a graceful stop, see :meth:`drain`)."""
        self._stopping = True
        for event in self._wakeups.values():
            event.set()

    async def drain(self) -> None:
        """Stop claiming, then return once every job this worker runs has ended.

        Cancel :meth:`run` afterwards. A job still running when the caller gives up
        waiting (cancels this) keeps its provider task id, and is resumed at the next start
        or, on PostgreSQL, by another process once its lease runs out.
        """
        self.stop_claiming()
        while self._running:
            await self._idle.wait()

    async def run(self) -> None:
        """Recover jobs left running by a stopped process, then work until cancelled
        (after :meth:`drain` for a graceful stop)."""
        async with asyncio.TaskGroup() as group:
            await self.recover(group)
            for name in self._providers:
                group.create_task(self._claim_loop(name, group), name=f"claim:{name}")
            group.create_task(self._position_loop(), name="positions")
            if self._lease is not None:
                group.create_task(self._lease_loop(group), name="leases")

    async def recover(self, group: asyncio.TaskGroup) -> None:
        """Take over running jobs whose worker stopped, and refund jobs nothing can run.

        Which running jobs: with no lease (a single-process store, SQLite, whose file lock
        keeps other processes out) every running job; with a lease (PostgreSQL, several
        processes), those untouched for ``lease`` seconds: live workers touch theirs
        every ``lease / 4`` seconds. What happens to each (the recovery rule):

        - it has a provider task id and the provider can be polled (Runware, Runflow,
          Runbase): polling resumes and the result is delivered; it is never resubmitted;
        - it has a task id but the provider cannot be polled (the Gemini API answers in
          the call that was cut off): it fails, is refunded in full, and the person is told
          it was interrupted; resending could pay Google twice;
        - it has no task id: the provider never received it (the id is stored before any
          paid request), so it goes back to the queue and runs once;
        - its provider is no longer configured: refunded, and the person told.
        """
        now = self._clock()
        stale_before = now if self._lease is None else now - timedelta(seconds=self._lease)
        await self._take_over_stale(group, stale_before)
        for job in await self._reader.jobs_in_status(JobStatus.QUEUED.value, limit=100_000):
            if job.provider not in self._providers:
                # Its provider was removed from the configuration: refund rather than hold
                # the person's money for a job nothing will ever run.
                await self._fail(
                    job, PROVIDER_REMOVED, f"provider {job.provider} is not configured"
                )
        self.wake()

    async def _take_over_stale(self, group: asyncio.TaskGroup, stale_before: datetime) -> None:
        if self._stopping:
            return
        for seen in await self._reader.jobs_in_status(JobStatus.RUNNING.value, limit=100_000):
            if seen.id in self._running or seen.updated_at >= stale_before:
                continue
            job = await self._jobs.take_over(seen.id, self._clock(), stale_before)
            if job is None:
                continue  # it ended, or another process took it first
            provider = self._providers.get(job.provider)
            if provider is None:
                await self._fail(
                    job, PROVIDER_REMOVED, f"provider {job.provider} is not configured"
                )
            elif job.provider_task_id and provider.capabilities.resumable:
                log.info("resuming job", extra={"job": job.id, "provider": job.provider})
                self._hold(job.id)
                group.create_task(self.run_job(job), name=f"job:{job.id}")
            elif job.provider_task_id:
                await self._fail(
                    job,
                    INTERRUPTED,
                    "bananabot stopped while the provider was working on this job, and this "
                    "provider's answer cannot be fetched again; nothing was charged",
                )
            else:
                log.info("requeueing job", extra={"job": job.id, "provider": job.provider})
                await self._reader.requeue(job.id, self._clock())

    async def _lease_loop(self, group: asyncio.TaskGroup) -> None:
        """Touch this process's running jobs every ``lease / 4`` s; every ``lease / 2`` s,
        take over jobs whose process stopped touching them."""
        assert self._lease is not None
        beat = self._lease / 4
        beats = 0
        while True:
            await asyncio.sleep(beat)
            try:
                await self._jobs.heartbeat(sorted(self._running), self._clock())
                beats += 1
                if beats % 2 == 0:
                    stale = self._clock() - timedelta(seconds=self._lease)
                    await self._take_over_stale(group, stale)
                    self.wake()
            except Exception:
                log.exception("lease upkeep failed")

    async def _claim_loop(self, name: str, group: asyncio.TaskGroup) -> None:
        slots = asyncio.Semaphore(self._concurrency[name])
        wakeup = self._wakeups[name]
        while True:
            await slots.acquire()
            wakeup.clear()
            if self._stopping:
                slots.release()
                return
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
            self._hold(job.id)
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
        self._hold(job.id)
        try:
            await self._run_job(job)
        finally:
            self._running.discard(job.id)
            if not self._running:
                self._idle.set()

    def _hold(self, job_id: str) -> None:
        """Count a job as this worker's (heartbeats, :meth:`drain`) from its claim on."""
        self._running.add(job_id)
        self._idle.clear()

    async def _run_job(self, job: Job) -> None:
        provider = self._providers[job.provider]
        await self._delivery.on_update(Generating(job=job, provider=job.provider))
        started = time.monotonic()
        try:
            task = await self._task_for(job, provider)
            try:
                if job.provider_task_id:
                    result = await provider.resume(task, job.provider_task_id)
                else:
                    result = await provider.generate(task, self._task_id_saver(job.id))
            except BananabotError as exc:
                self._observe(job.provider, exc.code, started)
                raise
            self._observe(job.provider, "succeeded", started)
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
            # Says nothing about the provider, but a half-open breaker's trial must end.
            self._health.release_trial(job.provider)
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

    def _observe(self, provider: str, outcome: str, started: float) -> None:
        if self._telemetry is not None:
            self._telemetry.provider_call(provider, outcome, time.monotonic() - started)

    def _task_id_saver(self, job_id: str) -> TaskIdCallback:
        async def save(task_id: str) -> None:
            await self._jobs.set_task_id(job_id, task_id, self._clock())

        return save

    async def _task_for(self, job: Job, provider: Provider) -> GenerationTask:
        """The provider's task; link-only providers get a link per reference: bananabot's
        own (the cleaned bytes, for a limited time), else the reference's own link."""
        size = self._catalog.resolve_size(job.request)
        needs_links = not provider.capabilities.inline_references
        references = []
        for ref in job.request.references:
            data = await self._media.get(ref.media_key)
            url = None
            if needs_links:
                url = self._links.link(ref.media_key) if self._links is not None else ref.url
            references.append(ReferenceData(data, ref.mime_type, ref.width, ref.height, url))
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
        # Already ended (another process finished it first): deliver what really happened.
        await self._delivery.on_update(
            await outcome_of(failed, self._reader, self._ledger, self._clock())
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
