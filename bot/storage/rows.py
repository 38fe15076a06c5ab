"""Rows of the store's tables to and from the core's values.

Both backends share these: SQLite rows hold times as sortable UTC text and flags as 0/1,
PostgreSQL rows hold ``timestamptz`` (decoded as UTC-aware datetimes) and booleans; JSON
columns arrive as text from both.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from bot.budgets import BudgetCap, CapScope, Period
from bot.models import ImageRequest, Job, JobAction, JobStatus, Origin, ResultImage

__all__ = ["Row", "cap_from_row", "dt", "job_from_row", "result_from_row", "ts"]


class Row(Protocol):
    """A database row read by column name (``aiosqlite.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def ts(value: datetime) -> str:
    """A time as SQLite stores it: UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (sorts as time)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dt(value: str | datetime) -> datetime:
    """A stored time (SQLite text or a PostgreSQL datetime) as a UTC-aware datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value)


def job_from_row(row: Row) -> Job:
    return Job(
        id=row["id"],
        origin=Origin.model_validate_json(row["origin_json"]),
        request=ImageRequest.model_validate_json(row["request_json"]),
        action=JobAction(row["action"]),
        parent_job_id=row["parent_job_id"],
        parent_index=row["parent_index"],
        provider=row["provider"],
        status=JobStatus(row["status"]),
        provider_task_id=row["provider_task_id"],
        estimate_micros=row["estimate_micros"],
        cost_micros=row["cost_micros"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        idempotency_key=row["idempotency_key"],
        notices=tuple(json.loads(row["notices_json"])),
        created_at=dt(row["created_at"]),
        updated_at=dt(row["updated_at"]),
    )


def result_from_row(row: Row) -> ResultImage:
    return ResultImage(
        job_id=row["job_id"],
        index=row["idx"],
        media_key=row["media_key"],
        mime_type=row["mime_type"],
        width=row["width"],
        height=row["height"],
        seed=row["seed"],
        cost_micros=row["cost_micros"],
        nsfw=bool(row["nsfw"]),
        withheld=bool(row["withheld"]),
        provider_url=row["provider_url"],
    )


def cap_from_row(row: Row) -> BudgetCap:
    return BudgetCap(
        scope=CapScope(row["scope"]),
        workspace_id=row["workspace_id"],
        scope_id=row["scope_id"],
        period=Period(row["period"]),
        limit_micros=row["limit_micros"],
    )
