"""Runflow (api.runflow.io): Nano Banana Pro and Nano Banana 2 as asynchronous runs."""

from bot.providers.runflow.callbacks import CALLBACK_PATH, CallbackReceiver, verify_signature
from bot.providers.runflow.client import RunflowProvider

__all__ = ["CALLBACK_PATH", "CallbackReceiver", "RunflowProvider", "verify_signature"]
