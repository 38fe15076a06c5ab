"""The seeds' example requests, as bananabot requests, become the seeds' Runware task bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import default_catalog, validate
from bot.errors import (
    ProviderAuthError,
    ProviderQuotaError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    SafetyBlocked,
)
from bot.models import ImageRequest, ReferenceImage
from bot.money import usd_to_micros
from bot.providers.http import parse_retry_after
from bot.providers.runware.translate import (
    DEFAULT_MODEL_IDS,
    error_from_item,
    error_from_status,
    inference_task,
    with_async_delivery,
)
from bot.providers.runware.wire import Envelope, ErrorItem

FIXTURE = Path(__file__).parent / "fixtures" / "runware-seed-examples.json"
EXAMPLES: list[dict[str, Any]] = json.loads(FIXTURE.read_text("utf-8"))["examples"]
CATALOG = default_catalog()
MODEL_NAMES = {v: k for k, v in DEFAULT_MODEL_IDS.items()}


def as_bananabot_request(body: dict[str, Any]) -> ImageRequest:
    """Express a seed body the way a person would ask bananabot (neutral field names)."""
    settings = body.get("settings", {})
    google = body.get("providerSettings", {}).get("google", {})
    references = body.get("inputs", {}).get("referenceImages", [])
    return ImageRequest(
        prompt=body["positivePrompt"],
        model=MODEL_NAMES[body["model"]],  # type: ignore[arg-type]
        width=body.get("width"),
        height=body.get("height"),
        seed=body.get("seed"),
        temperature=settings.get("temperature"),
        top_p=settings.get("topP"),
        system_prompt=settings.get("systemPrompt"),
        thinking=settings.get("thinking"),
        safety_tolerance=google.get("safetyTolerance"),
        web_search=google.get("webSearch"),
        image_search=google.get("imageSearch"),
        references=tuple(
            ReferenceImage(
                media_key=f"{i:064x}.jpg",
                mime_type="image/jpeg",
                width=1024,
                height=1024,
                source=url,
            )
            for i, url in enumerate(references)
        ),
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["title"] for e in EXAMPLES])
def test_seed_example_translates_to_the_seed_body_field_by_field(example: dict[str, Any]) -> None:
    seed_body = example["request"]
    request = as_bananabot_request(seed_body)
    size = validate(CATALOG, request)
    ours = inference_task(
        request,
        size,
        task_uuid="00000000-0000-4000-8000-000000000000",
        model_id=DEFAULT_MODEL_IDS[request.model],
        reference_images=[r.source for r in request.references],
    )
    expected = {**seed_body, "taskUUID": "00000000-0000-4000-8000-000000000000"}
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert ours[key] == value, key


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["title"] for e in EXAMPLES])
def test_estimate_covers_the_seed_cost(example: dict[str, Any]) -> None:
    request = as_bananabot_request(example["request"])
    estimate = CATALOG.estimate_micros(request, validate(CATALOG, request))
    cost = usd_to_micros(example["response"]["cost"])
    assert estimate >= cost
    if not request.web_search:
        assert estimate == cost


def test_async_delivery_adds_only_the_delivery_options() -> None:
    task = {"taskType": "imageInference", "taskUUID": "u"}
    assert with_async_delivery(task) == {**task, "deliveryMethod": "async", "includeCost": True}


def test_references_with_a_tier_only_send_resolution_not_width_and_height() -> None:
    request = ImageRequest(
        prompt="make it night",
        resolution="2K",
        references=(
            ReferenceImage(media_key="a" * 64 + ".png", mime_type="image/png", width=10, height=10),
        ),
    )
    task = inference_task(
        request,
        validate(CATALOG, request),
        task_uuid="u",
        model_id="google:4@3",
        reference_images=["data:image/png;base64,AA=="],
    )
    assert task["resolution"] == "2K" and "width" not in task and "height" not in task
    assert task["inputs"] == {"referenceImages": ["data:image/png;base64,AA=="]}


def test_forced_content_check_and_result_count_are_sent() -> None:
    request = ImageRequest(
        prompt="abc", check_content=True, number_results=3, output_format="PNG", output_quality=80
    )
    task = inference_task(request, validate(CATALOG, request), task_uuid="u", model_id="m")
    assert task["safety"] == {"checkContent": True}
    assert (task["numberResults"], task["outputFormat"], task["outputQuality"]) == (3, "PNG", 80)


@pytest.mark.parametrize(
    ("status", "code", "kind", "retryable"),
    [
        (401, "invalidApiKey", ProviderAuthError, False),
        (403, "forbidden", ProviderAuthError, False),
        (402, "insufficientCredits", ProviderQuotaError, False),
        (429, "rateLimitExceeded", ProviderRateLimited, True),
        (500, "internalServerError", ProviderUnavailable, True),
        (503, "serviceUnavailable", ProviderUnavailable, True),
        (400, "invalidDimensions", ProviderRejected, False),
        (400, "contentPolicyViolation", SafetyBlocked, False),
    ],
)
def test_http_errors_map_to_typed_errors(
    status: int, code: str, kind: type[Exception], retryable: bool
) -> None:
    envelope = Envelope.model_validate({"errors": [{"code": code, "message": "m"}]})
    error = error_from_status(status, envelope.errors, retry_after=2.0)
    assert type(error) is kind
    assert error.retryable is retryable


def test_rate_limit_keeps_retry_after() -> None:
    error = error_from_status(429, [], retry_after=parse_retry_after("3"))
    assert isinstance(error, ProviderRateLimited) and error.retry_after == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_per_item_errors_map_by_code() -> None:
    assert isinstance(error_from_item(ErrorItem(code="promptBlocked")), SafetyBlocked)
    rejected = error_from_item(ErrorItem(code="invalidSeed", parameter="seed"))
    assert isinstance(rejected, ProviderRejected) and rejected.parameter == "seed"
    assert isinstance(error_from_item(ErrorItem(code="timeoutProvider")), ProviderUnavailable)
