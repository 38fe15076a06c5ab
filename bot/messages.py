"""The words people see, in one place, so every platform says the same thing."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from bot.budgets import CapUsage
from bot.catalog import Catalog
from bot.errors import (
    INTERRUPTED,
    PROVIDER_REMOVED,
    BananabotError,
    BudgetExceeded,
    InvalidRequest,
    NotFound,
    PolicyRefused,
    ProviderError,
    ReferenceImageError,
)
from bot.models import Done, Generating, Job, Queued, ResultImage
from bot.money import format_usd

__all__ = [
    "describe_cap_usage",
    "describe_done",
    "describe_result",
    "progress_status",
    "render_error",
    "render_failure",
    "render_reset",
]

_MAX_ALLOWED_SHOWN = 24


def render_reset(resets_at: datetime | None, now: datetime | None = None) -> str:
    """``"resets 2026-11-22 00:00 UTC (in 5 h)"``, or ``"does not reset"`` for total caps."""
    if resets_at is None:
        return "does not reset"
    now = now or datetime.now(UTC)
    seconds = max(0, int((resets_at - now).total_seconds()))
    if seconds >= 86_400:
        rel = f"in {seconds // 86_400} d {seconds % 86_400 // 3600} h"
    elif seconds >= 3600:
        rel = f"in {seconds // 3600} h {seconds % 3600 // 60} min"
    else:
        rel = f"in {max(1, seconds // 60)} min"
    return f"resets {resets_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({rel})"


def _allowed(values: tuple[str, ...]) -> str:
    if not values:
        return ""
    shown = ", ".join(values[:_MAX_ALLOWED_SHOWN])
    more = len(values) - _MAX_ALLOWED_SHOWN
    return f" Allowed: {shown}{f' (and {more} more)' if more > 0 else ''}."


def render_error(error: BananabotError, now: datetime | None = None) -> str:
    """One or two plain sentences for a person: what was wrong and what is allowed.

    Never includes a stack trace, a key or a token; provider messages are summarised by code.
    """
    if isinstance(error, BudgetExceeded):
        return (
            f"Over budget: {error.cap} is {format_usd(error.limit_micros)} and "
            f"{format_usd(error.left_micros)} is left, but this needs up to "
            f"{format_usd(error.estimate_micros)}. It {render_reset(error.resets_at, now)}. "
            "Nothing was charged."
        )
    if isinstance(error, InvalidRequest | PolicyRefused):
        return f"{error.message[:1].upper()}{error.message[1:]}.{_allowed(error.allowed)}"
    if isinstance(error, NotFound):
        return f"{error.message[:1].upper()}{error.message[1:].rstrip('.')}."
    if isinstance(error, ReferenceImageError):
        which = f"Reference image {error.index + 1}" if error.index >= 0 else "A reference image"
        return f"{which} could not be used: {error.message}."
    if isinstance(error, ProviderError):
        return _PROVIDER_TEXT.get(error.code, "The image provider failed.") + (
            " You were not charged."
        )
    return "Something went wrong inside bananabot; you were not charged."


_USER_CODES = frozenset(
    {"invalid_request", "reference_image", "budget_exceeded", "policy_refused", "not_found"}
)

_PROVIDER_TEXT = {
    "safety_blocked": "The provider's safety filter blocked this prompt or its result.",
    "provider_auth": "The image provider rejected bananabot's API key; tell whoever runs the bot.",
    "provider_quota": "The image provider account is out of credit; tell whoever runs the bot.",
    "provider_rejected": "The image provider refused the request as invalid.",
    "provider_rate_limited": "The image provider is rate limiting us; try again in a minute.",
    "provider_unavailable": "The image provider is down or overloaded; try again later.",
    "provider_timeout": "The image provider did not finish in time.",
    "provider_protocol": "The image provider sent an answer bananabot could not read.",
}


_STOP_TEXT = {
    INTERRUPTED: (
        "bananabot restarted while the image provider was working on this, and that "
        "provider's answer cannot be fetched again; please try again."
    ),
    PROVIDER_REMOVED: (
        "The image provider this job was queued for is no longer set up here; please try again."
    ),
}


def render_failure(code: str, message: str) -> str:
    """Text for a stored failure (``Failed`` update or a job row), keyed on its code."""
    if code in _PROVIDER_TEXT:
        return _PROVIDER_TEXT[code] + " You were not charged."
    if code in _STOP_TEXT:
        return _STOP_TEXT[code] + " You were not charged."
    if code == "cancelled":
        return "Cancelled; you were not charged."
    if code in _USER_CODES and message:
        return f"{message[:1].upper()}{message[1:].rstrip('.')}. You were not charged."
    return "Something went wrong inside bananabot; you were not charged."


def describe_result(job: Job, image: ResultImage) -> str:
    """``"Nano Banana 2 · 1264x848 · seed 42 · $0.0690"``: the line under a result."""
    model = "Nano Banana Pro" if job.request.model == "nano-banana-pro" else "Nano Banana 2"
    parts = [model, f"{image.width}x{image.height}"]
    if image.seed is not None:
        parts.append(f"seed {image.seed}")
    parts.append(format_usd(image.cost_micros))
    if job.provider == "sandbox":
        parts.append("sandbox (simulated, not a real generation)")
    return " · ".join(parts)


def progress_status(update: Queued | Generating, catalog: Catalog) -> str:
    """``"⏳ Queued — position 2 · estimate $0.06895"``, or ``"🎨 Generating with
    Nano Banana 2…"``."""
    if isinstance(update, Queued):
        return (
            f"⏳ Queued — position {update.position} · "
            f"estimate {format_usd(update.job.estimate_micros)}"
        )
    name: str = update.job.request.model
    with contextlib.suppress(InvalidRequest):
        name = catalog.model(name).display_name
    return f"🎨 Generating with {name}…"


def describe_cap_usage(usage: CapUsage, who: str, now: datetime) -> str:
    """``"<who>, day: $4.86 of $5.00 left (spent $0.14, held $0.00), resets …"``."""
    return (
        f"{who}, {usage.cap.period.value}: {format_usd(usage.left_micros)} of "
        f"{format_usd(usage.cap.limit_micros)} left (spent {format_usd(usage.spent_micros)}, "
        f"held {format_usd(usage.held_micros)}), {render_reset(usage.resets_at, now)}"
    )


def describe_done(update: Done) -> str:
    """Cost and budget line after a job: ``"Cost $0.0690 (estimate $0.0690). ..."``."""
    text = (
        f"Cost {format_usd(update.job.cost_micros)} "
        f"(estimate {format_usd(update.job.estimate_micros)})."
    )
    if update.budget_left is not None:
        text += (
            f" {update.budget_left.cap[:1].upper()}{update.budget_left.cap[1:]}: "
            f"{format_usd(update.budget_left.left_micros)} of "
            f"{format_usd(update.budget_left.limit_micros)} left."
        )
    return text
