"""Routes job updates to the adapter a job came from; a failing adapter never fails a job."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from bot.interfaces import Delivery
from bot.models import JobUpdate

__all__ = ["DeliveryRouter"]

log = logging.getLogger(__name__)


class DeliveryRouter:
    """A :class:`Delivery` that forwards each update to the delivery of ``origin.platform``.

    Adapters register themselves when the composition root starts them. Updates for a
    platform with no adapter running (e.g. a Discord job finishing while only workers run)
    are logged and dropped: the job row holds the result, and the adapter re-posts from it.
    """

    def __init__(self, deliveries: Mapping[str, Delivery] | None = None) -> None:
        self._deliveries: dict[str, Delivery] = dict(deliveries or {})

    def register(self, platform: str, delivery: Delivery) -> None:
        self._deliveries[platform] = delivery

    def unregister(self, platform: str) -> None:
        self._deliveries.pop(platform, None)

    async def on_update(self, update: JobUpdate) -> None:
        platform = update.job.origin.platform
        delivery = self._deliveries.get(platform)
        if delivery is None:
            log.debug(
                "no delivery for platform", extra={"platform": platform, "job": update.job.id}
            )
            return
        try:
            await delivery.on_update(update)
        except Exception:
            log.exception(
                "delivery failed",
                extra={"platform": platform, "job": update.job.id, "kind": update.kind},
            )
