"""The core service: submit a request or an action on a result, without calling a provider."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.budgets import BudgetCap, CapScope, CapUsage, Period, first_exceeded, period_bounds
from bot.catalog import Catalog, ResolvedSize, validate
from bot.errors import InvalidRequest, NotFound, PolicyRefused
from bot.health import ProviderHealth
from bot.interfaces import (
    Delivery,
    JobQueue,
    JobReader,
    LedgerBook,
    MediaStore,
    PolicyBook,
    ProviderCapabilities,
    ReferenceLoader,
)
from bot.models import (
    ImageRequest,
    Job,
    JobAction,
    JobStatus,
    Origin,
    Queued,
    ReferenceImage,
    ResultImage,
)
from bot.policy import ChannelPolicy, apply_policy, combine

__all__ = [
    "Clock",
    "ImageService",
    "Quote",
    "Submitted",
    "UsageReport",
    "new_job_id",
    "utcnow",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

REFERENCE_MAX_SIDE = 2048
"""Longest side of a reference image sent to a provider, in pixels."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    """12 URL-safe characters (72 random bits): short enough for ``bb:vary:<id>:<i>``."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Quote:
    """A request as it would run: after policy, its size, its estimate in micro-dollars."""

    request: ImageRequest
    size: ResolvedSize
    estimate_micros: int
    notices: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Spend in one period, micro-dollars: the person's own, and the workspace's top
    spenders and channels as (id, spent, held)."""

    period: Period
    own_spent_micros: int
    own_held_micros: int
    top_users: tuple[tuple[str, int, int], ...]
    channels: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Submitted:
    """What ``submit`` answers: the job, its queue position, and whether it is new.

    Attributes:
        position: 1 = next to start; 0 if the job is no longer queued (a duplicate submit
            of a job that already started or finished).
        created: False when the idempotency key matched an existing job.
    """

    job: Job
    position: int
    created: bool

    @property
    def estimate_micros(self) -> int:
        return self.job.estimate_micros

    @property
    def notices(self) -> tuple[str, ...]:
        return self.job.notices


def unfit(
    request: ImageRequest, tier: str, caps: ProviderCapabilities, links: bool
) -> tuple[str, str] | None:
    """Why a provider cannot take a request, as (field, reason), or None if it can.

    Args:
        request: the request after policy.
        tier: its resolved resolution tier.
        caps: the provider's capabilities.
        links: bananabot can serve reference images as links (``BANANABOT_PUBLIC_URL``).
    """
    if request.model not in caps.models:
        return "model", f"does not serve {request.model}"
    if len(request.references) > caps.max_references:
        return "references", f"takes at most {caps.max_references} reference images"
    if (
        request.references
        and not caps.inline_references
        and not links
        and not all(ref.url for ref in request.references)
    ):
        return "references", (
            "takes reference images only as links, and this bot has no public address to "
            "serve them from (BANANABOT_PUBLIC_URL)"
        )
    if caps.max_results is not None and request.number_results > caps.max_results:
        plural = "" if caps.max_results == 1 else "s"
        return "number_results", f"makes at most {caps.max_results} image{plural} per request"
    offered = caps.tiers.get(request.model)
    if offered is not None and tier not in offered:
        return "resolution", f"offers {', '.join(sorted(offered))}, not {tier}"
    for name in sorted(caps.unsupported):
        value = getattr(request, name)
        if value is not None and value is not False:
            return name, f"cannot take {name}"
    return None


class ImageService:
    """Validates, applies policy, reserves budget and stores jobs; answers within milliseconds.

    Args:
        catalog: the model catalog.
        jobs, reader, ledger, policies: the store (one object may implement all four).
        media: the media store (results used as references for Upscale and Edit).
        providers: provider name -> capabilities of every provider that can be named.
        routing: provider names tried in order for a request that names none.
        references: turns uploads, files and URLs into stored reference images.
        delivery: where updates go (a :class:`bot.delivery.DeliveryRouter`).
        default_policy: the policy of a workspace that has none stored.
        wake: called after a job is queued, to wake the workers.
        health: the providers' circuit breakers; providers with an open breaker are tried
            last when routing.
        reference_links: the workers can give link-only providers (Runflow, Runbase) a
            link to each reference image (``BANANABOT_PUBLIC_URL`` is set); without, such
            providers take only requests whose references carry their own link.
        clock: the time source (UTC-aware).
    """

    def __init__(
        self,
        *,
        catalog: Catalog,
        jobs: JobQueue,
        reader: JobReader,
        ledger: LedgerBook,
        policies: PolicyBook,
        media: MediaStore,
        providers: Mapping[str, ProviderCapabilities],
        routing: Sequence[str],
        references: ReferenceLoader,
        delivery: Delivery,
        default_policy: ChannelPolicy,
        wake: Callable[[], None] = lambda: None,
        health: ProviderHealth | None = None,
        reference_links: bool = False,
        clock: Clock = utcnow,
    ) -> None:
        self.catalog = catalog
        self._links = reference_links
        self._jobs = jobs
        self._reader = reader
        self._ledger = ledger
        self._policies = policies
        self._media = media
        self._providers = dict(providers)
        self._routing = tuple(routing)
        self._references = references
        self._delivery = delivery
        self._default_policy = default_policy
        self._wake = wake
        self._health = health
        self._clock = clock

    @property
    def provider_names(self) -> tuple[str, ...]:
        return tuple(self._providers)

    async def load_reference(self, source: bytes | str, index: int = -1) -> ReferenceImage:
        """Download (URL), read (path) or take (bytes) a reference image, validate, downscale
        (longest side 2048 px) and store it. Call before ``submit``, off the ack path.

        Raises:
            ReferenceImageError: not an allowed image, too large, or unreachable.
        """
        return await self._references.load(source, index)

    async def policy_for(self, origin: Origin) -> ChannelPolicy:
        """The effective policy of the origin's channel (channel tightens workspace)."""
        workspace = await self._policies.get_policy(origin.workspace_id, "")
        channel = await self._policies.get_policy(origin.workspace_id, origin.channel_id)
        return combine(workspace or self._default_policy, channel)

    def _healthy_first(self) -> tuple[str, ...]:
        """The routing order with providers whose breaker is open moved to the end: when
        every provider that fits is down, the job still queues for the first one."""
        healthy = tuple(
            n for n in self._routing if self._health is None or self._health.routable(n)
        )
        return healthy + tuple(n for n in self._routing if n not in healthy)

    def choose_provider(self, request: ImageRequest, preferred: str | None) -> str:
        """The provider for a request: ``preferred`` if given, else the first healthy one
        that fits (``BANANABOT_PROVIDERS`` order).

        Raises:
            InvalidRequest: ``provider`` unknown, or none serves the model / reference count.
        """
        candidates = (preferred,) if preferred else self._healthy_first()
        if preferred and preferred not in self._providers:
            raise InvalidRequest(
                "provider", f"provider {preferred!r} is not configured", tuple(self._providers)
            )
        tier = self.catalog.resolve_size(request).tier
        reasons: list[tuple[str, str]] = []
        for name in candidates:
            assert name is not None
            reason = unfit(request, tier, self._providers[name], self._links)
            if reason is None:
                return name
            reasons.append((reason[0], f"{name} {reason[1]}"))
        if not reasons:
            raise InvalidRequest("provider", "no provider is configured", ())
        raise InvalidRequest(
            reasons[0][0],
            "no configured provider can take this request: "
            + "; ".join(text for _field, text in reasons),
            self._routing,
        )

    async def quote(self, request: ImageRequest, origin: Origin) -> Quote:
        """What ``submit`` would do, without storing or reserving anything: the request after
        policy, its size and estimate. Lets an adapter refuse before posting in public; the
        reservation in ``submit`` stays the authority.

        Raises:
            InvalidRequest: as for ``submit``.
            BudgetExceeded: a cap has no room for the estimate right now.
        """
        size = validate(self.catalog, request)
        decision = apply_policy(request, await self.policy_for(origin))
        estimate = self._estimate(
            decision.request, size, self.choose_provider(decision.request, None)
        )
        refusal = first_exceeded(await self.budget(origin), estimate)
        if refusal is not None:
            raise refusal
        return Quote(decision.request, size, estimate, decision.notices)

    def _estimate(self, request: ImageRequest, size: ResolvedSize, provider: str | None) -> int:
        """The catalog's worst case, raised to the provider's own price floor if higher."""
        estimate = self.catalog.estimate_micros(request, size)
        if provider is not None:
            floor = self._providers[provider].price_floor_micros.get(request.model, 0)
            estimate = max(estimate, floor * request.number_results)
        return estimate

    async def submit(
        self,
        request: ImageRequest,
        origin: Origin,
        *,
        idempotency_key: str,
        provider: str | None = None,
        action: JobAction = JobAction.IMAGINE,
        parent: tuple[str, int] | None = None,
    ) -> Submitted:
        """Queue a request: validate, apply policy, reserve the estimate, store the job.

        Never calls a provider. A second call with the same ``idempotency_key`` (a platform
        retry) returns the first job and reserves nothing.

        Args:
            request: the neutral request (references already stored in the media store).
            origin: where it came from; its caps and policy apply.
            idempotency_key: derived from the platform's own ids (interaction id, event id).
            provider: a provider name to force, or None to route.
            action, parent: lineage for Vary / Upscale / Edit (parent job id, image index).

        Raises:
            InvalidRequest: a field outside what the model allows (names field and values).
            BudgetExceeded: a cap would be exceeded; nothing is stored or charged.
        """
        size = validate(self.catalog, request)
        decision = apply_policy(request, await self.policy_for(origin))
        chosen = self.choose_provider(decision.request, provider)
        estimate = self._estimate(decision.request, size, chosen)
        now = self._clock()
        job = Job(
            id=new_job_id(),
            origin=origin,
            request=decision.request,
            action=action,
            parent_job_id=parent[0] if parent else None,
            parent_index=parent[1] if parent else None,
            provider=chosen,
            estimate_micros=estimate,
            idempotency_key=idempotency_key,
            notices=decision.notices,
            created_at=now,
            updated_at=now,
        )
        caps = await self._ledger.caps_for(origin)
        result = await self._jobs.enqueue(job, caps, now)
        if result.created:
            log.info(
                "job queued",
                extra={
                    "job": job.id,
                    "action": action.value,
                    "provider": chosen,
                    "estimate_micros": estimate,
                    "position": result.position,
                },
            )
            self._wake()
            await self._delivery.on_update(Queued(job=result.job, position=result.position))
        return Submitted(result.job, result.position, result.created)

    async def act(
        self,
        action: JobAction,
        job_id: str,
        index: int,
        origin: Origin,
        *,
        idempotency_key: str,
        instruction: str | None = None,
    ) -> Submitted:
        """Vary, Upscale 4K or Edit image ``index`` of job ``job_id``, as a child job.

        - vary: the same request with a new seed.
        - upscale: the image as the only reference, 4K, the same aspect ratio.
        - edit: the image as the only reference, ``instruction`` as the prompt, same size.

        The person acting (``origin``) is charged, under their own caps and policy.

        Raises:
            NotFound: no such job or image in the person's workspace.
            InvalidRequest: e.g. upscaling an image that is already 4K, an empty instruction.
            PolicyRefused: the image was withheld (NSFW) and cannot be acted on.
            BudgetExceeded: as for ``submit``.
        """
        parent = await self._reader.get_job(job_id)
        if parent.origin.workspace_id != origin.workspace_id:
            raise NotFound(f"no job {job_id}")
        images = await self._reader.get_results(job_id)
        if parent.status is not JobStatus.SUCCEEDED or not 0 <= index < len(images):
            raise NotFound(f"job {job_id} has no image {index + 1}")
        image = images[index]
        if image.withheld:
            raise PolicyRefused("image", "this image was withheld as NSFW and cannot be reused")
        request = await self._child_request(action, parent.request, image, instruction)
        return await self.submit(
            request,
            origin,
            idempotency_key=idempotency_key,
            action=action,
            parent=(job_id, index),
        )

    async def _child_request(
        self,
        action: JobAction,
        parent: ImageRequest,
        image: ResultImage,
        instruction: str | None,
    ) -> ImageRequest:
        spec = self.catalog.model(parent.model)
        found = spec.tier_of(image.width, image.height)
        tier, ratio = found if found else (parent.resolution or spec.default_tier, None)
        if action is JobAction.VARY:
            seed = secrets.randbelow(2**32)
            while image.seed is not None and seed == image.seed:
                seed = secrets.randbelow(2**32)
            return parent.model_copy(update={"seed": seed})
        if action is JobAction.UPSCALE and tier == "4K":
            raise InvalidRequest("resolution", "this image is already 4K", spec.tiers)
        text = (instruction or "").strip()
        if action is JobAction.EDIT and not text:
            raise InvalidRequest("prompt", "an edit needs an instruction", ("3..45000 characters",))
        if action not in (JobAction.UPSCALE, JobAction.EDIT):
            raise InvalidRequest(
                "action", f"unknown action {action!r}", ("vary", "upscale", "edit")
            )
        common: dict[str, object] = {
            "references": (await self._as_reference(image),),
            "width": None,
            "height": None,
            "number_results": 1,
            "seed": None,
        }
        if action is JobAction.UPSCALE:
            return parent.model_copy(update={**common, "resolution": "4K", "aspect_ratio": ratio})
        return parent.model_copy(
            update={**common, "prompt": text, "resolution": tier, "aspect_ratio": ratio}
        )

    async def _as_reference(self, image: ResultImage) -> ReferenceImage:
        stored = await self._media.derive_reference(image.media_key, REFERENCE_MAX_SIDE)
        return ReferenceImage(
            media_key=stored.key,
            mime_type=stored.mime_type,
            width=stored.width,
            height=stored.height,
            source=f"result {image.job_id}#{image.index + 1}",
        )

    async def reroute(self, job: Job) -> str | None:
        """Move a job whose provider was never reached (connection refused on every try) to
        the next provider that serves it, healthy ones first, if that costs no more than
        what is reserved. Returns the new provider, or None to let the job fail.

        Only for jobs the provider certainly never saw: a job a provider may have accepted
        stays with it, so nobody pays twice.
        """
        size = self.catalog.resolve_size(job.request)
        for name in self._healthy_first():
            if (
                name == job.provider
                or unfit(job.request, size.tier, self._providers[name], self._links) is not None
                or self._estimate(job.request, size, name) > job.estimate_micros
            ):
                continue
            moved = await self._reader.reroute(job.id, name, self._clock())
            if moved is None:
                return None
            log.info("job rerouted", extra={"job": job.id, "from": job.provider, "to": name})
            self._wake()
            return name
        return None

    async def cancel(self, job_id: str, origin: Origin) -> Job:
        """Cancel a queued job of the same person and refund it in full.

        Raises:
            NotFound: no such job for this person.
            InvalidRequest: the job already started (the provider bills started work).
        """
        job = await self._reader.get_job(job_id)
        if job.origin.user_id != origin.user_id or job.origin.workspace_id != origin.workspace_id:
            raise NotFound(f"no job {job_id}")
        if job.status is not JobStatus.QUEUED:
            raise InvalidRequest(
                "job", f"job {job_id} is {job.status.value} and cannot be cancelled"
            )
        cancelled = await self._jobs.fail(
            job_id, "cancelled", "cancelled", self._clock(), cancelled=True
        )
        if cancelled.status is not JobStatus.CANCELLED:  # a worker claimed it meanwhile
            raise InvalidRequest(
                "job", f"job {job_id} is {cancelled.status.value} and cannot be cancelled"
            )
        return cancelled

    async def job(self, job_id: str) -> tuple[Job, list[ResultImage]]:
        """A job and its images. Raises: NotFound."""
        return await self._reader.get_job(job_id), await self._reader.get_results(job_id)

    async def recent(self, origin: Origin, limit: int = 20) -> list[Job]:
        """The person's latest jobs, newest first."""
        return await self._reader.recent_jobs(origin.workspace_id, origin.user_id, limit)

    async def budget(self, origin: Origin) -> list[CapUsage]:
        """Every cap that applies to ``origin`` with what is spent, held and left."""
        caps = await self._ledger.caps_for(origin)
        return await self._ledger.usage(caps, self._clock())

    async def usage_report(self, origin: Origin, period: Period, *, top: int = 10) -> UsageReport:
        """Spend in the current ``period`` (UTC): the person's own, the top spenders and the
        channel totals of the origin's workspace (micro-dollars)."""
        start, _ = period_bounds(period, self._clock())
        users = await self._ledger.spend_by(origin.workspace_id, CapScope.USER, start, 10_000)
        channels = await self._ledger.spend_by(origin.workspace_id, CapScope.CHANNEL, start, top)
        own = next(((s, h) for uid, s, h in users if uid == origin.user_id), (0, 0))
        return UsageReport(period, own[0], own[1], tuple(users[:top]), tuple(channels))

    async def caps(self, workspace_id: str) -> list[CapUsage]:
        """Every cap of a workspace with what is spent, held and left (for admins)."""
        return await self._ledger.usage(await self._ledger.list_caps(workspace_id), self._clock())

    async def set_cap(self, cap: BudgetCap) -> None:
        """Create or change a cap (the caller checked the person may)."""
        await self._ledger.set_cap(cap, self._clock())
        log.info(
            "cap set",
            extra={
                "scope": cap.scope.value,
                "period": cap.period.value,
                "limit_micros": cap.limit_micros,
            },
        )

    async def remove_cap(self, cap: BudgetCap) -> bool:
        """Remove a cap; False if there was none (the caller checked the person may)."""
        return await self._ledger.remove_cap(cap)

    async def set_policy(self, workspace_id: str, channel_id: str, policy: ChannelPolicy) -> None:
        """Set a channel's policy, or the workspace's with ``channel_id`` ``""`` (the caller
        checked the person may). A channel policy can only tighten its workspace's."""
        await self._policies.set_policy(workspace_id, channel_id, policy, self._clock())
        log.info(
            "policy set",
            extra={
                "workspace": workspace_id,
                "channel": channel_id,
                "max_tolerance": policy.max_tolerance,
            },
        )

    async def positions(self, job_ids: Sequence[str]) -> dict[str, int]:
        """Current queue positions of those of ``job_ids`` that are still queued."""
        wanted = set(job_ids)
        return {
            job.id: position
            for job, position in await self._reader.queue_positions(limit=10_000)
            if job.id in wanted
        }
