"""Local emulator of Runware's REST API for Nano Banana Pro (google:4@2) and Nano Banana 2 (4@3).

An aiohttp app on 127.0.0.1 (port 0 by default) that speaks the wire format of
provider-apis.md §1 and the seed pages (seeds/000 Nano Banana Pro, seeds/001 Nano Banana 2):

* ``POST /`` (alias ``/v1``) with ``Authorization: Bearer <key>`` and a JSON array of tasks;
* ``imageInference`` validated by :mod:`tests.fakes.runware_rules` (size tables, unknown
  fields, prompt length, references ...), answered ``sync`` or ``async`` + ``getResponse``;
* real images drawn with Pillow, served at ``GET /image/<imageUUID>.<ext>``;
* failure injection (HTTP statuses, dropped connections, hangs, malformed bodies, safety
  blocks, 402) and recording (requests, tasks, polls, charges) for assertions.

Usage::

    async with RunwareEmulator(api_key="test-key") as emu:
        emu.base_url  # "http://127.0.0.1:<port>/"

or as a process: ``python -m tests.fakes.runware --port 0 --api-key K`` prints
``listening on http://127.0.0.1:PORT/`` and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import io
import json
import math
import random
import signal
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal

from aiohttp import web
from PIL import Image, ImageDraw

from tests.fakes.runware_rules import (
    MAX_SEED,
    MODELS,
    ModelSpec,
    RuleError,
    classify_reference,
    is_uuid,
    price_per_image,
    validate_get_response,
    validate_image_inference,
)

__all__ = [
    "GROUNDED_SEARCH_MARKER",
    "NSFW_MARKER",
    "SAFETY_BLOCK_MARKER",
    "Charge",
    "Fault",
    "RecordedRequest",
    "RunwareEmulator",
    "StoredImage",
    "main",
    "render_image",
]

SAFETY_BLOCK_MARKER: Final = "safety-block-test"
"""A prompt containing this ends its task with ``contentPolicyViolation`` (never charged)."""
NSFW_MARKER: Final = "nsfw-test"
"""A prompt containing this yields results flagged ``NSFWContent: true``."""
GROUNDED_SEARCH_MARKER: Final = "grounded-search-test"
"""With webSearch/imageSearch on, a prompt containing this counts as grounded (NB2 +$0.14)."""

_FORMATS: Final[Mapping[str, tuple[str, str, str]]] = {
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}
_DEFAULT_CODES: Final[Mapping[int, str]] = {
    400: "invalidRequestBody",
    401: "invalidApiKey",
    402: "insufficientCredits",
    403: "forbidden",
    404: "notFound",
    408: "timeoutProvider",
    429: "rateLimitExceeded",
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "timeoutProvider",
}
_DETAILED_DRAWING_MAX_PIXELS: Final = 4_500_000
_MAX_BODY_BYTES: Final = 512 * 1024 * 1024  # 14 references of 20 MB as base64 fit


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the emulator received.

    Attributes:
        method: ``"POST"`` or ``"GET"``.
        path: Request path, e.g. ``"/"`` or ``"/image/<uuid>.jpg"``.
        headers: Request headers (last value wins for repeated names).
        body: The parsed JSON body, or None when absent or not JSON.
        raw: The raw body bytes.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw: bytes


@dataclass(frozen=True)
class Charge:
    """What the emulator billed for one created ``imageInference`` task.

    Attributes:
        task_uuid: The task's taskUUID.
        model: ``google:4@2`` or ``google:4@3``.
        images: numberResults of the task.
        cost: Total USD for the task (per-image cost x images, 5 decimals); 0.0 if blocked.
        blocked: True when the task ended with ``contentPolicyViolation``.
    """

    task_uuid: str
    model: str
    images: int
    cost: float
    blocked: bool


@dataclass(frozen=True)
class StoredImage:
    """A generated image kept in memory and served at ``/image/<image_uuid>.<ext>``."""

    image_uuid: str
    ext: str
    content_type: str
    width: int
    height: int
    data: bytes


@dataclass
class Fault:
    """One injected failure, consumed by the next matching ``POST`` (see ``fail_next`` & co).

    Attributes:
        kind: ``"status"`` (answer ``status`` with an errors envelope), ``"drop"`` (close the
            connection without an answer), ``"hang"`` (wait ``seconds`` before answering) or
            ``"malformed"`` (answer HTTP 200 with ``body`` verbatim; nothing is processed).
        status: HTTP status for ``"status"`` faults.
        code: Runware error code; defaults by status (429 ``rateLimitExceeded`` ...).
        message: Error message.
        retry_after: Seconds for the ``Retry-After`` header (rounded up).
        seconds: How long a ``"hang"`` lasts.
        process_first: For drop/hang: handle the request (create the task) before failing.
        task_type: Only requests carrying a task of this taskType consume the fault.
        body: The raw answer of a ``"malformed"`` fault.
    """

    kind: Literal["status", "drop", "hang", "malformed"]
    status: int = 500
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    process_first: bool = False
    task_type: str | None = None
    body: str = ""


@dataclass
class _Task:
    body: dict[str, Any]
    spec: ModelSpec
    width: int
    height: int
    seeds: list[int]
    per_image_cost: float
    nsfw: bool
    blocked: bool
    ready_at: float
    polls_needed: int
    processing_answered: int = 0
    items: list[dict[str, Any]] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def uuid(self) -> str:
        return str(self.body["taskUUID"])


@dataclass
class _Outcome:
    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


def _error(
    code: str,
    message: str,
    *,
    parameter: str | None = None,
    task_type: str | None = None,
    task_uuid: object = None,
) -> dict[str, Any]:
    """One entry of Runware's ``errors`` envelope (provider-apis.md §1.7)."""
    entry: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        entry["parameter"] = parameter
    if task_type is not None:
        entry["taskType"] = task_type
    if isinstance(task_uuid, str):
        entry["taskUUID"] = task_uuid
    return entry


def _rule_error(rule: RuleError, task: Mapping[str, Any], task_type: str) -> dict[str, Any]:
    return _error(
        rule.code,
        rule.message,
        parameter=rule.parameter,
        task_type=task_type,
        task_uuid=task.get("taskUUID"),
    )


def render_image(width: int, height: int, seed: int, output_format: str, quality: int) -> bytes:
    """Draw a deterministic picture of exactly ``width`` x ``height`` pixels and encode it.

    Large images are a plain colour so 4K outputs encode in well under a second.

    Args:
        width: Pixels.
        height: Pixels.
        seed: Picks the colours and shapes.
        output_format: ``JPG``, ``PNG`` or ``WEBP``.
        quality: 20..99, used for JPG and WEBP.
    """
    rng = random.Random(seed)
    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    image = Image.new("RGB", (width, height), colour)
    if width * height <= _DETAILED_DRAWING_MAX_PIXELS:
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.randrange(width), rng.randrange(height)
            x1, y1 = rng.randrange(x0, width + 1), rng.randrange(y0, height + 1)
            fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            draw.ellipse((x0, y0, x1, y1), fill=fill)
    pil_format = _FORMATS[output_format][0]
    options: dict[str, Any] = {"quality": quality}
    if pil_format == "PNG":
        options = {"compress_level": 1}
    elif pil_format == "WEBP":
        options["method"] = 0
    buffer = io.BytesIO()
    image.save(buffer, pil_format, **options)
    return buffer.getvalue()


def _decoded_size(text: str) -> tuple[int, int] | None:
    payload = text.split(",", 1)[1] if text.startswith("data:") else text
    try:
        with Image.open(io.BytesIO(base64.b64decode(payload, validate=True))) as image:
            return image.size
    except (binascii.Error, ValueError, OSError):
        return None


class RunwareEmulator:
    """Runware REST emulator for Nano Banana Pro / Nano Banana 2, served on loopback.

    Failure injection (plain attributes and methods):
        * :meth:`fail_next` - next N POSTs answer an HTTP status with an errors envelope
          (429 carries ``Retry-After``).
        * :meth:`drop_next` - next N POSTs get their connection closed without an answer.
        * :meth:`hang_next` - next N POSTs wait before answering (client timeout tests).
        * :meth:`malformed_next` - next N POSTs get HTTP 200 with a given (broken) body.
        * :meth:`release_all` - tasks created so far finish at their next poll.
        * ``insufficient_credits`` - while True, imageInference answers 402
          ``insufficientCredits`` and creates nothing.
        * ``processing_delay`` / ``processing_polls`` - how long async tasks stay processing.
        * ``charge_grounded_search`` - bill NB2's grounded-search surcharge whenever
          webSearch/imageSearch is on (seeds/001 example "Grounded Travel Poster" shows it is
          not billed when the model did not actually search, so it is off by default).
        * Prompt markers :data:`SAFETY_BLOCK_MARKER`, :data:`NSFW_MARKER`,
          :data:`GROUNDED_SEARCH_MARKER`.

    Recording (for assertions):
        * ``requests`` - every :class:`RecordedRequest`, image GETs included.
        * ``tasks`` - taskUUID -> original task body of every created imageInference task.
        * ``polls`` - taskUUID -> number of getResponse polls received.
        * ``charges`` - one :class:`Charge` per created task.
        * ``images`` - imageUUID -> :class:`StoredImage`.
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_delay: float = 0.0,
        processing_polls: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        """Build a stopped emulator; ``async with`` (or :meth:`start`) serves it.

        Args:
            api_key: The only key accepted in ``Authorization: Bearer <key>``.
            host: Interface to bind; keep loopback.
            port: TCP port, 0 for any free one (read it back from :attr:`port`).
            processing_delay: Seconds before an async task may complete (sync tasks wait too).
            processing_polls: getResponse polls answered ``processing`` before success.
            rng: Source of random seeds (unsigned 32-bit) when a task sends none.
        """
        self.api_key = api_key
        self.host = host
        self.processing_delay = processing_delay
        self.processing_polls = processing_polls
        self.insufficient_credits = False
        self.charge_grounded_search = False
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.charges: list[Charge] = []
        self.images: dict[str, StoredImage] = {}
        self._requested_port = port
        self._rng = rng or random.Random()
        self._state: dict[str, _Task] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> RunwareEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve; :attr:`base_url` is valid afterwards."""
        app = web.Application(client_max_size=_MAX_BODY_BYTES)
        for path in ("/", "/v1", "/v1/"):
            app.router.add_post(path, self._handle_api)
        app.router.add_get("/image/{name}", self._handle_image)
        self._closing.clear()
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving; pending hangs and processing delays end at once."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        """The bound TCP port. Raises RuntimeError before :meth:`start`."""
        if self._port is None:
            raise RuntimeError("RunwareEmulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/``: the value for RUNWARE_API_URL."""
        return f"http://{self.host}:{self.port}/"

    def image_url(self, image: StoredImage) -> str:
        """Where the emulator serves ``image``."""
        return f"{self.base_url}image/{image.image_uuid}.{image.ext}"

    # -- failure injection -----------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        count: int = 1,
        *,
        code: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        task_type: str | None = None,
    ) -> None:
        """Make the next ``count`` matching POSTs answer ``status`` with an errors envelope.

        Nothing is created or charged. A 429 gets ``Retry-After`` (``retry_after``, default 1 s).

        Args:
            status: HTTP status, e.g. 429, 500, 503.
            count: How many requests fail.
            code: Runware error code (default by status: ``rateLimitExceeded``,
                ``internalServerError``, ``serviceUnavailable`` ...).
            message: Error message.
            retry_after: Seconds for ``Retry-After``; sent for any status when given.
            task_type: Only requests with a task of this type (e.g. ``"getResponse"``) match.
        """
        if status == 429 and retry_after is None:
            retry_after = 1.0
        for _ in range(count):
            self.faults.append(
                Fault(
                    "status",
                    status=status,
                    code=code,
                    message=message,
                    retry_after=retry_after,
                    task_type=task_type,
                )
            )

    def drop_next(
        self, count: int = 1, *, process_first: bool = False, task_type: str | None = None
    ) -> None:
        """Close the connection of the next ``count`` matching POSTs without answering.

        With ``process_first`` the request is fully handled first (the task is created and
        charged), like a response lost on the way back; a retry then meets ``conflictTaskUUID``.
        """
        for _ in range(count):
            self.faults.append(Fault("drop", process_first=process_first, task_type=task_type))

    def hang_next(
        self,
        seconds: float,
        count: int = 1,
        *,
        process_first: bool = False,
        task_type: str | None = None,
    ) -> None:
        """Delay the answer to the next ``count`` matching POSTs by ``seconds``.

        The request is handled after the wait, or before it with ``process_first``. A client
        that gives up meanwhile still leaves the task created (the server did get it).
        """
        for _ in range(count):
            self.faults.append(
                Fault("hang", seconds=seconds, process_first=process_first, task_type=task_type)
            )

    def malformed_next(self, body: str, count: int = 1, *, task_type: str | None = None) -> None:
        """Answer the next ``count`` matching POSTs HTTP 200 with ``body`` verbatim (invalid
        JSON, or JSON that is not Runware's envelope); the request is not processed."""
        for _ in range(count):
            self.faults.append(Fault("malformed", body=body, task_type=task_type))

    def release_all(self) -> None:
        """Let every created task finish at its next ``getResponse`` (ends slow mode for them)."""
        for task in self._state.values():
            task.ready_at = 0.0
            task.polls_needed = 0

    def _take_fault(self, body: Any) -> Fault | None:
        tasks = body if isinstance(body, list) else []
        types = {task.get("taskType") for task in tasks if isinstance(task, dict)}
        for index, fault in enumerate(self.faults):
            if fault.task_type is None or fault.task_type in types:
                return self.faults.pop(index)
        return None

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):  # waits in the handler's own task
                    await self._closing.wait()

    # -- HTTP handlers ---------------------------------------------------------------------

    async def _handle_image(self, request: web.Request) -> web.Response:
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), None, b"")
        )
        stem, _, ext = request.match_info["name"].partition(".")
        image = self.images.get(stem)
        if image is None or image.ext != ext:
            raise web.HTTPNotFound()
        return web.Response(body=image.data, content_type=image.content_type)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
            parsed = True
        except ValueError:
            body, parsed = None, False
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.headers), body, raw)
        )
        fault = self._take_fault(body)
        if fault is not None and fault.kind == "status":
            return self._fault_response(fault, body)
        if fault is not None and fault.kind == "malformed":
            return web.Response(text=fault.body, content_type="application/json")
        if fault is not None and not fault.process_first:
            if fault.kind == "drop":
                return self._drop(request)
            await self._pause(fault.seconds)
        response = await self._respond(request, body, parsed)
        if fault is not None and fault.process_first:
            if fault.kind == "drop":
                return self._drop(request)
            await self._pause(fault.seconds)
        return response

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    @staticmethod
    def _fault_response(fault: Fault, body: Any) -> web.Response:
        first = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else {}
        code = fault.code or _DEFAULT_CODES.get(fault.status, "unknownError")
        message = fault.message or f"Injected failure: HTTP {fault.status} ({code})."
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(math.ceil(fault.retry_after))
        entry = _error(
            code, message, task_type=first.get("taskType"), task_uuid=first.get("taskUUID")
        )
        return web.json_response({"errors": [entry]}, status=fault.status, headers=headers)

    def _authorized(self, request: web.Request, body: Any) -> bool:
        """provider-apis.md §1.1: ``Authorization: Bearer`` or a leading authentication task."""
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and key.strip() == self.api_key:
            return True
        return (
            isinstance(body, list)
            and bool(body)
            and isinstance(body[0], dict)
            and body[0].get("taskType") == "authentication"
            and body[0].get("apiKey") == self.api_key
        )

    async def _respond(self, request: web.Request, body: Any, parsed: bool) -> web.Response:
        if not self._authorized(request, body):
            entry = _error(
                "invalidApiKey",
                "Invalid API key. Get one at https://my.runware.ai/signup",
                parameter="apiKey",
                task_type="authentication",
            )
            return web.json_response({"errors": [entry]}, status=401)
        if (
            not parsed
            or not isinstance(body, list)
            or not body
            or not all(isinstance(task, dict) for task in body)
        ):
            entry = _error(
                "invalidRequestBody",
                "The request body must be a non-empty JSON array of task objects.",
                parameter="body",
            )
            return web.json_response({"errors": [entry]}, status=400)
        outcome = _Outcome()
        for task in body:
            await self._dispatch(task, outcome)
        envelope: dict[str, Any] = {}
        if outcome.data or not outcome.errors:
            envelope["data"] = outcome.data
        if outcome.errors:
            envelope["errors"] = outcome.errors
        status = 200 if outcome.data or not outcome.errors else outcome.status
        return web.json_response(envelope, status=status)

    async def _dispatch(self, task: dict[str, Any], outcome: _Outcome) -> None:
        task_type = task.get("taskType")
        if task_type == "authentication":
            return
        if task_type == "imageInference":
            await self._image_inference(task, outcome)
        elif task_type == "getResponse":
            await self._get_response(task, outcome)
        else:
            code = "missingTaskType" if task_type is None else "invalidTaskType"
            outcome.errors.append(
                _error(
                    code,
                    f"Unsupported taskType {task_type!r}.",
                    parameter="taskType",
                    task_uuid=task.get("taskUUID"),
                )
            )
            outcome.status = 400

    # -- imageInference ----------------------------------------------------------------------

    async def _image_inference(self, body: dict[str, Any], outcome: _Outcome) -> None:
        rule = validate_image_inference(body)
        if rule is None and body["taskUUID"] in self._state:
            # provider-apis.md §1.7: a re-submitted taskUUID answers conflictTaskUUID.
            rule = RuleError(
                "conflictTaskUUID",
                f"Task {body['taskUUID']} already exists; poll it with getResponse.",
                "taskUUID",
            )
        if rule is not None:
            outcome.errors.append(_rule_error(rule, body, "imageInference"))
            outcome.status = 400
            return
        if self.insufficient_credits:
            outcome.errors.append(
                _error(
                    "insufficientCredits",
                    "Insufficient credits to run this task. Top up at https://my.runware.ai",
                    task_type="imageInference",
                    task_uuid=body["taskUUID"],
                )
            )
            outcome.status = 402
            return
        task = self._create(body)
        if body.get("deliveryMethod", "sync") == "async":
            outcome.data.append({"taskType": "imageInference", "taskUUID": task.uuid})
            return
        await self._pause(task.ready_at - time.monotonic())
        items = await self._complete(task)
        if task.blocked:
            outcome.errors.extend(
                _error(
                    item["error"]["code"],
                    item["error"]["message"],
                    parameter="positivePrompt",
                    task_type="imageInference",
                    task_uuid=task.uuid,
                )
                for item in items[:1]
            )
            outcome.status = 400
        else:
            outcome.data.extend({k: v for k, v in item.items() if k != "status"} for item in items)

    def _create(self, body: dict[str, Any]) -> _Task:
        """Register and charge a validated task exactly once."""
        spec = MODELS[body["model"]]
        refs: list[str] = body.get("inputs", {}).get("referenceImages", [])
        if "width" in body:
            width, height = int(body["width"]), int(body["height"])
        else:
            # References alone: follow the first one's aspect ratio at 1K (both models have 1K).
            resolution = body.get("resolution", "1K")
            width, height = spec.size_for(resolution, self._aspect_of(refs[0]) if refs else None)
        tier = spec.tier_of(width, height)
        assert tier is not None
        count = int(body.get("numberResults", 1))
        if "seed" in body:
            seeds = [(int(body["seed"]) + i) % (MAX_SEED + 1) for i in range(count)]
        else:
            base = self._rng.randrange(2**32)
            seeds = [(base + i) % 2**32 for i in range(count)]
        prompt: str = body["positivePrompt"]
        google = body.get("providerSettings", {}).get("google", {})
        grounded = bool(google.get("webSearch") or google.get("imageSearch")) and (
            self.charge_grounded_search or GROUNDED_SEARCH_MARKER in prompt
        )
        blocked = SAFETY_BLOCK_MARKER in prompt
        task = _Task(
            body=body,
            spec=spec,
            width=width,
            height=height,
            seeds=seeds,
            per_image_cost=price_per_image(spec, tier, len(refs), grounded),
            nsfw=NSFW_MARKER in prompt,
            blocked=blocked,
            ready_at=time.monotonic() + self.processing_delay,
            polls_needed=self.processing_polls,
        )
        self._state[task.uuid] = task
        self.tasks[task.uuid] = body
        cost = 0.0 if blocked else round(task.per_image_cost * count, 5)
        self.charges.append(Charge(task.uuid, spec.air, count, cost, blocked))
        return task

    def _aspect_of(self, reference: str) -> float | None:
        """Width/height of a reference, when the emulator can know it without the network."""
        kind = classify_reference(reference)
        size: tuple[int, int] | None = None
        if kind in ("dataURI", "base64"):
            size = _decoded_size(reference)
        else:
            stem = reference.rsplit("/", 1)[-1].split(".", 1)[0]
            local = reference.startswith(self.base_url) or kind == "uuid"
            image = self.images.get(stem) if local and is_uuid(stem) else None
            size = (image.width, image.height) if image else None
        return size[0] / size[1] if size and size[1] else None

    async def _complete(self, task: _Task) -> list[dict[str, Any]]:
        """Finish ``task`` once (images drawn off the event loop) and return its items."""
        async with task.lock:
            if task.items is None:
                task.items = await self._make_items(task)
            return task.items

    async def _make_items(self, task: _Task) -> list[dict[str, Any]]:
        if task.blocked:
            error = {
                "code": "contentPolicyViolation",
                "message": "The prompt was blocked by the provider's content policy.",
            }
            return [
                {
                    "taskType": "imageInference",
                    "taskUUID": task.uuid,
                    "status": "error",
                    "error": error,
                }
                for _ in task.seeds
            ]
        output_format = task.body.get("outputFormat", "JPG")
        _, ext, content_type = _FORMATS[output_format]
        quality = int(task.body.get("outputQuality", 95))
        output_type = task.body.get("outputType", "URL")
        items = []
        for seed in task.seeds:
            data = await asyncio.to_thread(
                render_image, task.width, task.height, seed, output_format, quality
            )
            image = StoredImage(str(uuid.uuid4()), ext, content_type, task.width, task.height, data)
            self.images[image.image_uuid] = image
            item: dict[str, Any] = {
                "taskType": "imageInference",
                "taskUUID": task.uuid,
                "status": "success",
                "imageUUID": image.image_uuid,
            }
            encoded = base64.b64encode(data).decode("ascii")
            if output_type == "base64Data":
                item["imageBase64Data"] = encoded
            elif output_type == "dataURI":
                item["imageDataURI"] = f"data:{content_type};base64,{encoded}"
            else:
                item["imageURL"] = self.image_url(image)
            item["seed"] = seed
            item["NSFWContent"] = task.nsfw
            if task.body.get("includeCost") is True:
                item["cost"] = task.per_image_cost
            items.append(item)
        return items

    # -- getResponse -----------------------------------------------------------------------

    async def _get_response(self, body: dict[str, Any], outcome: _Outcome) -> None:
        """provider-apis.md §1.5: one item per result, ``processing`` until done."""
        rule = validate_get_response(body)
        if rule is not None:
            outcome.errors.append(_rule_error(rule, body, "getResponse"))
            outcome.status = 400
            return
        task_uuid: str = body["taskUUID"]
        self.polls[task_uuid] = self.polls.get(task_uuid, 0) + 1
        task = self._state.get(task_uuid)
        if task is None:
            outcome.errors.append(
                _error(
                    "taskNotFound",
                    f"Task {task_uuid} was not found.",
                    parameter="taskUUID",
                    task_type="getResponse",
                    task_uuid=task_uuid,
                )
            )
            outcome.status = 400
            return
        if task.items is None and (
            task.processing_answered < task.polls_needed or time.monotonic() < task.ready_at
        ):
            task.processing_answered += 1
            outcome.data.extend(
                {"taskType": "imageInference", "taskUUID": task_uuid, "status": "processing"}
                for _ in task.seeds
            )
            return
        outcome.data.extend(await self._complete(task))


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the emulator as a process: ``python -m tests.fakes.runware --port N --api-key K``.

    Prints ``listening on http://127.0.0.1:PORT/`` (flushed) and serves until SIGINT/SIGTERM.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--processing-delay", type=float, default=0.0)
    parser.add_argument("--processing-polls", type=int, default=1)
    args = parser.parse_args(argv)

    async def serve() -> None:
        async with RunwareEmulator(
            args.api_key,
            port=args.port,
            processing_delay=args.processing_delay,
            processing_polls=args.processing_polls,
        ) as emulator:
            print(f"listening on {emulator.base_url}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
