"""The Runflow provider: create a run, store its id, poll ``GET /v1/runs/{id}``, download outputs.

Protocol: seeds/002_* and shared/reference/provider-apis.md §2 (``POST
{RUNFLOW_API_URL}/models/<id>[/edit]/runs`` with ``Authorization: Bearer``; the answer is
immediate, with the run ``id`` and ``status_code: queued``). Runflow assigns the id, so it is
stored (``on_task_id``) right after the create answer and before anything else; ``resume``
only polls a stored id and never creates a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import httpx

from bot.errors import (
    ProviderProtocolError,
    ProviderRejected,
    SafetyBlocked,
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
from bot.providers.runflow.translate import (
    CANCELED,
    DEFAULT_API_URL,
    DEFAULT_MODEL_PATHS,
    FAILED,
    MAX_REFERENCES,
    MODEL_RULES,
    PROVIDER,
    SUCCEEDED,
    UNSUPPORTED_FIELDS,
    cost_micros,
    create_body,
    error_from_run,
    error_from_status,
    run_input,
    runs_path,
)
from bot.providers.runflow.wire import ErrorBody, Run

__all__ = ["RunflowProvider"]

_EARLY_NUDGES = 1_000
"""Callbacks for runs this process is not (yet) polling that are remembered."""

log = logging.getLogger(__name__)


class RunflowProvider:
    """Nano Banana Pro / Nano Banana 2 through Runflow's run API.

    Args:
        api_key: the Runflow API key (sent only as ``Authorization: Bearer`` to ``api_url``).
        api_url: ``RUNFLOW_API_URL``, default ``https://api.runflow.io/v1``.
        client: the shared httpx client (its timeouts apply; no default auth header).
        model_paths: neutral model name -> Runflow model id (``google/nano-banana-pro``).
        callback_url: optional ``callback_url`` sent with each run: Runflow POSTs there when
            the run ends, and :class:`~bot.providers.runflow.callbacks.CallbackReceiver`
            calls :meth:`notify`, so the result is fetched at once instead of at the next
            poll (polling goes on regardless; callbacks only cut the wait).
        attempts: tries per HTTP call for retryable errors (Runflow advises at most 5).
        retry_timeout: seconds all tries of one call may take, waits included.
        poll_initial: first wait before polling, seconds; grows x1.5 up to ``poll_max``.
        poll_max: longest wait between polls, seconds (Runflow's template polls every 3 s).
        deadline: seconds a generation may take from create to downloaded images.
    """

    name = PROVIDER
    capabilities = ProviderCapabilities(
        models=frozenset(DEFAULT_MODEL_PATHS),
        max_references=MAX_REFERENCES,
        inline_references=False,
        reports_cost=True,
        resumable=True,
        nsfw_flag=True,
        # Seed 002: Nano Banana Pro $0.15/image; provider-apis.md §2.7: Nano Banana 2 from
        # $0.08/image at 1K (other tiers unpublished).
        price_floor_micros={"nano-banana-pro": 150_000, "nano-banana-2": 80_000},
        unsupported=UNSUPPORTED_FIELDS,
        tiers={model: rules.tiers for model, rules in MODEL_RULES.items()},
    )

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str = DEFAULT_API_URL,
        client: httpx.AsyncClient,
        model_paths: Mapping[str, str] = DEFAULT_MODEL_PATHS,
        callback_url: str | None = None,
        attempts: int = 5,
        retry_timeout: float = 60.0,
        poll_initial: float = 2.0,
        poll_max: float = 5.0,
        deadline: float = 600.0,
    ) -> None:
        self._api_key = api_key
        self._api_url = api_url.rstrip("/")
        self._client = client
        self._model_paths = dict(model_paths)
        self._callback_url = callback_url
        self._attempts = attempts
        self._retry_timeout = retry_timeout
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._deadline = deadline
        self._nudges: dict[str, asyncio.Event] = {}
        self._early: OrderedDict[str, None] = OrderedDict()

    def notify(self, run_id: str) -> bool:
        """Poll run ``run_id`` now instead of at the next interval: Runflow's callback said
        it ended. Only a hint: the result is always read from the authenticated API, so a
        forged callback costs at most one extra poll.

        Returns:
            True if this process is polling that run; False otherwise (the hint is kept
            for the last 1,000 such run ids, for a callback that beats the create's answer).
        """
        event = self._nudges.get(run_id)
        if event is None:
            self._early[run_id] = None
            self._early.move_to_end(run_id)
            while len(self._early) > _EARLY_NUDGES:
                self._early.popitem(last=False)
            return False
        event.set()
        return True

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        """Create a run, store its id via ``on_task_id``, poll it and download its images.

        Raises:
            ProviderRejected: before anything is sent, for what Runflow does not take (a
                reference without a link, ``output_quality``, 0.5K on Pro, ...); or HTTP
                400/404/409/422.
            ProviderAuthError, ProviderQuotaError: HTTP 401/403, 402 (not retried).
            ProviderRateLimited, ProviderUnavailable: 429 / 5xx / connection errors after
                ``attempts`` tries (``sent=False`` when Runflow was never reached).
            SafetyBlocked: the run failed on a safety or NSFW check.
            ProviderTimeout: no result within ``deadline`` seconds.
            ProviderProtocolError: an answer bananabot cannot read.
        """
        path, body = self._prepare(task)
        log.info(
            "runflow create",
            extra={"job": task.job_id, "path": path, "references": len(task.references)},
        )
        log.debug("runflow prompt", extra={"job": task.job_id, "prompt": task.request.prompt})
        async with deadline(self._deadline, PROVIDER):
            run = await self._call("POST", path, body)
            log.info("runflow run created", extra={"job": task.job_id, "run_id": run.id})
            await on_task_id(run.id)
            return await self._poll(task, run, self._poll_initial)

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        """Poll the stored run ``task_id`` to its end; never creates a run.

        Raises:
            ProviderProtocolError: Runflow has no run ``task_id`` (HTTP 404).
            ProviderError: otherwise as for :meth:`generate`.
        """
        async with deadline(self._deadline, PROVIDER):
            return await self._poll(task, None, 0.0, run_id=task_id)

    def _prepare(self, task: GenerationTask) -> tuple[str, dict[str, Any]]:
        model = task.request.model
        model_path = self._model_paths.get(model)
        rules = MODEL_RULES.get(model)
        if model_path is None or rules is None:
            raise ProviderRejected(PROVIDER, f"Runflow is not set up for {model}", 0, "model")
        if len(task.references) > MAX_REFERENCES:
            raise ProviderRejected(
                PROVIDER, f"Runflow takes at most {MAX_REFERENCES} references", 0, "references"
            )
        urls = reference_urls(task.references, provider=PROVIDER, display_name="Runflow")
        body = create_body(
            run_input(task.request, task.size, rules, urls), task.job_id, self._callback_url
        )
        return runs_path(model_path, edit=bool(urls)), body

    async def _poll(
        self, task: GenerationTask, run: Run | None, wait: float, *, run_id: str = ""
    ) -> GenerationResult:
        run_id = run.id if run is not None else run_id
        nudged = self._nudges.setdefault(run_id, asyncio.Event())
        if run_id in self._early:
            del self._early[run_id]
            nudged.set()
        try:
            while run is None or run.state not in SUCCEEDED | FAILED | CANCELED:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await nudged.wait()  # a callback: poll now
                nudged.clear()
                wait = min(self._poll_max, max(wait * 1.5, self._poll_initial))
                try:
                    run = await self._call("GET", f"runs/{run_id}")
                except ProviderRejected as exc:
                    if exc.status != 404:
                        raise
                    raise ProviderProtocolError(
                        PROVIDER, f"Runflow has no run {run_id}", 404
                    ) from exc
        finally:
            self._nudges.pop(run_id, None)
        if run.state not in SUCCEEDED:
            raise error_from_run(run)
        return await self._result(task, run)

    async def _result(self, task: GenerationTask, run: Run) -> GenerationResult:
        output = run.output
        urls = output.urls() if output is not None else []
        if not urls:
            if output is not None and output.nsfw_detected:
                raise SafetyBlocked(PROVIDER, "Runflow withheld the result as NSFW")
            raise ProviderProtocolError(PROVIDER, f"Runflow run {run.id} succeeded without images")
        assert output is not None
        images = [
            GeneratedImage(
                data=await self._download(url),
                seed=output.seed,
                nsfw=bool(output.nsfw_detected),
                provider_url=url,
            )
            for url in urls
        ]
        notices: list[str] = []
        if len(images) < task.request.number_results:
            notices.append(f"{len(images)} of {task.request.number_results} images were produced")
        if task.request.check_content and output.nsfw_detected is None:
            notices.append("Runflow did not say whether it checked these images' content")
        log.info("runflow run succeeded", extra={"run_id": run.id, "images": len(images)})
        return GenerationResult(
            images=tuple(images), cost_micros=cost_micros(run), notices=tuple(notices)
        )

    async def _download(self, url: str) -> bytes:
        """GET an output URL (no API key is sent)."""
        return await download_image(
            self._client,
            url,
            provider=PROVIDER,
            attempts=self._attempts,
            retry_budget=self._retry_timeout,
        )

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Run:
        """One API call, retrying 429/5xx/connection errors (honouring Retry-After)."""
        return await with_retries(
            lambda: self._call_once(method, path, body),
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
