"""Platform adapters: each translates its platform's payloads to core calls and back.

An adapter acknowledges its platform at once, builds an :class:`bot.models.ImageRequest`
and an :class:`bot.models.Origin`, calls :class:`bot.service.ImageService`, and implements
:class:`bot.interfaces.Delivery` to post progress and results. Adapters import the core
only, never a provider or the storage (an import-linter contract keeps it so).
"""

__all__: list[str] = []
