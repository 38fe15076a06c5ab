"""Rows of the SQLite schema to and from the core's values; times as sortable UTC text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import aiosqlite

from bot.budgets import BudgetCap, CapScope, Period
from bot.models import ImageRequest, Job, JobAction, JobStatus, Origin, ResultImage

__all__ = ["cap_from_row", "dt", "job_from_row", "result_from_row", "ts"]


def ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def job_from_row(row: aiosqlite.Row) -> Job:
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


def result_from_row(row: aiosqlite.Row) -> ResultImage:
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


def cap_from_row(row: aiosqlite.Row) -> BudgetCap:
    return BudgetCap(
        scope=CapScope(row["scope"]),
        workspace_id=row["workspace_id"],
        scope_id=row["scope_id"],
        period=Period(row["period"]),
        limit_micros=row["limit_micros"],
    )
