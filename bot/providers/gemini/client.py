"""The Gemini API provider: one blocking ``generateContent`` call per image, via google-genai.

Protocol: shared/reference/provider-apis.md §4. The SDK builds the request, sends the key as
``x-goog-api-key`` and raises ``errors.APIError`` for 4xx/5xx; bananabot gives it an httpx
client (so the SDK neither picks aiohttp, whose connection-error path sleeps and resends a
paid call on its own, nor opens a second HTTP stack), turns the SDK's own retries off and
reads the raw body (:mod:`.wire`). ``generateContent`` has no task id and no idempotency key
(reliability-security-perf.md §2.2), so a call whose outcome is unknown (5xx, read timeout,
dropped connection) is never repeated: only 429 and connect failures are retried.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from types import TracebackType

import httpx
import stamina
from google import genai
from google.genai import client as genai_client
from google.genai import errors, types

from bot.errors import (
    ConfigurationError,
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from bot.interfaces import (
    GeneratedImage,
    GenerationResult,
    GenerationTask,
    ProviderCapabilities,
    TaskIdCallback,
)
from bot.providers.gemini.errors import error_from_api, error_from_transport
from bot.providers.gemini.translate import (
    DEFAULT_MODEL_IDS,
    MAX_REFERENCES,
    PROVIDER,
    GeminiCall,
    GeneratedPart,
    build_call,
    ignored_field_notices,
    parse_response,
    split_base_url,
)

__all__ = ["GeminiProvider"]

log = logging.getLogger(__name__)

_SDK_SWITCHES = {
    # The SDK otherwise parses the body into its own types (warning on enum values it does
    # not know); bananabot reads the raw JSON with its own vendor models instead.
    "should_return_http_response": True,
    # Exactly one HTTP request per call: no continuation hops, no function-calling loop.
    "automatic_continuation": False,
    "automatic_function_calling": types.AutomaticFunctionCallingConfig(disable=True),
}


def _refused(error: ProviderError) -> bool:
    """The call certainly made nothing: rate limited, or it never reached Google."""
    return isinstance(error, ProviderRateLimited) or (
        isinstance(error, ProviderUnavailable) and not error.sent
    )


class GeminiProvider:
    """Nano Banana Pro / Nano Banana 2 through the Gemini API (google-genai, async).

    Capabilities: both models, 14 inline references; ``reports_cost=False`` (the API reports
    tokens, not dollars, so the core settles at its estimate); ``resumable=False`` (one
    blocking call, nothing to poll).

    Args:
        api_key: ``GEMINI_API_KEY``; sent only as ``x-goog-api-key`` to ``base_url``.
        base_url: ``GEMINI_API_URL``: ``https://host/`` or ``https://host/v1beta``; None is
            Google's endpoint.
        model_ids: neutral model name -> Gemini model id (vendors rename models).
        client: an httpx client to send through (its pool is shared; it is not closed
            here). None: the provider makes one and :meth:`aclose` closes it.
        timeout: seconds one ``generateContent`` call may take (also sent to Google as
            ``X-Server-Timeout``); §5: at least 120 s for 4K.
        attempts: tries per image when the request certainly did not run (429, connect).
        deadline: seconds a whole generation (every image, waits included) may take.
        concurrency: calls in flight at once for one generation of several images.
        max_retry_wait: longest wait, seconds, for a 429's ``RetryInfo``; longer gives up.
        retry_wait_initial: first backoff, seconds, when Google names no delay.

    Raises:
        ConfigurationError: an empty key, or a base URL that is not http(s).
    """

    name = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model_ids: Mapping[str, str] = DEFAULT_MODEL_IDS,
        client: httpx.AsyncClient | None = None,
        timeout: float = 300.0,
        attempts: int = 3,
        deadline: float = 600.0,
        concurrency: int = 4,
        max_retry_wait: float = 60.0,
        retry_wait_initial: float = 1.0,
    ) -> None:
        if not api_key.strip():
            # The SDK would silently fall back to GOOGLE_API_KEY / GEMINI_API_KEY.
            raise ConfigurationError("GEMINI_API_KEY is empty")
        sdk_base_url, api_version = split_base_url(base_url)
        self._model_ids = dict(model_ids)
        self.capabilities = ProviderCapabilities(
            models=frozenset(self._model_ids),
            max_references=MAX_REFERENCES,
            inline_references=True,
            reports_cost=False,
            resumable=False,
            nsfw_flag=False,
        )
        self._own_http = client is None
        self._http = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=False
        )
        self._sdk = genai.Client(
            api_key=api_key,
            vertexai=False,  # not GOOGLE_GENAI_USE_VERTEXAI from the environment
            # Explicit, so GOOGLE_GENAI_CLIENT_MODE cannot swap in the SDK's replay client.
            debug_config=genai_client.DebugConfig(
                client_mode=None, replays_directory=None, replay_id=None
            ),
            http_options=types.HttpOptions(
                base_url=sdk_base_url,
                api_version=api_version,
                timeout=max(1, round(timeout * 1000)),  # milliseconds
                retry_options=None,  # one attempt; retries are decided below
                httpx_async_client=self._http,
            ),
        )
        self._attempts = max(1, attempts)
        self._deadline = deadline
        self._concurrency = max(1, concurrency)
        self._max_retry_wait = max_retry_wait
        self._retry_wait_initial = retry_wait_initial

    async def __aenter__(self) -> GeminiProvider:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the SDK client, and the httpx client if this provider made it."""
        await self._sdk.aio.aclose()
        self._sdk.close()
        if self._own_http:
            await self._http.aclose()

    async def generate(self, task: GenerationTask, on_task_id: TaskIdCallback) -> GenerationResult:
        """Make ``number_results`` images, one ``generateContent`` call each.

        A synthetic task id is stored through ``on_task_id`` before the first paid call: a
        crash after it leaves a job with a task id on a non-resumable provider, which the
        worker refunds instead of requeueing (requeueing would pay Google twice).

        Returns:
            The images that came back (by the deadline), in order; a notice says how many
            failed and why.

        Raises:
            ProviderError: every call failed: the first failure, typed (safety, auth,
                rate limit, rejected, unavailable, protocol; timeout at the deadline).
            ReferenceImageError: a reference Gemini cannot read (before anything is sent).
        """
        request = task.request
        model_id = self._model_ids.get(request.model)
        if model_id is None:
            raise ProviderRejected(
                PROVIDER, f"no Gemini model id for {request.model}", status=0, parameter="model"
            )
        calls = [
            build_call(request, task.size, task.references, model_id=model_id, index=i)
            for i in range(request.number_results)
        ]
        task_id = f"gemini-{uuid.uuid4()}"
        await on_task_id(task_id)
        log.info(
            "gemini generate",
            extra={
                "job": task.job_id,
                "task_id": task_id,
                "model": model_id,
                "images": len(calls),
                "references": len(task.references),
            },
        )
        log.debug("gemini prompt", extra={"job": task.job_id, "prompt": request.prompt})
        outcomes = await self._run_all(calls, task.job_id)
        images = [
            GeneratedImage(data=o.data, seed=call.seed)
            for call, o in zip(calls, outcomes, strict=True)
            if isinstance(o, GeneratedPart)
        ]
        failures = [o for o in outcomes if isinstance(o, ProviderError)]
        if not images and all(_refused(f) for f in failures):
            # Every call was refused (429 RESOURCE_EXHAUSTED, or never connected): Google
            # generated nothing and bills nothing, so the job may go to another provider.
            raise ProviderUnavailable(
                PROVIDER, failures[0].message, failures[0].status, sent=False
            ) from failures[0]
        if not images:
            raise failures[0]
        notices = ignored_field_notices(request)
        if failures:
            notices += (f"{len(failures)} of {len(calls)} images failed ({failures[0].code}).",)
        return GenerationResult(images=tuple(images), cost_micros=None, notices=notices)

    async def resume(self, task: GenerationTask, task_id: str) -> GenerationResult:
        """Never possible: ``generateContent`` cannot be looked up after a restart.

        Raises:
            ProviderUnavailable: always; the outcome of the interrupted call is unknown, and
                calling again could pay twice (§2.2: refund, do not retry blindly).
        """
        raise ProviderUnavailable(
            PROVIDER, f"Gemini call {task_id} was interrupted; its outcome is unknown"
        )

    async def _run_all(
        self, calls: list[GeminiCall], job_id: str
    ) -> list[GeneratedPart | ProviderError]:
        """Run the calls, ``concurrency`` at a time, until the deadline.

        Each call ends in an image or its error: one failing does not cancel the others
        (paid for already), and images finished before the deadline are kept; only the
        calls still running then become :class:`ProviderTimeout`.
        """
        slots = asyncio.Semaphore(self._concurrency)
        deadline_at = asyncio.get_running_loop().time() + self._deadline

        async def one(call: GeminiCall) -> GeneratedPart | ProviderError:
            try:
                async with asyncio.timeout_at(deadline_at), slots:
                    return await self._call_with_retries(call, job_id)
            except TimeoutError:
                return ProviderTimeout(
                    PROVIDER, f"no result from Gemini within {self._deadline:g} s"
                )
            except ProviderError as exc:
                return exc

        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(call)) for call in calls]
        return [t.result() for t in tasks]

    def _backoff(self, exc: Exception) -> bool | float:
        """stamina hook: retry only what certainly never ran, honouring Google's delay."""
        if isinstance(exc, ProviderRateLimited) or (
            isinstance(exc, ProviderUnavailable) and not exc.sent
        ):
            wait = exc.retry_after
            if wait is None:
                return True
            return wait if wait <= self._max_retry_wait else False
        return False

    async def _call_with_retries(self, call: GeminiCall, job_id: str) -> GeneratedPart:
        async for attempt in stamina.retry_context(
            on=self._backoff,
            attempts=self._attempts,
            timeout=None,  # the deadline bounds the whole generation
            wait_initial=self._retry_wait_initial,
            wait_max=self._max_retry_wait,
        ):
            with attempt:
                return await self._call_once(call, job_id)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, call: GeminiCall, job_id: str) -> GeneratedPart:
        config = call.config.model_copy(update=_SDK_SWITCHES)
        try:
            response = await self._sdk.aio.models.generate_content(
                model=call.model, contents=call.contents, config=config
            )
        except errors.APIError as exc:
            raise error_from_api(exc) from exc
        except httpx.TransportError as exc:
            raise error_from_transport(exc) from exc
        body = response.sdk_http_response.body if response.sdk_http_response else None
        # A 4K answer is tens of MB of JSON and base64: decode it off the event loop.
        part = await asyncio.to_thread(parse_response, body)
        usage = part.usage
        log.info(
            "gemini image",
            extra={
                "job": job_id,
                "model": call.model,
                "mime_type": part.mime_type,
                "bytes": len(part.data),
                "prompt_tokens": usage.prompt_token_count if usage else None,
                "output_tokens": usage.candidates_token_count if usage else None,
                "images_in_answer": part.images_in_answer,
            },
        )
        return part
