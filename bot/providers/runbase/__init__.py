"""Runbase (runbase.net): Nano Banana Pro and Nano Banana 2 as asynchronous runs."""

from bot.providers.runbase.client import RunbaseProvider
from bot.providers.runbase.limiter import shared_limiter

__all__ = ["RunbaseProvider", "shared_limiter"]
