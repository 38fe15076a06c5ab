"""Runbase's raw JSON shapes (runs and error bodies); our requests are built in ``translate``.

Sources: seeds/003_*, 004_* ("poll the status endpoint until status is ``succeeded``, then
read ``output.urls``") and shared/reference/provider-apis.md §3.3-§3.4. The failed-run
shape (``error`` as a string or an object) and ``costUsd`` are only seen in third-party
client code [3P], so both are optional. Vendor models ignore unknown fields.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ErrorBody", "ErrorInfo", "Run", "RunOutput"]


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ErrorInfo(_Vendor):
    """``{"message", "code"}``: the inside of an error answer (§3.4), or a run's ``error``."""

    message: str = ""
    code: str = ""


class ErrorBody(_Vendor):
    """Every error answer: ``{"error": {"message", "code"}}`` (runbase.net/docs/error-codes)."""

    error: ErrorInfo = Field(default_factory=ErrorInfo)


class RunOutput(_Vendor):
    """A run's ``output``: ``{"urls": [...]}`` (seeds "Output Schema": ``urls`` string[])."""

    urls: list[str] = Field(default_factory=list)


class Run(_Vendor):
    """A run as ``POST /runs`` and ``GET /runs/{id}`` return it.

    ``status``: ``succeeded`` is documented; ``pending``/``running``/``failed`` are [3P];
    any other value is treated as not finished. ``cost_usd`` is USD when present.
    """

    id: str = Field(min_length=1)
    status: str = ""
    output: RunOutput | None = None
    error: ErrorInfo | str | None = None
    cost_usd: float | None = Field(default=None, alias="costUsd")

    @property
    def error_info(self) -> ErrorInfo:
        """``error`` as an :class:`ErrorInfo` (a bare string becomes its message)."""
        if isinstance(self.error, ErrorInfo):
            return self.error
        return ErrorInfo(message=self.error or "")
