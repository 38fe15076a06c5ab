"""The sandbox provider: deterministic placeholder images rendered locally, at no cost."""

from bot.providers.sandbox.provider import SandboxProvider

__all__ = ["SandboxProvider"]
