"""The one client-side rate limiter all Runbase requests share (20 requests per 10 s per key).

Runbase docs (runbase.net/docs/rate-limits, provider-apis.md §3.5): "20 requests per 10 s per
API key, shared between ``POST /api/v1/runs`` and ``GET /api/v1/runs/:id``".

``aiolimiter.AsyncLimiter`` is a leaky bucket: ``AsyncLimiter(20, 10)`` lets a burst of 20
through at once and then drips 2 per second, so a busy 10 s window sees up to 40 requests,
twice the limit. In any window of ``L`` seconds a bucket of size ``burst`` draining ``r``
per second admits at most ``burst + r * L``; :func:`shared_limiter` picks ``r`` so that
this stays within the limit for windows up to ``window + margin`` seconds (the margin
absorbs network jitter between our clock and Runbase's).
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

__all__ = ["RATE_LIMIT_REQUESTS", "RATE_LIMIT_WINDOW", "shared_limiter"]

RATE_LIMIT_REQUESTS = 20
RATE_LIMIT_WINDOW = 10.0


def shared_limiter(
    requests: int = RATE_LIMIT_REQUESTS,
    window: float = RATE_LIMIT_WINDOW,
    *,
    burst: int = 2,
    margin: float = 1.0,
) -> AsyncLimiter:
    """A limiter that admits at most ``requests`` in any ``window + margin`` seconds.

    Build it once (in the composition root) and give the same instance to every
    :class:`~bot.providers.runbase.client.RunbaseProvider` using the same API key.

    Args:
        requests: the provider's limit per window (20).
        window: the window, seconds (10).
        burst: requests admitted back to back after a quiet spell (bucket size).
        margin: seconds of jitter tolerated on top of ``window``.

    Returns:
        ``AsyncLimiter(burst, burst / rate)`` with ``rate = (requests - burst) /
        (window + margin)`` requests per second (20, 10 s: 1.64/s sustained).

    Raises:
        ValueError: ``burst`` not in 1..requests-1, or a non-positive window.
    """
    if not 1 <= burst < requests or window <= 0 or margin < 0:
        raise ValueError("need 1 <= burst < requests, window > 0 and margin >= 0")
    rate = (requests - burst) / (window + margin)
    return AsyncLimiter(burst, burst / rate)
