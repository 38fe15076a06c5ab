"""The local web playground: a browser page on the core, built like a chat adapter."""

from adapters.web.server import WebPlayground

__all__ = ["WebPlayground"]
