"""Local emulator of the Gemini API's ``generateContent`` for Nano Banana Pro and Nano Banana 2.

aiohttp on 127.0.0.1 (port 0), provider-apis.md §4: ``POST /v1beta/models/{m}:generateContent``
with ``x-goog-api-key``. No key: 403; a wrong key: 400 ``API_KEY_INVALID`` (as Google answers);
a project without billing (``billing_disabled``): 400 ``FAILED_PRECONDITION`` (the Gemini API's
"out of credit": image models have no free tier, §4.7); unknown model: 404; unknown fields,
bad ``imageSize``/``aspectRatio``, over 14 images, int32 overflow, bad enums: 400
``INVALID_ARGUMENT``. Answers carry real PNGs (base64 inline) at the
catalog's pixel size for model, tier and ratio (none: the first reference's, else 1:1), mixed
with a thought text, an interim thought image, a ``thoughtSignature`` and a closing text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web
from PIL import Image

from bot.catalog import ModelSpec, default_catalog
from tests.fakes.runware import render_image

__all__ = [
    "IMAGE_SAFETY_MARKER",
    "MODELS",
    "NO_IMAGE_MARKER",
    "PROMPT_BLOCK_MARKER",
    "Fault",
    "GeminiEmulator",
    "RecordedRequest",
]

IMAGE_SAFETY_MARKER: Final = "image-safety-test"
"""A prompt containing this ends with ``finishReason: IMAGE_SAFETY`` and no image."""
PROMPT_BLOCK_MARKER: Final = "prompt-block-test"
"""A prompt containing this is refused with ``promptFeedback.blockReason: PROHIBITED_CONTENT``."""
NO_IMAGE_MARKER: Final = "no-image-test"
"""A prompt containing this gets a text-only answer (``finishReason: STOP``)."""

MODELS: Final[Mapping[str, str]] = {
    "gemini-3-pro-image": "nano-banana-pro",
    "gemini-3-pro-image-preview": "nano-banana-pro",
    "gemini-3.1-flash-image": "nano-banana-2",
    "gemini-3.1-flash-image-preview": "nano-banana-2",
}
"""Gemini model id -> catalog model (§4.1)."""

_SIZES: Final = {"512": "0.5K", "1K": "1K", "2K": "2K", "4K": "4K"}
_MIMES: Final = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})


def _names(text: str) -> list[str]:
    return text.split()


_CATEGORIES: Final = frozenset(
    f"HARM_CATEGORY_{name}"
    for name in _names("HARASSMENT HATE_SPEECH SEXUALLY_EXPLICIT DANGEROUS_CONTENT CIVIC_INTEGRITY")
)
_THRESHOLDS: Final = frozenset(
    _names("BLOCK_LOW_AND_ABOVE BLOCK_MEDIUM_AND_ABOVE BLOCK_ONLY_HIGH BLOCK_NONE OFF")
)
_VERSIONS: Final = ("v1", "v1beta")
_PART: Final = {"text", "inlineData", "thought", "thoughtSignature"}
_BLOB: Final = {"mimeType", "data"}
_THINKING: Final = {"thinkingLevel", "includeThoughts"}
_LEVELS: Final = frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH"})
_OUTPUT_TOKENS: Final = {"0.5K": 747, "1K": 1120, "2K": 1680, "4K": 2520}
_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
# Google's JSON mapping accepts lowerCamel and the proto's snake_case names alike.
_TOP: Final = {"contents", "generationConfig", "safetySettings", "tools", "systemInstruction"}
_GENERATION: Final = set(
    _names("responseModalities imageConfig temperature topP topK seed candidateCount")
    + _names("maxOutputTokens thinkingConfig stopSequences")
)
_NO_KEY: Final = "Method doesn't allow unregistered callers (callers without identity)."
_NO_BILLING: Final = (
    "Gemini API free tier is not available in your country. "
    "Please enable billing on your project in Google AI Studio."
)
_KEY_INVALID: Final = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "API_KEY_INVALID",
    "domain": "googleapis.com",
}


class _Invalid(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        details: Iterable[dict[str, Any]] = (),
        name: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.details = status, message, list(details)
        self.name = name or _STATUS_NAMES.get(status, "UNKNOWN")


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request: method, path, query, headers (last wins), parsed JSON body or None."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any


@dataclass
class Fault:
    """A failure for the next call past the key check: ``status`` answers Google's error
    envelope (``retry_delay`` adds ``RetryInfo``); ``hang`` waits ``seconds`` then answers
    (the call ran); ``malformed`` answers 200 with ``body``; ``drop`` runs it, then hangs up.
    """

    kind: Literal["status", "hang", "malformed", "drop"]
    status: int = 500
    retry_delay: float | None = None
    seconds: float = 0.0
    body: str = ""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _fields(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """``obj`` as a dict with camelCase keys; an unknown key is a 400 like the API's."""
    if not isinstance(obj, dict):
        raise _Invalid(400, f"Invalid value at '{where}': expected an object")
    out = {}
    for key, value in obj.items():
        name = _camel(key)
        if name not in allowed:
            detail = f"Unknown name {key!r} at {where!r}"
            raise _Invalid(400, f"Invalid JSON payload received. {detail}: Cannot find field.")
        out[name] = value
    return out


def _bad_request(field: str, message: str) -> _Invalid:
    violation = {"field": field, "description": message}
    detail = {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [violation]}
    return _Invalid(400, message, [detail])


class GeminiEmulator:
    """The Gemini API on loopback. Use ``async with GeminiEmulator() as emu: emu.base_url``.

    Attributes:
        requests: every :class:`RecordedRequest`, in order.
        calls: ``generateContent`` requests that passed the key check.
        images_made: images generated (what Google would bill).
        faults: pending :class:`Fault` s, consumed first to last.
        denied_keys: keys answered 403 ``PERMISSION_DENIED`` (valid but not allowed).
        billing_disabled: while True, calls with a valid key answer 400
            ``FAILED_PRECONDITION`` (no billing on the project) and nothing is generated.
    """

    def __init__(self, api_key: str = "test-key", *, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.host = host
        self.denied_keys: set[str] = set()
        self.billing_disabled = False
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.calls = 0
        self.images_made = 0
        self._catalog = default_catalog()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = asyncio.Event()

    async def __aenter__(self) -> GeminiEmulator:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/``: the value for ``GEMINI_API_URL``."""
        if self._port is None:
            raise RuntimeError("GeminiEmulator is not started")
        return f"http://{self.host}:{self._port}/"

    def generate_requests(self) -> list[RecordedRequest]:
        """The recorded ``generateContent`` requests (any key)."""
        return [r for r in self.requests if r.path.endswith(":generateContent")]

    def fail_next(self, status: int, count: int = 1, *, retry_delay: float | None = None) -> None:
        """Answer the next ``count`` calls with ``status`` (429 ``RESOURCE_EXHAUSTED``, 500
        ``INTERNAL``, 503 ``UNAVAILABLE`` ...); nothing is generated."""
        self.faults += [Fault("status", status, retry_delay) for _ in range(count)]

    def hang_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` calls ``seconds`` before answering (they still run)."""
        self.faults += [Fault("hang", seconds=seconds) for _ in range(count)]

    def malformed_next(self, body: str = '{"candidates": "none"', count: int = 1) -> None:
        """Answer the next ``count`` calls 200 with ``body`` instead of a response."""
        self.faults += [Fault("malformed", body=body) for _ in range(count)]

    def drop_next(self, count: int = 1) -> None:
        """Run the next ``count`` calls, then close the connection without answering."""
        self.faults += [Fault("drop") for _ in range(count)]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        query, headers = dict(request.query), dict(request.headers)
        self.requests.append(RecordedRequest(request.method, request.path, query, headers, body))
        try:
            return await self._generate(request, body, raw)
        except _Invalid as exc:
            return self._error(exc.status, exc.message, exc.details, exc.name)

    async def _generate(self, request: web.Request, body: Any, raw: bytes) -> web.StreamResponse:
        version, _, rest = request.path.strip("/").partition("/models/")
        model, _, method = rest.partition(":")
        if (request.method, method) != ("POST", "generateContent") or version not in _VERSIONS:
            raise _Invalid(404, f"The requested URL {request.path} was not found on this server.")
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key or key in self.denied_keys:
            raise _Invalid(403, _NO_KEY if not key else "Permission denied: consumer suspended.")
        if key != self.api_key:
            raise _Invalid(400, "API key not valid. Please pass a valid API key.", [_KEY_INVALID])
        self.calls += 1
        if self.billing_disabled:
            raise _Invalid(400, _NO_BILLING, name="FAILED_PRECONDITION")
        fault = self.faults.pop(0) if self.faults else Fault("hang")  # none: a 0 s hang
        if fault.kind == "status":
            retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo"}
            info = [{**retry, "retryDelay": f"{fault.retry_delay:g}s"}] if fault.retry_delay else []
            raise _Invalid(fault.status, f"Injected HTTP {fault.status}.", info)
        if fault.kind == "malformed":
            return web.Response(text=fault.body, content_type="application/json")
        if fault.seconds:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(fault.seconds):  # waits in the handler's own task
                    await self._closing.wait()
        name = MODELS.get(model)
        if name is None:
            raise _Invalid(404, f"models/{model} is not found for API version {version}.")
        if body is None:
            raise _Invalid(400, f"Invalid JSON payload received. {raw[:40]!r}")
        answer = await self._answer(self._catalog.model(name), model, body)
        if fault.kind == "drop" and request.transport is not None:
            request.transport.abort()
        return web.json_response(answer)

    def _error(
        self, status: int, message: str, details: list[dict[str, Any]], name: str
    ) -> web.Response:
        error = {"code": status, "message": message, "status": name, "details": details}
        return web.json_response({"error": error}, status=status)

    async def _answer(self, spec: ModelSpec, model: str, body: Any) -> dict[str, Any]:
        top = _fields(body, _TOP, "request")
        prompt, references = self._contents(top.get("contents"))
        config = _fields(top.get("generationConfig", {}), _GENERATION, "generation_config")
        tier, ratio = self._size(spec, config)
        self._check_config(spec, config, top)
        usage = {"promptTokenCount": 12 + 560 * len(references)}
        meta = {"modelVersion": model, "responseId": f"emu-{self.calls}"}
        if PROMPT_BLOCK_MARKER in prompt:
            feedback = {"blockReason": "PROHIBITED_CONTENT"}
            return {"promptFeedback": feedback, "usageMetadata": usage, **meta}
        if IMAGE_SAFETY_MARKER in prompt:
            message = "Unable to show the generated image: it was filtered out."
            candidate = {"finishReason": "IMAGE_SAFETY", "index": 0, "finishMessage": message}
            return {"candidates": [candidate], "usageMetadata": usage, **meta}
        modalities = config.get("responseModalities", ["TEXT", "IMAGE"])
        if NO_IMAGE_MARKER in prompt or "IMAGE" not in modalities:
            content = {"role": "model", "parts": [{"text": "I can't make that picture."}]}
            return {"candidates": [{"content": content, "finishReason": "STOP"}], **meta}
        if ratio is None:
            ratio = _closest_ratio(spec.sizes[tier], references[0]) if references else "1:1"
        width, height = spec.sizes[tier][ratio]
        seed = int(config.get("seed", self.calls))
        final = await asyncio.to_thread(render_image, width, height, seed, "PNG", 95)
        interim = await asyncio.to_thread(render_image, 64, 64, seed + 1, "PNG", 95)
        self.images_made += 1
        parts = [
            {"text": "**Composing** the scene from the prompt.", "thought": True},
            {"inlineData": _blob(interim), "thought": True},
            {"inlineData": _blob(final), "thoughtSignature": base64.b64encode(b"sig").decode()},
            {"text": "Here is your image."},
        ]
        usage["candidatesTokenCount"] = tokens = _OUTPUT_TOKENS[tier]
        usage["totalTokenCount"] = usage["promptTokenCount"] + tokens
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}
        return {"candidates": [candidate], "usageMetadata": usage, **meta}

    @staticmethod
    def _contents(contents: Any) -> tuple[str, list[tuple[int, int]]]:
        if not isinstance(contents, list) or not contents:
            raise _bad_request("contents", "contents is not specified")
        texts, sizes = [], []
        for turn in contents:
            fields = _fields(turn, {"role", "parts"}, "contents")
            parts = fields.get("parts")
            if not isinstance(parts, list) or not parts:
                raise _bad_request("contents.parts", "contents.parts must not be empty")
            for part in parts:
                fields = _fields(part, _PART, "part")
                if "text" in fields:
                    texts.append(str(fields["text"]))
                elif "inlineData" in fields:
                    sizes.append(_inline_size(_fields(fields["inlineData"], _BLOB, "inline_data")))
        if len(sizes) > 14:
            raise _bad_request("contents", f"At most 14 images are allowed, got {len(sizes)}.")
        return " ".join(texts), sizes

    @staticmethod
    def _size(spec: ModelSpec, config: Mapping[str, Any]) -> tuple[str, str | None]:
        image = _fields(config.get("imageConfig", {}), {"aspectRatio", "imageSize"}, "image_config")
        size = image.get("imageSize", "1K")
        tier = _SIZES.get(size)
        if tier is None or tier not in spec.sizes:
            allowed = ", ".join(s for s, t in _SIZES.items() if t in spec.sizes)
            raise _bad_request("image_size", f"Unsupported image size {size!r} ({allowed}).")
        ratio = image.get("aspectRatio")
        if ratio is not None and ratio not in spec.sizes[tier]:
            raise _bad_request("image_config.aspect_ratio", f"Unsupported aspect ratio {ratio!r}.")
        return tier, ratio

    @staticmethod
    def _check_config(spec: ModelSpec, config: Mapping[str, Any], top: Mapping[str, Any]) -> None:
        if not set(config.get("responseModalities", [])) <= {"TEXT", "IMAGE"}:
            raise _bad_request("response_modalities", "Invalid response modality.")
        seed = config.get("seed")
        if seed is not None and not (isinstance(seed, int) and -(2**31) <= seed < 2**31):
            raise _bad_request("generation_config.seed", f"Invalid value {seed!r} (TYPE_INT32).")
        for name, high in (("temperature", 2.0), ("topP", 1.0)):
            value = config.get(name)
            if value is not None and not 0.0 <= float(value) <= high:
                raise _bad_request(f"generation_config.{name}", f"{name} must be in [0, {high}].")
        if config.get("candidateCount", 1) != 1:  # unconfirmed for these models (§6.4)
            raise _bad_request("candidate_count", "Multiple candidates is not enabled.")
        thinking = _fields(config.get("thinkingConfig", {}), _THINKING, "thinking_config")
        level = thinking.get("thinkingLevel")
        levels = {"MINIMAL", "HIGH"} if spec.supports_thinking else _LEVELS  # NB2: §4.5
        if level is not None and level not in levels:
            raise _bad_request("thinking_config.thinking_level", f"Unsupported level {level!r}.")
        for setting in top.get("safetySettings", []):
            fields = _fields(setting, {"category", "threshold"}, "safety_settings")
            if (
                fields.get("category") not in _CATEGORIES
                or fields.get("threshold") not in _THRESHOLDS
            ):
                raise _bad_request("safety_settings", f"Invalid safety setting {setting!r}.")
        for tool in top.get("tools", []):
            search = _fields(tool, {"googleSearch"}, "tools").get("googleSearch")
            types = _fields(search, {"searchTypes"}, "google_search").get("searchTypes", {})
            kinds = _fields(types, {"webSearch", "imageSearch"}, "search_types")
            if "imageSearch" in kinds and not spec.supports_image_search:
                raise _bad_request("tools", "Image search is not supported for this model.")


def _inline_size(blob: Mapping[str, Any]) -> tuple[int, int]:
    mime = blob.get("mimeType")
    if mime not in _MIMES:
        raise _bad_request("inline_data.mime_type", f"Unsupported MIME type: {mime}")
    try:
        data = _b64decode(str(blob.get("data", "")))
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (binascii.Error, ValueError, OSError) as exc:
        raise _bad_request("inline_data.data", "Unable to process input image.") from exc


def _b64decode(text: str) -> bytes:
    """Proto3 JSON bytes: standard or URL-safe base64, padded or not (the SDK sends URL-safe)."""
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _closest_ratio(table: Mapping[str, tuple[int, int]], size: tuple[int, int]) -> str:
    target = math.log(size[0] / size[1])
    return min(table, key=lambda r: abs(math.log(table[r][0] / table[r][1]) - target))


def _blob(data: bytes) -> dict[str, str]:
    return {"mimeType": "image/png", "data": base64.b64encode(data).decode("ascii")}
