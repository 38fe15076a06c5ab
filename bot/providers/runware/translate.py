"""Pure translation between bananabot and Runware: request to task JSON, answers to results.

No I/O here. Field rules from Runware's model pages (seeds 000_* for ``google:4@2``, 001_*
for ``google:4@3``); error envelope and codes from shared/reference/provider-apis.md §1.7.
"""

from __future__ import annotations

import base64
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
from bot.interfaces import ReferenceData
from bot.models import ImageRequest
from bot.providers.runware.wire import ErrorItem

__all__ = [
    "DEFAULT_MODEL_IDS",
    "PROVIDER",
    "data_uri",
    "error_from_item",
    "error_from_status",
    "get_response_task",
    "inference_task",
    "is_conflict",
    "with_async_delivery",
]

PROVIDER = "runware"

DEFAULT_MODEL_IDS: Mapping[str, str] = {
    "nano-banana-pro": "google:4@2",
    "nano-banana-2": "google:4@3",
}
"""Runware AIR ids (seeds 000_*: ``google:4@2``; 001_*: ``google:4@3``); configurable."""

_SAFETY_CODES = frozenset(
    {
        "contentPolicyViolation",
        "providerContentPolicyViolation",
        "sensitiveContentDetected",
        "unsafeContentDetected",
        "nsfwContentDetected",
        "promptBlocked",
        "imageBlocked",
        "moderationFailed",
    }
)
_RETRYABLE_CODE_PARTS = (
    "timeout",
    "unavailable",
    "noavailableserver",
    "internalservererror",
    "ratelimit",
    "inferenceerror",
    "processingfailed",
    "provider",
)


def inference_task(
    request: ImageRequest,
    size: ResolvedSize,
    *,
    task_uuid: str,
    model_id: str,
    reference_images: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``imageInference`` task for a request, with only the fields it sets.

    Unset (None) fields are left out so Runware applies its documented defaults, which is
    also how the seed examples are written. Runware docs: "``resolution`` cannot be used
    with ``width/height``"; with references and no ratio, ``resolution`` alone lets the
    model follow the reference's aspect ratio.

    Args:
        request: the request after policy.
        size: from :func:`bot.catalog.validate`.
        task_uuid: a UUID v4, stored before the task is sent.
        model_id: Runware's id for ``request.model`` (``google:4@2`` / ``google:4@3``).
        reference_images: ``inputs.referenceImages`` entries in order (data URIs or URLs).

    Returns:
        The task object (one element of the request array), without delivery options.
    """
    task: dict[str, Any] = {
        "taskType": "imageInference",
        "taskUUID": task_uuid,
        "model": model_id,
        "positivePrompt": request.prompt,
    }
    if size.width is not None and size.height is not None:
        task["width"] = size.width
        task["height"] = size.height
    else:
        task["resolution"] = size.tier
    if request.seed is not None:
        task["seed"] = request.seed
    if request.number_results != 1:
        task["numberResults"] = request.number_results
    if request.output_format is not None:
        task["outputFormat"] = request.output_format
    if request.output_quality is not None:
        task["outputQuality"] = request.output_quality
    if request.check_content:
        task["safety"] = {"checkContent": True}
    settings = {
        key: value
        for key, value in (
            ("systemPrompt", request.system_prompt),
            ("temperature", request.temperature),
            ("topP", request.top_p),
            ("thinking", request.thinking),
        )
        if value is not None
    }
    if settings:
        task["settings"] = settings
    google = {
        key: value
        for key, value in (
            ("safetyTolerance", request.safety_tolerance),
            ("webSearch", request.web_search),
            ("imageSearch", request.image_search),
        )
        if value is not None
    }
    if google:
        task["providerSettings"] = {"google": google}
    if reference_images:
        task["inputs"] = {"referenceImages": list(reference_images)}
    return task


def with_async_delivery(task: Mapping[str, Any]) -> dict[str, Any]:
    """Add the delivery options bananabot always sends: async delivery and the cost.

    ``deliveryMethod: "async"`` answers with an acknowledgement at once; results come from
    ``getResponse`` polling. ``includeCost: true`` adds ``cost`` (USD) to each result.
    """
    return {**task, "deliveryMethod": "async", "includeCost": True}


def get_response_task(task_uuid: str) -> dict[str, str]:
    """The polling task: ``{"taskType": "getResponse", "taskUUID": ...}`` (§1.5)."""
    return {"taskType": "getResponse", "taskUUID": task_uuid}


def data_uri(reference: ReferenceData) -> str:
    """A reference image as ``data:<mime>;base64,<...>`` (Runware accepts data URIs)."""
    return f"data:{reference.mime_type};base64,{base64.b64encode(reference.data).decode('ascii')}"


def is_conflict(errors: Sequence[ErrorItem]) -> bool:
    """Runware answers a reused taskUUID with ``conflictTaskUUID``: the task exists already."""
    return any(e.code == "conflictTaskUUID" for e in errors)


def error_from_item(item: ErrorItem, status: int = 0) -> ProviderError:
    """Map one Runware error (envelope entry or per-item ``error``) to a typed error.

    Classification follows the official SDK's code families (provider-apis.md §1.7).
    """
    code = item.code or "unknownError"
    text = f"Runware {code}: {item.message}".strip()
    lowered = code.lower()
    if code in _SAFETY_CODES:
        return SafetyBlocked(PROVIDER, text, status)
    if lowered in ("invalidapikey", "missingapikey", "unauthorized", "forbidden", "authfailed"):
        return ProviderAuthError(PROVIDER, text, status or 401)
    if any(word in lowered for word in ("credit", "balance", "quota", "paymentrequired")):
        return ProviderQuotaError(PROVIDER, text, status or 402)
    if "ratelimit" in lowered:
        return ProviderRateLimited(PROVIDER, text, status or 429)
    if status >= 500 or any(part in lowered for part in _RETRYABLE_CODE_PARTS):
        return ProviderUnavailable(PROVIDER, text, status)
    return ProviderRejected(PROVIDER, text, status or 400, parameter=item.parameter or "")


def error_from_status(
    status: int, errors: Sequence[ErrorItem], retry_after: float | None
) -> ProviderError:
    """Map a non-2xx HTTP answer to a typed error; the envelope refines 400s.

    Runware docs: 400 bad request, 401 no valid key, 402 insufficient balance, 403 key lacks
    permission; 429 and 5xx are retried (official SDK).
    """
    first = errors[0] if errors else ErrorItem(code=f"http{status}", message="")
    text = f"Runware HTTP {status}: {first.code} {first.message}".strip()
    if status == 429:
        return ProviderRateLimited(PROVIDER, text, status, retry_after=retry_after)
    if status >= 500:
        return ProviderUnavailable(PROVIDER, text, status, retry_after=retry_after)
    if status in (401, 403):
        return ProviderAuthError(PROVIDER, text, status)
    if status == 402:
        return ProviderQuotaError(PROVIDER, text, status)
    return error_from_item(first, status)
