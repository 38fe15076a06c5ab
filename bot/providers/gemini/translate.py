"""Pure translation between bananabot and the Gemini API: request to SDK call, answers to results.

No I/O here. Wire rules from shared/reference/provider-apis.md §4 (request §4.3, response
§4.4) and google-genai 3.4 ``types.py`` (enum values, which fields the Gemini API refuses).
HTTP and transport errors are mapped in :mod:`bot.providers.gemini.errors`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from google.genai import types
from pydantic import ValidationError

from bot.catalog import ResolvedSize
from bot.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderProtocolError,
    ProviderRejected,
    ReferenceImageError,
    SafetyBlocked,
)
from bot.interfaces import ReferenceData
from bot.models import ImageRequest
from bot.policy import TOLERANCE_SCALE
from bot.providers.gemini.wire import GenerateContentResponse, UsageMetadata

__all__ = [
    "DEFAULT_API_VERSION",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL_IDS",
    "HARM_CATEGORIES",
    "IMAGE_SIZES",
    "MAX_REFERENCES",
    "PROVIDER",
    "REFERENCE_MIME_TYPES",
    "RESPONSE_MODALITIES",
    "GeminiCall",
    "GeneratedPart",
    "build_call",
    "ignored_field_notices",
    "parse_response",
    "split_base_url",
]

PROVIDER: Final = "gemini"

DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com/"
DEFAULT_API_VERSION: Final = "v1beta"
"""provider-apis.md §4.2 documents ``/v1beta/models/{id}:generateContent``; google-genai 3.x
would otherwise default to ``v1``, so the version is always sent explicitly."""

DEFAULT_MODEL_IDS: Mapping[str, str] = {
    "nano-banana-pro": "gemini-3-pro-image",
    "nano-banana-2": "gemini-3.1-flash-image",
}
"""GA ids (provider-apis.md §4.1: the ``-preview`` ids shut down 2026-06-25); configurable."""

IMAGE_SIZES: Mapping[str, str] = {"0.5K": "512", "1K": "1K", "2K": "2K", "4K": "4K"}
"""Catalog tier -> ``imageConfig.imageSize``. Uppercase K (lowercase is rejected [3P]). NB2's
512 px tier is ``"512"``: google-genai 3.4 lists ``"1K" | "2K" | "4K" | "512"`` for
``imageSize`` in its generated API types (``_gaos/types/interactions/imageconfig.py``)."""

RESPONSE_MODALITIES: Final = ("TEXT", "IMAGE")
"""Every Nano Banana example uses TEXT + IMAGE (§4.3); the text explains an answer without an
image (a refusal or a question), which becomes the error message."""

HARM_CATEGORIES: Final = (
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)
"""The categories the Gemini API takes (the ``IMAGE_*`` ones are Vertex-only, civic
integrity is deprecated: google-genai ``HarmCategory``)."""

MAX_REFERENCES: Final = 14
REFERENCE_MIME_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
)
"""§4.3: at most 14 input images; MIME png/jpeg/webp/heic/heif."""

_INT32_SPAN: Final = 2**31
_SAFETY_FINISH: Final = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
        "ESCALATION",
        "MODEL_ARMOR",
    }
)
_BROKEN_FINISH: Final = frozenset({"MALFORMED_RESPONSE", "MALFORMED_FUNCTION_CALL"})
_TEXT_LIMIT: Final = 300


@dataclass(frozen=True, slots=True)
class GeminiCall:
    """One ``generateContent`` call: arguments for ``client.aio.models.generate_content``.

    Attributes:
        model: the Gemini model id (``gemini-3-pro-image`` ...).
        contents: one user turn: the prompt text, then the reference images inline.
        config: what goes on the wire besides ``contents`` (SDK-only switches are added by
            the client).
        seed: the seed sent, if any (reported back on the image).
    """

    model: str
    contents: list[types.Content]
    config: types.GenerateContentConfig
    seed: int | None


@dataclass(frozen=True, slots=True)
class GeneratedPart:
    """The image of one answer, decoded, with the token counts Google reported."""

    data: bytes
    mime_type: str
    usage: UsageMetadata | None
    images_in_answer: int


def split_base_url(url: str | None) -> tuple[str, str]:
    """Split ``GEMINI_API_URL`` into the SDK's ``base_url`` and API version.

    Accepts the SDK form (``https://host/``) and the documented endpoint form
    (``https://host/v1beta``); an unset URL means Google's endpoint. Always returning an
    explicit base URL keeps ``GOOGLE_GEMINI_BASE_URL`` in the environment from redirecting
    the key elsewhere.

    Raises:
        ConfigurationError: not an http(s) URL with a host.
    """
    if not url:
        return DEFAULT_BASE_URL, DEFAULT_API_VERSION
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"GEMINI_API_URL must be an http(s) URL, not {url!r}")
    segments = [s for s in parts.path.split("/") if s]
    version = DEFAULT_API_VERSION
    if segments and segments[-1] in ("v1", "v1beta", "v1alpha"):
        version = segments.pop()
    path = "/" + "/".join(segments) + ("/" if segments else "")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")), version


def build_call(
    request: ImageRequest,
    size: ResolvedSize,
    references: Sequence[ReferenceData],
    *,
    model_id: str,
    index: int = 0,
) -> GeminiCall:
    """The ``generateContent`` arguments for image ``index`` of a request.

    One call makes one image: ``candidateCount > 1`` is unconfirmed for these models
    (§6.4), so ``number_results`` becomes that many calls. Unset (None) fields are not sent
    so Google's defaults apply; no ``aspectRatio`` lets the model follow the first
    reference (§4.3). The seed is the request's plus ``index`` (so n calls give n different
    images, as Runware numbers its results), folded into int32 (the API's ``seed`` type).

    Args:
        request: the request after policy.
        size: from :func:`bot.catalog.validate`.
        references: the reference images in request order (sent inline, in order).
        model_id: Gemini's id for ``request.model``.
        index: which of the ``number_results`` images this call makes (0-based).

    Raises:
        ReferenceImageError: a reference in a format Gemini does not read.
        ProviderRejected: more than 14 references, or a tier Gemini has no size for.
    """
    if len(references) > MAX_REFERENCES:
        raise ProviderRejected(
            PROVIDER,
            f"Gemini takes at most {MAX_REFERENCES} reference images ({len(references)} given)",
            status=0,
            parameter="contents",
        )
    parts = [types.Part(text=request.prompt)]
    for position, ref in enumerate(references):
        if ref.mime_type not in REFERENCE_MIME_TYPES:
            raise ReferenceImageError(
                f"Gemini does not read {ref.mime_type} reference images", index=position
            )
        parts.append(types.Part.from_bytes(data=ref.data, mime_type=ref.mime_type))
    image_size = IMAGE_SIZES.get(size.tier)
    if image_size is None:
        raise ProviderRejected(
            PROVIDER, f"Gemini has no {size.tier} image size", status=0, parameter="imageSize"
        )
    seed = None if request.seed is None else (request.seed + index) % _INT32_SPAN
    config = types.GenerateContentConfig(
        response_modalities=list(RESPONSE_MODALITIES),
        image_config=types.ImageConfig(aspect_ratio=size.aspect_ratio, image_size=image_size),
        system_instruction=request.system_prompt,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=seed,
        tools=_tools(request),
        safety_settings=_safety_settings(request),
        thinking_config=(
            types.ThinkingConfig(thinking_level=types.ThinkingLevel(request.thinking))
            if request.thinking is not None
            else None
        ),
    )
    return GeminiCall(model_id, [types.Content(role="user", parts=parts)], config, seed)


def _tools(request: ImageRequest) -> list[types.Tool] | None:
    """``web_search`` -> ``google_search`` (web results by default); ``image_search`` adds
    ``searchTypes.imageSearch`` (google-genai ``SearchTypes``: image search grounding)."""
    if not request.web_search and not request.image_search:
        return None
    search = types.GoogleSearch()
    if request.image_search:
        search = types.GoogleSearch(
            search_types=types.SearchTypes(
                web_search=types.WebSearch() if request.web_search else None,
                image_search=types.ImageSearch(),
            )
        )
    return [types.Tool(google_search=search)]


def _safety_settings(request: ImageRequest) -> list[types.SafetySetting] | None:
    """The policy's tolerance as one threshold for every category (bot.policy mapping);
    None leaves Google's defaults."""
    if request.safety_tolerance is None:
        return None
    threshold = types.HarmBlockThreshold(TOLERANCE_SCALE[request.safety_tolerance].gemini)
    return [
        types.SafetySetting(category=types.HarmCategory(category), threshold=threshold)
        for category in HARM_CATEGORIES
    ]


def ignored_field_notices(request: ImageRequest) -> tuple[str, ...]:
    """What the person asked for that the Gemini API cannot do, as notices.

    ``output_mime_type`` and ``output_compression_quality`` are Vertex-only (§4.3: "not
    supported in Gemini API"), so the image comes in the format Google picks.
    """
    if request.output_format is None and request.output_quality is None:
        return ()
    return ("The Gemini API picks the image format itself; output format/quality were ignored.",)


def parse_response(body: str | None) -> GeneratedPart:
    """The final image of a 200 answer, or the typed reason there is none (§4.4).

    Thought parts (``thought: true``, interim images) are skipped and the last remaining
    image is the result. A prompt refused outright has ``promptFeedback.blockReason``; a
    result refused has a candidate with a safety ``finishReason`` and no image.

    Raises:
        SafetyBlocked: a block reason, or a safety/recitation finish reason.
        ProviderRejected: the model answered without an image (text only, ``NO_IMAGE``...).
        ProviderProtocolError: the body is not a readable ``GenerateContentResponse``.
    """
    try:
        answer = GenerateContentResponse.model_validate_json(body or "")
    except ValidationError as exc:
        raise ProviderProtocolError(PROVIDER, "unreadable Gemini answer", 200) from exc
    feedback = answer.prompt_feedback
    if feedback is not None and feedback.block_reason:
        detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
        reason = feedback.block_reason
        raise SafetyBlocked(PROVIDER, f"Gemini blocked the prompt ({reason}){detail}", 200)
    if not answer.candidates:
        raise ProviderProtocolError(PROVIDER, "Gemini answered without a candidate", 200)
    candidate = answer.candidates[0]
    parts = candidate.content.parts if candidate.content else []
    images = [p.inline_data for p in parts if p.inline_data is not None and not p.thought]
    # No mimeType: still an image (the media store sniffs the bytes); audio etc. is not.
    images = [b for b in images if (b.mime_type or "image/").startswith("image/")]
    reason = candidate.finish_reason or "FINISH_REASON_UNSPECIFIED"
    if images:
        try:
            data = _b64decode(images[-1].data)
        except (binascii.Error, ValueError) as exc:
            raise ProviderProtocolError(PROVIDER, "Gemini image is not base64", 200) from exc
        if not data:
            raise ProviderProtocolError(PROVIDER, "Gemini sent an empty image", 200)
        mime = images[-1].mime_type or "image/png"
        return GeneratedPart(data, mime, answer.usage_metadata, len(images))
    said = " ".join(p.text.strip() for p in parts if p.text and not p.thought).strip()
    detail = candidate.finish_message or said
    suffix = f": {detail[:_TEXT_LIMIT]}" if detail else ""
    if reason in _SAFETY_FINISH:
        raise SafetyBlocked(PROVIDER, f"Gemini withheld the image ({reason}){suffix}", 200)
    if reason == "PUP_LIMITED_DISABLED":
        raise ProviderAuthError(PROVIDER, f"Gemini account is limited ({reason})", 200)
    if reason in _BROKEN_FINISH:
        raise ProviderProtocolError(PROVIDER, f"Gemini answer was malformed ({reason})", 200)
    raise ProviderRejected(PROVIDER, f"Gemini returned no image ({reason}){suffix}", 200)


def _b64decode(text: str) -> bytes:
    """Proto3 JSON ``bytes``: standard or URL-safe base64, with or without padding."""
    text = text.strip().replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
