"""The Runware provider over REST: async ``imageInference``, ``getResponse`` polling, retries.

Protocol: shared/reference/provider-apis.md §1 (POST a JSON array of tasks to
``RUNWARE_API_URL`` with ``Authorization: Bearer``; ``deliveryMethod: "async"`` then poll
``getResponse``). A task's UUID is stored before it is sent; a resubmitted UUID is answered
with ``conflictTaskUUID`` and then polled, so a task is never paid for twice.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from bot.errors import (
    ProviderProtocolError,
    ProviderUnavailable,
)
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)
from bot.money import usd_to_micros
from bot.providers.http import deadline, download_image, parse_retry_after, send, with_retries
from bot.providers.runware.translate import (
    DEFAULT_MODEL_IDS,
    PROVIDER,
    data_uri,
    error_from_item,
    error_from_status,
    get_response_task,
    inference_task,
    is_conflict,
    with_async_delivery,
)
from bot.providers.runware.wire import Envelope, ResultItem

__all__ = ["RunwareProvider", "_TaskMissing"]

log = logging.getLogger(__name__)


class _TaskMissing(Exception):
    """getResponse says the task does not exist (it never reached Runware)."""


class RunwareProvider:
    """Nano Banana Pro / Nano Banana 2 through Runware's REST API.

    Args:
        api_key: the Runware API key (sent only as ``Authorization: Bearer`` to ``api_url``).
        api_url: ``RUNWARE_API_URL``, default ``https://api.runware.ai/v1``.
        client: the shared httpx client (its timeouts apply; no default auth header).
        model_ids: neutral model name -> Runware id (vendors rename models).
        attempts: tries per HTTP call for retryable errors (429, 5xx, connection).
        retry_timeout: seconds all tries of one call may take, waits included.
        poll_initial: first wait before polling, seconds; grows x1.5 up to ``poll_max``.
        poll_max: longest wait between polls, seconds.
        deadline: seconds a generation may take from submit to result.
    """

    name = PROVIDER
    capabilities = ProviderCapabilities(
        models=frozenset(DEFAULT_MODEL_IDS),
        max_references=14,
        inline_references=True,
        reports_cost=True,
        resumable=True,
        nsfw_flag=True,
    )

    def __init__(
        self,
        *,
        api_key: str,
        api_url: str,
        client: httpx.AsyncClient,
        model_ids: Mapping[str, str] = DEFAULT_MODEL_IDS,
        attempts: int = 3,
        retry_timeout: float = 60.0,
        poll_initial: float = 1.0,
        poll_max: float = 10.0,
        deadline: float = 600.0,
    ) -> None:
        self._api_key = api_key
        self._api_url = api_url
        self._client = client
        self._model_ids = dict(model_ids)
        self._attempts = attempts
        self._retry_timeout = retry_timeout
        self._poll_initial = poll_initial
        self._poll_max = poll_max
        self._deadline = deadline

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        """Submit with a fresh taskUUID (stored first via ``on_task_id``) and poll to the end.

        Raises:
            ProviderError: typed by cause (auth, quota, rejected, safety, timeout, ...).
        """
        task_uuid = str(uuid.uuid4())
        await on_task_id(task_uuid)
        async with deadline(self._deadline, PROVIDER):
            await self._submit(task, task_uuid)
            return await self._poll(task, task_uuid)

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        """Poll a task stored before a restart; submit it only if Runware never saw it.

        Raises:
            ProviderError: as for :meth:`generate`.
        """
        async with deadline(self._deadline, PROVIDER):
            try:
                return await self._poll(task, task_id, missing_ok=True)
            except _TaskMissing:
                log.info(
                    "runware task unknown after restart; submitting", extra={"job": task.job_id}
                )
                await self._submit(task, task_id)
                return await self._poll(task, task_id)

    async def _submit(self, task: GenerationTask, task_uuid: str) -> None:
        model_id = self._model_ids.get(task.request.model)
        if model_id is None:
            raise ProviderProtocolError(PROVIDER, f"no Runware model id for {task.request.model}")

        def encode() -> bytes:
            # Up to 14 references of megabytes each: base64 and JSON off the event loop.
            task_body = inference_task(
                task.request,
                task.size,
                task_uuid=task_uuid,
                model_id=model_id,
                reference_images=[data_uri(ref) for ref in task.references],
            )
            return json.dumps([with_async_delivery(task_body)]).encode()

        body = await asyncio.to_thread(encode) if task.references else encode()
        log.info(
            "runware submit",
            extra={
                "job": task.job_id,
                "task_uuid": task_uuid,
                "model": model_id,
                "references": len(task.references),
            },
        )
        log.debug("runware prompt", extra={"job": task.job_id, "prompt": task.request.prompt})
        try:
            await self._call(body, refused_statuses=(429,))
        except _Conflict:
            log.info("runware task exists already; polling it", extra={"task_uuid": task_uuid})

    async def _poll(
        self, task: GenerationTask, task_uuid: str, *, missing_ok: bool = False
    ) -> GenerationResult:
        wait = self._poll_initial
        expected = task.request.number_results
        while True:
            await asyncio.sleep(wait)
            wait = min(self._poll_max, wait * 1.5)
            try:
                envelope = await self._call([get_response_task(task_uuid)])
            except _NotFound:
                if missing_ok:
                    raise _TaskMissing(task_uuid) from None
                raise ProviderProtocolError(PROVIDER, f"Runware lost task {task_uuid}") from None
            missing_ok = False
            items = [i for i in envelope.data if i.task_uuid in (None, task_uuid)]
            done = {i.image_uuid or str(n): i for n, i in enumerate(items) if i.has_image}
            failed = [i for i in items if i.status == "error" or i.error is not None]
            if any(i.status == "success" and not i.has_image for i in items):
                # §1.5: a finished item carries its image; without one, polling on would
                # only wait for the deadline.
                raise ProviderProtocolError(
                    PROVIDER, f"Runware reported task {task_uuid} done without an image"
                )
            if len(done) + len(failed) >= expected:
                if not done:
                    error = failed[0].error if failed and failed[0].error else None
                    raise (
                        error_from_item(error)
                        if error
                        else ProviderProtocolError(
                            PROVIDER, "Runware reported the task failed without a reason"
                        )
                    )
                return await self._result(task, list(done.values()), len(failed))

    async def _result(
        self, task: GenerationTask, items: list[ResultItem], failures: int
    ) -> GenerationResult:
        images = []
        for item in items:
            images.append(
                GeneratedImage(
                    data=await self._image_bytes(item),
                    seed=item.seed,
                    cost_micros=usd_to_micros(item.cost) if item.cost is not None else None,
                    nsfw=bool(item.nsfw),
                    provider_url=item.image_url,
                )
            )
        costs = [i.cost_micros for i in images]
        total = (
            sum(c for c in costs if c is not None) if all(c is not None for c in costs) else None
        )
        notices = (
            (f"{failures} of {task.request.number_results} images failed",) if failures else ()
        )
        return GenerationResult(images=tuple(images), cost_micros=total, notices=notices)

    async def _image_bytes(self, item: ResultItem) -> bytes:
        if item.image_base64:
            return base64.b64decode(item.image_base64)
        if item.image_data_uri:
            return base64.b64decode(item.image_data_uri.split(",", 1)[1])
        assert item.image_url is not None
        return await download_image(
            self._client,
            item.image_url,
            provider=PROVIDER,
            attempts=self._attempts,
            retry_budget=self._retry_timeout,
        )

    async def _call(
        self, tasks: list[dict[str, Any]] | bytes, refused_statuses: tuple[int, ...] | None = None
    ) -> Envelope:
        """POST one task array, retrying retryable failures (honouring Retry-After).

        ``refused_statuses``: for the create, 429 only: the taskUUID is ours, so after a 5xx
        the task may exist, and the job stays here (polled, never sent elsewhere); a create
        repeated after a lost answer is answered ``conflictTaskUUID`` and polled. None for
        polls."""
        return await with_retries(
            lambda: self._post_once(tasks),
            attempts=self._attempts,
            retry_budget=self._retry_timeout,
            refused_statuses=refused_statuses,
        )

    async def _post_once(self, tasks: list[dict[str, Any]] | bytes) -> Envelope:
        """One POST of a task array (or its JSON, already encoded)."""
        response = await send(
            self._client,
            "POST",
            self._api_url,
            provider=PROVIDER,
            content=tasks if isinstance(tasks, bytes) else json.dumps(tasks).encode(),
            headers={
                "Authorization": f"Bearer {self._api_key}",
                "Content-Type": "application/json",
            },
        )
        try:
            envelope = (
                Envelope.model_validate_json(response.content) if response.content else Envelope()
            )
        except ValidationError as exc:
            if response.status_code >= 500:
                raise ProviderUnavailable(
                    PROVIDER, f"Runware HTTP {response.status_code}", response.status_code
                ) from exc
            raise ProviderProtocolError(
                PROVIDER,
                f"unreadable Runware answer (HTTP {response.status_code})",
                response.status_code,
            ) from exc
        if is_conflict(envelope.errors):
            raise _Conflict()
        if any(e.code.lower().endswith("notfound") for e in envelope.errors):
            raise _NotFound()
        if response.status_code >= 400:
            raise error_from_status(
                response.status_code,
                envelope.errors,
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if envelope.errors and not envelope.data:
            raise error_from_item(envelope.errors[0], response.status_code)
        return envelope


class _Conflict(Exception):
    """``conflictTaskUUID``: the task exists already; poll it."""


class _NotFound(Exception):
    """``taskNotFound`` (or another ``*NotFound``) from getResponse."""
