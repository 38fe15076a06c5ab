"""The model catalog as data: sizes, limits and prices of both models, and request validation.

Sources (../shared/seeds/): 000_* is Runware's Nano Banana Pro page (``google:4@2``), 001_*
Runware's Nano Banana 2 page (``google:4@3``) with the full width x height table and
prices. Nano Banana Pro's table and prices are as published on its Runware page
(shared/reference/provider-apis.md §1.3 and §1.12); its per-reference price is derived from
the seed examples ($0.138 at 2528x1696, $0.1424 with four references).

Prices and limits change; :func:`load_catalog` accepts overrides so operators can reprice
without a release.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict

from bot.errors import InvalidRequest
from bot.models import ImageRequest, ModelName, Tier

__all__ = [
    "Catalog",
    "ModelSpec",
    "ResolvedSize",
    "default_catalog",
    "load_catalog",
    "validate",
]

RATIOS_COMMON = ("1:1", "3:2", "2:3", "4:3", "3:4", "4:5", "5:4", "9:16", "16:9", "21:9")
RATIOS_EXTREME = ("4:1", "1:4", "8:1", "1:8")

# Runware docs, Nano Banana 2 (001_*): "The following dimension combinations are supported".
# 0.5K 21:9 is 792x168 as published (likely a typo for 792x336; kept as the provider lists it).
_NB2_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "0.5K": {
        "1:1": (512, 512),
        "3:2": (632, 424),
        "2:3": (424, 632),
        "4:3": (600, 448),
        "3:4": (448, 600),
        "4:5": (464, 576),
        "5:4": (576, 464),
        "9:16": (384, 688),
        "16:9": (688, 384),
        "21:9": (792, 168),
        "4:1": (1024, 256),
        "1:4": (256, 1024),
        "8:1": (1536, 192),
        "1:8": (192, 1536),
    },
    "1K": {
        "1:1": (1024, 1024),
        "3:2": (1264, 848),
        "2:3": (848, 1264),
        "4:3": (1200, 896),
        "3:4": (896, 1200),
        "4:5": (928, 1152),
        "5:4": (1152, 928),
        "9:16": (768, 1376),
        "16:9": (1376, 768),
        "21:9": (1584, 672),
        "4:1": (2048, 512),
        "1:4": (512, 2048),
        "8:1": (3072, 384),
        "1:8": (384, 3072),
    },
    "2K": {
        "1:1": (2048, 2048),
        "3:2": (2528, 1696),
        "2:3": (1696, 2528),
        "4:3": (2400, 1792),
        "3:4": (1792, 2400),
        "4:5": (1856, 2304),
        "5:4": (2304, 1856),
        "9:16": (1536, 2752),
        "16:9": (2752, 1536),
        "21:9": (3168, 1344),
        "4:1": (4096, 1024),
        "1:4": (1024, 4096),
        "8:1": (6144, 768),
        "1:8": (768, 6144),
    },
    "4K": {
        "1:1": (4096, 4096),
        "3:2": (5056, 3392),
        "2:3": (3392, 5056),
        "4:3": (4800, 3584),
        "3:4": (3584, 4800),
        "4:5": (3712, 4608),
        "5:4": (4608, 3712),
        "9:16": (3072, 5504),
        "16:9": (5504, 3072),
        "21:9": (6336, 2688),
        "4:1": (8192, 2048),
        "1:4": (2048, 8192),
        "8:1": (12288, 1536),
        "1:8": (1536, 12288),
    },
}


def _pro_sizes() -> dict[str, dict[str, tuple[int, int]]]:
    # Runware docs, Nano Banana Pro: 1K/2K/4K, the ten common ratios, the same pairs as
    # Nano Banana 2 except 1K 21:9, published as 1548x672.
    sizes = {tier: {r: _NB2_SIZES[tier][r] for r in RATIOS_COMMON} for tier in ("1K", "2K", "4K")}
    sizes["1K"]["21:9"] = (1548, 672)
    return sizes


class ModelSpec(BaseModel):
    """One model's rules and prices.

    Attributes:
        sizes: tier -> aspect ratio -> (width, height) in pixels: the canonical pairs.
        extra_sizes: further (width, height) pairs the provider also lists as valid.
        base_price_micros: tier -> price per image in micro-dollars.
        reference_price_micros: added per reference image, per image generated.
        web_search_price_micros: added per image when web search grounding is on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ModelName
    display_name: str
    sizes: dict[str, dict[str, tuple[int, int]]]
    extra_sizes: tuple[tuple[int, int], ...] = ()
    default_tier: Tier = "1K"
    max_references: int = 14
    prompt_min: int = 3
    prompt_max: int = 45_000
    system_prompt_max: int = 50_000
    results_max: int = 20
    seed_max: int = 2**63 - 1
    output_quality_range: tuple[int, int] = (20, 99)
    supports_thinking: bool = False
    supports_image_search: bool = False
    supports_web_search: bool = True
    base_price_micros: dict[str, int]
    reference_price_micros: int
    web_search_price_micros: int

    @property
    def tiers(self) -> tuple[str, ...]:
        return tuple(self.sizes)

    def ratios(self, tier: str) -> tuple[str, ...]:
        return tuple(self.sizes.get(tier, {}))

    def tier_of(self, width: int, height: int) -> tuple[str, str] | None:
        """Return (tier, ratio) for an allowed pixel pair, or None."""
        for tier, table in self.sizes.items():
            for ratio, pair in table.items():
                if pair == (width, height):
                    return tier, ratio
        for w, h in self.extra_sizes:
            if (w, h) == (width, height):
                return _closest(self, w, h)
        return None

    def allowed_pairs(self) -> tuple[str, ...]:
        pairs = [f"{w}x{h}" for table in self.sizes.values() for (w, h) in table.values()]
        return tuple(pairs + [f"{w}x{h}" for (w, h) in self.extra_sizes])


def _closest(spec: ModelSpec, width: int, height: int) -> tuple[str, str]:
    best: tuple[float, str, str] | None = None
    for tier, table in spec.sizes.items():
        for ratio, (w, h) in table.items():
            distance = abs(math.log(w * h) - math.log(width * height)) + abs(
                math.log(w / h) - math.log(width / height)
            )
            if best is None or distance < best[0]:
                best = (distance, tier, ratio)
    assert best is not None
    return best[1], best[2]


@dataclass(frozen=True, slots=True)
class ResolvedSize:
    """The size a job will be generated at.

    Attributes:
        tier: resolution tier (prices depend on it).
        aspect_ratio: ``"16:9"``..., or None when the model follows the first reference.
        width: pixels, or None when only ``resolution`` is sent (follow the reference).
        height: pixels, or None likewise.
    """

    tier: str
    aspect_ratio: str | None
    width: int | None
    height: int | None

    @property
    def send_resolution_only(self) -> bool:
        return self.width is None


class Catalog:
    """All models by name; the one place requests are checked against the seed documents."""

    def __init__(self, models: Mapping[str, ModelSpec]) -> None:
        self._models = dict(models)

    def model(self, name: str) -> ModelSpec:
        """Return a model's spec.

        Raises:
            InvalidRequest: for an unknown model, listing the known ones.
        """
        try:
            return self._models[name]
        except KeyError:
            raise InvalidRequest("model", f"unknown model {name!r}", tuple(self._models)) from None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._models)

    def resolve_size(self, request: ImageRequest) -> ResolvedSize:
        """Resolve the request's size fields to a :class:`ResolvedSize`.

        Runware docs: "``resolution`` cannot be used with ``width/height``" and "``width``
        and ``height`` must be used together".

        Raises:
            InvalidRequest: naming ``width``/``height``/``aspect_ratio``/``resolution`` and
                the allowed values.
        """
        spec = self.model(request.model)
        if (request.width is None) != (request.height is None):
            missing = "height" if request.height is None else "width"
            raise InvalidRequest(missing, "width and height must be given together")
        if request.width is not None and request.height is not None:
            if request.resolution is not None or request.aspect_ratio is not None:
                raise InvalidRequest(
                    "resolution",
                    "give either width x height or aspect ratio + resolution, not both",
                )
            found = spec.tier_of(request.width, request.height)
            if found is None:
                raise InvalidRequest(
                    "width",
                    f"{request.width}x{request.height} is not a size {spec.display_name} supports",
                    spec.allowed_pairs(),
                )
            tier, ratio = found
            return ResolvedSize(tier, ratio, request.width, request.height)
        tier = request.resolution or spec.default_tier
        if tier not in spec.sizes:
            raise InvalidRequest(
                "resolution",
                f"{spec.display_name} has no {tier} resolution",
                spec.tiers,
            )
        if request.aspect_ratio is None:
            if request.references:
                return ResolvedSize(tier, None, None, None)
            ratio = "1:1"
        else:
            ratio = request.aspect_ratio
        table = spec.sizes[tier]
        if ratio not in table:
            raise InvalidRequest(
                "aspect_ratio",
                f"{spec.display_name} at {tier} has no {ratio} aspect ratio",
                tuple(table),
            )
        width, height = table[ratio]
        return ResolvedSize(tier, ratio, width, height)

    def estimate_micros(self, request: ImageRequest, size: ResolvedSize) -> int:
        """Worst-case price of a request in micro-dollars (what a job reserves).

        Per image: tier price + per-reference price x references + web search surcharge;
        times ``number_results`` (Runware bills each result as its own image).
        """
        spec = self.model(request.model)
        per_image = (
            spec.base_price_micros[size.tier]
            + spec.reference_price_micros * len(request.references)
            + (spec.web_search_price_micros if request.web_search else 0)
        )
        return per_image * request.number_results


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise InvalidRequest(
            field, f"{field} must be between {low:g} and {high:g}", (f"{low:g}..{high:g}",)
        )


def _check_step(field: str, value: float) -> None:
    _check_range(field, value, 0.0, 1.0)
    if abs(round(value * 100) - value * 100) > 1e-6:
        raise InvalidRequest(field, f"{field} goes in steps of 0.01", ("0..1, step 0.01",))


def validate(catalog: Catalog, request: ImageRequest) -> ResolvedSize:
    """Check every field of a request against its model's rules and resolve its size.

    Rules from the Runware model pages (seeds 000_*, 001_*): positivePrompt 3..45000
    characters; referenceImages at most 14; numberResults 1..20; seed 0..2^63-1;
    temperature and topP 0..1 in steps of 0.01; thinking MINIMAL|HIGH (Nano Banana 2);
    imageSearch (Nano Banana 2); outputQuality 20..99; systemPrompt 1..50000 characters.

    Returns:
        The resolved size.

    Raises:
        InvalidRequest: the first violation, naming the field and the allowed values.
    """
    spec = catalog.model(request.model)
    prompt_len = len(request.prompt.strip())
    if not spec.prompt_min <= prompt_len <= spec.prompt_max:
        raise InvalidRequest(
            "prompt",
            f"the prompt must be {spec.prompt_min} to {spec.prompt_max:,} characters "
            f"(it has {prompt_len:,})",
            (f"{spec.prompt_min}..{spec.prompt_max} characters",),
        )
    if len(request.references) > spec.max_references:
        raise InvalidRequest(
            "references",
            f"{spec.display_name} takes at most {spec.max_references} reference images "
            f"({len(request.references)} given)",
            (f"0..{spec.max_references}",),
        )
    _check_range("number_results", request.number_results, 1, spec.results_max)
    if request.number_results != int(request.number_results):
        raise InvalidRequest("number_results", "number_results must be a whole number")
    if request.seed is not None:
        _check_range("seed", request.seed, 0, spec.seed_max)
    if request.temperature is not None:
        _check_step("temperature", request.temperature)
    if request.top_p is not None:
        _check_step("top_p", request.top_p)
    if request.output_quality is not None:
        low, high = spec.output_quality_range
        _check_range("output_quality", request.output_quality, low, high)
    if request.system_prompt is not None and not (
        1 <= len(request.system_prompt) <= spec.system_prompt_max
    ):
        raise InvalidRequest(
            "system_prompt",
            f"the system prompt must be 1 to {spec.system_prompt_max:,} characters",
            (f"1..{spec.system_prompt_max} characters",),
        )
    if request.thinking is not None and not spec.supports_thinking:
        raise InvalidRequest(
            "thinking",
            f"{spec.display_name} does not take a thinking level",
            tuple(n for n in catalog.names if catalog.model(n).supports_thinking),
        )
    if request.image_search and not spec.supports_image_search:
        raise InvalidRequest(
            "image_search",
            f"{spec.display_name} does not support image search",
            tuple(n for n in catalog.names if catalog.model(n).supports_image_search),
        )
    if request.web_search and not spec.supports_web_search:
        raise InvalidRequest("web_search", f"{spec.display_name} does not support web search")
    return catalog.resolve_size(request)


def default_catalog() -> Catalog:
    """The catalog as the seed documents give it (prices in micro-dollars)."""
    return load_catalog({})


def load_catalog(overrides: Mapping[str, Mapping[str, Any]]) -> Catalog:
    """Build the catalog, applying per-model field overrides (e.g. new prices).

    Args:
        overrides: model name -> {field: value}, e.g.
            ``{"nano-banana-2": {"base_price_micros": {"1K": 70000, ...}}}``.

    Raises:
        pydantic.ValidationError: if an override has an unknown field or a wrong type.
    """
    defaults: dict[str, dict[str, Any]] = {
        "nano-banana-pro": {
            "name": "nano-banana-pro",
            "display_name": "Nano Banana Pro",
            "sizes": _pro_sizes(),
            "extra_sizes": ((5096, 3392), (3392, 5096)),
            "default_tier": "1K",
            "supports_thinking": False,
            "supports_image_search": False,
            # Runware Nano Banana Pro page: 1K $0.138, 2K $0.138, 4K $0.244.
            "base_price_micros": {"1K": 138_000, "2K": 138_000, "4K": 244_000},
            # Seed 000 example 4: $0.1424 with four references at 2K => $0.0011 each.
            "reference_price_micros": 1_100,
            # Seed 000 example 1: webSearch true still cost $0.138.
            "web_search_price_micros": 0,
        },
        "nano-banana-2": {
            "name": "nano-banana-2",
            "display_name": "Nano Banana 2",
            "sizes": _NB2_SIZES,
            "default_tier": "1K",
            "supports_thinking": True,
            "supports_image_search": True,
            # Runware Nano Banana 2 page (001_*), "Pricing".
            "base_price_micros": {"0.5K": 46_570, "1K": 68_950, "2K": 102_550, "4K": 152_950},
            "reference_price_micros": 280,
            "web_search_price_micros": 140_000,
        },
    }
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise ValueError(f"unknown models in catalog overrides: {sorted(unknown)}")
    specs = {
        name: ModelSpec.model_validate({**fields, **overrides.get(name, {})})
        for name, fields in defaults.items()
    }
    return Catalog(specs)


assert set(get_args(Tier)) == set(_NB2_SIZES)
