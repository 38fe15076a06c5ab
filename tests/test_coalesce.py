"""Chat deliveries' per-job coalescing: in order, throttled, latest wins, never backwards."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.coalesce import UpdateCoalescer
from bot.models import Done, Generating, ImageRequest, Job, JobUpdate, Origin, Queued


def job(job_id: str = "j1", platform: str = "chat") -> Job:
    now = datetime(2026, 11, 21, tzinfo=UTC)
    return Job(
        id=job_id,
        origin=Origin(platform=platform, workspace_id="w", channel_id="c", user_id="u"),
        request=ImageRequest(prompt="a lighthouse"),
        provider="p",
        estimate_micros=1,
        idempotency_key=job_id,
        created_at=now,
        updated_at=now,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_progress_is_throttled_and_the_latest_state_wins() -> None:
    sent: list[JobUpdate] = []

    async def send(update: JobUpdate) -> None:
        sent.append(update)

    clock = Clock()
    coalescer = UpdateCoalescer(send, platform="chat", interval=0.2, monotonic=clock)
    j = job()
    await coalescer.submit(Queued(job=j, position=3))
    await asyncio.sleep(0.01)
    assert [(u.kind, getattr(u, "position", None)) for u in sent] == [("queued", 3)]
    await coalescer.submit(Queued(job=j, position=2))
    await coalescer.submit(Queued(job=j, position=1))
    await coalescer.submit(Generating(job=j, provider="p"))
    await asyncio.sleep(0.05)
    assert len(sent) == 1, "nothing more before the interval"
    await coalescer.submit(Queued(job=j, position=1))  # stale: never after generating
    clock.now += 0.2
    await coalescer.submit(Done(job=j, images=()))
    await coalescer.idle()
    assert [u.kind for u in sent] == ["queued", "done"]
    await coalescer.submit(Generating(job=j, provider="p"))
    await coalescer.idle()
    assert [u.kind for u in sent] == ["queued", "done"], "nothing after the result"


async def test_other_platforms_are_ignored_and_results_are_not_throttled() -> None:
    sent: list[str] = []

    async def send(update: JobUpdate) -> None:
        sent.append(update.kind)

    coalescer = UpdateCoalescer(send, platform="chat", interval=60, monotonic=Clock())
    await coalescer.submit(Queued(job=job(platform="other"), position=1))
    await coalescer.submit(Queued(job=job("j2"), position=1))
    await coalescer.submit(Done(job=job("j2"), images=()))
    await coalescer.idle()
    assert sent == ["done"], "the result replaced the unsent progress and did not wait 60 s"
    await coalescer.close()
