"""Every error bananabot raises, in one tree; foreign errors are mapped to these at the edge.

::

    BananabotError                      code, retryable, message
    ├── UserInputError                  the person can fix it; never retried, never charged
    │   ├── InvalidRequest              field, allowed          (catalog / request validation)
    │   ├── ReferenceImageError         index, allowed          (download, format, size)
    │   ├── BudgetExceeded              cap, limit, left, resets_at
    │   ├── PolicyRefused               field, allowed
    │   └── NotFound                    what
    ├── ProviderError                   provider, status
    │   ├── ProviderAuthError           401 / 403: the key is wrong or lacks permission
    │   ├── ProviderQuotaError          402: the provider account is out of credit
    │   ├── ProviderRejected            400: the provider refused the request as invalid
    │   ├── ProviderRateLimited         429: retryable, retry_after
    │   ├── ProviderUnavailable         5xx, connection refused or reset: retryable
    │   ├── ProviderTimeout             no result before the deadline
    │   ├── ProviderProtocolError       a body bananabot cannot read
    │   └── SafetyBlocked               the provider's safety filter refused; refunded
    └── ConfigurationError              settings are missing or contradictory

Adapters turn an error into words with :func:`bot.messages.render_error`, keyed on ``code``,
so every platform says the same thing. Retry decisions read ``retryable`` and
``retry_after``, never the message text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.money import format_usd as _usd

__all__ = [
    "INTERRUPTED",
    "PROVIDER_REMOVED",
    "BananabotError",
    "BudgetExceeded",
    "ConfigurationError",
    "InvalidRequest",
    "NotFound",
    "PolicyRefused",
    "ProviderAuthError",
    "ProviderError",
    "ProviderProtocolError",
    "ProviderQuotaError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ReferenceImageError",
    "SafetyBlocked",
    "UserInputError",
]

INTERRUPTED = "interrupted"
"""Failure code (no exception): bananabot stopped while a provider that cannot be polled
again (the Gemini API) was working on the job; refunded."""
PROVIDER_REMOVED = "provider_removed"
"""Failure code (no exception): the job's provider is no longer configured; refunded."""


class BananabotError(Exception):
    """Base of every bananabot error.

    Attributes:
        code: stable machine-readable identifier (``"invalid_request"``, ...).
        retryable: whether repeating the same call may succeed.
        message: operator-facing text; never holds a secret.
    """

    code = "internal_error"
    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UserInputError(BananabotError):
    """Something the person asked for is not allowed; they can change it and try again."""

    code = "user_input"


class InvalidRequest(UserInputError):
    """A request field is outside what the model or the platform allows.

    Attributes:
        field: the neutral request field name (``"width"``, ``"aspect_ratio"``, ...).
        allowed: the allowed values or range, as short human-readable strings.
    """

    code = "invalid_request"

    def __init__(self, field: str, message: str, allowed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = tuple(allowed)


class ReferenceImageError(UserInputError):
    """A reference image could not be used (not an image, too large, unreachable, ...).

    Attributes:
        index: zero-based position of the reference in the request, or -1 if unknown.
    """

    code = "reference_image"

    def __init__(self, message: str, index: int = -1) -> None:
        super().__init__(message)
        self.index = index


class BudgetExceeded(UserInputError):
    """Reserving the job's estimate would take a budget cap past its limit.

    Attributes:
        cap: human-readable cap name, e.g. ``"your daily cap"``.
        limit_micros: the cap's limit in micro-dollars.
        left_micros: what is left under the cap in micro-dollars (never negative).
        estimate_micros: what the job would have reserved, in micro-dollars.
        resets_at: when the cap's period starts again (UTC), or None for a total cap.
    """

    code = "budget_exceeded"

    def __init__(
        self,
        cap: str,
        limit_micros: int,
        left_micros: int,
        estimate_micros: int,
        resets_at: datetime | None,
    ) -> None:
        super().__init__(
            f"{cap} of {_usd(limit_micros)} has {_usd(left_micros)} left; "
            f"this job needs up to {_usd(estimate_micros)}"
        )
        self.cap = cap
        self.limit_micros = limit_micros
        self.left_micros = left_micros
        self.estimate_micros = estimate_micros
        self.resets_at = resets_at


class PolicyRefused(UserInputError):
    """The channel's policy does not allow this request at all (clamping was not possible)."""

    code = "policy_refused"

    def __init__(self, field: str, message: str, allowed: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = tuple(allowed)


class NotFound(UserInputError):
    """A job or result id that does not exist (or is not visible to this person)."""

    code = "not_found"


class ProviderError(BananabotError):
    """A provider failed or refused. ``provider`` names it; ``status`` is the HTTP status or 0."""

    code = "provider_error"

    def __init__(self, provider: str, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class ProviderAuthError(ProviderError):
    """HTTP 401/403: the API key is missing, wrong or lacks permission. Not retryable."""

    code = "provider_auth"


class ProviderQuotaError(ProviderError):
    """HTTP 402: the provider account has no credit left. Not retryable."""

    code = "provider_quota"


class ProviderRejected(ProviderError):
    """HTTP 400: the provider refused the request body. Not retryable.

    Attributes:
        parameter: the provider's name of the offending parameter, if it said.
    """

    code = "provider_rejected"

    def __init__(self, provider: str, message: str, status: int = 400, parameter: str = "") -> None:
        super().__init__(provider, message, status)
        self.parameter = parameter


class ProviderRateLimited(ProviderError):
    """HTTP 429. Retryable after ``retry_after`` seconds (None if the provider did not say)."""

    code = "provider_rate_limited"
    retryable = True

    def __init__(
        self, provider: str, message: str, status: int = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(provider, message, status)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """HTTP 5xx, connection refused or reset. Retryable.

    Attributes:
        retry_after: seconds the provider asked us to wait, or None.
        sent: False when the request certainly never reached the provider (connect error).
    """

    code = "provider_unavailable"
    retryable = True

    def __init__(
        self,
        provider: str,
        message: str,
        status: int = 0,
        retry_after: float | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(provider, message, status)
        self.retry_after = retry_after
        self.sent = sent


class ProviderTimeout(ProviderError):
    """The provider gave no result before bananabot's deadline."""

    code = "provider_timeout"


class ProviderProtocolError(ProviderError):
    """The provider answered with a body bananabot cannot understand."""

    code = "provider_protocol"


class SafetyBlocked(ProviderError):
    """The provider's safety filter refused the prompt or the result. Always refunded."""

    code = "safety_blocked"


class ConfigurationError(BananabotError):
    """Settings are missing or contradictory (e.g. a provider named without its key)."""

    code = "configuration"
