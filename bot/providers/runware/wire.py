"""Runware's raw JSON shapes (responses only); our requests are built in ``translate``.

Source: shared/reference/provider-apis.md §1.4-§1.7 and the seed pages 000_*/001_*.
Vendor response models ignore unknown fields: Runware adds fields without notice.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Envelope", "ErrorItem", "ResultItem"]


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ErrorItem(_Vendor):
    """One entry of ``{"errors": [...]}`` (or a per-item ``error`` object)."""

    code: str = "unknownError"
    message: str = ""
    parameter: str | None = None
    task_type: str | None = Field(default=None, alias="taskType")
    task_uuid: str | None = Field(default=None, alias="taskUUID")


class ResultItem(_Vendor):
    """One entry of ``data``: an acknowledgement, a processing marker, a result or a failure."""

    task_type: str | None = Field(default=None, alias="taskType")
    task_uuid: str | None = Field(default=None, alias="taskUUID")
    status: str | None = None
    image_uuid: str | None = Field(default=None, alias="imageUUID")
    image_url: str | None = Field(default=None, alias="imageURL")
    image_base64: str | None = Field(default=None, alias="imageBase64Data")
    image_data_uri: str | None = Field(default=None, alias="imageDataURI")
    seed: int | None = None
    nsfw: bool | None = Field(default=None, alias="NSFWContent")
    cost: float | None = None
    error: ErrorItem | None = None

    @property
    def has_image(self) -> bool:
        return bool(self.image_url or self.image_base64 or self.image_data_uri)


class Envelope(_Vendor):
    """Every REST answer: ``{"data": [...]}``, ``{"errors": [...]}``, or both."""

    data: list[ResultItem] = Field(default_factory=list)
    errors: list[ErrorItem] = Field(default_factory=list)
