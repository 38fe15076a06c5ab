"""Provider-neutral values: the image request, where it came from, jobs, results and updates."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.errors import InvalidRequest

__all__ = [
    "BudgetLeft",
    "Done",
    "Failed",
    "Generating",
    "ImageRequest",
    "Job",
    "JobAction",
    "JobStatus",
    "JobUpdate",
    "ModelName",
    "Origin",
    "OutputFormat",
    "Queued",
    "ReferenceImage",
    "ResultImage",
    "SafetyTolerance",
    "Thinking",
    "Tier",
    "parse_request",
]

ModelName = Literal["nano-banana-pro", "nano-banana-2"]
"""The two models, by bananabot's neutral names (Runware ``google:4@2`` / ``google:4@3``)."""

Tier = Literal["0.5K", "1K", "2K", "4K"]
"""Resolution tiers as the seeds name them (Runware ``resolution``; 0.5K is Nano Banana 2 only)."""

OutputFormat = Literal["JPG", "PNG", "WEBP"]
Thinking = Literal["MINIMAL", "HIGH"]
SafetyTolerance = Literal["low", "medium", "high", "none", "off"]
"""Runware's ``providerSettings.google.safetyTolerance`` values; see :mod:`bot.policy`."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferenceImage(_Frozen):
    """A reference image the bot has already downloaded, validated and stored.

    Attributes:
        media_key: content address of the bytes in the media store (sha256 hex + extension).
        mime_type: ``image/png``, ``image/jpeg``, ``image/webp`` or ``image/gif``.
        width: pixels after downscaling (longest side at most 2048).
        height: pixels after downscaling.
        source: where it came from, for people (file name or URL); never sent to a provider.
        url: a public link a provider may fetch the original from (a Discord attachment
            link), used for link-only providers when bananabot has no public URL of its own
            to serve the cleaned bytes from; None for uploads, Slack files and CLI files.
    """

    media_key: str
    mime_type: str
    width: int
    height: int
    source: str = ""
    url: str | None = None


class ImageRequest(_Frozen):
    """What a person asked for, independent of provider and platform.

    Size is either ``aspect_ratio`` + ``resolution`` (resolved to the exact pair in the
    catalog table), ``resolution`` alone (with references: the model follows the first
    reference's ratio), or an exact ``width`` x ``height`` in pixels from the table.
    ``None`` means "the provider's default": such fields are not sent. Ranges are checked
    by :func:`bot.catalog.validate`, which names the field and the allowed values.
    """

    prompt: str
    model: ModelName = "nano-banana-2"
    references: tuple[ReferenceImage, ...] = ()
    aspect_ratio: str | None = None
    resolution: Tier | None = None
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    number_results: int = 1
    output_format: OutputFormat | None = None
    output_quality: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    system_prompt: str | None = None
    thinking: Thinking | None = None
    web_search: bool | None = None
    image_search: bool | None = None
    safety_tolerance: SafetyTolerance | None = None
    check_content: bool | None = None


def parse_request(data: Mapping[str, Any]) -> ImageRequest:
    """Build an :class:`ImageRequest` from loose input (CLI flags, a web form).

    Raises:
        InvalidRequest: naming the first offending field, for unknown fields or wrong types.
    """
    try:
        return ImageRequest.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "request"
        allowed: tuple[str, ...] = ()
        ctx = first.get("ctx") or {}
        if "expected" in ctx:
            allowed = tuple(
                part.strip().strip("'")
                for part in str(ctx["expected"]).replace(" or ", ",").split(",")
            )
        if first["type"] == "extra_forbidden":
            raise InvalidRequest(field, f"{field} is not a known option") from exc
        raise InvalidRequest(field, f"{field}: {first['msg']}", allowed) from exc


class Origin(_Frozen):
    """Where a job came from and how to answer it.

    Attributes:
        platform: adapter name (``"web"``, ``"discord"``, ``"slack"``, ``"cli"``).
        workspace_id: Discord guild / Slack team / ``"local"``.
        channel_id: channel (or DM) id on that platform.
        user_id: the person's id on that platform.
        reply_handle: opaque text only the adapter understands (an interaction token,
            a response_url, a browser session); the core stores and returns it unread.
        channel_nsfw: whether the channel allows NSFW results (Discord age-restricted flag).
    """

    platform: str
    workspace_id: str
    channel_id: str
    user_id: str
    reply_handle: str = ""
    channel_nsfw: bool = False


class JobAction(StrEnum):
    """How a job came to be: a new prompt, or an action on a parent result (lineage)."""

    IMAGINE = "imagine"
    VARY = "vary"
    UPSCALE = "upscale"
    EDIT = "edit"


class JobStatus(StrEnum):
    """A job's state; the job row in the store is the truth."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class Job(_Frozen):
    """One request in the queue, with its money and its provider task.

    Attributes:
        id: short unguessable id used in buttons (``bb:vary:<id>:<index>``).
        estimate_micros: what was reserved, in micro-dollars.
        cost_micros: what was settled, in micro-dollars (0 until succeeded).
        provider_task_id: the provider's task id (Runware taskUUID) once one exists; a job
            with one is resumed by polling after a crash, never resubmitted.
        notices: things the person should be told (e.g. a clamped safety tolerance).
    """

    id: str
    origin: Origin
    request: ImageRequest
    action: JobAction = JobAction.IMAGINE
    parent_job_id: str | None = None
    parent_index: int | None = None
    provider: str
    status: JobStatus = JobStatus.QUEUED
    provider_task_id: str | None = None
    estimate_micros: int
    cost_micros: int = 0
    error_code: str | None = None
    error_message: str | None = None
    idempotency_key: str
    notices: tuple[str, ...] = ()
    created_at: datetime
    updated_at: datetime


class ResultImage(_Frozen):
    """One generated image as stored.

    Attributes:
        index: zero-based position within the job.
        media_key: where the bytes are in the media store.
        width: pixels.
        height: pixels.
        seed: the seed the provider used for this image.
        cost_micros: this image's share of the provider-reported cost.
        nsfw: the provider flagged it (Runware ``NSFWContent``).
        withheld: not shown because the channel does not allow NSFW results.
        provider_url: the provider's own URL for the image, when it gave one.
    """

    job_id: str
    index: int
    media_key: str
    mime_type: str
    width: int
    height: int
    seed: int | None = None
    cost_micros: int = 0
    nsfw: bool = False
    withheld: bool = False
    provider_url: str | None = None


class BudgetLeft(_Frozen):
    """The tightest cap after a job: its name and what is left, in micro-dollars."""

    cap: str
    left_micros: int
    limit_micros: int


class Queued(_Frozen):
    """The job waits; ``position`` is 1 for the next job to start."""

    kind: Literal["queued"] = "queued"
    job: Job
    position: int


class Generating(_Frozen):
    """A worker has the job and the provider is working on it."""

    kind: Literal["generating"] = "generating"
    job: Job
    provider: str


class Done(_Frozen):
    """The job succeeded; ``budget_left`` is the tightest cap afterwards, if any applies."""

    kind: Literal["done"] = "done"
    job: Job
    images: tuple[ResultImage, ...]
    budget_left: BudgetLeft | None = None


class Failed(_Frozen):
    """The job failed; ``error_code`` keys :func:`bot.messages.render_error`; refunded."""

    kind: Literal["failed"] = "failed"
    job: Job
    error_code: str
    message: str
    refunded_micros: int


JobUpdate = Annotated[Queued | Generating | Done | Failed, Field(discriminator="kind")]
"""Everything an adapter hears about a job, through :class:`bot.interfaces.Delivery`."""
