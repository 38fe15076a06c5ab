"""Shared provider retries: a call counts as never sent only if no try reached the provider."""

from __future__ import annotations

import pytest

from bot.errors import ProviderRejected, ProviderUnavailable
from bot.providers.http import with_retries


async def test_connect_errors_on_every_try_stay_never_sent() -> None:
    tries = 0

    async def once() -> None:
        nonlocal tries
        tries += 1
        raise ProviderUnavailable("p", "refused", sent=False)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(once, attempts=3, retry_budget=5)
    assert tries == 3 and caught.value.sent is False


async def test_a_try_that_reached_the_provider_makes_the_call_sent() -> None:
    answers = [
        ProviderUnavailable("p", "503", 503),
        ProviderUnavailable("p", "refused", sent=False),
    ]

    async def once() -> None:
        raise answers.pop(0)

    with pytest.raises(ProviderUnavailable) as caught:
        await with_retries(once, attempts=2, retry_budget=5)
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
