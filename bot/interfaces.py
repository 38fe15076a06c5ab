"""The seams the core owns: providers, the store, the media store and delivery (Protocols).

Providers, storage backends and adapters implement these; the core never imports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.budgets import BudgetCap, CapScope, CapUsage
from bot.catalog import ResolvedSize
from bot.models import ImageRequest, Job, JobUpdate, Origin, ReferenceImage, ResultImage
from bot.policy import ChannelPolicy

__all__ = [
    "Delivery",
    "DeliveryOutbox",
    "EnqueueResult",
    "GeneratedImage",
    "GenerationResult",
    "GenerationTask",
    "JobQueue",
    "JobReader",
    "JobStat",
    "LedgerBook",
    "MediaStore",
    "PolicyBook",
    "Provider",
    "ProviderCapabilities",
    "ReferenceData",
    "ReferenceLinks",
    "ReferenceLoader",
    "StoredMedia",
    "TaskIdCallback",
    "Telemetry",
]


# --- providers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderCapabilities:
    """What a provider can do, as data.

    Attributes:
        models: neutral model names it serves.
        max_references: reference images per request.
        inline_references: references may be sent as bytes (data URI / inline parts);
            False means the provider needs URLs it can fetch.
        reports_cost: the provider reports each task's real cost (else the estimate settles).
        resumable: a stored task id can be polled after a crash (Runware taskUUID).
        nsfw_flag: results carry an NSFW flag.
        price_floor_micros: model -> the provider's lowest price per image, micro-dollars,
            when it charges more than the catalog (the catalog holds Runware's prices); a
            job reserves at least this per image there.
        unsupported: :class:`bot.models.ImageRequest` fields the provider cannot honour
            when set (not None and not False); routing skips it for such requests instead
            of letting it refuse them later (Runbase takes no seed or safety tolerance).
        max_results: images per request, if fewer than the model allows.
        tiers: model -> the resolution tiers it offers, where fewer than the catalog's.
    """

    models: frozenset[str]
    max_references: int = 14
    inline_references: bool = True
    reports_cost: bool = True
    resumable: bool = True
    nsfw_flag: bool = False
    price_floor_micros: Mapping[str, int] = field(default_factory=dict)
    unsupported: frozenset[str] = frozenset()
    max_results: int | None = None
    tiers: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """A reference image as sent to a provider (already validated and downscaled).

    Attributes:
        data: the encoded bytes (for providers that take inline images).
        url: a link the provider can fetch the image from: bananabot's own time-limited link
            to these bytes (``BANANABOT_PUBLIC_URL/media/<token>``) or the person's Discord
            attachment link; set only for providers whose capabilities say
            ``inline_references=False``, which refuse references without one.
    """

    data: bytes
    mime_type: str
    width: int
    height: int
    url: str | None = None


class ReferenceLinks(Protocol):
    """Makes time-limited public links to stored images, for providers that take references
    only as URLs (Runflow, Runbase). Implemented by :class:`bot.media.links.MediaLinks`."""

    def link(self, media_key: str) -> str:
        """A URL serving ``media_key``'s bytes for a limited time.

        Raises:
            ValueError: ``media_key`` is not a media store key.
        """
        ...


@dataclass(frozen=True, slots=True)
class GenerationTask:
    """Everything a provider needs for one job.

    Attributes:
        job_id: bananabot's job id (for logs only).
        request: the request after policy.
        size: the resolved size (exact width x height, or resolution only).
        references: the reference images in request order.
    """

    job_id: str
    request: ImageRequest
    size: ResolvedSize
    references: tuple[ReferenceData, ...] = ()


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One image a provider produced.

    Attributes:
        data: the encoded image bytes.
        seed: the seed the provider reports for it, if any.
        cost_micros: this image's cost in micro-dollars, if the provider reported it.
        nsfw: the provider flagged it (Runware ``NSFWContent``).
        provider_url: the provider's URL for it, if any (used as a download fallback).
    """

    data: bytes
    seed: int | None = None
    cost_micros: int | None = None
    nsfw: bool = False
    provider_url: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """A finished generation. ``cost_micros`` is the provider-reported total, if any."""

    images: tuple[GeneratedImage, ...]
    cost_micros: int | None = None
    notices: tuple[str, ...] = field(default=())


TaskIdCallback = Callable[[str], Awaitable[None]]
"""Called with the provider's task id before the provider is asked to do paid work."""


class Provider(Protocol):
    """An image provider (Runware, Runflow, Runbase, Gemini, the sandbox).

    ``generate`` must call ``on_task_id`` (which durably stores the id) before the request
    that makes the provider spend money, so a crash after it resumes by polling.
    """

    name: str
    capabilities: ProviderCapabilities

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        """Run one generation to completion.

        Raises:
            bot.errors.ProviderError: a subclass saying what went wrong and if retryable.
        """
        ...

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        """Finish a generation started before a restart, by its task id, without resubmitting.

        Raises:
            bot.errors.ProviderError: as for ``generate``.
        """
        ...


# --- media -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """An image in the media store: its key, mime type and pixel size."""

    key: str
    mime_type: str
    width: int
    height: int


class MediaStore(Protocol):
    """Content-addressed image bytes (references and results)."""

    async def put_image(self, data: bytes) -> StoredMedia:
        """Store encoded image bytes.

        Raises:
            bot.errors.ReferenceImageError: if the bytes are not an allowed image.
        """
        ...

    async def get(self, key: str) -> bytes:
        """Return the bytes for a key.

        Raises:
            bot.errors.NotFound: if nothing is stored under ``key``.
        """
        ...

    async def derive_reference(self, key: str, max_side: int) -> StoredMedia:
        """A stored image re-encoded as a reference: longest side at most ``max_side`` px.

        Returns the image itself when it is already small enough.

        Raises:
            bot.errors.NotFound: if nothing is stored under ``key``.
        """
        ...


class ReferenceLoader(Protocol):
    """Turns what a person attached into a stored, validated reference image."""

    async def load(self, source: bytes | str, index: int = -1) -> ReferenceImage:
        """Load encoded bytes or an http(s) URL; ``index`` is for error messages.

        Raises:
            bot.errors.ReferenceImageError: not an allowed image, too large, unreachable.
        """
        ...


# --- store -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnqueueResult:
    """The stored job, its queue position (1 = next), and whether this call created it."""

    job: Job
    position: int
    created: bool


class JobQueue(Protocol):
    """The job table as a queue; every method is one transaction."""

    async def enqueue(self, job: Job, caps: Sequence[BudgetCap], now: datetime) -> EnqueueResult:
        """Store a queued job and reserve ``job.estimate_micros`` against every cap at once.

        A job whose idempotency key exists already is returned unchanged (created=False),
        with no second reservation.

        Raises:
            bot.errors.BudgetExceeded: the first cap the reservation would exceed; nothing
                is stored.
        """
        ...

    async def claim(self, provider: str, now: datetime, job_id: str | None = None) -> Job | None:
        """Take the next queued job for ``provider``, round-robin between users (or exactly
        ``job_id`` if it is still queued)."""
        ...

    async def set_task_id(self, job_id: str, task_id: str, now: datetime) -> None:
        """Durably record the provider's task id of a running job."""
        ...

    async def heartbeat(self, job_ids: Sequence[str], now: datetime) -> None:
        """Mark running jobs as still being worked (their ``updated_at`` becomes ``now``),
        so no other process takes them over."""
        ...

    async def take_over(self, job_id: str, now: datetime, stale_before: datetime) -> Job | None:
        """Atomically take a running job whose worker stopped: if it is still running and
        was last touched before ``stale_before``, touch it and return it; else None (it
        ended, or another process took it first)."""
        ...

    async def finish(
        self,
        job_id: str,
        images: Sequence[ResultImage],
        cost_micros: int,
        now: datetime,
        notices: Sequence[str] = (),
    ) -> Job:
        """Store results and settle: release the reservation, charge ``cost_micros``, and
        append the provider's ``notices`` to the job's.

        Idempotent: a job already terminal is returned unchanged.
        """
        ...

    async def fail(
        self, job_id: str, code: str, message: str, now: datetime, *, cancelled: bool = False
    ) -> Job:
        """Mark a job failed (or cancelled) and refund its reservation in full. Idempotent:
        a terminal job comes back unchanged; so does one no longer queued when
        ``cancelled`` (started work is billed, so only a queued job can be cancelled)."""
        ...


@dataclass(frozen=True, slots=True)
class JobStat:
    """How many jobs are in one status on one provider, and what they settled for.

    Attributes:
        cost_micros: the sum of their settled costs, micro-dollars (0 unless succeeded).
    """

    status: str
    provider: str
    count: int
    cost_micros: int


class JobReader(Protocol):
    """Read access to jobs and results."""

    async def get_job(self, job_id: str) -> Job:
        """Raises: bot.errors.NotFound."""
        ...

    async def get_results(self, job_id: str) -> list[ResultImage]: ...

    async def queue_positions(self, limit: int) -> list[tuple[Job, int]]:
        """The first ``limit`` queued jobs in claim order with their positions (1 = next)."""
        ...

    async def jobs_in_status(self, status: str, limit: int) -> list[Job]: ...

    async def recent_jobs(self, workspace_id: str, user_id: str, limit: int) -> list[Job]:
        """A person's latest jobs, newest first."""
        ...

    async def job_stats(self) -> list[JobStat]:
        """Jobs per status and provider (every job ever stored), for metrics."""
        ...

    async def requeue(self, job_id: str, now: datetime) -> None:
        """Put a running job that never reached its provider back in the queue."""
        ...

    async def reroute(self, job_id: str, provider: str, now: datetime) -> Job | None:
        """Queue a running job that never reached its provider for another provider."""
        ...


class LedgerBook(Protocol):
    """Budget caps and what counts against them."""

    async def set_cap(self, cap: BudgetCap, now: datetime) -> None: ...

    async def remove_cap(self, cap: BudgetCap) -> bool: ...

    async def caps_for(self, origin: Origin) -> list[BudgetCap]:
        """Every cap that applies to a job from ``origin``."""
        ...

    async def list_caps(self, workspace_id: str) -> list[BudgetCap]: ...

    async def usage(self, caps: Sequence[BudgetCap], now: datetime) -> list[CapUsage]: ...

    async def spend_by(
        self, workspace_id: str, scope: CapScope, since: datetime | None, limit: int
    ) -> list[tuple[str, int, int]]:
        """(user or channel id, spent, held) micro-dollars since ``since``, top first."""
        ...


class PolicyBook(Protocol):
    """Safety policies per workspace ("" channel) and per channel."""

    async def get_policy(self, workspace_id: str, channel_id: str) -> ChannelPolicy | None: ...

    async def set_policy(
        self, workspace_id: str, channel_id: str, policy: ChannelPolicy, now: datetime
    ) -> None: ...


# --- delivery --------------------------------------------------------------------------------


class DeliveryOutbox(Protocol):
    """Finished jobs waiting to reach their adapter (the store implements it).

    A job's outcome is delivered once per job by whichever process runs an adapter for
    its platform: that process leases the job, hands the outcome to the adapter, and
    marks it delivered. A crash between lease and mark delivers it again after the lease.
    """

    async def undelivered(self, platforms: Sequence[str], now: datetime, limit: int) -> list[Job]:
        """Succeeded or failed, not delivered, not leased by a live process; oldest first."""
        ...

    async def lease_delivery(self, job_id: str, now: datetime, until: datetime) -> bool:
        """Take the right to deliver until ``until``; False if delivered or leased."""
        ...

    async def mark_delivered(self, job_id: str, now: datetime) -> None: ...


class Telemetry(Protocol):
    """Where the core reports timings (Prometheus in :mod:`bot.ops.metrics`)."""

    def provider_call(self, provider: str, outcome: str, seconds: float) -> None:
        """One provider call ended: ``outcome`` is ``succeeded`` or the error code;
        ``seconds`` from the first request to the result or error."""
        ...


class Delivery(Protocol):
    """How an adapter hears about its jobs: queued (with position), generating, done, failed."""

    async def on_update(self, update: JobUpdate) -> None: ...
