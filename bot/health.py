"""Provider health: a circuit breaker per provider, shared by routing and the workers.

After ``failures`` consecutive failures that say the provider itself is in trouble (down,
timing out, rate limiting, refusing our key or out of credit) the breaker opens: routing
skips the provider and its workers stop claiming jobs for ``cooldown`` seconds. Then one job
is let through as a trial (half-open): success closes the breaker, failure opens it again.
Failures that are about the request (invalid, safety block) say nothing about the provider.
State is per process (shared/reference/reliability-security-perf.md §4.4 accepts per-instance
breakers).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.errors import (
    BananabotError,
    ProviderAuthError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = ["BreakerState", "ProviderHealth", "counts_against_provider"]

_PROVIDER_TROUBLE = (
    ProviderUnavailable,
    ProviderTimeout,
    ProviderRateLimited,
    ProviderAuthError,
    ProviderQuotaError,
)


def counts_against_provider(error: BananabotError) -> bool:
    """Whether an error says the provider (not the request) is in trouble."""
    return isinstance(error, _PROVIDER_TROUBLE)


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass
class _Breaker:
    failures: int = 0
    opened_at: float | None = None
    trial: bool = False


class ProviderHealth:
    """Circuit breakers by provider name.

    Args:
        names: the providers.
        failures: consecutive failures that open a breaker.
        cooldown: seconds an open breaker waits before a trial job.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        names: Iterable[str],
        *,
        failures: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._breakers = {name: _Breaker() for name in names}
        self._threshold = failures
        self._cooldown = cooldown
        self._clock = clock

    def state(self, name: str) -> BreakerState:
        breaker = self._breakers[name]
        if breaker.opened_at is None:
            return BreakerState.CLOSED
        if breaker.trial or self._clock() - breaker.opened_at >= self._cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def routable(self, name: str) -> bool:
        """Whether routing may send new jobs to ``name`` (closed, or ready for a trial)."""
        return name in self._breakers and self.state(name) is not BreakerState.OPEN

    def may_claim(self, name: str) -> bool:
        """Whether a worker may start a job on ``name`` now; in half-open state only one
        trial job runs at a time (this call takes the trial)."""
        breaker = self._breakers[name]
        state = self.state(name)
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not breaker.trial:
            breaker.trial = True
            return True
        return False

    def seconds_until_trial(self, name: str) -> float:
        """Seconds until an open breaker lets a trial through (0 when it already would)."""
        breaker = self._breakers[name]
        if breaker.opened_at is None:
            return 0.0
        return max(0.0, breaker.opened_at + self._cooldown - self._clock())

    def record(self, name: str, error: BananabotError | None) -> None:
        """Record a finished job: ``None`` for success, else its error."""
        breaker = self._breakers[name]
        if error is None:
            self._breakers[name] = _Breaker()
            return
        if not counts_against_provider(error):
            if breaker.trial:  # the trial reached the provider and got an answer
                self._breakers[name] = _Breaker()
            return
        breaker.failures += 1
        if breaker.trial or breaker.failures >= self._threshold:
            breaker.opened_at = self._clock()
            breaker.trial = False

    def release_trial(self, name: str) -> None:
        """A claimed trial found no job or was interrupted: let another one try."""
        self._breakers[name].trial = False
