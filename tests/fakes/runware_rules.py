"""Request rules, size tables and prices the Runware emulator enforces for Nano Banana Pro and 2.

Every rule cites the document it rests on:

* ``seeds/000``: the Runware Nano Banana Pro model page (``google:4@2``);
* ``seeds/001``: the Runware Nano Banana 2 model page (``google:4@3``), with the full
  width x height table and the "Compatibility & Validation" rules;
* ``provider-apis.md §1``: the team's notes on Runware's REST contract (error envelope,
  ``conflictTaskUUID``, the Pro size table of §1.3, prices of §1.12).

The functions here are pure (no I/O), so the emulator and its tests share one source of truth.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "MAX_REFERENCE_IMAGES",
    "MAX_SEED",
    "MODELS",
    "NANO_BANANA_2",
    "NANO_BANANA_PRO",
    "ModelSpec",
    "ReferenceKind",
    "RuleError",
    "SizeRow",
    "classify_reference",
    "is_uuid",
    "is_uuid4",
    "price_per_image",
    "validate_get_response",
    "validate_image_inference",
]

NANO_BANANA_PRO: Final = "google:4@2"
NANO_BANANA_2: Final = "google:4@3"

MIN_PROMPT: Final = 3
MAX_PROMPT: Final = 45_000
MAX_SYSTEM_PROMPT: Final = 50_000
MAX_REFERENCE_IMAGES: Final = 14
MAX_NUMBER_RESULTS: Final = 20
MAX_SEED: Final = 2**63 - 1

ReferenceKind = Literal["dataURI", "url", "uuid", "base64"]

_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)
_UUID_ANY = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DATA_URI = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,(?P<payload>.+)$", re.S)
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.I)


@dataclass(frozen=True)
class RuleError:
    """One entry of Runware's ``errors`` array (provider-apis.md §1.7).

    Attributes:
        code: Runware's error code, e.g. ``unknownParameter``.
        message: Human-readable explanation.
        parameter: Dotted path of the offending field, e.g. ``settings.thinking``.
    """

    code: str
    message: str
    parameter: str


@dataclass(frozen=True)
class SizeRow:
    """One row of a model's size table: ``tier`` (``"1K"``), ``ratio`` (``"3:2"``), pixels."""

    tier: str
    ratio: str
    width: int
    height: int


@dataclass(frozen=True)
class ModelSpec:
    """What one Runware model accepts and what it costs.

    Attributes:
        air: Runware model id (``google:4@2`` or ``google:4@3``).
        name: Display name used in error messages.
        sizes: Every accepted width x height pair with its tier and ratio.
        resolutions: Accepted ``resolution`` presets.
        tier_price: USD per image by tier.
        reference_price: USD added per image for each reference image.
        grounding_price: USD added per image when grounded search was actually used.
        settings_fields: Keys accepted inside ``settings``.
        google_fields: Keys accepted inside ``providerSettings.google``.
    """

    air: str
    name: str
    sizes: tuple[SizeRow, ...]
    resolutions: tuple[str, ...]
    tier_price: Mapping[str, float]
    reference_price: float
    grounding_price: float
    settings_fields: frozenset[str]
    google_fields: frozenset[str]

    def tier_of(self, width: int, height: int) -> str | None:
        """Return the tier of an exact width x height pair, or None if the table lacks it."""
        for row in self.sizes:
            if (row.width, row.height) == (width, height):
                return row.tier
        return None

    def size_for(self, resolution: str, aspect: float | None) -> tuple[int, int]:
        """Pick the pair of tier ``resolution`` whose ratio is closest to ``aspect`` (w/h).

        Runware docs (seeds/000, seeds/001, ``resolution``): "When used with input media,
        automatically matches the aspect ratio from the input". Without a reference the
        emulator answers 1:1, which the docs leave unspecified (provider-apis.md §1.3 [U]).
        """
        rows = [row for row in self.sizes if row.tier == resolution]
        target = math.log(aspect) if aspect and aspect > 0 else 0.0
        best = min(rows, key=lambda r: (abs(math.log(r.width / r.height) - target), r.width))
        return best.width, best.height


# seeds/001 "The following dimension combinations are supported", verbatim (0.5K 21:9 included
# as published, 792x168, even though provider-apis.md §1.3 suspects a typo).
# fmt: off
_NB2_PAIRS: Final[dict[str, tuple[tuple[str, int, int], ...]]] = {
    "0.5K": (
        ("1:1", 512, 512), ("3:2", 632, 424), ("2:3", 424, 632), ("4:3", 600, 448),
        ("3:4", 448, 600), ("4:5", 464, 576), ("5:4", 576, 464), ("9:16", 384, 688),
        ("16:9", 688, 384), ("21:9", 792, 168), ("4:1", 1024, 256), ("1:4", 256, 1024),
        ("8:1", 1536, 192), ("1:8", 192, 1536),
    ),
    "1K": (
        ("1:1", 1024, 1024), ("3:2", 1264, 848), ("2:3", 848, 1264), ("4:3", 1200, 896),
        ("3:4", 896, 1200), ("4:5", 928, 1152), ("5:4", 1152, 928), ("9:16", 768, 1376),
        ("16:9", 1376, 768), ("21:9", 1584, 672), ("4:1", 2048, 512), ("1:4", 512, 2048),
        ("8:1", 3072, 384), ("1:8", 384, 3072),
    ),
    "2K": (
        ("1:1", 2048, 2048), ("3:2", 2528, 1696), ("2:3", 1696, 2528), ("4:3", 2400, 1792),
        ("3:4", 1792, 2400), ("4:5", 1856, 2304), ("5:4", 2304, 1856), ("9:16", 1536, 2752),
        ("16:9", 2752, 1536), ("21:9", 3168, 1344), ("4:1", 4096, 1024), ("1:4", 1024, 4096),
        ("8:1", 6144, 768), ("1:8", 768, 6144),
    ),
    "4K": (
        ("1:1", 4096, 4096), ("3:2", 5056, 3392), ("2:3", 3392, 5056), ("4:3", 4800, 3584),
        ("3:4", 3584, 4800), ("4:5", 3712, 4608), ("5:4", 4608, 3712), ("9:16", 3072, 5504),
        ("16:9", 5504, 3072), ("21:9", 6336, 2688), ("4:1", 8192, 2048), ("1:4", 2048, 8192),
        ("8:1", 12288, 1536), ("1:8", 1536, 12288),
    ),
}
# fmt: on
_NB2_SIZES: Final = tuple(
    SizeRow(tier, ratio, w, h) for tier, rows in _NB2_PAIRS.items() for ratio, w, h in rows
)

# provider-apis.md §1.3: Pro has tiers 1K/2K/4K and these ratios, same pairs as Nano Banana 2,
# plus the variants the Pro page lists (4K 3:2 as 5096x3392, 1K 21:9 as 1548x672).
_PRO_RATIOS: Final = frozenset(
    {"1:1", "3:2", "2:3", "4:3", "3:4", "4:5", "5:4", "9:16", "16:9", "21:9"}
)
_PRO_SIZES: Final = (
    *(row for row in _NB2_SIZES if row.tier != "0.5K" and row.ratio in _PRO_RATIOS),
    SizeRow("4K", "3:2", 5096, 3392),
    SizeRow("4K", "2:3", 3392, 5096),
    SizeRow("1K", "21:9", 1548, 672),
)

MODELS: Final[Mapping[str, ModelSpec]] = {
    NANO_BANANA_PRO: ModelSpec(
        air=NANO_BANANA_PRO,
        name="Nano Banana Pro",
        sizes=_PRO_SIZES,
        resolutions=("1K", "2K", "4K"),
        # provider-apis.md §1.12; seeds/000 examples: 2528x1696 costs 0.138, with 4
        # references 0.1424 (0.0011 each); example 1 has webSearch true and still 0.138.
        tier_price={"1K": 0.138, "2K": 0.138, "4K": 0.244},
        reference_price=0.0011,
        grounding_price=0.0,
        settings_fields=frozenset({"systemPrompt", "temperature", "topP"}),
        google_fields=frozenset({"safetyTolerance", "webSearch"}),
    ),
    NANO_BANANA_2: ModelSpec(
        air=NANO_BANANA_2,
        name="Nano Banana 2",
        sizes=_NB2_SIZES,
        resolutions=("0.5K", "1K", "2K", "4K"),
        # seeds/001 "Pricing": 512x512 $0.04657, 1K $0.06895, 2K $0.10255, 4K $0.15295,
        # +$0.00028 per input image, +$0.14 "when using grounded search".
        tier_price={"0.5K": 0.04657, "1K": 0.06895, "2K": 0.10255, "4K": 0.15295},
        reference_price=0.00028,
        grounding_price=0.14,
        settings_fields=frozenset({"systemPrompt", "temperature", "topP", "thinking"}),
        google_fields=frozenset({"safetyTolerance", "webSearch", "imageSearch"}),
    ),
}

# seeds/000 and seeds/001 "API Options" and "Generation Parameters".
_TOP_LEVEL: Final = frozenset(
    {
        "taskType",
        "taskUUID",
        "model",
        "positivePrompt",
        "width",
        "height",
        "resolution",
        "seed",
        "numberResults",
        "outputType",
        "outputFormat",
        "outputQuality",
        "webhookURL",
        "deliveryMethod",
        "uploadEndpoint",
        "safety",
        "ttl",
        "includeCost",
        "inputs",
        "settings",
        "providerSettings",
    }
)
_SAFETY: Final = frozenset({"checkContent", "mode"})
_INPUTS: Final = frozenset({"referenceImages"})
_ENUMS: Final[Mapping[str, tuple[str, ...]]] = {
    "outputType": ("URL", "base64Data", "dataURI"),
    "outputFormat": ("JPG", "PNG", "WEBP"),
    "deliveryMethod": ("sync", "async"),
    "safety.mode": ("none", "fast"),
    "settings.thinking": ("MINIMAL", "HIGH"),
    "providerSettings.google.safetyTolerance": ("high", "medium", "low", "none", "off"),
}
_BOOLS: Final = (
    "includeCost",
    "safety.checkContent",
    "providerSettings.google.webSearch",
    "providerSettings.google.imageSearch",
)


def is_uuid4(value: object) -> bool:
    """True for a hyphenated UUID version 4 string (seeds: taskUUID "UUID v4")."""
    return isinstance(value, str) and bool(_UUID4.match(value))


def is_uuid(value: object) -> bool:
    """True for any hyphenated UUID string (reference images may be image UUIDs)."""
    return isinstance(value, str) and bool(_UUID_ANY.match(value))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) or None
    except (binascii.Error, ValueError):
        return None


def classify_reference(value: object) -> ReferenceKind | None:
    """Tell which of the accepted forms a reference image is, or None if none fits.

    seeds/001 ``inputs.referenceImages``: "List of reference images (UUID, URL, Data URI,
    or Base64)".
    """
    if not isinstance(value, str) or not value:
        return None
    match = _DATA_URI.match(value)
    if match:
        return "dataURI" if _b64(match["payload"]) else None
    if _HTTP_URL.match(value):
        return "url"
    if is_uuid(value):
        return "uuid"
    return "base64" if _b64(value) else None


def price_per_image(spec: ModelSpec, tier: str, references: int, grounded: bool) -> float:
    """USD per image, rounded to 5 decimals like the seed responses' ``cost``.

    Args:
        spec: The model.
        tier: Size tier of the output (``"0.5K"`` .. ``"4K"``).
        references: Number of reference images sent.
        grounded: Whether grounded search was actually used (seeds/001 "Pricing").
    """
    total = spec.tier_price[tier] + references * spec.reference_price
    if grounded:
        total += spec.grounding_price
    return round(total, 5)


def _get(task: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = task
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _invalid(path: str, message: str) -> RuleError:
    leaf = path.rsplit(".", 1)[-1]
    return RuleError(f"invalid{leaf[0].upper()}{leaf[1:]}", message, path)


def _unknown_parameter(task: Mapping[str, Any], spec: ModelSpec) -> RuleError | None:
    """Runware docs (provider-apis.md §1.2): use only fields the model's JSON schema allows."""
    nested: dict[str, frozenset[str]] = {
        "safety": _SAFETY,
        "inputs": _INPUTS,
        "settings": spec.settings_fields,
        "providerSettings": frozenset({"google"}),
        "providerSettings.google": spec.google_fields,
    }
    pending: list[tuple[str, Mapping[str, Any], frozenset[str]]] = [("", task, _TOP_LEVEL)]
    while pending:
        prefix, node, allowed = pending.pop(0)
        for key, value in node.items():
            path = f"{prefix}{key}"
            if key not in allowed:
                return RuleError(
                    "unknownParameter",
                    f"Unknown parameter '{path}': {spec.name} ({spec.air}) does not accept it.",
                    path,
                )
            if path in nested:
                if not isinstance(value, Mapping):
                    return _invalid(path, f"Invalid value for {path}: must be an object.")
                pending.append((f"{path}.", value, nested[path]))
    return None


def _check_scalars(task: Mapping[str, Any]) -> RuleError | None:
    """Types and ranges from seeds/000 and seeds/001 "Request Parameters"."""
    prompt = task.get("positivePrompt")
    if "positivePrompt" not in task:
        return RuleError(
            "missingPositivePrompt", "Missing required parameter positivePrompt.", "positivePrompt"
        )
    if not isinstance(prompt, str) or not MIN_PROMPT <= len(prompt) <= MAX_PROMPT:
        return RuleError(
            "invalidPositivePrompt",
            f"Invalid value for positivePrompt: must be a string of {MIN_PROMPT} to "
            f"{MAX_PROMPT} characters.",
            "positivePrompt",
        )
    int_ranges: dict[str, tuple[int, int | None]] = {
        "seed": (0, MAX_SEED),
        "numberResults": (1, MAX_NUMBER_RESULTS),
        "outputQuality": (20, 99),
        "ttl": (60, None),
    }
    for path, (low, high) in int_ranges.items():
        present, value = _get(task, path)
        if present and not (_is_int(value) and low <= value and (high is None or value <= high)):
            upper = f" and {high}" if high is not None else " or more"
            return _invalid(path, f"Invalid value for {path}: must be an integer {low}{upper}.")
    for path, allowed in _ENUMS.items():
        present, value = _get(task, path)
        if present and value not in allowed:
            return _invalid(path, f"Invalid value for {path}: allowed values are {list(allowed)}.")
    for path in _BOOLS:
        present, value = _get(task, path)
        if present and not isinstance(value, bool):
            return _invalid(path, f"Invalid value for {path}: must be a boolean.")
    for path in ("webhookURL", "uploadEndpoint"):
        present, value = _get(task, path)
        if present and not (isinstance(value, str) and _HTTP_URL.match(value)):
            return _invalid(path, f"Invalid value for {path}: must be an http(s) URI.")
    present, value = _get(task, "settings.systemPrompt")
    if present and not (isinstance(value, str) and 1 <= len(value) <= MAX_SYSTEM_PROMPT):
        return _invalid(
            "settings.systemPrompt",
            "Invalid value for settings.systemPrompt: "
            f"must be a string of 1 to {MAX_SYSTEM_PROMPT} characters.",
        )
    for path in ("settings.temperature", "settings.topP"):
        present, value = _get(task, path)
        if present and not (
            _is_number(value) and 0 <= value <= 1 and abs(value * 100 - round(value * 100)) < 1e-6
        ):
            return _invalid(path, f"Invalid value for {path}: must be 0 to 1 in steps of 0.01.")
    return None


def _check_references(task: Mapping[str, Any]) -> RuleError | None:
    """seeds/000 ``inputs.referenceImages``: array of strings, min items 1, max items 14."""
    present, refs = _get(task, "inputs.referenceImages")
    if not present:
        return None
    path = "inputs.referenceImages"
    if not isinstance(refs, list) or not 1 <= len(refs) <= MAX_REFERENCE_IMAGES:
        return RuleError(
            "invalidReferenceImages",
            f"Invalid value for {path}: must be an array of 1 to {MAX_REFERENCE_IMAGES} images.",
            path,
        )
    for index, ref in enumerate(refs):
        if classify_reference(ref) is None:
            return RuleError(
                "invalidReferenceImages",
                f"Invalid value for {path}[{index}]: must be an image UUID, an http(s) URL, "
                "a data URI (data:image/...;base64,...) or base64 data.",
                f"{path}[{index}]",
            )
    return None


def _check_dimensions(task: Mapping[str, Any], spec: ModelSpec) -> RuleError | None:
    """seeds/001 "Compatibility & Validation" and the size tables (provider-apis.md §1.3)."""
    has_w, has_h, has_res = "width" in task, "height" in task, "resolution" in task
    if has_res and (has_w or has_h):
        return RuleError(
            "incompatibleParameters", "resolution cannot be used with width/height.", "resolution"
        )
    if has_w != has_h:
        missing = "height" if has_w else "width"
        return RuleError(
            f"missing{missing.capitalize()}",
            f"Missing parameter {missing}: width and height must be used together.",
            missing,
        )
    if has_w:
        width, height = task["width"], task["height"]
        for name, value in (("width", width), ("height", height)):
            if not _is_int(value) or value <= 0:
                return _invalid(name, f"Invalid value for {name}: must be a positive integer.")
        if spec.tier_of(width, height) is None:
            supported = ", ".join(f"{r.width}x{r.height}" for r in spec.sizes)
            return RuleError(
                "invalidDimensions",
                f"Invalid dimensions {width}x{height}: not supported by {spec.name} "
                f"({spec.air}). Supported dimensions: {supported}.",
                "width",
            )
        return None
    if has_res:
        if task["resolution"] not in spec.resolutions:
            return _invalid(
                "resolution",
                f"Invalid value for resolution: {spec.name} accepts {list(spec.resolutions)}.",
            )
        return None
    if "referenceImages" not in task.get("inputs", {}):
        return RuleError(
            "missingDimensions",
            "Either provide inputs.referenceImages, or specify width/height or resolution.",
            "width",
        )
    return None


def validate_image_inference(task: Mapping[str, Any]) -> RuleError | None:
    """Return the first rule an ``imageInference`` task breaks, or None if it is valid.

    Order: taskUUID, model, unknown parameters, scalar fields, reference images, dimensions.
    Conflicting taskUUIDs are the emulator's business (it holds the state).
    """
    if "taskUUID" not in task:
        return RuleError("missingTaskUUID", "Missing required parameter taskUUID.", "taskUUID")
    if not is_uuid4(task["taskUUID"]):
        return RuleError(
            "invalidTaskUUID", "Invalid value for taskUUID: must be a UUID v4.", "taskUUID"
        )
    if "model" not in task:
        return RuleError("missingModel", "Missing required parameter model.", "model")
    spec = MODELS.get(task["model"]) if isinstance(task["model"], str) else None
    if spec is None:
        return RuleError(
            "invalidModel",
            f"Invalid value for model: {task['model']!r} is not "
            f"available; use one of {sorted(MODELS)}.",
            "model",
        )
    return (
        _unknown_parameter(task, spec)
        or _check_scalars(task)
        or _check_references(task)
        or _check_dimensions(task, spec)
    )


def validate_get_response(task: Mapping[str, Any]) -> RuleError | None:
    """Rules of a ``getResponse`` task (provider-apis.md §1.5): only taskType and taskUUID."""
    for key in task:
        if key not in ("taskType", "taskUUID"):
            return RuleError("unknownParameter", f"Unknown parameter '{key}' for getResponse.", key)
    if "taskUUID" not in task:
        return RuleError("missingTaskUUID", "Missing required parameter taskUUID.", "taskUUID")
    if not is_uuid(task["taskUUID"]):
        return RuleError(
            "invalidTaskUUID", "Invalid value for taskUUID: must be a UUID.", "taskUUID"
        )
    return None
