"""Shared provider retries: a create counts as never sent only if no try reached the
provider; a poll or download is always about work the provider has; a create without an
idempotency key is never repeated after a lost answer; a long Retry-After ends retries."""

from __future__ import annotations

import httpx
import pytest

from bot.errors import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from bot.providers.http import parse_retry_after, send, with_retries


async def test_connect_errors_on_every_try_stay_never_sent() -> None:
    tries = 0

    async def once() -> None:
        nonlocal tries
        tries += 1
        raise ProviderUnavailable("p", "refused", sent=False)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(once, attempts=3, retry_budget=5, refused_statuses=())
    assert tries == 3 and caught.value.sent is False


async def test_a_poll_that_cannot_connect_is_about_work_the_provider_has() -> None:
    async def once() -> None:
        raise ProviderUnavailable("p", "refused", sent=False)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(once, attempts=2, retry_budget=5)
    assert caught.value.sent is True, "a poll's failure must never let the job move on"


async def test_a_create_without_idempotency_is_not_repeated_after_a_lost_answer() -> None:
    answers = [
        ProviderUnavailable("p", "refused", sent=False),  # certainly refused: tried again
        ProviderUnavailable("p", "read timeout"),  # may have been accepted: never again
        ProviderUnavailable("p", "refused", sent=False),
    ]
    tries = 0

    async def once() -> None:
        nonlocal tries
        tries += 1
        raise answers.pop(0)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(
            once, attempts=3, retry_budget=5, refused_statuses=(429,), idempotent=False
        )
    assert tries == 2 and caught.value.sent is True


async def test_a_wait_longer_than_the_budget_gives_up_at_once() -> None:
    tries = 0

    async def once() -> None:
        nonlocal tries
        tries += 1
        raise ProviderRateLimited("p", "slow down", 429, retry_after=30.0)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(once, attempts=5, retry_budget=2, refused_statuses=(429,))
    assert tries == 1 and caught.value.sent is False  # refused: free to fail over


@pytest.mark.parametrize("header", ["inf", "1e999", "-1", "nan", "soon"])
def test_odd_retry_after_values_are_ignored(header: str) -> None:
    assert parse_retry_after(header) is None


async def test_a_try_that_reached_the_provider_makes_the_call_sent() -> None:
    answers = [
        ProviderUnavailable("p", "503", 503),
        ProviderUnavailable("p", "refused", sent=False),
    ]

    async def once() -> None:
        raise answers.pop(0)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(once, attempts=2, retry_budget=5, refused_statuses=())
    assert caught.value.sent is True


async def test_request_errors_are_not_retried() -> None:
    tries = 0

    async def once() -> None:
        nonlocal tries
        tries += 1
        raise ProviderRejected("p", "bad")

    with pytest.raises(ProviderRejected):
        await with_retries(once, attempts=3, retry_budget=5)
    assert tries == 1


@pytest.mark.parametrize(
    ("failure", "sent"),
    [
        (httpx.ConnectError("refused"), False),
        (httpx.PoolTimeout("no free connection"), False),
        (httpx.UnsupportedProtocol("ftp"), False),
        (httpx.ReadTimeout("no answer"), True),
        (httpx.RemoteProtocolError("dropped"), True),
    ],
)
async def test_only_requests_that_never_left_count_as_never_sent(
    failure: httpx.TransportError, sent: bool
) -> None:
    def transport(request: httpx.Request) -> httpx.Response:
        raise failure

    async with httpx.AsyncClient(transport=httpx.MockTransport(transport)) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            await send(client, "POST", "http://provider.test/runs", provider="p", json={})
    assert caught.value.sent is sent
