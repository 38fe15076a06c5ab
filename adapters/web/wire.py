"""The playground's JSON shapes, exactly as the browser sees them (kept apart from core models)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BudgetView",
    "CapView",
    "ConfigView",
    "ErrorDetail",
    "ErrorView",
    "EventView",
    "HistoryView",
    "ImageView",
    "JobView",
    "ModelView",
    "ParentView",
    "SubmitView",
]

EventType = Literal["queued", "generating", "done", "failed"]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorDetail(_Wire):
    """An error a person can read.

    Attributes:
        code: the stable :attr:`bot.errors.BananabotError.code` (or an HTTP-level code).
        message: the text from :func:`bot.messages.render_error`; never a stack trace.
        field: the request field at fault (``"aspect_ratio"``, ``"references"``...), if any.
        allowed: the allowed values for ``field``, if known.
    """

    code: str
    message: str
    field: str | None = None
    allowed: tuple[str, ...] = ()


class ErrorView(_Wire):
    """Every error answer: ``{"error": {...}}``."""

    error: ErrorDetail


class ModelView(_Wire):
    """One model as the form needs it.

    Attributes:
        sizes: tier -> aspect ratio -> (width, height) in pixels.
        base_price_micros: tier -> price per image, micro-dollars.
        reference_price_micros: added per reference image per image, micro-dollars.
    """

    name: str
    display_name: str
    default_tier: str
    tiers: tuple[str, ...]
    ratios: dict[str, tuple[str, ...]]
    sizes: dict[str, dict[str, tuple[int, int]]]
    max_references: int
    prompt_min: int
    prompt_max: int
    results_max: int
    base_price_micros: dict[str, int]
    reference_price_micros: int


class ConfigView(_Wire):
    """``GET /api/config``: what the form may offer.

    Attributes:
        safety_tolerances: every level, strictest first (``bot.policy.TOLERANCE_ORDER``).
        safety_max: the most permissive level this channel allows.
        max_upload_bytes: the largest reference image file accepted, bytes.
        sandbox: True when only the sandbox provider is configured (simulated images).
    """

    models: tuple[ModelView, ...]
    default_model: str
    safety_tolerances: tuple[str, ...]
    safety_max: str
    max_references: int
    max_upload_bytes: int
    providers: tuple[str, ...]
    sandbox: bool


class ParentView(_Wire):
    """The result a child job (Vary, Upscale, Edit) was made from; ``index`` is zero-based."""

    job_id: str
    index: int


class ImageView(_Wire):
    """One result image.

    Attributes:
        index: zero-based, as in ``/media/<job_id>/<index>`` and the action URLs.
        url: where the bytes are; None when the image is withheld.
        caption: :func:`bot.messages.describe_result` (says "sandbox" for sandbox images).
        withheld: flagged NSFW and not shown here.
        can_upscale: False when the image is 4K already.
    """

    index: int
    url: str | None
    caption: str
    width: int
    height: int
    seed: int | None
    withheld: bool
    sandbox: bool
    can_upscale: bool


class JobView(_Wire):
    """A job as the page shows it.

    Attributes:
        status: ``queued``, ``running``, ``succeeded``, ``failed`` or ``cancelled``.
        finished: the status is terminal.
        position: queue position (1 = next) while queued, else None.
        estimate: the reserved worst case, e.g. ``"$0.0690"``.
        cost: the settled cost once succeeded, else None.
        summary: :func:`bot.messages.describe_done` once succeeded.
        error: :func:`bot.messages.render_failure` once failed or cancelled.
        references: how many reference images the request has.
    """

    id: str
    action: str
    parent: ParentView | None
    status: str
    finished: bool
    position: int | None
    prompt: str
    model: str
    model_display: str
    aspect_ratio: str | None
    resolution: str | None
    number_results: int
    references: int
    seed: int | None
    provider: str
    sandbox: bool
    notices: tuple[str, ...]
    estimate: str
    cost: str | None
    summary: str | None
    error: str | None
    error_code: str | None
    images: tuple[ImageView, ...]
    created_at: datetime


class SubmitView(_Wire):
    """The answer to ``POST /api/imagine`` and ``POST /api/jobs/{id}/{action}/{index}``.

    Attributes:
        created: False when the request id was seen before (the first job is returned).
    """

    job: JobView
    position: int
    estimate: str
    notices: tuple[str, ...]
    created: bool


class HistoryView(_Wire):
    """``GET /api/history``: the person's latest jobs, newest first."""

    jobs: tuple[JobView, ...]


class CapView(_Wire):
    """One budget cap with what is spent, held (reserved) and left, as dollar text."""

    label: str
    scope: str
    period: str
    limit: str
    spent: str
    held: str
    left: str
    limit_micros: int
    left_micros: int
    reset: str
    line: str


class BudgetView(_Wire):
    """``GET /api/budget``: the caps that apply, tightest first, and one line for the page."""

    caps: tuple[CapView, ...]
    line: str


class EventView(_Wire):
    """One Server-Sent Event about a job of this browser session.

    Attributes:
        type: ``queued``, ``generating``, ``done`` or ``failed``.
        position: the queue position for ``queued``.
        summary: :func:`bot.messages.describe_done` (with the budget left) for ``done``.
        error: :func:`bot.messages.render_failure` for ``failed``.
    """

    type: EventType
    job: JobView
    position: int | None = None
    summary: str | None = None
    error: str | None = None
