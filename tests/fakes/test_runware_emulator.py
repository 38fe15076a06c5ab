"""Tests of the Runware emulator itself: it accepts what Runware accepts and rejects the rest."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from tests.fakes.runware import NSFW_MARKER, SAFETY_BLOCK_MARKER, RunwareEmulator

pytestmark = pytest.mark.asyncio

KEY = "test-key"
REPO_ROOT = Path(__file__).resolve().parents[2]
_FIXTURE_NAME = "runware-seed-examples.json"
_FIXTURE_CANDIDATES = (
    REPO_ROOT / "tests" / "fixtures" / _FIXTURE_NAME,
    REPO_ROOT.parent / "shared" / "fixtures" / _FIXTURE_NAME,
)


def _seed_examples() -> list[dict[str, Any]]:
    for path in _FIXTURE_CANDIDATES:
        if path.is_file():
            examples: list[dict[str, Any]] = json.loads(path.read_text())["examples"]
            return examples
    raise FileNotFoundError(f"{_FIXTURE_NAME} not found in {[str(p) for p in _FIXTURE_CANDIDATES]}")


SEED_EXAMPLES = _seed_examples()


def nb2_task(**overrides: Any) -> dict[str, Any]:
    """A minimal valid Nano Banana 2 text-to-image task (seeds/001 size table: 1K 1:1)."""
    task: dict[str, Any] = {
        "taskType": "imageInference",
        "taskUUID": str(uuid.uuid4()),
        "model": "google:4@3",
        "positivePrompt": "a yellow banana on a desk",
        "width": 1024,
        "height": 1024,
        "includeCost": True,
    }
    task.update(overrides)
    return task


def pro_task(**overrides: Any) -> dict[str, Any]:
    """A minimal valid Nano Banana Pro task (seeds/000 example size 2528x1696)."""
    return nb2_task(**{"model": "google:4@2", "width": 2528, "height": 1696, **overrides})


def png_data_uri(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest_asyncio.fixture
async def emu() -> AsyncIterator[RunwareEmulator]:
    async with RunwareEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as client:
        yield client


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: Any,
    *,
    key: str | None = KEY,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    data = raw if raw is not None else json.dumps(body).encode()
    headers["Content-Type"] = "application/json"
    async with session.post(url, data=data, headers=headers) as response:
        return response.status, await response.json(), dict(response.headers)


async def fetch_image(session: aiohttp.ClientSession, url: str) -> Image.Image:
    async with session.get(url) as response:
        assert response.status == 200
        return Image.open(io.BytesIO(await response.read()))


# -- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("example", SEED_EXAMPLES, ids=[e["title"] for e in SEED_EXAMPLES])
async def test_seed_example_is_accepted_and_costs_the_seed_price(
    emu: RunwareEmulator, session: aiohttp.ClientSession, example: dict[str, Any]
) -> None:
    task = copy.deepcopy(example["request"])
    task.update(deliveryMethod="sync", includeCost=True)
    expected = example["response"]

    status, envelope, _ = await post(session, emu.base_url, [task])

    assert status == 200, envelope
    [item] = envelope["data"]
    assert item["taskUUID"] == expected["taskUUID"]
    assert item["cost"] == expected["cost"]
    assert item["NSFWContent"] is False
    if "seed" in task:
        assert item["seed"] == task["seed"]
    else:
        assert 0 <= item["seed"] < 2**32
    assert [(c.task_uuid, c.cost) for c in emu.charges] == [(task["taskUUID"], expected["cost"])]
    image = await fetch_image(session, item["imageURL"])
    assert image.size == (task["width"], task["height"])
    assert image.format == "JPEG"


async def test_async_task_is_processing_then_succeeds(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    task = nb2_task(deliveryMethod="async", outputFormat="PNG", seed=7, numberResults=2)
    poll = [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]

    status, ack, _ = await post(session, emu.base_url, [task])
    assert (status, ack) == (
        200,
        {"data": [{"taskType": "imageInference", "taskUUID": task["taskUUID"]}]},
    )
    status, first, _ = await post(session, emu.base_url, poll)
    assert status == 200
    assert [i["status"] for i in first["data"]] == ["processing", "processing"]
    status, second, _ = await post(session, emu.base_url, poll)

    assert status == 200
    assert [i["status"] for i in second["data"]] == ["success", "success"]
    assert [i["seed"] for i in second["data"]] == [7, 8]
    assert all(i["cost"] == 0.06895 for i in second["data"])
    assert emu.polls[task["taskUUID"]] == 2
    assert [c.cost for c in emu.charges] == [0.1379]
    image = await fetch_image(session, second["data"][0]["imageURL"])
    assert (image.size, image.format) == ((1024, 1024), "PNG")
    assert second["data"][0]["imageURL"].startswith(emu.base_url + "image/")


async def test_processing_delay_keeps_task_processing(session: aiohttp.ClientSession) -> None:
    async with RunwareEmulator(KEY, processing_delay=0.3, processing_polls=0) as emu:
        task = nb2_task(deliveryMethod="async")
        await post(session, emu.base_url, [task])
        poll = [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
        _, early, _ = await post(session, emu.base_url, poll)
        await asyncio.sleep(0.35)
        _, late, _ = await post(session, emu.base_url, poll)
    assert early["data"][0]["status"] == "processing"
    assert late["data"][0]["status"] == "success"


async def test_v1_alias_and_base64_output(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    task = nb2_task(width=512, height=512, outputType="base64Data", outputFormat="WEBP")
    status, envelope, _ = await post(session, emu.base_url + "v1", [task])
    assert status == 200, envelope
    data = base64.b64decode(envelope["data"][0]["imageBase64Data"])
    assert Image.open(io.BytesIO(data)).size == (512, 512)
    assert envelope["data"][0]["cost"] == 0.04657


async def test_resolution_follows_first_reference_aspect(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    task = nb2_task(outputType="dataURI", inputs={"referenceImages": [png_data_uri(160, 90)]})
    del task["width"], task["height"]
    task["resolution"] = "0.5K"
    status, envelope, _ = await post(session, emu.base_url, [task])
    assert status == 200, envelope
    uri = envelope["data"][0]["imageDataURI"]
    assert uri.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.size == (688, 384)  # seeds/001: 0.5K 16:9
    assert envelope["data"][0]["cost"] == 0.04685  # 0.04657 + one reference


ACCEPTED_SIZES = [
    ("google:4@2", 1548, 672, 0.138),  # Pro page's 1K 21:9 variant
    ("google:4@2", 1584, 672, 0.138),  # NB2 table's 1K 21:9
    ("google:4@2", 5096, 3392, 0.244),  # Pro page's 4K 3:2 variant
    ("google:4@2", 3392, 5056, 0.244),
    ("google:4@3", 792, 168, 0.04657),  # seeds/001 0.5K 21:9 as published
    ("google:4@3", 12288, 1536, 0.15295),  # seeds/001 4K 8:1
]


@pytest.mark.parametrize(("model", "width", "height", "cost"), ACCEPTED_SIZES)
async def test_table_sizes_are_accepted_at_their_tier_price(
    emu: RunwareEmulator,
    session: aiohttp.ClientSession,
    model: str,
    width: int,
    height: int,
    cost: float,
) -> None:
    task = nb2_task(model=model, width=width, height=height)
    status, envelope, _ = await post(session, emu.base_url, [task])
    assert status == 200, envelope
    assert envelope["data"][0]["cost"] == cost
    image = await fetch_image(session, envelope["data"][0]["imageURL"])
    assert image.size == (width, height)


async def test_grounded_search_surcharge_is_opt_in(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    task = nb2_task(providerSettings={"google": {"webSearch": True}})
    emu.charge_grounded_search = True
    _, envelope, _ = await post(session, emu.base_url, [task])
    assert envelope["data"][0]["cost"] == 0.20895  # seeds/001: 1K + $0.14 grounded search


async def test_authentication_task_replaces_the_header(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    auth = {"taskType": "authentication", "apiKey": KEY}
    status, envelope, _ = await post(session, emu.base_url, [auth, nb2_task()], key=None)
    assert status == 200, envelope
    assert [item["taskType"] for item in envelope["data"]] == ["imageInference"]


# -- rejected ---------------------------------------------------------------------------------

REJECTIONS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "unknown top-level field",
        nb2_task(negativePrompt="blurry"),
        "unknownParameter",
        "negativePrompt",
    ),
    (
        "unknown nested field",
        nb2_task(settings={"steps": 30}),
        "unknownParameter",
        "settings.steps",
    ),
    ("size not in the table", nb2_task(width=1000, height=1000), "invalidDimensions", "width"),
    (
        "resolution with width/height",
        nb2_task(resolution="1K"),
        "incompatibleParameters",
        "resolution",
    ),
    (
        "prompt of 2 characters",
        nb2_task(positivePrompt="ab"),
        "invalidPositivePrompt",
        "positivePrompt",
    ),
    (
        "15 references",
        nb2_task(inputs={"referenceImages": [f"https://example.com/{i}.png" for i in range(15)]}),
        "invalidReferenceImages",
        "inputs.referenceImages",
    ),
    (
        "empty references",
        nb2_task(inputs={"referenceImages": []}),
        "invalidReferenceImages",
        "inputs.referenceImages",
    ),
    (
        "thinking on Pro",
        pro_task(settings={"thinking": "HIGH"}),
        "unknownParameter",
        "settings.thinking",
    ),
    (
        "imageSearch on Pro",
        pro_task(providerSettings={"google": {"imageSearch": True}}),
        "unknownParameter",
        "providerSettings.google.imageSearch",
    ),
    ("0.5K on Pro", pro_task(width=512, height=512), "invalidDimensions", "width"),
    ("unknown model", nb2_task(model="google:4@9"), "invalidModel", "model"),
    ("taskUUID not v4", nb2_task(taskUUID="not-a-uuid"), "invalidTaskUUID", "taskUUID"),
    (
        "width without height",
        {k: v for k, v in nb2_task().items() if k != "height"},
        "missingHeight",
        "height",
    ),
    (
        "no size at all",
        {k: v for k, v in nb2_task().items() if k not in ("width", "height")},
        "missingDimensions",
        "width",
    ),
    ("numberResults 21", nb2_task(numberResults=21), "invalidNumberResults", "numberResults"),
    (
        "temperature off step",
        nb2_task(settings={"temperature": 0.555}),
        "invalidTemperature",
        "settings.temperature",
    ),
    (
        "bad safetyTolerance",
        nb2_task(providerSettings={"google": {"safetyTolerance": "max"}}),
        "invalidSafetyTolerance",
        "providerSettings.google.safetyTolerance",
    ),
    (
        "reference that is no image",
        nb2_task(inputs={"referenceImages": ["not an image!"]}),
        "invalidReferenceImages",
        "inputs.referenceImages[0]",
    ),
]


@pytest.mark.parametrize(
    ("task", "code", "parameter"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
async def test_invalid_task_is_rejected_and_not_charged(
    emu: RunwareEmulator,
    session: aiohttp.ClientSession,
    task: dict[str, Any],
    code: str,
    parameter: str,
) -> None:
    status, envelope, _ = await post(session, emu.base_url, [task])

    assert status == 400
    [error] = envelope["errors"]
    assert (error["code"], error["parameter"], error["taskType"]) == (
        code,
        parameter,
        "imageInference",
    )
    assert "data" not in envelope
    assert emu.tasks == {} and emu.charges == []


@pytest.mark.parametrize("key", ["wrong-key", None], ids=["wrong key", "no key"])
async def test_bad_api_key_is_401(
    emu: RunwareEmulator, session: aiohttp.ClientSession, key: str | None
) -> None:
    status, envelope, _ = await post(session, emu.base_url, [nb2_task()], key=key)
    assert status == 401
    assert envelope["errors"][0]["code"] == "invalidApiKey"
    assert envelope["errors"][0]["taskType"] == "authentication"
    assert emu.charges == []


@pytest.mark.parametrize(
    "raw",
    [json.dumps(nb2_task()).encode(), b"{not json", b"[]"],
    ids=["object", "not json", "empty array"],
)
async def test_body_that_is_not_an_array_of_tasks_is_400(
    emu: RunwareEmulator, session: aiohttp.ClientSession, raw: bytes
) -> None:
    status, envelope, _ = await post(session, emu.base_url, None, raw=raw)
    assert status == 400
    assert envelope["errors"][0]["code"] == "invalidRequestBody"
    assert emu.charges == []


async def test_reused_task_uuid_conflicts_and_is_charged_once(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    task = nb2_task(deliveryMethod="async")
    first_status, _, _ = await post(session, emu.base_url, [task])
    status, envelope, _ = await post(session, emu.base_url, [task])

    assert first_status == 200
    assert status == 400
    assert envelope["errors"][0]["code"] == "conflictTaskUUID"
    assert envelope["errors"][0]["parameter"] == "taskUUID"
    assert list(emu.tasks) == [task["taskUUID"]]
    assert [c.task_uuid for c in emu.charges] == [task["taskUUID"]]


async def test_unknown_task_uuid_poll_is_task_not_found(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    unknown = str(uuid.uuid4())
    status, envelope, _ = await post(
        session, emu.base_url, [{"taskType": "getResponse", "taskUUID": unknown}]
    )
    assert status == 400
    assert envelope["errors"][0]["code"] == "taskNotFound"
    assert emu.polls == {unknown: 1}


# -- failure injection ------------------------------------------------------------------------


async def test_fail_next_answers_429_with_retry_after_then_recovers(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    emu.fail_next(429, retry_after=2)
    task = nb2_task()
    status, envelope, headers = await post(session, emu.base_url, [task])
    assert (status, headers["Retry-After"]) == (429, "2")
    assert envelope["errors"][0]["code"] == "rateLimitExceeded"
    assert emu.charges == []

    status, _, _ = await post(session, emu.base_url, [task])
    assert status == 200
    assert len(emu.charges) == 1


async def test_fail_next_can_target_polls_only(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    emu.fail_next(503, task_type="getResponse")
    task = nb2_task(deliveryMethod="async")
    assert (await post(session, emu.base_url, [task]))[0] == 200
    status, envelope, _ = await post(
        session, emu.base_url, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    )
    assert status == 503
    assert envelope["errors"][0]["code"] == "serviceUnavailable"


async def test_safety_block_is_a_per_item_error_and_free(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    task = nb2_task(deliveryMethod="async", positivePrompt=f"a cat {SAFETY_BLOCK_MARKER}")
    emu.processing_polls = 0
    await post(session, emu.base_url, [task])
    _, envelope, _ = await post(
        session, emu.base_url, [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    )
    [item] = envelope["data"]
    assert item["status"] == "error"
    assert item["error"]["code"] == "contentPolicyViolation"
    assert [(c.cost, c.blocked) for c in emu.charges] == [(0.0, True)]

    status, sync, _ = await post(
        session, emu.base_url, [nb2_task(positivePrompt=f"x {SAFETY_BLOCK_MARKER}")]
    )
    assert status == 400
    assert sync["errors"][0]["code"] == "contentPolicyViolation"


async def test_nsfw_marker_flags_result(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    _, envelope, _ = await post(
        session, emu.base_url, [nb2_task(positivePrompt=f"a beach {NSFW_MARKER}")]
    )
    assert envelope["data"][0]["NSFWContent"] is True


async def test_insufficient_credits_is_402_and_creates_nothing(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    emu.insufficient_credits = True
    status, envelope, _ = await post(session, emu.base_url, [nb2_task()])
    assert status == 402
    assert envelope["errors"][0]["code"] == "insufficientCredits"
    assert emu.tasks == {} and emu.charges == []


async def test_dropped_response_after_processing_leaves_one_task(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    emu.drop_next(process_first=True)
    task = nb2_task(deliveryMethod="async")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, emu.base_url, [task])
    status, envelope, _ = await post(session, emu.base_url, [task])
    assert status == 400
    assert envelope["errors"][0]["code"] == "conflictTaskUUID"
    assert len(emu.charges) == 1


async def test_hang_outlasts_a_client_timeout(
    emu: RunwareEmulator, session: aiohttp.ClientSession
) -> None:
    emu.hang_next(5)
    with pytest.raises(TimeoutError):
        async with session.post(
            emu.base_url,
            json=[nb2_task()],
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ):
            pass


async def test_requests_are_recorded(emu: RunwareEmulator, session: aiohttp.ClientSession) -> None:
    task = nb2_task()
    await post(session, emu.base_url, [task])
    [recorded] = emu.requests
    assert (recorded.method, recorded.path, recorded.body) == ("POST", "/", [task])
    assert recorded.headers["Authorization"] == f"Bearer {KEY}"
    assert emu.tasks == {task["taskUUID"]: task}


async def test_runs_as_a_separate_process(session: aiohttp.ClientSession) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.runware",
        "--port",
        "0",
        "--api-key",
        "cli-key",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.removeprefix("listening on ")
        status, envelope, _ = await post(session, base_url, [nb2_task()], key="cli-key")
        assert status == 200, envelope
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 20)
