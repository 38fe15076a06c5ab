"""Gemini API and transport failures mapped once to bananabot's errors, by attribute.

Source: shared/reference/provider-apis.md §4.7 (error envelope and table) and
reliability-security-perf.md §4.1 (what may be retried). Decisions read the SDK's ``code``,
the canonical ``status`` and the typed ``details`` (``ErrorInfo.reason``,
``RetryInfo.retryDelay``), never message text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import httpx
from google.genai import errors
from pydantic import ValidationError

from bot.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from bot.providers.gemini.translate import PROVIDER
from bot.providers.gemini.wire import ErrorBody, ErrorStatus
from bot.providers.http import never_sent

__all__ = ["error_from_api", "error_from_transport"]

_AUTH_REASONS: Final = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
_TEXT_LIMIT: Final = 300


def _status_of(details: object, message: str | None, status: str | None) -> ErrorStatus:
    if isinstance(details, Mapping) and isinstance(details.get("error"), Mapping):
        try:
            return ErrorBody.model_validate(details).error
        except ValidationError:
            pass
    return ErrorStatus(message=message or "", status=status)


def _retry_delay(status: ErrorStatus, headers: Mapping[str, str] | None) -> float | None:
    """``google.rpc.RetryInfo.retryDelay`` (a Duration such as ``"37s"``), else the
    ``Retry-After`` header in seconds; None if neither is readable."""
    for detail in status.details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = _seconds(str(detail.get("retryDelay", "")).removesuffix("s"))
            if delay is not None:
                return delay
    return _seconds((headers or {}).get("retry-after", ""))


def _seconds(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def error_from_api(exc: errors.APIError) -> ProviderError:
    """Map an SDK ``APIError`` (HTTP 4xx/5xx) to a typed error, by ``code`` and ``details``.

    §4.7: 400 ``INVALID_ARGUMENT`` -> rejected, except ``ErrorInfo.reason`` ``API_KEY_INVALID``
    (what Google answers for a wrong key) -> auth; 400 ``FAILED_PRECONDITION`` (billing not
    enabled, region without access) -> quota, an account matter for whoever runs the bot;
    401/403 -> auth; 404 -> rejected (unknown model id); 429 -> rate limited with the
    ``RetryInfo`` delay; 5xx -> unavailable (sent: the outcome of the paid call is unknown).
    """
    headers = getattr(exc.response, "headers", None)
    status = _status_of(exc.details, exc.message, exc.status)
    code = exc.code or status.code or 0
    name = status.status or exc.status or ""
    said = (status.message or exc.message or "")[:_TEXT_LIMIT]  # a proxy may send a page
    text = f"Gemini HTTP {code} {name}: {said}".strip()
    reasons = {str(d.get("reason", "")) for d in status.details if "reason" in d}
    if code in (401, 403) or reasons & _AUTH_REASONS:
        return ProviderAuthError(PROVIDER, text, code)
    if code == 429:
        return ProviderRateLimited(PROVIDER, text, code, retry_after=_retry_delay(status, headers))
    if code >= 500:
        return ProviderUnavailable(PROVIDER, text, code, retry_after=_retry_delay(status, headers))
    if name == "FAILED_PRECONDITION":
        return ProviderQuotaError(PROVIDER, text, code)
    if code == 408:
        return ProviderTimeout(PROVIDER, text, code)
    return ProviderRejected(PROVIDER, text, code, parameter="model" if code == 404 else "")


def error_from_transport(exc: httpx.TransportError) -> ProviderError:
    """Map an httpx failure: only connect/pool failures prove the request was never sent.

    A read/write timeout or a dropped connection leaves the paid call's outcome unknown
    (reliability-security-perf.md §4.1), so those say ``sent``/timeout and are not retried.
    """
    kind = type(exc).__name__
    if never_sent(exc):
        return ProviderUnavailable(PROVIDER, f"cannot connect to Gemini ({kind})", sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeout(PROVIDER, f"Gemini did not answer in time ({kind})")
    return ProviderUnavailable(PROVIDER, f"Gemini connection failed ({kind})")
