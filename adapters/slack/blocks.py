"""Block Kit for Slack (pure): status, result and failure messages, and the Edit modal.

Every message has a ``text`` too: it is the notification and the fallback, and slack-sdk
warns without it. Limits from docs.slack.dev Block Kit reference (platforms.md §8.1): 50
blocks per message, section text 3000, button text 75, ``value`` 2000, modal title 24.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from adapters.slack.translate import (
    ACTION_IDS,
    EDIT_CALLBACK,
    EDIT_INPUT_ACTION,
    EDIT_INPUT_BLOCK,
    EditRef,
    action_value,
    edit_metadata,
    escape_mrkdwn,
)
from bot.catalog import Catalog
from bot.errors import InvalidRequest
from bot.messages import describe_result, progress_status
from bot.models import Generating, Job, JobAction, Queued, ResultImage

__all__ = [
    "IMAGES_PER_MESSAGE",
    "SLACK_IMAGE_TYPES",
    "Block",
    "SlackMessage",
    "can_upscale",
    "edit_modal",
    "error_text",
    "failure_message",
    "header",
    "pending_message",
    "progress_message",
    "result_messages",
]

Block = dict[str, object]
"""One Block Kit block (vendor JSON)."""

IMAGES_PER_MESSAGE: Final = 10
"""Three blocks per image (image, context, actions) + header + footer stays under 50."""
SLACK_IMAGE_TYPES: Final = frozenset({"image/png", "image/jpeg", "image/gif"})
"""What an ``image`` block shows (Slack: png, jpg, jpeg, gif); other results are only files."""
_LABELS: Final = {JobAction.VARY: "Vary", JobAction.UPSCALE: "Upscale 4K", JobAction.EDIT: "Edit"}
_TEXT_MAX: Final = 3000


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message to post or update: fallback ``text`` and ``blocks``."""

    text: str
    blocks: tuple[Block, ...]


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:_TEXT_MAX]}}


def _context(*lines: str) -> Block:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": line[:_TEXT_MAX]} for line in lines[:10]],
    }


def header(job: Job) -> str:
    """The first line of every message about a job: what was asked, and by whom (mrkdwn)."""
    prompt = escape_mrkdwn(job.request.prompt)
    who = f"<@{job.origin.user_id}>"
    which = f" of image {job.parent_index + 1}" if job.parent_index is not None else ""
    if job.action is JobAction.VARY:
        return f"*Variation*{which} · {prompt} — {who}"
    if job.action is JobAction.UPSCALE:
        return f"*Upscale to 4K*{which} · {prompt} — {who}"
    if job.action is JobAction.EDIT:
        return f"*Edit*{which}: {prompt} — {who}"
    return f"*{prompt}* — {who}"


def _notices(job: Job) -> list[str]:
    return [f"ℹ️ {escape_mrkdwn(notice, 400)}" for notice in job.notices]


def pending_message(what: str, user_id: str) -> SlackMessage:
    """The status message posted before the job is queued (its ts goes in the handle)."""
    line = f"*{escape_mrkdwn(what)}* — <@{user_id}>"
    return SlackMessage(f"⏳ Starting: {what[:200]}", (_section(line), _context("⏳ Starting…")))


def progress_message(catalog: Catalog, update: Queued | Generating) -> SlackMessage:
    """The status message while a job waits (queue position) or runs."""
    job = update.job
    status = progress_status(update, catalog)
    blocks = (_section(header(job)), _context(status, *_notices(job)))
    return SlackMessage(f"{status} {job.request.prompt[:200]}", blocks)


def failure_message(job: Job) -> SlackMessage:
    """What the status message of a failed job becomes (details go privately)."""
    line = "⚠️ This image could not be made; nothing was charged. The details were sent to you."
    return SlackMessage(line, (_section(header(job)), _context(line)))


def error_text(details: str) -> str:
    """An ephemeral refusal: ``⚠️`` + the shared wording from :mod:`bot.messages`."""
    return f"⚠️ {escape_mrkdwn(details, 2900)}"


def can_upscale(catalog: Catalog, job: Job, image: ResultImage) -> bool:
    """Whether Upscale 4K applies: the image is not already 4K."""
    try:
        found = catalog.model(job.request.model).tier_of(image.width, image.height)
    except InvalidRequest:
        return False
    return found is None or found[0] != "4K"


def _buttons(catalog: Catalog, job: Job, image: ResultImage, total: int) -> Block:
    elements: list[object] = []
    for action, action_id in ACTION_IDS.items():
        if action is JobAction.UPSCALE and not can_upscale(catalog, job, image):
            continue
        label = _LABELS[action] if total == 1 else f"{_LABELS[action]} {image.index + 1}"
        elements.append(
            {
                "type": "button",
                "action_id": action_id,
                "value": action_value(job.id, image.index),
                "text": {"type": "plain_text", "text": label},
            }
        )
    return {"type": "actions", "block_id": f"bb:{job.id}:{image.index}", "elements": elements}


def _image_blocks(
    catalog: Catalog,
    job: Job,
    image: ResultImage,
    total: int,
    file_id: str | None,
) -> list[Block]:
    number = f"{image.index + 1}. " if total > 1 else ""
    if image.withheld:
        return [
            _context(
                f"🚫 {number}Withheld: the provider flagged this image as NSFW, and bananabot "
                "never posts NSFW results in Slack (Slack channels have no NSFW flag)."
            )
        ]
    blocks: list[Block] = []
    if file_id is not None:
        blocks.append(
            {
                "type": "image",
                "slack_file": {"id": file_id},
                "alt_text": (job.request.prompt.strip() or "generated image")[:2000],
            }
        )
        caption = f"{number}{describe_result(job, image)}"
    else:
        caption = f"{number}{describe_result(job, image)} · 📎 the file is in the thread"
    blocks.append(_context(escape_mrkdwn(caption, 2000)))
    blocks.append(_buttons(catalog, job, image, total))
    return blocks


def result_messages(
    catalog: Catalog,
    job: Job,
    images: Sequence[ResultImage],
    file_ids: Mapping[int, str],
    summary: str,
    *,
    with_images: bool = True,
) -> list[SlackMessage]:
    """The result: per image an ``image`` block (``slack_file``), a context line (model,
    size, seed, cost) and the Vary / Upscale 4K / Edit buttons; at most
    :data:`IMAGES_PER_MESSAGE` images per message.

    Args:
        file_ids: image index -> uploaded Slack file id (images without one show no block).
        summary: the cost line (:func:`bot.messages.describe_done`).
        with_images: False for the fallback when Slack keeps refusing the image blocks.
    """
    total = len(images)
    chunks = [list(images[i : i + IMAGES_PER_MESSAGE]) for i in range(0, total, IMAGES_PER_MESSAGE)]
    messages: list[SlackMessage] = []
    for number, chunk in enumerate(chunks or [[]]):
        blocks: list[Block] = [_section(header(job))] if number == 0 else []
        for image in chunk:
            file_id = file_ids.get(image.index) if with_images else None
            blocks.extend(_image_blocks(catalog, job, image, total, file_id))
        if number == len(chunks) - 1 or not chunks:
            blocks.append(_context(escape_mrkdwn(summary, 2000), *_notices(job)))
        text = f"🍌 {job.request.prompt[:200]}" if number == 0 else "🍌 more images"
        messages.append(SlackMessage(text, tuple(blocks)))
    return messages


def edit_modal(ref: EditRef) -> Block:
    """The Edit modal (``views.open``); ``private_metadata`` names the image and place."""
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": edit_metadata(ref),
        "title": {"type": "plain_text", "text": "Edit image"},
        "submit": {"type": "plain_text", "text": "Edit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": EDIT_INPUT_BLOCK,
                "label": {"type": "plain_text", "text": "What should change?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": EDIT_INPUT_ACTION,
                    "multiline": True,
                    "max_length": 3000,
                    "placeholder": {"type": "plain_text", "text": "make the sky stormy"},
                },
            }
        ],
    }
