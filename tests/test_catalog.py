"""The model catalog against the seed documents' tables, limits and prices."""

from __future__ import annotations

import pytest

from bot.catalog import default_catalog, load_catalog, validate
from bot.errors import InvalidRequest
from bot.models import ImageRequest, ReferenceImage

CATALOG = default_catalog()


def ref(i: int = 0) -> ReferenceImage:
    return ReferenceImage(media_key=f"{i:064x}.png", mime_type="image/png", width=64, height=64)


def req(**fields: object) -> ImageRequest:
    return ImageRequest.model_validate({"prompt": "a lighthouse at dusk", **fields})


# 001_*: "The following dimension combinations are supported" (a sample across tiers).
@pytest.mark.parametrize(
    ("tier", "ratio", "pair"),
    [
        ("0.5K", "1:1", (512, 512)),
        ("0.5K", "21:9", (792, 168)),
        ("1K", "3:2", (1264, 848)),
        ("1K", "1:8", (384, 3072)),
        ("2K", "9:16", (1536, 2752)),
        ("4K", "8:1", (12288, 1536)),
        ("4K", "4:5", (3712, 4608)),
    ],
)
def test_ratio_and_tier_resolve_to_the_exact_pair_of_the_nano_banana_2_table(
    tier: str, ratio: str, pair: tuple[int, int]
) -> None:
    size = validate(CATALOG, req(model="nano-banana-2", resolution=tier, aspect_ratio=ratio))
    assert (size.width, size.height) == pair
    assert size.tier == tier


def test_nano_banana_2_has_fourteen_ratios_in_each_of_four_tiers() -> None:
    spec = CATALOG.model("nano-banana-2")
    assert spec.tiers == ("0.5K", "1K", "2K", "4K")
    assert all(len(spec.ratios(t)) == 14 for t in spec.tiers)
    pairs = [pair for table in spec.sizes.values() for pair in table.values()]
    assert len(set(pairs)) == 56


def test_every_exact_pair_is_accepted_and_maps_back_to_its_tier() -> None:
    for name in CATALOG.names:
        spec = CATALOG.model(name)
        for tier, table in spec.sizes.items():
            for ratio, (w, h) in table.items():
                size = validate(CATALOG, req(model=name, width=w, height=h))
                assert (size.tier, size.aspect_ratio) == (tier, ratio)


def test_pro_has_no_half_k_tier_and_names_the_allowed_tiers() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(CATALOG, req(model="nano-banana-pro", resolution="0.5K"))
    assert caught.value.field == "resolution"
    assert caught.value.allowed == ("1K", "2K", "4K")


def test_pro_has_no_extreme_ratios() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(CATALOG, req(model="nano-banana-pro", aspect_ratio="8:1"))
    assert caught.value.field == "aspect_ratio"
    assert "16:9" in caught.value.allowed and "8:1" not in caught.value.allowed


def test_a_pair_outside_the_table_is_refused_with_the_allowed_pairs() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(CATALOG, req(width=1000, height=1000))
    assert caught.value.field == "width"
    assert "1264x848" in caught.value.allowed


def test_resolution_cannot_be_combined_with_width_and_height() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(CATALOG, req(width=1024, height=1024, resolution="1K"))
    assert caught.value.field == "resolution"


def test_width_needs_height() -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(CATALOG, req(width=1024))
    assert caught.value.field == "height"


def test_references_with_a_tier_only_let_the_model_follow_the_reference() -> None:
    size = validate(CATALOG, req(references=(ref(),), resolution="2K"))
    assert size.send_resolution_only and size.tier == "2K" and size.width is None


def test_default_size_is_square_at_the_default_tier() -> None:
    size = validate(CATALOG, req())
    assert (size.width, size.height, size.tier) == (1024, 1024, "1K")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"prompt": "ab"}, "prompt"),
        ({"prompt": "x" * 45_001}, "prompt"),
        ({"references": tuple(ref(i) for i in range(15))}, "references"),
        ({"number_results": 0}, "number_results"),
        ({"number_results": 21}, "number_results"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"temperature": 1.5}, "temperature"),
        ({"temperature": 0.725}, "temperature"),
        ({"top_p": -0.01}, "top_p"),
        ({"output_quality": 19}, "output_quality"),
        ({"system_prompt": ""}, "system_prompt"),
        ({"model": "nano-banana-pro", "thinking": "HIGH"}, "thinking"),
        ({"model": "nano-banana-pro", "image_search": True}, "image_search"),
    ],
)
def test_each_limit_from_the_seeds_names_its_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate(CATALOG, req(**fields))
    assert caught.value.field == field


def test_limits_at_their_edges_are_accepted() -> None:
    validate(
        CATALOG,
        req(
            prompt="abc",
            seed=2**63 - 1,
            number_results=20,
            temperature=1.0,
            top_p=0.0,
            references=tuple(ref(i) for i in range(14)),
            thinking="MINIMAL",
            output_quality=99,
        ),
    )


def test_prices_match_the_seed_examples() -> None:
    # 000_* example 4: Nano Banana Pro 2528x1696 with four references cost $0.1424.
    pro = req(
        model="nano-banana-pro", width=2528, height=1696, references=tuple(ref(i) for i in range(4))
    )
    assert CATALOG.estimate_micros(pro, validate(CATALOG, pro)) == 142_400
    # 001_* example 3: Nano Banana 2 1264x848 with three references cost $0.06979.
    nb2 = req(width=1264, height=848, references=tuple(ref(i) for i in range(3)))
    assert CATALOG.estimate_micros(nb2, validate(CATALOG, nb2)) == 69_790


def test_estimate_is_per_image_and_includes_web_search() -> None:
    one = req(resolution="4K", aspect_ratio="1:1")
    assert CATALOG.estimate_micros(one, validate(CATALOG, one)) == 152_950
    four = req(resolution="4K", aspect_ratio="1:1", number_results=4, web_search=True)
    assert CATALOG.estimate_micros(four, validate(CATALOG, four)) == 4 * (152_950 + 140_000)


def test_prices_can_be_overridden_without_a_release() -> None:
    catalog = load_catalog(
        {"nano-banana-2": {"base_price_micros": {"0.5K": 1, "1K": 2, "2K": 3, "4K": 4}}}
    )
    request = req()
    assert catalog.estimate_micros(request, validate(catalog, request)) == 2


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(InvalidRequest) as caught:
        CATALOG.model("nano-banana-3")
    assert caught.value.allowed == ("nano-banana-pro", "nano-banana-2")
