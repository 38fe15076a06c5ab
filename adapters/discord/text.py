"""The words of Discord messages, around :mod:`bot.messages` (which owns every error and
result text, so Discord and Slack say the same thing). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from adapters.discord.translate import ACTION_LABELS
from bot.catalog import Catalog
from bot.errors import InvalidRequest
from bot.messages import describe_result, progress_status
from bot.models import Generating, Job, JobAction, Queued, ResultImage

__all__ = [
    "button_label",
    "can_upscale",
    "escape_text",
    "failure_note",
    "fit_content",
    "header",
    "notice_lines",
    "progress_text",
    "result_lines",
]

PROMPT_SHOWN: Final = 300
_MARKDOWN_RE: Final = re.compile(r"([\\*_~`|\[\]])")
"""Inline Markdown (echoed text never starts a line, so quotes and headings cannot start)."""


def escape_text(text: str, limit: int = PROMPT_SHOWN) -> str:
    """Text people typed, safe to echo: Markdown escaped, mentions defused, truncated.

    Mentions are also never pinged (messages go with ``AllowedMentions.none()``); the
    zero-width space keeps ``@everyone`` and ``<@id>`` from rendering as mentions at all.
    """
    short = " ".join(text.split())
    if len(short) > limit:
        short = short[: limit - 1] + "…"
    short = _MARKDOWN_RE.sub(r"\\\1", short)
    return short.replace("@", "@\u200b").replace("<", "<\u200b")


def header(job: Job) -> str:
    """The first line of every message about a job: what was asked, and by whom."""
    prompt = escape_text(job.request.prompt)
    who = f"<@{job.origin.user_id}>"
    which = f" of image {job.parent_index + 1}" if job.parent_index is not None else ""
    if job.action is JobAction.VARY:
        return f"**Variation**{which} · {prompt} — {who}"
    if job.action is JobAction.UPSCALE:
        return f"**Upscale to 4K**{which} · {prompt} — {who}"
    if job.action is JobAction.EDIT:
        return f"**Edit**{which}: {prompt} — {who}"
    return f"**{prompt}** — {who}"


def result_lines(
    job: Job, images: Sequence[ResultImage], *, numbered: bool | None = None
) -> list[str]:
    """One line per image: ``"1. Nano Banana 2 · 1024x1024 · seed 42 · $0.0690"`` (numbered
    when the job has several images)."""
    if not (len(images) > 1 if numbered is None else numbered):
        return [describe_result(job, image) for image in images]
    return [f"{image.index + 1}. {describe_result(job, image)}" for image in images]


def button_label(action: JobAction, index: int, total: int) -> str:
    """``"Vary"`` for a single image, ``"Vary 2"`` when a job has several."""
    label = ACTION_LABELS[action]
    return label if total == 1 else f"{label} {index + 1}"


def can_upscale(catalog: Catalog, job: Job, image: ResultImage) -> bool:
    """Whether Upscale 4K applies: the image is not already 4K."""
    try:
        found = catalog.model(job.request.model).tier_of(image.width, image.height)
    except InvalidRequest:
        return False
    return found is None or found[0] != "4K"


def notice_lines(job: Job) -> list[str]:
    """The job's notices (e.g. a clamped safety tolerance) as small print."""
    return [f"-# {escape_text(notice, 400)}" for notice in job.notices]


def progress_text(catalog: Catalog, update: Queued | Generating) -> str:
    """The deferred message while a job waits or runs (queue position, then generating)."""
    job = update.job
    status = progress_status(update, catalog)
    return fit_content("\n".join([header(job), status, *notice_lines(job)]))


def failure_note(job: Job, *, private: bool) -> str:
    """The public line left where a failed job's result would have been."""
    where = " The details were sent to you privately." if private else ""
    return fit_content(
        f"{header(job)}\n⚠️ This image could not be made; nothing was charged.{where}"
    )


def fit_content(text: str, limit: int = 2000) -> str:
    """Message content cut to Discord's 2000 characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
