"""What link-only providers (Runflow, Runbase) share: references go as links they fetch."""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import ProviderRejected
from bot.interfaces import ReferenceData

__all__ = ["reference_urls"]


def reference_urls(
    references: Sequence[ReferenceData], *, provider: str, display_name: str
) -> list[str]:
    """The ``image_urls`` for the references, in order (seeds 002-004: Runflow and Runbase
    take reference images only as links, no inline bytes).

    Raises:
        ProviderRejected: a reference has no http(s) link; nothing has been sent.
    """
    urls = []
    for index, reference in enumerate(references):
        if reference.url is None or not reference.url.startswith(("https://", "http://")):
            raise ProviderRejected(
                provider,
                f"{display_name} needs reference images as links it can fetch; reference "
                f"{index + 1} has none (bananabot needs BANANABOT_PUBLIC_URL for that)",
                status=0,
                parameter="references",
            )
        urls.append(reference.url)
    return urls
