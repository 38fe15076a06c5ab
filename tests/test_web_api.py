"""The web playground's HTTP API against the real core (SQLite, media store, sandbox, worker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image
from yarl import URL

from adapters.web import WebPlayground
from adapters.web.events import SessionHub
from adapters.web.translate import event_view
from bot.app import App, build_app
from bot.budgets import BudgetCap, CapScope, Period
from bot.catalog import default_catalog
from bot.models import Failed, ImageRequest, Job, Origin, ResultImage
from bot.ops.server import OpsServer
from bot.settings import Settings

pytestmark = pytest.mark.timeout(60)


def png(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Running:
    app: App
    playground: WebPlayground
    base: str
    serve_task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running_playground(
    tmp_path: Path, *, worker: bool = True, ping_interval: float = 15.0
) -> AsyncIterator[Running]:
    """The real core built by ``build_app`` with the sandbox, the playground on port 0."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path}/t.db",
        data_dir=tmp_path / "data",
        sandbox_delay=0,
        providers=["sandbox"],
    )
    async with build_app(settings) as app:
        # The operations routes beside the playground's, as ``bananabot run`` serves them.
        ops = OpsServer(metrics=app.metrics, checks={}, media=app.media, links=app.links)
        playground = WebPlayground(
            service=app.service,
            media=app.media,
            port=0,
            ping_interval=ping_interval,
            extra_routes=ops.routes(),
        )
        app.router.register(playground.platform, playground)
        serve_task = asyncio.create_task(playground.serve(), name="web")
        tasks = [serve_task]
        if worker:
            tasks.append(asyncio.create_task(app.worker.run(), name="worker"))
        try:
            async with asyncio.timeout(10):
                await playground.started.wait()
            assert playground.bound_port
            yield Running(app, playground, f"http://127.0.0.1:{playground.bound_port}", serve_task)
        finally:
            for task in tasks:
                task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if not isinstance(outcome, asyncio.CancelledError | None):
                    raise outcome


def client() -> aiohttp.ClientSession:
    # unsafe=True: the cookie jar otherwise ignores cookies from an IP address host.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=30)
    )


async def touch(http: aiohttp.ClientSession, base: str) -> None:
    """One request, so the session has its ``bb_session`` cookie before the event stream."""
    async with http.get(f"{base}/api/config") as response:
        assert response.status == 200
        assert "bb_session" in response.cookies


@dataclass
class EventStream:
    """Reads ``/api/events`` in the background and keeps every event (name, data)."""

    session: aiohttp.ClientSession
    base: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[EventStream]:
        async with self.session.get(
            f"{self.base}/api/events", timeout=aiohttp.ClientTimeout(total=None)
        ) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            reader = asyncio.create_task(self._read(response))
            try:
                yield self
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        name, data = "message", ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
            elif not line and data:
                self.events.append((name, json.loads(data)))
                name, data = "message", ""
            self._changed.set()
        self.ended.set()
        self._changed.set()

    def kinds(self, job_id: str) -> list[str]:
        return [name for name, data in self.events if data["job"]["id"] == job_id]

    async def wait_for(self, job_id: str, kind: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for name, data in self.events:
                    if name == kind and data["job"]["id"] == job_id:
                        return data
                assert not self.ended.is_set(), "the event stream ended"
                self._changed.clear()
                await self._changed.wait()


def imagine_form(prompt: str = "a banana on the moon", **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)  # as a browser's FormData
    form.add_field("request_id", fields.pop("request_id", str(uuid.uuid4())))
    form.add_field("prompt", prompt)
    for name, value in {
        "model": "nano-banana-2",
        "aspect_ratio": "16:9",
        "resolution": "1K",
        "n": "1",
        **fields,
    }.items():
        form.add_field(name, value)
    return form


async def submit(http: aiohttp.ClientSession, base: str, form: aiohttp.FormData) -> dict[str, Any]:
    async with http.post(f"{base}/api/imagine", data=form) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 202, body
        return body


async def act(
    http: aiohttp.ClientSession,
    base: str,
    job_id: str,
    action: str,
    index: int = 0,
    **body: str,
) -> dict[str, Any]:
    payload = {"request_id": str(uuid.uuid4()), **body}
    async with http.post(f"{base}/api/jobs/{job_id}/{action}/{index}", json=payload) as response:
        answer: dict[str, Any] = await response.json()
        assert response.status == 202, answer
        return answer


async def fetch_image(http: aiohttp.ClientSession, url: str) -> tuple[Image.Image, str, str]:
    async with http.get(url) as response:
        assert response.status == 200
        data = await response.read()
        return (
            Image.open(BytesIO(data)),
            response.headers["Content-Type"],
            response.headers["Cache-Control"],
        )


async def test_imagine_with_references_streams_progress_and_serves_the_image(
    tmp_path: Path,
) -> None:
    async with running_playground(tmp_path) as run, client() as http:
        async with http.get(f"{run.base}/api/config") as response:
            config = await response.json()
        models = {m["name"]: m for m in config["models"]}
        assert "0.5K" not in models["nano-banana-pro"]["tiers"]
        assert "4:1" not in models["nano-banana-pro"]["ratios"]["1K"]
        assert "4:1" in models["nano-banana-2"]["ratios"]["1K"]
        assert config["safety_tolerances"] == ["low", "medium", "high", "none", "off"]
        assert config["sandbox"] is True

        async with EventStream(http, run.base).open() as stream:
            form = imagine_form()
            form.add_field(
                "ref", png(64, 48, (200, 30, 30)), filename="red.png", content_type="image/png"
            )
            form.add_field(
                "ref", png(40, 40, (30, 30, 200)), filename="blue.png", content_type="image/png"
            )
            answer = await submit(http, run.base, form)
            job_id = answer["job"]["id"]
            assert answer["estimate"] == "$0.06951"  # $0.06895 + 2 x $0.00028
            assert answer["position"] >= 1
            assert answer["job"]["references"] == 2

            done = await stream.wait_for(job_id, "done")
            kinds = stream.kinds(job_id)
            assert kinds[0] == "queued"
            assert kinds.index("generating") < kinds.index("done")
            queued = next(d for n, d in stream.events if n == "queued" and d["job"]["id"] == job_id)
            assert queued["position"] >= 1
            assert done["summary"].startswith("Cost $0.06951 (estimate $0.06951).")
            [image] = done["job"]["images"]
            assert "sandbox" in image["caption"]
            assert image["url"] == f"/media/{job_id}/0"

        picture, content_type, cache = await fetch_image(http, run.base + image["url"])
        assert picture.size == (1376, 768)
        assert content_type == "image/jpeg"
        assert cache == "private, max-age=86400"

        async with http.get(f"{run.base}/api/jobs/{job_id}") as response:
            view = await response.json()
        assert view["status"] == "succeeded" and view["cost"] == "$0.06951"
        assert view["images"][0]["caption"] == image["caption"]
        async with http.get(f"{run.base}/api/history") as response:
            history = await response.json()
        assert [job["id"] for job in history["jobs"]] == [job_id]


async def test_vary_upscale_and_edit_make_child_jobs(tmp_path: Path) -> None:
    async with running_playground(tmp_path) as run, client() as http:
        await touch(http, run.base)
        async with EventStream(http, run.base).open() as stream:
            parent = (await submit(http, run.base, imagine_form(seed="42")))["job"]
            parent_done = (await stream.wait_for(parent["id"], "done"))["job"]
            assert parent_done["images"][0]["seed"] == 42

            vary = (await act(http, run.base, parent["id"], "vary"))["job"]
            assert vary["action"] == "vary"
            assert vary["parent"] == {"job_id": parent["id"], "index": 0}
            vary_done = (await stream.wait_for(vary["id"], "done"))["job"]
            assert vary_done["images"][0]["seed"] != 42

            upscale = (await act(http, run.base, parent["id"], "upscale"))["job"]
            assert (upscale["resolution"], upscale["aspect_ratio"]) == ("4K", "16:9")
            assert upscale["references"] == 1
            upscale_done = (await stream.wait_for(upscale["id"], "done"))["job"]
            assert upscale_done["images"][0]["can_upscale"] is False

            edit = (
                await act(http, run.base, parent["id"], "edit", instruction="make the moon pink")
            )["job"]
            assert edit["prompt"] == "make the moon pink"
            assert (edit["resolution"], edit["aspect_ratio"], edit["references"]) == (
                "1K",
                "16:9",
                1,
            )
            await stream.wait_for(edit["id"], "done")

        stored, _ = await run.app.service.job(upscale["id"])
        assert stored.parent_job_id == parent["id"] and stored.parent_index == 0
        [reference] = stored.request.references
        assert (reference.width, reference.height) == (1376, 768)  # the parent image itself
        picture, _, _ = await fetch_image(http, f"{run.base}/media/{upscale['id']}/0")
        assert picture.size == (5504, 3072)

        async with http.post(f"{run.base}/api/jobs/{upscale['id']}/upscale/0", json={}) as response:
            body = await response.json()
        assert response.status == 400
        assert body["error"]["field"] == "resolution" and "already 4K" in body["error"]["message"]
        async with http.post(
            f"{run.base}/api/jobs/{parent['id']}/edit/0", json={"instruction": "  "}
        ) as response:
            assert response.status == 400
            assert (await response.json())["error"]["field"] == "prompt"
        async with http.post(f"{run.base}/api/jobs/{parent['id']}/vary/3", json={}) as response:
            assert response.status == 404


async def test_bad_size_is_refused_naming_the_field_and_allowed_values(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        form = imagine_form(model="nano-banana-pro", aspect_ratio="4:1")
        async with http.post(f"{run.base}/api/imagine", data=form) as response:
            body = await response.json()
        assert response.status == 400
        error = body["error"]
        assert error["code"] == "invalid_request"
        assert error["field"] == "aspect_ratio"
        assert "4:1" in error["message"] and "Allowed: 1:1, 3:2" in error["message"]
        assert "16:9" in error["allowed"] and "4:1" not in error["allowed"]
        assert "Traceback" not in json.dumps(body)

        form = imagine_form(model="nano-banana-pro", resolution="0.5K")
        async with http.post(f"{run.base}/api/imagine", data=form) as response:
            body = await response.json()
        assert response.status == 400
        assert body["error"]["field"] == "resolution"
        assert body["error"]["allowed"] == ["1K", "2K", "4K"]

        async with http.post(f"{run.base}/api/imagine", data=imagine_form("hi")) as response:
            assert (await response.json())["error"]["field"] == "prompt"
        async with http.post(f"{run.base}/api/imagine", data=imagine_form(seed="x")) as response:
            assert (await response.json())["error"]["field"] == "seed"
        async with http.post(f"{run.base}/api/imagine", data=imagine_form(color="red")) as response:
            assert response.status == 400
            assert (await response.json())["error"]["field"] == "color"
        async with http.get(f"{run.base}/api/history") as response:
            assert (await response.json())["jobs"] == []


async def test_over_budget_is_402_with_the_reason_and_charges_nothing(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        cap = BudgetCap(
            scope=CapScope.USER,
            workspace_id="local",
            scope_id="local",
            period=Period.DAY,
            limit_micros=50_000,
        )
        await run.app.store.set_cap(cap, datetime.now(UTC))
        before = await run.app.store.ledger_totals()

        async with http.post(f"{run.base}/api/imagine", data=imagine_form()) as response:
            body = await response.json()
        assert response.status == 402
        assert body["error"]["code"] == "budget_exceeded"
        message = body["error"]["message"]
        assert message.startswith("Over budget: your daily cap is $0.05 and $0.05 is left")
        assert "$0.06895" in message and message.endswith("Nothing was charged.")

        assert await run.app.store.ledger_totals() == before
        async with http.get(f"{run.base}/api/history") as response:
            assert (await response.json())["jobs"] == []
        async with http.get(f"{run.base}/api/budget") as response:
            budget = await response.json()
        [shown] = budget["caps"]
        assert (shown["spent"], shown["held"], shown["left"]) == ("$0.00", "$0.00", "$0.05")
        assert budget["line"].startswith("Your daily cap: $0.05 of $0.05 left, resets ")


async def test_the_same_request_id_twice_makes_one_job(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        request_id = str(uuid.uuid4())
        first = await submit(http, run.base, imagine_form(request_id=request_id))
        async with http.post(
            f"{run.base}/api/imagine", data=imagine_form(request_id=request_id)
        ) as response:
            second = await response.json()
        assert response.status == 200
        assert second["created"] is False and first["created"] is True
        assert second["job"]["id"] == first["job"]["id"]
        async with http.get(f"{run.base}/api/history") as response:
            assert len((await response.json())["jobs"]) == 1
        totals = await run.app.store.ledger_totals()
        assert totals == {"reserve": 68_950}
        job, _ = await run.app.service.job(first["job"]["id"])
        assert job.idempotency_key == f"web:{request_id}"
        assert (
            job.origin.platform,
            job.origin.workspace_id,
            job.origin.channel_id,
            job.origin.user_id,
            job.origin.channel_nsfw,
        ) == ("web", "local", "playground", "local", False)
        assert (
            job.origin.reply_handle
            == http.cookie_jar.filter_cookies(URL(run.base))["bb_session"].value
        )

        async with http.get(f"{run.base}/api/budget") as response:
            assert (await response.json())["caps"] == []


async def test_withheld_and_unknown_media_are_not_found(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        job_id = (await submit(http, run.base, imagine_form()))["job"]["id"]
        now = datetime.now(UTC)
        assert await run.app.store.claim("sandbox", now, job_id) is not None
        stored = await run.app.media.put_image(png(1376, 768, (10, 120, 10)))
        images = [
            ResultImage(
                job_id=job_id,
                index=i,
                media_key=stored.key,
                mime_type=stored.mime_type,
                width=stored.width,
                height=stored.height,
                nsfw=i == 0,
                withheld=i == 0,
            )
            for i in range(2)
        ]
        await run.app.store.finish(job_id, images, 68_950, now)

        async with http.get(f"{run.base}/api/jobs/{job_id}") as response:
            view = await response.json()
        assert [(i["withheld"], i["url"]) for i in view["images"]] == [
            (True, None),
            (False, f"/media/{job_id}/1"),
        ]
        async with http.get(f"{run.base}/media/{job_id}/0") as response:
            assert response.status == 404
            assert response.content_type == "application/json"
        async with http.get(f"{run.base}/media/{job_id}/1") as response:
            assert response.status == 200 and response.content_type == "image/png"
        for path in (f"/media/{job_id}/2", "/media/nosuchjob/0", "/api/jobs/nosuchjob"):
            async with http.get(run.base + path) as response:
                assert response.status == 404, path
                assert (await response.json())["error"]["code"] == "not_found"
        async with http.post(f"{run.base}/api/jobs/{job_id}/vary/0", json={}) as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "policy_refused"


async def test_cross_origin_and_foreign_host_requests_are_refused(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        for headers in (
            {"Origin": "http://evil.example"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
        ):
            async with http.post(
                f"{run.base}/api/imagine", data=imagine_form(), headers=headers
            ) as response:
                assert response.status == 403, headers
                assert (await response.json())["error"]["code"] == "cross_origin"
        async with http.get(f"{run.base}/api/history") as response:
            assert (await response.json())["jobs"] == []

        same = {"Origin": run.base, "Sec-Fetch-Site": "same-origin"}
        async with http.post(
            f"{run.base}/api/imagine", data=imagine_form(), headers=same
        ) as response:
            assert response.status == 202
        # DNS rebinding: a foreign name that resolves to 127.0.0.1 is not the playground.
        async with http.get(
            f"{run.base}/api/history", headers={"Host": "evil.example:8080"}
        ) as response:
            assert response.status == 403
        # The operations routes are outside the guard: monitoring uses other host names.
        async with http.get(
            f"{run.base}/healthz", headers={"Host": "monitor.example:8080"}
        ) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"


async def test_pages_headers_and_session_cookie(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        async with http.get(f"{run.base}/") as response:
            page = await response.text()
            assert response.status == 200
            csp = response.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "img-src 'self' data: blob:" in csp
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            cookie = response.cookies["bb_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert 'data-testid="prompt"' in page and 'data-testid="generate"' in page
        for asset in ("/static/app.js", "/static/style.css"):
            async with http.get(run.base + asset) as response:
                assert response.status == 200, asset
        async with http.get(f"{run.base}/static/") as response:
            assert response.status in (403, 404)
        async with http.get(f"{run.base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["status"] == "ok"
        async with http.get(f"{run.base}/api/nothing") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "http_error"
        async with http.get(f"{run.base}/api/config") as response:
            assert "bb_session" not in response.cookies  # the browser already has one


async def test_upload_limits_are_clear(tmp_path: Path) -> None:
    async with running_playground(tmp_path, worker=False) as run, client() as http:
        form = imagine_form()
        for i in range(15):
            form.add_field(
                "ref", png(8, 8, (i, i, i)), filename=f"{i}.png", content_type="image/png"
            )
        async with http.post(f"{run.base}/api/imagine", data=form) as response:
            body = await response.json()
        assert response.status == 400
        assert body["error"]["field"] == "references" and "14" in body["error"]["message"]

        form = imagine_form()
        form.add_field(
            "ref",
            BytesIO(b"\0" * (20 * 1024 * 1024 + 1)),
            filename="huge.png",
            content_type="image/png",
        )
        async with http.post(f"{run.base}/api/imagine", data=form) as response:
            body = await response.json()
        assert response.status == 400
        assert body["error"]["message"] == (
            "Reference image 1 could not be used: huge.png is larger than the limit of 20 MiB."
        )

        form = imagine_form()
        form.add_field("ref", b"not an image", filename="notes.txt", content_type="text/plain")
        async with http.post(f"{run.base}/api/imagine", data=form) as response:
            body = await response.json()
        assert response.status == 400
        assert body["error"]["code"] == "reference_image"
        assert body["error"]["message"].startswith("Reference image 1 could not be used")


async def test_events_go_only_to_the_session_that_asked(tmp_path: Path) -> None:
    async with running_playground(tmp_path) as run, client() as alice, client() as bob:
        await touch(alice, run.base)
        await touch(bob, run.base)
        async with (
            EventStream(alice, run.base).open() as alice_events,
            EventStream(bob, run.base).open() as bob_events,
        ):
            alice_job = (await submit(alice, run.base, imagine_form()))["job"]["id"]
            await alice_events.wait_for(alice_job, "done")
            bob_job = (await submit(bob, run.base, imagine_form("a pear")))["job"]["id"]
            await bob_events.wait_for(bob_job, "done")
            assert {data["job"]["id"] for _, data in bob_events.events} == {bob_job}
            assert bob_job not in {data["job"]["id"] for _, data in alice_events.events}


async def test_event_stream_pings_and_ends_on_shutdown(tmp_path: Path) -> None:
    async with (
        running_playground(tmp_path, worker=False, ping_interval=0.1) as run,
        client() as http,
        EventStream(http, run.base).open() as stream,
    ):
        async with asyncio.timeout(5):
            while "ping" not in stream.comments:
                await asyncio.sleep(0.05)
        run.serve_task.cancel()
        async with asyncio.timeout(5):
            await stream.ended.wait()


async def test_event_hub_drops_the_oldest_and_replays_after_last_event_id() -> None:
    hub = SessionHub(backlog=3)
    early = hub.subscribe("s1")
    for n in range(5):
        hub.publish("s1", "queued", f'{{"n": {n}}}')
    hub.publish("s2", "queued", '{"n": 99}')
    batch = await early.next_batch(0.1)
    assert batch is not None
    assert [event.data for event in batch] == ['{"n": 2}', '{"n": 3}', '{"n": 4}']
    assert early.dropped == 2

    late = hub.subscribe("s1", last_event_id=batch[0].id)  # a reconnecting EventSource
    replayed = await late.next_batch(0.1)
    assert replayed is not None
    assert [event.data for event in replayed] == ['{"n": 3}', '{"n": 4}']
    assert await hub.subscribe("s1", last_event_id="other-process.1").next_batch(0.01) == []

    hub.close()
    assert await early.next_batch(5) is None  # shutdown ends the stream at once


async def test_event_hub_keeps_streaming_sessions_and_forgets_idle_ones_first() -> None:
    hub = SessionHub(max_sessions=2)
    for name in ("s1", "s2"):
        hub.subscribe(name)
    third = hub.subscribe("s3")  # every older session streams: none can be forgotten
    hub.publish("s3", "queued", '{"n": 3}')
    hub.publish("s4", "queued", '{"n": 4}')  # a new session while all others stream
    batch = await third.next_batch(0.1)
    assert batch is not None and [event.data for event in batch] == ['{"n": 3}']

    async def replayed(hub: SessionHub, session_id: str, after: str) -> list[str]:
        subscription = hub.subscribe(session_id, last_event_id=after)
        events = await subscription.next_batch(0.01)
        hub.unsubscribe(subscription)
        return [event.data for event in events or []]

    hub = SessionHub(max_sessions=3)
    streams = {name: hub.subscribe(name) for name in ("s1", "s2", "s3")}
    hub.publish("s2", "queued", '{"n": 2}')
    hub.publish("s1", "queued", '{"n": 1}')  # s1 is now used more recently than s2
    batch = await streams["s2"].next_batch(0.1)
    assert batch is not None
    before_all = batch[0].id.split(".")[0] + ".0"
    hub.unsubscribe(streams["s1"])
    hub.unsubscribe(streams["s2"])
    hub.publish("s4", "queued", '{"n": 4}')  # room for s4: the older idle session goes
    assert await replayed(hub, "s1", before_all) == ['{"n": 1}']
    assert await replayed(hub, "s2", before_all) == []


def test_a_failed_update_carries_the_failure_text() -> None:
    now = datetime.now(UTC)
    job = Job(
        id="abc",
        origin=Origin(
            platform="web",
            workspace_id="local",
            channel_id="playground",
            user_id="local",
            reply_handle="s",
        ),
        request=ImageRequest(prompt="a banana"),
        provider="runware",
        status="failed",
        estimate_micros=68_950,
        error_code="safety_blocked",
        error_message="blocked",
        idempotency_key="web:x",
        created_at=now,
        updated_at=now,
    )
    update = Failed(job=job, error_code="safety_blocked", message="blocked", refunded_micros=68_950)
    event = event_view(default_catalog(), update)
    assert event.type == "failed"
    assert event.error == (
        "The provider's safety filter blocked this prompt or its result. You were not charged."
    )
    assert event.job.error == event.error and event.job.finished and event.job.cost is None
