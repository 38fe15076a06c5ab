"""Local emulator of Runflow's run API for Nano Banana Pro and Nano Banana 2 (and their ``/edit``).

An aiohttp app on 127.0.0.1 (port 0) speaking seeds/002_* and provider-apis.md §2:

* ``POST /v1/models/google/nano-banana-{pro,2}[/edit]/runs`` with ``Authorization: Bearer``
  and ``{"input", "callback_url"?, "metadata"?, "client_ref"?}``; answers at once with
  ``{"id", "status_code": "queued", ...}``. Unknown fields, bad enum values, a missing
  prompt, ``image_urls`` off ``/edit`` (or missing on it) answer 422 ``{"code", "message",
  "errors": [{"field", "message"}]}``; an unknown model 404 ``MODEL_NOT_FOUND``.
* ``GET /v1/runs/{id}``: ``queued`` -> ``running`` -> ``succeeded`` (or ``failed``), 404
  ``RUN_NOT_FOUND`` for an unknown id; outputs are real images served at ``/files/...``.
* Callbacks (seeds/002_* "Callback payload", provider-apis.md §2.5): :meth:`complete` ends a
  run and POSTs the event envelope to its ``callback_url`` with ``Runflow-Request-Id`` and,
  when a signing secret is set, ``Runflow-Signature`` (hex HMAC-SHA256 of the raw body);
  timestamps use ``+00:00`` as Runflow's do.

Sizes follow Google's width x height table (the Runware emulator's rules). Prices are the
emulator's: Pro $0.15/image (seed), Nano Banana 2 $0.08/image at every tier (§2.7 gives
only 1K) + $0.015 web search + $0.002 ``thinking_level: high``. The failure code of a
safety-blocked run is the emulator's choice: Runflow's codes for it are [U].
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

import aiohttp
from aiohttp import web

from tests.fakes.runbase import (
    HTTP_URL,
    SAFETY_BLOCK_MARKER,
    EmulatedRun,
    LoopbackEmulator,
    render,
    size_for,
)
from tests.fakes.runware_rules import NANO_BANANA_2, NANO_BANANA_PRO

__all__ = ["NSFW_MARKER", "SAFETY_BLOCK_MARKER", "RunflowEmulator"]

NSFW_MARKER: Final = "nsfw-test"
"""A prompt containing this succeeds with ``nsfw_detected: true``."""

_PRO: Final = frozenset(
    {
        *("prompt", "aspect_ratio", "enable_web_search", "resolution", "num_images"),
        *("output_format", "sync_mode", "safety_tolerance", "seed", "limit_generations"),
    }
)
_NB2_RATIOS: Final = frozenset(
    {
        *("auto", "21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16"),
        *("4:1", "1:4", "8:1", "1:8"),
    }
)
# model id -> (input fields, resolutions, aspect ratios (None: any "W:H"), Google model)
_MODELS: Final[Mapping[str, tuple[frozenset[str], tuple[str, ...], frozenset[str] | None, str]]] = {
    "google/nano-banana-pro": (_PRO, ("1K", "2K", "4K"), None, NANO_BANANA_PRO),
    "google/nano-banana-2": (
        _PRO | {"thinking_level"},
        ("0.5K", "1K", "2K", "4K"),
        _NB2_RATIOS,
        NANO_BANANA_2,
    ),
}
_FORMATS: Final = {
    "jpeg": ("JPG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}
_RATIO: Final = re.compile(r"^[1-9][0-9]*:[1-9][0-9]*$")


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def invalid_input(model: str, edit: bool, body: Any) -> list[dict[str, str]]:
    """seeds/002_* "Input schema" and §2.2: every violation as ``{"field", "message"}``."""
    if not isinstance(body, dict):
        return [{"field": "body", "message": "must be a JSON object"}]
    problems = [
        {"field": key, "message": "unknown field"}
        for key in body
        if key not in ("input", "callback_url", "metadata", "client_ref")
    ]
    data = body.get("input")
    if not isinstance(data, dict):
        return [*problems, {"field": "input", "message": "required object"}]
    fields, tiers, ratios, _ = _MODELS[model]
    allowed = fields | ({"image_urls"} if edit else set())
    problems += [
        {"field": f"input.{key}", "message": "unknown field"} for key in data if key not in allowed
    ]
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append({"field": "input.prompt", "message": "required"})
    elif model.endswith("-2") and not 3 <= len(prompt) <= 50_000:
        problems.append({"field": "input.prompt", "message": "3 to 50000 characters"})
    ratio = data.get("aspect_ratio")
    urls = data.get("image_urls")
    checks = {
        "aspect_ratio": isinstance(ratio, str)
        and (
            ratio in ratios if ratios is not None else ratio == "auto" or bool(_RATIO.match(ratio))
        ),
        "resolution": data.get("resolution") in tiers,
        "output_format": data.get("output_format") in _FORMATS,
        "safety_tolerance": data.get("safety_tolerance") in ("1", "2", "3", "4", "5", "6"),
        "thinking_level": data.get("thinking_level") in ("minimal", "high"),
        "num_images": _integer(data.get("num_images")) and data.get("num_images") != 0,
        "seed": _integer(data.get("seed")),
        "enable_web_search": isinstance(data.get("enable_web_search"), bool),
        "sync_mode": isinstance(data.get("sync_mode"), bool),
        "limit_generations": isinstance(data.get("limit_generations"), bool),
        "image_urls": isinstance(urls, list)
        and 0 < len(urls) <= 14
        and all(isinstance(u, str) and HTTP_URL.match(u) for u in urls),
    }
    problems += [
        {"field": f"input.{name}", "message": "not an allowed value"}
        for name, ok in checks.items()
        if name in data and name in allowed and not ok
    ]
    if edit and "image_urls" not in data:
        problems.append({"field": "input.image_urls", "message": "required"})
    return problems


class RunflowEmulator(LoopbackEmulator):
    """Runflow run API emulator (``async with RunflowEmulator(api_key=...) as emu``).

    Beyond :class:`tests.fakes.runbase.LoopbackEmulator` (recording, failure injection,
    slow mode, the safety marker): ``insufficient_credit`` (creates answer 402
    ``INSUFFICIENT_CREDIT``) and the prompt marker :data:`NSFW_MARKER`.
    """

    prefix = "/v1"
    default_codes: ClassVar[Mapping[int, str]] = {429: "RATE_LIMITED", 500: "INTERNAL_ERROR"}

    def __init__(
        self, api_key: str = "test-key", *, callback_secret: str | None = None, **options: Any
    ) -> None:
        super().__init__(api_key, **options)
        self.insufficient_credit = False
        self.callback_secret = callback_secret
        self.callback_answers: list[int] = []

    async def complete(self, run_id: str) -> int:
        """End run ``run_id`` now and call back its ``callback_url``, as Runflow does when a
        run reaches a terminal state; returns the receiver's HTTP status (also recorded in
        ``callback_answers``).

        Raises:
            KeyError: no such run; ValueError: it was created without a ``callback_url``.
        """
        run = self.state[run_id]
        url = run.body.get("callback_url")
        if not url:
            raise ValueError(f"run {run_id} has no callback_url")
        run.ready_at = 0.0
        run.polls_needed = 0
        async with run.lock:
            if run.result is None and not run.blocked:
                run.result = await self._render(run)
        status = "failed" if run.blocked else "succeeded"
        envelope = {
            "event": "run.failed" if run.blocked else "run.completed",
            "run_id": run.id,
            "status": status,
            "output": None if run.blocked else run.result,
            "duration_ms": 1200,
            "created_at": "2026-05-06T10:00:00.000+00:00",
            "completed_at": "2026-05-06T10:00:01.200+00:00",
            "metadata": run.body.get("metadata"),
        }
        raw = json.dumps(envelope).encode()
        headers = {"Content-Type": "application/json", "Runflow-Request-Id": str(uuid.uuid4())}
        if self.callback_secret is not None:
            # Written out from the docs, not bananabot's own sign(): the two must agree.
            digest = hmac.new(self.callback_secret.encode(), raw, hashlib.sha256).hexdigest()
            headers["Runflow-Signature"] = digest
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=raw, headers=headers) as answer,
        ):
            self.callback_answers.append(answer.status)
            return answer.status

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/models/{model:.+}/runs", self._on_create)
        app.router.add_get("/v1/runs/{run_id}", self._on_poll)

    async def _on_create(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, "create", self._create)

    async def _on_poll(self, request: web.Request) -> web.StreamResponse:
        return await self.handle(request, "poll", self._get)

    def error(
        self, status: int, code: str, message: str, errors: Any = None, **headers: str
    ) -> web.Response:
        body = {"code": code, "message": message, "errors": errors}
        return web.json_response(body, status=status, headers=headers or None)

    async def _create(self, request: web.Request, body: Any) -> web.Response:
        path = request.match_info["model"]
        model = path.removesuffix("/edit")
        if model not in _MODELS:
            return self.error(404, "MODEL_NOT_FOUND", f"No model {path}.")
        if body is None:
            return self.error(400, "BAD_REQUEST", "The body must be JSON.")
        problems = invalid_input(model, path.endswith("/edit"), body)
        if problems:
            return self.error(422, "VALIDATION_ERROR", "Input validation failed.", problems)
        if self.insufficient_credit:
            return self.error(402, "INSUFFICIENT_CREDIT", "Not enough credit; top up.")
        data = body["input"]
        count = int(data.get("num_images", 1))
        price = Decimal("0.15") if model.endswith("pro") else Decimal("0.08")
        price += Decimal("0.015") if data.get("enable_web_search") else 0
        price += Decimal("0.002") if data.get("thinking_level") == "high" else 0
        run = self.new_run(str(uuid.uuid4()), path, body, count, price * count)
        return web.json_response(self._view(run, "queued"), status=201)

    def _view(self, run: EmulatedRun, status: str) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": run.id,
            "status_code": status,
            "model_id": run.model,
            "input": run.body["input"],
            "output": {},
            "cost": None,
            "metadata": run.body.get("metadata"),
            "created_at": "2026-05-06T10:00:00Z",
            "failure_code": None,
            "failure_message": None,
        }
        if status == "succeeded":
            view.update(output=run.result, cost=str(run.cost))
        elif status == "failed":
            view.update(
                output=None,
                cost="0",
                failure_code="CONTENT_POLICY_VIOLATION",
                failure_stage_code="inference",
                failure_message="The request was blocked by the provider's safety filter.",
            )
        return view

    async def _get(self, request: web.Request, body: Any) -> web.Response:
        run_id = request.match_info["run_id"]
        found = self.progress(run_id)
        if found is None:
            return self.error(404, "RUN_NOT_FOUND", f"Run {run_id} not found.")
        run, finished = found
        if not finished:
            return web.json_response(self._view(run, "queued" if run.answered == 1 else "running"))
        if run.blocked:
            return web.json_response(self._view(run, "failed"))
        async with run.lock:
            if run.result is None:
                run.result = await self._render(run)
        return web.json_response(self._view(run, "succeeded"))

    async def _render(self, run: EmulatedRun) -> dict[str, Any]:
        data = run.body["input"]
        fmt = data.get("output_format", "png")
        seed = int(data.get("seed", 1234))
        model = _MODELS[run.model.removesuffix("/edit")][3]
        args = (model, data.get("resolution", "1K"), data.get("aspect_ratio"))
        width, height = size_for(*args)
        outputs = []
        for index in range(run.count):
            image = await asyncio.to_thread(render, *args, seed + index, _FORMATS[fmt][0])
            url = self.publish(f"{run.id}-{index}.{fmt}", image, _FORMATS[fmt][1])
            outputs.append({"url": url, "type": "image", "width": width, "height": height})
        return {
            "outputs": outputs,
            "nsfw_detected": NSFW_MARKER in data["prompt"],
            "seed": seed,
            "timing": {"inference_ms": 900},
        }
