"""Prometheus metrics (prometheus_client): what the store says, plus timings of this process.

Counts of jobs, queue depth and spend are read from the store at each scrape, so every
process reports the whole deployment's truth (several instances on one PostgreSQL report
the same numbers; sum timings, not these). Provider-call and acknowledgement timings are
histograms of this process.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.storage import Store

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The Prometheus text exposition format's content type."""

_PROVIDER_BUCKETS: Final = (0.5, 1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
_ACK_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5)


class Metrics:
    """One registry of bananabot's metrics (implements :class:`bot.interfaces.Telemetry`).

    Args:
        store: where job counts, spend and the ledger's sums are read at each scrape.

    Metrics (all prefixed ``bananabot_``):
        jobs{status,provider}: jobs in each status, from the store.
        queue_depth{provider}: queued jobs, from the store.
        spend_dollars{provider}: settled cost of succeeded jobs, US dollars, from the store.
        ledger_dollars{kind}: ledger sums (reserve, release, charge), US dollars.
        provider_call_seconds{provider,outcome}: provider calls of this process, seconds.
        ack_seconds{platform}: time from receiving an interaction to acknowledging it,
            seconds (Discord: 3 s limit; Slack: 3 s).
    """

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self._store = store
        self._jobs = Gauge(
            "bananabot_jobs",
            "Jobs by status and provider (store).",
            ["status", "provider"],
            registry=self.registry,
        )
        self._queue = Gauge(
            "bananabot_queue_depth",
            "Queued jobs by provider (store).",
            ["provider"],
            registry=self.registry,
        )
        self._spend = Gauge(
            "bananabot_spend_dollars",
            "Settled cost of succeeded jobs, USD (store).",
            ["provider"],
            registry=self.registry,
        )
        self._ledger = Gauge(
            "bananabot_ledger_dollars",
            "Ledger sums by kind, USD (store).",
            ["kind"],
            registry=self.registry,
        )
        self._provider_seconds = Histogram(
            "bananabot_provider_call_seconds",
            "Provider calls, first request to result.",
            ["provider", "outcome"],
            buckets=_PROVIDER_BUCKETS,
            registry=self.registry,
        )
        self._ack_seconds = Histogram(
            "bananabot_ack_seconds",
            "Interaction received to acknowledged.",
            ["platform"],
            buckets=_ACK_BUCKETS,
            registry=self.registry,
        )

    def provider_call(self, provider: str, outcome: str, seconds: float) -> None:
        """Record one provider call (``outcome``: ``succeeded`` or an error code)."""
        self._provider_seconds.labels(provider, outcome).observe(seconds)

    def ack(self, platform: str, seconds: float) -> None:
        """Record one acknowledgement, ``seconds`` after the interaction arrived."""
        self._ack_seconds.labels(platform).observe(seconds)

    async def render(self) -> bytes:
        """Read the store's numbers and return the text exposition format.

        Raises:
            Exception: whatever the store raises (the server answers 503).
        """
        stats = await self._store.job_stats()
        self._jobs.clear()
        self._queue.clear()
        self._spend.clear()
        queued: dict[str, int] = {}
        spend: dict[str, int] = {}
        for stat in stats:
            self._jobs.labels(stat.status, stat.provider).set(stat.count)
            if stat.status == "queued":
                queued[stat.provider] = queued.get(stat.provider, 0) + stat.count
            spend[stat.provider] = spend.get(stat.provider, 0) + stat.cost_micros
        for provider, count in queued.items():
            self._queue.labels(provider).set(count)
        for provider, micros in spend.items():
            self._spend.labels(provider).set(micros / 1_000_000)
        self._ledger.clear()
        for kind, micros in (await self._store.ledger_totals()).items():
            self._ledger.labels(kind).set(micros / 1_000_000)
        return generate_latest(self.registry)
