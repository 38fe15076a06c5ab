"""Gemini API raw JSON shapes (responses and error bodies); requests are SDK types.

Source: shared/reference/provider-apis.md §4.4 (``GenerateContentResponse``) and §4.7
(``{"error": {code, message, status, details}}``); field names as in google-genai 3.4
``types.py``. The API answers in camelCase; snake_case is accepted too because Google's JSON
mapping allows both. Vendor models ignore unknown fields: Google adds fields without notice.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = [
    "Blob",
    "Candidate",
    "Content",
    "ErrorBody",
    "ErrorStatus",
    "GenerateContentResponse",
    "Part",
    "PromptFeedback",
    "UsageMetadata",
]


def _alias(camel: str, snake: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(camel, snake))


class _Vendor(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Blob(_Vendor):
    """``inlineData``: base64 ``data`` with its ``mimeType`` (the API never returns URLs)."""

    mime_type: str | None = _alias("mimeType", "mime_type")
    data: str = ""


class Part(_Vendor):
    """One part of a candidate: text, an inline image, or a thought (``thought: true``)."""

    text: str | None = None
    inline_data: Blob | None = _alias("inlineData", "inline_data")
    thought: bool | None = None


class Content(_Vendor):
    """A candidate's ``content``: role ``model`` and its parts (absent when blocked)."""

    role: str | None = None
    parts: list[Part] = Field(default_factory=list)


class Candidate(_Vendor):
    """One candidate; ``finishReason`` says why it ended (``STOP``, ``IMAGE_SAFETY``, ...)."""

    content: Content | None = None
    finish_reason: str | None = _alias("finishReason", "finish_reason")
    finish_message: str | None = _alias("finishMessage", "finish_message")


class PromptFeedback(_Vendor):
    """Set when the prompt itself was refused: ``blockReason`` (``SAFETY``, ``OTHER``, ...)."""

    block_reason: str | None = _alias("blockReason", "block_reason")
    block_reason_message: str | None = _alias("blockReasonMessage", "block_reason_message")


class UsageMetadata(_Vendor):
    """Token counts; the Gemini API bills tokens, so these are the only cost signal."""

    prompt_token_count: int | None = _alias("promptTokenCount", "prompt_token_count")
    candidates_token_count: int | None = _alias("candidatesTokenCount", "candidates_token_count")
    thoughts_token_count: int | None = _alias("thoughtsTokenCount", "thoughts_token_count")
    total_token_count: int | None = _alias("totalTokenCount", "total_token_count")


class GenerateContentResponse(_Vendor):
    """The body of a 200 answer to ``models/{model}:generateContent``."""

    candidates: list[Candidate] = Field(default_factory=list)
    prompt_feedback: PromptFeedback | None = _alias("promptFeedback", "prompt_feedback")
    usage_metadata: UsageMetadata | None = _alias("usageMetadata", "usage_metadata")
    model_version: str | None = _alias("modelVersion", "model_version")
    response_id: str | None = _alias("responseId", "response_id")


class ErrorStatus(_Vendor):
    """``google.rpc.Status`` as JSON: HTTP ``code``, canonical ``status``, typed ``details``.

    ``details`` entries carry ``@type`` (``...google.rpc.RetryInfo`` with ``retryDelay``,
    ``...google.rpc.ErrorInfo`` with ``reason`` such as ``API_KEY_INVALID``).
    """

    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] = Field(default_factory=list)


class ErrorBody(_Vendor):
    """The error envelope ``{"error": {...}}``."""

    error: ErrorStatus = Field(default_factory=ErrorStatus)
