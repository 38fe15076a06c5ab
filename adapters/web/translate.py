"""Pure translation for the playground: form fields to a request, core values to JSON views.

No I/O here: every function takes values and returns values, so each is easy to test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final

from adapters.web.wire import (
    BudgetView,
    CapView,
    ConfigView,
    ErrorDetail,
    ErrorView,
    EventView,
    ImageView,
    JobView,
    ModelView,
    ParentView,
    SubmitView,
)
from bot.budgets import CapUsage, cap_label
from bot.catalog import Catalog
from bot.errors import (
    BananabotError,
    BudgetExceeded,
    InvalidRequest,
    NotFound,
    PolicyRefused,
    ReferenceImageError,
    UserInputError,
)
from bot.messages import describe_done, describe_result, render_error, render_failure, render_reset
from bot.models import (
    Done,
    Failed,
    Generating,
    Job,
    JobStatus,
    JobUpdate,
    Origin,
    Queued,
    ReferenceImage,
    ResultImage,
)
from bot.money import format_usd
from bot.policy import TOLERANCE_ORDER
from bot.service import Submitted

__all__ = [
    "CHANNEL_ID",
    "FORM_FIELDS",
    "PLATFORM",
    "SANDBOX_PROVIDER",
    "WORKSPACE_ID",
    "budget_view",
    "config_view",
    "error_status",
    "error_view",
    "event_view",
    "job_view",
    "media_url",
    "owns",
    "request_fields",
    "submit_view",
    "web_origin",
]

PLATFORM: Final = "web"
WORKSPACE_ID: Final = "local"
CHANNEL_ID: Final = "playground"
SANDBOX_PROVIDER: Final = "sandbox"

FORM_FIELDS: Final[Mapping[str, str]] = {
    "prompt": "prompt",
    "model": "model",
    "aspect_ratio": "aspect_ratio",
    "resolution": "resolution",
    "seed": "seed",
    "n": "number_results",
    "safety_tolerance": "safety_tolerance",
}
"""Form field name -> :class:`bot.models.ImageRequest` field; blank values mean "default"."""


def web_origin(user_id: str, session_id: str) -> Origin:
    """The origin of every playground job: the browser session is the reply handle."""
    return Origin(
        platform=PLATFORM,
        workspace_id=WORKSPACE_ID,
        channel_id=CHANNEL_ID,
        user_id=user_id,
        reply_handle=session_id,
        channel_nsfw=False,
    )


def owns(job: Job, user_id: str) -> bool:
    """Whether the playground's person may see and act on ``job`` (same workspace and user)."""
    return job.origin.workspace_id == WORKSPACE_ID and job.origin.user_id == user_id


def media_url(job_id: str, index: int) -> str:
    """``/media/<job_id>/<index>`` with a zero-based index."""
    return f"/media/{job_id}/{index}"


def request_fields(
    form: Mapping[str, str], references: Sequence[ReferenceImage]
) -> dict[str, object]:
    """Turn the imagine form into input for :func:`bot.models.parse_request`.

    Args:
        form: form field -> text (see :data:`FORM_FIELDS`); ``request_id`` is not included.
        references: the stored reference images, in the order they were attached.

    Raises:
        InvalidRequest: a field the form does not have.
    """
    data: dict[str, object] = {}
    for name, value in form.items():
        target = FORM_FIELDS.get(name)
        if target is None:
            raise InvalidRequest(name, f"{name} is not a known option", tuple(FORM_FIELDS))
        text = value.strip()
        if name == "prompt":
            data[target] = value
        elif text:
            data[target] = text
    data.setdefault("prompt", "")
    if references:
        data["references"] = tuple(references)
    return data


def _tier_of(catalog: Catalog, job: Job, image: ResultImage) -> str | None:
    spec = catalog.model(job.request.model)
    found = spec.tier_of(image.width, image.height)
    return found[0] if found else (job.request.resolution or spec.default_tier)


def _image_view(catalog: Catalog, job: Job, image: ResultImage) -> ImageView:
    return ImageView(
        index=image.index,
        url=None if image.withheld else media_url(job.id, image.index),
        caption=describe_result(job, image),
        width=image.width,
        height=image.height,
        seed=image.seed,
        withheld=image.withheld,
        sandbox=job.provider == SANDBOX_PROVIDER,
        can_upscale=not image.withheld and _tier_of(catalog, job, image) != "4K",
    )


def job_view(
    catalog: Catalog,
    job: Job,
    images: Iterable[ResultImage] = (),
    *,
    position: int | None = None,
    summary: str | None = None,
) -> JobView:
    """A job as the page shows it.

    Args:
        images: the job's results (only shown once it succeeded).
        position: its queue position while queued (1 = next).
        summary: the cost line to show; defaults to :func:`bot.messages.describe_done`
            without the budget once the job succeeded.
    """
    shown = tuple(images) if job.status is JobStatus.SUCCEEDED else ()
    if summary is None and job.status is JobStatus.SUCCEEDED:
        summary = describe_done(Done(job=job, images=shown))
    failed = job.status in (JobStatus.FAILED, JobStatus.CANCELLED)
    request = job.request
    try:
        display = catalog.model(request.model).display_name
    except InvalidRequest:
        display = request.model
    return JobView(
        id=job.id,
        action=job.action.value,
        parent=(
            ParentView(job_id=job.parent_job_id, index=job.parent_index or 0)
            if job.parent_job_id
            else None
        ),
        status=job.status.value,
        finished=job.status.terminal,
        position=position if job.status is JobStatus.QUEUED else None,
        prompt=request.prompt,
        model=request.model,
        model_display=display,
        aspect_ratio=request.aspect_ratio,
        resolution=request.resolution,
        number_results=request.number_results,
        references=len(request.references),
        seed=request.seed,
        provider=job.provider,
        sandbox=job.provider == SANDBOX_PROVIDER,
        notices=job.notices,
        estimate=format_usd(job.estimate_micros),
        cost=format_usd(job.cost_micros) if job.status is JobStatus.SUCCEEDED else None,
        summary=summary,
        error=render_failure(job.error_code or "", job.error_message or "") if failed else None,
        error_code=job.error_code if failed else None,
        images=tuple(_image_view(catalog, job, image) for image in shown),
        created_at=job.created_at,
    )


def event_view(catalog: Catalog, update: JobUpdate) -> EventView:
    """A job update as a Server-Sent Event for the browser session that asked for the job."""
    if isinstance(update, Queued):
        return EventView(
            type="queued",
            job=job_view(catalog, update.job, position=update.position),
            position=update.position,
        )
    if isinstance(update, Generating):
        return EventView(type="generating", job=job_view(catalog, update.job))
    if isinstance(update, Done):
        summary = describe_done(update)
        return EventView(
            type="done",
            job=job_view(catalog, update.job, update.images, summary=summary),
            summary=summary,
        )
    assert isinstance(update, Failed)
    return EventView(
        type="failed",
        job=job_view(catalog, update.job),
        error=render_failure(update.error_code, update.message),
    )


def submit_view(catalog: Catalog, submitted: Submitted) -> SubmitView:
    """The immediate answer to a submit: the job, its position, estimate and notices."""
    return SubmitView(
        job=job_view(catalog, submitted.job, position=submitted.position),
        position=submitted.position,
        estimate=format_usd(submitted.estimate_micros),
        notices=submitted.notices,
        created=submitted.created,
    )


def config_view(
    catalog: Catalog,
    *,
    providers: Sequence[str],
    safety_max: str,
    max_references: int,
    max_upload_bytes: int,
) -> ConfigView:
    """Everything the form offers, from the catalog (so it always matches validation)."""
    models = []
    for name in catalog.names:
        spec = catalog.model(name)
        models.append(
            ModelView(
                name=spec.name,
                display_name=spec.display_name,
                default_tier=spec.default_tier,
                tiers=spec.tiers,
                ratios={tier: spec.ratios(tier) for tier in spec.tiers},
                sizes={tier: dict(table) for tier, table in spec.sizes.items()},
                max_references=spec.max_references,
                prompt_min=spec.prompt_min,
                prompt_max=spec.prompt_max,
                results_max=spec.results_max,
                base_price_micros=dict(spec.base_price_micros),
                reference_price_micros=spec.reference_price_micros,
            )
        )
    default = "nano-banana-2" if "nano-banana-2" in catalog.names else catalog.names[0]
    return ConfigView(
        models=tuple(models),
        default_model=default,
        safety_tolerances=TOLERANCE_ORDER,
        safety_max=safety_max,
        max_references=max_references,
        max_upload_bytes=max_upload_bytes,
        providers=tuple(providers),
        sandbox=tuple(providers) == (SANDBOX_PROVIDER,),
    )


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def budget_view(usages: Sequence[CapUsage], now: datetime) -> BudgetView:
    """The caps that apply, tightest (least left) first, each with a line such as
    ``"Your daily cap: $4.86 of $5.00 left, resets 2026-11-22 00:00 UTC (in 5 h)"``."""
    caps = []
    for usage in sorted(usages, key=lambda u: u.left_micros):
        label = cap_label(usage.cap)
        left, limit = format_usd(usage.left_micros), format_usd(usage.cap.limit_micros)
        reset = render_reset(usage.resets_at, now)
        caps.append(
            CapView(
                label=label,
                scope=usage.cap.scope.value,
                period=usage.cap.period.value,
                limit=limit,
                spent=format_usd(usage.spent_micros),
                held=format_usd(usage.held_micros),
                left=left,
                limit_micros=usage.cap.limit_micros,
                left_micros=usage.left_micros,
                reset=reset,
                line=f"{_capitalised(label)}: {left} of {limit} left, {reset}",
            )
        )
    line = caps[0].line if caps else "No spending cap applies here."
    return BudgetView(caps=tuple(caps), line=line)


def error_status(error: BananabotError) -> int:
    """HTTP status: 404 not found, 402 over budget, 400 other input errors, else 500."""
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, BudgetExceeded):
        return 402
    if isinstance(error, UserInputError):
        return 400
    return 500


def error_view(error: BananabotError) -> ErrorView:
    """``{"error": {code, message, field, allowed}}`` with :func:`bot.messages.render_error`."""
    field: str | None = None
    allowed: tuple[str, ...] = ()
    if isinstance(error, InvalidRequest | PolicyRefused):
        field, allowed = error.field, error.allowed
    elif isinstance(error, ReferenceImageError):
        field = "references"
    code = error.code if isinstance(error, UserInputError) else "internal_error"
    if not isinstance(error, UserInputError):
        error = BananabotError("internal")  # never tell a person about internals
    return ErrorView(
        error=ErrorDetail(code=code, message=render_error(error), field=field, allowed=allowed)
    )
