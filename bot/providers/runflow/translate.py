"""Pure translation between bananabot and Runflow: request to run body, answers to typed errors.

No I/O here. Field names and allowed values from seeds/002_* (Runflow's Nano Banana Pro page)
and shared/reference/provider-apis.md §2.1-§2.2 (Nano Banana 2 and the ``/edit`` models);
error envelope and run failures from §2.6.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
from bot.policy import PROVIDER_DEFAULT_TOLERANCE, TOLERANCE_SCALE
from bot.providers.runflow.wire import ErrorBody, Run

__all__ = [
    "CANCELED",
    "DEFAULT_API_URL",
    "DEFAULT_MODEL_PATHS",
    "FAILED",
    "MAX_REFERENCES",
    "MODEL_RULES",
    "PROVIDER",
    "SUCCEEDED",
    "UNSUPPORTED_FIELDS",
    "ModelRules",
    "cost_micros",
    "create_body",
    "error_from_run",
    "error_from_status",
    "run_input",
    "runs_path",
]

PROVIDER = "runflow"
DEFAULT_API_URL = "https://api.runflow.io/v1"

DEFAULT_MODEL_PATHS: Mapping[str, str] = {
    "nano-banana-pro": "google/nano-banana-pro",
    "nano-banana-2": "google/nano-banana-2",
}
"""Runflow model ids (seeds/002_*: ``google/nano-banana-pro``; §2.1 ``google/nano-banana-2``).
With references the ``<id>/edit`` model is used (§2.1: "takes ``image_urls``")."""

MAX_REFERENCES = 14
"""§2.2: the ``image_urls`` maximum is [U]; Google's own limit is 14."""

SUCCEEDED = frozenset({"succeeded", "partial_succeeded"})
FAILED = frozenset({"failed", "errored"})
CANCELED = frozenset({"canceled", "cancelled"})
"""§2.4: terminal ``status_code`` values; official client code accepts both spellings."""

_PRO_FIELDS = frozenset(
    {
        "prompt",
        "aspect_ratio",
        "enable_web_search",
        "resolution",
        "num_images",
        "output_format",
        "safety_tolerance",
        "seed",
    }
)


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What one Runflow model accepts.

    Attributes:
        tiers: ``resolution`` values.
        aspect_ratios: allowed ``aspect_ratio`` values, or None for any ``W:H``.
        fields: ``input`` fields bananabot may send (``image_urls`` is added for ``/edit``).
    """

    tiers: frozenset[str]
    aspect_ratios: frozenset[str] | None
    fields: frozenset[str]


MODEL_RULES: Mapping[str, ModelRules] = {
    # seeds/002_*: resolution "1K, 2K, 4K"; aspect_ratio "Any" (no 0.5K for Pro).
    "nano-banana-pro": ModelRules(frozenset({"1K", "2K", "4K"}), None, _PRO_FIELDS),
    # §2.2 [C]: resolution 0.5K|1K|2K|4K, the 14 ratios + auto, thinking_level minimal|high;
    # the other fields are "presumably as Pro [U]" and are sent on that assumption.
    "nano-banana-2": ModelRules(
        frozenset({"0.5K", "1K", "2K", "4K"}),
        frozenset(
            {
                *("auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1"),
                *("4:5", "3:4", "2:3", "9:16", "4:1", "1:4", "8:1", "1:8"),
            }
        ),
        _PRO_FIELDS | {"thinking_level"},
    ),
}

_OUTPUT_FORMATS = {"JPG": "jpeg", "PNG": "png", "WEBP": "webp"}
_RATIO = re.compile(r"^[1-9][0-9]*:[1-9][0-9]*$")
_NO_RUNFLOW_FIELD = ("output_quality", "temperature", "top_p", "system_prompt")
UNSUPPORTED_FIELDS = frozenset({*_NO_RUNFLOW_FIELD, "image_search"})
"""Request fields no Runflow model takes (seed 002, provider-apis.md §2.2)."""
_SAFETY_PARTS = ("SAFETY", "NSFW", "CONTENT_POLICY", "MODERATION", "BLOCKED")


def _refuse(message: str, parameter: str) -> ProviderRejected:
    return ProviderRejected(PROVIDER, message, status=0, parameter=parameter)


def runs_path(model_path: str, *, edit: bool) -> str:
    """``models/<id>/runs`` or ``models/<id>/edit/runs``, relative to ``RUNFLOW_API_URL`` (§2.1)."""
    return f"models/{model_path.strip('/')}{'/edit' if edit else ''}/runs"


def run_input(
    request: ImageRequest,
    size: ResolvedSize,
    rules: ModelRules,
    image_urls: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``input`` object for a request, with only fields the model accepts.

    ``safety_tolerance`` is always sent: unset means bananabot's provider default
    (:data:`bot.policy.PROVIDER_DEFAULT_TOLERANCE`), so Runflow's own default can never
    loosen a channel's policy. ``aspect_ratio`` is left out when the model should follow
    the first reference.

    Args:
        request: the request after policy.
        size: from :func:`bot.catalog.validate` (tier and aspect ratio are used).
        rules: the model's entry in :data:`MODEL_RULES`.
        image_urls: reference links (``/edit`` models only).

    Raises:
        ProviderRejected: a field Runflow does not take (``output_quality``, ``temperature``,
            ``top_p``, ``system_prompt``, ``image_search``, ``thinking`` on Pro), a tier or
            aspect ratio the model does not offer. Nothing has been sent.
    """
    for name in _NO_RUNFLOW_FIELD:
        if getattr(request, name) is not None:
            raise _refuse(f"Runflow does not take {name}", name)
    if request.image_search:
        raise _refuse("Runflow does not offer image search", "image_search")
    if request.thinking is not None and "thinking_level" not in rules.fields:
        raise _refuse("Runflow takes a thinking level only for Nano Banana 2", "thinking")
    if size.tier not in rules.tiers:
        offered = ", ".join(sorted(rules.tiers, key=lambda t: float(t[:-1])))
        raise _refuse(f"Runflow offers {offered} for this model, not {size.tier}", "resolution")
    ratio = size.aspect_ratio
    if ratio is not None and not (
        ratio in rules.aspect_ratios if rules.aspect_ratios is not None else _RATIO.match(ratio)
    ):
        raise _refuse(f"Runflow does not offer aspect ratio {ratio} for this model", "aspect_ratio")
    tolerance = request.safety_tolerance or PROVIDER_DEFAULT_TOLERANCE
    body: dict[str, Any] = {
        "prompt": request.prompt,
        "resolution": size.tier,
        "num_images": request.number_results,
        "safety_tolerance": TOLERANCE_SCALE[tolerance].runflow,
    }
    if ratio is not None:
        body["aspect_ratio"] = ratio
    if request.output_format is not None:
        body["output_format"] = _OUTPUT_FORMATS[request.output_format]
    if request.seed is not None:
        body["seed"] = request.seed
    if request.web_search is not None:
        body["enable_web_search"] = request.web_search
    if request.thinking is not None:
        body["thinking_level"] = request.thinking.lower()
    if image_urls:
        body["image_urls"] = list(image_urls)
    unknown = set(body) - rules.fields - {"image_urls"}
    assert not unknown, f"run_input built fields the model does not take: {unknown}"
    return body


def create_body(
    run_input: Mapping[str, Any], job_id: str, callback_url: str | None = None
) -> dict[str, Any]:
    """The create-run body: ``{"input", "metadata": {"job"}, "callback_url"?}`` (seeds/002_*)."""
    body: dict[str, Any] = {"input": dict(run_input), "metadata": {"job": job_id}}
    if callback_url is not None:
        body["callback_url"] = callback_url
    return body


def cost_micros(run: Run) -> int | None:
    """The run's ``cost`` (a USD decimal string, §2.3) in micro-dollars; None if unreported."""
    if run.cost is None or run.cost == "":
        return None
    try:
        return usd_to_micros(run.cost)
    except ValueError:
        return None


def error_from_status(
    status: int, body: ErrorBody | None, retry_after: float | None
) -> ProviderError:
    """Map a non-2xx answer to a typed error (provider-apis.md §2.6).

    401 and 403 (``PERMISSION_DENIED``, ``EMAIL_NOT_VERIFIED``) are auth; 402 or
    ``INSUFFICIENT_CREDIT`` quota; 429 rate limited; 5xx unavailable; other 4xx (400, 404,
    409, 422) rejected, naming the first field of ``errors`` when given.
    """
    body = body or ErrorBody()
    text = f"Runflow HTTP {status}: {body.code} {body.message}".strip()
    if status == 429:
        return ProviderRateLimited(PROVIDER, text, status, retry_after=retry_after)
    if status >= 500 or status == 408:
        return ProviderUnavailable(PROVIDER, text, status, retry_after=retry_after)
    if status == 402 or "CREDIT" in body.code.upper():
        return ProviderQuotaError(PROVIDER, text, status)
    if status in (401, 403):
        return ProviderAuthError(PROVIDER, text, status)
    parameter = next((e.parameter for e in body.errors or () if e.parameter), "")
    return ProviderRejected(PROVIDER, text, status, parameter=parameter)


def error_from_run(run: Run) -> ProviderError:
    """Map a ``failed``/``canceled`` run to a typed error by ``failure_code`` (§2.6).

    Safety and NSFW failure codes, or ``nsfw_detected: true``, are :class:`SafetyBlocked`;
    input validation failures are rejected; a canceled run or any other failure is
    unavailable (nothing usable was produced; bananabot does not resubmit it).
    """
    code = (run.failure_code or "").upper()
    text = f"Runflow run {run.state}: {run.failure_code or '-'} {run.failure_message or ''}"
    text = text.strip()
    if run.state in CANCELED:
        return ProviderUnavailable(PROVIDER, text)
    if any(part in code for part in _SAFETY_PARTS) or (
        run.output is not None and run.output.nsfw_detected
    ):
        return SafetyBlocked(PROVIDER, text)
    if "VALIDATION" in code or code.startswith("INPUT"):
        return ProviderRejected(PROVIDER, text, 0)
    if "CREDIT" in code or "BALANCE" in code:
        return ProviderQuotaError(PROVIDER, text)
    return ProviderUnavailable(PROVIDER, text)
