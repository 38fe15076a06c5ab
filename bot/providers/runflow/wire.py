"""Runflow's raw JSON shapes (runs, errors, callbacks); requests are built in ``translate``.

Sources: seeds/002_* (Nano Banana Pro page: output schema, callback payload) and
shared/reference/provider-apis.md §2.3-§2.6 (run object, ``status_code``, error envelope).
Vendor models ignore unknown fields: Runflow adds fields without notice.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CallbackEvent", "ErrorBody", "ErrorDetail", "OutputItem", "Run", "RunOutput"]


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ErrorDetail(_Vendor):
    """One entry of ``errors`` (per-field details of a 422); its exact shape is [U]."""

    field: str | None = None
    loc: list[str | int] | None = None
    message: str = ""
    code: str | None = None

    @property
    def parameter(self) -> str:
        """The offending field as a dotted path (``input.resolution``), or ``""``."""
        if self.field:
            return self.field
        return ".".join(str(part) for part in self.loc or ())


class ErrorBody(_Vendor):
    """Every error answer: ``{"code", "message", "errors"}`` (provider-apis.md §2.6)."""

    code: str = ""
    message: str = ""
    errors: list[ErrorDetail] | None = None


class OutputItem(_Vendor):
    """One entry of ``outputs``: "one entry per generated artifact with url/type/width/height"."""

    url: str | None = None
    type: str | None = None
    width: int | None = None
    height: int | None = None


class RunOutput(_Vendor):
    """A run's normalized ``output`` (seeds/002_* "Output schema").

    ``image_urls`` is the other shape seen in Runflow's callback examples (§2.4: "Parse both").
    """

    outputs: list[OutputItem] = Field(default_factory=list)
    image_urls: list[str] = Field(default_factory=list)
    nsfw_detected: bool | None = None
    seed: int | None = None

    def urls(self) -> list[str]:
        """The image URLs, ``outputs`` first; non-image artifacts are skipped."""
        urls = [o.url for o in self.outputs if o.url and o.type in (None, "image")]
        return urls or list(self.image_urls)


class Run(_Vendor):
    """A run as ``POST .../runs`` and ``GET /v1/runs/{id}`` return it (§2.3).

    ``status_code`` is the documented field; ``status`` is accepted too (the callback
    spelling). ``cost`` is a decimal string in USD, or null until billed.
    """

    id: str = Field(min_length=1)
    status_code: str | None = None
    status: str | None = None
    output: RunOutput | None = None
    cost: str | float | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    failure_stage_code: str | None = None

    @property
    def state(self) -> str:
        """The lifecycle state, lower case (``queued`` ... ``succeeded``), ``""`` if absent."""
        return (self.status_code or self.status or "").lower()


class CallbackEvent(_Vendor):
    """The body Runflow POSTs to ``callback_url`` at a terminal state (seeds/002_*).

    Verify ``Runflow-Signature`` over the raw bytes before parsing (see ``callbacks``).
    """

    event: str
    run_id: str = Field(min_length=1, max_length=200)
    status: str
    output: RunOutput | None = None
    duration_ms: float | None = None
    created_at: str | None = None
    completed_at: str | None = None
    metadata: dict[str, object] | None = None
