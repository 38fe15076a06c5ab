"""The Runbase provider: create a run, store its id, poll it, download ``output.urls``.

Protocol: seeds/003_*, 004_* and shared/reference/provider-apis.md §3 (``POST
{RUNBASE_API_URL}/runs`` with ``Authorization: Bearer``; runs are always asynchronous).
Runbase assigns the run id, so it is stored (``on_task_id``) right after the create answer;
``resume`` only polls. Every API request, create and poll, first takes a slot from the one
shared limiter (see :mod:`bot.providers.runbase.limiter`): 20 requests per 10 s per key.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from bot.errors import (
    ProviderProtocolError,
    ProviderRejected,
)
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)
from bot.providers.http import (
    CREATE_REFUSALS,
    call_rest,
    deadline,
    download_image,
    with_retries,
)
from bot.providers.links import reference_urls
from bot.providers.runbase.translate import (
    DEFAULT_API_URL,
    DEFAULT_MODEL_IDS,
    FAILED,
    MAX_REFERENCES,
    PROVIDER,
    SUCCEEDED,
    TIERS,
    UNSUPPORTED_FIELDS,
    cost_micros,
    error_from_run,
    error_from_status,
    run_body,
)
from bot.providers.runbase.wire import ErrorBody, Run

__all__ = ["RunbaseProvider"]

log = logging.getLogger(__name__)


class RunbaseProvider:
    """Nano Banana Pro / Nano Banana 2 through Runbase's run API.

    Args:
        api_key: the Runbase API key (``sk-...``; sent only as ``Authorization: Bearer``).
        api_url: ``RUNBASE_API_URL``, default ``https://runbase.net/api/v1``.
        client: the shared httpx client (its timeouts apply; no default auth header).
        limiter: the ONE limiter shared by every request made with this key (build it with
            :func:`bot.providers.runbase.limiter.shared_limiter`); each create and each
            poll, retries included, acquires it.
        model_ids: neutral model name -> Runbase model id.
        attempts: tries per HTTP call for retryable errors (429 ``RATE_LIMITED``, 5xx).
        retry_timeout: seconds all tries of one call may take, waits included.
        poll_initial: first wait before polling, seconds; grows x1.5 up to ``poll_max``.
        poll_max: longest wait between polls, seconds (Runbase: "poll every 1-2 s").
        deadline: seconds a generation may take from create to downloaded image.
    """

    name = PROVIDER
    capabilities = ProviderCapabilities(
        models=frozenset(DEFAULT_MODEL_IDS),
        max_references=MAX_REFERENCES,
        inline_references=False,
        reports_cost=False,
        resumable=True,
        nsfw_flag=False,
        # Seeds 003/004: the input takes prompt, aspect_ratio, resolution and image_urls
        # only; translate.run_body refuses the rest, so routing sends such requests elsewhere.
        unsupported=UNSUPPORTED_FIELDS,
        max_results=1,
        tiers={model: TIERS for model in DEFAULT_MODEL_IDS},
    )

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        client: httpx.AsyncClient,
        limiter: AsyncLimiter,
        model_ids: Mapping[str, str] = DEFAULT_MODEL_IDS,
        attempts: int = 5,
        retry_timeout: float = 60.0,
        poll_initial: float = 1.5,
        poll_max: float = 3.0,
        deadline: float = 600.0,
    ) -> None:
        self._api_key = api_key
        self._api_url = api_url.rstrip("/")
        self._client = client
        self._limiter = limiter
        self._model_ids = dict(model_ids)
        self._attempts = attempts
        self._retry_timeout = retry_timeout
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._deadline = deadline

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        """Create a run, store its id via ``on_task_id``, poll it and download its image.

        Raises:
            ProviderRejected: before anything is sent, for what Runbase does not take (a
                reference without a link, a seed, 0.5K, several results, ...); or HTTP 400.
            ProviderAuthError: HTTP 401, 403 ``ip_not_allowed`` (not retried).
            ProviderQuotaError: 402 ``insufficient_balance``, 403
                ``api_key_spend_limit_exceeded``, 429 ``USAGE_EXCEEDED`` (not retried).
            ProviderRateLimited, ProviderUnavailable: 429 ``RATE_LIMITED`` / 5xx /
                connection errors after ``attempts`` tries (``sent=False``: never reached).
            SafetyBlocked: the run failed with a safety/content-policy code.
            ProviderTimeout: no result within ``deadline`` seconds (limiter waits included).
            ProviderProtocolError: an answer bananabot cannot read.
        """
        body = self._prepare(task)
        log.info(
            "runbase create",
            extra={"job": task.job_id, "model": body["model"], "references": len(task.references)},
        )
        log.debug("runbase prompt", extra={"job": task.job_id, "prompt": task.request.prompt})
        async with deadline(self._deadline, PROVIDER):
            run = await self._call("POST", "runs", body)
            log.info("runbase run created", extra={"job": task.job_id, "run_id": run.id})
            await on_task_id(run.id)
            return await self._poll(task, run, self._poll_initial)

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        """Poll the stored run ``task_id`` to its end; never creates a run.

        Raises:
            ProviderProtocolError: Runbase has no run ``task_id`` (404 ``run_not_found``).
            ProviderError: otherwise as for :meth:`generate`.
        """
        async with deadline(self._deadline, PROVIDER):
            return await self._poll(task, None, 0.0, run_id=task_id)

    def _prepare(self, task: GenerationTask) -> dict[str, Any]:
        model_id = self._model_ids.get(task.request.model)
        if model_id is None:
            raise ProviderRejected(PROVIDER, f"Runbase is not set up for {task.request.model}", 0)
        if len(task.references) > MAX_REFERENCES:
            raise ProviderRejected(
                PROVIDER, f"Runbase takes at most {MAX_REFERENCES} references", 0, "references"
            )
        return run_body(
            task.request,
            task.size,
            model_id,
            reference_urls(task.references, provider=PROVIDER, display_name="Runbase"),
        )

    async def _poll(
        self, task: GenerationTask, run: Run | None, wait: float, *, run_id: str = ""
    ) -> GenerationResult:
        run_id = run.id if run is not None else run_id
        while run is None or run.status not in SUCCEEDED | FAILED:
            await asyncio.sleep(wait)
            wait = min(self._poll_max, max(wait * 1.5, self._poll_initial))
            try:
                run = await self._call("GET", f"runs/{run_id}")
            except ProviderRejected as exc:
                if exc.status != 404:
                    raise
                raise ProviderProtocolError(PROVIDER, f"Runbase has no run {run_id}", 404) from exc
        if run.status in FAILED:
            raise error_from_run(run)
        urls = run.output.urls if run.output is not None else []
        if not urls:
            raise ProviderProtocolError(PROVIDER, f"Runbase run {run.id} succeeded without images")
        images = [GeneratedImage(data=await self._download(u), provider_url=u) for u in urls]
        notices: tuple[str, ...] = ()
        if len(images) < task.request.number_results:
            notices = (f"{len(images)} of {task.request.number_results} images were produced",)
        log.info("runbase run succeeded", extra={"run_id": run.id, "images": len(images)})
        return GenerationResult(images=tuple(images), cost_micros=cost_micros(run), notices=notices)

    async def _download(self, url: str) -> bytes:
        """GET an output URL; not an API call, so it takes no limiter slot and no API key."""
        return await download_image(
            self._client,
            url,
            provider=PROVIDER,
            attempts=self._attempts,
            retry_budget=self._retry_timeout,
        )

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Run:
        """One API call through the shared limiter, retrying 429/5xx/connection errors."""

        async def once() -> Run:
            async with self._limiter:
                return await self._call_once(method, path, body)

        return await with_retries(
            once,
            attempts=self._attempts,
            retry_budget=self._retry_timeout,
            refused_statuses=CREATE_REFUSALS if method == "POST" else None,
            # No idempotency key: a create whose answer was lost is not sent again.
            idempotent=method != "POST",
        )

    async def _call_once(self, method: str, path: str, body: dict[str, Any] | None) -> Run:
        return await call_rest(
            self._client,
            method,
            f"{self._api_url}/{path}",
            provider=PROVIDER,
            api_key=self._api_key,
            body=body,
            answer=Run,
            error_body=ErrorBody,
            error_from_status=error_from_status,
        )
