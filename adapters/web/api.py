"""The playground's HTTP handlers: they translate requests to core calls and views to JSON."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.web.events import SessionHub
from adapters.web.translate import (
    budget_view,
    config_view,
    event_view,
    job_view,
    owns,
    request_fields,
    submit_view,
    web_origin,
)
from adapters.web.uploads import MAX_FILE_BYTES, MAX_FILES, read_imagine_form
from adapters.web.wire import HistoryView
from bot.errors import InvalidRequest, NotFound
from bot.interfaces import MediaStore
from bot.models import (
    Job,
    JobAction,
    JobStatus,
    JobUpdate,
    Origin,
    ResultImage,
    parse_request,
)
from bot.service import ImageService

__all__ = ["SESSION", "PlaygroundApi", "json_response"]

log = logging.getLogger(__name__)

SESSION: Final = web.RequestKey("bb_session", str)
"""The browser session id of a request (set by the server's middleware from the cookie)."""

HISTORY_LIMIT: Final = 30
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")


class _ActBody(BaseModel):
    """The JSON body of ``POST /api/jobs/{job_id}/{action}/{index}`` (every field optional)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str | None = None
    instruction: str | None = None


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    """A JSON answer from a wire model; never cached."""
    return web.Response(
        text=model.model_dump_json(),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _idempotency_key(request_id: str | None) -> str:
    """``web:<request_id>`` for a client-generated id; a fresh one when the client sent none.

    Raises:
        InvalidRequest: ``request_id`` is not 8..64 characters of ``A-Z a-z 0-9 _ -``.
    """
    if request_id is None or not request_id.strip():
        return f"web:{uuid.uuid4()}"
    if _REQUEST_ID.fullmatch(request_id.strip()) is None:
        raise InvalidRequest(
            "request_id", "request_id must be a UUID", ("8..64 characters of A-Z a-z 0-9 _ -",)
        )
    return f"web:{request_id.strip()}"


class PlaygroundApi:
    """Handlers for the JSON API, the event stream and the media route.

    Args:
        service: the core service.
        media: where result images are read from.
        hub: the per-session event fan-out.
        user_id: the playground's one person.
        ping_interval: seconds between ``: ping`` comments on a quiet event stream.
    """

    def __init__(
        self,
        *,
        service: ImageService,
        media: MediaStore,
        hub: SessionHub,
        user_id: str,
        ping_interval: float = 15.0,
    ) -> None:
        self._service = service
        self._media = media
        self._hub = hub
        self._user_id = user_id
        self._ping_interval = ping_interval

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/config", self.config),
            web.post("/api/imagine", self.imagine),
            web.get("/api/history", self.history),
            web.get("/api/budget", self.budget),
            web.get("/api/events", self.events),
            web.get(r"/api/jobs/{job_id:[A-Za-z0-9_-]{1,64}}", self.job),
            web.post(
                r"/api/jobs/{job_id:[A-Za-z0-9_-]{1,64}}/{action:vary|upscale|edit}/{index:\d{1,3}}",
                self.act,
            ),
            web.get(r"/media/{job_id:[A-Za-z0-9_-]{1,64}}/{index:\d{1,3}}", self.media),
        ]

    def _origin(self, request: web.Request) -> Origin:
        return web_origin(self._user_id, request[SESSION])

    async def _owned(self, job_id: str) -> tuple[Job, list[ResultImage]]:
        """The job and its images, if they belong to the playground's person.

        Raises:
            NotFound: no such job, or someone else's (the same answer: nothing to probe).
        """
        job, images = await self._service.job(job_id)
        if not owns(job, self._user_id):
            raise NotFound(f"no job {job_id}")
        return job, images

    async def _position(self, job: Job) -> int | None:
        if job.status is not JobStatus.QUEUED:
            return None
        return (await self._service.positions([job.id])).get(job.id)

    # --- submit -------------------------------------------------------------------------

    async def imagine(self, request: web.Request) -> web.Response:
        """``POST /api/imagine``: multipart form -> references stored -> job queued."""
        form = await read_imagine_form(request)
        fields = dict(form.fields)
        key = _idempotency_key(fields.pop("request_id", None))
        parse_request(request_fields(fields, ()))  # field errors before any image work
        references = [
            await self._service.load_reference(upload.data, index)
            for index, upload in enumerate(form.files)
        ]
        image_request = parse_request(request_fields(fields, references))
        submitted = await self._service.submit(
            image_request, self._origin(request), idempotency_key=key
        )
        log.info(
            "playground submit",
            extra={
                "job": submitted.job.id,
                "new_job": submitted.created,
                "references": len(references),
            },
        )
        return json_response(
            submit_view(self._service.catalog, submitted), 202 if submitted.created else 200
        )

    async def act(self, request: web.Request) -> web.Response:
        """``POST /api/jobs/{job_id}/{vary|upscale|edit}/{index}``: a child job."""
        job_id = request.match_info["job_id"]
        action = JobAction(request.match_info["action"])
        index = int(request.match_info["index"])
        body = await _act_body(request)
        await self._owned(job_id)
        submitted = await self._service.act(
            action,
            job_id,
            index,
            self._origin(request),
            idempotency_key=_idempotency_key(body.request_id),
            instruction=body.instruction,
        )
        return json_response(
            submit_view(self._service.catalog, submitted), 202 if submitted.created else 200
        )

    # --- read ---------------------------------------------------------------------------

    async def config(self, request: web.Request) -> web.Response:
        """``GET /api/config``: models, tiers, ratios per tier, prices and safety levels."""
        policy = await self._service.policy_for(self._origin(request))
        view = config_view(
            self._service.catalog,
            providers=self._service.provider_names,
            safety_max=policy.max_tolerance,
            max_references=MAX_FILES,
            max_upload_bytes=MAX_FILE_BYTES,
        )
        return json_response(view)

    async def job(self, request: web.Request) -> web.Response:
        """``GET /api/jobs/{job_id}``: status, money, error text and images."""
        job, images = await self._owned(request.match_info["job_id"])
        view = job_view(self._service.catalog, job, images, position=await self._position(job))
        return json_response(view)

    async def history(self, request: web.Request) -> web.Response:
        """``GET /api/history``: this person's latest jobs, newest first."""
        jobs = await self._service.recent(self._origin(request), HISTORY_LIMIT)
        queued = [job.id for job in jobs if job.status is JobStatus.QUEUED]
        positions = await self._service.positions(queued) if queued else {}
        views = []
        for job in jobs:
            images: list[ResultImage] = []
            if job.status is JobStatus.SUCCEEDED:  # only succeeded jobs have images
                _, images = await self._service.job(job.id)
            views.append(
                job_view(self._service.catalog, job, images, position=positions.get(job.id))
            )
        return json_response(HistoryView(jobs=tuple(views)))

    async def budget(self, request: web.Request) -> web.Response:
        """``GET /api/budget``: every cap that applies, with spent, held, left and reset."""
        usages = await self._service.budget(self._origin(request))
        return json_response(budget_view(usages, datetime.now(UTC)))

    async def media(self, request: web.Request) -> web.Response:
        """``GET /media/{job_id}/{index}``: a result's bytes; 404 if withheld or unknown."""
        job_id, index = request.match_info["job_id"], int(request.match_info["index"])
        _, images = await self._owned(job_id)
        found = next((image for image in images if image.index == index), None)
        if found is None or found.withheld:
            raise NotFound(f"job {job_id} has no image {index + 1} to show")
        data = await self._media.get(found.media_key)
        return web.Response(
            body=data,
            content_type=found.mime_type,
            headers={"Cache-Control": "private, max-age=86400"},
        )

    # --- events -------------------------------------------------------------------------

    def publish(self, update: JobUpdate) -> None:
        """Send ``update`` to the event streams of the browser session that owns the job."""
        session_id = update.job.origin.reply_handle
        if not session_id:
            return
        event = event_view(self._service.catalog, update)
        self._hub.publish(session_id, event.type, event.model_dump_json())

    async def events(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/events``: Server-Sent Events for this browser session's jobs.

        Sends a ``: ping`` comment after ``ping_interval`` quiet seconds and ends when the
        server shuts down. ``Last-Event-ID`` replays what this session missed (briefly).
        """
        subscription = self._hub.subscribe(request[SESSION], request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n: connected\n\n")
            while (batch := await subscription.next_batch(self._ping_interval)) is not None:
                await response.write(
                    b"".join(event.encode() for event in batch) if batch else b": ping\n\n"
                )
        except ConnectionResetError:
            pass  # the browser went away; EventSource reconnects by itself
        finally:
            self._hub.unsubscribe(subscription)
        return response


async def _act_body(request: web.Request) -> _ActBody:
    """The optional JSON body of an action.

    Raises:
        InvalidRequest: not JSON, or fields other than ``request_id`` and ``instruction``.
    """
    raw = await request.read()
    if not raw.strip():
        return _ActBody()
    try:
        # pydantic's own parser: a deeply nested body is a ValidationError, not a
        # RecursionError as with json.loads.
        return _ActBody.model_validate_json(raw)
    except (ValueError, ValidationError) as exc:
        raise InvalidRequest(
            "request", "the body must be JSON with request_id and instruction", ()
        ) from exc
