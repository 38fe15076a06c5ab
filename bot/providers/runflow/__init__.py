"""Runflow (api.runflow.io): Nano Banana Pro and Nano Banana 2 as asynchronous runs."""

from bot.providers.runflow.callbacks import verify_signature
from bot.providers.runflow.client import RunflowProvider

__all__ = ["RunflowProvider", "verify_signature"]
