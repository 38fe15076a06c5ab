"""The Gemini provider through the real google-genai SDK against the local Gemini emulator.

What every provider must do (references, a wrong key, no billing, 429 and 503, deadline,
IMAGE_SAFETY, malformed answers, cancellation, resume) is in tests/test_provider_contract.py;
here is what is Gemini's own: request translation, one call per image, never redoing a call
whose outcome is unknown, partial results, error mapping and log hygiene.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from google.genai import errors
from PIL import Image

from bot.catalog import ResolvedSize, default_catalog, validate
from bot.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderProtocolError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    ReferenceImageError,
    SafetyBlocked,
)
from bot.interfaces import GenerationResult, GenerationTask, ReferenceData
from bot.models import ImageRequest, ReferenceImage
from bot.policy import TOLERANCE_SCALE
from bot.providers.gemini.client import GeminiProvider
from bot.providers.gemini.errors import error_from_api
from bot.providers.gemini.translate import parse_response, split_base_url
from tests.fakes.gemini import (
    NO_IMAGE_MARKER,
    PROMPT_BLOCK_MARKER,
    Fault,
    GeminiEmulator,
)
from tests.fakes.provider import png_bytes

KEY = "AIzaCanary-gemini-key-0123456789"


def task(prompt: str = "a lighthouse at dusk", refs: int = 0, **fields: Any) -> GenerationTask:
    references = tuple(
        ReferenceImage(media_key=f"{i:064x}.png", mime_type="image/png", width=64, height=32)
        for i in range(refs)
    )
    request = ImageRequest.model_validate({"prompt": prompt, "references": references, **fields})
    data = tuple(ReferenceData(png_bytes(64, 32), "image/png", 64, 32) for _ in range(refs))
    return GenerationTask("job1", request, validate(default_catalog(), request), data)


def camel(value: Any) -> Any:
    if isinstance(value, dict):
        return {re.sub(r"_([a-z])", lambda m: m[1].upper(), k): camel(v) for k, v in value.items()}
    return [camel(v) for v in value] if isinstance(value, list) else value


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


class Rig:
    """The emulator, providers aimed at it, and the task ids stored via ``on_task_id``."""

    def __init__(self, emu: GeminiEmulator) -> None:
        self.emu = emu
        self.made: list[GeminiProvider] = []
        self.task_ids: list[str] = []
        self.calls_at_store: list[int] = []

    def provider(self, **kw: Any) -> GeminiProvider:
        options: dict[str, Any] = {"api_key": KEY, "base_url": self.emu.base_url, "timeout": 10.0}
        options |= {"deadline": 20.0, "retry_wait_initial": 0.01, **kw}
        self.made.append(GeminiProvider(**options))
        return self.made[-1]

    async def store(self, task_id: str) -> None:
        self.task_ids.append(task_id)
        self.calls_at_store.append(self.emu.calls)

    async def run(self, job: GenerationTask | None = None, **kw: Any) -> GenerationResult:
        return await self.provider(**kw).generate(job or task(), self.store)

    def body(self, index: int = 0) -> dict[str, Any]:
        return dict(camel(self.emu.generate_requests()[index].body))  # SDKs spell keys both ways


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with GeminiEmulator(api_key=KEY) as emu:
        yield (made := Rig(emu))
        for provider in made.made:
            await provider.aclose()


async def test_generates_n_images_one_call_each_at_the_catalog_size(rig: Rig) -> None:
    job = task(aspect_ratio="3:2", resolution="1K", number_results=3, seed=42, web_search=True)
    result = await rig.run(job)
    assert rig.calls_at_store == [0], "the task id is stored before Google sees a call"
    assert [size_of(i.data) for i in result.images] == [(1264, 848)] * 3, "thoughts skipped"
    assert [i.seed for i in result.images] == [42, 43, 44]
    assert result.cost_micros is None and result.notices == ()
    assert rig.emu.calls == rig.emu.images_made == 3
    sent = rig.emu.generate_requests()[0]
    assert sent.path == "/v1beta/models/gemini-3.1-flash-image:generateContent" and not sent.query
    assert sent.headers["x-goog-api-key"] == KEY, "the key goes in a header, never the URL"
    config = rig.body()["generationConfig"]
    assert config["imageConfig"] == {"aspectRatio": "3:2", "imageSize": "1K"}
    assert config["responseModalities"] == ["TEXT", "IMAGE"] and "candidateCount" not in config
    assert rig.body()["tools"] == [{"googleSearch": {}}], "web search: the google_search tool"
    assert sorted(rig.body(i)["generationConfig"]["seed"] for i in range(3)) == [42, 43, 44]


@pytest.mark.parametrize(
    ("model", "tier", "ratio", "image_size", "pixels"),
    [
        ("nano-banana-2", "0.5K", "16:9", "512", (688, 384)),
        ("nano-banana-2", "2K", "8:1", "2K", (6144, 768)),
        ("nano-banana-pro", "1K", "21:9", "1K", (1548, 672)),
        ("nano-banana-pro", "4K", "16:9", "4K", (5504, 3072)),
    ],
)
async def test_each_tier_is_sent_as_its_image_size(
    rig: Rig, model: str, tier: str, ratio: str, image_size: str, pixels: tuple[int, int]
) -> None:
    result = await rig.run(task(model=model, resolution=tier, aspect_ratio=ratio))
    assert size_of(result.images[0].data) == pixels
    expected = {"aspectRatio": ratio, "imageSize": image_size}
    assert rig.body()["generationConfig"]["imageConfig"] == expected


async def test_references_are_sent_inline_in_order(
    rig: Rig,
) -> None:
    job = task(refs=3, resolution="1K")
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 32)).save(jpeg, "JPEG")
    refs = (job.references[0], ReferenceData(jpeg.getvalue(), "image/jpeg", 64, 32))
    result = await rig.run(GenerationTask("j", job.request, job.size, (*refs, refs[0])))
    parts = rig.body()["contents"][0]["parts"]
    assert parts[0] == {"text": "a lighthouse at dusk"}
    mimes = [p["inlineData"]["mimeType"] for p in parts[1:]]
    assert mimes == ["image/png", "image/jpeg", "image/png"]
    assert "aspectRatio" not in rig.body()["generationConfig"]["imageConfig"]
    assert size_of(result.images[0].data) == (1376, 768), "2:1 reference -> closest ratio 16:9"
    gif = ReferenceData(b"GIF89a", "image/gif", 1, 1)
    with pytest.raises(ReferenceImageError):
        await rig.run(GenerationTask("j", job.request, job.size, (gif, gif, gif)))
    assert len(rig.task_ids) == rig.emu.calls == 1, "a GIF is refused before any id or call"


@pytest.mark.parametrize("level", ["low", "medium", "high", "none", "off", None])
async def test_safety_settings_follow_the_policy_mapping(rig: Rig, level: Any) -> None:
    await rig.run(task(safety_tolerance=level))
    if level is None:
        assert "safetySettings" not in rig.body() and "tools" not in rig.body(), "defaults"
        return
    settings = rig.body()["safetySettings"]
    assert {s["threshold"] for s in settings} == {TOLERANCE_SCALE[level].gemini}
    assert len({s["category"] for s in settings}) == 4


async def test_optional_fields_are_sent_only_when_set(rig: Rig) -> None:
    fields: Any = {"thinking": "MINIMAL", "temperature": 0.4, "top_p": 0.9, "system_prompt": "x"}
    result = await rig.run(task(seed=2**40 + 5, output_format="WEBP", image_search=True, **fields))
    search = rig.body()["tools"][0]["googleSearch"]["searchTypes"]
    assert search == {"imageSearch": {}}, "image search: a search type of google_search"
    config = rig.body()["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingLevel": "MINIMAL"}
    assert (config["temperature"], config["topP"]) == (0.4, 0.9)
    assert config["seed"] == 5 == result.images[0].seed, "seeds fold into the API's int32"
    assert rig.body()["systemInstruction"]["parts"] == [{"text": "x"}]
    assert result.notices and "format" in result.notices[0]


# IMAGE_SAFETY (a result withheld) is in the contract suite; these are the other two ways
# a 200 answer comes without an image.
@pytest.mark.parametrize(
    ("marker", "error", "words"),
    [
        (PROMPT_BLOCK_MARKER, SafetyBlocked, "PROHIBITED_CONTENT"),
        (NO_IMAGE_MARKER, ProviderRejected, "I can't make that picture"),
    ],
)
async def test_no_image_is_typed(rig: Rig, marker: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        await rig.run(task(prompt=f"a {marker} prompt"))
    assert rig.emu.calls == 1, "a refusal is final: never retried"


@pytest.mark.parametrize(("delay", "calls"), [(0.01, 2), (3600, 1)])
async def test_rate_limits_give_up_at_attempts_or_cap(rig: Rig, delay: float, calls: int) -> None:
    rig.emu.fail_next(429, count=5, retry_delay=delay)
    with pytest.raises(ProviderUnavailable) as caught:
        await rig.run(attempts=2, max_retry_wait=5)
    # Every call was refused, so nothing was made or billed: the job may fail over.
    assert caught.value.sent is False and caught.value.status == 429
    limited = caught.value.__cause__
    assert isinstance(limited, ProviderRateLimited) and limited.retry_after == delay
    assert rig.emu.calls == calls


async def test_an_internal_error_is_not_retried_blindly(rig: Rig) -> None:
    # 503 is in the contract suite; 500 INTERNAL may also have run the paid call.
    rig.emu.fail_next(500, count=3, retry_delay=0.01)
    with pytest.raises(ProviderUnavailable) as caught:
        await rig.run()
    assert caught.value.status == 500 and caught.value.sent is True and rig.emu.calls == 1


async def test_an_unknown_outcome_is_never_redone(rig: Rig) -> None:
    rig.emu.drop_next()
    with pytest.raises(ProviderUnavailable) as caught:
        await rig.run()
    assert caught.value.sent is True
    assert rig.emu.calls == rig.emu.images_made == 1, "Google ran it once; we paid once"
    provider = rig.provider()
    assert not provider.capabilities.resumable and not provider.capabilities.reports_cost
    with pytest.raises(ProviderUnavailable):  # after a crash: the worker refunds instead
        await provider.resume(task(), rig.task_ids[0])


async def test_connect_errors_are_retried_then_unavailable(rig: Rig) -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            await rig.run(client=client, attempts=3)
    assert caught.value.sent is False and len(attempts) == 3


async def test_a_forbidden_key_is_an_auth_error(rig: Rig) -> None:
    # A wrong key (400 API_KEY_INVALID) is in the contract suite; this key is valid but denied.
    rig.emu.denied_keys.add(KEY)
    with pytest.raises(ProviderAuthError) as caught:
        await rig.run()
    assert caught.value.status == 403
    assert len(rig.emu.generate_requests()) == 1


@pytest.mark.parametrize(("model", "tier", "status"), [("gemini-9", "1K", 404), ("", "0.5K", 400)])
async def test_an_unknown_model_or_size_is_rejected_once(
    rig: Rig, model: str, tier: str, status: int
) -> None:
    job = task(model="nano-banana-pro")
    job = GenerationTask("j", job.request, ResolvedSize(tier, "1:1", None, None))
    with pytest.raises(ProviderRejected) as caught:
        await rig.run(job, model_ids={"nano-banana-pro": model or "gemini-3-pro-image"})
    assert caught.value.status == status and rig.emu.calls == 1


async def test_a_call_timeout_is_a_timeout_never_retried(rig: Rig) -> None:
    # The whole-generation deadline is in the contract suite; this is the per-call timeout.
    rig.emu.hang_next(10)
    async with asyncio.timeout(10):  # a hang guard, not a speed claim
        with pytest.raises(ProviderTimeout):
            await rig.run(None, timeout=0.3)
    assert rig.emu.calls == 1


# Invalid JSON and an image without data are in the contract suite.
@pytest.mark.parametrize("body", ['{"candidates": []}', "[1, 2]"])
async def test_a_body_that_is_not_a_response_is_a_protocol_error(rig: Rig, body: str) -> None:
    rig.emu.malformed_next(body)
    with pytest.raises(ProviderProtocolError):
        await rig.run()
    assert rig.emu.calls == 1


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault("status", 500), "provider_unavailable"),
        (Fault("hang", seconds=10), "provider_timeout"),
    ],
)
async def test_finished_images_are_kept(rig: Rig, fault: Fault, code: str) -> None:
    rig.emu.faults.append(fault)
    result = await rig.run(task(number_results=3), deadline=1.5)
    assert len(result.images) == 2 and result.notices == (f"1 of 3 images failed ({code}).",)


async def test_the_key_and_image_bytes_never_reach_the_logs(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rig.emu.fail_next(429, retry_delay=0.01)
    await rig.run(task(refs=1))
    rig.emu.fail_next(500)
    with pytest.raises(ProviderUnavailable) as caught:
        await rig.run()
    logged = caplog.text + " ".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert any(r.name.startswith("bot.providers.gemini") for r in caplog.records)
    assert KEY not in logged and KEY not in str(caught.value)
    assert "iVBORw0KGgo" not in logged.replace("-", "+").replace("_", "/"), "a base64 PNG"


@pytest.mark.parametrize(
    ("code", "status", "details", "expected"),
    [
        (400, "INVALID_ARGUMENT", [], ProviderRejected),
        (400, "INVALID_ARGUMENT", [{"reason": "API_KEY_INVALID"}], ProviderAuthError),
        (400, "FAILED_PRECONDITION", [], ProviderQuotaError),
        (401, "UNAUTHENTICATED", [], ProviderAuthError),
        (404, "NOT_FOUND", [], ProviderRejected),
        (408, "DEADLINE_EXCEEDED", [], ProviderTimeout),
        (429, "RESOURCE_EXHAUSTED", [], ProviderRateLimited),
        (504, "DEADLINE_EXCEEDED", [], ProviderUnavailable),
    ],
)
def test_api_errors_map_by_code_and_details(
    code: int, status: str, details: list[Any], expected: type[Exception]
) -> None:
    body = {"error": {"code": code, "message": "m", "status": status, "details": details}}
    cls = errors.ClientError if code < 500 else errors.ServerError
    mapped = error_from_api(cls(code, body))
    assert type(mapped) is expected and getattr(mapped, "status", None) == code


def test_a_retry_delay_comes_from_retry_info_or_the_header() -> None:
    info = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    limited = errors.ClientError(429, {"error": {"code": 429, "details": info}})
    page = httpx.Response(503, headers={"Retry-After": "4"}, text="<html>busy</html>")
    busy = errors.ServerError(503, {"message": page.text}, page)
    assert [getattr(error_from_api(e), "retry_after", None) for e in (limited, busy)] == [37, 4]


def test_base_urls_take_the_sdk_form_or_the_endpoint_form() -> None:
    google = ("https://generativelanguage.googleapis.com/", "v1beta")
    assert split_base_url(None) == split_base_url(f"{google[0]}v1beta") == google
    assert split_base_url("http://127.0.0.1:9/proxy/v1/") == ("http://127.0.0.1:9/proxy/", "v1")
    with pytest.raises(ConfigurationError):
        split_base_url("ftp://example.com/")
    with pytest.raises(ConfigurationError, match="empty"):
        GeminiProvider(api_key=" ")


def test_parsing_skips_thoughts_and_reads_url_safe_base64() -> None:
    image = png_bytes(3, 2)
    thought = {"inlineData": {"mimeType": "image/png", "data": "AAAA"}, "thought": True}
    final = {"inlineData": {"data": base64.urlsafe_b64encode(image).decode().rstrip("=")}}
    candidate: dict[str, Any] = {"finishReason": "STOP", "content": {"parts": [final, thought]}}
    assert parse_response(json.dumps({"candidates": [candidate]})).data == image
    candidate["content"]["parts"] = [thought]
    candidate["finishReason"] = "IMAGE_NEW_REASON"
    with pytest.raises(ProviderRejected, match="IMAGE_NEW_REASON"):
        parse_response(json.dumps({"candidates": [candidate]}))


async def test_the_emulator_checks_bodies_like_the_api(rig: Rig) -> None:
    url = f"{rig.emu.base_url}v1beta/models/gemini-3-pro-image:generateContent"
    data = base64.b64encode(png_bytes(2, 2)).decode()
    image = {"inlineData": {"mimeType": "image/png", "data": data}}

    def body(parts: list[Any], **config: Any) -> dict[str, Any]:
        return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}

    text = [{"text": "x"}]
    cases = [
        (body([*text, *[image] * 15]), 400),
        (body(text, imageConfig={"imageSize": "1k"}), 400),
        (body(text, imageConfig={"aspectRatio": "8:1"}), 400),
        (body(text, seed=2**31), 400),
        ({**body(text), "bogus": 1}, 400),
    ]
    async with httpx.AsyncClient(headers={"x-goog-api-key": KEY}) as http:
        for payload, status in cases:
            answer = await http.post(url, json=payload)
            assert answer.status_code == status, (payload, answer.text)
        anonymous = await http.post(url, json=body(text), headers={"x-goog-api-key": ""})
    assert anonymous.status_code == 403, "no key: PERMISSION_DENIED"
