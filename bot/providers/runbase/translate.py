"""Pure translation between bananabot and Runbase: request to run body, answers to typed errors.

No I/O here. The input schema (``prompt``, ``aspect_ratio``, ``resolution``, ``image_urls``
and nothing else) and the aspect ratios per model are from seeds/003_* (Nano Banana Pro) and
seeds/004_* (Nano Banana 2); error codes from shared/reference/provider-apis.md §3.4.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bot.catalog import ResolvedSize
from bot.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    SafetyBlocked,
)
from bot.models import ImageRequest
from bot.money import usd_to_micros
from bot.providers.runbase.wire import ErrorBody, Run

__all__ = [
    "ASPECT_RATIOS",
    "DEFAULT_API_URL",
    "DEFAULT_MODEL_IDS",
    "FAILED",
    "MAX_REFERENCES",
    "PROVIDER",
    "SUCCEEDED",
    "TIERS",
    "UNSUPPORTED_FIELDS",
    "cost_micros",
    "error_from_run",
    "error_from_status",
    "run_body",
]

PROVIDER = "runbase"
DEFAULT_API_URL = "https://runbase.net/api/v1"

DEFAULT_MODEL_IDS: Mapping[str, str] = {
    "nano-banana-pro": "google/nano-banana-pro",
    "nano-banana-2": "google/nano-banana-2",
}
"""Runbase model ids (seeds/003_* ``google/nano-banana-pro``, 004_* ``google/nano-banana-2``)."""

TIERS = frozenset({"1K", "2K", "4K"})
"""seeds/003_*, 004_*: ``resolution`` "Options: 1K 2K 4K" for both models (no 0.5K)."""
UNSUPPORTED_FIELDS = frozenset(
    {
        *("seed", "output_format", "output_quality", "temperature", "top_p"),
        *("system_prompt", "thinking", "web_search", "image_search"),
        *("safety_tolerance", "check_content"),
    }
)
"""Request fields Runbase has no input for (seeds 003/004); a safety tolerance among them,
so a channel policy stricter than the provider default cannot be applied there."""

_COMMON = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "auto")
ASPECT_RATIOS: Mapping[str, frozenset[str]] = {
    "nano-banana-pro": frozenset(_COMMON),
    "nano-banana-2": frozenset({*_COMMON, "1:4", "1:8", "4:1", "8:1"}),
}
"""``aspect_ratio`` options per model (seeds/003_*: 11 values; 004_*: "15 aspect ratios")."""

MAX_REFERENCES = 14
"""The ``image_urls`` maximum is [U] (§3.2); Google's own limit is 14."""

SUCCEEDED = frozenset({"succeeded"})
FAILED = frozenset({"failed", "error", "errored", "canceled", "cancelled"})
"""§3.3: only ``succeeded`` is documented; other statuses are [3P]. Anything else polls on."""

_SAFETY_PARTS = ("safety", "nsfw", "content_policy", "moderation", "blocked")


def _refuse(message: str, parameter: str) -> ProviderRejected:
    return ProviderRejected(PROVIDER, message, status=0, parameter=parameter)


def run_body(
    request: ImageRequest, size: ResolvedSize, model_id: str, image_urls: Sequence[str] = ()
) -> dict[str, Any]:
    """The create-run body ``{"model", "input": {prompt, aspect_ratio?, resolution, image_urls?}}``.

    Runbase's input takes four fields (seeds/003_*, 004_*), so every other option a request
    can carry is refused rather than dropped: a seed, several results, an output format or
    quality, sampling settings, thinking, web or image search, a safety tolerance (Runbase
    has no such control, so a channel's policy could not be applied) or a content check.

    Args:
        request: the request after policy.
        size: from :func:`bot.catalog.validate` (tier and aspect ratio are used).
        model_id: Runbase's id for ``request.model``.
        image_urls: reference links, in order.

    Raises:
        ProviderRejected: naming the first field Runbase cannot honour; nothing is sent.
    """
    if request.number_results != 1:
        raise _refuse("Runbase makes one image per run", "number_results")
    for name in sorted(UNSUPPORTED_FIELDS):
        value = getattr(request, name)
        if value is not None and value is not False:
            raise _refuse(
                f"Runbase cannot take {name} (it takes only prompt, size, references)", name
            )
    if size.tier not in TIERS:
        raise _refuse(f"Runbase offers 1K, 2K and 4K, not {size.tier}", "resolution")
    ratios = ASPECT_RATIOS.get(request.model, frozenset())
    if size.aspect_ratio is not None and size.aspect_ratio not in ratios:
        raise _refuse(
            f"Runbase has no aspect ratio {size.aspect_ratio} for this model", "aspect_ratio"
        )
    data: dict[str, Any] = {"prompt": request.prompt, "resolution": size.tier}
    if size.aspect_ratio is not None:
        data["aspect_ratio"] = size.aspect_ratio
    if image_urls:
        data["image_urls"] = list(image_urls)
    return {"model": model_id, "input": data}


def cost_micros(run: Run) -> int | None:
    """``costUsd`` [3P] in micro-dollars; None when Runbase does not report it."""
    if run.cost_usd is None:
        return None
    try:
        return usd_to_micros(run.cost_usd)
    except ValueError:
        return None


def error_from_status(
    status: int, body: ErrorBody | None, retry_after: float | None
) -> ProviderError:
    """Map a non-2xx answer to a typed error (runbase.net/docs/error-codes, §3.4).

    429 ``RATE_LIMITED`` is retryable; 429 ``USAGE_EXCEEDED`` (the key's quota) and 402
    ``insufficient_balance`` and 403 ``api_key_spend_limit_exceeded`` are quota errors; 401
    and 403 ``ip_not_allowed`` are auth errors; 5xx unavailable; 400/404 rejected.
    """
    info = (body or ErrorBody()).error
    code = info.code
    text = f"Runbase HTTP {status}: {code} {info.message}".strip()
    if status == 429 and code.upper() == "USAGE_EXCEEDED":
        return ProviderQuotaError(PROVIDER, text, status)
    if status == 429:
        return ProviderRateLimited(PROVIDER, text, status, retry_after=retry_after)
    if status >= 500 or status == 408:
        return ProviderUnavailable(PROVIDER, text, status, retry_after=retry_after)
    if status == 402 or code == "api_key_spend_limit_exceeded":
        return ProviderQuotaError(PROVIDER, text, status)
    if status in (401, 403):
        return ProviderAuthError(PROVIDER, text, status)
    return ProviderRejected(PROVIDER, text, status, parameter=code)


def error_from_run(run: Run) -> ProviderError:
    """Map a failed run to a typed error by its ``error.code`` (shape [3P]).

    A safety/NSFW/content-policy code is :class:`SafetyBlocked`; ``invalid_input`` is
    rejected; anything else is unavailable (Runbase produced nothing usable).
    """
    info = run.error_info
    code = info.code.lower()
    text = f"Runbase run {run.status}: {info.code or '-'} {info.message}".strip()
    if any(part in code for part in _SAFETY_PARTS):
        return SafetyBlocked(PROVIDER, text)
    if code.startswith("invalid"):
        return ProviderRejected(PROVIDER, text, 0, parameter=info.code)
    return ProviderUnavailable(PROVIDER, text)
