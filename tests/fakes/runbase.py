"""Local emulator of Runbase's run API (runbase.net/api/v1) for Nano Banana Pro and Nano Banana 2.

An aiohttp app on 127.0.0.1 (port 0) speaking seeds/003_*, seeds/004_* and provider-apis.md §3:

* ``POST /api/v1/runs`` with ``Authorization: Bearer`` and ``{"model", "input": {prompt,
  aspect_ratio, resolution, image_urls}}``; anything else, bad enum values or a missing
  prompt answer 400 ``{"error": {"message", "code"}}`` (``invalid_input`` ...).
* ``GET /api/v1/runs/{id}``: ``pending`` -> ``running`` -> ``succeeded`` with
  ``output.urls`` (real images served at ``/files/...``), 404 ``run_not_found``.
* The documented limit, 20 requests per 10 s per key across create and poll (§3.5), is
  enforced over a sliding window (429 ``RATE_LIMITED``) and recorded (``max_in_window``).

:class:`LoopbackEmulator` is the machinery both run-API emulators share (this one and
:class:`tests.fakes.runflow.RunflowEmulator`): lifecycle, recording, failure injection, run
progress, file and reference-image routes. Time is the event loop's clock, so a test can
run both fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self

from aiohttp import web

from tests.fakes.provider import png_bytes
from tests.fakes.runware import render_image
from tests.fakes.runware_rules import MODELS, NANO_BANANA_2, NANO_BANANA_PRO

__all__ = [
    "HTTP_URL",
    "SAFETY_BLOCK_MARKER",
    "EmulatedRun",
    "Fault",
    "LoopbackEmulator",
    "RecordedRequest",
    "RunbaseEmulator",
    "loop_time",
    "render",
    "size_for",
]

SAFETY_BLOCK_MARKER: Final = "safety-block-test"
"""A prompt containing this ends its run ``failed`` with a content-policy error."""
HTTP_URL: Final = re.compile(r"^https?://[^\s/?#]+\S*$")

Target = Literal["create", "poll"]
Work = Callable[[web.Request, Any], Awaitable[web.Response]]


@dataclass(frozen=True)
class RecordedRequest:
    """One API request: method, path, headers, parsed JSON body (or None), loop time ``at``."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    at: float


@dataclass
class Fault:
    """One injected failure for the next API request matching ``on`` (create, poll, any).

    ``status``: an error body; ``malformed``: HTTP 200 that is no run (``body`` verbatim, by
    default ``{"unexpected": true}``); ``drop``: connection closed; ``hang``: answer after
    ``seconds``. ``process_first`` handles the request before dropping or hanging, like an
    answer lost on its way back.
    """

    kind: Literal["status", "malformed", "drop", "hang"]
    status: int = 0
    code: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0
    process_first: bool = False
    on: Target | None = None
    body: str = '{"unexpected": true}'


@dataclass
class EmulatedRun:
    """A created run (also its charge): create body, model, images, cost in USD (None if
    unpriced, 0 when blocked by the safety marker) and progress."""

    id: str
    model: str
    body: dict[str, Any]
    count: int
    cost: Decimal | None
    blocked: bool
    ready_at: float
    polls_needed: int
    answered: int = 0
    result: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def loop_time() -> float:
    """The running loop's clock (a test's fast clock speeds the emulators up too)."""
    return asyncio.get_running_loop().time()


def size_for(model: str, resolution: str, ratio: str | None) -> tuple[int, int]:
    """Google's width x height for ``model`` (Runware id), tier and ``W:H`` (None, auto: 1:1)."""
    aspect = None
    if ratio not in (None, "auto"):
        width, _, height = str(ratio).partition(":")
        aspect = int(width) / int(height)
    return MODELS[model].size_for(resolution, aspect)


def render(model: str, resolution: str, ratio: str | None, seed: int, fmt: str) -> bytes:
    """A real image (``fmt``: JPG, PNG or WEBP) at :func:`size_for`'s size."""
    return render_image(*size_for(model, resolution, ratio), seed, fmt, 90)


class LoopbackEmulator:
    """Shared machinery of the run-API emulators; subclasses add routes and error bodies.

    Injection: :meth:`fail_next`; ``processing_polls`` (polls answered
    not-ready first) and ``processing_delay`` (slow mode, loop seconds), ended for existing
    runs by :meth:`release_all`. Recording:
    ``requests`` (API calls), :attr:`runs`, ``polls`` (id -> count), :attr:`charges`,
    ``downloads`` (file GETs: their Authorization header).
    """

    prefix: ClassVar[str] = ""
    default_codes: ClassVar[Mapping[int, str]] = {}

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        processing_polls: int = 1,
        processing_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self.processing_polls = processing_polls
        self.processing_delay = processing_delay
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.polls: dict[str, int] = {}
        self.downloads: list[str | None] = []
        self.state: dict[str, EmulatedRun] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        self._port = port
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()

    async def __aenter__(self) -> Self:
        app = web.Application()
        self.add_routes(app)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/ref/{w:\\d+}x{h:\\d+}.png", self._reference)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self._port).start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- subclass hooks: routes, the vendor's error body, auth, rate gate ----------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error(self, status: int, code: str, message: str, **headers: str) -> web.Response:
        raise NotImplementedError

    def unauthorized(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        ok = scheme.lower() == "bearer" and key.strip() == self.api_key
        return None if ok else self.error(401, "UNAUTHORIZED", "Missing or invalid API key.")

    def gate(self) -> web.Response | None:
        return None

    # -- addresses and injection -----------------------------------------------------------------

    @property
    def root(self) -> str:
        """``http://127.0.0.1:<port>`` (valid once started)."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The API base URL (``RUNFLOW_API_URL`` / ``RUNBASE_API_URL``)."""
        return self.root + self.prefix

    def reference_url(self, width: int = 64, height: int = 32) -> str:
        """A link to a real PNG of ``width`` x ``height`` served by the emulator."""
        return f"{self.root}/ref/{width}x{height}.png"

    @property
    def runs(self) -> dict[str, dict[str, Any]]:
        """Run id -> create body, in creation order."""
        return {run.id: run.body for run in self.state.values()}

    @property
    def charges(self) -> list[EmulatedRun]:
        """One entry per created run (what it was billed: ``cost``, ``blocked``)."""
        return list(self.state.values())

    def publish(self, name: str, data: bytes, content_type: str) -> str:
        """Serve ``data`` at ``/files/<name>`` and return its URL."""
        self._files[name] = (data, content_type)
        return f"{self.root}/files/{name}"

    def fail_next(
        self,
        fault: int | Literal["malformed", "drop", "hang"],
        count: int = 1,
        *,
        code: str | None = None,
        retry_after: float | None = None,
        seconds: float = 0.0,
        process_first: bool = False,
        on: Target | None = None,
        body: str | None = None,
    ) -> None:
        """The next ``count`` requests matching ``on`` answer HTTP ``fault`` (429: Retry-After
        1 s unless given), or get a ``malformed`` 200 (``body`` verbatim when given), a
        ``drop`` or a ``hang`` of ``seconds``."""
        if fault == 429 and retry_after is None:
            retry_after = 1.0
        kind = "status" if isinstance(fault, int) else fault
        status = fault if isinstance(fault, int) else 0
        extra = {} if body is None else {"body": body}
        self.faults += [
            Fault(kind, status, code, retry_after, seconds, process_first, on, **extra)
            for _ in range(count)
        ]

    def release_all(self) -> None:
        """Let every run created so far finish at its next poll (ends slow mode for them)."""
        for run in self.state.values():
            run.ready_at = 0.0
            run.polls_needed = 0

    # -- request handling ------------------------------------------------------------------------

    async def handle(self, request: web.Request, target: Target, work: Work) -> web.StreamResponse:
        """Record, gate, apply the next fault, authenticate, then run ``work(request, body)``."""
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        at = loop_time()
        self.requests.append(
            RecordedRequest(request.method, request.path, request.headers, body, at)
        )
        refused = self.gate()
        if refused is not None:
            return refused
        fault = next((f for f in self.faults if f.on in (None, target)), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.kind == "status":
                wait = fault.retry_after
                extra = {} if wait is None else {"Retry-After": str(math.ceil(wait))}
                code = fault.code or self.default_codes.get(fault.status, "error")
                return self.error(fault.status, code, f"Injected HTTP {fault.status}.", **extra)
            if fault.kind == "malformed":
                return web.Response(text=fault.body, content_type="application/json")
        if fault is not None and not fault.process_first:
            if fault.kind == "drop":
                return self._drop(request)
            await self._pause(fault.seconds)
        refused = self.unauthorized(request)
        response = refused if refused is not None else await work(request, body)
        if fault is not None and fault.process_first:
            if fault.kind == "drop":
                return self._drop(request)
            await self._pause(fault.seconds)
        return response

    def new_run(
        self, run_id: str, model: str, body: dict[str, Any], count: int, cost: Decimal | None
    ) -> EmulatedRun:
        """Register and charge a validated run once; the safety marker blocks it (cost 0)."""
        prompt = body["input"]["prompt"]
        blocked = SAFETY_BLOCK_MARKER in prompt
        ready = loop_time() + self.processing_delay
        cost = Decimal(0) if blocked else cost
        run = EmulatedRun(run_id, model, body, count, cost, blocked, ready, self.processing_polls)
        self.state[run_id] = run
        return run

    def progress(self, run_id: str) -> tuple[EmulatedRun, bool] | None:
        """Count a poll of ``run_id``: (run, finished), or None for an unknown run."""
        run = self.state.get(run_id)
        if run is None:
            return None
        self.polls[run_id] = self.polls.get(run_id, 0) + 1
        if run.result is None and (run.answered < run.polls_needed or loop_time() < run.ready_at):
            run.answered += 1
            return run, False
        return run, True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # waits in the handler's own task
                await self._closing.wait()

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)

    async def _file(self, request: web.Request) -> web.Response:
        self.downloads.append(request.headers.get("Authorization"))
        found = self._files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1])

    async def _reference(self, request: web.Request) -> web.Response:
        width, height = int(request.match_info["w"]), int(request.match_info["h"])
        return web.Response(body=png_bytes(width, height), content_type="image/png")


# -- Runbase ---------------------------------------------------------------------------------------

_RATIOS: Final = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "auto")
# seeds/003_* and 004_* "Input Schema": aspect ratios per model; resolution 1K/2K/4K.
_MODELS: Final[Mapping[str, tuple[frozenset[str], str]]] = {
    "google/nano-banana-pro": (frozenset(_RATIOS), NANO_BANANA_PRO),
    "google/nano-banana-2": (frozenset({*_RATIOS, "1:4", "1:8", "4:1", "8:1"}), NANO_BANANA_2),
}
_INPUT: Final = frozenset({"prompt", "aspect_ratio", "resolution", "image_urls"})


def invalid_body(body: Any) -> tuple[str, str] | None:
    """The first violation as (code, message): seeds/003_*, 004_* schema, §3.4 codes."""
    if not isinstance(body, dict):
        return "invalid_json", "The body must be a JSON object."
    if "model" not in body or "input" not in body:
        return ("missing_model" if "model" not in body else "missing_input"), "Required."
    if set(body) - {"model", "input"}:
        return "invalid_input", f"Unknown fields: {sorted(set(body) - {'model', 'input'})}."
    if body["model"] not in _MODELS:
        return "model_not_found", f"No model {body['model']!r}."
    data = body["input"]
    if not isinstance(data, dict) or set(data) - _INPUT:
        return "invalid_input", f"input takes only {sorted(_INPUT)}."
    urls = data.get("image_urls", [])
    checks = {
        "prompt": isinstance(data.get("prompt"), str) and data["prompt"].strip() != "",
        "aspect_ratio": data.get("aspect_ratio", "auto") in _MODELS[body["model"]][0],
        "resolution": data.get("resolution", "1K") in ("1K", "2K", "4K"),
        "image_urls": isinstance(urls, list)
        and all(isinstance(u, str) and HTTP_URL.match(u) for u in urls),
    }
    bad = [name for name, ok in checks.items() if not ok]
    return ("invalid_input", f"Invalid {bad[0]}.") if bad else None


class RunbaseEmulator(LoopbackEmulator):
    """Runbase run API emulator (``async with RunbaseEmulator(api_key=...) as emu``).

    Beyond :class:`LoopbackEmulator`: ``insufficient_balance`` (402), ``spend_limit`` (403
    ``api_key_spend_limit_exceeded``) and ``usage_exceeded`` (429 ``USAGE_EXCEEDED``) on
    create; ``cost_usd`` (reported as ``costUsd``, [3P], when set); ``image_size`` (draw
    every image at this size, for load tests); ``rate_limit`` per ``rate_window`` seconds
    (20 per 10 s) with ``rate_limited`` (429s sent) and :attr:`max_in_window`.
    """

    prefix = "/api/v1"
    default_codes: ClassVar[Mapping[int, str]] = {429: "RATE_LIMITED", 500: "internal_error"}

    def __init__(self, api_key: str = "test-key", **options: Any) -> None:
        super().__init__(api_key, **options)
        self.insufficient_balance = False
        self.spend_limit = False
        self.usage_exceeded = False
        self.cost_usd: Decimal | None = None
        self.image_size: tuple[int, int] | None = None
        self.rate_limit = 20
        self.rate_window = 10.0
        self.rate_limited = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/runs", self._on_create)
        app.router.add_get("/api/v1/runs/{run_id}", self._on_poll)

    async def _on_create(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, "create", self._create)

    async def _on_poll(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, "poll", self._get)

    def error(self, status: int, code: str, message: str, **headers: str) -> web.Response:
        body = {"error": {"message": message, "code": code}}
        return web.json_response(body, status=status, headers=headers or None)

    def unauthorized(self, request: web.Request) -> web.Response | None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return self.error(401, "missing_api_key", "Missing API key.")
        if key.strip() != self.api_key:
            return self.error(401, "invalid_api_key", "Invalid, disabled or expired API key.")
        return None

    def gate(self) -> web.Response | None:
        """§3.5: at most ``rate_limit`` API requests (this one included) per ``rate_window``."""
        now = loop_time()
        recent = [r.at for r in self.requests if r.at > now - self.rate_window]
        if len(recent) <= self.rate_limit:
            return None
        self.rate_limited += 1
        wait = str(max(1, math.ceil(recent[0] + self.rate_window - now)))
        return self.error(429, "RATE_LIMITED", "Too many requests.", **{"Retry-After": wait})

    @property
    def max_in_window(self) -> int:
        """The most API requests received within any ``rate_window`` seconds."""
        times = [r.at for r in self.requests]
        counts = (
            sum(1 for t in times[i:] if t < s + self.rate_window) for i, s in enumerate(times)
        )
        return max(counts, default=0)

    async def _create(self, request: web.Request, body: Any) -> web.Response:
        invalid = invalid_body(body)
        if invalid is not None:
            return self.error(400, *invalid)
        if self.insufficient_balance:
            return self.error(402, "insufficient_balance", "Top up your credits.")
        if self.spend_limit:
            return self.error(403, "api_key_spend_limit_exceeded", "Spend cap reached.")
        if self.usage_exceeded:
            return self.error(429, "USAGE_EXCEEDED", "This key's quota is exhausted.")
        run = self.new_run(f"run_{uuid.uuid4().hex}", body["model"], body, 1, self.cost_usd)
        return web.json_response(self._view(run, "pending"))

    def _view(self, run: EmulatedRun, status: str) -> dict[str, Any]:
        view: dict[str, Any] = {"id": run.id, "status": status, "output": None, "error": None}
        if status == "succeeded":
            view["output"] = {"urls": run.result}
            if self.cost_usd is not None:
                view["costUsd"] = float(self.cost_usd)
        elif status == "failed":
            view["error"] = {"code": "content_policy_violation", "message": "Blocked by safety."}
        return view

    async def _get(self, request: web.Request, body: Any) -> web.Response:
        found = self.progress(request.match_info["run_id"])
        if found is None:
            return self.error(404, "run_not_found", "Run not found for this account.")
        run, finished = found
        if not finished:
            return web.json_response(self._view(run, "pending" if run.answered == 1 else "running"))
        if run.blocked:
            return web.json_response(self._view(run, "failed"))
        async with run.lock:
            if run.result is None:
                data = run.body["input"]
                if self.image_size is not None:
                    image = await asyncio.to_thread(render_image, *self.image_size, 7, "PNG", 90)
                else:
                    spec = (data.get("resolution", "1K"), data.get("aspect_ratio"), 7, "PNG")
                    image = await asyncio.to_thread(render, _MODELS[run.model][1], *spec)
                run.result = [self.publish(f"{run.id}.png", image, "image/png")]
        return web.json_response(self._view(run, "succeeded"))
