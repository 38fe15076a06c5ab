"""What the REST providers share: retries that honour Retry-After, and result downloads."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import httpx
import stamina
from pydantic import BaseModel, ValidationError

from bot.errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = [
    "CREATE_REFUSALS",
    "call_rest",
    "deadline",
    "download_image",
    "never_sent",
    "parse_retry_after",
    "read_model",
    "retry_hook",
    "send",
    "with_retries",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); None if absent, negative,
    infinite or otherwise odd."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < math.inf else None


def read_model(response: httpx.Response, model: type[M], *, provider: str) -> M:
    """A provider's JSON answer as ``model``.

    Raises:
        ProviderProtocolError: the body does not fit ``model``.
    """
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ProviderProtocolError(
            provider,
            f"unreadable {provider} answer (HTTP {response.status_code})",
            response.status_code,
        ) from exc


CREATE_REFUSALS: Final = frozenset({429, *range(500, 600)})
"""Answers to a create that prove no run exists, where the provider assigns the run id in
its answer (Runflow, Runbase): the job may go to another provider."""


def retry_hook(exc: Exception) -> bool | float:
    """stamina hook: retry rate limits, 5xx and connection errors; wait ``retry_after``
    seconds when the provider said how long (shared/reference/reliability-security-perf.md
    §4.2: Retry-After overrides the computed backoff)."""
    if isinstance(exc, ProviderRateLimited | ProviderUnavailable):
        return exc.retry_after if exc.retry_after is not None else True
    return False


async def with_retries(
    once: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    retry_budget: float,
    refused_statuses: Collection[int] | None = None,
    idempotent: bool = True,
) -> T:
    """Call ``once`` until it succeeds, retrying per :func:`retry_hook`; a wait the provider
    asks for that is longer than ``retry_budget`` ends the retries at once.

    For a create (``refused_statuses`` given), the error raised at the end says whether the
    provider may have accepted the work: ``ProviderUnavailable.sent`` is False only when no
    try could have been accepted, so a caller may route the job elsewhere only then. A try
    could not have been accepted when it never reached the provider (connection refused),
    or when it was answered with one of ``refused_statuses``. Anything else (a poll, a
    download) works on what the provider already accepted, so its errors are always sent.

    Args:
        attempts: tries at most.
        retry_budget: seconds for all tries, waits included.
        refused_statuses: for a create, the HTTP statuses that prove it was refused (429
            for every provider; 5xx too where the provider assigns the run id in its
            answer, so no run exists without one). None: not a create.
        idempotent: False where repeating a try the provider may have accepted could pay
            twice (Runflow's and Runbase's creates: no idempotency key); then only tries
            that were certainly refused are repeated, and a lost answer is an unknown
            outcome (reliability-security-perf.md: never blind-retry).

    Raises:
        ProviderError: the last try's error; a refusal in ``refused_statuses`` with no try
            possibly accepted becomes ``ProviderUnavailable(sent=False)``.
    """
    create = refused_statuses is not None
    refusals = refused_statuses or ()
    accepted = False  # some try may have been accepted by the provider

    def retry(exc: Exception) -> bool | float:
        wait = retry_hook(exc)
        if wait is False or (not isinstance(wait, bool) and wait > retry_budget):
            return False
        if not idempotent and isinstance(exc, ProviderError):
            certainly_refused = exc.status in refusals or (
                isinstance(exc, ProviderUnavailable) and not exc.sent
            )
            return wait if certainly_refused else False
        return wait

    try:
        async for attempt in stamina.retry_context(
            on=retry, attempts=attempts, timeout=retry_budget
        ):
            with attempt:
                try:
                    return await once()
                except ProviderError as exc:
                    refused = exc.status in refusals
                    unsent = isinstance(exc, ProviderUnavailable) and not exc.sent
                    accepted = accepted or not create or not (unsent or refused)
                    if isinstance(exc, ProviderUnavailable):
                        exc.sent = accepted or (exc.sent and not refused)
                    raise
    except ProviderError as exc:
        # Only retryable refusals (rate limits, outages); a 429 meaning "quota used up"
        # (Runbase USAGE_EXCEEDED) stays a quota error the operator must see.
        retryable = isinstance(exc, ProviderRateLimited | ProviderUnavailable)
        if retryable and not accepted and exc.status in refusals:
            raise _unsent(exc) from exc
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def _unsent(exc: ProviderError) -> ProviderUnavailable:
    return ProviderUnavailable(
        exc.provider, exc.message, exc.status, getattr(exc, "retry_after", None), sent=False
    )


async def download_image(
    client: httpx.AsyncClient, url: str, *, provider: str, attempts: int, retry_budget: float
) -> bytes:
    """GET a result image the provider links to (no API key is sent), with retries.

    Raises:
        ProviderUnavailable: 5xx, 429 or a connection failure after the retries.
        ProviderProtocolError: another status, or an empty body.
    """

    async def once() -> bytes:
        try:
            response = await client.get(url)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                provider, f"image download failed ({type(exc).__name__})"
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(provider, "image download failed", response.status_code)
        if response.status_code != 200 or not response.content:
            raise ProviderProtocolError(
                provider,
                f"image download answered HTTP {response.status_code}",
                response.status_code,
            )
        return response.content

    return await with_retries(once, attempts=attempts, retry_budget=retry_budget)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """One HTTP request to a provider; transport failures become ``ProviderUnavailable``
    (``sent=False`` when the connection was never made).

    Raises:
        ProviderUnavailable: the provider could not be reached or the connection broke.
    """
    try:
        return await client.request(method, url, json=json, content=content, headers=headers)
    except httpx.TransportError as exc:
        if never_sent(exc):
            raise ProviderUnavailable(
                provider, f"cannot connect to {provider} ({type(exc).__name__})", sent=False
            ) from exc
        if not isinstance(exc, httpx.TimeoutException):
            raise ProviderUnavailable(
                provider, f"{provider} connection failed ({type(exc).__name__})"
            ) from exc
        raise ProviderUnavailable(provider, f"{provider} timed out ({type(exc).__name__})") from exc


def never_sent(exc: httpx.TransportError) -> bool:
    """Whether the request certainly never left this process: no connection was made
    (refused, connect timeout), the pool had no connection to give, or the URL is unusable.
    Anything else (a read or write timeout, a dropped connection) may have been received."""
    return isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.UnsupportedProtocol,
    )


E = TypeVar("E", bound=BaseModel)


async def call_rest(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    api_key: str,
    body: dict[str, Any] | None,
    answer: type[M],
    error_body: type[E],
    error_from_status: Callable[[int, E | None, float | None], ProviderError],
) -> M:
    """One bearer-authenticated JSON call (Runflow, Runbase): the answer as ``answer``, or
    the typed error ``error_from_status`` makes of a non-2xx status, its parsed error body
    (None if unreadable) and its ``Retry-After`` seconds.

    Raises:
        ProviderError: from ``send``, ``error_from_status`` or ``read_model``.
    """
    response = await send(
        client,
        method,
        url,
        provider=provider,
        json=body,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    if response.status_code >= 400:
        try:
            error: E | None = error_body.model_validate_json(response.content)
        except ValidationError:
            error = None
        raise error_from_status(
            response.status_code, error, parse_retry_after(response.headers.get("Retry-After"))
        )
    return read_model(response, answer, provider=provider)


@asynccontextmanager
async def deadline(seconds: float, provider: str) -> AsyncIterator[None]:
    """Bound a whole generation (submit, polls, downloads) to ``seconds``.

    Raises:
        ProviderTimeout: the deadline passed.
    """
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise ProviderTimeout(provider, f"no result from {provider} within {seconds:g} s") from None
